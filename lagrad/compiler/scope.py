"""What a name can denote while elaborating: values, dimensions, loop integers, helpers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy


@dataclass(frozen=True)
class DimRef:
    """A dimension used in an expression: a sympy expression of dimension symbols."""
    expr: sympy.Expr


@dataclass(frozen=True)
class LoopInt:
    """A loop variable: an integer known at compile time."""
    value: int


@dataclass
class Scope:
    """Names bound in a body. Lookups fall back to the parent (a fn body's parent is the
    module, so helpers see only their arguments, dimensions and other helpers)."""
    names: dict
    parent: Any = None

    def lookup(self, name):
        s = self
        while s is not None:
            if name in s.names:
                return s.names[name]
            s = s.parent
        return None

    def bind(self, name, value):
        self.names[name] = value

    def all_names(self):
        out, s = set(), self
        while s is not None:
            out |= set(s.names)
            s = s.parent
        return out
