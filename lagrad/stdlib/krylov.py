"""Krylov solvers on matrix-free operators: ``cg(K, b, tol=, maxiter=, M=)`` and
``gmres(K, b, restart=, tol=, maxiter=, M=)``, with implicit derivatives.

Both solve K x = b for an operator K (an ``op``, see lagrad/compiler/operators.py) whose body
closes over model values θ; those values are the primitive's extra inputs (after b), so an
equation reads ``x = cg(b, θ₁, θ₂, K=op K, nk=2, ...)``.

Rules (RULES.md, "Matrix-free solves"): x = K(θ)⁻¹ b is linear in b, and
* Fréchet: dx = K⁻¹(db − (dK) x), where (dK) x is the tangent of θ ↦ K(θ) x at fixed x — the
  compiler linearizes the operator's body in θ — solved with the same operator, preconditioner
  and tolerance;
* transpose (in b): b̄ = K⁻ᵀ x̄, one solve with the transposed operator (derived by transposing
  the body) and the transposed preconditioner; for cg, K = Kᵀ and M = Mᵀ.
The derived adjoint is therefore λ = K⁻ᵀ x̄, b̄ = λ, θ̄ = −(adjoint of θ ↦ K(θ) x)(λ): one more
solve, never a backward pass through the iterations, so memory does not grow with them.

The solvers run in ``lax.while_loop`` from x₀ = 0 and stop when the residual is ≤ tol·‖b‖ or
after ``maxiter`` iterations (default 10 n); a solve that reaches maxiter without meeting the test
returns all NaN (tol = 0: exactly maxiter iterations, the last iterate; docs/robustness.md). The
default tol is 1e-10, or 1e-5 for float32 right-hand sides (1e-10 is below float32's rounding,
so an f32 solve would never meet it). cg is preconditioned CG (M ≈ K⁻¹, symmetric positive
definite); its test reads the residual its recurrence updates, which for a very ill-conditioned K
drifts from b − K x by rounding (as in scipy's and jax.scipy's cg). gmres is restarted GMRES(m)
with right preconditioning (K M y = b, x = M y), so its stopping test uses the true residual;
Arnoldi by classical Gram–Schmidt applied twice.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..compiler.builder import is_zero
from ..compiler.operators import Operator, apply_tangent
from ..compiler.primitive import Primitive, register, suggest
from ..dsl import ast
from ..compiler.types import ShapeError, TensorType, dim_eq, fmt_shape
from ..errors import LaNameError, LaTypeError


# ---- numerics ------------------------------------------------------------------------------
def _split(caps, nk):
    return caps[:nk], caps[nk:]


def _apply(op, caps):
    if op is None:
        return lambda v: v
    return lambda v: op(v, *caps)[0]          # operator functions return a 1-tuple


def _maxiter(maxiter, n):
    return 10 * n if maxiter is None else int(maxiter)


def _tol(tol, dtype):
    """The tolerance asked for, else the default: 1e-10, 1e-5 for float32 (see the module doc)."""
    if tol is not None:
        return tol
    return 1e-5 if jnp.dtype(dtype) == jnp.float32 else 1e-10


def cg_impl(b, *caps, K, nk, M=None, tol=None, maxiter=None):
    """Preconditioned conjugate gradients from x₀ = 0."""
    b = jnp.asarray(b)
    tol = _tol(tol, b.dtype)
    kc, mc = _split(caps, nk)
    A, P = _apply(K, kc), _apply(M, mc)
    stop = tol * jnp.linalg.norm(b)
    it_max = _maxiter(maxiter, b.shape[0])

    def cond(s):
        k, _, r, _, _ = s
        return (k < it_max) & (jnp.linalg.norm(r) > stop)

    def body(s):
        k, x, r, p, rz = s
        Ap = A(p)
        alpha = rz / jnp.vdot(p, Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        z = P(r)
        rz_new = jnp.vdot(r, z)
        p = z + (rz_new / rz) * p
        return k + 1, x, r, p, rz_new

    z0 = P(b)
    s0 = (jnp.array(0, jnp.int32), jnp.zeros_like(b), b, z0, jnp.vdot(b, z0))
    _, x, r, _, _ = jax.lax.while_loop(cond, body, s0)
    return _unless_converged(x, jnp.linalg.norm(r), stop, tol)


def _unless_converged(x, res, stop, tol):
    """x where the residual test passed; all NaN where the solver stopped at maxiter without
    meeting it (a singular, indefinite for cg, or too ill-conditioned K): never a silent finite
    wrong answer. tol = 0 asks for exactly maxiter iterations and keeps the last iterate."""
    if tol == 0:
        return x
    return jnp.where(res <= stop, x, jnp.nan)


def gmres_impl(b, *caps, K, nk, M=None, restart=30, tol=None, maxiter=None):
    """Restarted GMRES(m), right-preconditioned, from x₀ = 0."""
    b = jnp.asarray(b)
    tol = _tol(tol, b.dtype)
    n = b.shape[0]
    m = max(1, min(int(restart), n))
    kc, mc = _split(caps, nk)
    A, P = _apply(K, kc), _apply(M, mc)
    AP = (lambda v: A(P(v)))
    stop = tol * jnp.linalg.norm(b)
    it_max = _maxiter(maxiter, n)
    tiny = jnp.finfo(b.dtype).tiny

    def cycle(x, r, beta):
        # the Krylov basis is stored by rows (V[j] is v_j): reading and writing a basis vector
        # touches contiguous memory, and the Gram–Schmidt products are plain matrix–vector ones
        V = jnp.zeros((m + 1, n), b.dtype).at[0].set(r / jnp.where(beta > tiny, beta, 1))
        H = jnp.zeros((m + 1, m), b.dtype)

        def arnoldi_step(j, VH):
            V, H = VH
            w = AP(V[j])
            mask = (jnp.arange(m + 1) <= j).astype(b.dtype)
            h = (V @ w) * mask                          # classical Gram–Schmidt ...
            w = w - h @ V
            h2 = (V @ w) * mask                         # ... applied twice
            w = w - h2 @ V
            h = h + h2
            hn = jnp.linalg.norm(w)
            V = V.at[j + 1].set(w / jnp.where(hn > tiny, hn, 1))
            H = H.at[:, j].set(h.at[j + 1].set(hn))
            return V, H
        V, H = jax.lax.fori_loop(0, m, arnoldi_step, (V, H))
        e1 = jnp.zeros((m + 1,), b.dtype).at[0].set(beta)
        y = jnp.linalg.lstsq(H, e1)[0]
        return x + P(y @ V[:m])

    def cond(s):
        k, x, r, res = s
        return (k < it_max) & (res > stop)

    def body(s):
        k, x, r, res = s
        x = cycle(x, r, res)
        r = b - A(x)                                    # the true residual: the stopping test
        return k + m, x, r, jnp.linalg.norm(r)          # and the next cycle's start

    s0 = (jnp.array(0, jnp.int32), jnp.zeros_like(b), b, jnp.linalg.norm(b))
    _, x, _, res = jax.lax.while_loop(cond, body, s0)
    return _unless_converged(x, res, stop, tol)


# ---- shape, elaboration, rules -------------------------------------------------------------
def _solver_shape(name):
    def shape(types, params):
        bt = types[0]
        if not isinstance(bt, TensorType) or bt.ndim != 1:
            raise ShapeError(f"{name}: the right-hand side must be a vector, got {bt}")
        K = params["K"]
        for what, op in (("the operator", K), ("the preconditioner M", params.get("M"))):
            if op is None:
                continue
            if not (op.out_type.ndim == 1 and dim_eq(op.out_type.shape[0], bt.shape[0])):
                raise ShapeError(f"{name}: {what} `{op.name}` maps f64{fmt_shape(op.in_type.shape)} to "
                                 f"{op.out_type}; it must map the right-hand side's shape to itself")
        return TensorType("f64" if bt.dtype not in ("f32", "f64") else bt.dtype, bt.shape)
    return shape


def operator_value(el, node, scope, what):
    """The operator a name or an expression denotes (`K`, `blr(D, U, V)`, `block_jacobi(A,
    block=4)`): an `op` closure or a BLR operator (anything with `apply(el, x, node)` and
    `instance(el, in_type, node)`), or a LagradError at `node`."""
    named = isinstance(node, ast.Name)
    v = scope.lookup(node.id) if named else el.expr(node, scope)
    if v is None and named:
        raise el.err(LaNameError, f"unknown operator `{node.id}`" + suggest(node.id, list(scope.all_names())), node)
    if hasattr(v, "apply") and hasattr(v, "instance"):
        return v
    if not named:
        raise el.err(LaTypeError, f"{what} must be an operator (`op K(v) = ...`, `blr(D, U, V)` or "
                     f"`block_jacobi(A, block=b)`), not an array; for a dense matrix A write "
                     f"`op K(v) = A @ v`", node)
    raise el.err(LaTypeError, f"{what} must be an operator (`op {node.id}(v) = ...`), but `{node.id}` is a value; "
                 f"for a dense matrix A write `op {node.id}(v) = A @ v`", node)


def _operator_arg(el, node, scope, what, b_type) -> Operator:
    """The operator program a solver applies to arguments of `b_type`."""
    return operator_value(el, node, scope, what).instance(el, b_type, node)


def _elaborate_solver(name, numeric_kwargs):
    def elaborate(el, node, scope):
        if len(node.args) != 2:
            raise el.err(LaTypeError, f"`{name}` takes an operator and a right-hand side, got {len(node.args)} "
                         f"argument(s)", node)
        b = el.single(el.value(node.args[1], scope), node.args[1])
        K = _operator_arg(el, node.args[0], scope, f"the first argument of `{name}`", b.type)
        params, M = {}, None
        for kw in node.kwargs:
            if kw.name == "M":
                M = _operator_arg(el, kw.value, scope, f"`{name}`'s preconditioner M", b.type)
            elif kw.name in numeric_kwargs:
                if kw.name in params:
                    raise el.err(LaNameError, f"keyword argument `{kw.name}` given twice", kw)
                v = params[kw.name] = el.kwarg_value(kw, scope, numeric_kwargs[kw.name], name)
                least = 0 if kw.name == "tol" else 1              # tol ≥ 0; maxiter, restart ≥ 1
                if isinstance(v, (int, float)) and not v >= least:
                    raise el.err(LaTypeError, f"`{name}`'s `{kw.name}` must be at least {least}, got {v}", kw.value)
            else:
                raise el.err(LaNameError, f"`{name}` has no keyword argument `{kw.name}`" +
                             (suggest(kw.name, list(numeric_kwargs) + ["M"]) or
                              f"; it takes {', '.join(list(numeric_kwargs) + ['M'])}"), kw)
        caps = [el.captured(c) for c in K.captured] + ([el.captured(c) for c in M.captured] if M else [])
        params.update(K=K, nk=len(K.captured), M=M)
        return el.emit(name, [b] + caps, params, node)
    return elaborate


def _frechet(name):
    def rule(b, x, dx, y, p):
        """dx = K⁻¹(db − (dK) x) with the same operator, preconditioner and tolerance."""
        K, nk = p["K"], p["nk"]
        caps = list(x[1:])
        dKx = apply_tangent(b, K, y[0], caps[:nk], list(dx[1:1 + nk]))
        rhs = dx[0] if is_zero(dKx) else (-dKx if is_zero(dx[0]) else dx[0] - dKx)
        if is_zero(rhs):
            return b.zero(y[0].type)
        return b.emit(name, rhs, *caps, **p)
    return rule


def _transpose(name, symmetric):
    def rule(b, ct, x, y, p):
        """b̄ = K⁻ᵀ ȳ (cg: K = Kᵀ)."""
        if is_zero(ct[0]):
            return [None] * len(x)
        q = dict(p)
        if not symmetric:
            q["K"] = p["K"].transposed()
            q["M"] = p["M"].transposed() if p.get("M") is not None else None
        return [b.emit(name, ct[0], *x[1:], **q)] + [None] * (len(x) - 1)
    return rule


_CG_KW = {"tol": 1e-10, "maxiter": None}
_GMRES_KW = {"restart": 30, "tol": 1e-10, "maxiter": None}

# cg: x = K⁻¹b (K SPD); dx = K⁻¹(db − (dK)x); transpose b̄ = K⁻¹x̄ (K = Kᵀ)
register(Primitive(
    "cg", cg_impl, _solver_shape("cg"), linear_in=(0,), kwargs=dict(_CG_KW), min_args=2, max_args=2,
    math="x = K⁻¹ b (conjugate gradients)", elaborate=_elaborate_solver("cg", _CG_KW),
    frechet=_frechet("cg"), transpose=_transpose("cg", symmetric=True),
    doc="Solve K x = b for a symmetric positive definite operator K; implicit gradients."))

# gmres: x = K⁻¹b; dx = K⁻¹(db − (dK)x); transpose b̄ = K⁻ᵀx̄ (the transposed operator)
register(Primitive(
    "gmres", gmres_impl, _solver_shape("gmres"), linear_in=(0,), kwargs=dict(_GMRES_KW), min_args=2,
    max_args=2, math="x = K⁻¹ b (restarted GMRES)", elaborate=_elaborate_solver("gmres", _GMRES_KW),
    frechet=_frechet("gmres"), transpose=_transpose("gmres", symmetric=False),
    doc="Solve K x = b for a general operator K; implicit gradients."))
