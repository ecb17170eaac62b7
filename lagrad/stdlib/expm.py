"""The matrix exponential ``expm(A)`` and its Fréchet derivative ``expm_frechet(A, E)``.

L(A, E) = ∫₀¹ e^{sA} E e^{(1−s)A} ds is the derivative of e^A in the direction E, and linear in
E with L(A, ·)ᵀ = L(Aᵀ, ·) (RULES.md). So the rules are:

* ``expm``: d e^A = L(A, dA) — its Fréchet rule emits ``expm_frechet(A, dA)``, and the derived
  adjoint is Ā = L(Aᵀ, Ḡ): one Fréchet evaluation, no tape.
* ``expm_frechet``: linear in E, transpose Ē = L(Aᵀ, Ȳ). Its derivative in A (for Hessians)
  comes from the block identity expm([[A, E], [0, A]]) = [[e^A, L(A, E)], [0, e^A]]: the
  direction [[dA, 0], [0, dA]] gives dL = L(A, dE) + [L(M, dM)]₁₂ with M = [[A, E], [0, A]].

Numerics (Higham 2005, "The scaling and squaring method for the matrix exponential revisited";
Al-Mohy & Higham 2009, "Computing the Fréchet derivative of the matrix exponential, with an
application to condition number estimation", Algorithm 6.4): scale A by 2⁻ˢ, take the [13/13]
Padé approximant r = (V − U)⁻¹(U + V) with U = A (A₆ W₁ + W₂), V = A₆ Z₁ + Z₂, and square s
times. s follows Al-Mohy & Higham 2009 ("A new scaling and squaring algorithm for the matrix
exponential", Algorithm 5.1): from ‖Aᵏ‖₁^(1/k) of the powers the Padé step computes anyway,
plus the ℓ term that bounds the Padé remainder, instead of ‖A‖₁ alone, which overscales a
non-normal A (more squarings, and less accuracy: for [[1, 10⁶], [0, −1]] the 1-norm rule takes 18,
this rule 10, and scipy's expm_frechet, which uses the 1-norm rule, is off by 3·10⁻⁶). JAX's expm
takes ⌊log₂(‖A‖₁/θ₁₃)⌋, often one squaring fewer than either, at a scaled norm outside the Padé-13
error bound. There is no cap on s: a large ‖A‖ costs more squarings, never a NaN (JAX's expm
returns NaN past 16 squarings).

The factorization-like value ``expm_factor(A)`` keeps what the derivative reuses: the scaled
A and its powers A₂ A₄ A₆, the Padé piece W, (V − U)⁻¹, r and its first squares r^(2ʲ), the last
square before e^A and s (``expm_value`` squares it once more; a gradient does not need it).
``expm_frechet_apply(F, E)`` then differentiates the Padé approximant with the same scaling
(12 products and one LU solve) and the squarings (L ← X L + L X, X ← X²: three products per
squaring, instead of eight for a 2n × 2n block exponential). With ``trans=true`` it applies
L(Aᵀ, ·) from the same factor, as L(Aᵀ, E) = L(A, Eᵀ)ᵀ. After differentiation a compiler pass (the
``lower`` rules below) rewrites ``expm(A)`` to ``expm_value(expm_factor(A))`` and
``expm_frechet(A or Aᵀ, ·)`` to the apply, so a model's forward pass and its adjoint share one
factor: the backward pass is products and triangular solves only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import sympy

from ..compiler.builder import expect, is_zero
from ..compiler.passes import emit_as, resolve_transpose
from ..compiler.primitive import Primitive, register
from ..compiler.types import FactorType, TensorType, dim_eq, fmt_shape, promote
from . import shapes
from .buffers import keep, slots
from .linalg import _factor, _factor_arg, _linear_in_b

# [13/13] Padé coefficients b₀ … b₁₃ and θ₁₃, the largest ‖A‖₁ it is accurate for in float64
# (Higham 2005, Table 2.3).
B13 = (64764752532480000., 32382376266240000., 7771770303897600., 1187353796428800.,
       129060195264000., 10559470521600., 670442572800., 33522128640., 1323241920., 40840800.,
       960960., 16380., 182., 1.)
THETA13 = 5.371920351148152
C27_LOG2 = 116.447004251763     # log₂ 1/|c₂₇|: the Padé-13 remainder's leading coefficient (Higham 2005 (2.6))
PRESCALE = 8                    # squarings left to the sharp rule (see _prescale)
MAX_SQUARES = 6    # squarings whose powers r^(2ʲ) the factor keeps at most (s ≤ 6 for ‖A‖₁ ≤ 344),
SQUARE_BYTES = 4 << 20   # and at most this many bytes of them (at least r itself); the apply
                         # squares on from the last kept one (one more product per squaring)


# ---- numerics ------------------------------------------------------------------------------
def _float(A):
    A = jnp.asarray(A)
    return A if jnp.issubdtype(A.dtype, jnp.floating) else A.astype(jnp.float64)


def _onenorm(X):
    return jnp.max(jnp.sum(jnp.abs(X), axis=0))


def _log2_ceil(x):
    """⌈log₂ x⌉ as an integer, 0 where it is negative, zero or not finite."""
    s = jnp.ceil(jnp.log2(x))
    return jnp.where(jnp.isfinite(s) & (s > 0), s, 0).astype(jnp.int32)


def _prescale(A):
    """s₀ = max(0, ⌈log₂(‖A‖₁/θ₁₃)⌉ − PRESCALE): the squarings the plain 1-norm rule (Higham 2005)
    would take, less PRESCALE, so that the unscaled powers A²…A⁶ below cannot overflow (‖2^−s₀A‖₁ ≤
    2^PRESCALE θ₁₃); the sharper rule then decides the rest."""
    return jnp.maximum(_log2_ceil(_onenorm(A) / THETA13) - PRESCALE, 0)


def _squarings(B, B4, B6):
    """s for B = 2^−s₀A (Al-Mohy & Higham 2009, Algorithm 5.1, with exact norms and upper bounds
    in place of estimates): s = ⌈log₂(η/θ)⌉ with η = min(max(d₆, d₈), max(d₈, d₁₀)), dₖ =
    ‖Bᵏ‖₁^(1/k) (d₈ ≤ d₄ and d₁₀ ≤ (‖B⁴‖‖B⁶‖)^(1/10) by submultiplicativity), θ = 4.25; plus
    ℓ = ⌈log₂(|c₂₇| ‖|2^−s B|²⁷‖₁ / (‖2^−s B‖₁ u)) / 26⌉, the squarings the Padé remainder's
    leading term still needs. For a non-normal B, dₖ ≪ ‖B‖₁ (overscaling by the 1-norm rule costs
    accuracy as well as squarings)."""
    n4, n6 = _onenorm(B4), _onenorm(B6)
    d4, d6, d10 = n4 ** 0.25, n6 ** (1 / 6), (n4 * n6) ** 0.1
    eta = jnp.minimum(jnp.maximum(d6, d4), jnp.maximum(d4, d10))
    s = _log2_ceil(eta / 4.25)
    # α(s) = 2^−27s ‖|B|²⁷‖ / (2^−s ‖B‖ |c|⁻¹): ℓ(s) = ⌈(log₂(α(0)/u) − 26 s)/26⌉
    n1 = _onenorm(B)

    def ell(log2_n27):
        log2_alpha0 = log2_n27 - jnp.log2(n1) - C27_LOG2 + 53.0
        e = jnp.ceil((log2_alpha0 - 26.0 * s) / 26.0)
        return jnp.where(jnp.isfinite(e) & (e > 0), e, 0).astype(jnp.int32)

    def exact(_):
        # ‖|B|²⁷‖₁ = max(1ᵀ|B|²⁷) exactly, as 27 vector-matrix products of |B|/‖B‖₁ (no overflow)
        M = jnp.abs(B) / jnp.where(n1 > 0, n1, 1)
        v = jax.lax.fori_loop(0, 27, lambda _, v: v @ M, jnp.ones(B.shape[-1], B.dtype))  # a loop:
                                            # 27 unrolled products took XLA 0.5 s to compile
        return ell(27 * jnp.log2(n1) + jnp.log2(jnp.max(v)))         # log₂ ‖|B|²⁷‖₁

    # ‖|B|²⁷‖₁ ≤ ‖B‖₁²⁷, so ℓ is 0 when this bound says so, and the vector products are skipped
    # (the usual case: at s from η, ℓ > 0 needs ‖B‖₁ ≳ 2^(s+2.44))
    bound = ell(27 * jnp.log2(n1))
    ell_s = jax.lax.cond(bound > 0, exact, lambda _: bound, None)
    return s + ell_s


def expm_factor_impl(A):
    """(B, B2, B4, B6, f, W, Qinv, squares, top, s): B = 2^−s₀A and its powers, f = 2^−s₁ (s =
    s₀ + s₁), so the scaled As = fB, A₂ = f²B₂, … enter only as scalar factors (copies of the four
    scaled powers would add 4 n² words to the gradient's peak memory); Qinv = (V − U)⁻¹ (q₁₃ is
    well conditioned for ‖As‖₁ ≤ θ₁₃, Higham 2005 §2, so its inverse is as good as a solve),
    squares[j] = r^(2ʲ) for j < min(s, S) with r = Qinv (U + V) = squares[0], S from the shape
    (``MAX_SQUARES``, ``SQUARE_BYTES``), and top = r^(2^(s−1)) (r when s = 0): e^A is top²,
    computed by ``expm_value`` only where the value is used (a gradient needs the squares below
    it, not e^A)."""
    A = _float(A)
    b = B13
    s0 = _prescale(A)
    B = A * jnp.exp2(-s0.astype(A.dtype))
    B2 = B @ B
    B4 = B2 @ B2
    B6 = B4 @ B2
    s1 = _squarings(B, B4, B6)
    f = jnp.exp2(-s1.astype(A.dtype))           # a power of two: scaling by it is exact
    f2, f4, f6 = f * f, f ** 4, f ** 6
    eye = jnp.eye(A.shape[-1], dtype=A.dtype)
    W1, Z1 = _w1_z1(B2, B4, B6, f)
    W = f6 * (B6 @ W1) + ((b[7] * f6) * B6 + (b[5] * f4) * B4 + (b[3] * f2) * B2 + b[1] * eye)
    U = f * (B @ W)
    V = f6 * (B6 @ Z1) + ((b[6] * f6) * B6 + (b[4] * f4) * B4 + (b[2] * f2) * B2 + b[0] * eye)
    Qinv = jnp.linalg.inv(V - U)
    r = Qinv @ (U + V)
    S = slots(A.shape[-1], A.dtype, most=MAX_SQUARES, least=1, budget=SQUARE_BYTES)
    squares = jnp.zeros((S,) + r.shape, r.dtype).at[0].set(r)

    def square(j, c):                          # X = r^(2^(j−1)) → r^(2ʲ), kept while j < S
        X, squares = c
        X = X @ X
        return X, keep(squares, X, j)
    top, squares = jax.lax.fori_loop(1, jnp.maximum(s0 + s1, 1), square, (r, squares))
    return B, B2, B4, B6, f, W, Qinv, squares, top, s0 + s1


def _w1_z1(B2, B4, B6, f):
    """The Padé pieces W₁ = b₁₃A₆ + b₁₁A₄ + b₉A₂ and Z₁ = b₁₂A₆ + b₁₀A₄ + b₈A₂ with Aₖ = fᵏBₖ
    (elementwise: the apply recomputes them rather than the factor keeping two more matrices)."""
    b = B13
    f2, f4, f6 = f * f, f ** 4, f ** 6
    return ((b[13] * f6) * B6 + (b[11] * f4) * B4 + (b[9] * f2) * B2,
            (b[12] * f6) * B6 + (b[10] * f4) * B4 + (b[8] * f2) * B2)


def expm_value_impl(F):
    """e^A = top² (s ≥ 1), or r itself when there is no squaring."""
    top, s = F[-2], F[-1]
    return jax.lax.cond(s > 0, lambda X: X @ X, lambda X: X, top)


def expm_frechet_apply_impl(F, E, *, trans=False):
    """L(A, E) (L(Aᵀ, E) if trans) from F = expm_factor(A): the derivative of the Padé
    approximant at the scaled As, then of the s squarings (Al-Mohy & Higham 2009, Alg. 6.4).
    L(Aᵀ, E) = L(A, Eᵀ)ᵀ (substitute s → 1 − s in the integral), so the transposed apply
    runs the same products on Eᵀ."""
    if trans:       # Eᵀ as a copy: left a transposed operand, XLA:CPU folds it into the first
                    # products, which then take their slow path (+10% for the apply at n = 512)
        return expm_frechet_apply_impl(F, jax.lax.optimization_barrier(jnp.asarray(E).T)).T
    B, B2, B4, B6, f, W, Qinv, squares, _, s = F
    b = B13
    f2, f4, f6 = f * f, f ** 4, f ** 6
    W1, Z1 = _w1_z1(B2, B4, B6, f)
    r = squares[0]
    dt = jnp.result_type(B.dtype, jnp.asarray(E).dtype)
    Es = jnp.asarray(E, dt) * jnp.exp2(-s.astype(dt))
    M2 = f * (B @ Es + Es @ B)                  # d(A²), A = fB the scaled matrix
    M4 = f2 * (B2 @ M2 + M2 @ B2)               # d(A⁴)
    M6 = f4 * (B4 @ M2) + f2 * (M4 @ B2)        # d(A⁶)
    Lw1 = b[13] * M6 + b[11] * M4 + b[9] * M2
    Lw = f6 * (B6 @ Lw1) + M6 @ W1 + (b[7] * M6 + b[5] * M4 + b[3] * M2)
    Lz1 = b[12] * M6 + b[10] * M4 + b[8] * M2
    Lu = f * (B @ Lw) + Es @ W                  # dU
    Lv = f6 * (B6 @ Lz1) + M6 @ Z1 + (b[6] * M6 + b[4] * M4 + b[2] * M2)    # dV
    # r = (V − U)⁻¹(U + V): (V − U) dr = dU + dV + (dU − dV) r
    L = Qinv @ (Lu + Lv + (Lu - Lv) @ r)

    # d(X²) = X dX + dX X with X = r^(2ʲ): read from the kept squares for j < S …
    S = squares.shape[0]
    L = jax.lax.fori_loop(0, jnp.minimum(s, S), lambda j, L: squares[j] @ L + L @ squares[j], L)

    def later(j, XL):                           # … and squared on from the last kept one after
        X, L = XL
        X = X @ X
        return X, X @ L + L @ X
    return jax.lax.fori_loop(S, jnp.maximum(s, S), later, (squares[S - 1], L))[1]


# ---- primitives ----------------------------------------------------------------------------
def _expm_shape(types, params):
    return shapes.same([shapes.square(types[0], "expm's argument")], params)


def _square_pair(a, e, what):
    """A and E both [n, n]: L(A, E) is [n, n]."""
    a, e = shapes.square(a, f"{what}'s first argument"), shapes.tensor(e)
    expect(e.ndim == 2 and dim_eq(e.shape[0], a.shape[0]) and dim_eq(e.shape[1], a.shape[1]),
           f"{what}: the direction must have the matrix's shape {fmt_shape(a.shape)}, got {e}")
    return TensorType(promote(a.dtype, e.dtype), a.shape)


def _expm_frechet_shape(types, params):
    return _square_pair(types[0], types[1], "expm_frechet")


def _lower_expm(b, e, prod):
    """expm(A) → expm_value(expm_factor(A)), sharing the factor with the adjoint's applies."""
    return emit_as(b, e, "expm_value", (_factor(b, e.inputs[0], "expm").atom,))


def _lower_expm_frechet(b, e, prod):
    """expm_frechet(A, E) → expm_frechet_apply(expm_factor(A), E); with Aᵀ: trans=true."""
    A, trans = resolve_transpose(e.inputs[0], prod)
    return emit_as(b, e, "expm_frechet_apply", (_factor(b, A, "expm").atom, e.inputs[1]), {"trans": trans})


def _expm_frechet_frechet(b, x, dx, y, p):
    """dL = L(A, dE) + [L(M, dM)]₁₂ with M = [[A, E], [0, A]], dM = [[dA, 0], [0, dA]]."""
    A, E = x
    dA, dE = dx
    out = b.zero(y[0].type) if is_zero(dE) else b.expm_frechet(A, dE)
    if is_zero(dA):
        return out
    n = A.shape[0]
    Z = b.zero(A.type)
    M = b.vcat(b.hcat(A, E), b.hcat(b.materialize(Z), A))
    dM = b.vcat(b.hcat(dA, Z), b.hcat(Z, dA))
    corner = (("slice", sympy.Integer(0), n), ("slice", n, 2 * n))       # [:n, n:]
    return out + b.index(b.expm_frechet(M, dM), spec=corner)


# expm: X = e^A (scaling and squaring, Padé 13); dX = L(A, dA) (Al-Mohy & Higham 2009)
register(Primitive(
    "expm", lambda A: expm_value_impl(expm_factor_impl(A)), _expm_shape, math="X = e^A",
    lower=_lower_expm,
    frechet="frechet expm(A) -> X { dX = expm_frechet(A, dA) }"))

# expm_frechet: L(A, E) = ∫₀¹ e^{sA} E e^{(1−s)A} ds, linear in E with transpose L(Aᵀ, Ȳ);
# in A: dL = [L(M, dM)]₁₂ for M = [[A, E], [0, A]] (block identity, Higham 2008 §10.2)
register(Primitive(
    "expm_frechet", lambda A, E: expm_frechet_apply_impl(expm_factor_impl(A), E),
    _expm_frechet_shape, linear_in=(1,), math="L = L(A, E)", lower=_lower_expm_frechet,
    frechet=_expm_frechet_frechet,
    transpose=_linear_in_b(lambda b, A, ct, p: b.expm_frechet(b.transpose(A), ct))))


# ---- the factorization value and its uses (made by the lowering pass) ---------------------
def _factor_type(types, params):
    return FactorType("expm", _expm_shape(types, params))


# expm_factor: the scaling, Padé pieces and squarings of e^A, kept for L(A, ·) and L(Aᵀ, ·)
register(Primitive("expm_factor", expm_factor_impl, _factor_type, internal=True,
                   math="F = padé₁₃(A/2ˢ), s squarings"))

# expm_value: e^A from the factor
register(Primitive(
    "expm_value", expm_value_impl,
    lambda types, p: _factor_arg(types[0], "expm", "expm_value"), internal=True, math="X = e^A"))

# expm_frechet_apply: L(A, E) (L(Aᵀ, E) if trans) from the factor; linear in E, the transpose
# flips trans
register(Primitive(
    "expm_frechet_apply", expm_frechet_apply_impl,
    lambda types, p: _square_pair(_factor_arg(types[0], "expm", "expm_frechet_apply"), types[1],
                                  "expm_frechet_apply"),
    linear_in=(1,), kwargs={"trans": False}, internal=True, math="L = L(A, E) (L(Aᵀ, E) if trans)",
    transpose=_linear_in_b(lambda b, F, ct, p: b.expm_frechet_apply(F, ct, trans=not p.get("trans", False)))))
