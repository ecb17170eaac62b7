"""Structural primitives the compiler itself emits: transpose, zeros, broadcast, sum,
indexing and its transpose (zero padding)."""
from __future__ import annotations

import jax.numpy as jnp
import sympy

from ..compiler.builder import expect
from ..compiler.primitive import Primitive, register
from ..compiler.types import TensorType, WEAK
from . import shapes


def _dtype(p):
    return p.get("dtype", "f64")


def _jdtype(name):
    return jnp.float32 if name == "f32" else jnp.float64


def _transpose_shape(types, params):
    t = shapes.tensor(types[0])
    expect(t.ndim <= 2, f"transpose needs a matrix or vector, got {t}")
    return t.with_shape(t.shape[::-1])


# transpose: d(Aᵀ) = dAᵀ; self-adjoint up to transposition: Ā = Ȳᵀ
register(Primitive(
    "transpose", lambda a: jnp.asarray(a).T, _transpose_shape, linear_in=(0,), math="Y = Aᵀ",
    codegen=lambda a, p: f"{a[0]}.T",
    frechet=lambda b, x, dx, y, p: dx[0].T,
    transpose=lambda b, ct, x, y, p: [ct[0].T]))

# zeros: a constant
register(Primitive(
    "zeros", lambda *, shape, dtype="f64": jnp.zeros(tuple(shape), _jdtype(dtype)),
    lambda types, p: TensorType(_dtype(p), tuple(p["shape"])), math="0",
    codegen=lambda a, p: f"jnp.zeros({_shape_src(p['shape'])}, {_dt_src(p.get('dtype', 'f64'))})",
    frechet=lambda b, x, dx, y, p: b.zero(y[0].type)))


def _shape_src(shape):
    from ..runtime.codegen import py_expr
    return "(" + "".join(py_expr(d) + ", " for d in shape) + ")"


def _dt_src(dt):
    return "jnp.float32" if dt == "f32" else "jnp.float64"


def _sum_shape(types, params):
    t = shapes.tensor(types[0])
    axis = params.get("axis")
    if axis is None:
        return TensorType(t.dtype if t.dtype != WEAK else "f64", ())
    expect(isinstance(axis, int) and -t.ndim <= axis < t.ndim,
           f"axis {axis} is out of range for {t}")
    axis %= t.ndim
    return t.with_shape(t.shape[:axis] + t.shape[axis + 1:])


def _norm_axis(axis, ndim):
    return None if axis is None else axis % ndim


# sum: linear; transpose broadcasts ȳ back over the summed axes
register(Primitive(
    "sum", lambda x, *, axis=None: jnp.sum(x, axis=axis), _sum_shape, linear_in=(0,),
    kwargs={"axis": None}, math="y = Σ x",
    frechet=lambda b, x, dx, y, p: b.sum(dx[0], **p),
    transpose=lambda b, ct, x, y, p: [b.broadcast(ct[0], shape=tuple(x[0].shape),
                                                  axis=_norm_axis(p.get("axis"), x[0].ndim))]))


def _broadcast_impl(x, *, shape, axis=None):
    if axis is not None:
        x = jnp.expand_dims(x, axis)
    return jnp.broadcast_to(x, tuple(shape))


def _broadcast_shape(types, params):
    t = shapes.tensor(types[0])
    return TensorType(t.dtype if t.dtype != WEAK else "f64", tuple(params["shape"]))


# broadcast: copies x along `axis` (or everywhere for a scalar); transpose: sum over it
register(Primitive(
    "broadcast", _broadcast_impl, _broadcast_shape, linear_in=(0,), internal=True,
    math="Y = x broadcast to shape",
    frechet=lambda b, x, dx, y, p: b.broadcast(dx[0], **p),
    transpose=lambda b, ct, x, y, p: [b.sum(ct[0], axis=p.get("axis"))]))


# ---- indexing -----------------------------------------------------------------------------
# An index spec is a tuple with one item per indexed dimension: ("at", i) or ("slice", lo, hi),
# bounds being sympy expressions in the dimensions, already made non-negative.

def index_shape_of(shape, spec):
    out = []
    for d, item in zip(shape, spec):
        if item[0] == "slice":
            out.append(sympy.expand(item[2] - item[1]))
    out.extend(shape[len(spec):])
    return tuple(out)


def _index_shape(types, params):
    t = shapes.tensor(types[0])
    spec = params["spec"]
    expect(len(spec) <= t.ndim, f"too many indices ({len(spec)}) for {t}")
    return t.with_shape(index_shape_of(t.shape, spec))


def _np_index(spec):
    return tuple(int(it[1]) if it[0] == "at" else slice(int(it[1]), int(it[2])) for it in spec)


def _index_src(a, spec):
    """`a[spec]` as source; positions may be expressions (a scan's iteration counter)."""
    from ..runtime.codegen import py_expr
    parts = [py_expr(it[1]) if it[0] == "at" else f"{py_expr(it[1])}:{py_expr(it[2])}" for it in spec]
    return f"{a}[{', '.join(parts)}]"


def _pad_src(a, p):
    from ..runtime.codegen import py_expr
    return _index_src(f"jnp.zeros({py_expr(tuple(p['shape']))}, {a[0]}.dtype).at", p["spec"]) + f".set({a[0]})"


# index: linear; transpose pads ȳ with zeros back to the indexed shape
register(Primitive(
    "index", lambda x, *, spec: x[_np_index(spec)], _index_shape, linear_in=(0,), internal=True,
    math="y = x[spec]", codegen=lambda a, p: _index_src(a[0], p["spec"]),
    frechet=lambda b, x, dx, y, p: b.index(dx[0], **p),
    transpose=lambda b, ct, x, y, p: [b.index_pad(ct[0], spec=p["spec"], shape=tuple(x[0].shape))]))


def _pad_impl(y, *, spec, shape):
    y = jnp.asarray(y)
    return jnp.zeros(tuple(shape), y.dtype).at[_np_index(spec)].set(y)


def _pad_shape(types, params):
    t = shapes.tensor(types[0])
    return t.with_shape(tuple(params["shape"]))


# index_pad: zeros of `shape` with y written at spec; transpose: index
register(Primitive(
    "index_pad", _pad_impl, _pad_shape, linear_in=(0,), internal=True,
    math="Y = 0 with Y[spec] = y", codegen=_pad_src,
    frechet=lambda b, x, dx, y, p: b.index_pad(dx[0], **p),
    transpose=lambda b, ct, x, y, p: [b.index(ct[0], spec=p["spec"])]))


# dimval: a dimension's value as a number (`sum(x) / n`); constant, so its tangent is zero
register(Primitive(
    "dimval", lambda *, d: float(d), lambda types, p: TensorType(WEAK, ()), internal=True,
    zero_tangent=True, math="y = n (a dimension)",
    codegen=lambda a, p: f"float({_dim_src(p['d'])})"))


def _dim_src(d):
    from ..runtime.codegen import py_expr
    return py_expr(d)


# astype: y = x in another precision (an f32 input's cotangent in a mixed model is f32, as in
# JAX); linear, transpose: ȳ in x's precision
register(Primitive(
    "astype", lambda x, *, dtype: jnp.asarray(x).astype(jnp.float32 if dtype == "f32" else jnp.float64),
    lambda types, p: shapes.tensor(types[0]).with_dtype(p["dtype"]), linear_in=(0,), internal=True,
    math="y = x (as dtype)", kwargs={"dtype": None},
    frechet=lambda b, x, dx, y, p: b.astype(dx[0], **p),
    transpose=lambda b, ct, x, y, p: [b.astype(ct[0], dtype=x[0].type.dtype)]))
