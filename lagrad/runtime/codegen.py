"""Generate the JAX source of a Program: one Python line per equation. This source is what
actually runs (``to_jax`` executes it under ``jax.jit``) and what ``to_python()`` shows."""
from __future__ import annotations

import keyword

import sympy

from ..compiler.ir import Lit, Program, Var
from ..compiler.operators import Operator
from ..compiler.primitive import get
from ..compiler.types import TensorType, free_dims

RESERVED = {"P", "jax", "jnp", "np"}


def py_expr(v) -> str:
    """Python source of a parameter value: dimension expressions print in terms of dim names."""
    if isinstance(v, sympy.Basic):
        if v.is_Integer:
            return str(int(v))
        return sympy.pycode(v).replace("math.", "")
    if isinstance(v, tuple):
        inner = ", ".join(py_expr(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, float):
        return repr(v)
    return repr(v)


def _safe(name: str, taken: set) -> str:
    n = name
    while keyword.iskeyword(n) or n in RESERVED or n in taken:
        n += "_"
    return n


class _Names:
    def __init__(self, prog: Program):
        self.map = {}
        used = set()
        for v in prog.vars():
            s = _safe(v.name, used)
            used.add(s)
            self.map[id(v)] = s
        self.used = used

    def __call__(self, a) -> str:
        if isinstance(a, Lit):
            return repr(float(a.value))
        return self.map[id(a)]


def dim_bindings(prog: Program, names) -> list:
    """Lines binding each symbolic dimension from the inputs: from one where it stands alone,
    else by solving an entry linear in it once its other names are bound (``k`` from a
    ``[n + k, n]`` input gives ``k = x.shape[0] - n``)."""
    needed = set()
    for e in prog.eqns:
        for _, v in e.params:
            needed |= _dims_in(v)
    lines, bound = [], set()
    entries = [(v, k, sympy.expand(d)) for v in prog.inputs if isinstance(v.type, TensorType)
               for k, d in enumerate(v.type.shape)]
    for v, k, d in entries:
        if d.is_Symbol and d.name not in bound and (d.name in needed or _helps(d, entries, needed)):
            bound.add(d.name)
            lines.append(f"{d.name} = {names(v)}.shape[{k}]")
    progress = True
    while needed - bound and progress:
        progress = False
        for v, k, d in entries:
            free = [s for s in d.free_symbols if s.name not in bound]
            if len(free) != 1 or free[0].name not in needed or sympy.degree(d, free[0]) != 1:
                continue
            s = free[0]
            coeff, rest = d.coeff(s), sympy.expand(d - d.coeff(s) * s)
            if not (coeff.is_Integer and coeff > 0) or rest.has(s):
                continue
            bound.add(s.name)
            lines.append(f"{s.name} = ({names(v)}.shape[{k}] - ({py_expr(rest)})) // {int(coeff)}")
            progress = True
    missing = needed - bound
    if missing:
        raise ValueError(f"dimensions {sorted(missing)} cannot be bound from the inputs")
    return lines


def _helps(sym, entries, needed) -> bool:
    """Whether a dimension name appears in an entry with a needed name (to solve for it)."""
    return any(sym in d.free_symbols and any(x.name in needed for x in d.free_symbols)
               for _, _, d in entries if not d.is_Symbol)


def _dims_in(v) -> set:
    if isinstance(v, sympy.Basic):
        return {s.name for s in v.free_symbols}
    if isinstance(v, tuple):
        out = set()
        for x in v:
            out |= _dims_in(x)
        return out
    return set()


def eqn_source(e, names, ops=None) -> str:
    p = get(e.prim)
    args = [names(a) for a in e.inputs]
    params = e.param_dict
    if p.codegen is not None:
        rhs = p.codegen(args, params)
    else:
        kw = [f"{k}={ops[id(v)] if ops and id(v) in ops else py_expr(v)}" for k, v in e.params]
        rhs = f"P.{p.name}(" + ", ".join(args + kw) + ")"
    lhs = ", ".join(names(o) for o in e.outputs)
    if len(e.outputs) == 1 and p.nout != 1:
        lhs += ","
    return f"{lhs} = {rhs}"


def function_name(prog: Program) -> str:
    base = prog.name if prog.kind == "primal" else f"{prog.name}_{prog.kind}"
    return _safe(base.replace("-", "_"), set())


def _operators(prog: Program, found: dict, order: list):
    """Operators used as parameters (nested ones first), each with a function name."""
    for e in prog.eqns:
        for _, v in e.params:
            if isinstance(v, Operator) and id(v) not in found:
                _operators(v.prog, found, order)
                base = "op_" + "".join(c if c.isalnum() or c == "_" else "_" for c in
                                       v.name.replace("ᵀ", "_T"))
                found[id(v)] = _safe(base, set(found.values()) | RESERVED)
                order.append(v)


def _function_lines(prog: Program, fname: str, ops: dict, with_comments: bool) -> list:
    names = _Names(prog)
    out = [f"def {fname}({', '.join(names(v) for v in prog.inputs)}):"]
    body = dim_bindings(prog, names)
    for e in prog.eqns:
        line = eqn_source(e, names, ops)
        if with_comments and e.span is not None and getattr(e.span, "line", 0):
            line += f"  # {e.span.path}:{e.span.line}" + (f" ({e.origin})" if e.origin else "")
        body.append(line)
    outs = ", ".join(names(o) for o in prog.outputs)
    body.append(f"return ({outs},)" if len(prog.outputs) == 1 else f"return ({outs})")
    out.extend("    " + l for l in body)
    return out


def generate_source(prog: Program, with_comments: bool = True) -> str:
    fname = function_name(prog)
    out = [f'"""lagrad: {prog.kind} program of `{prog.name}` (from {prog.path}), generated JAX source."""',
           "import jax", "import jax.numpy as jnp", "from lagrad.runtime.prims import P", "", ""]
    ops, order = {}, []
    _operators(prog, ops, order)
    for op in order:                     # matrix-free operators: v ↦ K v, closed-over values last
        out += [f"# operator {op.name}: applied by the solvers as {ops[id(op)]}(v, *captured)"]
        out += _function_lines(op.prog, ops[id(op)], ops, with_comments)
        out += ["", ""]
    out += _function_lines(prog, fname, ops, with_comments)
    return "\n".join(out) + "\n"
