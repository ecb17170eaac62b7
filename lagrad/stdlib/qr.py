"""QR: the reduced factorization A = Q R with diag(R) > 0, for tall, square and wide A.

``Q, R = qr(A)`` with A [m, n] gives Q [m, k] (orthonormal columns) and R [k, n] (upper
triangular or trapezoidal), k = min(m, n). The Fréchet rules are written only with linear
primitives that have transpose rules (matmul, transpose, tril, solve_triangular, index), so
the adjoint is derived by transposition, never written by hand.

* m ≥ n (Walter & Lehmann 2018, "Algorithmic differentiation of linear algebra functions with
  application in optimum experimental design"; Seeger et al. 2017, "Auto-differentiating linear
  algebra"): C = Qᵀ dA R⁻¹, Ω = tril(C, −1) − tril(C, −1)ᵀ, dQ = Q(Ω − C) + dA R⁻¹,
  dR = (C − Ω) R. Its transpose is the familiar M = R R̄ᵀ − Q̄ᵀQ, Ā = (Q̄ + Q copyltu(M)) R⁻ᵀ.
* m < n (Liao, Liu, Wang & Xiang 2019, "Differentiable programming tensor networks"): with
  A = [X | Y], R = [U | V], X = Q U square, C = Qᵀ dX U⁻¹, Ω as above, dQ = Q Ω,
  dR = Qᵀ dA − Ω R = [(C − Ω) U | dQᵀ Y + Qᵀ dY]. Needs the leading m×m block X nonsingular.

Which case applies must be known when the rule runs: symbolic dimensions are positive
integers, so ``f64[n + k, n]`` is tall and ``f64[n, n + k]`` wide; for ``f64[m, n]`` the
forward shape uses ``Min(m, n)`` and differentiation asks for a more precise type.
"""
from __future__ import annotations

import jax.numpy as jnp
import sympy

from ..compiler.primitive import Primitive, register
from ..compiler.types import TensorType, as_dim, fmt_shape
from ..errors import LaTypeError
from . import shapes


def qr_case(m, n):
    """"tall" when m ≥ n (square included), "wide" when m < n, None when the sign of m − n
    is unknown (two unrelated dimension names)."""
    diff = sympy.expand(as_dim(m) - as_dim(n))
    if diff.is_nonnegative:
        return "tall"
    if diff.is_negative:
        return "wide"
    return None


def _qr_shape(types, params):
    t = shapes.matrix(types[0], "qr's argument")
    m, n = t.shape
    case = qr_case(m, n)
    k = n if case == "tall" else m if case == "wide" else sympy.Min(m, n)
    dt = shapes._dt(t)
    return TensorType(dt, (m, k)), TensorType(dt, (k, n))


def _qr_impl(A):
    """JAX's Householder QR with the signs normalized: D = sign(diag R), Q D and D R."""
    Q, R = jnp.linalg.qr(A, mode="reduced")
    d = jnp.sign(jnp.diagonal(R))
    d = jnp.where(d == 0, 1, d).astype(R.dtype)          # a zero pivot (rank deficient) keeps its row
    return Q * d[None, :], R * d[:, None]


def _skew_of_lower(b, C):
    """Ω = tril(C, −1) − tril(C, −1)ᵀ: the skew-symmetric QᵀdQ that keeps dR upper triangular."""
    L = b.tril(C, k=-1)
    return L - L.T


def _right_solve_upper(b, B, U):
    """B U⁻¹ for upper-triangular U, as (U⁻ᵀ Bᵀ)ᵀ: a triangular solve, never an inverse."""
    return b.solve_triangular(U.T, B.T, lower=True, unit=False).T


def _tall_frechet(b, Q, R, dA):
    """m ≥ n: C = Qᵀ dA R⁻¹, dQ = Q(Ω − C) + dA R⁻¹, dR = (C − Ω) R."""
    dA_Rinv = _right_solve_upper(b, dA, R)
    C = Q.T @ dA_Rinv
    Om = _skew_of_lower(b, C)
    return [Q @ (Om - C) + dA_Rinv, (C - Om) @ R]


def _wide_frechet(b, A, Q, R, dA, m, n):
    """m < n: A = [X | Y], R = [U | V]; C = Qᵀ dX U⁻¹, dQ = Q Ω, dR = Qᵀ dA − Ω R, computed by
    blocks: dR = [(C − Ω) U | dQᵀ Y + Qᵀ dY] (the left block reuses Qᵀ dX = C U, the right one
    differentiates V = Qᵀ Y; this saves two m×m products of the unsplit form, in the rule and in
    its transpose, and matches the cost of JAX's own rule)."""
    zero = sympy.Integer(0)
    lead = (("slice", zero, m), ("slice", zero, m))     # [:m, :m]
    rest = (("slice", zero, m), ("slice", m, n))        # [:m, m:n]
    U, Y = b.index(R, spec=lead), b.index(A, spec=rest)
    dX, dY = b.index(dA, spec=lead), b.index(dA, spec=rest)
    C = Q.T @ _right_solve_upper(b, dX, U)
    Om = _skew_of_lower(b, C)
    dQ = Q @ Om
    return [dQ, b.hcat((C - Om) @ U, dQ.T @ Y + Q.T @ dY)]


def _qr_frechet(b, x, dx, y, p):
    A, dA = x[0], dx[0]
    Q, R = y
    m, n = A.shape
    case = qr_case(m, n)
    if case is None:
        raise LaTypeError(
            f"differentiating qr of f64{fmt_shape(A.shape)} needs to know whether the matrix is tall "
            f"(rows ≥ columns) or wide (rows < columns), and {m} − {n} has no known sign",
            hint="write the type as f64[n + k, n] (tall), f64[n, n + k] (wide) or f64[n, n] (square); "
                 "k must also appear alone in some argument's type, e.g. A = vcat(X, Y) with "
                 "X: f64[n, n], Y: f64[k, n] is f64[n + k, n]; or fix the ratio: f64[2*n, n]",
            span=b.span, source=b.source)
    if case == "tall":
        return _tall_frechet(b, Q, R, dA)
    return _wide_frechet(b, A, Q, R, dA, as_dim(m), as_dim(n))


# qr: A = Q R, QᵀQ = I, R upper triangular with diag(R) > 0 (reduced; tall, square or wide);
# tall: dQ = Q(Ω − C) + dA R⁻¹, dR = (C − Ω) R with C = Qᵀ dA R⁻¹, Ω = tril(C,−1) − tril(C,−1)ᵀ
register(Primitive(
    "qr", _qr_impl, _qr_shape, nout=2, math="A = Q R, diag(R) > 0", domains={0: "fullrank"},
    doc="Reduced QR of any shape; differentiable where A has full rank (wide: where its leading "
        "square block is nonsingular).",
    frechet=_qr_frechet))
