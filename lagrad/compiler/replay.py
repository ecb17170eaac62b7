"""Templates of emitted equations, recorded once and replayed: an unrolled loop elaborates the
same `fn` call, and differentiates the same text Fréchet rule, once per iteration, with
arguments that differ only in which variables they are. The first elaboration is recorded with
its arguments and new variables as slots, and with the names it asked the namer for; a replay
appends the same equations on the new arguments and takes the same names, so the program is the
one a fresh elaboration gives, name for name (tests/test_frechet_replay.py, tests/test_fn_replay.py).
"""
from __future__ import annotations

from contextlib import contextmanager

from .builder import Zero
from .ir import Eqn, Lit, Var
from .primitive import REGISTRY, resolve


def template_key(args, extra=()):
    """What an elaboration depends on through its arguments: each one's kind (value, zero,
    literal and its value) and type, and which are the same variable; `extra` adds what else it
    depends on. None: unhashable, or an argument that is not a builder value."""
    first, kinds = {}, []
    for v in args:
        if isinstance(v, Zero):
            kinds.append(("zero", v.type))
            continue
        a = getattr(v, "atom", None)
        if isinstance(a, Lit):
            kinds.append(("lit", a.value))
        elif isinstance(a, Var):
            kinds.append((first.setdefault(id(a), len(first)), a.type))
        else:
            return None
    key = (tuple(kinds), extra)
    try:
        hash(key)
    except TypeError:
        return None
    return key


@contextmanager
def logged_names(namer):
    """The (base, name) pairs `namer.fresh` hands out inside the block, in order (nests)."""
    calls, own = [], namer.__dict__.get("fresh")
    fresh = namer.fresh

    def logged(base):
        name = fresh(base)
        calls.append((base, name))
        return name
    namer.fresh = logged
    try:
        yield calls
    finally:
        if own is None:
            del namer.fresh
        else:
            namer.fresh = own


def record(eqns, calls, outs, args, spans=False):
    """A template of `eqns` (emitted from `args`, giving the values `outs`) with the arguments
    and new variables as slots (and each equation's span and origin if `spans`); None if an
    equation reads a variable from outside (a template never replays that)."""
    slot = {}
    for k, v in enumerate(args):
        if not isinstance(v, Zero) and not isinstance(v.atom, Lit):
            slot.setdefault(id(v.atom), ("arg", k))
    index = {name: j for j, (_, name) in enumerate(calls)}
    made = []
    for e in eqns:
        ins = []
        for a in e.inputs:
            if isinstance(a, Lit):
                ins.append(("lit", a))
            elif id(a) in slot:
                ins.append(slot[id(a)])
            else:
                return None
        outs_spec = []
        for o in e.outputs:
            j = index.get(o.name)
            if j is None:
                return None
            slot[id(o)] = ("new", j, o.type)
            outs_spec.append(("new", j, o.type))
        made.append((e.prim, tuple(ins), e.params, tuple(outs_spec), (e.span, e.origin) if spans else None))
    res = []
    for v in outs:
        if isinstance(v, Zero):
            res.append(("zero", v.type))
        elif isinstance(v.atom, Lit):
            res.append(("lit", v.atom))
        elif id(v.atom) in slot:
            res.append(slot[id(v.atom)])
        else:
            return None
    prims = tuple({e.prim: REGISTRY.get(e.prim) for e in eqns}.items())
    return tuple(base for base, _ in calls), tuple(made), tuple(res), prims


def current(tpl) -> bool:
    """Whether every primitive the template emits is still the one its name gives: a user
    primitive's name can be registered again (a new key: see primitive.register_user)."""
    return all((resolve(prim.label) if prim is not None and prim.user and not prim.internal
                else REGISTRY.get(name)) is prim for name, prim in tpl[3])


def replay(b, tpl, args) -> list:
    """Append the template's equations on `args` to builder `b`; the values it gave, on them."""
    bases, made, res, _ = tpl
    fresh = b.namer.fresh
    names = [fresh(base) for base in bases]        # the same names the elaboration would take
    new = {}

    def atom(spec):
        kind = spec[0]
        if kind == "arg":
            return args[spec[1]].atom
        if kind == "lit":
            return spec[1]
        return new[spec[1]]
    here = (b.span, b.origin)
    for prim, ins, params, outs, at in made:
        ins = tuple(atom(s) for s in ins)
        for _, j, t in outs:
            new[j] = Var(names[j], t)
        span, origin = at or here
        b.eqns.append(Eqn(prim, ins, params, tuple(new[j] for _, j, _ in outs), span, origin))
    return [Zero(spec[1], b) if spec[0] == "zero" else b.wrap(atom(spec)) for spec in res]
