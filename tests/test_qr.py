"""qr through `.la` models: values, the derived adjoint against closed forms and JAX, the error
for a matrix whose tall/wide case is unknown, and the printed adjoint program.

The rule-table rows (central differences, dot-product test, jax.grad) live in tests/rows_qr.py;
this file checks what a user sees: values against NumPy, the adjoint lagrad derives by
transposing the Fréchet rule against the known closed form (tall and square: the copyltu formula
of Walter & Lehmann / Seeger et al.), against jax.vjp and against central differences (wide)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrad

SOURCE = """\
model factor(A: f64[m, n]) {
    Q, R = qr(A)
    return Q, R
}
model factor_square(A: f64[n, n]) -> (f64[n, n], f64[n, n]) {
    Q, R = qr(A)
    return Q, R
}
model factor_tall(X: f64[n, n], Y: f64[k, n]) -> (f64[n + k, n], f64[n, n]) {
    Q, R = qr(vcat(X, Y))
    return Q, R
}
model factor_tall2(A: f64[2*n, n]) -> (f64[2*n, n], f64[n, n]) {
    Q, R = qr(A)
    return Q, R
}
model factor_wide(X: f64[n, n], Y: f64[n, k]) -> (f64[n, n], f64[n, n + k]) {
    Q, R = qr(hcat(X, Y))
    return Q, R
}
model pairing_tall(X: f64[n, n], Y: f64[k, n], Qb: f64[n + k, n], Rb: f64[n, n]) -> f64 {
    Q, R = qr(vcat(X, Y))
    return sum(Qb * Q) + sum(Rb * R)
}
model pairing_wide(X: f64[n, n], Y: f64[n, k], Qb: f64[n, n], Rb: f64[n, n + k]) -> f64 {
    Q, R = qr(hcat(X, Y))
    return sum(Qb * Q) + sum(Rb * R)
}
model loss_unknown(A: f64[m, n]) -> f64 {
    Q, R = qr(A)
    return sum(Q) + sum(R)
}
model loss_tall(X: f64[n, n], Y: f64[k, n]) -> f64 {
    A = vcat(X, Y)
    Q, R = qr(A)
    return sum(Q) + sum(R * R)
}
model loss_wide(X: f64[n, n], Y: f64[n, k]) -> f64 {
    A = hcat(X, Y)
    Q, R = qr(A)
    return sum(Q) + sum(R * R)
}
"""


@pytest.fixture(scope="module")
def mod():
    return lagrad.loads(SOURCE, name="qr_tests.la")


def fullrank(rng, m, n):
    """randn + c·I: full rank, and its leading square block well conditioned (the wide rule)."""
    return rng.standard_normal((m, n)) + (2 * np.sqrt(min(m, n)) + 1) * np.eye(m, n)


def numpy_qr(A):
    """NumPy's reduced QR with diag(R) made positive (the unique factorization lagrad returns)."""
    Q, R = np.linalg.qr(A, mode="reduced")
    d = np.sign(np.diag(R))
    return Q * d[None, :], R * d[:, None]


def jnp_qr(A):
    Q, R = jnp.linalg.qr(A, mode="reduced")
    d = jnp.sign(jnp.diagonal(R))
    return Q * d[None, :], R * d[:, None]


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def copyltu(X):
    return np.tril(X) + np.tril(X, -1).T


def closed_form_adjoint(Q, R, Qb, Rb):
    """M = R R̄ᵀ − Q̄ᵀQ, Ā = (Q̄ + Q copyltu(M)) R⁻ᵀ (tall and square)."""
    M = R @ Rb.T - Qb.T @ Q
    B = Qb + Q @ copyltu(M)
    return np.linalg.solve(R, B.T).T            # B R⁻ᵀ


# ---- (a) values ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7, 4), (5, 5), (4, 7), (6, 1), (1, 6)])
def test_values_match_numpy_with_positive_diagonal(mod, shape):
    m, n = shape
    k = min(m, n)
    A = np.random.default_rng(sum(shape)).standard_normal(shape)
    Q, R = (np.asarray(x) for x in mod.factor(A))
    assert Q.shape == (m, k) and R.shape == (k, n) and Q.dtype == np.float64
    Qn, Rn = numpy_qr(A)
    assert np.allclose(Q, Qn, rtol=0, atol=1e-12) and np.allclose(R, Rn, rtol=0, atol=1e-12)
    assert np.allclose(Q.T @ Q, np.eye(k), rtol=0, atol=1e-13)
    assert np.array_equal(R, np.triu(R))
    assert np.all(np.diag(R) > 0)
    assert np.allclose(Q @ R, A, rtol=0, atol=1e-12)


def test_values_through_typed_models(mod):
    rng = np.random.default_rng(1)
    X, Yt, Yw = rng.standard_normal((4, 4)), rng.standard_normal((3, 4)), rng.standard_normal((4, 3))
    for fn, A in ((mod.factor_square, (X,)), (mod.factor_tall, (X, Yt)), (mod.factor_wide, (X, Yw)),
                  (mod.factor_tall2, (rng.standard_normal((8, 4)),))):
        full = A[0] if len(A) == 1 else (np.vstack(A) if fn is mod.factor_tall else np.hstack(A))
        Q, R = fn(*A)
        Qn, Rn = numpy_qr(full)
        assert np.allclose(Q, Qn, rtol=0, atol=1e-12) and np.allclose(R, Rn, rtol=0, atol=1e-12)
        assert np.all(np.diag(np.asarray(R)) > 0)


# ---- (b) the derived adjoint --------------------------------------------------------------------
@pytest.mark.parametrize("case", ["square", "tall", "tall2"])
def test_derived_adjoint_equals_copyltu_closed_form(mod, case):
    rng = np.random.default_rng({"square": 3, "tall": 4, "tall2": 5}[case])
    if case == "square":
        fn, args = mod.factor_square, (fullrank(rng, 5, 5),)
    elif case == "tall2":
        fn, args = mod.factor_tall2, (fullrank(rng, 8, 4),)
    else:
        fn, args = mod.factor_tall, (fullrank(rng, 4, 4), rng.standard_normal((3, 4)))
    Q, R = (np.asarray(x) for x in fn(*args))
    Qb, Rb = rng.standard_normal(Q.shape), rng.standard_normal(R.shape)      # non-symmetric cotangents
    if case == "tall":
        # the pullback as the gradient of ⟨Q̄, Q⟩ + ⟨R̄, R⟩ (see test_vjp_split_binds_sum_dimensions)
        Abar = np.vstack(mod.pairing_tall.grad(wrt=["X", "Y"])(*args, Qb, Rb))
    else:
        _, pullback = fn.vjp(*args)
        Abar = pullback(Qb, Rb)[0]
    expected = closed_form_adjoint(Q, R, Qb, Rb)
    assert rel(Abar, expected) <= 1e-12
    # and the same through jax.vjp of JAX's QR (sign-fixed)
    A = np.vstack(args) if case == "tall" else args[0]
    _, jpull = jax.vjp(jnp_qr, jnp.asarray(A))
    assert rel(Abar, jpull((jnp.asarray(Qb), jnp.asarray(Rb)))[0]) <= 1e-12


@pytest.mark.parametrize("shape", [(4, 7), (3, 5), (1, 4)])
def test_derived_adjoint_wide_equals_jax_vjp_and_central_differences(mod, shape):
    m, n = shape
    rng = np.random.default_rng(n)
    A = fullrank(rng, m, n)
    X, Y = A[:, :m], A[:, m:]
    Q, R = mod.factor_wide(X, Y)
    Qb, Rb = rng.standard_normal(np.shape(Q)), rng.standard_normal(np.shape(R))   # non-symmetric
    Abar = np.hstack(mod.pairing_wide.grad(wrt=["X", "Y"])(X, Y, Qb, Rb))      # the pullback of (Q̄, R̄)
    _, jpull = jax.vjp(jnp_qr, jnp.asarray(A))
    assert rel(Abar, jpull((jnp.asarray(Qb), jnp.asarray(Rb)))[0]) <= 1e-12

    # ⟨Ā, E⟩ = d/dt ⟨Q̄, Q(A + tE)⟩ + ⟨R̄, R(A + tE)⟩ by a central difference
    def phi(t):
        Qt, Rt = numpy_qr(A + t * E)
        return np.sum(Qb * Qt) + np.sum(Rb * Rt)
    for _ in range(2):
        E = rng.standard_normal(A.shape)
        h = 1e-6
        fd = (phi(h) - phi(-h)) / (2 * h)
        assert abs(np.sum(Abar * E) - fd) <= 1e-6 * max(abs(fd), 1.0)


def test_vjp_split_binds_sum_dimensions(mod):
    rng = np.random.default_rng(4)
    X, Y = fullrank(rng, 4, 4), rng.standard_normal((3, 4))
    (Q, R), pullback = mod.factor_tall.vjp(X, Y)
    Qb, Rb = rng.standard_normal(np.shape(Q)), rng.standard_normal(np.shape(R))
    Abar = np.vstack(pullback(Qb, Rb))
    assert rel(Abar, closed_form_adjoint(np.asarray(Q), np.asarray(R), Qb, Rb)) <= 1e-12


@pytest.mark.parametrize("name, shapes", [("loss_tall", [(4, 4), (3, 4)]), ("loss_wide", [(4, 4), (4, 3)])])
def test_grad_of_scalar_loss_equals_jax_grad(mod, name, shapes):
    rng = np.random.default_rng(7)
    X = fullrank(rng, *shapes[0])
    Y = rng.standard_normal(shapes[1])

    def ref(X, Y):
        Q, R = jnp_qr(jnp.vstack([X, Y]) if name == "loss_tall" else jnp.hstack([X, Y]))
        return jnp.sum(Q) + jnp.sum(R * R)
    gx, gy = getattr(mod, name).grad()(X, Y)
    jx, jy = jax.grad(ref, argnums=(0, 1))(X, Y)
    assert rel(gx, jx) <= 1e-12 and rel(gy, jy) <= 1e-12
    assert np.isclose(float(getattr(mod, name)(X, Y)), float(ref(X, Y)), rtol=1e-13)


# ---- (c) the error for an unknown case ----------------------------------------------------------
def test_unknown_case_forward_works_but_differentiating_is_an_error(mod):
    A = np.random.default_rng(0).standard_normal((5, 3))
    Qn, Rn = numpy_qr(A)
    assert np.isclose(float(mod.loss_unknown(A)), Qn.sum() + Rn.sum(), rtol=1e-13)
    with pytest.raises(lagrad.LagradError) as info:
        mod.loss_unknown.grad()(A)
    e = info.value
    line = SOURCE.splitlines().index("model loss_unknown(A: f64[m, n]) -> f64 {") + 2     # the qr call
    assert e.path == "qr_tests.la" and e.line == line and e.column == 12
    text = str(e)
    assert f"qr_tests.la:{line}:12:" in text and "f64[m, n]" in text and "tall" in text and "wide" in text
    assert "f64[n + k, n]" in text and "f64[n, n + k]" in text       # the hint: how to write the type
    with pytest.raises(lagrad.LagradError):
        mod.loss_unknown.adjoint()


def test_tall_and_wide_symbolic_types_differentiate(mod):
    rng = np.random.default_rng(2)
    X = fullrank(rng, 3, 3)
    for name, Y in (("loss_tall", rng.standard_normal((2, 3))), ("loss_wide", rng.standard_normal((3, 2)))):
        gx, gy = getattr(mod, name).grad()(X, Y)
        assert gx.shape == X.shape and gy.shape == Y.shape
        assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))
    src = ("model tall(A: f64[n + k, n], pad: f64[k]) -> f64 { Q, R = qr(A); return sum(Q) + sum(R) }\n"
           "model wide(A: f64[n, n + k], pad: f64[k]) -> f64 { Q, R = qr(A); return sum(Q) + sum(R) }\n")
    m2 = lagrad.loads(src, name="qr_typed.la")
    for fn, A in ((m2.tall, fullrank(rng, 5, 3)), (m2.wide, fullrank(rng, 3, 5))):
        g = fn.grad(wrt="A")(A, np.zeros(2))
        j = jax.grad(lambda A: sum(jnp.sum(x) for x in jnp_qr(A)))(A)
        assert rel(g, j) <= 1e-12


# ---- (d) the printed adjoint --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["factor_square", "factor_tall", "factor_wide", "loss_tall", "loss_wide"])
def test_printed_adjoint_uses_triangular_solves_and_no_inverse(mod, name):
    text = str(getattr(mod, name).adjoint())
    assert text.startswith(f"adjoint {name}(")
    assert "solve_triangular(" in text
    assert "inv(" not in text
    assert text.count("= qr(") == 1                      # one factorization, reused by the backward
