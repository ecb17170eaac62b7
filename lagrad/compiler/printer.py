"""Readable text of a Program: one operation per line, source names, types with symbolic dims,
and on every line the source line it comes from (``# from model.la:3 (inv)``)."""
from __future__ import annotations

import html
import os
import re

from .ir import Lit, Program, Var
from .primitive import REGISTRY
from .types import fmt_dim


def atom_text(a) -> str:
    return a.name if isinstance(a, (Var, Lit)) else str(a)


def _param_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple):
        return "(" + ", ".join(_param_text(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if hasattr(v, "free_symbols"):
        return fmt_dim(v)
    return repr(v)


def _spec_text(spec) -> str:
    items = [fmt_dim(it[1]) if it[0] == "at" else f"{fmt_dim(it[1])}:{fmt_dim(it[2])}" for it in spec]
    return f"[{', '.join(items)}]"


def rhs_text(e) -> str:
    p = REGISTRY.get(e.prim)
    args = [atom_text(a) for a in e.inputs]
    if p is not None and p.infix:        # -2.0 ** t reads as −(2.0 ** t): a negative constant
        args = [f"({t})" if isinstance(a, Lit) and t.startswith("-") else t   # operand in parentheses
                for a, t in zip(e.inputs, args)]
    if p is not None and p.infix and len(args) == 2:
        return f"{args[0]} {p.infix} {args[1]}"
    if p is not None and p.infix and len(args) == 1:
        return f"{p.infix}{args[0]}"
    if e.prim == "transpose":
        return f"{args[0]}'"
    if e.prim == "index":
        return args[0] + _spec_text(e.param("spec"))
    kw = [f"{k}={_spec_text(v) if k == 'spec' and e.prim == 'index' else _param_text(v)}" for k, v in e.params
          if v is not None]
    name = (p.display or p.name) if p is not None else e.prim
    return f"{name}({', '.join(args + kw)})"


def _where(e, path) -> str:
    if e.span is None or not getattr(e.span, "line", 0):
        # a derivative that is zero because no path connects it: no source line makes it
        return "# zero: no dependence" if e.prim == "zeros" and e.origin is None else ""
    where = f"# from {os.path.basename(e.span.path or path)}:{e.span.line}"
    return where + (f" ({e.origin})" if e.origin else "")


def _operators_used(prog: Program, seen: dict) -> list:
    """Operator parameters of the program's equations, nested ones first."""
    out = []
    for e in prog.eqns:
        for _, v in e.params:
            if type(v).__name__ == "Operator" and id(v) not in seen:
                seen[id(v)] = v
                out += _operators_used(v.prog, seen) + [v]
    return out


def format_program(prog: Program) -> str:
    """The program's text, preceded by the operators its solvers use (`op Kᵀ(w)` derived by
    transposing `op K(v)`'s body), each with the values it closes over."""
    ops = _operators_used(prog, {})
    from .passes import tidy_names
    parts = [_format_one(tidy_names(op.prog, [f"{op.name}{op.prog.inputs[0].name}"]), head=f"op {op.name}({op.prog.inputs[0].name}: {op.prog.inputs[0].type}) "
                         f"closing over ({', '.join(f'{v.name}: {v.type}' for v in op.prog.inputs[1:])})")
             for op in ops]
    return "\n\n".join(parts + [_format_one(prog)])


def _format_one(prog: Program, head=None) -> str:
    sig = ", ".join(f"{v.name}: {v.type}" for v in prog.inputs)
    outs = ", ".join(atom_text(o) for o in prog.outputs) or "()"      # nothing to return: ()
    head = head or f"{prog.kind} {prog.name}({sig})"
    lines = []
    for e in prog.eqns:
        lhs = ", ".join(f"{o.name}: {o.type}" for o in e.outputs)
        lines.append((f"    {lhs} = {rhs_text(e)}", _where(e, prog.path)))
    width = max([len(l) for l, _ in lines] + [0])
    width = min(width, 72)
    body = [f"{l.ljust(width)}  {c}".rstrip() if c else l for l, c in lines]
    return "\n".join([head + ":"] + body + [f"    return {outs}"])


_TOKENS = re.compile(r"(?P<comment>#.*$)|(?P<head>^(?:primal|adjoint|tangent|forward|backward|hvp|op)\b)"
                     r"|(?P<kw>\breturn\b|\bclosing over\b)|(?P<type>\b[fi](?:32|64)(?:\[[^\]]*\])?)"
                     r"|(?P<bar>\b\w+_bar\b)", re.M)
_STYLE = {"comment": "color:#6a737d", "head": "color:#6f42c1;font-weight:bold", "kw": "color:#d73a49",
          "type": "color:#005cc5", "bar": "color:#b31d28"}


def format_html(prog: Program) -> str:
    """The program's text as highlighted HTML (Jupyter): comments, types, cotangents."""
    text = format_program(prog)
    out, pos = [], 0
    for m in _TOKENS.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        out.append(f'<span style="{_STYLE[m.lastgroup]}">{html.escape(m.group())}</span>')
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return '<pre style="line-height:1.3">' + "".join(out) + "</pre>"
