"""Block low-rank primitives (lagrad/stdlib/blr.py) against their dense matrices, numpy and jax.

The rule-table rows (tests/rows_blr.py) check every rule one primitive at a time; these tests
check the algebra (M x = dense(M) x, the transpose identity, compression error = tail singular
values) and whole models: gradients and Hessian-vector products against jax on plain block
algebra, jit and vmap through a lagrad Function, and the shape errors."""
import re

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.scipy.linalg as jsl  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lagrad  # noqa: E402
from lagrad import LagradError  # noqa: E402
from lagrad.stdlib.blr import (blr_apply_impl, blr_compress_impl, blr_dense_impl,  # noqa: E402
                               block_diag_inv_impl)

P, B, R = 4, 3, 2
N = P * B

SRC = """
model apply_loss(D: f64[p, b, b], U: f64[p, p, b, r], V: f64[p, p, b, r], x: f64[p*b], w: f64[p*b]) -> f64 {
    return sum(w * blr_apply(D, U, V, x))
}
model apply_mat(D: f64[p, b, b], U: f64[p, p, b, r], V: f64[p, p, b, r], X: f64[p*b, k], W: f64[p*b, k]) -> f64 {
    y = blr_apply(D, U, V, X)
    return sum(W * y * y)
}
model cubic(D: f64[p, b, b], U: f64[p, p, b, r], V: f64[p, p, b, r], x: f64[p*b], w: f64[p*b]) -> f64 {
    y = blr_apply(D, U, V, x)
    return sum(w * y * y * y) + sum(w * (blr_dense(D, U, V) @ x))
}
model jacobi(A: f64[p*3, p*3], c: f64[p], x: f64[p*3], w: f64[p*3]) -> f64 {
    P = block_jacobi(A, block=3)
    return sum(w * (P @ x)) + 0 * sum(c)
}
model compressed(A: f64[p*3, p*3], x: f64[p*3], c: f64[p]) -> f64 {
    D, U, V = blr_compress(A, block=3, rank=2)
    return sum(blr_apply(D, U, V, x)) + sum(c)
}
"""


@pytest.fixture(scope="module")
def mod():
    return lagrad.loads(SRC, name="blr_test.la")


def factors(rng, p=P, b=B, r=R):
    return (rng.standard_normal((p, b, b)), rng.standard_normal((p, p, b, r)),
            rng.standard_normal((p, p, b, r)))


def dense_ref(D, U, V):
    """The n × n matrix block by block (independent of the batched einsums)."""
    p = D.shape[0]
    return jnp.block([[D[i] if i == j else U[i, j] @ V[i, j].T for j in range(p)] for i in range(p)])


def diag_blocks_ref(A, b):
    return jnp.stack([A[i * b:(i + 1) * b, i * b:(i + 1) * b] for i in range(A.shape[0] // b)])


@pytest.mark.parametrize("r", [0, 1, R])
@pytest.mark.parametrize("xshape", [(N,), (N, 5)])
def test_apply_equals_dense(r, xshape):
    rng = np.random.default_rng(r)
    D, U, V = factors(rng, r=r)
    x = rng.standard_normal(xshape)
    M = np.asarray(blr_dense_impl(D, U, V))
    np.testing.assert_allclose(M, dense_ref(D, U, V), atol=1e-14)
    np.testing.assert_allclose(blr_apply_impl(D, U, V, x), M @ x, atol=1e-12)
    np.testing.assert_allclose(blr_apply_impl(D, U, V, x, trans=True), M.T @ x, atol=1e-12)


def test_diagonal_factors_are_ignored():
    rng = np.random.default_rng(1)
    D, U, V = factors(rng)
    U2, V2 = U.copy(), V.copy()
    for i in range(P):
        U2[i, i] = rng.standard_normal((B, R))
        V2[i, i] = rng.standard_normal((B, R))
    x = rng.standard_normal(N)
    np.testing.assert_allclose(blr_apply_impl(D, U2, V2, x), blr_apply_impl(D, U, V, x), atol=1e-13)
    np.testing.assert_allclose(blr_dense_impl(D, U2, V2), blr_dense_impl(D, U, V), atol=1e-13)


def test_transpose_identity():
    """⟨y, Mx⟩ = ⟨Mᵀy, x⟩, with Mᵀ = BLR(Dᵀ, V', U'), U'ᵢⱼ = Vⱼᵢ, V'ᵢⱼ = Uⱼᵢ (swap U and V,
    transpose the diagonal blocks, and the block indices)."""
    rng = np.random.default_rng(2)
    D, U, V = factors(rng)
    x, y = rng.standard_normal(N), rng.standard_normal(N)
    Mt_y = blr_apply_impl(D, U, V, y, trans=True)
    lhs, rhs = y @ blr_apply_impl(D, U, V, x), Mt_y @ x
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    swapped = blr_apply_impl(np.swapaxes(D, 1, 2), np.swapaxes(V, 0, 1), np.swapaxes(U, 0, 1), y)
    np.testing.assert_allclose(swapped, Mt_y, atol=1e-12)


def test_compress_exact_blr_reconstructs():
    rng = np.random.default_rng(3)
    D, U, V = factors(rng)
    A = np.asarray(blr_dense_impl(D, U, V))
    Dc, Uc, Vc = blr_compress_impl(A, block=B, rank=R)
    assert Dc.shape == (P, B, B) and Uc.shape == Vc.shape == (P, P, B, R)
    np.testing.assert_allclose(blr_dense_impl(Dc, Uc, Vc), A, atol=1e-12)
    np.testing.assert_allclose(Dc, D, atol=0)


@pytest.mark.parametrize("r", [0, 1, 2])
def test_compress_error_is_the_tail_singular_values(r):
    rng = np.random.default_rng(4)
    A = rng.standard_normal((N, N))
    err = A - np.asarray(blr_dense_impl(*blr_compress_impl(A, block=B, rank=r)))
    tail = sum(np.sum(np.linalg.svd(A[i * B:(i + 1) * B, j * B:(j + 1) * B], compute_uv=False)[r:] ** 2)
               for i in range(P) for j in range(P) if i != j)
    np.testing.assert_allclose(np.sum(err ** 2), tail, rtol=1e-12)
    for i in range(P):                               # diagonal blocks are kept exactly
        np.testing.assert_allclose(err[i * B:(i + 1) * B, i * B:(i + 1) * B], 0, atol=1e-14)


def test_block_diag_inv_against_numpy():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((N, N)) + 4 * np.eye(N)
    want = np.stack([np.linalg.inv(A[i * B:(i + 1) * B, i * B:(i + 1) * B]) for i in range(P)])
    np.testing.assert_allclose(block_diag_inv_impl(A, block=B), want, rtol=1e-12)


def _apply_args(seed=6):
    rng = np.random.default_rng(seed)
    return (*factors(rng), rng.standard_normal(N), rng.standard_normal(N))


def _loss_ref(D, U, V, x, w):
    return jnp.sum(w * (dense_ref(D, U, V) @ x))


def test_grad_matches_jax(mod):
    args = _apply_args()
    np.testing.assert_allclose(mod.apply_loss(*args), _loss_ref(*args), rtol=1e-12)
    got = mod.apply_loss.grad(["D", "U", "V", "x"])(*args)
    want = jax.grad(_loss_ref, argnums=(0, 1, 2, 3))(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    # the i = j factors get no gradient
    assert np.all(np.asarray(got[1])[np.arange(P), np.arange(P)] == 0)


def test_grad_matrix_rhs(mod):
    rng = np.random.default_rng(7)
    args = (*factors(rng), rng.standard_normal((N, 3)), rng.standard_normal((N, 3)))

    def ref(D, U, V, X, W):
        y = dense_ref(D, U, V) @ X
        return jnp.sum(W * y * y)
    got = mod.apply_mat.grad(["D", "U", "V", "X"])(*args)
    want = jax.grad(ref, argnums=(0, 1, 2, 3))(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_hvp_matches_jax(mod):
    """Second order: the einsum tangents are re-linearized and transposed again."""
    args = _apply_args(8)
    rng = np.random.default_rng(9)
    dirs = tuple(rng.standard_normal(np.shape(a)) for a in args[:4])

    def ref(D, U, V, x, w):
        y = dense_ref(D, U, V) @ x
        return jnp.sum(w * y ** 3) + jnp.sum(w * (dense_ref(D, U, V) @ x))
    np.testing.assert_allclose(mod.cubic(*args), ref(*args), rtol=1e-12)
    got = mod.cubic.hvp(["D", "U", "V", "x"])(args, dirs)
    g = lambda *a: jax.grad(ref, argnums=(0, 1, 2, 3))(*a, args[4])  # noqa: E731
    want = jax.jvp(g, args[:4], dirs)[1]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


def test_block_jacobi_rank0_grad_and_hvp(mod):
    """block_jacobi(A): blr(block_diag_inv(A), U, V) with rank-0 U, V (zero-size dimensions are
    refused as arguments, SPEC-wise sizes are ≥ 1, but the operator builds them internally)."""
    rng = np.random.default_rng(10)
    A = rng.standard_normal((N, N)) + 4 * np.eye(N)
    U0 = np.zeros(P)            # the model's `c`, which only names p
    x, w = rng.standard_normal(N), rng.standard_normal(N)

    def ref(A, x):
        return jnp.sum(w * (jsl.block_diag(*jnp.linalg.inv(diag_blocks_ref(A, B))) @ x))
    np.testing.assert_allclose(mod.jacobi(A, U0, x, w), ref(A, x), rtol=1e-12)
    gA, gx = mod.jacobi.grad(["A", "x"])(A, U0, x, w)
    wA, wx = jax.grad(ref, argnums=(0, 1))(A, x)
    np.testing.assert_allclose(gA, wA, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, wx, rtol=1e-10, atol=1e-12)
    dA = rng.standard_normal((N, N))
    got = mod.jacobi.hvp("A")((A, U0, x, w), dA)
    want = jax.jvp(lambda A: jax.grad(ref)(A, x), (A,), (dA,))[1]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)


def test_compress_is_not_differentiated(mod):
    rng = np.random.default_rng(11)
    A, x = rng.standard_normal((N, N)), rng.standard_normal(N)
    c = np.zeros(P)
    np.testing.assert_allclose(mod.compressed(A, x, c),
                               np.sum(blr_apply_impl(*blr_compress_impl(A, block=3, rank=2), x)), rtol=1e-12)
    gA, gx = mod.compressed.grad(["A", "x"])(A, x, c)
    assert np.all(np.asarray(gA) == 0)
    M = np.asarray(blr_dense_impl(*blr_compress_impl(A, block=3, rank=2)))
    np.testing.assert_allclose(gx, M.T @ np.ones(N), rtol=1e-10)


def test_jit_and_vmap_through_a_function(mod):
    f = mod.apply_loss
    D, U, V, x, w = _apply_args(12)
    np.testing.assert_allclose(jax.jit(f)(D, U, V, x, w), _loss_ref(D, U, V, x, w), rtol=1e-12)
    xs = np.random.default_rng(13).standard_normal((4, N))
    got = jax.vmap(f, in_axes=(None, None, None, 0, None))(D, U, V, xs, w)
    np.testing.assert_allclose(got, [_loss_ref(D, U, V, xi, w) for xi in xs], rtol=1e-12)
    gU = jax.jit(jax.grad(f, argnums=1))(D, U, V, x, w)
    np.testing.assert_allclose(gU, jax.grad(_loss_ref, argnums=1)(D, U, V, x, w), rtol=1e-10, atol=1e-12)
    gv = jax.vmap(jax.grad(f, argnums=3), in_axes=(None, None, None, 0, None))(D, U, V, xs, w)
    np.testing.assert_allclose(gv, np.tile(np.asarray(dense_ref(D, U, V)).T @ w, (4, 1)), rtol=1e-10)


@pytest.mark.parametrize("body,words", [
    ("blr_apply(D, U, V, x)", "must be [p, p, b, r]"),
    ("blr_apply(D, V, V, y)", "must have p·b"),
    ("sum(blr_dense(D, U, V))", "must be [p, p, b, r]"),
    ("sum(block_diag_inv(A, block=5))", "does not split into blocks of size 5"),
    ("sum(blr_compress(A, block=3, rank=4)[0])", "rank 4 exceeds the block size 3"),
])
def test_shape_errors(body, words):
    src = f"""model bad(D: f64[p, b, b], U: f64[p, p, b, r], V: f64[p, p, b, s], x: f64[p*b], y: f64[p],
                      A: f64[6, 6]) -> f64 {{
        return sum({body})
    }}"""
    if "blr_compress" in body:
        src = src.replace(f"sum({body})", "sum(C)").replace("return", "C, E, F = blr_compress(A, block=3, rank=4)\n        return")
    with pytest.raises(LagradError, match=re.escape(words)):
        lagrad.loads(src, name="bad.la")
