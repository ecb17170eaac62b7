"""The builder every rule and pass uses to emit equations.

Values are wrapped in :class:`Val` so rules read as math (``-X @ dA @ X``); :class:`Zero` is a
symbolic zero tangent or cotangent (autodidax's zeros-by-default); :class:`Undef` marks a
linear input being transposed."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .ir import Eqn, Lit, Namer, Var, make_params
from .primitive import REGISTRY, get, result_types
from .types import ShapeError, TensorType, WEAK


class Val:
    __slots__ = ("atom", "b")
    __array_priority__ = 1000

    def __init__(self, atom, b: "Builder"):
        self.atom = atom
        self.b = b

    type = property(lambda self: self.atom.type)
    shape = property(lambda self: self.atom.type.shape)
    ndim = property(lambda self: len(self.atom.type.shape))
    T = property(lambda self: self.b.emit("transpose", self))

    def __add__(self, o): return self.b.emit("add", self, o)
    def __radd__(self, o): return self.b.emit("add", o, self)
    def __sub__(self, o): return self.b.emit("sub", self, o)
    def __rsub__(self, o): return self.b.emit("sub", o, self)
    def __mul__(self, o): return self.b.emit("mul", self, o)
    def __rmul__(self, o): return self.b.emit("mul", o, self)
    def __truediv__(self, o): return self.b.emit("div", self, o)
    def __rtruediv__(self, o): return self.b.emit("div", o, self)
    def __matmul__(self, o): return self.b.emit("matmul", self, o)
    def __rmatmul__(self, o): return self.b.emit("matmul", o, self)
    def __neg__(self): return self.b.emit("neg", self)
    def __pow__(self, o): return self.b.emit("pow", self, o)

    def __repr__(self):
        return f"Val({self.atom!r}: {self.atom.type})"


class Zero(Val):
    """A symbolic zero of a given type: never materialized unless a nonlinear use needs it."""
    __slots__ = ("ztype",)

    def __init__(self, type_, b: "Builder"):
        super().__init__(None, b)
        self.ztype = type_

    type = property(lambda self: self.ztype)
    shape = property(lambda self: self.ztype.shape)
    ndim = property(lambda self: len(self.ztype.shape))

    def __repr__(self):
        return f"Zero({self.ztype})"


class Undef:
    """A linear input of an equation being transposed: its value is not available."""
    __slots__ = ("type",)

    def __init__(self, type_):
        self.type = type_

    shape = property(lambda self: self.type.shape)
    ndim = property(lambda self: len(self.type.shape))

    def __repr__(self):
        return f"Undef({self.type})"


def is_zero(v) -> bool:
    return v is None or isinstance(v, Zero)


# constants only: computed now, in float64 with IEEE results (1/0 = inf, 0/0 = nan), as JAX
# would compute the same weakly typed scalars
_FOLD = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power,
         "neg": np.negative}


def _fold(prim_name, values) -> float:
    with np.errstate(all="ignore"):
        return float(_FOLD[prim_name](*(np.float64(v) for v in values)))


class Builder:
    """Appends equations to ``self.eqns``; ``span`` and ``origin`` label everything emitted."""

    def __init__(self, namer: Optional[Namer] = None, span=None, origin=None, source=None):
        self.namer = namer or Namer()
        self.eqns: list = []
        self.span = span
        self.origin = origin
        self.source = source
        # (xᵀ)ᵀ → x; off while a text Fréchet rule is elaborated: its linearity check must see
        # every transpose of a tangent it takes
        self.fold_transposes = True
        # what the program asserts about its values, id(var) -> {"spd", ...}: filled by the
        # factorization pass for the primitives' `lower` rules (passes.share_factorizations)
        self.facts: dict = {}
        self._def_index = [None, 0, {}]      # (list indexed, how far, id(var) -> defining eqn)
        # while a user's Python rule runs: the names it may emit -> registry keys (a primitive
        # registered again has the key `name__vK`; autodiff.run_user_rule)
        self.user_names = None

    # -- values ---------------------------------------------------------------------------
    def wrap(self, atom) -> Val:
        return Val(atom, self)

    def lit(self, value) -> Val:
        return Val(Lit(float(value)), self)

    def _defining(self, atom):
        """The equation that defines `atom` (an index kept up to date incrementally)."""
        if not isinstance(atom, Var):
            return None
        idx = self._def_index
        if idx[0] is not self.eqns or idx[1] > len(self.eqns):
            idx[:] = [self.eqns, 0, {}]
        for e in self.eqns[idx[1]:]:
            for o in e.outputs:
                idx[2][id(o)] = e
        idx[1] = len(self.eqns)
        e = idx[2].get(id(atom))
        return e if e is not None and any(o is atom for o in e.outputs) else None

    def zero(self, type_) -> Zero:
        return Zero(type_, self)

    def atom(self, v):
        if isinstance(v, Zero):
            return self.materialize(v).atom
        if isinstance(v, Val):
            return v.atom
        if isinstance(v, (Var, Lit)):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return Lit(float(v))
        raise TypeError(f"cannot use {v!r} as a program value")

    def materialize(self, z: Zero) -> Val:
        t = z.ztype
        dtype = "f64" if t.dtype == WEAK else t.dtype
        if not isinstance(t, TensorType):
            raise TypeError(f"cannot materialize a zero of type {t}")
        return self.emit("zeros", shape=tuple(t.shape), dtype=dtype)

    # -- equations ------------------------------------------------------------------------
    def emit(self, prim_name: str, *inputs, name: Optional[str] = None, names=None, **params):
        """Emit ``prim_name(*inputs, **params)``; returns a Val (or a tuple of them).

        Zero inputs are simplified through the primitive's linearity: a separately linear
        primitive with a zero in a linear slot gives zero; a jointly linear one gives zero when
        every linear input is zero; otherwise zeros are materialized."""
        if self.user_names is not None:
            prim_name = self.user_names.get(prim_name, prim_name)
        p = REGISTRY.get(prim_name) or get(prim_name)
        atoms, zpos = [], None          # one pass over the inputs: this runs once per equation
        for i, v in enumerate(inputs):
            t = type(v)
            if t is Val:
                atoms.append(v.atom)
            elif t is Zero:
                zpos = [] if zpos is None else zpos
                zpos.append(i)
                atoms.append(None)
            else:
                atoms.append(self.atom(v))
        if zpos is None and prim_name in _FOLD and all(type(a) is Lit for a in atoms):
            return self.wrap(Lit(_fold(prim_name, [a.value for a in atoms])))    # 2.0 - 1.0 → 1.0
        if prim_name == "transpose" and zpos is None and len(inputs) == 1 and isinstance(inputs[0], Val):
            if getattr(atoms[0].type, "ndim", None) == 0:
                return inputs[0]                                      # a scalar's transpose is itself
            inner = self._defining(atoms[0]) if self.fold_transposes else None
            if inner is not None and inner.prim == "transpose":       # (xᵀ)ᵀ = x
                return self.wrap(inner.inputs[0])
        if zpos is not None:
            simplified = self._simplify_zeros(p, inputs, zpos, params)
            if simplified is not None:
                return simplified
            atoms = [self.atom(v) if a is None else a for v, a in zip(inputs, atoms)]
        atoms = tuple(atoms)
        ps = make_params(params)
        out_types = result_types(p, [a.type for a in atoms], ps)
        var = self.namer.var
        if names is None:
            base = name or "t"
            outs = ((var(base, out_types[0]),) if len(out_types) == 1
                    else tuple(var(base, t) for t in out_types))
        else:
            outs = tuple(var(n, t) for n, t in zip(names, out_types))
        self.eqns.append(Eqn(p.name, atoms, ps, outs, self.span, self.origin))
        if p.nout == 1:
            return Val(outs[0], self)
        return tuple(Val(o, self) for o in outs)

    def out_types(self, p, in_types, params) -> list:
        return result_types(p, in_types, make_params(params))

    def _simplify_zeros(self, p, inputs, zpos, params):
        lin, zs = p.linear_positions(len(inputs)), set(zpos)
        all_zero = p.joint and lin and lin <= zs and len(lin) == len(inputs)
        if (zs & lin and not p.joint) or all_zero:
            types = self.out_types(p, [v.type for v in inputs], params)
            zeros = tuple(Zero(t, self) for t in types)
            return zeros if p.nout != 1 else zeros[0]
        if p.joint and zs <= lin and p.zero_simplify is not None:
            return p.zero_simplify(self, list(inputs), zpos, params)
        return None

    def __getattr__(self, prim_name: str):
        if prim_name.startswith("_"):
            raise AttributeError(prim_name)
        return lambda *args, **kw: self.emit(prim_name, *args, **kw)


def expect(cond: bool, msg: str):
    if not cond:
        raise ShapeError(msg)
