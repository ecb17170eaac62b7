"""``lagrad.primitive``: users register their own primitives. The shape rule defaults to
``jax.eval_shape`` of the implementation at sample sizes mapped back to symbolic dimensions;
the Fréchet rule is a ``frechet`` block in the language (or a builder function); the transpose
rule (for ``linear_in`` arguments) is a builder function ``(b, cts, inputs, outs, params)``."""
from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import sympy

from ..compiler.primitive import Primitive
from ..compiler.types import FactorType, ShapeError, TensorType, as_dim
from ..errors import RuleError

_SAMPLES = [1009, 1013, 1019, 1021, 1031, 1033, 1039, 1049, 1051, 1061, 1063, 1069]


def _from_struct(s, dims) -> TensorType:
    dt = "f32" if jnp.dtype(s.dtype) == jnp.float32 else "f64"
    if jnp.dtype(s.dtype).kind not in "f":
        raise ShapeError(f"the implementation returns dtype {s.dtype}; primitives return floating arrays")
    return TensorType(dt, tuple(_dim_back(int(d), dims) for d in s.shape))


def _dim_back(d: int, samples: dict):
    for sym, v in samples.items():
        if d == v:
            return sym
    for sym, v in samples.items():
        if d % v == 0 and d // v < 64:
            return (d // v) * sym
        if abs(d - v) < 400:
            return sym + (d - v)
    return sympy.Integer(d)


def eval_shape_rule(impl, nout):
    """Shape rule from jax.eval_shape at sample sizes, mapped back to the symbolic dims."""
    def rule(types, params):
        samples, args = {}, []
        for t in types:
            if not isinstance(t, TensorType):
                raise ShapeError(f"cannot infer the shape of a user primitive applied to {t}")
            shape = []
            for d in t.shape:
                d = as_dim(d)
                if not d.is_Integer:
                    for s in d.free_symbols:
                        samples.setdefault(s, _SAMPLES[len(samples) % len(_SAMPLES)] + 100 * (len(samples) // len(_SAMPLES)))
                    d = d.subs(samples)
                shape.append(int(d))
            dt = jnp.float32 if t.dtype == "f32" else jnp.float64
            args.append(jax.ShapeDtypeStruct(tuple(shape), dt))
        try:
            out = jax.eval_shape(lambda *a: impl(*a, **params), *args)
        except Exception as e:
            raise ShapeError(f"the implementation fails on arguments of types "
                             f"{', '.join(map(str, types))}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        outs = out if isinstance(out, (tuple, list)) else (out,)
        res = [_from_struct(o, samples) for o in outs]
        return res if nout != 1 else res[0]
    return rule


def user_shape_rule(shape, nout):
    """Wrap a user's ``shape(*arg_types) -> type`` (TensorType, ShapeDtypeStruct or tuple)."""
    def rule(types, params):
        try:
            out = shape(*types, **params) if params else shape(*types)
        except ShapeError:
            raise
        except Exception as e:
            raise ShapeError(f"the shape rule fails: {type(e).__name__}: {e}") from None
        outs = out if isinstance(out, (tuple, list)) and nout != 1 else (out,)
        res = []
        for o in outs:
            if isinstance(o, (TensorType, FactorType)):
                res.append(o)
            elif hasattr(o, "shape") and hasattr(o, "dtype"):
                res.append(_from_struct(o, {}))
            else:
                raise ShapeError(f"the shape rule returned {o!r}; return a lagrad TensorType")
        return res if nout != 1 else res[0]
    return rule


def _check_rule_fn(fn, what, name):
    if fn is None or isinstance(fn, str):
        return fn
    if not callable(fn):
        raise RuleError(f"`{what}` of primitive `{name}` must be text or a function")
    try:
        n = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return fn
    if n != 5:
        raise RuleError(f"`{what}` of primitive `{name}` must take (b, primals, tangents_or_cts, outs, params); "
                        f"it takes {n} argument(s)")
    return fn


def make_user_primitive(name, impl, *, frechet=None, transpose=None, linear_in=(), shape=None,
                        nout=1, kwargs=None, domains=None) -> Primitive:
    if not isinstance(name, str) or not name.isidentifier():
        raise RuleError(f"primitive name {name!r} is not a valid name")
    if not callable(impl):
        raise RuleError(f"the implementation of primitive `{name}` must be a function")
    from ..compiler.primitive import REGISTRY
    old = REGISTRY.get(name)
    if old is not None and not old.user:
        raise RuleError(f"`{name}` is a standard-library primitive and cannot be replaced")
    rule = user_shape_rule(shape, nout) if shape is not None else eval_shape_rule(impl, nout)
    lo = hi = None
    try:
        sig = inspect.signature(impl)
        pos = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               and p.name not in (kwargs or {})]
        lo = sum(1 for p in pos if p.default is p.empty)          # parameters with defaults are optional
        if not any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()):
            hi = len(pos)
    except (TypeError, ValueError):
        pass
    return Primitive(name, impl, rule, nout=nout, frechet=_check_rule_fn(frechet, "frechet", name),
                     transpose=_check_rule_fn(transpose, "transpose", name), linear_in=tuple(linear_in),
                     kwargs=dict(kwargs or {}), user=True, math=f"user primitive {name}",
                     min_args=lo, max_args=hi, domains=_domains(name, domains))


_DOMAINS = ("spd", "wellcond", "fullrank", "stable", "contractive", "positive")


def _domains(name, domains) -> dict:
    """Argument position -> the input domain `lagrad check` samples for it."""
    out = {}
    for pos, dom in dict(domains or {}).items():
        if not isinstance(pos, int) or dom not in _DOMAINS:
            raise RuleError(f"`{name}`: domains maps argument positions to one of {', '.join(_DOMAINS)}; "
                            f"got {pos!r}: {dom!r}")
        out[pos] = dom
    return out
