"""Reductions: mean, trace, dot, norm (``sum`` lives in structure.py)."""
from __future__ import annotations

import jax.numpy as jnp
import sympy

from ..compiler.builder import Undef, expect, is_zero
from ..compiler.primitive import Primitive, register
from ..compiler.types import TensorType, dim_eq, promote
from . import shapes
from .structure import _norm_axis, _sum_shape


def _mean_transpose(b, ct, x, y, p):
    t, axis = x[0].type, _norm_axis(p.get("axis"), x[0].ndim)
    count = sympy.Mul(*t.shape) if axis is None else t.shape[axis]
    return [b.broadcast(ct[0] / b.dimval(d=count), shape=tuple(t.shape), axis=axis)]


# mean: linear, y = Σ x / N; transpose spreads ȳ / N back over the averaged axes
register(Primitive(
    "mean", lambda x, *, axis=None: jnp.mean(x, axis=axis), _sum_shape, linear_in=(0,),
    kwargs={"axis": None}, math="y = Σ x / N",
    frechet=lambda b, x, dx, y, p: b.mean(dx[0], **p), transpose=_mean_transpose))


def _trace_shape(types, params):
    t = shapes.square(types[0], "trace's argument")
    return TensorType(shapes._dt(t), ())


# trace: linear, y = tr(A); transpose Ā = ȳ I
register(Primitive(
    "trace", jnp.trace, _trace_shape, linear_in=(0,), math="y = tr(A)",
    frechet=lambda b, x, dx, y, p: b.trace(dx[0]),
    transpose=lambda b, ct, x, y, p: [ct[0] * b.eye(n=x[0].shape[0], dtype=shapes._dt(x[0].type))]))


def _dot_shape(types, params):
    u, v = shapes.tensor(types[0]), shapes.tensor(types[1])
    expect(u.ndim == 1 and v.ndim == 1, f"dot needs two vectors, got {u} and {v}; use `@` for matrices")
    expect(dim_eq(u.shape[0], v.shape[0]), f"dot: the vectors have different lengths, {u} and {v}")
    return TensorType(promote(u.dtype, v.dtype), ())


def _dot_transpose(b, ct, x, y, p):
    u, v = x
    if is_zero(ct[0]):
        return [None, None]
    return [ct[0] * v, None] if isinstance(u, Undef) else [None, ct[0] * u]


# dot: y = uᵀv, bilinear; transposes ū = ȳ v, v̄ = ȳ u
register(Primitive(
    "dot", jnp.dot, _dot_shape, linear_in=(0, 1), math="y = uᵀ v",
    frechet=lambda b, x, dx, y, p: b.dot(dx[0], x[1]) + b.dot(x[0], dx[1]),
    transpose=_dot_transpose))


def _norm_shape(types, params):
    t = shapes.tensor(types[0])
    expect(t.ndim in (1, 2), f"norm needs a vector or a matrix, got {t}")
    return TensorType(shapes._dt(t), ())


# norm: n = ‖x‖₂ (Frobenius for matrices); dn = ⟨x, dx⟩ / n
register(Primitive(
    "norm", jnp.linalg.norm, _norm_shape, math="n = ‖x‖",
    frechet=lambda b, x, dx, y, p: b.sum(x[0] * dx[0]) / y[0]))
