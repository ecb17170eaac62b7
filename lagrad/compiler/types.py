"""Types of IR values: tensors with symbolic (sympy) dimensions, and factorization values."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy

from ..dsl.ast import hash_once, state_without_hash

DTYPES = ("f32", "f64")
WEAK = "weak"          # the dtype of a Python number literal: it takes its partner's dtype


class ShapeError(Exception):
    """Raised by shape rules; the compiler turns it into a LaTypeError at the offending line."""


@lru_cache(maxsize=None)
def dim_symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True, positive=True)


def as_dim(d) -> sympy.Expr:
    if isinstance(d, sympy.Basic):
        return d
    if isinstance(d, str):
        return dim_symbol(d)
    return sympy.Integer(int(d))


def dim_eq(a, b) -> bool:
    a, b = as_dim(a), as_dim(b)
    if a == b:
        return True
    if a.is_Integer and b.is_Integer:
        return False
    return sympy.expand(a - b) == 0


def dim_names(v) -> set:
    """The dimension names in a dimension expression, or in a tuple of them (nested: shapes,
    index specs and other parameters; anything else has none)."""
    if isinstance(v, sympy.Basic):
        return {s.name for s in v.free_symbols}
    if isinstance(v, tuple):
        return set().union(*map(dim_names, v)) if v else set()
    return set()


def shape_eq(s, t) -> bool:
    return len(s) == len(t) and all(a == b or dim_eq(a, b) for a, b in zip(s, t))


@lru_cache(maxsize=4096)
def _fmt_dim(d) -> str:
    return str(d).replace("**", "^")


def fmt_dim(d) -> str:
    try:
        return _fmt_dim(d)
    except TypeError:          # unhashable: format directly
        return str(d).replace("**", "^")


def fmt_shape(shape) -> str:
    return "[" + ", ".join(fmt_dim(d) for d in shape) + "]"


def promote(*dtypes: str) -> str:
    """JAX-style promotion: f32 with f64 gives f64; weak literals take the other dtype."""
    strong = [d for d in dtypes if d != WEAK]
    if not strong:
        return WEAK
    return "f64" if "f64" in strong else "f32"


@lru_cache(maxsize=4096)
def _fmt_type(dtype, shape) -> str:
    dt = "f64" if dtype == WEAK else dtype
    return dt if not shape else dt + fmt_shape(shape)


@dataclass(frozen=True)
class TensorType:
    dtype: str                 # "f32" | "f64" | WEAK (scalar literals only)
    shape: tuple = ()          # of sympy.Expr

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(as_dim(d) for d in self.shape))

    # every emitted equation's shape-rule memo hashes its input types, and a sympy dimension's
    # hash is a Python call (dataclass keeps an explicit __hash__)
    __hash__ = hash_once(lambda t: (t.dtype, t.shape))
    __getstate__ = state_without_hash

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_scalar(self) -> bool:
        return not self.shape

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype) -> "TensorType":
        return TensorType(dtype, self.shape)

    def same(self, other) -> bool:
        return isinstance(other, TensorType) and self.dtype == other.dtype and shape_eq(self.shape, other.shape)

    def __str__(self) -> str:
        return _fmt_type(self.dtype, self.shape)


@dataclass(frozen=True)
class FactorType:
    """A factorization of a square matrix kept as a value (``lu``, ``chol``), so a solve and
    its adjoint share it."""
    kind: str
    of: TensorType             # the type of the factorized matrix

    @property
    def dtype(self) -> str:
        return self.of.dtype

    @property
    def shape(self) -> tuple:
        return self.of.shape

    def same(self, other) -> bool:
        return isinstance(other, FactorType) and other.kind == self.kind and self.of.same(other.of)

    def __str__(self) -> str:
        return f"{self.kind}({self.of})"


def scalar(dtype: str = "f64") -> TensorType:
    return TensorType(dtype, ())


def free_dims(shape) -> set:
    out = set()
    for d in shape:
        out |= {s.name for s in as_dim(d).free_symbols}
    return out


def solve_entry(d, bound) -> tuple | None:
    """How a shape entry `d` (expanded) binds a dimension once the names in `bound` are known:
    (symbol, coefficient, rest) with d = coefficient · symbol + rest, when exactly one of its
    names is unbound, it enters linearly with a positive rational coefficient, and the
    coefficient is an integer unless the rest is 0 (k from [n + k], n from [n/6]); else None."""
    free = [s for s in d.free_symbols if s.name not in bound]
    if len(free) != 1 or sympy.degree(d, free[0]) != 1:
        return None
    s = free[0]
    coeff = d.coeff(s)
    rest = sympy.expand(d - coeff * s)
    if not (coeff.is_Rational and coeff > 0) or rest.has(s) or not (coeff.is_Integer or rest == 0):
        return None
    return s, coeff, rest
