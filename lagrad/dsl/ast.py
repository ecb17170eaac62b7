"""Frozen AST of the .la language. Every node carries the source span it came from."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional, Union


def hash_once(values):
    """A frozen dataclass's ``__hash__`` computed once, from ``values(self)``, and kept on the
    instance: a dataclass's generated hash is a Python call that rehashes every field each time.
    Pair it with ``state_without_hash`` (string hashes differ between processes)."""
    def __hash__(self):
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash(values(self))
            object.__setattr__(self, "_hash", h)
        return h
    return __hash__


def state_without_hash(self) -> dict:
    """``__getstate__`` for a class using ``hash_once``: a pickled copy recomputes its hash."""
    return {k: v for k, v in self.__dict__.items() if k != "_hash"}


@dataclass(frozen=True)
class Span:
    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"

    # the code generator hashes every equation's span (by value) to find repeated blocks
    __hash__ = hash_once(lambda s: (s.path, s.line, s.column, s.end_line, s.end_column))
    __getstate__ = state_without_hash


NOSPAN = Span("<builtin>", 0, 0, 0, 0)


@dataclass(frozen=True)
class Node:
    span: Span = field(compare=False, repr=False, kw_only=True, default=NOSPAN)


def fields_of(node: Node) -> dict:
    """The node's fields that its equality compares (not its span): name -> value."""
    return {f.name: getattr(node, f.name) for f in fields(node) if f.compare}


# ---- expressions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Num(Node):
    value: Union[int, float]          # int for integer literals, float otherwise


@dataclass(frozen=True)
class Str(Node):
    value: str


@dataclass(frozen=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class BinOp(Node):
    op: str                           # one of + - * / @ **
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Neg(Node):
    operand: "Expr"


@dataclass(frozen=True)
class Kwarg(Node):
    name: str
    value: Union[Num, Str, Bool, "Name"]   # negative numbers arrive as Num with a negative value;
                                           # a Name: a dimension, loop variable or operator


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple                       # of Expr
    kwargs: tuple = ()                # of Kwarg
    func_span: Optional[Span] = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Slice(Node):
    lo: Optional["Expr"]              # None: from the start
    hi: Optional["Expr"]              # None: to the end


@dataclass(frozen=True)
class Index(Node):
    base: "Expr"
    items: tuple                      # of Expr | Slice


@dataclass(frozen=True)
class Transpose(Node):
    operand: "Expr"


Expr = Union[Num, Str, Bool, Name, BinOp, Neg, Call, Index, Transpose]


# ---- types ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TypeAnn(Node):
    dtype: str                        # "f32" | "f64"
    dims: Optional[tuple] = None      # None: a scalar; else a tuple of dimension Exprs
                                      # (Num, Name, BinOp with + - *, parenthesised)


# ---- statements ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Assign(Node):
    targets: tuple                    # of Name; several for `a, b = f(x)`
    value: Expr


@dataclass(frozen=True)
class Return(Node):
    values: tuple                     # of Expr


@dataclass(frozen=True)
class OpDef(Node):
    """`op K(v) = EXPR` (body == (Return((EXPR,)),)) or `op K(v) { BODY }`."""
    name: str
    param: str
    body: tuple                       # statements, the last one a Return


@dataclass(frozen=True)
class For(Node):
    var: str
    count: Expr                       # an integer or dimension expression
    body: tuple                       # statements (no Return)


Stmt = Union[Assign, Return, OpDef, For]


# ---- top level -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Param(Node):
    name: str
    type: Optional[TypeAnn] = None    # None only for untyped fn arguments


@dataclass(frozen=True)
class Model(Node):
    name: str
    params: tuple                     # of Param
    ret: Optional[tuple]              # of TypeAnn; None when `-> RET` is omitted
    ret_is_tuple: bool                # `-> (T, ...)` vs `-> T`
    body: tuple                       # statements, the last one a Return


@dataclass(frozen=True)
class FnDef(Node):
    """`fn f(a, b) = EXPR` (body == (Return((EXPR,)),)) or `fn f(a, b) { BODY }`."""
    name: str
    params: tuple                     # of Param (type may be None)
    body: tuple


@dataclass(frozen=True)
class ElementwiseDef(Node):
    name: str
    param: str
    expr: Expr


@dataclass(frozen=True)
class FrechetDef(Node):
    """`frechet NAME(A, B) -> X { dX = ... }` or `-> (Q, R) { ... }`."""
    name: str
    args: tuple                       # of str
    outs: tuple                       # of str
    body: tuple                       # Assign statements assigning d<OUT> for every output


@dataclass(frozen=True)
class Module(Node):
    items: tuple                      # of Model | FnDef | ElementwiseDef | FrechetDef
    path: str = "<string>"
    source: str = field(default="", compare=False, repr=False)
