"""The Krylov peers of ``python -m benchmarks`` that have no implicit-gradient solver: PyTorch and
PyTensor run the same algorithms as benchmarks/bench_krylov.py's unrolled JAX solvers (CG from
x₀ = 0; GMRES(r) with CGS2 Arnoldi and a small least-squares solve per cycle), for exactly the
given number of steps, and differentiate through every iteration (PyTorch: autograd over a
Python loop; PyTensor: ``pytensor.scan``, whose gradient keeps every step's state).

The PyTensor graphs take the step counts (cg: maxiter; gmres: the restart length r and the
number of cycles) as symbolic inputs, so each solver compiles once for every maxiter."""
from __future__ import annotations

import numpy as np


# ---- PyTorch ----------------------------------------------------------------------------------
def torch_cg_loss(maxiter, shift):
    """mean(x), x from `maxiter` CG steps on K = θᵀθ/n + shift·I, under autograd."""
    from .peers import torch_mod
    t = torch_mod()

    def loss(theta, b):
        n = theta.shape[0]

        def K(v):
            return theta.T @ (theta @ v) / n + shift * v
        x, r = t.zeros_like(b), b
        p, rz = b, b @ b
        for _ in range(maxiter):
            Ap = K(p)
            alpha = rz / (p @ Ap)
            x, r = x + alpha * p, r - alpha * Ap
            rz_new = r @ r
            p, rz = r + (rz_new / rz) * p, rz_new
        return x.mean()
    return loss


def torch_gmres_loss(restart, cycles):
    """mean(x), x from `cycles` GMRES(restart) cycles on K = 2θ (CGS2 Arnoldi, the small
    least-squares problem by torch.linalg.lstsq), under autograd."""
    from .peers import torch_mod
    t = torch_mod()
    m = restart

    def loss(theta, b):
        def K(v):
            return 2 * (theta @ v)
        x = t.zeros_like(b)
        for _ in range(cycles):
            r = b - K(x)
            beta = t.linalg.norm(r)
            V, cols = [r / beta], []
            for j in range(m):
                w = K(V[j])
                Vj = t.stack(V, 1)
                h = Vj.T @ w
                w = w - Vj @ h
                h2 = Vj.T @ w
                w = w - Vj @ h2
                hn = t.linalg.norm(w)
                V.append(w / hn)
                cols.append(t.cat([h + h2, hn[None], t.zeros(m - j - 1, dtype=b.dtype)]))
            e1 = t.zeros(m + 1, dtype=b.dtype)
            e1[0] = 1
            y = t.linalg.lstsq(t.stack(cols, 1), (beta * e1)[:, None]).solution[:, 0]
            x = x + t.stack(V[:m], 1) @ y
        return x.mean()
    return loss


# ---- PyTensor ---------------------------------------------------------------------------------
def _pytensor_cg(theta, b, steps, shift):
    import pytensor.tensor as pt
    from pytensor import scan
    n = theta.shape[0]

    def step(x, r, p, rz):
        Ap = theta.T @ (theta @ p) / n + shift * p
        alpha = rz / (p @ Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rz_new = r @ r
        return x, r, r + (rz_new / rz) * p, rz_new
    xs = scan(step, outputs_info=[pt.zeros_like(b), b, b, b @ b], n_steps=steps, return_updates=False)[0]
    return xs[-1].mean()


def _pytensor_gmres(theta, b, m, cycles):
    import pytensor.tensor as pt
    from pytensor import scan
    n = b.shape[0]
    rows = pt.arange(m + 1)

    def K(v):
        return 2 * (theta @ v)

    def cycle(x):
        r = b - K(x)
        beta = pt.sqrt(r @ r)
        V0 = pt.set_subtensor(pt.zeros((n, m + 1))[:, 0], r / beta)

        def arnoldi(j, V, H):
            w = K(V[:, j])
            mask = pt.le(rows, j).astype("float64")
            h = (V.T @ w) * mask
            w = w - V @ h
            h2 = (V.T @ w) * mask
            w = w - V @ h2
            hn = pt.sqrt(w @ w)
            V = pt.set_subtensor(V[:, j + 1], w / hn)
            return V, pt.set_subtensor(H[:, j], pt.set_subtensor((h + h2)[j + 1], hn))
        Vs, Hs = scan(arnoldi, sequences=[pt.arange(m)], outputs_info=[V0, pt.zeros((m + 1, m))],
                      return_updates=False)
        y = pt.linalg.pinv(Hs[-1]) @ pt.set_subtensor(pt.zeros(m + 1)[0], beta)
        return x + Vs[-1][:, :m] @ y
    xs = scan(cycle, outputs_info=[pt.zeros_like(b)], n_steps=cycles, return_updates=False)
    return xs[-1].mean()


class PyTensorKrylov:
    """Compiled PyTensor forward and gradient of mean(x) for one solver. In the default mode the
    step counts (cg: maxiter; gmres: restart, cycles) are inputs, so one compilation serves every
    maxiter; PyTensor's JAX backend needs them as constants (a symbolic count fails to trace), so
    there `steps` is fixed at construction. ``compile_s``: graph + pytensor.function (the first
    call adds Numba's or XLA's JIT)."""

    def __init__(self, solver, shift, mode=None, steps=None):
        import time
        import warnings

        import pytensor
        import pytensor.tensor as pt
        t0 = time.perf_counter()
        theta, b = pt.dmatrix("theta"), pt.dvector("b")
        if steps is None:
            self.inputs = [pt.iscalar("maxiter")] if solver == "cg" else [pt.iscalar("restart"), pt.iscalar("cycles")]
            counts = self.inputs
        else:
            self.inputs, counts = [], list(steps)
        cost = _pytensor_cg(theta, b, counts[0], shift) if solver == "cg" else _pytensor_gmres(theta, b, *counts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grads = pytensor.grad(cost, [theta, b])
            self.fwd = pytensor.function([theta, b, *self.inputs], cost, mode=mode)
            self.grad = pytensor.function([theta, b, *self.inputs], grads, mode=mode)
        self.compile_s = time.perf_counter() - t0

    def bind(self, theta, b, steps):
        """(fwd(), grad()) on fixed inputs."""
        th, bb = np.asarray(theta, dtype=np.float64), np.asarray(b, dtype=np.float64)
        st = [np.int32(s) for s in steps] if self.inputs else []
        return (lambda: self.fwd(th, bb, *st)), (lambda: self.grad(th, bb, *st))
