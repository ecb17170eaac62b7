"""Dense cases of the side-by-side benchmark: frechet_inverse, the implicit solve (written with
solve and with inv), qr (tall, wide) and expm. Each case gives the lagrad model and, per peer,
the same loss: jax.numpy (for jax.grad), hand-written JAX with jax.custom_vjp (what a JAX expert
would write), PyTorch, PyTensor (a graph builder, run in its default mode and in mode="JAX")."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np


@dataclass
class Case:
    name: str
    title: str
    la: str
    model: str
    wrt: list                      # argument names differentiated (lagrad) = indices for the others
    sizes: list
    quick: list
    inputs: Callable               # n -> tuple of numpy arrays / floats, in the model's order
    impls: dict                    # peer -> factory(args) -> loss, or a str saying why not
    fixed_dims: Callable | None = None
    max_n: dict = field(default_factory=dict)     # peer -> largest n to run it at
    note: str = ""
    params: list = field(default_factory=list)    # the model's argument names, in order
    after: Callable | None = None  # (n, args) -> extra contenders, timed after the peers

    def wrt_idx(self):
        return [self.params.index(w) for w in self.wrt]


def randn(rng, *shape):
    return rng.standard_normal(shape)


# ---- frechet_inverse -----------------------------------------------------------------------
FRECHET_LA = """model frechet_inverse(x: f64, A: f64[n, n], B: f64[n, n], C: f64[n, n]) -> f64 {
    M = A + x * B
    return (C @ inv(M))[-1, -1]
}
"""


def frechet_inputs(n):
    rng = np.random.default_rng(n)
    return (2.3, randn(rng, n, n) + n * np.eye(n), randn(rng, n, n), randn(rng, n, n))


@jax.custom_vjp
def frechet_custom(x, A, B, C):
    M = A + x * B
    return C[-1] @ jnp.linalg.solve(M, jnp.eye(M.shape[0], dtype=M.dtype)[:, -1])


def _frechet_fwd(x, A, B, C):
    M = A + x * B
    lu = jsl.lu_factor(M)
    u = jsl.lu_solve(lu, jnp.eye(M.shape[0], dtype=M.dtype)[:, -1])        # M⁻¹ e_n
    return C[-1] @ u, (lu, u, x, B, C)


def _frechet_bwd(res, g):
    lu, u, x, B, C = res
    w = jsl.lu_solve(lu, C[-1], trans=1)                                     # M⁻ᵀ c
    Mbar = -g * jnp.outer(w, u)                                              # ∂(cᵀM⁻¹e)/∂M = −M⁻ᵀc (M⁻¹e)ᵀ
    Cbar = jnp.zeros_like(C).at[-1].set(g * u)
    return jnp.sum(Mbar * B), Mbar, x * Mbar, Cbar


frechet_custom.defvjp(_frechet_fwd, _frechet_bwd)


def frechet_case():
    def pt_loss(x, A, B, C):
        from pytensor.tensor.linalg import matrix_inverse
        return (C @ matrix_inverse(A + x * B))[-1, -1]
    return Case(
        "frechet_inverse", "frechet_inverse: (C (A + xB)⁻¹)[n, n], gradient w.r.t. x", FRECHET_LA,
        "frechet_inverse", ["x"], [40], [6], frechet_inputs,
        {"jax.grad": lambda a: lambda x, A, B, C: (C @ jnp.linalg.inv(A + x * B))[-1, -1],
         "JAX custom_vjp": lambda a: frechet_custom,
         "PyTorch": lambda a: _torch(lambda t, x, A, B, C: (C @ t.linalg.inv(A + x * B))[-1, -1]),
         "PyTensor": lambda a: pt_loss, "PyTensor JAX": lambda a: pt_loss},
        params=["x", "A", "B", "C"],
        note="The custom_vjp version factors M = A + xB once (LU) and solves with it forward and transposed.")


def _torch(fn):
    """A loss written as fn(torch, *args) -> a loss of *args."""
    from .peers import torch_mod
    t = torch_mod()
    return lambda *args: fn(t, *args)


# ---- implicit solve, written with solve and with inv ---------------------------------------------
SOLVE_LA = """model implicit_solve(theta: f64[n, n], b: f64[n]) -> f64 {
    K = 2 * theta
    xhat = solve(K, b)
    return mean(xhat)
}
"""
INV_LA = """model inv_solve(theta: f64[n, n], b: f64[n]) -> f64 {
    return mean(inv(2 * theta) @ b)
}
"""


def solve_inputs(n):
    rng = np.random.default_rng(n + 7)
    return (randn(rng, n, n) + np.sqrt(n) * np.eye(n), randn(rng, n))


@jax.custom_vjp
def solve_custom(theta, b):
    return jnp.mean(jnp.linalg.solve(2 * theta, b))


def _solve_fwd(theta, b):
    lu = jsl.lu_factor(2 * theta)
    x = jsl.lu_solve(lu, b)
    return jnp.mean(x), (lu, x)


def _solve_bwd(res, g):
    lu, x = res
    lam = jsl.lu_solve(lu, jnp.full_like(x, g / x.shape[0]), trans=1)     # K⁻ᵀ ∂loss/∂x, same LU
    return -2 * jnp.outer(lam, x), lam                                      # θ̄ = −2 λ xᵀ, b̄ = λ


solve_custom.defvjp(_solve_fwd, _solve_bwd)

SOLVE_SIZES = [32, 64, 128, 256, 512, 1024, 2048]


def solve_case():
    def pt_solve(theta, b):
        from pytensor.tensor import linalg as slinalg
        return slinalg.solve(2 * theta, b).mean()
    return Case(
        "solve", "implicit solve: mean(solve(2θ, b)), gradient w.r.t. θ and b", SOLVE_LA, "implicit_solve",
        ["theta", "b"], SOLVE_SIZES, [8, 16], solve_inputs,
        {"jax.grad": lambda a: lambda t, b: jnp.mean(jnp.linalg.solve(2 * t, b)),
         "JAX custom_vjp": lambda a: solve_custom,
         "PyTorch": lambda a: _torch(lambda t, th, b: t.linalg.solve(2 * th, b).mean()),
         "PyTensor": lambda a: pt_solve, "PyTensor JAX": lambda a: pt_solve},
        params=["theta", "b"],
        note="custom_vjp: one LU of 2θ, x = LU solve, λ = the transposed LU solve of 1/n, θ̄ = −2λxᵀ.")


def inv_case():
    def pt_inv(theta, b):
        from pytensor.tensor.linalg import matrix_inverse
        return (matrix_inverse(2 * theta) @ b).mean()
    return Case(
        "inv", "the same written with inv: mean(inv(2θ) @ b)", INV_LA, "inv_solve", ["theta", "b"],
        SOLVE_SIZES, [8, 16], solve_inputs,
        {"jax.grad": lambda a: lambda t, b: jnp.mean(jnp.linalg.inv(2 * t) @ b),
         "JAX custom_vjp": lambda a: solve_custom,
         "PyTorch": lambda a: _torch(lambda t, th, b: (t.linalg.inv(2 * th) @ b).mean()),
         "PyTensor": lambda a: pt_inv, "PyTensor JAX": lambda a: pt_inv},
        params=["theta", "b"],
        note="jax.grad, PyTorch and PyTensor differentiate the inv as written (the graph an inv-writing "
             "user gets); the custom_vjp expert rewrites it as the solve (the same function as the solve case); "
             "lagrad rewrites inv(K) @ b to a solve itself.")


# ---- qr, tall and wide -------------------------------------------------------------------------
from .bench_qr import QR_LA  # noqa: E402  (square, tall and wide models: the same text)


def qr_inputs(shape):
    def make(n):
        m, k = shape(n)
        rng = np.random.default_rng(n + m)
        r = min(m, k)
        A = randn(rng, m, k) + (2 * np.sqrt(r) + 1) * np.eye(m, k)
        return (A, randn(rng, m, r), randn(rng, r, k))
    return make


def _qr_pos(A):
    Q, R = jnp.linalg.qr(A, mode="reduced")
    d = jnp.sign(jnp.diagonal(R))
    return Q * d[None, :], R * d[:, None]


def _copyltu(M):
    return jnp.tril(M) + jnp.tril(M, -1).T


def _qr_bwd_tall(Q, R, Qb, Rb):
    """Ā = (Q̄ + Q copyltu(M)) R⁻ᵀ, M = R R̄ᵀ − Q̄ᵀ Q (m ≥ n; Walter & Lehmann 2018, Liao et al. 2019)."""
    M = R @ Rb.T - Qb.T @ Q
    B = Qb + Q @ _copyltu(M)
    return jsl.solve_triangular(R, B.T, lower=False).T


@jax.custom_vjp
def qr_custom(A):
    return _qr_pos(A)


def _qr_fwd(A):
    Q, R = _qr_pos(A)
    return (Q, R), (A, Q, R)


def _qr_bwd(res, cts):
    A, Q, R = res
    Qb, Rb = cts
    m, n = A.shape
    if m >= n:
        return (_qr_bwd_tall(Q, R, Qb, Rb),)
    # wide: A = [X | Y], R = [U | V], Q U = X, V = Qᵀ Y (Liao et al. 2019)
    Y, U, Ub, Vb = A[:, m:], R[:, :m], Rb[:, :m], Rb[:, m:]
    Xb = _qr_bwd_tall(Q, U, Qb + Y @ Vb.T, Ub)
    return (jnp.concatenate([Xb, Q @ Vb], axis=1),)


qr_custom.defvjp(_qr_fwd, _qr_bwd)


def _qr_loss_jnp(qr):
    def loss(A, W1, W2):
        Q, R = qr(A)
        return jnp.sum(W1 * Q) + jnp.sum(W2 * R)
    return loss


def _qr_torch(t, A, W1, W2):
    Q, R = t.linalg.qr(A, mode="reduced")
    d = t.sign(t.diagonal(R))
    return (W1 * (Q * d[None, :])).sum() + (W2 * (R * d[:, None])).sum()


def _qr_pt(A, W1, W2):
    import pytensor.tensor as pt
    from pytensor.tensor.linalg.decomposition.qr import qr   # (linalg.qr can be shadowed by this submodule)
    Q, R = qr(A, mode="economic")
    d = pt.sign(pt.diagonal(R))
    return (W1 * (Q * d[None, :])).sum() + (W2 * (R * d[:, None])).sum()


def qr_case(kind):
    shape = (lambda n: (2 * n, n)) if kind == "tall" else (lambda n: (n, 2 * n))
    return Case(
        f"qr_{kind}", f"qr, {kind} A ({'2n × n' if kind == 'tall' else 'n × 2n'}): sum(W1 ⊙ Q) + sum(W2 ⊙ R), "
        "gradient w.r.t. A", QR_LA, kind, ["A"], [64, 128, 256, 512], [6, 10], qr_inputs(shape),
        {"jax.grad": lambda a: _qr_loss_jnp(_qr_pos), "JAX custom_vjp": lambda a: _qr_loss_jnp(qr_custom),
         "PyTorch": lambda a: _torch(_qr_torch), "PyTensor": lambda a: _qr_pt, "PyTensor JAX": lambda a: _qr_pt},
        params=["A", "W1", "W2"],
        note="Every peer makes diag(R) > 0 (sign fix). custom_vjp: the closed-form QR pullback "
             "(copyltu formula; wide A through its leading square block). PyTensor 3.0.7 cannot differentiate qr: "
             "its QR pullback (pytensor/tensor/linalg/decomposition/qr.py, `ifelse(...)`) calls a name shadowed "
             "by a module and raises TypeError: 'module' object is not callable, in both modes.")


# ---- expm --------------------------------------------------------------------------------------
EXPM_LA = """model expm_loss(A: f64[n, n], W: f64[n, n]) -> f64 {
    return sum(W * expm(A))
}
"""


def expm_inputs(n):
    rng = np.random.default_rng(n + 11)
    return (randn(rng, n, n) / np.sqrt(n), randn(rng, n, n))


@jax.custom_vjp
def expm_custom(A):
    return jsl.expm(A)


def _expm_fwd(A):
    return jsl.expm(A), A


def _expm_bwd(A, g):
    return (jsl.expm_frechet(A.T, g, compute_expm=False),)                 # Ā = L(Aᵀ, Ḡ)


expm_custom.defvjp(_expm_fwd, _expm_bwd)


def expm_case():
    def pt_expm(A, W):
        from pytensor.tensor.linalg import expm
        return (W * expm(A)).sum()
    return Case(
        "expm", "expm: sum(W ⊙ e^A), A = randn/√n, gradient w.r.t. A", EXPM_LA, "expm_loss", ["A"],
        [32, 64, 128, 256, 512], [6, 10], expm_inputs,
        {"jax.grad": lambda a: lambda A, W: jnp.sum(W * jsl.expm(A)),
         "JAX custom_vjp": lambda a: lambda A, W: jnp.sum(W * expm_custom(A)),
         "PyTorch": lambda a: _torch(lambda t, A, W: (W * t.linalg.matrix_exp(A)).sum()),
         "PyTensor": lambda a: pt_expm, "PyTensor JAX": lambda a: pt_expm},
        params=["A", "W"],
        note="custom_vjp: e^A by jax.scipy.linalg.expm, the pullback Ā = L(Aᵀ, Ḡ) by "
             "jax.scipy.linalg.expm_frechet (it recomputes its own Padé pieces).")
