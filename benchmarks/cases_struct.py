"""Structured cases of the side-by-side benchmark: lyap, dlyap, the Kalman filter's negative
log-likelihood and the BLR matvec. JAX has no Lyapunov solver, so the jax.numpy pipeline (for
jax.grad) runs the same iteration lagrad uses for a fixed step count K (the K lagrad's factor
needed on these inputs), and jax.grad differentiates through it; the custom_vjp expert keeps
that iteration's inverses / powers and solves the adjoint equation with them transposed.
PyTorch has no Lyapunov solver either: it runs the same fixed-K iteration under autograd.
PyTensor has both solvers (Schur / Bartels–Stewart-based) with gradients."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from lagrad.stdlib.lyap import dlyap_factor_impl, lyap_factor_impl

from .cases_dense import Case, _torch, expm_custom, randn


# ---- the iterations, in jax.numpy, for a fixed step count ------------------------------------------
def sign_lyap(A, Q, K, xp=jnp, inv=None):
    """X with A X + X Aᵀ + Q = 0 by K steps of the scaled sign iteration (any array module),
    then lagrad's correction for A_K = −I + E: X = ½Q + ¼(E Q + Q Eᵀ) = Q + ¼(A_K Q + Q A_Kᵀ)."""
    inv = inv or xp.linalg.inv
    for _ in range(K):
        Ai = inv(A)
        c = xp.sqrt(xp.linalg.norm(Ai) / xp.linalg.norm(A))
        A, Q = 0.5 * (c * A + Ai / c), 0.5 * (c * Q + Ai @ Q @ Ai.T / c)
    return Q + 0.25 * (A @ Q + Q @ A.T)


def doubling_dlyap(A, Q, K):
    """X with A X Aᵀ − X + Q = 0 by K doubling (Smith) steps."""
    X = Q
    for _ in range(K):
        X = X + A @ X @ A.T
        A = A @ A
    return X


def lyap_steps(A) -> int:
    return int(jax.jit(lyap_factor_impl)(jnp.asarray(A))[-1])


def dlyap_steps(A) -> int:
    return int(jax.jit(dlyap_factor_impl)(jnp.asarray(A))[-1])


def lyap_custom(K):
    """The expert's custom_vjp: forward keeps the K inverses and scalings; the adjoint equation
    Aᵀ S + S A + W = 0 is the same recurrence with the inverses transposed (they are the sign
    iteration of Aᵀ), then the same correction with Eᵀ; Q̄ = S, Ā = S Xᵀ + Sᵀ X."""
    def run(invs, cs, E, Q, trans):
        def body(Qk, ic):
            Ai, c = ic
            Ai = Ai.T if trans else Ai
            return 0.5 * (c * Qk + Ai @ Qk @ Ai.T / c), None
        QK = jax.lax.scan(body, Q, (invs, cs))[0]
        E = E.T if trans else E
        return 0.5 * QK + 0.25 * (E @ QK + QK @ E.T)

    def factor(A):
        def body(Ak, _):
            Ai = jnp.linalg.inv(Ak)
            c = jnp.sqrt(jnp.linalg.norm(Ai) / jnp.linalg.norm(Ak))
            return 0.5 * (c * Ak + Ai / c), (Ai, c)
        AK, (invs, cs) = jax.lax.scan(body, A, None, length=K)
        return invs, cs, AK + jnp.eye(A.shape[0], dtype=A.dtype)

    @jax.custom_vjp
    def lyap(A, Q):
        return run(*factor(A), Q, False)

    def fwd(A, Q):
        invs, cs, E = factor(A)
        X = run(invs, cs, E, Q, False)
        return X, (invs, cs, E, X)

    def bwd(res, W):
        invs, cs, E, X = res
        S = run(invs, cs, E, W, True)
        return S @ X.T + S.T @ X, S
    lyap.defvjp(fwd, bwd)
    return lyap


def dlyap_custom(K):
    """custom_vjp: forward keeps the powers A^(2^k); the adjoint Aᵀ S A − S + W = 0 reuses them
    transposed; Q̄ = S, Ā = S A Xᵀ + Sᵀ A X."""
    def powers(A):
        def body(Ak, _):
            return Ak @ Ak, Ak
        return jax.lax.scan(body, A, None, length=K)[1]

    def run(pows, Q, trans):
        def body(X, P):
            P = P.T if trans else P
            return X + P @ X @ P.T, None
        return jax.lax.scan(body, Q, pows)[0]

    @jax.custom_vjp
    def dlyap(A, Q):
        return run(powers(A), Q, False)

    def fwd(A, Q):
        pows = powers(A)
        X = run(pows, Q, False)
        return X, (A, pows, X)

    def bwd(res, W):
        A, pows, X = res
        S = run(pows, W, True)
        return S @ A @ X.T + S.T @ A @ X, S
    dlyap.defvjp(fwd, bwd)
    return dlyap


# ---- lyap, dlyap -----------------------------------------------------------------------------------
LYAP_LA = """model lyap_loss(A: f64[n, n], Q: f64[n, n], W: f64[n, n]) -> f64 {
    return sum(W * lyap(A, Q))
}
"""
DLYAP_LA = """model dlyap_loss(A: f64[n, n], Q: f64[n, n], W: f64[n, n]) -> f64 {
    return sum(W * dlyap(A, Q))
}
"""


def lyap_inputs(n):
    rng = np.random.default_rng(n + 3)
    return (randn(rng, n, n) / np.sqrt(n) - 1.5 * np.eye(n), randn(rng, n, n), randn(rng, n, n))


def dlyap_inputs(n):
    rng = np.random.default_rng(n + 5)
    return (0.5 * randn(rng, n, n) / np.sqrt(n), randn(rng, n, n), randn(rng, n, n))


def _pt_lyap(A, Q, W):
    from pytensor.tensor.linalg import solve_continuous_lyapunov
    return (W * solve_continuous_lyapunov(A, -Q)).sum()          # scipy's convention: A X + X Aᵀ = Q


def _pt_dlyap(A, Q, W):
    from pytensor.tensor.linalg import solve_discrete_lyapunov
    return (W * solve_discrete_lyapunov(A, Q)).sum()


def lyap_case():
    return Case(
        "lyap", "lyap: sum(W ⊙ X), A X + X Aᵀ + Q = 0, gradient w.r.t. A and Q", LYAP_LA, "lyap_loss",
        ["A", "Q"], [32, 64, 128, 256, 512], [6, 10], lyap_inputs,
        {"jax.grad": lambda a: (lambda K: lambda A, Q, W: jnp.sum(W * sign_lyap(A, Q, K)))(lyap_steps(a[0])),
         "JAX custom_vjp": lambda a: (lambda L: lambda A, Q, W: jnp.sum(W * L(A, Q)))(lyap_custom(lyap_steps(a[0]))),
         "PyTorch": lambda a: (lambda K: _torch(lambda t, A, Q, W: (W * sign_lyap(A, Q, K, xp=t)).sum()))(
             lyap_steps(a[0])),
         "PyTensor": lambda a: _pt_lyap, "PyTensor JAX": lambda a: _pt_lyap},
        params=["A", "Q", "W"],
        note="No Lyapunov solver in JAX or PyTorch: jax.grad and PyTorch differentiate the scaled sign "
             "iteration unrolled for the K steps lagrad's factor needed; custom_vjp reuses its inverses "
             "(lagrad's algorithm, written by hand with a static K). PyTensor: solve_continuous_lyapunov.")


def dlyap_case():
    return Case(
        "dlyap", "dlyap: sum(W ⊙ X), A X Aᵀ − X + Q = 0, gradient w.r.t. A and Q", DLYAP_LA, "dlyap_loss",
        ["A", "Q"], [32, 64, 128, 256, 512], [6, 10], dlyap_inputs,
        {"jax.grad": lambda a: (lambda K: lambda A, Q, W: jnp.sum(W * doubling_dlyap(A, Q, K)))(dlyap_steps(a[0])),
         "JAX custom_vjp": lambda a: (lambda L: lambda A, Q, W: jnp.sum(W * L(A, Q)))(dlyap_custom(dlyap_steps(a[0]))),
         "PyTorch": lambda a: (lambda K: _torch(lambda t, A, Q, W: (W * doubling_dlyap(A, Q, K)).sum()))(
             dlyap_steps(a[0])),
         "PyTensor": lambda a: _pt_dlyap, "PyTensor JAX": lambda a: _pt_dlyap},
        params=["A", "Q", "W"],
        note="jax.grad / PyTorch: the doubling iteration for lagrad's K steps, differentiated through; "
             "custom_vjp reuses the stored powers; PyTensor: solve_discrete_lyapunov (default method).")


# ---- Kalman negative log-likelihood -------------------------------------------------------------------
KALMAN_T = 100


def kalman_la() -> str:
    import pathlib
    return (pathlib.Path(__file__).resolve().parents[1] / "examples" / "kalman" / "kalman.la").read_text()


def kalman_inputs_T(T):
    def make(n):
        m = max(2, n // 2)
        rng = np.random.default_rng(n + 13)
        F = randn(rng, n, n) / np.sqrt(n) - 1.5 * np.eye(n)
        G = 0.5 * randn(rng, n, n) / np.sqrt(n)
        H = randn(rng, m, n) / np.sqrt(n)
        R = 0.1 * np.eye(m) + 0.01 * np.ones((m, m))
        return (F, G, H, R, randn(rng, T, m), 0.1)
    return make


def kalman_jnp(expm, lyap):
    def nll(F, G, H, R, Y, dt):
        T, m = Y.shape
        A = expm(dt * F)
        Pinf = lyap(F, G @ G.T)
        Qd = Pinf - A @ Pinf @ A.T

        def step(carry, y):
            x, P = carry
            v = y - H @ x
            S = H @ P @ H.T + R
            c = jsl.cho_factor(S, lower=True)
            K = jsl.cho_solve(c, H @ P).T
            nll = 0.5 * (2 * jnp.sum(jnp.log(jnp.diagonal(c[0]))) + v @ jsl.cho_solve(c, v))
            return (A @ (x + K @ v), A @ (P - K @ S @ K.T) @ A.T + Qd), nll
        _, nlls = jax.lax.scan(step, (jnp.zeros(F.shape[0], F.dtype), Pinf), Y)
        return jnp.sum(nlls) + 0.5 * T * m * math.log(2 * math.pi)
    return nll


def kalman_torch(K):
    def nll(t, F, G, H, R, Y, dt):
        T, m = Y.shape
        A = t.linalg.matrix_exp(dt * F)
        Pinf = sign_lyap(F, G @ G.T, K, xp=t)
        Qd = Pinf - A @ Pinf @ A.T
        x, P, total = t.zeros(F.shape[0], dtype=F.dtype), Pinf, 0.0
        for i in range(T):
            v = Y[i] - H @ x
            S = H @ P @ H.T + R
            L = t.linalg.cholesky(S)
            K_ = t.cholesky_solve(H @ P, L).T
            total = total + 0.5 * (2 * t.log(t.diagonal(L)).sum() + v @ t.cholesky_solve(v[:, None], L)[:, 0])
            x, P = A @ (x + K_ @ v), A @ (P - K_ @ S @ K_.T) @ A.T + Qd
        return total + 0.5 * T * m * math.log(2 * math.pi)
    return _torch(nll)


def kalman_pt(F, G, H, R, Y, dt):
    """The filter in PyTensor as a `scan` over the observations (an unrolled graph of T = 100 steps
    is out of reach: compiling its gradient took 98 s at T = 5)."""
    import pytensor.tensor as pt
    from pytensor import scan
    from pytensor.tensor.linalg import cholesky, expm, solve, solve_continuous_lyapunov
    A = expm(dt * F)
    Pinf = solve_continuous_lyapunov(F, -(G @ G.T))
    Qd = Pinf - A @ Pinf @ A.T

    def step(y, x, P):
        v = y - H @ x
        S = H @ P @ H.T + R
        K_ = solve(S, H @ P, assume_a="pos").T
        nll = 0.5 * (2 * pt.log(pt.diagonal(cholesky(S))).sum() + v @ solve(S, v, assume_a="pos"))
        return A @ (x + K_ @ v), A @ (P - K_ @ S @ K_.T) @ A.T + Qd, nll
    nlls = scan(step, sequences=[Y], outputs_info=[pt.zeros((F.shape[0],), dtype="float64"), Pinf, None],
                return_updates=False)[2]
    return nlls.sum() + 0.5 * Y.shape[0] * Y.shape[1] * math.log(2 * math.pi)


def kalman_case(T=KALMAN_T, quick=False):
    T = 5 if quick else T
    return Case(
        "kalman", f"Kalman filter negative log-likelihood (examples/kalman/kalman.la), T = {T}, m = n/2, "
        "gradient w.r.t. F, G, H", kalman_la(), "kalman_nll", ["F", "G", "H"], [8, 16, 32, 64], [4],
        kalman_inputs_T(T),
        {"jax.grad": lambda a: kalman_jnp(jsl.expm, (lambda K: lambda F, Q: sign_lyap(F, Q, K))(lyap_steps(a[0]))),
         "JAX custom_vjp": lambda a: kalman_jnp(expm_custom, lyap_custom(lyap_steps(a[0]))),
         "PyTorch": lambda a: kalman_torch(lyap_steps(a[0])),
         "PyTensor": lambda a: kalman_pt, "PyTensor JAX": lambda a: kalman_pt},
        fixed_dims=lambda n: {"T": T}, params=["F", "G", "H", "R", "Y", "dt"],
        note="lagrad unrolls the `for` loop (T steps) before compiling; jax.grad / custom_vjp run the filter "
             "as a `lax.scan` (what a JAX user writes; one step compiled), with Cholesky solves; the "
             "custom_vjp pipeline swaps in the custom_vjp expm and lyap above. PyTorch unrolls the loop in "
             "Python; PyTensor runs it as a `scan` (its expm, solve_continuous_lyapunov, Cholesky and solves). "
             "PyTorch's lyap is the fixed-K sign iteration.")


# ---- BLR matvec ------------------------------------------------------------------------------
BLR_LA = """
model blr_loss(D: f64[p, b, b], U: f64[p, p, b, r], V: f64[p, p, b, r], x: f64[p*b], w: f64[p*b]) -> f64 {
    return sum(w * blr_apply(D, U, V, x))
}
model dense_loss(A: f64[n, n], x: f64[n], w: f64[n]) -> f64 {
    return sum(w * (A @ x))
}
"""
BLR_BLOCK, BLR_RANK = 128, 4


def blr_inputs_cfg(block, rank):
    def make(n):
        p = n // block
        rng = np.random.default_rng(n + 17)
        return (randn(rng, p, block, block) / np.sqrt(block), randn(rng, p, p, block, rank) / np.sqrt(n),
                randn(rng, p, p, block, rank) / np.sqrt(n), randn(rng, n), randn(rng, n))
    return make


def _blr_generic(einsum, eye, D, U, V, x, w):
    p, b = D.shape[0], D.shape[1]
    X = x.reshape(p, b)
    t = einsum("ijcr,jc->ijr", V, X) * (1 - eye(p))[:, :, None]
    y = einsum("ibc,ic->ib", D, X) + einsum("ijar,ijr->ia", U, t)
    return (w * y.reshape(-1)).sum()


def _blr_pt(D, U, V, x, w):
    import pytensor.tensor as pt
    p, b = D.shape[0], D.shape[1]
    X = x.reshape((p, b))
    t = pt.einsum("ijcr,jc->ijr", V, X) * (1 - pt.eye(p))[:, :, None]
    y = pt.einsum("ibc,ic->ib", D, X) + pt.einsum("ijar,ijr->ia", U, t)
    return (w * y.reshape((-1,))).sum()


def blr_dense_after(n, args):
    """The dense contenders, built and timed only after the BLR ones (2 GB at n = 16384)."""
    import lagrad
    from lagrad.stdlib.blr import blr_dense_impl
    D, U, V, x, w = (jnp.asarray(a) for a in args)
    A = jax.jit(blr_dense_impl)(D, U, V)
    mod = lagrad.loads(BLR_LA, name="bench_blr_dense.la")
    g = mod.dense_loss.grad(["A", "x"])
    return [("dense forward (lagrad, A = dense(M))", lambda: mod.dense_loss(A, x, w)),
            ("dense gradient A, x (lagrad)", lambda: g(A, x, w))]


def blr_case(block=BLR_BLOCK, rank=BLR_RANK, quick=False):
    if quick:
        block, rank = 4, 2
    return Case(
        "blr", f"BLR matvec: sum(w ⊙ M x), M = BLR(D, U, V), block {block}, rank {rank}, gradient w.r.t. D, U, V, x",
        BLR_LA, "blr_loss", ["D", "U", "V", "x"], [1024, 2048, 4096, 8192, 16384], [16, 32],
        blr_inputs_cfg(block, rank),
        {"jax.grad": lambda a: lambda *z: _blr_generic(jnp.einsum, jnp.eye, *z),
         "JAX custom_vjp": "the einsum loss is linear in each factor: nothing for a custom rule to save",
         "PyTorch": lambda a: _torch(lambda t, *z: _blr_generic(
             t.einsum, lambda p: t.eye(p, dtype=t.float64), *z)),
         "PyTensor": lambda a: _blr_pt, "PyTensor JAX": lambda a: _blr_pt},
        params=["D", "U", "V", "x", "w"], after=blr_dense_after,
        note="Peers are timed first; the dense contenders (A = dense(M), n² doubles) are allocated and "
             "timed afterwards, in their own interleaved rounds.")
