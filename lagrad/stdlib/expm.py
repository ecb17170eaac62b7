"""The matrix exponential ``expm(A)`` and its Fréchet derivative ``expm_frechet(A, E)``.

L(A, E) = ∫₀¹ e^{sA} E e^{(1−s)A} ds is the derivative of e^A in the direction E, and linear in
E with L(A, ·)ᵀ = L(Aᵀ, ·) (RULES.md). So the rules are:

* ``expm``: d e^A = L(A, dA) — its Fréchet rule emits ``expm_frechet(A, dA)``, and the derived
  adjoint is Ā = L(Aᵀ, Ḡ): one Fréchet evaluation, no tape.
* ``expm_frechet``: linear in E, transpose Ē = L(Aᵀ, Ȳ). Its derivative in A (for Hessians)
  comes from the block identity expm([[A, E], [0, A]]) = [[e^A, L(A, E)], [0, e^A]]: the
  direction [[dA, 0], [0, dA]] gives dL = L(A, dE) + [L(M, dM)]₁₂ with M = [[A, E], [0, A]].

Numerics: scaling and squaring with the degree-18 Taylor polynomial T₁₈ evaluated in five
products and no solve (Bader, Blanes & Casas 2019, "Computing the matrix exponential with an
optimized Taylor polynomial approximation", Mathematics 7(12) 1174: A₉ = B₁B₅ + B₄,
T₁₈ = B₂ + (B₃ + A₉)A₉ with Bᵢ combinations of I, A, A², A³, A⁶), where a [13/13] Padé
approximant needs six products and an LU solve. T₁₈'s backward error is below the unit roundoff
for ‖A‖ ≤ θ₁₈ = 1.09. The number of squarings s follows Al-Mohy & Higham 2009 ("A new scaling and
squaring algorithm for the matrix exponential", Thm. 4.2 and Alg. 5.1): the backward error of a
degree-m truncation is bounded through αₚ = max(‖Aᵖ‖^(1/p), ‖Aᵖ⁺¹‖^(1/(p+1))) for any p with
p(p − 1) ≤ m + 1 = 19, so s = ⌈log₂(min(α₃, α₄)/θ₁₈)⌉, with ‖A³‖ exact and ‖A⁴‖, ‖A⁵‖ estimated
by matrix-vector products (as that algorithm estimates the norms it does not form). For a
non-normal A, α ≪ ‖A‖₁, so this does not overscale (for [[1, 10⁶], [0, −1]] the 1-norm rule takes
20 squarings, this rule 4, and scipy's expm_frechet, which uses the 1-norm rule with Padé, is off
by 3·10⁻⁶); for A = randn/√n it takes the one squaring JAX's expm takes at n = 128 … 512, where
α₃ alone would take two. JAX's expm takes ⌊log₂(‖A‖₁/θ₁₃)⌋ squarings, at a scaled norm outside
its Padé-13 error bound. There is no cap on s: a large ‖A‖ costs more squarings, never a NaN
(JAX's expm returns NaN past 16 squarings).

The derivative differentiates the same evaluation (Al-Mohy & Higham 2009, "Computing the
Fréchet derivative of the matrix exponential", Alg. 6.4, there for Padé): d(A²), d(A³), d(A⁶), d(A₉)
and dT₁₈ are two products each, and each squaring X ← X² differentiates to L ← X L + L X. So the
gradient of a model using e^A costs 5 products and s − 1 squarings for the factor (e^A itself is
one more) and 10 + 2s products for the adjoint's apply, against 6 products, an LU solve and s
squarings for a Padé-13 e^A alone and 14 products for its derivative: that is why this module uses
T₁₈. Where the norms ask for more than a squaring or two it may take up to two more squarings than
Padé-13 would; on random and non-normal test matrices its accuracy is the same
(tests/test_expm.py).

The factorization-like value ``expm_factor(A)`` keeps what the derivative reuses: the prescaled
A, A², A³, A⁶ (the scaling enters as scalar factors), A₉, T₁₈ and its first squares r^(2ʲ), the
last square before e^A and s (``expm_value`` squares it once more; a gradient does not need it).
``expm_frechet_apply(F, E)`` then differentiates T₁₈ with the same scaling and the squarings
(L ← X L + L X, X ← X²: three products per squaring, instead of eight for a 2n × 2n block
exponential). With ``trans=true`` it applies L(Aᵀ, ·) from the same factor, as L(Aᵀ, E) =
L(A, Eᵀ)ᵀ. After differentiation a compiler pass (the ``lower`` rules below) rewrites ``expm(A)``
to ``expm_value(expm_factor(A))`` and ``expm_frechet(A or Aᵀ, ·)`` to the apply, so a model's
forward pass and its adjoint share one factor: the backward pass is products only.
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

# T₁₈ = B₂ + (B₃ + A₉) A₉, A₉ = B₁ B₅ + B₄, with Bᵢ = Σⱼ T18[i][j] Pⱼ over P = (I, A, A², A³, A⁶)
# (Bader, Blanes & Casas 2019: the coefficients solve the equations that make this T₁₈ exactly, to
# double precision), and θ₁₈, the largest α for which its backward error is below 2⁻⁵³ (ibid.; the
# value PyTorch's matrix_exp uses too)
T18 = ((0.0, -1.00365581030144618291e-01, -8.02924648241156932449e-03, -8.92138498045729985177e-04, 0.0),
       (0.0, 3.97849749499645077844e-01, 1.36783778460411720168e+00, 4.98289622525382669416e-01,
        -6.37898194594723280150e-04),
       (-1.09676396052962061844e+01, 1.68015813878906206114e+00, 5.71779846478865511061e-02,
        -6.98210122488052056106e-03, 3.34975017086070470649e-05),
       (-9.04316832390810593223e-02, -6.76404519071381882256e-02, 6.75961301770459654925e-02,
        2.95552570429315521194e-02, -1.39180257516060693404e-05),
       (0.0, 0.0, -9.23364619367118555360e-02, -1.69364939002081722752e-02, -1.40086798182036094347e-05))
THETA18 = 1.090863719290036
MAX_SQUARES = 6    # squarings whose powers r^(2ʲ) the factor keeps at most (s ≤ 6 for ‖A‖₁ ≤ 70),
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


def _prescale(A, nA):
    """s₀ = max(0, ⌈log₂(nA/θ₁₈)⌉ − k), nA = ‖A‖₁: the squarings the plain 1-norm rule would take,
    less k, so that the unscaled powers B² … B⁶ of B = 2^−s₀A cannot overflow: ‖B‖₁ ≤ 2ᵏθ₁₈ and
    6(k + 1) below the dtype's largest exponent (k = 169 in float64, 20 in float32). The sharper
    rule (_squarings) decides the rest; scaling by a power of two is exact, so s₀ changes no
    rounding. (A fixed k = 8 here made s₀ alone exceed what the sharp rule asks for a non-normal
    A with ‖A‖₁ ≳ 10⁵, and every extra squaring of such a matrix costs accuracy.)"""
    k = jnp.finfo(A.dtype).maxexp // 6 - 1
    return jnp.maximum(_log2_ceil(nA / THETA18) - k, 0)


def _squarings(n1, B2, B3):
    """s for B = 2^−s₀A, from n1 = ‖B‖₁, B² and B³: ⌈log₂(α/θ₁₈)⌉ with α = min(α₃, α₄),
    αₚ = max(dₚ, dₚ₊₁) and dₖ = ‖Bᵏ‖₁^(1/k) (Al-Mohy & Higham 2009, Thm. 4.2: any p with
    p(p − 1) ≤ 19 bounds T₁₈'s backward error). d₃ is exact; d₄ and d₅ come from the 1-norm
    estimates of _power_norms (as that paper's Alg. 5.1 estimates the dₖ it does not form),
    skipped where no squaring is needed anyway. For a non-normal B, dₖ ≪ ‖B‖₁; for
    B = randn/√n, d₃ ≈ 2.5 and α₄ ≈ 2.0 at n = 256, one squaring fewer."""
    n2, n3 = _onenorm(B2), _onenorm(B3)
    d3 = n3 ** (1 / 3)
    d4_bound = jnp.minimum(n2 ** 0.5, (n3 * n1) ** 0.25)        # submultiplicativity

    def estimated(_):
        n4, n5 = _power_norms(B2, B3)
        d4, d5 = jnp.minimum(n4 ** 0.25, d4_bound), n5 ** 0.2
        return jnp.minimum(jnp.maximum(d3, d4), jnp.maximum(d4, d5))
    bound = jnp.maximum(d3, d4_bound)
    alpha = jax.lax.cond(bound > THETA18, estimated, lambda _: bound, None)
    return _log2_ceil(alpha / THETA18)


def _power_norms(B2, B3, steps=1):
    """(‖B⁴‖₁, ‖B⁵‖₁) estimated from below with matrix-vector products only (Hager 1984; Higham
    1988, Alg. 4.1, `steps` steps of it on each): y = Mx, ξ = sign(y), z = Mᵀξ, x ← e_argmax|z|,
    keeping the largest ‖y‖₁, with M = B²·B² and B³·B² applied factor by factor. Both start from
    x = 1/n, so they share B²x, and B²eⱼ is a column of B² (a gather, not a product). It is
    usually exact, and within a small factor otherwise (Higham & Tisseur 2000)."""
    n = B2.shape[-1]
    Y2 = jnp.broadcast_to((B2 @ jnp.full((n,), 1.0 / n, B2.dtype))[:, None], (n, 2))
    est = jnp.zeros((2,), B2.dtype)
    for step in range(steps + 1):
        Y = jnp.stack([B2 @ Y2[:, 0], B3 @ Y2[:, 1]], axis=1)      # B⁴x₀, B⁵x₁
        est = jnp.maximum(est, jnp.sum(jnp.abs(Y), axis=0))
        if step == steps:
            break
        Xi = jnp.where(Y >= 0, 1.0, -1.0).astype(B2.dtype)
        Z = B2.T @ jnp.stack([B2.T @ Xi[:, 0], B3.T @ Xi[:, 1]], axis=1)
        Y2 = jnp.take(B2, jnp.argmax(jnp.abs(Z), axis=0), axis=1)  # B²eⱼ for the next x = eⱼ
    return est[0], est[1]


def _combination(i, P):
    """Bᵢ = Σⱼ T18[i][j] Pⱼ (the terms whose coefficient is 0 or whose Pⱼ is None left out)."""
    out = None
    for c, X in zip(T18[i], P):
        if c != 0.0 and X is not None:
            out = c * X if out is None else out + c * X
    return out


def _pieces(B, B2, B3, B6, f):
    """B₁ … B₅ at the scaled A = fB (its powers fᵏBₖ enter as scalar factors: elementwise work, so
    the apply recomputes them rather than the factor keeping five more matrices)."""
    P = (jnp.eye(B.shape[-1], dtype=B.dtype), f * B, (f * f) * B2, f ** 3 * B3, f ** 6 * B6)
    return [_combination(i, P) for i in range(5)]


def expm_factor_impl(A):
    """(B, B2, B3, B6, f, A9, squares, top, s): B = 2^−s₀A and its powers, f = 2^−s₁ (s = s₀ + s₁),
    so the scaled As = fB, A₂ = f²B₂, … enter only as scalar factors (copies of the scaled powers
    would add to the gradient's peak memory); A9 = B₁B₅ + B₄; squares[j] = r^(2ʲ) for j < min(s, S)
    with r = T₁₈(As) = squares[0], S from the shape (``MAX_SQUARES``, ``SQUARE_BYTES``), and
    top = r^(2^(s−1)) (r when s = 0): e^A is top², computed by ``expm_value`` only where the value
    is used (a gradient needs the squares below it, not e^A)."""
    A = _float(A)
    nA = _onenorm(A)
    s0 = _prescale(A, nA)
    scale0 = jnp.exp2(-s0.astype(A.dtype))          # a power of two: ‖B‖₁ = ‖A‖₁·2^−s₀ exactly
    B = A * scale0
    B2 = B @ B
    B3 = B2 @ B
    B6 = B3 @ B3
    s1 = _squarings(nA * scale0, B2, B3)
    f = jnp.exp2(-s1.astype(A.dtype))           # a power of two: scaling by it is exact
    P1, P2, P3, P4, P5 = _pieces(B, B2, B3, B6, f)
    A9 = P1 @ P5 + P4
    r = P2 + (P3 + A9) @ A9
    S = slots(A.shape[-1], A.dtype, most=MAX_SQUARES, least=1, budget=SQUARE_BYTES)
    squares = jnp.zeros((S,) + r.shape, r.dtype).at[0].set(r)

    def square(j, c):                          # X = r^(2^(j−1)) → r^(2ʲ), kept while j < S
        X, squares = c
        X = X @ X
        return X, keep(squares, X, j)
    top, squares = jax.lax.fori_loop(1, jnp.maximum(s0 + s1, 1), square, (r, squares))
    return B, B2, B3, B6, f, A9, squares, top, s0 + s1


def expm_value_impl(F):
    """e^A = top² (s ≥ 1), or r itself when there is no squaring."""
    top, s = F[-2], F[-1]
    return jax.lax.cond(s > 0, lambda X: X @ X, lambda X: X, top)


def expm_frechet_apply_impl(F, E, *, trans=False):
    """L(A, E) (L(Aᵀ, E) if trans) from F = expm_factor(A): the derivative of T₁₈ at the scaled
    As, then of the s squarings. L(Aᵀ, E) = L(A, Eᵀ)ᵀ (substitute s → 1 − s in the integral), so
    the transposed apply runs the same products on Eᵀ."""
    if trans:       # Eᵀ through a barrier, as the lyap applies do (there it still pays: 185 against
                    # 203 µs at n = 64); here jaxlib 0.10's XLA:CPU times the apply the same with or
                    # without it (stop 23: 8.8 ms at n = 256, 67 ms at n = 512), where earlier
                    # versions folded a bare Eᵀ into the first products' slow path (+10% at n = 512)
        return expm_frechet_apply_impl(F, jax.lax.optimization_barrier(jnp.asarray(E).T)).T
    B, B2, B3, B6, f, A9, squares, _, s = F
    P1, _, P3, _, P5 = _pieces(B, B2, B3, B6, f)
    dt = jnp.result_type(B.dtype, jnp.asarray(E).dtype)
    Es = jnp.asarray(E, dt) * jnp.exp2(-s.astype(dt))      # d(As)
    D2 = f * (B @ Es + Es @ B)                               # d(A²)
    D3 = f * (D2 @ B) + (f * f) * (B2 @ Es)                  # d(A³) = d(A²) A + A² dA
    D6 = f ** 3 * (D3 @ B3 + B3 @ D3)                        # d(A⁶)
    dP1, dP2, dP3, dP4, dP5 = _pieces_derivative(Es, D2, D3, D6)
    dA9 = dP1 @ P5 + P1 @ dP5 + dP4
    L = dP2 + (dP3 + dA9) @ A9 + (P3 + A9) @ dA9             # dT₁₈

    # d(X²) = X dX + dX X with X = r^(2ʲ): read from the kept squares for j < S …
    S = squares.shape[0]
    L = jax.lax.fori_loop(0, jnp.minimum(s, S), lambda j, L: squares[j] @ L + L @ squares[j], L)

    def later(j, XL):                           # … and squared on from the last kept one after
        X, L = XL
        X = X @ X
        return X, X @ L + L @ X
    return jax.lax.fori_loop(S, jnp.maximum(s, S), later, (squares[S - 1], L))[1]


def _pieces_derivative(dA, D2, D3, D6):
    """dB₁ … dB₅: the same combinations of the powers' derivatives (dI = 0)."""
    return [_combination(i, (None, dA, D2, D3, D6)) for i in range(5)]


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


# expm: X = e^A (scaling and squaring, Taylor T₁₈); dX = L(A, dA) (Al-Mohy & Higham 2009)
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


# expm_factor: the scaling, T₁₈ pieces and squarings of e^A, kept for L(A, ·) and L(Aᵀ, ·)
register(Primitive("expm_factor", expm_factor_impl, _factor_type, internal=True,
                   math="F = T₁₈(A/2ˢ), s squarings"))

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
