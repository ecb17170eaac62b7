"""The ∇-Prox matrix-free solve: K(θ)v = 2θv with θ 32×32, loss = mean(x̂), x̂ = K(θ)⁻¹b.

Compiles examples/matrix_free_solve.la, prints the derived adjoint (one gmres with the derived
transposed operator Kᵀ — no unrolled iterations), and checks the implicit gradients w.r.t. θ
and b against the gradients of the dense solve (jax.grad of mean(solve(2θ, b))), and the
CG + Jacobi-preconditioned variant likewise. Exit status 1 if a relative error exceeds 1e-8.

    python examples/matrix_free_solve.py
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))   # run from a checkout too
import lagrad  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
N = 32


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def main() -> int:
    mod = lagrad.load(HERE / "matrix_free_solve.la")
    rng = np.random.default_rng(0)
    theta = rng.standard_normal((N, N)) / np.sqrt(N) + 2 * np.eye(N)
    b = rng.standard_normal(N)
    f = mod.matrix_free_solve
    print(f.adjoint())
    gt, gb = f.grad()(theta, b)
    rt, rb = jax.grad(lambda t, b: jnp.mean(jnp.linalg.solve(2 * t, b)), (0, 1))(theta, b)
    rows = [("gmres", "theta", rel(gt, rt)), ("gmres", "b", rel(gb, rb))]
    s = 0.5
    g2 = mod.spd_solve.grad()(theta, s, b)
    r2 = jax.grad(lambda t, s, b: jnp.mean(jnp.linalg.solve(t.T @ t + s * jnp.eye(N), b)), (0, 1, 2))(theta, s, b)
    rows += [("cg + Jacobi", name, rel(g, r)) for name, g, r in zip(("theta", "s", "b"), g2, r2)]
    print(f"\nloss = mean(x̂) = {float(f(theta, b)):.6f} (dense: {float(np.mean(np.linalg.solve(2 * theta, b))):.6f})")
    print("implicit gradient vs the dense solve's jax.grad:")
    for solver, name, e in rows:
        print(f"  {solver:<12} d loss / d {name:<6} rel. error {e:.1e}")
    ok = max(e for *_, e in rows) <= 1e-8
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
