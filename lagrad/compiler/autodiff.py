"""Forward and reverse mode as program transformations (after JAX's Autodidax):
``linearize`` applies Fréchet rules equation by equation; ``transpose`` walks the linear part
backwards applying transpose rules, with zero-by-default cotangents summed over uses.
Reverse mode is ``transpose(linearize(program))`` — never a hand-written reverse rule."""
from __future__ import annotations


from ..errors import LagradError, RuleError
from .builder import Builder, Undef, Val, Zero, is_zero
from .ir import Eqn, Namer, Program, Var
from .primitive import USER_KEYS, get
from .types import TensorType, shape_eq


def primitive_program(name: str, in_types, params=None) -> Program:
    """A one-equation program ``outs = name(x0, ..., x{k-1}, **params)``."""
    namer = Namer()
    inputs = [namer.var(f"x{i}", t) for i, t in enumerate(in_types)]
    b = Builder(namer)
    out = b.emit(name, *[b.wrap(v) for v in inputs], name="y", **(params or {}))
    outs = list(out) if isinstance(out, tuple) else [out]
    return Program(name, inputs, b.eqns, [o.atom for o in outs], kind="primal")


def differentiable_inputs(prog: Program, wrt=None) -> list:
    if wrt is None:
        return [i for i, v in enumerate(prog.inputs) if isinstance(v.type, TensorType)]
    return list(wrt)


# ---- renaming of derived results ----------------------------------------------------------
def _rename_result(b: Builder, start: int, val, name: str):
    """Give the Var that `val` holds (made by an equation at index ≥ start) the name `name`."""
    if not isinstance(val, Val) or isinstance(val, Zero) or not isinstance(val.atom, Var):
        return val
    old = val.atom
    if old.name == name:
        return val
    eqns = b.eqns                       # (`in` on Vars is identity: they compare by identity)
    last = len(eqns) - 1
    for k in range(last, start - 1, -1):
        e = eqns[k]
        if old in e.outputs:            # most often the last equation: no later use to look for
            if k < last and any(old in e2.inputs for e2 in eqns[k + 1:]):
                return val
            new = Var(b.namer.fresh(name), old.type)
            eqns[k] = Eqn(e.prim, e.inputs, e.params, tuple(new if o is old else o for o in e.outputs),
                          e.span, e.origin)
            return Val(new, b)
    return val


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def run_user_rule(kind, p, fn, args, want, span, source):
    """`fn(*args)`, a user primitive's Python rule, with what goes wrong in it as a RuleError at
    the call being differentiated: an exception it raises, or results that are not builder
    values of the types `want` (one type per result; None: any)."""
    if not p.user or not callable(fn) or hasattr(fn, "frechet_def"):
        return fn(*args)
    b = args[0]
    # the rule's `b.emit("NAME", ...)` calls user primitives as a `.la` file loaded now would, and
    # its own name calls this primitive even after a later registration of the name (as a text
    # rule's does, frechet_text.RuleContext)
    b.user_names = {**USER_KEYS, p.label: p.name}
    try:
        res = fn(*args)
    except LagradError:
        raise
    except Exception as e:
        raise RuleError(f"the {kind} rule of `{p.label}` (a Python function) raised "
                        f"{type(e).__name__}: {e}", span=span, source=source) from e
    finally:
        b.user_names = None
    vals = _as_list(res)
    for k, (r, t) in enumerate(zip(vals, want)):
        ok = r is None or isinstance(r, (Val, Zero))
        if ok and t is not None and isinstance(r, (Val, Zero)) and isinstance(t, TensorType):
            ok = isinstance(r.type, TensorType) and shape_eq(r.type.shape, t.shape)
        if not ok:
            got = r.type if isinstance(r, (Val, Zero)) else type(r).__name__
            raise RuleError(f"the {kind} rule of `{p.label}` returned {got} for result {k + 1}; it must "
                            f"return builder values (b.emit(...), arithmetic on its arguments)"
                            + (f" of type {t}" if t is not None else ""), span=span, source=source)
    return res


def frechet_rule(p, span=None, source=None):
    if p.frechet is None:
        if p.zero_tangent:
            return lambda b, x, dx, y, params: [b.zero(o.type) for o in y]
        raise RuleError(f"cannot differentiate `{p.label}`: the primitive has no Fréchet rule "
                        f"(register one with `frechet=`)", span=span, source=source)
    if callable(p.frechet):
        return p.frechet
    if p._compiled_frechet is None:
        from .frechet_text import compile_frechet_text
        p._compiled_frechet = compile_frechet_text(p)
    return p._compiled_frechet


# ---- forward mode -------------------------------------------------------------------------
def linearize(prog: Program, wrt=None) -> Program:
    """The tangent program: inputs ``prog.inputs + [dx for x in wrt]``, outputs
    ``prog.outputs + [dy for y in outputs]``. Primal equations are kept, tangent ones added."""
    wrt = differentiable_inputs(prog, wrt)
    namer = Namer.for_program(prog)
    b = Builder(namer, source=prog.source)
    tan: dict = {}
    tangent_of: dict = {}
    t_inputs = []
    for i in wrt:
        x = prog.inputs[i]
        dx = namer.var("d" + x.name, x.type)
        t_inputs.append(dx)
        tan[x] = b.wrap(dx)
        tangent_of[dx.name] = x.name
    for e in prog.eqns:
        b.eqns.append(e)
        tins = [tan.get(a) if isinstance(a, Var) else None for a in e.inputs]
        if all(t is None for t in tins):
            continue
        p = get(e.prim)
        b.span, b.origin = e.span, e.origin or p.label
        rule = frechet_rule(p, e.span, prog.source)
        tvals = [t if t is not None else b.zero(a.type) for t, a in zip(tins, e.inputs)]
        start = len(b.eqns)
        res = run_user_rule("Fréchet", p, rule, (b, [b.wrap(a) for a in e.inputs], tvals,
                                                   [b.wrap(o) for o in e.outputs], e.param_dict),
                            [o.type for o in e.outputs], e.span, prog.source)
        res = _as_list(res)
        if len(res) != len(e.outputs):
            raise RuleError(f"the Fréchet rule of `{p.label}` gave {len(res)} tangents for "
                            f"{len(e.outputs)} outputs", span=e.span, source=prog.source)
        for o, r in zip(e.outputs, res):
            if not is_zero(r):
                r = _rename_result(b, start, r, "d" + o.name)
                tan[o] = r
                tangent_of[r.atom.name] = o.name
    b.span, b.origin = None, None
    t_outputs = []
    for o in prog.outputs:
        t = tan.get(o) if isinstance(o, Var) else None
        t_outputs.append(b.materialize(b.zero(o.type)).atom if t is None else t.atom)
    meta = dict(prog.meta, n_primal_in=len(prog.inputs), n_primal_out=len(prog.outputs),
                wrt=wrt, tangent_of=tangent_of)
    return prog.copy(inputs=list(prog.inputs) + t_inputs, eqns=b.eqns,
                     outputs=list(prog.outputs) + t_outputs, kind="tangent", meta=meta)


# ---- linearity ----------------------------------------------------------------------------
def split_linear(eqns, linear_vars):
    """Split equations into those independent of the linear inputs (the Vars `linear_vars`)
    and those that depend on them; returns (nonlinear, linear, offending) where `offending` is
    the first equation that uses a linear value in a way its primitive is not linear in (or
    None). (Literals may be tested for membership: a literal never equals a Var.)"""
    lin_vars = set(linear_vars)
    zero_vars = set()                   # constant zeros: they sit in every linear space
    nonlin, lin, bad = [], [], None
    for e in eqns:
        pos = [i for i, a in enumerate(e.inputs) if a in lin_vars]
        if not pos:
            if e.prim == "zeros":
                zero_vars.update(e.outputs)
            nonlin.append(e)
            continue
        p = get(e.prim)
        zpos = [i for i, a in enumerate(e.inputs) if a in zero_vars]
        if bad is None and not (p.is_linear_at(pos, len(e.inputs))
                                or p.is_linear_at(pos + zpos, len(e.inputs))):
            bad = e
        lin.append(e)
        lin_vars.update(e.outputs)
    return nonlin, lin, bad


# ---- reverse mode -------------------------------------------------------------------------
def transpose(tp: Program, lin_inputs: list, lin_outputs: list, ct_names=None,
              keep_outputs=()) -> Program:
    """Transpose the linear part of `tp`. Inputs of the result: the non-linear inputs of `tp`
    plus one cotangent per linear output; outputs: ``keep_outputs`` then the cotangents of
    the linear inputs."""
    lin_vars = set(lin_inputs)
    nonlin, lin, bad = split_linear(tp.eqns, lin_vars)
    if bad is not None:
        raise RuleError(f"`{bad.prim}` is applied nonlinearly to a tangent here, so the program "
                        f"cannot be transposed (a Fréchet rule must be linear in the tangents)",
                        span=bad.span, source=tp.source)
    namer = Namer.for_program(tp)
    b = Builder(namer, source=tp.source)
    b.eqns = list(nonlin)
    tangent_of = tp.meta.get("tangent_of", {})

    def bar(v):
        return tangent_of.get(v.name, v.name) + "_bar"

    namer.taken |= set(tangent_of.values())     # `t8_bar` must not meet a new, unrelated `t8`
    ct: dict = {}
    ct_from: dict = {}       # var -> index of the first equation that may define its cotangent

    def accumulate(v, c, start):
        """Sum the contributions to v's cotangent; the total is named `v_bar` once complete."""
        if is_zero(c):
            return
        prev = ct.get(v)
        if prev is None:
            ct[v], ct_from[v] = c, start
        else:
            ct_from[v] = len(b.eqns)
            ct[v] = prev + c

    def complete(v):
        c = ct.pop(v, None)
        return None if c is None else _rename_result(b, ct_from.pop(v), c, bar(v))

    ct_inputs = []
    for k, o in enumerate(lin_outputs):
        name = ct_names[k] if ct_names else (bar(o) if isinstance(o, Var) else "y_bar")
        c = namer.var(name, o.type)
        ct_inputs.append(c)
        if isinstance(o, Var) and (o in lin_vars or any(o in e.outputs for e in lin)):
            accumulate(o, b.wrap(c), len(b.eqns))
    lin_set = set(lin_vars)
    for e in lin:
        lin_set.update(e.outputs)
    for e in reversed(lin):
        cts = [complete(o) for o in e.outputs]
        if all(c is None for c in cts):
            continue
        p = get(e.prim)
        if p.zero_tangent:
            continue
        if p.transpose is None:
            raise RuleError(f"cannot transpose `{p.label}`: the primitive is linear here but has no "
                            f"transpose rule (register one with `transpose=`)", span=e.span, source=tp.source)
        b.span, b.origin = e.span, e.origin or p.label
        ins = [Undef(a.type) if a in lin_set else b.wrap(a) for a in e.inputs]
        cvals = [c if c is not None else b.zero(o.type) for c, o in zip(cts, e.outputs)]
        start = len(b.eqns)
        res = run_user_rule("transpose", p, p.transpose, (b, cvals, ins, [b.wrap(o) for o in e.outputs],
                                                          e.param_dict),
                            [a.type if isinstance(i, Undef) else None for a, i in zip(e.inputs, ins)],
                            e.span, tp.source)
        for a, r, inp in zip(e.inputs, res, ins):
            if isinstance(inp, Undef) and not is_zero(r):
                accumulate(a, r, start)
    b.span, b.origin = None, None
    outs = []
    for v in lin_inputs:
        c = complete(v)
        c = b.materialize(b.zero(v.type)) if c is None else c
        if isinstance(v.type, TensorType) and v.type.dtype == "f32" and getattr(c.type, "dtype", None) == "f64":
            src = next((e for e in reversed(b.eqns) if c.atom in e.outputs), None)   # said where it comes from
            b.span, b.origin = (src.span, src.origin) if src is not None else (None, None)
            c = b.astype(c, dtype="f32")        # a cotangent has its input's precision, as in JAX
        outs.append(c.atom)
    nonlin_inputs = [v for v in tp.inputs if v not in lin_vars]
    return tp.copy(inputs=nonlin_inputs + ct_inputs, eqns=b.eqns, outputs=list(keep_outputs) + outs,
                   kind="adjoint")


def vjp_program(prog: Program, wrt=None, keep_primal_outputs: bool = False) -> Program:
    """The adjoint program: inputs ``prog.inputs + [y_bar for y in outputs]``, outputs the
    cotangents of the `wrt` inputs (preceded by the primal outputs if asked)."""
    tp = linearize(prog, wrt)
    n_in, n_out = len(prog.inputs), len(prog.outputs)
    lin_in = tp.inputs[n_in:]
    lin_out = tp.outputs[n_out:]
    names = [(o.name if isinstance(o, Var) else f"out{k}") + "_bar" for k, o in enumerate(prog.outputs)]
    keep = prog.outputs if keep_primal_outputs else ()
    adj = transpose(tp, lin_in, lin_out, ct_names=names, keep_outputs=keep)
    adj.meta.update(wrt=tp.meta["wrt"], n_primal_in=n_in, n_primal_out=n_out,
                    keeps_primal=keep_primal_outputs)
    return adj
