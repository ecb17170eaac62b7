"""``lagrad.primitive``: users register their own primitives. The shape rule defaults to
``jax.eval_shape`` of the implementation at several integer assignments of the symbolic
dimensions, each result size fitted as a polynomial in them; the Fréchet rule is a ``frechet``
block in the language (or a builder function); the transpose rule (for ``linear_in`` arguments)
is a builder function ``(b, cts, inputs, outs, params)``."""
from __future__ import annotations

import inspect
from itertools import combinations_with_replacement
from math import factorial, prod

import jax
import jax.numpy as jnp
import sympy

from ..compiler.primitive import Primitive
from ..compiler.types import FactorType, ShapeError, TensorType, as_dim
from ..errors import RuleError

# base sizes: distinct primes near 1000, far above any constant an implementation slices to
# (a[:3] stays 3), and no two dimensions the same size (a + b of f64[n] and f64[k] fails)
_SAMPLES = [1009, 1013, 1019, 1021, 1031, 1033, 1039, 1049, 1051, 1061, 1063, 1069]
_MAX_DEGREE = 3          # n·k·m (a flattened 3-d array) is the highest product fitted
_MAX_PROBES = 64         # traces one shape question may cost before a higher degree is given up


def _from_struct(s, dims) -> TensorType:
    dt = "f32" if jnp.dtype(s.dtype) == jnp.float32 else "f64"
    if jnp.dtype(s.dtype).kind not in "f":
        raise ShapeError(f"the implementation returns dtype {s.dtype}; primitives return floating arrays")
    return TensorType(dt, tuple(dims(a, int(d)) for a, d in enumerate(s.shape)))


def _sample(i: int) -> int:
    """The base size of the i-th symbolic dimension (sorted by name)."""
    return _SAMPLES[i % len(_SAMPLES)] + 100 * (i // len(_SAMPLES))


def _binom(t: int, a: int) -> int:
    """C(t, a) for any integer t (negative too): the Newton basis at an integer point."""
    return prod(t - j for j in range(a)) // factorial(a)


def _binom_poly(t, a: int):
    """C(t, a) as a polynomial in the expression t."""
    return prod((t - j for j in range(a)), start=sympy.Integer(1)) / factorial(a)


def _indices(k: int, d: int):
    """The multi-indices α over k dimensions with |α| = d (the degree-d layer of the lattice)."""
    for combo in combinations_with_replacement(range(k), d):
        yield tuple(combo.count(i) for i in range(k))


def _below(alpha):
    """The multi-indices β ≤ α, each with the sign and weight of f(base + β) in Δ^α f(base)."""
    if not alpha:
        yield (), 1
        return
    for rest, w in _below(alpha[1:]):
        for b in range(alpha[0] + 1):
            yield (b,) + rest, w * (-1) ** (alpha[0] - b) * _binom(alpha[0], b)


class _Probe:
    """Result shapes of ``jax.eval_shape`` of the implementation at integer assignments of the
    symbolic dimensions, memoized: every result axis is fitted from the same few traces."""

    def __init__(self, name, impl, types, params):
        self.name, self.impl, self.types, self.params = name, impl, types, params
        self.syms = sorted({s for t in types for d in t.shape for s in as_dim(d).free_symbols}, key=str)
        self.base = tuple(_sample(i) for i in range(len(self.syms)))
        # two checks off the lattice, in every coordinate: sizes reversed among the dimensions
        # and doubled (max(n, k) or n // 2 fit no polynomial there), and a shift of each by a
        # different amount
        self.checks = [tuple(2 * v + 1 + i for i, v in enumerate(reversed(self.base))),
                       tuple(v + 60 + 7 * i for i, v in enumerate(self.base))]
        self.memo = {}

    def at(self, point: tuple) -> tuple:
        """The eval_shape results with dimension i of size point[i]."""
        hit = self.memo.get(point)
        if hit is not None:
            return hit
        subs = dict(zip(self.syms, point))
        args = [jax.ShapeDtypeStruct(tuple(int(as_dim(d).subs(subs)) for d in t.shape),
                                     jnp.float32 if t.dtype == "f32" else jnp.float64) for t in self.types]
        try:
            out = jax.eval_shape(lambda *a: self.impl(*a, **self.params), *args)
        except Exception as e:
            at = f" (at {self.where(point)})" if self.syms else ""
            raise ShapeError(f"the implementation fails on arguments of types {', '.join(map(str, self.types))}"
                             f"{at}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        if not all(isinstance(o, jax.ShapeDtypeStruct) for o in outs):
            return outs                       # not arrays: the rule says so (eval_shape_rule)
        first = self.memo.get(self.base, outs)
        if [len(o.shape) for o in outs] != [len(o.shape) for o in first]:
            # the number or ranks of the results must not depend on the sizes
            raise ShapeError(f"`{self.name}`: the implementation returns results of ranks "
                             f"{[len(o.shape) for o in first]} at {self.where(self.base)} but "
                             f"{[len(o.shape) for o in outs]} at {self.where(point)}; pass `shape=` to "
                             f"lagrad.primitive")
        self.memo[point] = outs
        return outs

    def size(self, point, o: int, a: int) -> int:
        return int(self.at(point)[o].shape[a])

    def where(self, point) -> str:
        return ", ".join(f"{s} = {v}" for s, v in zip(self.syms, point))

    def fit(self, o: int, a: int):
        """Axis a of result o as the lowest-degree polynomial in the dimensions: its Newton form on
        the lattice base + α (|α| ≤ d, exact for any polynomial of degree ≤ d, with integer
        differences, so integer-valued everywhere: n(n+1)/2 fits), accepted only when it also gives
        the size at both checks. None when no polynomial up to degree 3 does."""
        k, diffs = len(self.syms), {}
        for d in range(_MAX_DEGREE + 1):
            layer = list(_indices(k, d))
            if d > 1 and len(self.memo) + len(layer) > _MAX_PROBES:   # a linear fit is always tried
                return None
            for al in layer:                      # Δ^α f(base), from f at base + β for β ≤ α
                diffs[al] = sum(w * self.size(self.shifted(be), o, a) for be, w in _below(al))
            if all(self.newton(diffs, pt) == self.size(pt, o, a) for pt in self.checks):
                return self.expr(diffs)
        return None

    def shifted(self, beta) -> tuple:
        return tuple(b + n for b, n in zip(self.base, beta))

    def newton(self, diffs, point) -> int:
        """The Newton form Σ Δ^α f(base) · Π C(point_i - base_i, α_i) at an integer point."""
        return sum(c * prod(_binom(v - b, n) for v, b, n in zip(point, self.base, al))
                   for al, c in diffs.items() if c)

    def expr(self, diffs):
        """The same Newton form as a dimension expression in the symbols."""
        terms = (c * prod((_binom_poly(s - b, n) for s, b, n in zip(self.syms, self.base, al)), start=sympy.Integer(1))
                 for al, c in diffs.items() if c)
        return sympy.expand(sum(terms, sympy.Integer(0)))


def eval_shape_rule(impl, nout, name="primitive"):
    """Shape rule from jax.eval_shape, each result size fitted as a polynomial in the symbolic
    dims: mapping single sample sizes back by value typed concatenate([a, b]) as f64[2022]
    instead of f64[n + k]. A size no polynomial fits (n // 2, max(n, k)) is an error asking
    for `shape=`, never a number read off one sample."""
    def rule(types, params):
        for t in types:
            if not isinstance(t, TensorType):
                raise ShapeError(f"cannot infer the shape of a user primitive applied to {t}")
        probe = _Probe(name, impl, types, params)

        def dim(o, a, d):
            e = probe.fit(o, a) if probe.syms else sympy.Integer(d)
            if e is None:
                sizes = "; ".join(f"{probe.size(pt, o, a)} at {probe.where(pt)}" for pt in (probe.base, *probe.checks))
                which = f"result {o + 1}" if len(outs) > 1 else "the result"
                raise ShapeError(f"`{name}`: cannot infer axis {a} of {which} on arguments of types "
                                 f"{', '.join(map(str, types))}: its size ({sizes}) is no polynomial in "
                                 f"{', '.join(map(str, probe.syms))}; pass `shape=` to lagrad.primitive "
                                 f"to give the result type")
            return e

        outs = probe.at(probe.base)
        kinds = [type(o).__name__ for o in outs if not isinstance(o, jax.ShapeDtypeStruct)]
        if kinds or len(outs) != nout:
            got = f"a {kinds[0]}" if kinds else f"{len(outs)} arrays"
            raise ShapeError(f"`{name}`: the implementation returns {got}, but the primitive is registered "
                             f"with nout={nout}: return {'one array' if nout == 1 else f'a tuple of {nout} arrays'}"
                             f" (or pass nout=, or shape=, to lagrad.primitive)")
        res = [_from_struct(s, lambda a, d, o=o: dim(o, a, d)) for o, s in enumerate(outs)]
        return res if nout != 1 else res[0]
    return rule


def user_shape_rule(shape, nout, impl=None, name="primitive"):
    """Wrap a user's ``shape(*arg_types) -> type`` (TensorType, ShapeDtypeStruct or tuple),
    checked against ``jax.eval_shape`` of `impl` at sample sizes (see `_agrees`)."""
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
                res.append(_from_struct(o, lambda a, d: sympy.Integer(d)))
            else:
                raise ShapeError(f"the shape rule returned {o!r}; return a lagrad TensorType")
        if impl is not None:
            _agrees(name, impl, types, params, res)
        return res if nout != 1 else res[0]
    return rule


def _agrees(name, impl, types, params, res):
    """A ShapeError when the shape rule's result types differ from what the implementation
    returns on arguments of these types (dimensions at sample sizes): a wrong rule would give
    arrays of other shapes than the program says, and wrong-shaped gradients."""
    if not all(isinstance(t, TensorType) for t in types):
        return
    probe = _Probe(name, impl, types, params)
    try:
        outs = probe.at(probe.base)
    except ShapeError:
        return                               # the implementation needs other sizes: nothing to compare
    subs = dict(zip(probe.syms, probe.base))
    if len(outs) != len(res):
        raise ShapeError(f"`{name}`: the shape rule gives {len(res)} result(s) but the implementation "
                         f"returns {len(outs)}")
    for t, o in zip(res, outs):
        if not isinstance(t, TensorType) or not isinstance(o, jax.ShapeDtypeStruct):
            continue
        want = tuple(int(as_dim(d).subs(subs)) for d in t.shape)
        dt = "f32" if jnp.dtype(o.dtype) == jnp.float32 else "f64"
        if want != tuple(o.shape) or dt != t.dtype:
            at = f" at {probe.where(probe.base)}" if probe.syms else ""
            raise ShapeError(f"`{name}`: the shape rule gives {t}, but the implementation returns "
                             f"{dt}{list(o.shape)}{at} (arguments {', '.join(map(str, types))}); "
                             f"correct `shape=` or leave it out")


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
    from ..dsl.parser import _KEYWORDS
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii() or name in _KEYWORDS:
        raise RuleError(f"primitive name {name!r} is not a name a .la file can call"
                        + (" (it is a keyword)" if name in _KEYWORDS else ""))
    if not callable(impl):
        raise RuleError(f"the implementation of primitive `{name}` must be a function")
    from ..compiler.primitive import REGISTRY
    old = REGISTRY.get(name)
    if old is not None and not old.user:
        raise RuleError(f"`{name}` is a standard-library primitive and cannot be replaced")
    rule = user_shape_rule(shape, nout, impl, name) if shape is not None else eval_shape_rule(impl, nout, name)
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
    bad = [i for i in linear_in if not isinstance(i, int) or i < 0 or (hi is not None and i >= hi)]
    if bad:
        raise RuleError(f"`{name}`: linear_in lists argument position(s) {bad} that `{name}` does not have"
                        + (f" (it takes {hi})" if hi is not None else ""))
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
