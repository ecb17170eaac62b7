"""Reproduces implicit differentiation through a linear solve (implicit_solve.la).

loss(θ, b) = mean(x̂) with x̂ = K⁻¹b, K = 2θ. The adjoint is one more solve with the transpose:
λ = K⁻ᵀ(1/n), ∂loss/∂b = λ, ∂loss/∂θ = −2 λ x̂ᵀ. This script prints the adjoint program lagrad
derives (one `lu_factor`, then `lu_solve(..., trans=true)` with the same factors) and checks its
gradients against that closed form and against `jax.grad` of the jax.numpy function.

Run:  python examples/implicit_solve.py         exit status 1 on a mismatch beyond 1e-10.
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.append(str(pathlib.Path(__file__).resolve().parents[1]))   # lagrad from this checkout if not installed
import lagrad  # noqa: E402

SOURCE = pathlib.Path(__file__).with_name("implicit_solve.la")
MODEL = "implicit_solve"
TOL = 1e-10         # relative agreement demanded of the gradients


def load() -> lagrad.Function:
    """The model, named by its file name so printed programs say `implicit_solve.la:LINE`."""
    return lagrad.loads(SOURCE.read_text(encoding="utf-8"), name=SOURCE.name)[MODEL]


def inputs(n: int = 40, seed: int = 1):
    """(θ, b) with θ = randn + n·I, so K = 2θ is well conditioned."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) + n * np.eye(n), rng.standard_normal(n)


def jax_reference(theta, b):
    """The same loss in jax.numpy (what `jax.grad` differentiates for comparison)."""
    import jax.numpy as jnp
    return jnp.mean(jnp.linalg.solve(2 * theta, b))


def closed_form(theta, b):
    """(∂loss/∂θ, ∂loss/∂b) = (−2 λ x̂ᵀ, λ) with λ = K⁻ᵀ(1/n), x̂ = K⁻¹b, K = 2θ."""
    K = 2 * theta
    n = len(b)
    xhat = np.linalg.solve(K, b)
    lam = np.linalg.solve(K.T, np.full(n, 1.0 / n))
    return -2 * np.outer(lam, xhat), lam


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def main() -> int:
    import jax

    f = load()
    theta, b = inputs()
    print(f"loss(θ, b) = mean(solve(2θ, b)), n = {len(b)}")
    print("\nThe derived adjoint program:")
    print(f.adjoint())

    g_theta, g_b = f.grad()(theta, b)
    c_theta, c_b = closed_form(theta, b)
    j_theta, j_b = jax.grad(jax_reference, argnums=(0, 1))(theta, b)
    checks = [("∂/∂θ vs closed form", g_theta, c_theta), ("∂/∂b vs closed form", g_b, c_b),
              ("∂/∂θ vs jax.grad", g_theta, j_theta), ("∂/∂b vs jax.grad", g_b, j_b)]
    print("\nlagrad's gradient (f.grad()):")
    for label, mine, ref in checks:
        print(f"  {label:<22} rel. err {rel_err(mine, ref):.1e}")
    ok = all(rel_err(mine, ref) <= TOL for _, mine, ref in checks)
    print(f"\n{'OK' if ok else 'MISMATCH'}: lagrad's gradients {'match' if ok else 'do not match'} "
          f"the closed form and jax.grad to {TOL:g} relative")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
