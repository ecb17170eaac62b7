"""Primitive definitions and the registry. A primitive is one object holding everything about
an operation: shape rule, JAX implementation, Fréchet rule and (where linear) transpose rule.

Rule signatures (all written against the :class:`~lagrad.compiler.builder.Builder`):

* ``shape(in_types, params) -> type | tuple[type]`` raising ``ShapeError`` with a message.
* ``impl(*arrays, **params)`` — whole-array JAX code. Params hold Python values (dimension
  expressions already evaluated to ints).
* ``frechet``: either the text of a ``frechet NAME(ARGS) -> OUTS { ... }`` block (calls of NAME
  inside it inherit the keyword parameters of the call being differentiated), or a function
  ``frechet(b, primals, tangents, outs, params) -> tangent | list[tangent]`` where tangents are
  ``Val`` or ``Zero``.
* ``transpose(b, cts, inputs, outs, params) -> list`` with one entry per input: the cotangent
  of each linear (``Undef``) input (``Val``, ``Zero`` or ``None`` for zero); ``None`` for the
  others. ``cts`` holds one cotangent (``Val`` or ``Zero``) per output.
* ``linear_in``: input positions the primitive is linear in. ``joint=True`` means jointly linear
  (``add``: every linear input may carry a tangent at once); otherwise separately linear
  (``mul``: linear in each factor while the others are constant).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from ..errors import LaNameError, RuleError


ALL = "all"     # `linear_in=ALL`: linear in every input, however many (variadic hcat, vcat)


@dataclass
class Primitive:
    name: str
    impl: Callable
    shape: Callable
    nout: int = 1
    frechet: Union[str, Callable, None] = None
    transpose: Optional[Callable] = None
    linear_in: tuple = ()
    joint: bool = False
    kwargs: dict = field(default_factory=dict)       # user-facing keyword params: defaults
    math: str = ""                                   # one-line math comment
    infix: Optional[str] = None                      # printed as `a OP b` (or `OP a` for unary)
    codegen: Optional[Callable] = None               # (arg_srcs, params) -> JAX expression text
    zero_simplify: Optional[Callable] = None         # joint-linear: (b, inputs, zero_pos, params)
    zero_tangent: bool = False                       # piecewise constant: derivative is zero
    internal: bool = False                           # made by passes, never named in source
    user: bool = False                               # registered with lagrad.primitive
    domains: dict = field(default_factory=dict)      # arg position -> input domain for samplers:
                                                     # 'spd' 'stable' 'contractive' 'fullrank' 'positive' 'wellcond'
    min_args: Optional[int] = None                   # arity check (defaults to len of signature)
    max_args: Optional[int] = None
    doc: str = ""
    display: Optional[str] = None                    # printed name, when the key is made unique
    lower: Optional[Callable] = None                 # (b, eqn, producers) -> bool: the factorization
                                                     # pass's rewrite (solve -> lu_factor + lu_solve)
    asserts: Optional[Callable] = None               # (params) -> {arg position: fact}: what a use
                                                     # asserts about its input ("spd" for a solve with
                                                     # assume="pos"), for the `lower` rules elsewhere
    solve_with: Optional[tuple] = None               # a factor's (apply, fused): `F = factor(A)`
                                                     # and its first use `apply(F, Q, trans=false)`
                                                     # run as `F, X = fused(A, Q)` (one loop)
    elaborate: Optional[Callable] = None             # (elaborator, call node, scope) -> result: calls
                                                     # whose arguments are not all values (operators)
    _compiled_frechet: Any = field(default=None, repr=False)

    def __post_init__(self):
        if self.linear_in != ALL:
            self.linear_in = tuple(self.linear_in)

    @property
    def label(self) -> str:
        """The name users write and read (`name` is the registry key, made unique for an
        elementwise function or a user primitive registered again)."""
        return self.display or self.name

    def linear_positions(self, n_inputs: int) -> set:
        return set(range(n_inputs)) if self.linear_in == ALL else set(self.linear_in)

    def is_linear_at(self, positions, n_inputs: int) -> bool:
        """Whether the primitive is linear (not merely affine) when exactly the inputs at
        `positions` vary: a jointly linear one needs all its inputs varying."""
        positions = set(positions)
        if not positions or not positions <= self.linear_positions(n_inputs):
            return False
        return positions == set(range(n_inputs)) if self.joint else len(positions) == 1


REGISTRY: dict = {}
USER_KEYS: dict = {}        # a user primitive's name -> the registry key of its latest registration
_SHAPES: dict = {}          # (id(prim), input types, params) -> (prim, result types)


def result_types(p: "Primitive", in_types, params: tuple) -> list:
    """The primitive's shape rule on these input types and (sorted) params, memoized: an
    unrolled loop asks the same question once per iteration, and every pass re-checks types."""
    try:
        key = (id(p), tuple(in_types), params)
        hit = _SHAPES.get(key)
    except TypeError:                       # an unhashable parameter: no memo
        key, hit = None, None
    if hit is not None and hit[0] is p:
        return list(hit[1])
    t = p.shape(list(in_types), dict(params))
    res = tuple(t) if isinstance(t, (tuple, list)) else (t,)
    if key is not None:
        if len(_SHAPES) > 100_000:
            _SHAPES.clear()
        _SHAPES[key] = (p, res)
    return list(res)


def register(prim: Primitive, *, replace: bool = True) -> Primitive:
    if not replace and prim.name in REGISTRY:
        raise RuleError(f"primitive `{prim.name}` is already registered")
    REGISTRY[prim.name] = prim
    prim._compiled_frechet = None
    return prim


def register_user(prim: Primitive) -> Primitive:
    """A user primitive, for `.la` files loaded afterwards (SPEC §4): registered again under the
    same name, it gets a new key (`name__v2`, shown as `name`), so a module loaded earlier keeps
    resolving the name to the primitive it was loaded with (ModuleContext.user_keys)."""
    name = prim.name
    if name in REGISTRY:
        k = 2
        while f"{name}__v{k}" in REGISTRY:
            k += 1
        prim.name, prim.display = f"{name}__v{k}", name
    USER_KEYS[name] = prim.name
    return register(prim)


def resolve(name: str, keys=None):
    """The primitive a `.la` file's `name` calls: a user primitive through `keys` (a module's
    snapshot of USER_KEYS; the latest registrations when None), else the registry entry."""
    return REGISTRY.get((USER_KEYS if keys is None else keys).get(name, name))


def get(name: str, span=None, source=None) -> Primitive:
    try:
        return REGISTRY[name]
    except KeyError:
        raise LaNameError(f"unknown function `{name}`" + suggest(name, public_names()),
                          span=span, source=source) from None


def public_names():
    return list(dict.fromkeys(p.label for p in REGISTRY.values() if not p.internal))


def _one_edit(a: str, b: str) -> bool:
    """Whether b is a with one character changed, inserted or deleted (`dq` for `dx`, `x2` for
    `x1`: difflib rates two-letter names that differ in one letter 0.5, below its cutoff)."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def suggest(name: str, candidates) -> str:
    if name in ("True", "False"):
        return f"; booleans are written `{name.lower()}`"
    candidates = list(candidates)
    same_case = [c for c in candidates if c.lower() == name.lower() and c != name]   # `X` for `x`
    short = [c for c in candidates if _one_edit(name, c)] if 2 <= len(name) <= 4 else []
    close = list(dict.fromkeys(same_case + short +
                               difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)))[:3]
    if not close:
        return ""
    if len(close) == 1:
        return f"; did you mean `{close[0]}`?"
    return "; did you mean " + ", ".join(f"`{c}`" for c in close[:-1]) + f" or `{close[-1]}`?"
