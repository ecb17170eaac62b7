"""Block low-rank operators in the language: ``P = blr(D, U, V)``, ``P @ x``, ``P(x)``,
``dense(P)``, ``block_jacobi(A, block=b)``, and BLR operators as ``K`` or ``M=`` of
``cg``/``gmres`` and as the operator of ``arnoldi``.

A BLR operator is a compile-time value holding its three factors (D [p, b, b], U and V
[p, p, b, r]); applying it emits the ``blr_apply`` primitive (lagrad/stdlib/blr.py), whose rules
are linear in each factor, so gradients reach D, U and V. Passed to a solver it becomes an
operator program v ↦ blr_apply(D, U, V, v) closing over the factors, like an ``op``; its
transpose, BLR(Dᵀ, V, U), is derived by transposing that program.
"""
from __future__ import annotations

from ..compiler.builder import Builder, Val
from ..compiler.ir import Namer, Program
from ..compiler.operators import MACROS, Capture, Operator
from ..compiler.primitive import get
from ..dsl import ast
from ..errors import LaTypeError


class BlrValue:
    """`blr(D, U, V)`: an operator-valued expression."""

    def __init__(self, D: Val, U: Val, V: Val, name="P"):
        self.D, self.U, self.V = D, U, V
        self.name = name
        self._instances = {}

    def __repr__(self):
        return "a BLR operator"

    def factors(self, el):
        return [el.captured(x) for x in (self.D, self.U, self.V)]

    # `P(x)` and `P @ x`
    def apply_op(self, el, call, scope):
        if call.kwargs or len(call.args) != 1:
            raise el.err(LaTypeError, "a BLR operator takes one argument: `P(x)`", call)
        x = el.single(el.value(call.args[0], scope), call.args[0])
        return self.apply(el, x, call)

    def apply(self, el, x, node):
        return el.emit("blr_apply", self.factors(el) + [x], {}, node)

    def instance(self, el, in_type, node=None) -> Operator:
        """The operator program v ↦ blr_apply(D, U, V, v), closing over the factors."""
        key = (str(in_type), id(el.capture))
        if key not in self._instances:
            sub = Builder(Namer(), source=el.source)
            sub.span = getattr(node, "span", None)
            cap = Capture(sub, parent=el.capture)
            v = sub.namer.var("v", in_type)
            D, U, V = (cap.value(x) for x in (self.D, self.U, self.V))
            try:
                out = sub.emit("blr_apply", D, U, V, sub.wrap(v))
            except Exception as e:                          # a ShapeError: say where
                raise LaTypeError(f"the BLR operator cannot apply to {in_type}: {e}",
                                  span=getattr(node, "span", None) or el.b.span, source=el.source) from None
            prog = Program("blr", [v] + cap.inputs, sub.eqns, [out.atom], kind="operator", source=el.source)
            self._instances[key] = Operator("blr", prog, getattr(node, "span", None), captured=list(cap.outer))
        return self._instances[key]


def _one_value(el, node, scope, what):
    v = scope.lookup(node.id) if isinstance(node, ast.Name) else el.expr(node, scope)
    if isinstance(v, BlrValue):
        return v
    raise el.err(LaTypeError, f"{what} must be a BLR operator (`blr(D, U, V)` or `block_jacobi(A, block=b)`)", node)


class _Blr:
    name = "blr"

    def apply_op(self, el, node, scope):
        if node.kwargs or len(node.args) != 3:
            raise el.err(LaTypeError, "`blr` takes the three factors: `blr(D, U, V)` with D [p, b, b] and "
                         "U, V [p, p, b, r]", node)
        D, U, V = (el.single(el.value(a, scope), a) for a in node.args)
        try:                                     # the factors' shapes are checked by blr_dense's rule
            get("blr_dense").shape([D.type, U.type, V.type], {})
        except Exception as e:
            raise el.err(LaTypeError, f"`blr`: {e}", node) from None
        return BlrValue(D, U, V)


class _Dense:
    name = "dense"

    def apply_op(self, el, node, scope):
        if node.kwargs or len(node.args) != 1:
            raise el.err(LaTypeError, "`dense` takes one BLR operator: `dense(P)`", node)
        P = _one_value(el, node.args[0], scope, "the argument of `dense`")
        return el.emit("blr_dense", P.factors(el), {}, node)


class _BlockJacobi:
    name = "block_jacobi"

    def apply_op(self, el, node, scope):
        if len(node.args) != 1 or [k.name for k in node.kwargs] != ["block"]:
            raise el.err(LaTypeError, "`block_jacobi` takes a matrix and the block size: "
                         "`block_jacobi(A, block=b)`", node)
        A = el.single(el.value(node.args[0], scope), node.args[0])
        block = el.kwarg_value(node.kwargs[0], scope, None, "block_jacobi")
        D = el.emit("block_diag_inv", [A], {"block": block}, node)
        p, b = D.type.shape[0], D.type.shape[1]
        U = el.emit("zeros", [], {"shape": (p, p, b, 0), "dtype": D.type.dtype}, node)
        return BlrValue(D, U, U)


MACROS["blr"] = _Blr()
MACROS["dense"] = _Dense()
MACROS["block_jacobi"] = _BlockJacobi()
