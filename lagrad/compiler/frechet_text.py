"""Fréchet rules written in the language: ``frechet inv(A) -> X { dX = -X @ dA @ X }``.
The block is elaborated with the builder of the program being differentiated; calls of the
rule's own primitive inherit the keyword parameters of the call being differentiated."""
from __future__ import annotations

from ..dsl import ast
from ..errors import RuleError
from .autodiff import split_linear
from .builder import Val, Zero
from .scope import Scope


class RuleContext:
    """The module context of a rule body: only primitives are callable."""

    def __init__(self, source, path):
        self.source = source
        self.path = path
        self.dim_names = set()

    def lookup_callable(self, name):
        from .primitive import REGISTRY
        return REGISTRY.get(name)

    def callable_names(self):
        from .primitive import public_names
        return public_names()

    def globals_scope(self):
        return Scope({})

    def define_op(self, el, st, scope):
        raise el.err(RuleError, "operators cannot be defined inside a frechet rule", st)


def parse_frechet(p) -> ast.FrechetDef:
    if isinstance(p.frechet, ast.FrechetDef):
        return p.frechet
    from ..dsl import parse
    mod = parse(p.frechet, path=f"<frechet rule of {p.name}>")
    defs = [it for it in mod.items if isinstance(it, ast.FrechetDef)]
    if len(defs) != 1:
        raise RuleError(f"the Fréchet rule of `{p.name}` must be one `frechet {p.name}(...) -> ... {{ ... }}` block")
    return defs[0]


def check_signature(p, d: ast.FrechetDef, source=None):
    err = None
    if d.name != p.name:
        err = f"this frechet block is for `{d.name}`, not `{p.name}`"
    elif len(d.outs) != p.nout:
        err = f"`{p.name}` has {p.nout} output(s); the frechet block names {len(d.outs)}"
    if err:
        raise RuleError(err, span=d.span, source=source)
    for st in d.body:
        if not isinstance(st, ast.Assign):
            raise RuleError("a frechet block holds assignments only", span=st.span, source=source)


def compile_frechet_text(p):
    d = parse_frechet(p)
    source = p.frechet if isinstance(p.frechet, str) else getattr(p, "frechet_source", "")
    check_signature(p, d, source)
    ctx = RuleContext(source, d.span.path)

    def rule(b, x, dx, y, params):
        from .elaborate import Elaborator
        if len(x) != len(d.args):
            raise RuleError(f"the frechet block of `{p.name}` names {len(d.args)} argument(s) but the "
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
        tangent_ids = {id(v.atom) for v in dx if isinstance(v, Val) and not isinstance(v, Zero)}
        _, lin, bad = split_linear(b.eqns[start:], tangent_ids)
        if bad is not None:
            raise RuleError(f"the Fréchet rule of `{p.name}` is not linear in the tangents: "
                            f"`{bad.prim}` is applied nonlinearly to a tangent",
                            span=bad.span, source=source)
        # derived lines point at the source line being differentiated, not at the rule text
        b.eqns[start:] = [_relabel(e, span, origin) for e in b.eqns[start:]]
        lin_out = {id(o) for e in lin for o in e.outputs} | tangent_ids
        outs = []
        for name in d.outs:
            v = scope.names.get("d" + name)
            if v is None:
                raise RuleError(f"the frechet block of `{p.name}` does not assign `d{name}`",
                                span=d.span, source=source)
            if not isinstance(v, Zero) and id(v.atom) not in lin_out:
                raise RuleError(f"`d{name}` does not depend linearly on the tangents", span=d.span, source=source)
            outs.append(v)
        return outs

    rule.frechet_def = d
    return rule


def _relabel(e, span, origin):
    from .ir import Eqn
    return Eqn(e.prim, e.inputs, e.params, e.outputs, span, origin)
