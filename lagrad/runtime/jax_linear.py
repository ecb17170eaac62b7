"""`linear_map(fun, fun_t, res, lin)`: a JAX primitive for a map linear in `lin` whose transpose
is given. JAX can evaluate it (forward mode, jax.linearize), transpose it (reverse mode), batch
it (vmap) and lower it (jit). The bridge (function.py) writes the derivative of a Function's
backward pass with it, so jax.grad of jax.grad runs lagrad's derived second-order programs:
JAX cannot reverse-differentiate the backward pass itself, whose loops (lyap, expm, cg) are
while loops with data-dependent trip counts. (jax.custom_derivatives.linear_call does the same
but has no batching rule, and jax.jacrev batches.)"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from ..errors import LagradError

linear_p = Primitive("lagrad_linear")
linear_p.multiple_results = True


def linear_map(fun, fun_t, res, lin):
    """`fun(*res, *lin)`, a list of arrays linear in `lin`; `fun_t(*res, *cts)` is its
    transpose, a list with one array per entry of `lin`. `fun` and `fun_t` are kept by identity
    (jit caches on them), so pass the same functions for the same map."""
    return linear_p.bind(*res, *lin, fun=fun, fun_t=fun_t, n_res=len(res))


def _impl(*args, fun, fun_t, n_res):
    return list(fun(*args))


def _abstract_eval(*avals, fun, fun_t, n_res):
    outs = jax.eval_shape(fun, *(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals))
    return [jax.core.ShapedArray(o.shape, o.dtype) for o in outs]


def _struct(a):
    a = a.aval if ad.is_undefined_primal(a) else a
    return jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a))


def _transpose(cts, *args, fun, fun_t, n_res):
    """lin̄ = fun_t(res, ȳ); the result is again a linear_map (fun and fun_t swapped), so a
    program that transposes it twice gets `fun` back."""
    res = args[:n_res]
    if any(ad.is_undefined_primal(r) for r in res):
        raise LagradError("lagrad's second-order bridge is linear in its directions only, not in the "
                          "point it is taken at; use f.hvp for this derivative")
    outs = jax.eval_shape(fun, *map(_struct, args))
    cts = [jnp.zeros(o.shape, o.dtype) if type(ct) is ad.Zero else ct for ct, o in zip(cts, outs)]
    return [None] * n_res + list(linear_p.bind(*res, *cts, fun=fun_t, fun_t=fun, n_res=n_res))


def _jvp(primals, tangents, *, fun, fun_t, n_res):
    """Linear in `lin`: the tangent is the same map of the tangents. A direction in `res` (a third
    derivative through JAX's transforms) is not supported."""
    if any(type(t) is not ad.Zero for t in tangents[:n_res]):
        raise LagradError("a third derivative through JAX's transforms of a lagrad Function is not "
                          "supported (jax.grad of jax.grad is); use f.hvp inside one JAX transform")
    res = primals[:n_res]
    outs = linear_p.bind(*primals, fun=fun, fun_t=fun_t, n_res=n_res)
    lin_t = [jnp.zeros(jnp.shape(p), jnp.result_type(p)) if type(t) is ad.Zero else t
             for p, t in zip(primals[n_res:], tangents[n_res:])]
    return outs, linear_p.bind(*res, *lin_t, fun=fun, fun_t=fun_t, n_res=n_res)


def _batch(args, dims, *, fun, fun_t, n_res):
    """vmap of `fun` over the batched arguments (results batched on axis 0), and the transpose
    of that batched map: vmap of `fun_t`, summed over the batch for an unbatched direction."""
    axes = tuple(d if isinstance(d, int) else None for d in dims)      # not mapped: None (or a marker)
    size = next(a.shape[d] for a, d in zip(args, axes) if d is not None)
    one = [jax.ShapeDtypeStruct(tuple(s for k, s in enumerate(a.shape) if k != d), a.dtype)
           for a, d in zip(args, axes)]
    n_out = len(jax.eval_shape(fun, *one))
    key = (fun, fun_t, axes, size, n_res)
    if key not in _BATCHED:
        vf = jax.vmap(lambda *a: list(fun(*a)), in_axes=axes, out_axes=0, axis_size=size)
        vt = jax.vmap(lambda *a: list(fun_t(*a)), in_axes=axes[:n_res] + (0,) * n_out, out_axes=0,
                      axis_size=size)

        def bt(*a):
            return [o.sum(0) if d is None else jnp.moveaxis(o, 0, d) for o, d in zip(vt(*a), axes[n_res:])]
        _BATCHED[key] = (vf, bt)
    bf, bt = _BATCHED[key]
    outs = linear_p.bind(*args, fun=bf, fun_t=bt, n_res=n_res)
    return outs, [0] * len(outs)


_BATCHED = {}      # (fun, fun_t, axes, size, n_res) -> the batched pair: jit's cache keys on the functions


linear_p.def_impl(_impl)
linear_p.def_abstract_eval(_abstract_eval)
ad.primitive_jvps[linear_p] = _jvp
ad.primitive_transposes[linear_p] = _transpose
batching.primitive_batchers[linear_p] = _batch
mlir.register_lowering(linear_p, mlir.lower_fun(_impl, multiple_results=True))
