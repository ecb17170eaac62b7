"""Program rewrites. Each takes a Program and returns a new one; `run_passes` type-checks after every pass with LAGRAD_CHECK_PASSES=1 (the test suite).

* ``dce`` — drop equations no output needs.
* ``cse`` — one equation for each distinct (primitive, inputs, params).
* ``push_index`` — ``(X @ Y)[i, j] → X[i, :] @ Y[:, j]`` and ``inv(A)[:, j] → solve(A, eⱼ)``.
* ``rewrite_inv`` — ``inv(A) @ B → solve(A, B)`` and ``B @ inv(A) → solve(Aᵀ, Bᵀ)ᵀ``.
* ``share_factorizations`` — ``solve``/``inv``/``det``/``logdet`` become a factorization value
  and a linear apply (``F = lu_factor(A)``, ``lu_solve(F, B)``), so after CSE a solve and its
  adjoint (``solve(Aᵀ, ·)`` → ``lu_solve(F, ·, trans=true)``) share one LU or Cholesky; a
  matrix that one use declares SPD (``assume="pos"``, ``cholesky``) takes the Cholesky in all.
* ``fuse_factor_solves`` — a Lyapunov factor and every apply whose right-hand side does not
  depend on it become one ``lyap_factor_solve`` (``dlyap_…``): the iteration carries the forward
  solve, and the adjoint's when the loss is linear in the solution.
"""
from __future__ import annotations

import heapq
import os
import re

from .builder import Builder
from .ir import Eqn, Namer, Program, Var, make_params
from .primitive import get, result_types
from .types import TensorType


class CompilerBug(AssertionError):
    """An internal invariant broke: a pass produced an ill-typed program."""


def dce(prog: Program) -> Program:
    live = {o for o in prog.outputs if isinstance(o, Var)}
    kept = []
    add = live.add
    for e in reversed(prog.eqns):       # plain loops: this runs over every equation, 5× a compile
        for o in e.outputs:
            if o in live:
                break
        else:
            continue
        kept.append(e)
        for a in e.inputs:
            if isinstance(a, Var):
                add(a)
    return prog.copy(eqns=kept[::-1])


def substitute(prog: Program, sub: dict, eqns=None) -> Program:
    """Replace variables (by id) in inputs of equations and in outputs."""
    def s(a):
        return sub.get(id(a), a) if isinstance(a, Var) else a
    new = [Eqn(e.prim, tuple(s(a) for a in e.inputs), e.params, e.outputs, e.span, e.origin)
           for e in (prog.eqns if eqns is None else eqns)]
    return prog.copy(eqns=new, outputs=[s(o) for o in prog.outputs])


def cse(prog: Program) -> Program:
    seen, sub, kept = {}, {}, []
    for e in prog.eqns:
        ins, keys, changed = [], [], False
        for a in e.inputs:
            if isinstance(a, Var):
                b = sub.get(a)
                if b is not None:
                    a, changed = b, True
                keys.append(a)
            else:
                keys.append(("lit", float(a.value)))
            ins.append(a)
        key = (e.prim, tuple(keys), e.params)
        try:
            prev = seen.get(key)
        except TypeError:               # an unhashable param: keep the equation as it is
            prev = None
            key = None
        if prev is not None:
            for o, po in zip(e.outputs, prev.outputs):
                sub[o] = po
            continue
        if changed:
            e = Eqn(e.prim, tuple(ins), e.params, e.outputs, e.span, e.origin)
        if key is not None:
            seen[key] = e
        kept.append(e)
    return prog.copy(eqns=kept, outputs=[sub.get(o, o) if isinstance(o, Var) else o for o in prog.outputs])


def _producers(prog):
    return {id(o): e for e in prog.eqns for o in e.outputs}


def rewrite_each(prog: Program, rule, facts=None, prod=None) -> Program:
    """Walk the equations; ``rule(b, e, producers)`` emits a replacement for `e` keeping its
    output variables and returns True, or returns False to keep `e` as it is. `facts` (id(var)
    -> set of facts) is handed to the rules as ``b.facts``; `prod`, the producers, when the
    caller has them already."""
    prod = _producers(prog) if prod is None else prod
    b = Builder(Namer.for_program(prog), source=prog.source)
    if facts:
        b.facts = facts
    for e in prog.eqns:
        b.span, b.origin = e.span, e.origin
        if not rule(b, e, prod):
            b.eqns.append(e)
    return dce(prog.copy(eqns=b.eqns))


def emit_as(b, e, prim, inputs, params=None):
    """Emit `prim(inputs)` into the output variables of `e`."""
    b.eqns.append(Eqn(prim, tuple(inputs), make_params(params), e.outputs, e.span, e.origin))
    return True


def _inv_rule(b, e, prod):
    if e.prim != "matmul":
        return False
    l, r = (prod.get(id(a)) if isinstance(a, Var) else None for a in e.inputs)
    if l is not None and l.prim == "inv":
        return emit_as(b, e, "solve", (l.inputs[0], e.inputs[1]))
    if r is not None and r.prim == "inv":
        A, B = b.wrap(r.inputs[0]), b.wrap(e.inputs[0])
        if B.ndim == 1:
            return emit_as(b, e, "solve", (A.T.atom, B.atom))
        return emit_as(b, e, "transpose", (b.solve(A.T, B.T).atom,))
    return False


def rewrite_inv(prog: Program) -> Program:
    """inv(A) @ B → solve(A, B); B @ inv(A) → solve(Aᵀ, Bᵀ)ᵀ (a vector b: solve(Aᵀ, b))."""
    return rewrite_each(prog, _inv_rule)


def _is_all(item, size) -> bool:
    from .types import dim_eq
    return item[0] == "slice" and dim_eq(item[1], 0) and dim_eq(item[2], size)


def _index_rule(uses):
    def rule(b, e, prod):
        """(X @ Y)[r, c] → X[r, :] @ Y[:, c], and inv(A)[:, c] → solve(A, I[:, c]), when the
        product (the inverse) has no other use: one entry of C·A⁻¹ costs one solve with one
        right-hand side instead of n."""
        if e.prim != "index" or not isinstance(e.inputs[0], Var):
            return False
        src = prod.get(id(e.inputs[0]))
        if src is None or uses.get(id(e.inputs[0]), 0) != 1 or src.prim != "matmul":
            return False
        X, Y = (b.wrap(a) for a in src.inputs)
        if X.ndim != 2 or Y.ndim != 2:
            return False
        spec = e.param("spec")
        rows = spec[0]
        cols = spec[1] if len(spec) > 1 else ("slice", 0, Y.shape[1])
        if _is_all(rows, X.shape[0]) and _is_all(cols, Y.shape[1]):
            return False
        Xr = X if _is_all(rows, X.shape[0]) else b.index(X, spec=(rows,))
        inv = prod.get(id(Y.atom)) if isinstance(Y.atom, Var) else None
        if _is_all(cols, Y.shape[1]):
            Yc = Y
        elif inv is not None and inv.prim == "inv" and uses.get(id(Y.atom), 0) == 1:
            n = Y.shape[0]
            I = b.emit("eye", n=n, dtype=Y.type.dtype if Y.type.dtype in ("f32", "f64") else "f64")
            Yc = b.solve(b.wrap(inv.inputs[0]), b.index(I, spec=(("slice", 0, n), cols)))
        else:
            Yc = b.index(Y, spec=(("slice", 0, Y.shape[0]), cols))
        return emit_as(b, e, "matmul", (Xr.atom, Yc.atom))
    return rule


def push_index(prog: Program) -> Program:
    """Indexing pushed into products (see `_index_rule`), before `rewrite_inv`."""
    uses = {}
    for e in prog.eqns:
        for a in e.inputs:
            if isinstance(a, Var):
                uses[id(a)] = uses.get(id(a), 0) + 1
    for o in prog.outputs:
        if isinstance(o, Var):
            uses[id(o)] = uses.get(id(o), 0) + 1
    return rewrite_each(prog, _index_rule(uses))


def resolve_transpose(A, prod):
    """(A₀, trans) with A = A₀ or A₀ᵀ, looking through chains of transposes: so a solve with
    Aᵀ factors A once and applies the factorization transposed."""
    trans = False
    while isinstance(A, Var) and id(A) in prod and prod[id(A)].prim == "transpose":
        A, trans = prod[id(A)].inputs[0], not trans
    return A, trans


def _lower_rule(b, e, prod):
    p = get(e.prim)
    return p.lower(b, e, prod) if p.lower is not None else False


def asserted_facts(prog: Program, prod) -> dict:
    """id(matrix) -> the facts the program's equations assert about it, looking through
    transposes with the producers `prod` (a solve with assume="pos" asserts that its A is SPD:
    see `Primitive.asserts`)."""
    facts = {}
    for e in prog.eqns:
        p = get(e.prim)
        if p.asserts is None:
            continue
        for pos, fact in p.asserts(e.param_dict).items():
            A = resolve_transpose(e.inputs[pos], prod)[0]
            if isinstance(A, Var):
                facts.setdefault(id(A), set()).add(fact)
    return facts


def share_factorizations(prog: Program) -> Program:
    """Apply each primitive's `lower` rule (``solve → lu_factor + lu_solve``, ...), then CSE so
    every use of one matrix shares one factorization value. The rules see what the program
    asserts about each matrix (``b.facts``): a matrix some solve declares SPD is factored by
    Cholesky for its other solves, det, logdet and inv too, one factorization for all."""
    prod = _producers(prog)
    return dce(cse(rewrite_each(prog, _lower_rule, asserted_facts(prog, prod), prod)))


def fuse_factor_solves(prog: Program) -> Program:
    """``F = K_factor(A)`` and the applies ``X_i = K_apply(F, Q_i, trans=t_i)`` whose right-hand
    sides Q_i do not depend on F become one ``F, X_1, … = K_factor_solve(A, Q_1, …, trans=(t_1,
    …))`` when the factor's primitive names such a fused form (``Primitive.solve_with``: the
    Lyapunov factors, whose iteration then carries every such solve, one loop instead of one per
    solve). That is the forward solve, and the adjoint's transposed solve too when the loss is
    linear in the solution (its seed does not depend on X: sum(W ⊙ X), a trace). F stays an
    output (``factor=true``, the default) only where something else reads it: a tangent's solve,
    an adjoint seed that depends on X. Without it the loop stores no step. The fused equation
    takes the first apply's place; where a right-hand side is computed after that, the equations
    are reordered (a stable topological order) so it comes first."""
    for F in [e.outputs[0] for e in prog.eqns if get(e.prim).solve_with is not None]:
        prog = _fuse_factor(prog, next(i for i, e in enumerate(prog.eqns) if e.outputs[0] is F))
    return prog


def _fuse_factor(prog: Program, i: int) -> Program:
    """`fuse_factor_solves` for the factor made by equation i."""
    eqns = prog.eqns
    fe = eqns[i]
    F = fe.outputs[0]
    apply, solve = get(fe.prim).solve_with
    uses = [j for j in range(i + 1, len(eqns)) if F in eqns[j].inputs]
    # a right-hand side may depend on F if it is computed after F's first use, or, in an adjoint
    # to be split, on a seed wherever it is computed: a search back through its producers says
    split = prog.meta.get("split")
    blocked = {F}.union(prog.inputs[prog.meta["n_primal_in"]:]) if split else {F}
    made_by = {o: e for e in eqns[0 if split else uses[0]:uses[-1]] for o in e.outputs} if uses else {}
    group, read_elsewhere = [], any(o is F for o in prog.outputs)
    for j in uses:
        e = eqns[j]
        if e.prim == apply and e.inputs[0] is F and not _reaches(e.inputs[1], blocked, made_by):
            group.append(j)
        else:
            read_elsewhere = True
    if not group:
        return prog
    applies = [eqns[j] for j in group]
    trans = tuple(bool(e.param("trans", False)) for e in applies)
    params = {} if read_elsewhere else {"factor": False}
    if any(trans):
        params["trans"] = trans
    fused = Eqn(solve, (fe.inputs[0],) + tuple(e.inputs[1] for e in applies), make_params(params),
                ((F,) if read_elsewhere else ()) + tuple(e.outputs[0] for e in applies),
                applies[0].span, applies[0].origin)
    gone = set(group[1:]) | {i}
    new = [fused if k == group[0] else e for k, e in enumerate(eqns) if k not in gone]
    ready = set(prog.inputs)
    for e in eqns[:group[0]]:
        ready.update(e.outputs)
    if all(not isinstance(a, Var) or a in ready for a in fused.inputs):
        return prog.copy(eqns=new)
    return prog.copy(eqns=_stable_topological(new))


def _reaches(a, targets: set, made_by: dict) -> bool:
    """Whether the atom `a` is, or is computed from, one of `targets` (a search back through
    the producers in `made_by`; an atom made elsewhere is taken as it is)."""
    stack, seen = [a], set()
    while stack:
        v = stack.pop()
        if v in targets:
            return True
        e = made_by.get(v) if isinstance(v, Var) else None
        if e is not None and v not in seen:
            seen.add(v)
            stack.extend(e.inputs)
    return False


def _stable_topological(eqns: list) -> list:
    """The equations in an order where each comes after those computing its inputs, keeping the
    given order wherever it already is one (Kahn's algorithm, earliest position first)."""
    made_by = {o: k for k, e in enumerate(eqns) for o in e.outputs}
    waiting, users = [0] * len(eqns), [[] for _ in eqns]
    for k, e in enumerate(eqns):
        for p in {made_by[a] for a in e.inputs if isinstance(a, Var) and a in made_by}:
            waiting[k] += 1
            users[p].append(k)
    heap = [k for k, w in enumerate(waiting) if w == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        k = heapq.heappop(heap)
        order.append(eqns[k])
        for u in users[k]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(heap, u)
    if len(order) != len(eqns):
        raise CompilerBug("fuse_factor_solves: the fused solves form a cycle")
    return order


_TEMP = re.compile(r"^d?t\d*(_\d+)*(_bar)?(_\d+)*$")   # t, t_1, t8, dt8, t8_bar: temporaries
_SUFFIX = re.compile(r"(_\d+)+$")


def tidy_names(prog: Program, out_names=None) -> Program:
    """Readable names: temporaries numbered t1, t2, ... in order; SSA suffixes dropped where
    the plain name is free; outputs named as asked (``out``, ``x_bar``, ``dout``)."""
    taken = {v.name for v in prog.inputs}
    want = {}
    outs = [o for o in prog.outputs]
    for k, o in enumerate(outs):
        if not isinstance(o, Var) or any(o is v for v in prog.inputs) or o in want:
            continue
        name = out_names[k] if out_names and k < len(out_names) and out_names[k] else None
        if name is None and _TEMP.match(o.name):
            name = "out" if len(outs) == 1 else f"out{k}"
        if name is not None and name not in taken:
            want[o] = name
            taken.add(name)
    new, count = {}, 0
    namer = Namer(taken)                    # one namer: its counters keep renaming linear
    taken = namer.taken
    temp = _TEMP.match
    for e in prog.eqns:
        for o in e.outputs:
            name = want.get(o)
            if name is None and temp(o.name):
                count += 1
                while f"t{count}" in taken:
                    count += 1
                name = f"t{count}"
            elif name is None:
                base = _SUFFIX.sub("", o.name)
                name = base if base not in taken else namer.fresh(base)
            taken.add(name)
            if name != o.name:
                new[o] = Var(name, o.type)
    # keys are the renamed Vars (identity); a literal never equals one
    get = new.get
    eqns = [Eqn(e.prim, tuple([get(a, a) for a in e.inputs]), e.params,
                tuple([get(o, o) for o in e.outputs]), e.span, e.origin) for e in prog.eqns]
    return prog.copy(eqns=eqns, outputs=[get(o, o) for o in prog.outputs])


def typecheck(prog: Program, where: str = "") -> Program:
    """Every variable defined once before use; every equation's outputs match its shape rule."""
    defined = {id(v) for v in prog.inputs}
    for e in prog.eqns:
        for a in e.inputs:
            if isinstance(a, Var) and id(a) not in defined:
                raise CompilerBug(f"{where}: `{a.name}` used before definition in {e.prim}")
        p = get(e.prim)
        got = result_types(p, [a.type for a in e.inputs], e.params)
        for o, t in zip(e.outputs, got):
            if id(o) in defined:
                raise CompilerBug(f"{where}: `{o.name}` assigned twice")
            if not o.type.same(t) and not (isinstance(t, TensorType) and t.dtype == "weak"):
                raise CompilerBug(f"{where}: `{o.name}` has type {o.type} but {e.prim} gives {t}")
            defined.add(id(o))
    for o in prog.outputs:
        if isinstance(o, Var) and id(o) not in defined:
            raise CompilerBug(f"{where}: output `{o.name}` is never defined")
    return prog


def checking_passes() -> bool:
    """Whether every pass's result is type-checked (LAGRAD_CHECK_PASSES=1; the suite sets it)."""
    return os.environ.get("LAGRAD_CHECK_PASSES") == "1"


def run_passes(prog: Program, passes) -> Program:
    """The passes in order. With LAGRAD_CHECK_PASSES=1 (the test suite sets it) the program is
    type-checked before and after every pass, which names the pass that broke it. An ordinary
    compile does not check: the passes only rewrite a program the elaborator or the derivation
    built with every shape rule applied, and the check was 2–4% of lagrad's own compile time per
    program on the Kalman example (after every pass, a sixth)."""
    each = checking_passes()
    if each:
        typecheck(prog, "input")
    for p in passes:
        prog = p(prog)
        if each:
            typecheck(prog, p.__name__)
    return prog


CANONICAL = (push_index, rewrite_inv, cse, dce, tidy_names)
LOWERING = (share_factorizations, fuse_factor_solves)   # the first ends with CSE and DCE of its own
