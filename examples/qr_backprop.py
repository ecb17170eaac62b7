"""Reproduces the classic test of a QR pullback: the gradients of sum(Q) and of sum(R) for
Q, R = qr(A), square, tall and wide A, against central finite differences of every entry.

qr_backprop.la defines the six models (sum of Q or of R, for each shape); lagrad derives their
gradients by transposing qr's Fréchet rule — no reverse rule is written by hand. This script
checks each gradient against a central difference in every entry of A (h = 1e-6) and against
``jax.grad`` of the same function written with ``jnp.linalg.qr`` (signs fixed so diag(R) > 0),
prints a table of relative errors and the derived adjoint of one model.

Run:  python examples/qr_backprop.py        exit status 1 if a relative error exceeds 1e-6.
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.append(str(pathlib.Path(__file__).resolve().parents[1]))   # lagrad from this checkout if not installed
import lagrad  # noqa: E402

SOURCE = pathlib.Path(__file__).with_name("qr_backprop.la")
TOL = 1e-6          # relative error allowed against central differences (h = 1e-6)
H = 1e-6            # central-difference step
SHAPES = {"square": (5, 5), "tall": (8, 5), "wide": (5, 8)}


def load() -> lagrad.Module:
    """The six models, named by the file name so printed programs say `qr_backprop.la:LINE`."""
    return lagrad.loads(SOURCE.read_text(encoding="utf-8"), name=SOURCE.name)


def matrix(shape, seed: int = 0) -> np.ndarray:
    """randn + c·I: full rank and well conditioned (for a wide A, its leading square block too)."""
    m, n = shape
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) + (2 * np.sqrt(min(m, n)) + 1) * np.eye(m, n)


def split(case: str, A: np.ndarray) -> tuple:
    """The model's arguments: A itself (square), or the blocks X, Y of A = vcat(X, Y) / hcat(X, Y)."""
    m, n = A.shape
    if case == "square":
        return (A,)
    return (A[:n], A[n:]) if case == "tall" else (A[:, :m], A[:, m:])


def join(case: str, parts) -> np.ndarray:
    """The gradient with respect to A from the gradients with respect to the model's arguments."""
    parts = [np.asarray(p) for p in (parts if isinstance(parts, tuple) else (parts,))]
    if case == "square":
        return parts[0]
    return np.vstack(parts) if case == "tall" else np.hstack(parts)


def lagrad_gradient(mod, which: str, case: str, A: np.ndarray) -> np.ndarray:
    return join(case, mod[f"{which}_{case}"].grad()(*split(case, A)))


def central_difference(mod, which: str, case: str, A: np.ndarray, h: float = H) -> np.ndarray:
    """(f(A + h Eᵢⱼ) − f(A − h Eᵢⱼ)) / 2h for every entry (i, j), f the model itself."""
    f = mod[f"{which}_{case}"]
    G = np.zeros_like(A)
    for idx in np.ndindex(*A.shape):
        E = np.zeros_like(A)
        E[idx] = h
        G[idx] = (float(f(*split(case, A + E))) - float(f(*split(case, A - E)))) / (2 * h)
    return G


def jax_reference(which: str):
    """sum(Q) or sum(R) in jax.numpy, JAX's QR with the signs of diag(R) made positive."""
    import jax.numpy as jnp

    def f(A):
        Q, R = jnp.linalg.qr(A, mode="reduced")
        d = jnp.sign(jnp.diagonal(R))
        return jnp.sum(Q * d[None, :]) if which == "q" else jnp.sum(R * d[:, None])
    return f


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def main() -> int:
    import jax

    mod = load()
    print("Gradients of sum(Q) and sum(R), Q, R = qr(A), by lagrad's derived adjoint (f.grad), "
          f"against central differences in every entry (h = {H:g}) and jax.grad:\n")
    print(f"  {'loss':<8} {'shape':<7} {'A':>6}   {'rel. err vs central diff.':>26}   {'rel. err vs jax.grad':>20}")
    ok = True
    for case, shape in SHAPES.items():
        A = matrix(shape, seed=len(case))
        for which in ("q", "r"):
            g = lagrad_gradient(mod, which, case, A)
            e_fd = rel_err(g, central_difference(mod, which, case, A))
            e_jax = rel_err(g, jax.grad(jax_reference(which))(A))
            ok = ok and e_fd <= TOL and e_jax <= TOL
            flag = "" if e_fd <= TOL and e_jax <= TOL else "   ✗"
            print(f"  sum({which.upper()})   {case:<7} {shape[0]}×{shape[1]:<4}   {e_fd:>26.1e}   {e_jax:>20.1e}{flag}")

    print("\nThe derived adjoint program of sum(Q), tall A (M = R R̄ᵀ − Q̄ᵀQ, Ā = (Q̄ + Q copyltu(M)) R⁻ᵀ):")
    print(mod.q_tall.adjoint())
    print(f"\n{'OK' if ok else 'MISMATCH'}: every gradient {'agrees' if ok else 'does not agree'} with "
          f"central differences and jax.grad to {TOL:g} relative")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
