"""Construction: eye, ones, diag, hcat, vcat, outer.

Concatenation follows NumPy (``jnp.hstack`` / ``jnp.vstack``):

* ``hcat`` of matrices joins along columns (axis 1; row counts must agree); ``hcat`` of vectors
  and scalars joins them into one longer vector. Matrices and vectors do not mix.
* ``vcat`` joins along rows (axis 0): a vector ``[n]`` counts as one row ``[1, n]`` and a
  scalar as ``[1, 1]``, so ``vcat(u, v)`` of two vectors is a ``[2, n]`` matrix.

Both are jointly linear in all their inputs; the transpose splits the cotangent back into
the pieces with ``index``."""
from __future__ import annotations

import jax.numpy as jnp
import sympy

from ..compiler.builder import Undef, expect, is_zero
from ..compiler.primitive import ALL, Primitive, register
from ..compiler.types import ShapeError, TensorType, dim_eq, promote
from . import shapes
from .structure import _jdtype

MAX_CAT = 64          # hcat/vcat take up to this many inputs


# eye: the constant identity I_n
register(Primitive(
    "eye", lambda *, n, dtype="f64": jnp.eye(n, dtype=_jdtype(dtype)),
    lambda types, p: TensorType(p.get("dtype", "f64"), (p["n"], p["n"])), math="I",
    frechet=lambda b, x, dx, y, p: b.zero(y[0].type)))

# ones: the constant array of ones (like zeros)
register(Primitive(
    "ones", lambda *, shape, dtype="f64": jnp.ones(tuple(shape), _jdtype(dtype)),
    lambda types, p: TensorType(p.get("dtype", "f64"), tuple(p["shape"])), math="1",
    frechet=lambda b, x, dx, y, p: b.zero(y[0].type)))


def _diag_shape(types, params):
    t = shapes.tensor(types[0])
    if t.ndim == 1:
        return t.with_shape((t.shape[0], t.shape[0]))
    expect(t.ndim == 2 and dim_eq(t.shape[0], t.shape[1]), f"diag needs a vector or a square matrix, got {t}")
    return t.with_shape((t.shape[0],))


# diag: vector → diagonal matrix, square matrix → its diagonal; linear, and the two are each
# other's transpose, so the transpose of diag is diag
register(Primitive(
    "diag", jnp.diag, _diag_shape, linear_in=(0,), math="Y = diag(x)",
    frechet=lambda b, x, dx, y, p: b.diag(dx[0]),
    transpose=lambda b, ct, x, y, p: [b.diag(ct[0])]))


# ---- concatenation ------------------------------------------------------------------------
def _concat_shape(types, axis, name):
    """Shapes of the pieces as concatenated (vcat: vectors become rows) and the result type."""
    for t in types:
        shapes.tensor(t)
    expect(len(types) >= 1, f"{name} needs at least one argument")
    if axis == 1:
        ndims = {2 if t.ndim == 2 else 1 for t in types}
        expect(len(ndims) == 1 and max(t.ndim for t in types) <= 2,
               f"hcat joins matrices (along columns) or vectors and scalars (into a vector), "
               f"got {', '.join(map(str, types))}")
        if ndims == {1}:
            pieces = [(sympy.Integer(1),) if t.ndim == 0 else t.shape for t in types]
            axis = 0
        else:
            pieces = [t.shape for t in types]
    else:
        expect(max(t.ndim for t in types) <= 2, f"vcat joins matrices, vectors and scalars, "
                                                 f"got {', '.join(map(str, types))}")
        pieces = [(1,) * (2 - t.ndim) + tuple(t.shape) for t in types]
    other = 1 - axis if len(pieces[0]) == 2 else None
    if other is not None:
        for t, s in zip(types, pieces):
            if not dim_eq(s[other], pieces[0][other]):
                what = "row" if other == 0 else "column"
                raise ShapeError(f"{name}: arguments have different {what} counts, {types[0]} and {t}")
    total = sympy.expand(sum(s[axis] for s in pieces))
    shape = list(pieces[0])
    shape[axis] = total
    out = TensorType(promote(*[t.dtype for t in types]), tuple(shape))
    return pieces, axis, out.with_dtype(shapes._dt(out))


def _concat_split(b, ct, xs, axis, name):
    """The transpose: cut ȳ back into the pieces (`index` along `axis`)."""
    pieces, axis, out = _concat_shape([x.type for x in xs], axis, name)
    res, lo = [], sympy.Integer(0)
    for x, s in zip(xs, pieces):
        hi = sympy.expand(lo + s[axis])
        if isinstance(x, Undef) and not is_zero(ct):
            if x.ndim == len(out.shape):
                spec = (("slice", lo, hi),) if axis == 0 else (("slice", 0, out.shape[0]), ("slice", lo, hi))
            else:                                          # a vector row of vcat, a scalar of hcat
                spec = (("at", lo),) + (("at", 0),) * (len(out.shape) - 1 - x.ndim)
            res.append(b.index(ct, spec=spec))
        else:
            res.append(None)
        lo = hi
    return res


def _register_cat(name, axis, fn, math):
    shape = lambda types, p: _concat_shape(types, axis, name)[2]

    register(Primitive(
        name, lambda *xs: fn(xs), shape, linear_in=ALL, joint=True,
        min_args=1, max_args=MAX_CAT, math=math,
        frechet=lambda b, x, dx, y, p: b.emit(name, *dx),
        transpose=lambda b, ct, x, y, p: _concat_split(b, ct[0], x, axis, name)))


# hcat: Y = [A₁ A₂ …] (jnp.hstack); transpose splits Ȳ by columns
_register_cat("hcat", 1, jnp.hstack, "Y = [A₁ A₂ …]")
# vcat: Y = [A₁; A₂; …] (jnp.vstack); transpose splits Ȳ by rows
_register_cat("vcat", 0, jnp.vstack, "Y = [A₁; A₂; …]")


def _outer_transpose(b, ct, x, y, p):
    u, v = x
    if is_zero(ct[0]):
        return [None, None]
    if isinstance(u, Undef):
        return [ct[0] @ v, None]
    return [None, ct[0].T @ u]


def _outer_shape(types, params):
    u, v = shapes.tensor(types[0]), shapes.tensor(types[1])
    expect(u.ndim == 1 and v.ndim == 1, f"outer needs two vectors, got {u} and {v}")
    return TensorType(promote(u.dtype, v.dtype), (u.shape[0], v.shape[0]))


# outer: Y = u vᵀ, bilinear; transposes ū = Ȳ v, v̄ = Ȳᵀ u
register(Primitive(
    "outer", jnp.outer, _outer_shape, linear_in=(0, 1), math="Y = u vᵀ",
    frechet=lambda b, x, dx, y, p: b.outer(dx[0], x[1]) + b.outer(x[0], dx[1]),
    transpose=_outer_transpose))
