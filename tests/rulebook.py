"""The rule table's vocabulary, shared by ``test_rules.py`` and the row modules ``rows_*.py``.

A primitive family adds its rows in its own ``tests/rows_<family>.py`` (a list ``ROWS``), and may
register input domains (``DOMAINS[name] = sampler(rng, shape) -> ndarray``) and factorization
kinds (``FACTORS[kind] = (domain of the matrix, factorize(matrix) -> value)``); ``test_rules.py``
collects them all into the one table."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

FD_TOL = 1e-6       # relative error of the Fréchet rule against central differences

S, V, V3, M, R, W = (), (4,), (3,), (4, 4), (4, 3), (2, 3)


@dataclass
class Row:
    prim: str
    shapes: tuple                       # per input: a shape, or ("lu" | "chol", n) for a factor
    params: dict = field(default_factory=dict)
    domains: tuple = ()                 # per input (default "randn"); see `sample`
    sym: tuple = ()                     # inputs whose directions must be symmetric
    ref: Optional[Callable] = None      # the same function in jax.numpy (default: the impl)
    fd_tol: float = FD_TOL              # None: the derivative is zero by fiat (stop_gradient)
    tag: str = ""

    @property
    def id(self):
        return self.prim + (f"-{self.tag}" if self.tag else "")

    def domain(self, i):
        return self.domains[i] if i < len(self.domains) and self.domains[i] else "randn"


def rows_for(prim, *shape_sets, **kw):
    return [Row(prim, s, tag="x".join(_fmt(t) for t in s), **kw) for s in shape_sets]


def _fmt(shape):
    if shape and isinstance(shape[0], str):
        return shape[0]
    return "s" if shape == () else "_".join(map(str, shape))




def _cond(x, n):
    return x + (2 * np.sqrt(n) + 1) * np.eye(n)


def _negdet(x, n):
    return _cond(x, n) * np.r_[-1.0, np.ones(n - 1)][:, None]


# domain -> sampler(rng, shape); each starts from standard normal draws
DOMAINS = {
    "randn": lambda rng, shape: rng.standard_normal(shape),
    "positive": lambda rng, shape: np.exp(0.5 * rng.standard_normal(shape)),
    "away0": lambda rng, shape: (lambda x: np.sign(x) * (0.2 + np.abs(x)))(rng.standard_normal(shape)),
    "wellcond": lambda rng, shape: _cond(rng.standard_normal(shape), shape[0]),
    "negdet": lambda rng, shape: _negdet(rng.standard_normal(shape), shape[0]),
    # rows reversed: partial pivoting must swap (a diagonally dominant matrix needs none)
    "pivoting": lambda rng, shape: _cond(rng.standard_normal(shape), shape[0])[::-1],
    "sym": lambda rng, shape: (lambda x: _cond((x + x.T) / 2, shape[0]))(rng.standard_normal(shape)),
    "spd": lambda rng, shape: (lambda x: x @ x.T / shape[0] + np.eye(shape[0]))(rng.standard_normal(shape)),
}

# factorization kind -> (domain of the factorized matrix, factorize)
FACTORS = {
    "lu": ("wellcond", jax.lax.linalg.lu),            # (LU, pivots, permutation), as lu_factor keeps it
    "chol": ("spd", jnp.linalg.cholesky),
}
