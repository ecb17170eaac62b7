"""The flat IR: a Program is a list of equations over typed variables, like a jaxpr.
The networkx DiGraph (``Program.graph``) is a view built from it, never a second truth."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional, Union

from .types import TensorType, WEAK


@dataclass(frozen=True, eq=False)
class Var:
    """A program variable; equality is identity. ``name`` is unique within its program.
    Passes key their tables by the Var itself: its hash is the identity hash, as fast as a
    dict lookup gets (keying by ``id(v)`` costs a call more per lookup)."""
    name: str
    type: Any

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Lit:
    """A scalar constant (a Python number in the source): weakly typed, like in JAX."""
    value: float
    type: TensorType = field(default=TensorType(WEAK, ()))

    @property
    def name(self) -> str:
        v = self.value
        return repr(float(v)) if not float(v).is_integer() or abs(v) >= 1e16 else f"{float(v):.1f}"

    def __repr__(self) -> str:
        return self.name


Atom = Union[Var, Lit]


class Eqn(NamedTuple):
    """``outputs = prim(*inputs, **params)``. A named tuple rather than a frozen dataclass:
    every pass rebuilds equations, and a tuple is made in a third of the time."""
    prim: str
    inputs: tuple               # of Atom
    params: tuple               # of (name, hashable value), sorted by name
    outputs: tuple              # of Var
    span: Optional[Any] = None  # the source Span this equation comes from
    origin: Optional[str] = None  # for derived equations: the source primitive differentiated

    def param(self, name, default=None):
        for k, v in self.params:
            if k == name:
                return v
        return default

    @property
    def param_dict(self) -> dict:
        return dict(self.params)


def make_params(d: Optional[dict]) -> tuple:
    return tuple(sorted((d or {}).items()))


@dataclass
class Program:
    name: str
    inputs: list                # of Var
    eqns: list                  # of Eqn
    outputs: list               # of Atom
    kind: str = "primal"        # "primal" | "tangent" | "adjoint" | ...
    path: str = "<string>"
    source: str = ""
    meta: dict = field(default_factory=dict)

    # -- views ---------------------------------------------------------------------------
    def __str__(self) -> str:
        from .printer import format_program
        return format_program(self)

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))

    @property
    def graph(self):
        from .graph import to_networkx
        return to_networkx(self)

    def to_dot(self) -> str:
        from .graph import to_dot
        return to_dot(self)

    def to_python(self) -> str:
        from ..runtime.codegen import generate_source
        return generate_source(self)

    def _repr_mimebundle_(self, include=None, exclude=None):
        """Jupyter: the rendered graph when Graphviz is installed, and the highlighted text
        (front ends show the richest they support; plain text always)."""
        from .graph import render_svg
        from .printer import format_html
        bundle = {"text/plain": str(self), "text/html": format_html(self)}
        svg = render_svg(self)
        if svg is not None:
            bundle["image/svg+xml"] = svg
            bundle.pop("text/html")             # HTML would outrank the drawing
        return bundle

    def vars(self):
        seen = dict.fromkeys(self.inputs)   # Vars hash and compare by identity: ordered, unique
        for e in self.eqns:
            seen.update(dict.fromkeys(e.outputs))
        return list(seen)

    def copy(self, **changes) -> "Program":
        kw = dict(name=self.name, inputs=list(self.inputs), eqns=list(self.eqns),
                  outputs=list(self.outputs), kind=self.kind, path=self.path,
                  source=self.source, meta=dict(self.meta))
        kw.update(changes)
        return Program(**kw)


class Namer:
    """Hands out names unique within one program: ``x``, ``x_1``, ``x_2``..."""

    def __init__(self, taken=()):
        self.taken = set(taken)
        self.counts = {}

    def fresh(self, base: str) -> str:
        base = base or "t"
        if base not in self.taken:
            self.taken.add(base)
            return base
        k = self.counts.get(base, 0)
        while True:
            k += 1
            name = f"{base}_{k}"
            if name not in self.taken:
                self.counts[base] = k
                self.taken.add(name)
                return name

    def var(self, base: str, type_) -> Var:
        return Var(self.fresh(base), type_)

    @classmethod
    def for_program(cls, prog: Program) -> "Namer":
        namer = cls()
        namer.taken = {o.name for e in prog.eqns for o in e.outputs}     # every pass makes one:
        namer.taken.update(v.name for v in prog.inputs)                   # names only, no Var list
        return namer
