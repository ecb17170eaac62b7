"""Rule-table rows of `qr` (lagrad/stdlib/qr.py): tall, square and wide inputs, plus the thin
edge cases (one column, one row). Each row runs the value, central-difference, dot-product and
jax.grad checks of test_rules.py; the reference is the primitive's own implementation (JAX's
QR with the signs of diag(R) made positive), which JAX differentiates in every shape."""
from __future__ import annotations

import numpy as np

from rulebook import DOMAINS, Row


def _fullrank(rng, shape):
    """randn + c·I (a rectangular identity): full rank and well conditioned in every shape, and
    for a wide matrix its leading square block (which the wide rule inverts) too."""
    m, n = shape
    return rng.standard_normal(shape) + (2 * np.sqrt(min(m, n)) + 1) * np.eye(m, n)


DOMAINS.setdefault("fullrank", _fullrank)

SHAPES = [("tall", (5, 3)), ("square", (4, 4)), ("wide", (3, 5)),
          ("column", (4, 1)), ("row", (1, 4)), ("wide", (2, 6))]

ROWS = [Row("qr", (s,), domains=("fullrank",), tag=f"{tag}-{s[0]}x{s[1]}") for tag, s in SHAPES]
