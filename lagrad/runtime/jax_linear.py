"""`linear_map(fun, fun_t, res, lin, out)`: a JAX primitive for a map linear in `lin` whose
transpose is given. JAX can evaluate it (forward mode, jax.linearize), transpose it (reverse
mode), batch it (vmap), differentiate it in `res`, and lower it (jit).

lagrad's bridge (function.py, Compiled.bridged and second_order) writes each derivative of a
Function as such a map over one of lagrad's derived programs (tangent, adjoint, hvp), so JAX's
transforms of a Function, in both modes and to second order, run those programs. JAX cannot
differentiate the programs itself in reverse: their loops (lyap, expm, cg) are while loops
with data-dependent trip counts. (jax.custom_derivatives.linear_call is close, but has no
batching rule, and jax.jacrev batches.)"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.interpreters import ad, batching, mlir

try:
    from jax.extend.core import Primitive
except ImportError:                  # jax before jax.extend.core
    from jax.core import Primitive

from ..errors import LagradError

linear_p = Primitive("lagrad_linear")
linear_p.multiple_results = True


def linear_map(fun, fun_t, res, lin, out):
    """`fun(*res, *lin)`: a list of arrays of the shapes and dtypes `out` (ShapeDtypeStructs or
    arrays), linear in `lin`; `fun_t(*res, *cts)` is its transpose, one array per entry of `lin`.
    `fun` and `fun_t` are kept by identity (JAX caches on them): pass the same functions for the
    same map."""
    return linear_p.bind(*res, *lin, fun=fun, fun_t=fun_t, n_res=len(res), out=_sig(out))


def _sig(xs):
    """((shape, dtype), ...): hashable, as a primitive's parameters must be."""
    return tuple((tuple(jnp.shape(x)), jnp.dtype(x.dtype if hasattr(x, "dtype") else jnp.result_type(x)))
                 for x in xs)


def _impl(*args, fun, fun_t, n_res, out):
    return list(fun(*args))


def _abstract_eval(*avals, fun, fun_t, n_res, out):
    return [jax.core.ShapedArray(s, d) for s, d in out]


def _lin_sig(args, n_res):
    return tuple((tuple(a.aval.shape), a.aval.dtype) if ad.is_undefined_primal(a) else _sig([a])[0]
                 for a in args[n_res:])


def _transpose(cts, *args, fun, fun_t, n_res, out):
    """lin̄ = fun_t(res, ȳ); the result is again a linear_map (fun and fun_t swapped), so a
    program that transposes it twice gets `fun` back."""
    res = args[:n_res]
    if any(ad.is_undefined_primal(r) for r in res):
        raise LagradError("lagrad's JAX bridge is linear in its directions only, not in the point "
                          "it is taken at")
    cts = [jnp.zeros(s, d) if type(ct) is ad.Zero else ct for ct, (s, d) in zip(cts, out)]
    lin = linear_p.bind(*res, *cts, fun=fun_t, fun_t=fun, n_res=n_res, out=_lin_sig(args, n_res))
    return [None] * n_res + list(lin)


def _jvp(primals, tangents, *, fun, fun_t, n_res, out):
    """Linear in `lin`: the tangent is the same map of the tangents, plus, for directions in
    `res`, the derivative of `fun` in those arguments, from JAX's jvp of `fun`. A `fun` whose
    derivative is again a linear_map (`fun.transposable_in_res`: lagrad's bridge) is
    differentiated in place. Any other gets that derivative as a linear_map whose transpose is
    JAX's (jax.linear_transpose), which fails for while loops: then a LagradError."""
    params = dict(fun=fun, fun_t=fun_t, n_res=n_res, out=out)
    res, lin = primals[:n_res], primals[n_res:]
    outs = linear_p.bind(*primals, **params)
    lin_t = [_zeros(p) if type(t) is ad.Zero else t for p, t in zip(lin, tangents[n_res:])]
    out_t = list(linear_p.bind(*res, *lin_t, **params))
    moved = tuple(k for k, t in enumerate(tangents[:n_res]) if type(t) is not ad.Zero)
    if moved:
        d_fun, d_fun_t = _in_res(fun, n_res, len(lin), moved)
        rt = [tangents[k] for k in moved]
        if getattr(fun, "transposable_in_res", False):
            more = d_fun(*res, *lin, *rt)
        else:
            more = linear_p.bind(*res, *lin, *rt, fun=d_fun, fun_t=d_fun_t, n_res=len(primals), out=out)
        out_t = [a + b for a, b in zip(out_t, more)]
    return outs, out_t


def _zeros(p):
    return jnp.zeros(jnp.shape(p), jnp.result_type(p))


_IN_RES = {}        # (fun, n_res, n_lin, moved) -> (its derivative in res[moved], that map's transpose)


def _in_res(fun, n_res, n_lin, moved):
    key = (fun, n_res, n_lin, moved)
    if key not in _IN_RES:
        n_all = n_res + n_lin

        def d_fun(*a):          # (res, lin, ṙ[moved]) ↦ ∂fun/∂res[moved] · ṙ
            res, lin, rt = a[:n_res], a[n_res:n_all], a[n_all:]

            def at(*r):
                args = list(res)
                for k, v in zip(moved, r):
                    args[k] = v
                return list(fun(*args, *lin))
            return list(jax.jvp(at, tuple(res[k] for k in moved), tuple(rt))[1])

        def d_fun_t(*a):        # (res, lin, ȳ) ↦ the transpose of d_fun, by JAX
            res, lin, cts = a[:n_res], a[n_res:n_all], a[n_all:]
            structs = [jax.ShapeDtypeStruct(jnp.shape(res[k]), jnp.result_type(res[k])) for k in moved]
            try:
                return list(jax.linear_transpose(lambda *rt: d_fun(*res, *lin, *rt), *structs)(list(cts)))
            except ValueError as e:
                if "Reverse-mode differentiation does not work" not in str(e):
                    raise
                raise LagradError("a third derivative of a lagrad Function through JAX's transforms in "
                                  "reverse mode is not supported for a model whose programs loop (lyap, "
                                  "dlyap, expm, cg, gmres); second derivatives (jax.grad of jax.grad, "
                                  "jax.hessian, jax.grad of jax.jvp) work, and f.hvp gives H·v") from None
        _IN_RES[key] = (d_fun, d_fun_t)
    return _IN_RES[key]


def _batch(args, dims, *, fun, fun_t, n_res, out):
    """vmap of `fun` over the batched arguments (results batched on axis 0), and the transpose
    of that batched map: vmap of `fun_t`, summed over the batch for an unbatched direction."""
    axes = tuple(d if isinstance(d, int) else None for d in dims)      # not mapped: None (or a marker)
    size = next(a.shape[d] for a, d in zip(args, axes) if d is not None)
    key = (fun, fun_t, axes, size, n_res, len(out))
    if key not in _BATCHED:
        vf = jax.vmap(lambda *a: list(fun(*a)), in_axes=axes, out_axes=0, axis_size=size)
        vt = jax.vmap(lambda *a: list(fun_t(*a)), in_axes=axes[:n_res] + (0,) * len(out), out_axes=0,
                      axis_size=size)

        def bf(*a):
            return vf(*a)

        def bt(*a):
            return [o.sum(0) if d is None else jnp.moveaxis(o, 0, d) for o, d in zip(vt(*a), axes[n_res:])]
        bf.transposable_in_res = getattr(fun, "transposable_in_res", False)     # vmap keeps it so
        bt.transposable_in_res = getattr(fun_t, "transposable_in_res", False)
        _BATCHED[key] = (bf, bt)
    bf, bt = _BATCHED[key]
    outs = linear_p.bind(*args, fun=bf, fun_t=bt, n_res=n_res, out=tuple(((size,) + s, d) for s, d in out))
    return outs, [0] * len(outs)


_BATCHED = {}      # (fun, fun_t, axes, size, n_res, n_out) -> the batched pair (JAX caches on the functions)


linear_p.def_impl(_impl)
linear_p.def_abstract_eval(_abstract_eval)
ad.primitive_jvps[linear_p] = _jvp
ad.primitive_transposes[linear_p] = _transpose
batching.primitive_batchers[linear_p] = _batch
mlir.register_lowering(linear_p, mlir.lower_fun(_impl, multiple_results=True))
