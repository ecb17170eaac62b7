"""Lyapunov equations: ``lyap`` (continuous, A X + X Aᵀ + Q = 0) and ``dlyap`` (discrete,
A X Aᵀ − X + Q = 0), with the factorization-as-value pattern of ``solve``: a nonlinear factor of
A and an apply linear in Q whose transpose is the same apply with the factor transposed, so the
adjoint equation reuses the forward factor — products only.

* ``lyap_factor(A)``: the scaled Newton iteration for the matrix sign function (Roberts 1980;
  Benner & Quintana-Ortí 1999), A₀ = A, A_{k+1} = (c_k A_k + (c_k A_k)⁻¹)/2 with
  c_k = sqrt(‖A_k⁻¹‖_F/‖A_k‖_F); it converges to sign(A) = −I exactly when A is stable. The
  factor keeps the A_k⁻¹ and c_k (see below). ``lyap_apply`` runs Q₀ = Q,
  Q_{k+1} = (c_k Q_k + c_k⁻¹ A_k⁻¹ Q_k A_k⁻ᵀ)/2 and returns X = ½ Q_K + ¼ (E Q_K + Q_K Eᵀ),
  E = A_K + I. (Invariant: A_k X + X A_kᵀ + Q_k = 0 for every k; with A_K = −I + E it reads
  2X = Q_K + E X + X Eᵀ, and one fixed-point step from ½ Q_K is exact to O(‖E‖²). So the
  iteration stops at ‖E‖_F ≤ √(10 n ε) rather than 10 n ε: one inverse fewer, the quadratic
  phase's last step, for two products in each apply.) For Aᵀ the iterates are
  the A_kᵀ with the same c_k, so ``trans=true`` runs the recurrence with A_k⁻ᵀ.
* ``dlyap_factor(A)``: doubling (Smith 1968), the squared powers A_k = A^(2^k) until ‖A_K‖_F² is
  below the unit roundoff; ``dlyap_apply`` runs X₀ = Q, X_{k+1} = X_k + A_k X_k A_kᵀ, i.e.
  X_K = Σ_{j < 2^K} A^j Q A^jᵀ (the remainder is A_K X A_Kᵀ). ``trans=true`` uses A_kᵀ.

Both iterations run inside ``lax.while_loop`` for at most ``KMAX`` steps. The factor keeps the
matrices of the first S steps in a fixed-size buffer, S = ``buffers.slots(n)`` (4–16; the usual
K is 5–12); an apply whose K exceeds S recomputes the later steps (one inverse, or one squaring,
per extra step) instead of reading them: lyap's factor keeps the iterate A_S for that, dlyap's
squares on from its last kept power (see lagrad/stdlib/buffers.py for why the buffer is not KMAX
long). Everything is whole-matrix work that runs on a GPU and under vmap.
The sign iteration stops when ‖A_K + I‖_F ≤ √(10 n ε), or when the steps stop shrinking
quadratically (a stall) and the outcome is clear: within √(10 n ε) of −I (accepted: the rounding
floor of an ill-conditioned A), or ‖A_K + I‖_F ≥ 1 (a limit ≠ −I: A is not stable).

Instability is reported, never a silently wrong solution: when an iteration does not converge —
A not stable (an eigenvalue with Re ≥ 0: the sign iteration tends to a sign(A) ≠ −I, or wanders
when an eigenvalue is on the imaginary axis), or spectral radius ≥ 1 for dlyap (the powers do not
decay) — the factor records K = −1 and every apply, so ``lyap``/``dlyap`` and their gradients,
returns a matrix of NaNs. ``lagrad.is_stable(A)`` and ``lagrad.is_schur_stable(A)`` answer the
same question up front (K ≥ 0), as a boolean JAX scalar that works under jit and vmap.

Sign conventions: lyap(A, Q) = scipy.linalg.solve_continuous_lyapunov(A, −Q) (scipy solves
A X + X Aᴴ = Q); dlyap(A, Q) = scipy.linalg.solve_discrete_lyapunov(A, Q). See docs/lyapunov.md.

Rules: dX = lyap(A, dA X + X dAᵀ + dQ); the transpose of Q ↦ lyap(A, Q) is Y ↦ lyap(Aᵀ, Y), so
the derived adjoint is S = lyap(Aᵀ, Ḡ), Q̄ = S, Ā = S Xᵀ + Sᵀ X. Discrete: dX = dlyap(A,
dA X Aᵀ + A X dAᵀ + dQ), S = dlyap(Aᵀ, Ḡ), Q̄ = S, Ā = S A Xᵀ + Sᵀ A X. Only the Fréchet rules
(text) and the transpose rules of the linear-in-Q maps are written here; the adjoint is derived.
After differentiation the ``lower`` rules rewrite lyap(A, ·) → lyap_apply(lyap_factor(A), ·)
and lyap(Aᵀ, ·) → the same factor with trans=true (``resolve_transpose``), so after CSE the
forward solve and the adjoint solve share one factor and the backward pass is products only.
``fuse_factor_solves`` then moves every solve whose right-hand side does not depend on the factor
into the factor's loop (``lyap_factor_solve(A, Q₁, …, trans=…, factor=…)``): the forward solve,
and the adjoint's too when the loss is linear in X; with no apply left, no step is stored.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..compiler.builder import expect
from ..compiler.passes import emit_as, resolve_transpose
from ..compiler.primitive import Primitive, register
from ..compiler.types import FactorType, TensorType, dim_eq, fmt_shape, promote
from ..errors import InputError
from . import shapes
from .buffers import SLOT_BYTES, kept, slots, with_scratch, write
from .linalg import _factor, _factor_arg, _linear_in_b, inverse

KMAX = 50                  # sign-iteration steps / squarings at most


# ---- numerics ------------------------------------------------------------------------------
def _fro2(x):
    """‖x‖_F² as the flattened x's dot with itself. XLA:CPU rewrites it into a multiply and a
    reduction over the 1-D vector, which runs faster than sum(x * x)'s over the 2-D array; each µs
    of a factor's step counts at small n (the dlyap factor at n = 32: 44 → 39 µs, 5 steps; no
    slower at n = 256)."""
    return jnp.vdot(x, x, precision=jax.lax.Precision.HIGHEST)


def _fro(x):
    return jnp.sqrt(_fro2(x))


def _carried_rhs(Qs, dt):
    """The right-hand sides a factor's iteration carries, each in the dtype its apply would use."""
    return tuple(jnp.asarray(Q, jnp.result_type(dt, jnp.asarray(Q).dtype)) for Q in Qs)


def _nan_unless_solved(X, K):
    """X, or all NaN where the factor's iteration failed (step count K < 0)."""
    return jnp.where(K >= 0, X, jnp.array(jnp.nan, X.dtype))


def _eps(dtype):
    return jnp.finfo(dtype).eps


def _oriented(M, trans):
    """M, or Mᵀ as a transposed copy: the applies compute M Y Mᵀ, which XLA's CPU backend runs
    as two fast (N·N, N·T) products; left as a transposed operand, Mᵀ Y M becomes a T·N product
    that takes its slow path (≈1.5× the time). The barrier keeps the transpose a copy (n², once
    per step) instead of folding it back into the product."""
    return jax.lax.optimization_barrier(M.T) if trans else M


def lyap_factor_impl(A):
    """(inverses[S + 1, n, n], scalings[KMAX], T, K): the scaled sign iteration of A with the
    inverses of its first S = slots(n) steps (slot S is scratch: the later inverses pass through
    it, so a step writes its slot without a select) and one more matrix T: E = A_K + I, the last
    iterate's distance from −I, when K ≤ S, or the iterate A_S when K > S (the apply then
    recomputes the later steps from it and reaches A_K itself). One matrix, not two: at n = 512
    a second one put the gradient's temporaries above glibc's 32 MiB mmap threshold, and every
    call then page-faulted them in afresh (buffers.py). K = −1 when the iteration did not
    converge to −I (A not stable)."""
    return _sign_iteration(A)[0]


def lyap_factor_solve_impl(A, *Qs, trans=None, factor=True):
    """(F, X₁, …, X_m): F = lyap_factor(A) (left out when ``factor`` is false) and
    X_i = lyap_apply(F, Q_i, trans=trans[i]), all in the factor's loop: each sign step also takes
    every Q_i,k to Q_i,k+1 (with A_k⁻ᵀ where transposed), so no solve costs a loop of its own and,
    without the factor, no step is stored (the compiler's `fuse_factor_solves` makes this of a
    factor and the applies whose right-hand sides do not depend on it). All K steps run in the
    loop, so the steps beyond the S kept ones are not recomputed as an apply would."""
    trans = _each_trans(Qs, trans)
    F, K, QKs, E = _sign_iteration(A, Qs, trans, keep=factor)
    Xs = tuple(_lyap_close(QK, E, K, t) for QK, t in zip(QKs, trans))
    return ((F,) if factor else ()) + Xs


def _each_trans(Qs, trans):
    """The fused solves' trans flags: one per right-hand side (the shape rule checks the count),
    all false by default."""
    return (False,) * len(Qs) if trans is None else tuple(bool(t) for t in trans)


def _sign_iteration(A, Qs=(), trans=(), keep=True):
    """lyap_factor's loop: (F, K, (Q_1,K, …), E = A_K + I). With right-hand sides Q_i it also runs
    lyap_apply's recurrence on each (with A_k⁻ᵀ where trans[i]); without ``keep`` it stores no
    step and F is None."""
    A = jnp.asarray(A)
    dt = A.dtype if jnp.issubdtype(A.dtype, jnp.floating) else jnp.float64
    A = A.astype(dt)
    n = A.shape[-1]
    eye = jnp.eye(n, dtype=dt)
    eps = _eps(dt)
    # ‖A_K + I‖_F at convergence: the apply's correction (lyap_apply_impl) leaves an error of
    # order ‖E‖², so √(10 n ε) gives the accuracy 10 n ε that ½ Q_K alone needs ‖E‖ ≤ 10 n ε for
    # (in the quadratic phase, the step before that: one inverse fewer)
    tol = jnp.sqrt(10.0 * n * eps)           # also the most a stalled iteration may miss −I by
    inf = jnp.array(jnp.inf, dt)
    S = slots(n, dt, KMAX, budget=SLOT_BYTES - n * n * jnp.dtype(dt).itemsize)   # S + 1 in the budget
    rhs = _carried_rhs(Qs, dt)

    def cond(s):
        return (s[0] < KMAX) & ~s[4]

    def body(s):
        k, Ak, delta, change, _, kept_steps, Qks = s
        Ainv, c, A_next = _sign_step(Ak)
        if kept_steps:
            invs, cs, AS = kept_steps
            kept_steps = (write(invs, Ainv, k), jax.lax.dynamic_update_index_in_dim(cs, c, k, 0),
                          jnp.where(k + 1 == S, A_next, AS))
        d_next = _fro(A_next + eye)
        ch_next = _fro(A_next - Ak)
        finite = jnp.isfinite(d_next) & jnp.isfinite(ch_next)
        converged = d_next <= tol
        # the quadratic phase is over: the step no longer halves (rounding floor, or a limit
        # other than −I, or wandering iterates near the imaginary axis)
        stalled = (change <= 1e-3 * jnp.sqrt(n)) & (ch_next >= 0.5 * change)
        # a stall ends the loop only where its outcome is clear: near a limit ≠ −I (‖sign(A) + I‖_F
        # ≥ 2 when A has an eigenvalue with Re > 0: failure); the rounding floor near −I is
        # `converged` (≤ tol), and a stall in between (a slow non-normal transient) keeps iterating
        done = converged | (stalled & (d_next >= 1.0)) | ~finite
        Qks = tuple(_lyap_step(Qk, _oriented(Ainv.astype(Qk.dtype), t), c.astype(Qk.dtype))
                    for Qk, t in zip(Qks, trans))
        return k + 1, A_next, d_next, ch_next, done, kept_steps, Qks

    # the scalar state starts from ‖A + I‖_F rather than from constants: each constant in a
    # loop's initial state is a copy with no inputs at the program's entry, and when more than
    # 9 operations are ready at once, XLA:CPU's executor hands half of them to a pool thread
    # (ThunkExecutor, kSplitThreshold = 8), which the call then waits for. The lyap gradient at
    # n = 32 had 10 such operations and took 211 µs, 192 µs with these two computed
    delta0 = _fro(A + eye)
    done0 = ~jnp.isfinite(delta0)            # a non-finite A takes no step (K = −1)
    kept0 = (with_scratch(S, n, dt), jnp.ones((KMAX,), dt), A) if keep else ()
    s0 = (jnp.array(0, jnp.int32), A, delta0, jnp.where(done0, delta0, inf), done0, kept0, rhs)
    K, AK, delta, _, _, kept_steps, QKs = jax.lax.while_loop(cond, body, s0)
    K = jnp.where(jnp.isfinite(delta) & (delta <= tol), K, -1)
    E = AK + eye
    F = None
    if keep:
        invs, cs, AS = kept_steps
        F = (invs, cs, jnp.where(K > S, AS, E), K)
    return F, K, QKs, E


def _sign_step(Ak):
    """One scaled Newton step: (A_k⁻¹, c_k, A_{k+1} = (c_k A_k + A_k⁻¹/c_k)/2)."""
    Ainv = inverse(Ak)
    c = jnp.sqrt(_fro(Ainv) / _fro(Ak))
    return Ainv, c, 0.5 * (c * Ak + Ainv / c)


def lyap_apply_impl(F, Q, *, trans=False):
    """X with A X + X Aᵀ + Q = 0 (Aᵀ X + X A + Q = 0 if trans) from F = lyap_factor(A): the
    stored steps, then (when K > S) the later ones recomputed from the iterate A_S, then the
    correction for E = A_K + I ≠ 0: the invariant reads 2X = Q_K + E X + X Eᵀ, so one
    fixed-point step from ½ Q_K, X = ½ Q_K + ¼ (E Q_K + Q_K Eᵀ), is exact to O(‖E‖²). (Every
    map here is Q ↦ f(A) Q g(A)ᵀ with f, g functions of A, so they commute, and the same steps
    with the matrices transposed are the exact adjoint: the `trans` apply.)"""
    invs, cs, T, K = F
    dt = jnp.result_type(invs.dtype, jnp.asarray(Q).dtype)
    Q = jnp.asarray(Q, dt)

    def step(Qk, Ainv, c):
        return _lyap_step(Qk, _oriented(Ainv.astype(dt), trans), c.astype(dt))

    S = kept(invs)
    QS = jax.lax.fori_loop(0, jnp.clip(K, 0, S), lambda k, Qk: step(Qk, invs[k], cs[k]), Q)

    def later(k, QA):
        Qk, Ak = QA
        Ainv, c, A_next = _sign_step(Ak)
        return step(Qk, Ainv, c), A_next
    QK, AK = jax.lax.fori_loop(S, jnp.maximum(K, S), later, (QS, T))      # T = A_S when K > S
    E = jnp.where(K > S, AK + jnp.eye(AK.shape[-1], dtype=AK.dtype), T)    # … else T = A_K + I
    return _lyap_close(QK, E, K, trans)


def _lyap_step(Qk, M, c):
    """Q_{k+1} = (c_k Q_k + c_k⁻¹ M_k Q_k M_kᵀ)/2, M_k = A_k⁻¹ (or A_k⁻ᵀ)."""
    return 0.5 * (c * Qk + (M @ Qk @ M.T) / c)


def _lyap_close(QK, E, K, trans):
    """X = ½ Q_K + ¼ (E Q_K + Q_K Eᵀ) (Eᵀ if trans), all NaN when the iteration failed (K < 0)."""
    ME = _oriented(E.astype(QK.dtype), trans)
    X = 0.5 * QK + 0.25 * (ME @ QK + QK @ ME.T)
    return _nan_unless_solved(X, K)


def dlyap_factor_impl(A):
    """(powers[S + 1, n, n], K) with powers[k] = A^(2^k) for k < min(K, S), S = slots(n); slot S
    is scratch (the powers beyond the kept ones pass through it, so a step writes its slot without
    a select: 3 of the 45 µs at n = 32). K = −1 when the powers did not decay below the unit
    roundoff (spectral radius ≥ 1)."""
    return _doubling(A)[0]


def dlyap_factor_solve_impl(A, *Qs, trans=None, factor=True):
    """(F, X₁, …, X_m): F = dlyap_factor(A) (left out when ``factor`` is false) and
    X_i = dlyap_apply(F, Q_i, trans=trans[i]), all in the factor's loop: each squaring step also
    takes every X_i,k to X_i,k + A_k X_i,k A_kᵀ (A_kᵀ X A_k where transposed), so no solve costs a
    loop of its own and, without the factor, no power is stored (the compiler's
    `fuse_factor_solves` makes this of a factor and the applies whose right-hand sides do not
    depend on it)."""
    trans = _each_trans(Qs, trans)
    F, K, Xs = _doubling(A, Qs, trans, keep=factor)
    return ((F,) if factor else ()) + tuple(_nan_unless_solved(X, K) for X in Xs)


def _doubling(A, Qs=(), trans=(), keep=True):
    """dlyap_factor's loop: (F, K, (X_1,K, …)). With right-hand sides Q_i it also runs
    dlyap_apply's recurrence on each (with A_kᵀ where trans[i]); without ``keep`` it stores no
    power and F is None."""
    A = jnp.asarray(A)
    dt = A.dtype if jnp.issubdtype(A.dtype, jnp.floating) else jnp.float64
    A = A.astype(dt)
    n = A.shape[-1]
    small = _eps(dt)                          # ‖A_K‖_F² ≤ eps: the remainder A_K X A_Kᵀ is negligible
    S = slots(n, dt, KMAX)
    rhs = _carried_rhs(Qs, dt)

    def cond(s):
        k, _, nrm2 = s[:3]
        return (k < KMAX) & (nrm2 > small) & jnp.isfinite(nrm2)

    def body(s):
        k, Ak, _, pows, Xs = s
        pows = tuple(write(p, Ak, k) for p in pows)
        Xs = tuple(_dlyap_step(X, _oriented(Ak.astype(X.dtype), t)) for X, t in zip(Xs, trans))
        A_next = Ak @ Ak
        return k + 1, A_next, _fro2(A_next), pows, Xs

    s0 = (jnp.array(0, jnp.int32), A, _fro2(A), (with_scratch(S, n, dt),) if keep else (), rhs)
    K, _, nrm2, pows, Xs = jax.lax.while_loop(cond, body, s0)
    K = jnp.where(nrm2 <= small, K, -1)
    return ((pows[0], K) if keep else None), K, Xs


def _dlyap_step(X, M):
    """X ← X + M X Mᵀ, M = A^(2^k) (or its transpose)."""
    return X + M @ X @ M.T


def dlyap_apply_impl(F, Q, *, trans=False):
    """X with A X Aᵀ − X + Q = 0 (Aᵀ X A − X + Q = 0 if trans) from F = dlyap_factor(A): the
    stored powers, then (when K > S) the later ones squared on from the last stored one."""
    pows, K = F
    dt = jnp.result_type(pows.dtype, jnp.asarray(Q).dtype)
    Q = jnp.asarray(Q, dt)

    def step(X, P):                  # M = A^(2^k) (its transpose if trans)
        return _dlyap_step(X, _oriented(P.astype(dt), trans))

    S = kept(pows)
    XS = jax.lax.fori_loop(0, jnp.clip(K, 0, S), lambda k, X: step(X, pows[k]), Q)

    def later(k, XP):                # A^(2^k) = (A^(2^(k−1)))², squared only where it is used
        X, P = XP
        P = P @ P
        return step(X, P), P
    X = jax.lax.fori_loop(S, jnp.maximum(K, S), later, (XS, pows[S - 1]))[0]
    return _nan_unless_solved(X, K)


def is_stable(A):
    """Whether ``lyap`` can solve with A: the sign iteration of A converged to −I (every
    eigenvalue has Re < 0, with a margin the iteration resolves in floating point). A boolean
    JAX scalar; jittable and vmappable. Where it is false, ``lyap(A, ·)`` is all NaN."""
    return _converged(_square_input(A, "is_stable"), _lyap_count)


def is_schur_stable(A):
    """Whether ``dlyap`` can solve with A: the squared powers A^(2^k) decayed below the unit
    roundoff (spectral radius < 1). A boolean JAX scalar; where it is false, ``dlyap(A, ·)`` is
    all NaN."""
    return _converged(_square_input(A, "is_schur_stable"), _dlyap_count)


def _square_input(A, who):
    A = jnp.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise InputError(f"{who} needs a square matrix, got an array of shape {tuple(A.shape)}")
    return A


@jax.jit
def _lyap_count(A):
    return lyap_factor_impl(A)[-1]


@jax.jit
def _dlyap_count(A):
    return dlyap_factor_impl(A)[-1]


def _converged(A, count):
    return count(A) >= 0


# ---- primitives ----------------------------------------------------------------------------
def _pair_shape(a, q, who):
    """A [n, n] and Q [n, n]: X is [n, n] with the promoted dtype."""
    a, q = shapes.square(a, f"{who}'s matrix A"), shapes.tensor(q)
    expect(q.ndim == 2 and dim_eq(q.shape[0], a.shape[0]) and dim_eq(q.shape[1], a.shape[1]),
           f"{who}: the right-hand side Q must have A's shape {fmt_shape(a.shape)}, got {q}")
    return TensorType(promote(a.dtype, q.dtype), a.shape)


def _lower(kind):
    """lyap(A, Q) → lyap_apply(lyap_factor(A), Q); lyap(Aᵀ, Q) → the same factor, trans=true.
    After CSE the forward solve and the adjoint's lyap(Aᵀ, Ȳ) share one factor."""
    def lower(b, e, prod):
        A, trans = resolve_transpose(e.inputs[0], prod)
        return emit_as(b, e, f"{kind}_apply", (_factor(b, A, kind).atom, e.inputs[1]), {"trans": trans})
    return lower


# lyap: X with A X + X Aᵀ + Q = 0; dX = lyap(A, dA X + X dAᵀ + dQ); linear in Q with
# transpose Q̄ = lyap(Aᵀ, Ȳ)  (⟨Ȳ, L(dQ)⟩ = ⟨L*(Ȳ), dQ⟩ with L* the operator of Aᵀ)
register(Primitive(
    "lyap", lambda A, Q: lyap_factor_solve_impl(A, Q, factor=False)[0],
    lambda types, p: _pair_shape(types[0], types[1], "lyap"),
    linear_in=(1,), math="A X + X Aᵀ + Q = 0", domains={0: "stable"}, lower=_lower("lyap"),
    doc="Continuous Lyapunov equation; A stable. All NaN when the sign iteration does not "
        "converge (see lagrad.is_stable).",
    frechet="frechet lyap(A, Q) -> X { dX = lyap(A, dA @ X + X @ dA' + dQ) }",
    transpose=_linear_in_b(lambda b, A, ct, p: b.lyap(b.transpose(A), ct))))

# dlyap: X with A X Aᵀ − X + Q = 0; dX = dlyap(A, dA X Aᵀ + A X dAᵀ + dQ); linear in Q with
# transpose Q̄ = dlyap(Aᵀ, Ȳ)
register(Primitive(
    "dlyap", lambda A, Q: dlyap_factor_solve_impl(A, Q, factor=False)[0],
    lambda types, p: _pair_shape(types[0], types[1], "dlyap"),
    linear_in=(1,), math="A X Aᵀ − X + Q = 0", domains={0: "contractive"}, lower=_lower("dlyap"),
    doc="Discrete Lyapunov (Stein) equation; spectral radius of A < 1. All NaN when the "
        "doubling does not converge (see lagrad.is_schur_stable).",
    frechet="frechet dlyap(A, Q) -> X { dX = dlyap(A, dA @ X @ A' + A @ X @ dA' + dQ) }",
    transpose=_linear_in_b(lambda b, A, ct, p: b.dlyap(b.transpose(A), ct))))


# ---- the factors and their applies (made by the lowering pass) ----------------------------
def _factor_shape(kind):
    return lambda types, p: FactorType(kind, shapes.same([shapes.square(types[0], f"{kind}_factor's argument")], p))


def _apply_shape(kind):
    who = f"{kind}_apply"
    return lambda types, p: _pair_shape(_factor_arg(types[0], kind, who), types[1], who)


def _factor_solve_shape(kind):
    """(F, X₁, …, X_m) for (A, Q₁, …, Q_m); F left out when the param ``factor`` is false."""
    factor, pair = _factor_shape(kind), f"{kind}_factor_solve"

    def shape(types, p):
        expect(len(types) >= 2, f"{pair} needs A and at least one right-hand side")
        trans = p.get("trans")
        expect(trans is None or len(trans) == len(types) - 1,
               f"{pair}: {len(types) - 1} right-hand sides but trans has {len(trans or ())} flags")
        Xs = tuple(_pair_shape(types[0], q, pair) for q in types[1:])
        return ((factor(types[:1], p),) if p.get("factor", True) else ()) + Xs
    return shape


def _flip(kind):
    """Transpose of Q ↦ apply(F, Q, trans): the apply with trans flipped (A ↔ Aᵀ)."""
    return _linear_in_b(lambda b, F, ct, p: b.emit(f"{kind}_apply", F, ct, trans=not p.get("trans", False)))


# lyap_factor: the sign-iteration inverses A_k⁻¹ (first S steps), scalings c_k, E = A_K + I (or
# the iterate A_S when K > S) and step count K (−1: A not stable)
register(Primitive("lyap_factor", lyap_factor_impl, _factor_shape("lyap"), internal=True,
                   math="F = {A_k⁻¹ (k < S), c_k, A_K + I or A_S} of sign(A)",
                   solve_with=("lyap_apply", "lyap_factor_solve")))

# lyap_factor_solve: (lyap_factor(A), lyap_apply(F, Q_i, trans_i) for each i) in one loop, F left
# out when factor=false (the `fuse_factor_solves` pass)
register(Primitive("lyap_factor_solve", lyap_factor_solve_impl, _factor_solve_shape("lyap"), nout=2,
                   internal=True, math="F = lyap_factor(A), A X_i + X_i Aᵀ + Q_i = 0 (Aᵀ if trans_i)"))

# lyap_apply: X with A X + X Aᵀ + Q = 0 (Aᵀ X + X A + Q = 0 if trans): Q_{k+1} =
# (c_k Q_k + c_k⁻¹ M_k Q_k M_kᵀ)/2, M_k = A_k⁻¹ (A_k⁻ᵀ), X = Q_K/2 + (E Q_K + Q_K Eᵀ)/4 (Eᵀ);
# linear in Q, transpose flips trans
register(Primitive(
    "lyap_apply", lyap_apply_impl, _apply_shape("lyap"), linear_in=(1,), kwargs={"trans": False},
    internal=True, math="A X + X Aᵀ + Q = 0 (Aᵀ if trans)", transpose=_flip("lyap")))

# dlyap_factor: the squared powers A^(2^k) (first S, then a scratch slot) and their count K
# (−1: spectral radius ≥ 1)
register(Primitive("dlyap_factor", dlyap_factor_impl, _factor_shape("dlyap"), internal=True,
                   math="F = {A^(2^k) (k < S)}", solve_with=("dlyap_apply", "dlyap_factor_solve")))

# dlyap_factor_solve: (dlyap_factor(A), dlyap_apply(F, Q_i, trans_i) for each i) in one loop, F
# left out when factor=false (`fuse_factor_solves`)
register(Primitive("dlyap_factor_solve", dlyap_factor_solve_impl, _factor_solve_shape("dlyap"), nout=2,
                   internal=True, math="F = dlyap_factor(A), A X_i Aᵀ − X_i + Q_i = 0 (Aᵀ if trans_i)"))

# dlyap_apply: X with A X Aᵀ − X + Q = 0 (Aᵀ if trans): X ← X + A_k X A_kᵀ; linear in Q,
# transpose flips trans
register(Primitive(
    "dlyap_apply", dlyap_apply_impl, _apply_shape("dlyap"), linear_in=(1,), kwargs={"trans": False},
    internal=True, math="A X Aᵀ − X + Q = 0 (Aᵀ if trans)", transpose=_flip("dlyap")))
