"""Matrix-free linear operators: ``op K(v) = EXPR`` / ``op K(v) { BODY }``.

An operator is a closure: its body may read any name in scope where it is defined. Two forms:

* :class:`OpValue` — what the name ``K`` denotes while elaborating. Applying it, ``K(x)``,
  inlines the body with ``v = x`` (like a ``fn``), so gradients flow through the closed-over
  values by the ordinary rules.
* :class:`Operator` — the body as a standalone linear program, for primitives that take an
  operator (``cg``, ``gmres``, ``arnoldi``): inputs ``[v, *captures]``, output ``K v``; the
  captured values become the primitive's extra inputs. From it the compiler derives

  - the transposed operator Kᵀ, by transposing the body's program in ``v`` (never written by
    the user), and
  - the tangent (dK) x of θ ↦ K(θ) x at fixed x, by linearizing the body in the captures.

The body must be linear in ``v``: the check is the same one the transposer uses, and an
offending operation is a ``LaTypeError`` at its place in the body.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import LaTypeError
from .builder import Builder, Val, Zero, is_zero
from .ir import Namer, Program, Var
from .scope import Scope


MACROS: dict = {}      # name -> object with apply_op(elaborator, call, scope): calls expanded
                       # while elaborating (arnoldi), not primitives


# ---- capture contexts: values of an enclosing program become inputs of a subprogram ----------
class Capture:
    """While a subprogram's body is elaborated: maps values of enclosing builders to fresh
    inputs of this one (through the parent context, so nested operators capture transitively)."""

    def __init__(self, builder: Builder, parent=None):
        self.b = builder
        self.parent = parent
        self.inputs: list = []          # Vars of this builder, one per captured value
        self.outer: list = []           # the captured Vals, in the parent's builder
        self._map: dict = {}

    def value(self, v: Val) -> Val:
        if isinstance(v, Zero) or v.b is self.b:
            return v
        if self.parent is not None:
            v = self.parent.value(v)
        key = id(v.atom)
        if key not in self._map:
            var = self.b.namer.var(v.atom.name if isinstance(v.atom, Var) else "c", v.type)
            self.inputs.append(var)
            self.outer.append(v)
            self._map[key] = self.b.wrap(var)
        return self._map[key]


@dataclass(eq=False)
class Operator:
    """A linear operator as a program: ``prog.inputs = [v, *captures]``, one output."""
    name: str
    prog: Program
    span: object = None
    captured: list = field(default_factory=list)     # the values the captures are bound to
    _cache: dict = field(default_factory=dict, repr=False)

    def __repr__(self):
        return f"op {self.name}"

    __str__ = __repr__

    def __hash__(self):
        return id(self)

    def __call__(self, v, *captures):
        """Apply the operator to an array (the program run as JAX code, compiled once)."""
        if "fn" not in self._cache:
            from ..runtime.lower import to_callable
            self._cache["fn"] = to_callable(self.prog)
        return self._cache["fn"](v, *captures)          # a 1-tuple, like generated functions

    @property
    def n_captured(self) -> int:
        return len(self.prog.inputs) - 1

    @property
    def in_type(self):
        return self.prog.inputs[0].type

    @property
    def out_type(self):
        return self.prog.outputs[0].type

    def transposed(self) -> "Operator":
        """Kᵀ: the body's program transposed in v; inputs [w, *captures] (the same captures)."""
        if "T" not in self._cache:
            from .autodiff import transpose
            v, caps = self.prog.inputs[0], self.prog.inputs[1:]
            tp = transpose(self.prog, [v], list(self.prog.outputs), ct_names=["w"])
            w = tp.inputs[len(caps)]
            prog = tp.copy(name=f"{self.prog.name}_T", inputs=[w] + list(tp.inputs[:len(caps)]), kind="operator")
            op = Operator(self.name + "ᵀ", prog, self.span)
            op._cache["T"] = self
            self._cache["T"] = op
        return self._cache["T"]

    def tangent(self, wrt) -> Program:
        """The linearization of the body in the captures at positions `wrt` (0-based among the
        captures): inputs [v, *captures, *d(captures in wrt)], outputs [K v, (dK) v]."""
        key = ("tangent", tuple(wrt))
        if key not in self._cache:
            from .autodiff import linearize
            self._cache[key] = linearize(self.prog, [1 + i for i in wrt])
        return self._cache[key]


def inline_program(b: Builder, prog: Program, args) -> list:
    """Emit `prog`'s equations into `b` with its inputs bound to `args` (Vals, Zeros); returns
    its outputs. Re-emitting through the builder simplifies zero inputs away."""
    env = {id(v): a for v, a in zip(prog.inputs, args)}

    def get(a):
        if isinstance(a, Var):
            return env[id(a)]
        return b.wrap(a)
    for e in prog.eqns:
        outs = b.emit(e.prim, *[get(a) for a in e.inputs], names=[o.name for o in e.outputs], **e.param_dict)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for o, r in zip(e.outputs, outs):
            env[id(o)] = r
    return [get(o) for o in prog.outputs]


def apply_tangent(b: Builder, op: Operator, x, caps, dcaps):
    """(dK) x: the tangent of θ ↦ K(θ) x at fixed x for captured-value tangents `dcaps`
    (Zero where a capture does not vary); a Zero when none varies."""
    wrt = [i for i, d in enumerate(dcaps) if not is_zero(d)]
    if not wrt:
        return b.zero(op.out_type)
    tp = op.tangent(wrt)
    outs = inline_program(b, tp, [x, *caps, *[dcaps[i] for i in wrt]])
    return outs[1]


# ---- the closure -----------------------------------------------------------------------------
class OpValue:
    """What `K` denotes after `op K(v) ...`: the definition, the scope it closes over."""

    def __init__(self, node, scope, ctx):
        self.node = node
        self.name = node.name
        self.param = node.param
        self.scope = scope
        self.ctx = ctx
        self._instances = {}
        self._checked = set()

    def __repr__(self):
        return f"operator `{self.name}`"

    def check(self, el, in_type, node=None):
        """Check, once per argument type, that the body is linear in v (what `K(x)` and `K @ x`
        need before inlining the body). Not per capture context: an operator applying another
        would otherwise re-check the inner one at every level, exponentially in the nesting."""
        key = str(in_type)
        if key not in self._checked:
            self.instance(el, in_type, node)
            self._checked.add(key)

    def apply_op(self, el, call, scope):
        """`K(x)`: the body inlined with v = x."""
        if call.kwargs:
            raise el.err(LaTypeError, f"operator `{self.name}` takes no keyword arguments", call.kwargs[0])
        if len(call.args) != 1:
            raise el.err(LaTypeError, f"operator `{self.name}` takes one argument, got {len(call.args)}", call)
        x = el.single(el.value(call.args[0], scope), call.args[0])
        self.check(el, x.type, call)                # checks the body is linear in v
        return self.apply(el, x, call)

    def apply(self, el, x, node):
        inner = Scope({self.param: x}, parent=self.scope)
        out = el.body(self.node.body, inner)
        if isinstance(out, tuple):
            raise el.err(LaTypeError, f"operator `{self.name}` must return one value", self.node)
        return out

    def instance(self, el, in_type, node=None) -> Operator:
        """The body as a linear Program for arguments of `in_type`; checked linear in v."""
        key = (str(in_type), id(el.capture))
        if key in self._instances:
            return self._instances[key]
        sub = Builder(Namer(), source=el.source)
        cap = Capture(sub, parent=el.capture)
        v = sub.namer.var(self.param, in_type)
        saved = (el.b, el.capture)
        el.b, el.capture = sub, cap
        try:
            out = self.apply(el, sub.wrap(v), self.node)
        finally:
            el.b, el.capture = saved
        out = cap.value(out) if isinstance(out, Val) and out.b is not sub else out
        if isinstance(out, Zero):
            out = sub.materialize(out)
        prog = Program(f"{self.name}", [v] + cap.inputs, sub.eqns, [out.atom], kind="operator",
                       path=getattr(self.node.span, "path", "<string>"), source=el.source)
        check_linear(prog, self, el)
        op = Operator(self.name, prog, self.node.span, captured=list(cap.outer))
        self._instances[key] = op
        return op


def check_linear(prog: Program, opv: OpValue, el):
    """The body must be linear in v: every operation on a value derived from v is linear in
    it, and the result depends on v."""
    from .autodiff import split_linear
    v = prog.inputs[0]
    _, lin, bad = split_linear(prog.eqns, {v})
    if bad is not None:
        raise LaTypeError(f"operator `{opv.name}` must be linear in `{opv.param}`, but `{_opname(bad.prim)}` "
                          f"here is not linear in it (an operator body may only scale, add, multiply by "
                          f"values that do not depend on `{opv.param}`, and apply linear functions)",
                          span=bad.span, source=el.source)
    out = prog.outputs[0]
    lin_ids = {id(v)} | {id(o) for e in lin for o in e.outputs}
    if not (isinstance(out, Var) and id(out) in lin_ids):
        raise LaTypeError(f"operator `{opv.name}` does not depend on `{opv.param}`: its result is a "
                          f"constant, not a linear function of `{opv.param}`", span=opv.node.span, source=el.source)


def _opname(prim):
    from .primitive import REGISTRY
    p = REGISTRY.get(prim)
    return prim if p is None else p.infix or p.label
