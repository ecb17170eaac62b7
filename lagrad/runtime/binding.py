"""Call-time argument binding: arguments to arrays of the declared dtype, dimensions bound
from shapes and checked. Every mismatch is an InputError naming the argument."""
from __future__ import annotations

import functools

import numpy as np
import sympy
import jax
import jax.numpy as jnp

from ..compiler.primitive import suggest
from ..compiler.types import TensorType, as_dim
from ..errors import InputError

_JNP = {"f32": jnp.float32, "f64": jnp.float64}


def _shape_text(shape):
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def collect(fname, params, args, kwargs) -> list:
    """Arguments in parameter order from positional and keyword arguments."""
    names = [n for n, _ in params]
    if len(args) > len(names):
        raise InputError(f"`{fname}` takes {len(names)} argument(s) ({', '.join(names)}), got {len(args)}")
    values = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise InputError(f"`{fname}` has no argument `{k}`" + suggest(k, names))
        if k in values:
            raise InputError(f"argument `{k}` of `{fname}` given twice")
        values[k] = v
    missing = [n for n in names if n not in values]
    if missing:
        raise InputError(f"`{fname}` is missing argument(s) {', '.join('`' + m + '`' for m in missing)}")
    return [values[n] for n in names]


_NP = {"f32": np.float32, "f64": np.float64}


def _label(name) -> str:
    """How messages name a value: ``argument `x` `` for a parameter name, or a phrase as given
    ("the cotangent of output 0 of `f`")."""
    return name if name.startswith("the ") else f"argument `{name}`"


def convert(name, value, t: TensorType):
    """The argument as an array of the declared dtype (JAX arrays and tracers stay on device)."""
    if isinstance(value, (jax.Array, jax.core.Tracer)):
        if value.dtype == _JNP[t.dtype]:
            return value
        _check_kind(name, np.dtype(value.dtype).kind, value.dtype, t)
        return value.astype(_JNP[t.dtype])
    try:
        arr = np.asarray(value)
    except Exception as e:  # ragged lists and the like
        raise InputError(f"{_label(name)} is not an array: {e}") from None
    if arr.dtype == object and isinstance(value, int):        # 10**20: past int64, as a float
        try:
            arr = np.asarray(float(value))
        except OverflowError:
            raise InputError(f"{_label(name)} is an integer too large for {t.dtype}") from None
    _check_kind(name, arr.dtype.kind, arr.dtype, t)
    return arr.astype(_NP[t.dtype], copy=False)


def _check_kind(name, kind, dtype, t):
    if kind == "c":
        raise InputError(f"{_label(name)} is complex; lagrad models take real {t.dtype} arrays")
    if kind not in "biuf" and not jnp.issubdtype(dtype, jnp.floating):     # bfloat16 is kind "V"
        raise InputError(f"{_label(name)} has dtype {dtype}; expected a real array ({t})")


def bind(fname, params, args, kwargs, check_finite=False):
    """(arrays in parameter order, {dimension name: int}). With `check_finite`, concrete
    arguments holding NaN or inf are refused (arrays being traced by JAX cannot be looked at)."""
    values = collect(fname, params, args, kwargs)
    arrays, dims, origin = [], {}, {}
    for (name, t), v in zip(params, values):
        a = convert(name, v, t)
        if a.ndim != t.ndim:
            raise InputError(f"argument `{name}` must be {t} ({t.ndim} dimension(s)), got shape {_shape_text(a.shape)}")
        if check_finite:
            finite_check(f"argument `{name}`", a)
        for k, d in enumerate(t.shape):
            if d.is_Symbol:
                got = int(a.shape[k])
                if got == 0:
                    raise InputError(f"dimension `{d.name}` is 0 in argument `{name}` (axis {k}); "
                                     f"a dimension's size must be at least 1")
                if d.name in dims and dims[d.name] != got:
                    first, axis = origin[d.name]
                    raise InputError(f"dimension `{d.name}` is {dims[d.name]} from argument `{first}` (axis {axis}) "
                                     f"but {got} from argument `{name}` (axis {k})")
                dims.setdefault(d.name, got)
                origin.setdefault(d.name, (name, k))
        arrays.append(a)
    for (name, t), a in zip(params, arrays):
        for k, d in enumerate(t.shape):
            if not d.is_Symbol:
                syms, fn = _dim_fn(d)
                unbound = [x for x in syms if x not in dims]
                if unbound:
                    raise InputError(f"argument `{name}` axis {k} is {d}, and no argument fixes "
                                     f"{', '.join('`' + x + '`' for x in unbound)}")
                want = int(fn(*(dims[x] for x in syms)))
                if want < 1:
                    sizes = ", ".join(f"{x} = {dims[x]}" for x in syms)
                    raise InputError(f"argument `{name}` axis {k} is {d} = {want} for {sizes}; a dimension's "
                                     f"size must be at least 1")
                if int(a.shape[k]) != want:
                    size = f"{d} = {want}" if syms else f"{want}"
                    raise InputError(f"argument `{name}` axis {k} must be {size}, got {int(a.shape[k])}")
    return arrays, dims


def check_dims(fname, checks, dims, source=None):
    """InputError when the sizes of a call put an index of the model out of range, or make a
    size it builds less than 1: each check is (expression in the dimensions that must be >= 0,
    source span, what is wrong otherwise)."""
    for expr, span, what in checks:
        syms, fn = _dim_fn(expr)
        if any(x not in dims for x in syms):
            continue                         # sizes not known (printing a program): nothing to check
        if int(fn(*(dims[x] for x in syms))) < 0:
            sizes = ", ".join(f"{x} = {dims[x]}" for x in syms)
            need = f"{expr} >= 0"
            if isinstance(-expr, sympy.Mod):          # -Mod(a, b) >= 0: b divides a
                need = f"{(-expr).args[0]} to be a multiple of {(-expr).args[1]}"
            raise InputError(f"`{fname}`: {what} for the arguments' sizes ({sizes}; it needs "
                             f"{need})", span=span, source=source)


def finite_check(what, a):
    """InputError when the concrete array `a` holds NaN or inf (tracers pass unchecked)."""
    if isinstance(a, jax.core.Tracer):
        return
    bad = ~np.isfinite(np.asarray(a))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        first = np.asarray(a)[where] if where else np.asarray(a)
        at = f" (first at index {where})" if where else ""
        raise InputError(f"{what} holds {int(bad.sum())} non-finite value(s), {first}{at}; "
                         f"check_finite=True refuses NaN and inf")


def cotangent(what, value, shape, dtype):
    """A cotangent (or a tangent) for a value of `shape` and float `dtype`: real, and of that
    shape or broadcastable to it (a scalar seeds every entry). Ready values, a jax.Array of that
    shape and dtype or a Python number for a scalar, are passed on without the checks."""
    if type(value) in (float, int) and not shape:
        return np.asarray(value, dtype)
    if isinstance(value, jax.Array) and value.shape == tuple(shape) and value.dtype == dtype:
        return value
    t = TensorType("f32" if np.dtype(dtype) == np.float32 else "f64", ())
    a = convert(what, value, t)
    shape = tuple(int(s) for s in shape)
    try:
        if isinstance(a, np.ndarray):       # NumPy or Python values: broadcast on the host (an eager
            return np.broadcast_to(a, shape)   # jnp op costs tens of µs; the jitted call converts)
        return a if a.shape == shape else jnp.broadcast_to(a, shape)
    except (ValueError, TypeError):
        raise InputError(f"{what} has shape {_shape_text(np.shape(a))}; expected {_shape_text(shape)}") from None


@functools.lru_cache(maxsize=4096)
def _dim_fn(d):
    """(names, function of their sizes) for a dimension expression, compiled once."""
    expr = as_dim(d)
    syms = tuple(sorted(x.name for x in expr.free_symbols))
    return syms, sympy.lambdify([sympy.Symbol(x, integer=True, positive=True) for x in syms],
                                expr.subs({x: sympy.Symbol(x.name, integer=True, positive=True)
                                           for x in expr.free_symbols}), modules="math")

