"""Generate the JAX source of a Program: one Python line per equation. This source is what
actually runs (``to_jax`` executes it under ``jax.jit``) and what ``to_python()`` shows."""
from __future__ import annotations

import keyword
import math

import sympy

from . import reroll
from ..compiler.ir import Lit, Program, Var
from ..compiler.operators import Operator
from ..compiler.primitive import get
from ..compiler.types import TensorType, dim_names, solve_entry

RESERVED = {"P", "jax", "jnp", "np"}


def py_expr(v) -> str:
    """Python source of a parameter value: dimension expressions print in terms of dim names."""
    if isinstance(v, sympy.Basic):
        if v.is_Integer:
            return str(int(v))
        num, den = sympy.fraction(sympy.together(v))
        if den != 1:                        # a size like n/128 (checked divisible at run time)
            return f"({py_expr(num)}) // {py_expr(den)}"
        return sympy.pycode(v).replace("math.", "")
    if isinstance(v, tuple):
        inner = ", ".join(py_expr(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, float) and not math.isfinite(v):     # inf, nan: not Python literals
        return f"float({repr(v)!r})"
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
            self.map[v] = s
        self.used = used

    def __call__(self, a) -> str:
        if isinstance(a, Lit):
            return literal_source(a.value)
        return self.map[a]


def literal_source(value) -> str:
    """Python source of a constant that stays one operand wherever it is pasted: a negative number
    in parentheses (``-2.0 ** 2`` is −4 in Python), inf and nan spelled as expressions."""
    v = float(value)
    if v != v:
        return 'float("nan")'
    if v in (float("inf"), float("-inf")):
        return 'float("inf")' if v > 0 else '(-float("inf"))'
    return f"({v!r})" if v < 0 or (v == 0 and str(v).startswith("-")) else repr(v)


def dim_bindings(prog: Program, names) -> list:
    """Lines binding each symbolic dimension from the inputs: from one where it stands alone,
    else by solving an entry linear in it once its other names are bound (``k`` from a
    ``[n + k, n]`` input gives ``k = x.shape[0] - n``)."""
    needed = set()
    for e in prog.eqns:
        for _, v in e.params:
            needed |= dim_names(v)
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
            step = solve_entry(d, bound)
            if step is None or step[0].name not in needed:
                continue
            s, coeff, rest = step
            bound.add(s.name)                   # n from [n/6, 6, 6]: n = shape * 6 // 1
            times = f" * {coeff.q}" if coeff.q != 1 else ""
            lines.append(f"{s.name} = ({names(v)}.shape[{k}] - ({py_expr(rest)})){times} // {coeff.p}")
            progress = True
    missing = needed - bound
    if missing:
        raise ValueError(f"dimensions {sorted(missing)} cannot be bound from the inputs")
    return lines


def _helps(sym, entries, needed) -> bool:
    """Whether a dimension name appears in an entry with a needed name (to solve for it)."""
    return any(sym in d.free_symbols and any(x.name in needed for x in d.free_symbols)
               for _, _, d in entries if not d.is_Symbol)


def eqn_source(e, names, ops=None) -> str:
    p = get(e.prim)
    args = [names(a) for a in e.inputs]
    if args and all(isinstance(a, Lit) for a in e.inputs):
        # constants only (the builder folds its own arithmetic; this covers equations made
        # without it): a weakly typed JAX scalar, so the operation has JAX's IEEE semantics
        # (1/0 = inf, (−8)^(1/3) = nan) and not Python's (ZeroDivisionError, a complex number)
        args[0] = f"jnp.asarray({args[0]})"
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


def _registrations(progs) -> list:
    """Lines that make the source run in a process that did not load the module: each
    elementwise function registered from its expression; a note for each user primitive
    (a Python function, which the source cannot carry)."""
    from ..compiler.elementwise import source_line
    seen, lines = {}, []
    for pr in progs:
        for e in pr.eqns:
            seen.setdefault(e.prim, get(e.prim))
    for p in seen.values():
        if hasattr(p, "sympy_expr"):
            lines.append(source_line(p))
        elif p.user:
            lines.append(f"# needs the user primitive `{p.label}` registered first (lagrad.primitive)")
    return lines


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


def _transposed_matmul(e, producers, names):
    """`Aᵀ @ B` or `B @ Aᵀ` with Aᵀ made by a transpose in the same program: one dot_general
    contracting A's axis directly. XLA on CPU otherwise copies the transposed matrix, once per
    iteration when the product sits in a solver's loop body."""
    if e.prim != "matmul":
        return None
    for side, a in enumerate(e.inputs):
        src = producers.get(a)
        if src is None or src.prim != "transpose" or src.inputs[0].type.ndim != 2:
            continue
        A = names(src.inputs[0])
        other = names(e.inputs[1 - side])
        if side == 0:       # Aᵀ @ B: contract A's rows with B's first axis
            rhs = f"jax.lax.dot_general({A}, {other}, (((0,), (0,)), ((), ())))"
        else:               # B @ Aᵀ: contract B's last axis with A's columns
            nd = e.inputs[0].type.ndim
            rhs = f"jax.lax.dot_general({other}, {A}, ((({nd - 1},), (1,)), ((), ())))"
        return f"{names(e.outputs[0])} = {rhs}"
    return None


def _function_lines(prog: Program, fname: str, ops: dict, with_comments: bool, tuple_out=False,
                    solver=None) -> list:
    names = _Names(prog)
    out = [f"def {fname}({', '.join(names(v) for v in prog.inputs)}):"]
    body = dim_bindings(prog, names)
    producers = {o: e for e in prog.eqns for o in e.outputs}

    def emit(e, nm=names):
        return ((solver(e, nm) if solver else None) or _transposed_matmul(e, producers, nm)
                or eqn_source(e, nm, ops))

    def local_names(a):             # a scan body's placeholders carry their own names
        return a.name if isinstance(a, Var) and a not in names.map else names(a)
    runs = {r.start: r for r in reroll.find_runs(prog)} if reroll.ENABLED else {}
    stacked, k, nrun = {}, 0, 0
    while k < len(prog.eqns):
        if k in runs:
            r = runs[k]
            body += reroll.scan_lines(r, prog, local_names, lambda e: emit(e, local_names), nrun, stacked)
            nrun += 1
            k = r.end
            continue
        e = prog.eqns[k]
        line = emit(e)
        if with_comments and e.span is not None and getattr(e.span, "line", 0):
            line += f"  # {e.span.path}:{e.span.line}" + (f" ({e.origin})" if e.origin else "")
        body.append(line)
        k += 1
    outs = ", ".join(names(o) for o in prog.outputs)
    body.append(f"return ({outs},)" if len(prog.outputs) == 1 or tuple_out and outs
                else f"return ({outs})")
    if runs:            # a scan body indexes the inputs with a traced counter: NumPy arrays given
        body = [f"{names(v)} = jnp.asarray({names(v)})" for v in prog.inputs   # to the source as
                if isinstance(v.type, TensorType) and v.type.shape] + reroll.drop_unused(body)   # printed: converted
    out.extend("    " + l for l in body)
    return out


def split_invariant(op) -> tuple:
    """(pre, apply): the operator's equations that do not depend on v, as a program of the
    captures returning what the rest needs, and the rest as a program of [v, *those values].
    A solver calls `pre` once and `apply` every iteration."""
    v = op.prog.inputs[0]
    dep = {id(v)}
    for e in op.prog.eqns:
        if any(isinstance(a, Var) and id(a) in dep for a in e.inputs):
            dep.update(id(o) for o in e.outputs)
    pre_eqns = [e for e in op.prog.eqns if id(e.outputs[0]) not in dep]
    app_eqns = [e for e in op.prog.eqns if id(e.outputs[0]) in dep]
    needed, seen = [], set()
    for a in [a for e in app_eqns for a in e.inputs] + list(op.prog.outputs):
        if isinstance(a, Var) and id(a) not in dep and id(a) not in seen:
            seen.add(id(a))
            needed.append(a)
    pre = op.prog.copy(inputs=list(op.prog.inputs[1:]), eqns=pre_eqns, outputs=needed, kind="operator")
    app = op.prog.copy(inputs=[v] + needed, eqns=app_eqns, kind="operator")
    return pre, app


def _solver_call(e, names, ops, pre_names, n_needed) -> str:
    """A solver equation whose operators were split: the loop-invariant parts computed once."""
    nk = e.param("nk")
    caps = [names(a) for a in e.inputs[1:]]
    parts = [names(e.inputs[0]), f"*{pre_names[id(e.param('K'))]}({', '.join(caps[:nk])})"]
    M = e.param("M")
    if M is not None:
        parts.append(f"*{pre_names[id(M)]}({', '.join(caps[nk:])})")
    kw = [f"{k}={ops[id(v)] if id(v) in ops else py_expr(v)}" for k, v in e.params if k != "nk"]
    kw.append(f"nk={n_needed[id(e.param('K'))]}")
    lhs = ", ".join(names(o) for o in e.outputs)
    return f"{lhs} = P.{e.prim}(" + ", ".join(parts + kw) + ")"


def generate_source(prog: Program, with_comments: bool = True) -> str:
    fname = function_name(prog)
    out = [f'"""lagrad: {prog.kind} program of `{prog.name}` (from {prog.path}), generated JAX source."""',
           "import jax", "import jax.numpy as jnp", "from lagrad.runtime.prims import P", "", ""]
    ops, order = {}, []
    _operators(prog, ops, order)
    out[-2:-2] = _registrations([prog] + [op.prog for op in order])
    pre_names, n_needed = {}, {}
    for op in order:                     # matrix-free operators: v ↦ K v
        pre, app = split_invariant(op)
        pre_names[id(op)] = _safe(ops[id(op)] + "_pre", set(ops.values()) | RESERVED)
        n_needed[id(op)] = len(app.inputs) - 1
        out += [f"# operator {op.name}: {pre_names[id(op)]} once per solve (what does not depend on "
                f"{op.prog.inputs[0].name}), {ops[id(op)]} every iteration"]
        out += _function_lines(pre, pre_names[id(op)], ops, with_comments, tuple_out=True)
        out += [""]
        out += _function_lines(app, ops[id(op)], ops, with_comments)
        out += ["", ""]
    out += _function_lines(prog, fname, ops, with_comments,
                           solver=lambda e, names: _solver_call(e, names, ops, pre_names, n_needed)
                           if any(isinstance(v, Operator) for _, v in e.params) and e.param("nk") is not None
                           else None)
    return "\n".join(out) + "\n"
