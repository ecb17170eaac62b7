"""Rule-table rows of `lyap`, `dlyap` and their factor primitives (lagrad/stdlib/lyap.py).

The reference is the Kronecker-vectorized equation solved densely with jax.numpy (an n² × n²
system: a test oracle only, RULES.md), which JAX differentiates, so the `grad` check compares
lagrad's derived adjoint (S = lyap(Aᵀ, Ȳ), Ā = S Xᵀ + Sᵀ X) with jax.grad; the cotangents
of the rule table are non-symmetric, which is what catches an S/Sᵀ or lyap(A, Ȳ) mistake."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from lagrad.stdlib.lyap import dlyap_apply_impl, dlyap_factor_impl, lyap_apply_impl, lyap_factor_impl
from rulebook import DOMAINS, FACTORS, M, Row


def _stable(rng, shape):
    """randn/√n − 2I: eigenvalues in the disc |λ + 2| ≲ 1."""
    n = shape[0]
    return rng.standard_normal(shape) / np.sqrt(n) - 2.0 * np.eye(n)


def _nonnormal(rng, shape):
    """A strongly non-normal stable matrix: a large strictly upper part over a negative diagonal."""
    n = shape[0]
    return 3.0 * np.triu(rng.standard_normal(shape), 1) - np.diag(rng.uniform(0.5, 1.5, n))


def _contractive(rng, shape):
    """Spectral radius 1/2."""
    A = rng.standard_normal(shape)
    return 0.5 * A / np.max(np.abs(np.linalg.eigvals(A)))


DOMAINS.setdefault("stable", _stable)
DOMAINS.setdefault("nonnormal_stable", _nonnormal)
DOMAINS.setdefault("contractive", _contractive)
FACTORS.setdefault("lyap", ("stable", lyap_factor_impl))
FACTORS.setdefault("dlyap", ("contractive", dlyap_factor_impl))


def _vec(X):
    return X.T.reshape(-1)                      # column-major: vec(A X B) = (Bᵀ ⊗ A) vec X


def _unvec(x, n):
    return x.reshape(n, n).T


def lyap_ref(A, Q):
    """A X + X Aᵀ + Q = 0 as (I ⊗ A + A ⊗ I) vec X = −vec Q."""
    n = A.shape[0]
    eye = jnp.eye(n, dtype=A.dtype)
    return _unvec(jnp.linalg.solve(jnp.kron(eye, A) + jnp.kron(A, eye), -_vec(Q)), n)


def dlyap_ref(A, Q):
    """A X Aᵀ − X + Q = 0 as (I − A ⊗ A) vec X = vec Q."""
    n = A.shape[0]
    return _unvec(jnp.linalg.solve(jnp.eye(n * n, dtype=A.dtype) - jnp.kron(A, A), _vec(Q)), n)


ROWS = [
    Row("lyap", (M, M), domains=("stable",), ref=lyap_ref, tag="4x4"),
    Row("lyap", ((6, 6), (6, 6)), domains=("nonnormal_stable",), ref=lyap_ref, tag="nonnormal-6x6"),
    Row("lyap", ((1, 1), (1, 1)), domains=("stable",), ref=lyap_ref, tag="1x1"),
    Row("dlyap", (M, M), domains=("contractive",), ref=dlyap_ref, tag="4x4"),
    Row("dlyap", ((6, 6), (6, 6)), domains=("contractive",), ref=dlyap_ref, tag="6x6"),
    Row("lyap_factor", (M,), domains=("stable",), tag="value"),
    Row("dlyap_factor", (M,), domains=("contractive",), tag="value"),
    # the fused factor-and-solve (the `fuse_factor_solves` pass): the same factor, and the same X
    # as the apply of it, bit for bit up to rounding
    Row("lyap_factor_solve", (M, M), domains=("stable",), tag="value",
        ref=lambda A, Q: (lyap_factor_impl(A), lyap_apply_impl(lyap_factor_impl(A), Q))),
    Row("lyap_factor_solve", ((6, 6), (6, 6)), domains=("nonnormal_stable",), tag="nonnormal-6x6",
        ref=lambda A, Q: (lyap_factor_impl(A), lyap_ref(A, Q))),
    Row("dlyap_factor_solve", (M, M), domains=("contractive",), tag="value",
        ref=lambda A, Q: (dlyap_factor_impl(A), dlyap_apply_impl(dlyap_factor_impl(A), Q))),
    Row("dlyap_factor_solve", ((6, 6), (6, 6)), domains=("contractive",), tag="6x6",
        ref=lambda A, Q: (dlyap_factor_impl(A), dlyap_ref(A, Q))),
    # several solves in the factor's loop, one transposed, without the factor (factor=false: the
    # adjoint of a loss linear in X, whose seed does not depend on X); and a transposed one with it
    *[Row(f"{k}_factor_solve", (M, M, M), {"factor": False, "trans": (False, True)},
          domains=(dom,), tag="two-NT", ref=lambda A, Q, W, r=r: (r(A, Q), r(A.T, W)))
      for k, dom, r in (("lyap", "stable", lyap_ref), ("dlyap", "contractive", dlyap_ref))],
    Row("lyap_factor_solve", ((6, 6), (6, 6)), {"trans": (True,)}, domains=("nonnormal_stable",),
        tag="T-nonnormal-6x6", ref=lambda A, Q: (lyap_factor_impl(A), lyap_ref(A.T, Q))),
    Row("dlyap_factor_solve", (M, M), {"trans": (True,)}, domains=("contractive",), tag="T",
        ref=lambda A, Q: (dlyap_factor_impl(A), dlyap_ref(A.T, Q))),
    *[Row("lyap_apply", (("lyap", 4), M), {"trans": t}, tag="T" if t else "N",
          ref=lambda A, Q, t=t: lyap_ref(A.T if t else A, Q)) for t in (False, True)],
    *[Row("dlyap_apply", (("dlyap", 4), M), {"trans": t}, tag="T" if t else "N",
          ref=lambda A, Q, t=t: dlyap_ref(A.T if t else A, Q)) for t in (False, True)],
]
