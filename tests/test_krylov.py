"""Matrix-free operators, cg/gmres with implicit gradients, and arnoldi (issue 4, part 1)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrad

MODS = lagrad.loads("""
model gm(A: f64[n, n], B: f64[n, n], b: f64[n]) -> f64 {
    op K(v) = A @ v + B' @ (A' @ v)
    x = gmres(K, b, tol=1e-13, restart=5, maxiter=400)
    return sum(x * x)
}
model cgm(A: f64[n, n], s: f64, b: f64[n]) -> f64 {
    op K(v) = A' @ (A @ v) + s * v
    op P(v) = v / (sum(A * A, axis=0) + s)
    return dot(b, cg(K, b, tol=1e-13, M=P))
}
model nested(A: f64[n, n], b: f64[n]) -> f64[n] {
    op K(v) = A @ v
    op L(v) {
        w = K(v)
        return K(w) + v
    }
    return gmres(L, b, tol=1e-13)
}
model arn(A: f64[n, n], v: f64[n]) -> (f64[n, 7], f64[7, 6]) {
    op K(x) = A @ x
    V, H = arnoldi(K, v, 6)
    return V, H
}
model arn_loss(A: f64[n, n], v: f64[n]) -> f64 {
    op K(x) = A @ x
    V, H = arnoldi(K, v, 3)
    return sum(diag(H[1:, :]))
}
""", name="krylov_tests.la")


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    n = 8
    return (rng.standard_normal((n, n)) / np.sqrt(n) + 2 * np.eye(n), rng.standard_normal((n, n)) / n,
            rng.standard_normal(n))


def test_gmres_implicit_gradient_equals_dense_solve_gradient(data):
    A, B, b = data

    def dense(A, B, b):
        x = jnp.linalg.solve(A + B.T @ A.T, b)
        return x @ x
    assert abs(float(MODS.gm(A, B, b)) - float(dense(A, B, b))) <= 1e-11 * abs(float(dense(A, B, b)))
    for g, r in zip(MODS.gm.grad()(A, B, b), jax.grad(dense, (0, 1, 2))(A, B, b)):
        assert rel(g, r) <= 1e-9


def test_cg_with_preconditioner_implicit_gradient(data):
    A, _, b = data

    def dense(A, s, b):
        return b @ jnp.linalg.solve(A.T @ A + s * jnp.eye(len(b)), b)
    for g, r in zip(MODS.cgm.grad()(A, 0.3, b), jax.grad(dense, (0, 1, 2))(A, 0.3, b)):
        assert rel(g, r) <= 1e-9


def test_adjoint_is_one_solve_with_the_derived_transposed_operator(data):
    A, B, b = data
    adj = MODS.gm.adjoint()
    solves = [e for e in adj.eqns if e.prim == "gmres"]
    assert len(solves) == 2                              # forward + one adjoint solve, no unrolling
    KT = solves[1].param("K")
    assert KT.name == "Kᵀ" and solves[0].param("K").transposed() is KT
    w = np.random.default_rng(1).standard_normal(len(b))
    caps = [A if v.name == "A" else B for v in KT.prog.inputs[1:]]
    dense_K = A + B.T @ A.T
    assert rel(KT(w, *caps)[0], dense_K.T @ w) <= 1e-13


def test_nested_operators_and_jax_grad_through_the_bridge(data):
    A, _, b = data
    x = MODS.nested(A, b)
    assert rel(x, np.linalg.solve(A @ A + np.eye(len(b)), b)) <= 1e-10
    g = jax.grad(lambda A, b: jnp.sum(MODS.nested(A, b) ** 2), (0, 1))(A, b)
    r = jax.grad(lambda A, b: jnp.sum(jnp.linalg.solve(A @ A + jnp.eye(len(b)), b) ** 2), (0, 1))(A, b)
    for gi, ri in zip(g, r):
        assert rel(gi, ri) <= 1e-9


def test_vmap_over_right_hand_sides(data):
    A, _, _ = data
    bs = np.random.default_rng(4).standard_normal((3, A.shape[0]))
    xs = jax.vmap(MODS.nested, in_axes=(None, 0))(A, bs)
    for x, b in zip(xs, bs):
        assert rel(x, np.linalg.solve(A @ A + np.eye(len(b)), b)) <= 1e-10


def test_hessian_vector_product_through_gmres(data):
    A, B, b = data
    D = np.random.default_rng(2).standard_normal(A.shape)

    def dense(A):
        x = jnp.linalg.solve(A + B.T @ A.T, b)
        return x @ x
    want = jax.jvp(jax.grad(dense), (A,), (D,))[1]
    assert rel(MODS.gm.hvp("A")((A, B, b), D), want) <= 1e-7


def test_arnoldi_relation_orthonormality_and_gradient(data):
    A, _, b = data
    V, H = (np.asarray(a) for a in MODS.arn(A, b))
    assert np.linalg.norm(A @ V[:, :6] - V @ H) <= 1e-12
    assert np.linalg.norm(V.T @ V - np.eye(7)) <= 1e-12
    assert np.allclose(np.tril(H, -2), 0)
    gA = MODS.arn_loss.grad("A")(A, b)
    D = np.random.default_rng(3).standard_normal(A.shape)
    h = 1e-6
    fd = (float(MODS.arn_loss(A + h * D, b)) - float(MODS.arn_loss(A - h * D, b))) / (2 * h)
    assert abs(float(np.sum(np.asarray(gA) * D)) - fd) <= 1e-6 * max(1.0, abs(fd))



ARN_DIMS = lagrad.loads("""
model arn_n(A: f64[n, n], v: f64[n]) -> (f64[n, n + 1], f64[n + 1, n]) {
    op K(x) = A @ x
    V, H = arnoldi(K, v, n)
    return V, H
}
model arn_n1(A: f64[n, n], v: f64[n]) -> (f64[n, n], f64[n, n - 1]) {
    op K(x) = A @ x
    V, H = arnoldi(K, v, n - 1)
    return V, H
}
model arn_h(A: f64[n, n], v: f64[n]) -> f64[n + 1, n] {
    op K(u) = A @ u
    V, H = arnoldi(K, v, n)
    return H
}
model arn_resid(A: f64[n, n], v: f64[n]) -> f64[n, n - 1] {
    op K(x) = A @ x
    V, H = arnoldi(K, v, n - 1)
    return A @ V[:, 0:n - 1] - V @ H
}
model arn_n1_loss(A: f64[n, n], v: f64[n]) -> f64 {
    op K(x) = A @ x
    V, H = arnoldi(K, v, n - 1)
    return sum(diag(H[1:, :])) + dot(V[:, n - 1], v * v)
}
""", name="krylov_dim_steps.la")


@pytest.mark.parametrize("n", [4, 6])
def test_arnoldi_with_a_dimension_as_step_count_has_the_declared_types(data, n):
    """k = n and k = n - 1: V is [n, k + 1] and H [k + 1, k] in the dimensions, as declared."""
    A = data[0][:n, :n]
    b = data[2][:n]
    V, H = (np.asarray(a) for a in ARN_DIMS.arn_n(A, b))
    assert V.shape == (n, n + 1) and H.shape == (n + 1, n)
    assert np.linalg.norm(A @ V[:, :n] - V @ H) <= 1e-12 * np.linalg.norm(A)
    np.testing.assert_allclose(np.asarray(ARN_DIMS.arn_h(A, b)), H, atol=1e-14)
    V1, H1 = (np.asarray(a) for a in ARN_DIMS.arn_n1(A, b))
    assert V1.shape == (n, n) and H1.shape == (n, n - 1)
    assert np.linalg.norm(A @ V1[:, :n - 1] - V1 @ H1) <= 1e-12
    assert np.linalg.norm(V1.T @ V1 - np.eye(n)) <= 1e-12
    assert np.allclose(np.tril(H1, -2), 0)
    np.testing.assert_allclose(V1, V[:, :n], atol=1e-10)           # the same process, one step less
    assert np.linalg.norm(np.asarray(ARN_DIMS.arn_resid(A, b))) <= 1e-12


def test_arnoldi_with_a_dimension_as_step_count_prints_symbolic_types():
    prog = str(ARN_DIMS.arn_n.specialize(n=5).program)
    assert "V: f64[n, n + 1]" in prog and "H: f64[n + 1, n]" in prog, prog
    prog = str(ARN_DIMS.arn_n1.specialize(n=5).program)
    assert "V: f64[n, n]" in prog and "H: f64[n, n - 1]" in prog, prog


def test_arnoldi_with_a_dimension_as_step_count_gradient(data):
    A, b = data[0][:5, :5], data[2][:5]
    grads = ARN_DIMS.arn_n1_loss.grad()(A, b)
    rng = np.random.default_rng(5)
    h = 1e-6
    for at, g in enumerate(grads):
        D = rng.standard_normal(g.shape)
        plus, minus = [A, b], [A, b]
        plus[at], minus[at] = plus[at] + h * D, minus[at] - h * D
        fd = (float(ARN_DIMS.arn_n1_loss(*plus)) - float(ARN_DIMS.arn_n1_loss(*minus))) / (2 * h)
        assert abs(float(np.sum(np.asarray(g) * D)) - fd) <= 1e-6 * max(1.0, abs(fd))


def test_arnoldi_with_a_dimension_as_step_count_checks_the_declared_type(data):
    """Checked at load (the step count is a dimension: load elaborates with a sample count)."""
    with pytest.raises(lagrad.LagradError, match=r"declared to return f64\[n, n\] but this is f64\[n \+ 1, n\]") as e:
        lagrad.loads("model f(A: f64[n, n], v: f64[n]) -> f64[n, n] {\n    op K(u) = A @ u\n"
                     "    V, H = arnoldi(K, v, n)\n    return H\n}", name="bad_arnoldi.la")
    assert (e.value.line, e.value.column) == (4, 12)

ERRORS = [
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] {\n    op K(v) = A @ v + b\n    return cg(K, b)\n}",
     2, 15, "must be linear in `v`"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] {\n    op K(v) = sum(v * v) * b\n    return K(b)\n}",
     2, 19, "must be linear in `v`"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] {\n    op K(v) = A @ b\n    return gmres(K, b)\n}",
     2, 5, "does not depend on `v`"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] {\n    return cg(A, b)\n}", 2, 15, "must be an operator"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] {\n    op K(v) = A @ v\n    return cg(K, b, tl=1e-3)\n}",
     3, 21, "no keyword argument `tl`"),
    ("model f(A: f64[n, m], b: f64[m]) -> f64[m] {\n    op K(v) = A @ v\n    return gmres(K, b)\n}",
     3, 12, "must map the right-hand side"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] {\n    V, H = arnoldi(A, b, 3)\n    return b\n}",
     2, 20, "must be an operator"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] {\n    op K(v) = A @ v\n    V, H = arnoldi(K, b, 0)\n    return b\n}",
     3, 26, "between 1 and"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] {\n    return gmres(A @ A, b)\n}", 2, 18,
     "must be an operator (`op K(v) = ...`, `blr(D, U, V)` or `block_jacobi(A, block=b)`), not an array"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] {\n    op K(v) = A @ v\n    return cg(K, b, M=2 * A)\n}",
     3, 23, "preconditioner M must be an operator"),
]


@pytest.mark.parametrize("src,line,col,words", ERRORS, ids=[f"e{i}" for i in range(len(ERRORS))])
def test_operator_errors_have_positions(src, line, col, words):
    with pytest.raises(lagrad.LagradError) as info:
        mod = lagrad.loads(src, name="bad.la")
        mod.f.program
    e = info.value
    assert words in str(e)
    assert (e.line, e.column) == (line, col), str(e)


def test_an_operator_written_in_place_is_the_named_one():
    # SPEC §2: operators are values that can be passed to cg, gmres and arnoldi; a call that makes
    # one (blr, block_jacobi) was refused in place ("must be the name of an operator")
    dims = "D: f64[p, b, b], U: f64[p, p, b, r], V: f64[p, p, b, r], x: f64[p * b]"
    src = f"""
model cg_in(A: f64[n, n], b: f64[n]) -> f64 {{ op K(v) = A @ v; return sum(cg(K, b, M=block_jacobi(A, block=2))) }}
model cg_named(A: f64[n, n], b: f64[n]) -> f64 {{
    op K(v) = A @ v; P = block_jacobi(A, block=2); return sum(cg(K, b, M=P)) }}
model gm_in({dims}) -> f64 {{ Vk, H = arnoldi(blr(D, U, V), x, 3); return sum(gmres(blr(D, U, V), x)) + sum(H) }}
model gm_named({dims}) -> f64 {{ P = blr(D, U, V); Vk, H = arnoldi(P, x, 3); return sum(gmres(P, x)) + sum(H) }}
"""
    m = lagrad.loads(src)
    rng = np.random.default_rng(3)
    B = rng.standard_normal((4, 4))
    args = (B @ B.T + 4 * np.eye(4), rng.standard_normal(4))
    blr_args = (rng.standard_normal((2, 2, 2)) + 3 * np.eye(2), 0.1 * rng.standard_normal((2, 2, 2, 1)),
                0.1 * rng.standard_normal((2, 2, 2, 1)), rng.standard_normal(4))
    for f, g, a in ((m.cg_in, m.cg_named, args), (m.gm_in, m.gm_named, blr_args)):
        np.testing.assert_allclose(float(f(*a)), float(g(*a)), rtol=1e-14)
        for u, w in zip(f.grad()(*a), g.grad()(*a)):
            np.testing.assert_allclose(np.asarray(u), np.asarray(w), rtol=1e-12, atol=1e-14)
    K = np.asarray(args[0])               # and the value itself: cg with M converges to A⁻¹b
    np.testing.assert_allclose(float(m.cg_in(*args)), np.sum(np.linalg.solve(K, args[1])), rtol=1e-9)


def test_matrix_free_solve_example(capsys):
    from example_driver import load_example
    assert load_example("matrix_free_solve.py").main() == 0
    out = capsys.readouterr().out
    assert "K=op Kᵀ" in out and out.count("gmres(") == 2 and "OK" in out


@pytest.mark.parametrize("solver", ["cg", "gmres"])
def test_the_default_tolerance_suits_float32(solver):
    """The default tol (1e-10) is below float32's rounding, so an f32 solve defaults to 1e-5
    instead of returning NaN; an explicit tol is kept as given."""
    rng = np.random.default_rng(4)
    A = (3 * np.eye(6) + 0.3 * rng.standard_normal((6, 6))).astype(np.float32)
    b = np.ones(6, np.float32)
    body = "A' @ A @ v" if solver == "cg" else "A @ v"
    K = A.T.astype(float) @ A if solver == "cg" else A.astype(float)
    m = lagrad.loads(f"model s(A: f32[n, n], b: f32[n]) -> f32[n] {{\n op K(v) = {body}\n return {solver}(K, b) }}\n"
                     f"model t(A: f32[n, n], b: f32[n]) -> f32[n] {{\n op K(v) = {body}\n return {solver}(K, b, tol=1e-10) }}")
    x = np.asarray(m.s(A, b))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, np.linalg.solve(K, b), rtol=1e-5, atol=1e-6)
    if solver == "gmres":        # 1e-10 asked for: its true residual cannot reach it in f32 (cg's
        assert np.isnan(np.asarray(m.t(A, b))).all()      # recurrence residual keeps shrinking)


def test_arnoldi_refuses_more_steps_than_the_vector_has_entries():
    m = lagrad.loads("model a(A: f64[n, n], v: f64[n]) -> f64[6, 5] {\n op K(u) = A @ u\n V, H = arnoldi(K, v, 5)\n"
                     " return H }")
    assert np.asarray(m.a(np.eye(6) + 0.01 * np.arange(36.0).reshape(6, 6), np.ones(6))).shape == (6, 5)
    with pytest.raises(lagrad.InputError, match="step count 5 is more than the vector's length n") as e:
        m.a(np.eye(3), np.ones(3))
    assert e.value.line == 3
    with pytest.raises(lagrad.LaTypeError, match="step count 5 is more than the vector's length 3"):
        lagrad.loads("model a(A: f64[3, 3], v: f64[3]) {\n op K(u) = A @ u\n V, H = arnoldi(K, v, 5)\n return H }")
