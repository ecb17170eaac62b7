"""Fréchet rules written in the language: ``frechet inv(A) -> X { dX = -X @ dA @ X }``.
The block is elaborated with the builder of the program being differentiated; calls of the
rule's own primitive inherit the keyword parameters of the call being differentiated."""
from __future__ import annotations

import dataclasses

from ..dsl import ast
from ..errors import RuleError
from .autodiff import split_linear
from .builder import Val, Zero
from .ir import Eqn
from .primitive import REGISTRY, resolve
from .replay import current, logged_names, record, replay, template_key
from .scope import Scope
from .types import TensorType, promote, shape_eq


class RuleContext:
    """The module context of a rule body: primitives, and for a block written in a `.la` file
    that file's `fn` and `elementwise` definitions (`module`, its ModuleContext)."""

    def __init__(self, source, path, module=None, own=None):
        self.source = source
        self.path = path
        self.module = module
        self.own = own                  # the primitive whose rule this is: its name calls it
        self.dim_names = set()

    def lookup_callable(self, name):
        m = self.module
        if self.own is not None and name == self.own.label:
            return self.own
        if m is not None:
            return m.lookup_callable(name)
        return resolve(name)

    def callable_names(self):
        from .primitive import public_names
        m = self.module
        return (list(m.fns) + list(m.elementwise) if m is not None else []) + public_names()

    def globals_scope(self):
        return Scope({})

    def define_op(self, el, st, scope):
        raise el.err(RuleError, "operators cannot be defined inside a frechet rule", st)


def parse_frechet(p) -> ast.FrechetDef:
    if isinstance(p.frechet, ast.FrechetDef):
        return p.frechet
    from ..dsl import parse
    mod = parse(p.frechet, path=f"<frechet rule of {p.label}>")
    defs = [it for it in mod.items if isinstance(it, ast.FrechetDef)]
    if len(defs) != 1:
        raise RuleError(f"the Fréchet rule of `{p.label}` must be one `frechet {p.label}(...) -> ... {{ ... }}` block")
    return defs[0]


def same_rule(d: ast.FrechetDef, std: ast.FrechetDef) -> bool:
    """Whether block `d` is `std` up to the names of its arguments and outputs (and their `d`
    names): `frechet inv(M) -> Y { dY = -Y @ dM @ Y }` is inv's rule."""
    if (d.name, len(d.args), len(d.outs)) != (std.name, len(std.args), len(std.outs)):
        return False
    names = dict(zip(d.args + d.outs, std.args + std.outs))
    names.update({"d" + a: "d" + b for a, b in names.items()})

    def renamed(x):
        if isinstance(x, ast.Name):
            return dataclasses.replace(x, id=names.get(x.id, x.id))
        if isinstance(x, tuple):
            return tuple(renamed(y) for y in x)
        if isinstance(x, ast.Node):
            return dataclasses.replace(x, **{k: renamed(v) for k, v in ast.fields_of(x).items()})
        return x
    return renamed(d.body) == std.body


def check_signature(p, d: ast.FrechetDef, source=None):
    err = None
    if d.name != p.label:
        err = f"this frechet block is for `{d.name}`, not `{p.label}`"
    elif len(d.outs) != p.nout:
        err = f"`{p.label}` has {p.nout} output(s); the frechet block names {len(d.outs)}"
    if err:
        raise RuleError(err, span=d.span, source=source)
    for st in d.body:
        if not isinstance(st, ast.Assign):
            raise RuleError("a frechet block holds assignments only", span=st.span, source=source)


def compile_frechet_text(p):
    d = parse_frechet(p)
    source = p.frechet if isinstance(p.frechet, str) else getattr(p, "frechet_source", "")
    check_signature(p, d, source)
    ctx = RuleContext(source, d.span.path, getattr(p, "frechet_module", None) if p.frechet is d else None, p)

    def elaborate(b, x, dx, y, params):
        from .elaborate import Elaborator
        if len(x) != len(d.args):
            raise RuleError(f"the frechet block of `{p.label}` names {len(d.args)} argument(s) but the "
                            f"call has {len(x)}", span=d.span, source=source)
        scope = Scope({})
        for name, xv, dv in zip(d.args, x, dx):
            scope.bind(name, xv)
            scope.bind("d" + name, dv)
        for name, yv in zip(d.outs, y):
            scope.bind(name, yv)
        el = Elaborator(ctx, b)
        el.inherit = (p.name, dict(params))
        span, origin = b.span, b.origin
        start = len(b.eqns)
        fold, b.fold_transposes = b.fold_transposes, False   # the check below must see every dAᵀ
        try:
            el.body(d.body, scope)
        finally:
            b.fold_transposes = fold
        b.span, b.origin = span, origin
        tangents = {v.atom for v in dx if isinstance(v, Val) and not isinstance(v, Zero)}
        _, lin, bad = split_linear(b.eqns[start:], tangents)
        if bad is not None:
            raise RuleError(f"the Fréchet rule of `{p.label}` is not linear in the tangents: "
                            f"`{REGISTRY[bad.prim].label}` is applied nonlinearly to a tangent"
                            + _undeclared(b.eqns[start:], tangents),
                            span=bad.span, source=source)
        # derived lines point at the source line being differentiated, not at the rule text
        b.eqns[start:] = [_relabel(e, span, origin) for e in b.eqns[start:]]
        lin_out = {o for e in lin for o in e.outputs} | tangents
        outs = []
        for name, yv in zip(d.outs, y):
            v = scope.names.get("d" + name)
            if v is None:
                raise RuleError(f"the frechet block of `{p.label}` does not assign `d{name}`",
                                span=d.span, source=source)
            at = _assignment(d, "d" + name).span
            if not isinstance(v, Zero) and v.atom not in lin_out:
                raise RuleError(f"`d{name}` does not depend linearly on the tangents", span=at, source=source)
            if not _fits(v.type, yv.type):
                raise RuleError(f"the Fréchet rule of `{p.label}` gives `d{name}` the type {v.type}, but "
                                f"its output `{name}` is {yv.type}: `d{name}` must have the output's type",
                                span=at, source=source)
            outs.append(v)
        return outs

    templates: dict = {}

    def rule(b, x, dx, y, params):
        """The rule's equations, elaborated once per key (input kinds and types, which inputs
        are the same value, parameters) and replayed after: an unrolled loop differentiates the
        same call once per iteration."""
        key = _template_key(x, dx, y, params)
        tpl = templates.get(key) if key is not None else None
        if tpl is not None and current(tpl):
            return _replay(b, tpl, x, dx, y)
        if key is None:
            return elaborate(b, x, dx, y, params)
        start = len(b.eqns)
        with logged_names(b.namer) as calls:
            outs = elaborate(b, x, dx, y, params)
        tpl = record(b.eqns[start:], calls, outs, (*x, *dx, *y))
        if tpl is not None:
            if len(templates) > 256:
                templates.clear()
            templates[key] = tpl
        return outs

    rule.frechet_def = d
    return rule


def _undeclared(eqns, tangents) -> str:
    """A hint when the rule passes a tangent (or a tangent that is zero, materialized) to a user
    primitive in an argument its `linear_in` does not list: `mymv(dW, v)` for linear_in=(1,)."""
    zeros = {o for e in eqns if e.prim == "zeros" for o in e.outputs}
    for e in eqns:
        q = REGISTRY.get(e.prim)
        if q is None or not q.user:
            continue
        lin = q.linear_positions(len(e.inputs))
        for i, a in enumerate(e.inputs):
            if i not in lin and (a in tangents or a in zeros):
                return (f" (`{q.label}` gets a tangent as argument {i + 1}, which its linear_in does not "
                        f"list: declare it linear there, linear_in={tuple(sorted(lin | {i}))})")
    return ""


def _assignment(d: ast.FrechetDef, target: str):
    """The rule's last assignment to `target` (where an error about it points), else the block."""
    for st in reversed(d.body):
        if any(isinstance(t, ast.Name) and t.id == target for t in st.targets):
            return st
    return d


def _fits(t, want) -> bool:
    """Whether a tangent of type `t` is one of an output of type `want`: the same shape (symbolic
    dimensions compared as expressions) and a dtype that promotes to the output's."""
    if isinstance(want, TensorType) and isinstance(t, TensorType):
        return shape_eq(t.shape, want.shape) and promote(t.dtype, want.dtype) == want.dtype
    return t.same(want)


# ---- replaying an elaborated rule (lagrad/compiler/replay.py) ------------------------------------
def _template_key(x, dx, y, params):
    """What the elaboration of a rule depends on: its arguments (replay.template_key) and the
    parameters (and the primitives it calls, which the template holds: see replay.current)."""
    return template_key((*x, *dx, *y), params if isinstance(params, tuple) else tuple(sorted(params.items())))


def _replay(b, tpl, x, dx, y):
    return replay(b, tpl, (*x, *dx, *y))


def _relabel(e, span, origin):
    return Eqn(e.prim, e.inputs, e.params, e.outputs, span, origin)
