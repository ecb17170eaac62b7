"""Rule-table rows of `expm`, `expm_frechet` and their factor primitives (lagrad/stdlib/expm.py).

References are JAX's own: `jax.scipy.linalg.expm` and `expm_frechet` (which JAX differentiates,
so the `grad` check compares lagrad's derived adjoint with jax.grad). Inputs come at three
norms so the rows exercise no squaring, a few, and more than the factor keeps (MAX_SQUARES)."""
from __future__ import annotations

import jax.scipy.linalg as jsl

from lagrad.stdlib.expm import expm_factor_impl
from rulebook import DOMAINS, FACTORS, M, Row

DOMAINS.setdefault("small", lambda rng, shape: 0.1 * rng.standard_normal(shape))
DOMAINS.setdefault("big", lambda rng, shape: 30.0 * rng.standard_normal(shape) / shape[0])
# skew-symmetric plus a little: e^A stays O(1) while ‖A‖₁ ≈ 3000 needs ≈ 10 squarings
DOMAINS.setdefault("huge", lambda rng, shape: (lambda X: 3000.0 * (X - X.T) / shape[0] + 0.1 * X)(
    rng.standard_normal(shape)))
FACTORS.setdefault("expm", ("randn", expm_factor_impl))


def _frechet(A, E):
    return jsl.expm_frechet(A, E, compute_expm=False)


NORMS = ("small", "randn", "big")
ROWS = [
    *[Row("expm", (M,), domains=(d,), ref=jsl.expm, tag=d) for d in NORMS],
    Row("expm", (M,), domains=("huge",), ref=jsl.expm, tag="huge-norm"),
    *[Row("expm_frechet", (M, M), domains=(d, None), ref=_frechet, tag=d) for d in NORMS],
    Row("expm_factor", (M,), tag="value"),
    Row("expm_value", (("expm", 4),), ref=jsl.expm),
    *[Row("expm_frechet_apply", (("expm", 4), M), {"trans": t}, tag="T" if t else "N",
          ref=lambda A, E, t=t: _frechet(A.T if t else A, E)) for t in (False, True)],
]
