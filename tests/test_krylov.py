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
]


@pytest.mark.parametrize("src,line,col,words", ERRORS, ids=[f"e{i}" for i in range(len(ERRORS))])
def test_operator_errors_have_positions(src, line, col, words):
    with pytest.raises(lagrad.LagradError) as info:
        mod = lagrad.loads(src, name="bad.la")
        mod.f.program
    e = info.value
    assert words in str(e)
    assert (e.line, e.column) == (line, col), str(e)


def test_matrix_free_solve_example(capsys):
    from example_driver import load_example
    assert load_example("matrix_free_solve.py").main() == 0
    out = capsys.readouterr().out
    assert "K=op Kᵀ" in out and out.count("gmres(") == 2 and "OK" in out
