"""BLR operators in the language: `blr(D, U, V)` applied with `@` and as a call, `dense`,
`block_jacobi`, and BLR operators as the operator or the preconditioner of cg/gmres and as the
operator of arnoldi — with gradients reaching the factors."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrad

MODS = lagrad.loads("""
model apply2(D: f64[p, b, b], U: f64[p, p, b, r], V: f64[p, p, b, r], x: f64[p * b]) -> f64[p * b] {
    P = blr(D, U, V)
    return P @ x + P(x)
}
model den(D: f64[p, b, b], U: f64[p, p, b, r], V: f64[p, p, b, r]) -> f64[p * b, p * b] {
    P = blr(D, U, V)
    return dense(P)
}
model solve_blr(D: f64[p, b, b], U: f64[p, p, b, r], V: f64[p, p, b, r], x: f64[p * b]) -> f64 {
    P = blr(D, U, V)
    return sum(gmres(P, x, tol=1e-13))
}
model precond(A: f64[4 * p, 4 * p], y: f64[4 * p], D: f64[p, 4, 4], U: f64[p, p, 4, r], V: f64[p, p, 4, r]) -> f64 {
    op K(v) = A @ v
    P = blr(D, U, V)
    return sum(gmres(K, y, tol=1e-13, M=P))
}
model jacobi(A: f64[4 * p, 4 * p], y: f64[4 * p], s: f64[p]) -> f64 {
    op K(v) = A @ v
    P = block_jacobi(A, block=4)
    return sum(cg(K, y, tol=1e-13, M=P))
}
model jacobi_dense(A: f64[4 * p, 4 * p], s: f64[p]) -> f64[4 * p, 4 * p] {
    return dense(block_jacobi(A, block=4))
}
model arn_blr(D: f64[p, b, b], U: f64[p, p, b, r], V: f64[p, p, b, r], x: f64[p * b]) -> f64 {
    P = blr(D, U, V)
    Q, H = arnoldi(P, x, 3)
    return sum(diag(H[1:, :]))
}
""", name="blr_ops.la")

p, b, r = 3, 4, 2
n = p * b


def rel(a, c):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(c)) / np.linalg.norm(np.asarray(c)))


@pytest.fixture
def factors():
    rng = np.random.default_rng(0)
    D = rng.standard_normal((p, b, b)) + 4 * np.eye(b)
    U, V = 0.3 * rng.standard_normal((p, p, b, r)), 0.3 * rng.standard_normal((p, p, b, r))
    return D, U, V, rng.standard_normal(n)


def dense_np(D, U, V):
    M = np.zeros((n, n))
    for i in range(p):
        for j in range(p):
            M[i * b:(i + 1) * b, j * b:(j + 1) * b] = D[i] if i == j else U[i, j] @ V[i, j].T
    return M


def test_apply_and_dense(factors):
    D, U, V, x = factors
    M = dense_np(D, U, V)
    assert rel(MODS.den(D, U, V), M) <= 1e-14
    assert rel(MODS.apply2(D, U, V, x), 2 * M @ x) <= 1e-14


def test_blr_as_gmres_operator_gradients_reach_the_factors(factors):
    D, U, V, x = factors

    def ref(D, U, V, x):
        M = jnp.zeros((n, n))
        for i in range(p):
            for j in range(p):
                blk = D[i] if i == j else U[i, j] @ V[i, j].T
                M = M.at[i * b:(i + 1) * b, j * b:(j + 1) * b].set(blk)
        return jnp.sum(jnp.linalg.solve(M, x))
    assert abs(float(MODS.solve_blr(D, U, V, x)) - float(ref(D, U, V, x))) <= 1e-11
    for g, w in zip(MODS.solve_blr.grad()(D, U, V, x), jax.grad(ref, (0, 1, 2, 3))(D, U, V, x)):
        assert rel(g, w) <= 1e-9
    text = str(MODS.solve_blr.adjoint())
    assert "op blrᵀ(w" in text and "trans=true" in text          # the derived transposed operator


def test_blr_preconditioner_does_not_change_the_solution(factors):
    D, U, V, _ = factors
    rng = np.random.default_rng(1)
    A = rng.standard_normal((n, n)) / np.sqrt(n) + 3 * np.eye(n)
    y = rng.standard_normal(n)
    want = np.sum(np.linalg.solve(A, y))
    assert abs(float(MODS.precond(A, y, D, U, V)) - want) <= 1e-10
    gA = MODS.precond.grad("A")(A, y, D, U, V)
    assert rel(gA, jax.grad(lambda A: jnp.sum(jnp.linalg.solve(A, y)))(A)) <= 1e-9
    gD = MODS.precond.grad("D")(A, y, D, U, V)
    assert np.abs(np.asarray(gD)).max() == 0.0                    # the preconditioner's factors: no effect


def test_block_jacobi_is_the_block_diagonal_inverse():
    rng = np.random.default_rng(2)
    G = rng.standard_normal((n, n))
    A = G @ G.T / n + np.eye(n)
    Pd = np.asarray(MODS.jacobi_dense(A, np.ones(p)))
    for i in range(p):
        sl = slice(4 * i, 4 * i + 4)
        assert rel(Pd[sl, sl], np.linalg.inv(A[sl, sl])) <= 1e-12
    mask = sum(np.kron(np.eye(p)[i][:, None] * np.eye(p)[i][None, :], np.ones((4, 4))) for i in range(p))
    assert np.abs(Pd * (1 - mask)).max() == 0.0                   # off-diagonal blocks are zero
    y = rng.standard_normal(n)
    assert abs(float(MODS.jacobi(A, y, np.ones(p))) - np.sum(np.linalg.solve(A, y))) <= 1e-10


def test_arnoldi_on_a_blr_operator_matches_finite_differences(factors):
    D, U, V, x = factors
    g = MODS.arn_blr.grad("U")(D, U, V, x)
    E = np.random.default_rng(3).standard_normal(U.shape)
    h = 1e-6
    fd = (float(MODS.arn_blr(D, U + h * E, V, x)) - float(MODS.arn_blr(D, U - h * E, V, x))) / (2 * h)
    assert abs(float(np.sum(np.asarray(g) * E)) - fd) <= 1e-6 * max(1.0, abs(fd))


def test_blr_errors():
    with pytest.raises(lagrad.LagradError, match="BLR operator"):
        lagrad.loads("model f(A: f64[n, n]) -> f64[n, n] { return dense(A) }").f.program
    with pytest.raises(lagrad.LagradError, match="blr"):
        lagrad.loads("model f(D: f64[p, b, b], U: f64[p, p, b, r]) -> f64 {\n P = blr(D, U)\n return 1.0 }").f.program
    # a size that must divide is checked per call and points at the call that needs it
    bj = lagrad.loads("model f(A: f64[n, n]) -> f64[n, n] {\n return dense(block_jacobi(A, block=4)) }").f
    with pytest.raises(lagrad.InputError, match="n = 6; it needs n to be a multiple of 4") as info:
        bj(np.eye(6))
    assert (info.value.line, info.value.column) == (2, 15) and "`block_jacobi` makes a size of n/4" in str(info.value)
    np.testing.assert_allclose(bj(2 * np.eye(8)), 0.5 * np.eye(8))
    comp = lagrad.loads("model f(A: f64[n, n]) -> f64 {\n D, U, V = blr_compress(A, block=3, rank=1)\n"
                        " return sum(D) }").f
    with pytest.raises(lagrad.InputError, match="multiple of 3") as info:
        comp(np.eye(4))
    assert (info.value.line, info.value.column) == (2, 12)
    with pytest.raises(lagrad.LagradError) as info:
        lagrad.loads("model f(A: f64[n, n]) -> f64 {\n return sum(dense(A)) }", name="d.la").f.program
    assert (info.value.line, info.value.column) == (2, 19)


def test_check_picks_default_sizes_the_blocks_divide():
    from lagrad.runtime.check import check_function
    f = lagrad.loads("model f(A: f64[n, n], x: f64[n]) -> f64 { return sum(block_jacobi(A, block=6) @ x) }").f
    rows = check_function(f)                 # the default n = 4 becomes 12, a multiple of 6
    assert rows and all(r.ok for r in rows)
    with pytest.raises(lagrad.InputError, match="multiple of 6"):
        check_function(f, dims={"n": 8})     # a size the user gives stays
