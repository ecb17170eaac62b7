"""Re-rolling unrolled loops into ``jax.lax.scan`` when generating JAX source.

The compiler unrolls a ``for`` loop (and everything derived from it — the tangent and the
adjoint repeat the loop body's derivative once per iteration, the adjoint in reverse order).
That keeps every pass simple, but XLA compiles T copies of the body: the Kalman filter at
T = 50 takes ~45 s to compile unrolled. Here the code generator finds runs of equations that
repeat the same block — the same primitives, parameters, source positions and types, block
after block — and whose data flow is that of a loop:

* an input that is the same value in every block is a constant of the loop;
* an input made by the previous block (at the same place in it) is a carry, whose first
  value comes from before the run;
* an input that differs per block but is defined before the run is a per-iteration input
  (stacked; when it is a per-iteration output of an earlier run, that run's stacked output is
  used directly, reversed if the order is — the adjoint consumes the forward loop's residuals
  last to first);
* an index whose position moves by a fixed step per block (``Y[t, :]``) becomes a dynamic
  index of the iteration counter.

Such a run becomes one ``lax.scan`` over a body generated from the first block. Values a block
makes that are used after the run come out as the scan's stacked outputs. A run that fits none
of this is left unrolled, so re-rolling changes how the program is compiled, never what it
computes (tests compare both).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import sympy

from ..compiler.ir import Eqn, Lit, Var
from ..compiler.types import TensorType

ENABLED = os.environ.get("LAGRAD_REROLL", "1") != "0"     # LAGRAD_REROLL=0: emit loops unrolled
MIN_BLOCKS = 3          # fewer repetitions are not worth a loop
MIN_EQNS = 48           # programs shorter than this are emitted as they are
MAX_PERIOD = 2000       # longest loop body considered (equations)
_IT = sympy.Symbol("_it", integer=True)     # the iteration counter inside a scan body
_SLIDING = ("index", "index_pad")           # primitives whose positions may move per iteration


def _masked_spec(spec):
    return tuple(("at", None) if it[0] == "at" else it for it in spec)


def _signature(e):
    params = e.params
    if e.prim in _SLIDING:
        params = tuple((k, _masked_spec(v) if k == "spec" else v) for k, v in params)
    ins = tuple([("lit", a.value) if type(a) is Lit else a.type for a in e.inputs])
    try:            # the span by value: the same source position (a frozen dataclass)
        return hash((e.prim, params, e.span, e.origin, ins, tuple([o.type for o in e.outputs])))
    except TypeError:                   # an unhashable parameter: never part of a loop
        return object()


@dataclass
class Run:
    start: int
    period: int
    count: int
    roles: dict = field(default_factory=dict)       # (q, a) -> ("const"|"internal"|"carry"|"xs", key)
    carries: list = field(default_factory=list)     # [(init atom, (q, o) producing the next value)]
    xs: list = field(default_factory=list)          # [[atom per block]]
    dyn: dict = field(default_factory=dict)         # q -> spec with moving positions as c0 + step·_it
    exports: list = field(default_factory=list)     # [(q, o)] stacked outputs

    @property
    def end(self):
        return self.start + self.period * self.count


def find_runs(prog) -> list:
    """Loop-shaped runs in `prog.eqns`, in order, not overlapping."""
    eqns = prog.eqns
    n = len(eqns)
    if n < MIN_EQNS:
        return []
    sig = [_signature(e) for e in eqns]
    nxt, last = [None] * n, {}
    for i in range(n - 1, -1, -1):
        nxt[i], last[sig[i]] = last.get(sig[i]), i
    defined = {}
    for i, e in enumerate(eqns):
        for o, v in enumerate(e.outputs):
            defined[v] = (i, o)
    uses = {}
    for i, e in enumerate(eqns):
        for a in e.inputs:
            if isinstance(a, Var):
                uses.setdefault(a, []).append(i)
    for a in prog.outputs:
        if isinstance(a, Var):
            uses.setdefault(a, []).append(n)
    runs, i = [], 0
    failed = {}          # period -> end of a repetition that did not have a loop's data flow
    while i < n:
        run, j, tries = None, nxt[i], 0
        while j is not None and j - i <= MAX_PERIOD and tries < 8 and run is None:
            p = j - i
            j, tries = nxt[j], tries + 1
            if failed.get(p, -1) > i:
                continue
            k = 1
            while i + (k + 1) * p <= n and sig[i + k * p:i + (k + 1) * p] == sig[i:i + p]:
                k += 1
            start, count = i, k
            for _ in range(2):           # a first block that differs (CSE) may be dropped
                if count < MIN_BLOCKS:
                    break
                run = _analyse(eqns, start, p, count, defined, uses)
                if run is not None:
                    break
                start, count = start + p, count - 1
            if run is None and k >= MIN_BLOCKS:
                failed[p] = i + k * p
        if run is not None:
            runs.append(run)
            i = run.end
        else:
            i += 1
    return runs


def _analyse(eqns, start, p, count, defined, uses):
    """The run's data flow if it is that of a loop, else None."""
    run = Run(start, p, count)
    end = run.end

    def where(a):
        """('in', k, q, o) inside the run, ('before',) or ('after',) otherwise."""
        d = defined.get(a)
        if d is None or d[0] < start:
            return ("before",)
        if d[0] >= end:
            return ("after",)
        k, q = divmod(d[0] - start, p)
        return ("in", k, q, d[1])

    carry_slot, xs_slot = {}, {}
    for q in range(p):
        e0 = eqns[start + q]
        blocks = [eqns[start + k * p + q] for k in range(count)]
        for a_idx, a0 in enumerate(e0.inputs):
            atoms = [b.inputs[a_idx] for b in blocks]
            if isinstance(a0, Lit):
                run.roles[(q, a_idx)] = ("lit", None)
                continue
            locs = [where(a) for a in atoms]
            if all(a is a0 for a in atoms) and locs[0][0] == "before":
                run.roles[(q, a_idx)] = ("const", None)
            elif all(loc[0] == "in" and loc[1] == k and loc[2:] == locs[0][2:] and loc[2] < q
                     for k, loc in enumerate(locs)):
                run.roles[(q, a_idx)] = ("internal", locs[0][2:])
            elif locs[0][0] == "before" and all(loc[0] == "in" and loc[1] == k - 1 and loc[2:] == locs[1][2:]
                                                for k, loc in enumerate(locs) if k):
                key = locs[1][2:]
                if key in carry_slot and run.carries[carry_slot[key]][0] is not atoms[0]:
                    return None
                if key not in carry_slot:
                    carry_slot[key] = len(run.carries)
                    run.carries.append((atoms[0], key))
                run.roles[(q, a_idx)] = ("carry", carry_slot[key])
            elif all(loc[0] == "before" for loc in locs):
                key = tuple(id(a) for a in atoms)
                if key not in xs_slot:
                    xs_slot[key] = len(run.xs)
                    run.xs.append(atoms)
                run.roles[(q, a_idx)] = ("xs", xs_slot[key])
            else:
                return None
        if e0.prim in _SLIDING:
            dyn = _moving_spec([b.param("spec") for b in blocks])
            if dyn is False:
                return None
            if dyn is not None:
                run.dyn[q] = dyn
    for (init, (q, o)) in run.carries:          # a carry keeps its type from one block to the next
        if str(init.type) != str(eqns[start + q].outputs[o].type):
            return None
    carried = {key for _, key in run.carries}
    exports = set()
    for k in range(count):
        for q in range(p):
            for o, v in enumerate(eqns[start + k * p + q].outputs):
                used_after = any(u >= end for u in uses.get(v, ()))
                if used_after and not (k == count - 1 and (q, o) in carried):
                    exports.add((q, o))
    run.exports = sorted(exports)
    return run


def _moving_spec(specs):
    """The spec with each moving ``at`` position written c0 + step·_it; None when nothing
    moves; False when a position does not move by a fixed step."""
    out, moving = [], False
    for j, it in enumerate(specs[0]):
        if it[0] != "at":
            if any(s[j] != it for s in specs):
                return False
            out.append(it)
            continue
        vals = [sympy.sympify(s[j][1]) for s in specs]
        step = sympy.expand(vals[1] - vals[0])
        if not step.is_Integer or any(sympy.expand(v - vals[0] - step * k) != 0 for k, v in enumerate(vals)):
            return False
        moving = moving or step != 0
        out.append(("at", vals[0] + step * _IT) if step else it)
    return tuple(out) if moving else None


def scan_lines(run: Run, prog, names, emit_eqn, rid: int, producers_of_ys: dict) -> list:
    """Source lines computing `run` with one lax.scan; records this run's stacked outputs in
    `producers_of_ys` (id(var) -> (ys name, block index)) for later runs to pick up whole."""
    eqns = prog.eqns
    fn = f"_loop{rid}"
    lines = [f"def {fn}(_carry, _x):"]
    body = ["_it = _x[0]"]
    if run.carries:
        body.append(", ".join(f"_c{j}" for j in range(len(run.carries))) + ", = _carry")
    for j in range(len(run.xs)):
        body.append(f"_x{j} = _x[{j + 1}]")
    local = {}

    def arg(q, a_idx, a):
        role, key = run.roles[(q, a_idx)]
        if role == "carry":
            return f"_c{key}"
        if role == "xs":
            return f"_x{key}"
        if role == "internal":
            return local[key]
        return names(a)
    for q in range(run.period):
        e = eqns[run.start + q]
        ins = tuple(Var(arg(q, a_idx, a), a.type) if isinstance(a, Var) else a for a_idx, a in enumerate(e.inputs))
        outs = []
        for o, v in enumerate(e.outputs):
            local[(q, o)] = names(v)
            outs.append(Var(names(v), v.type))
        params = e.params
        if q in run.dyn:
            params = tuple((k, run.dyn[q] if k == "spec" else v) for k, v in params)
        e2 = Eqn(e.prim, ins, params, tuple(outs), e.span, e.origin)
        body.append(emit_eqn(e2))
    nxt = ", ".join(local[key] for _, key in run.carries)
    ys = ", ".join(local[key] for key in run.exports)
    body.append(f"return ({nxt}{',' if run.carries else ''}), ({ys}{',' if run.exports else ''})")
    lines += ["    " + b for b in body]
    xs_src = [f"jnp.arange({run.count})"] + [_stacked(atoms, names, producers_of_ys) for atoms in run.xs]
    init = ", ".join(f"jnp.asarray({names(a)}, {_dtype(v)})" for a, v in
                     ((a, eqns[run.start + q].outputs[o]) for a, (q, o) in run.carries))
    c_out = [f"{fn}_c{j}" for j in range(len(run.carries))]
    y_out = [f"{fn}_y{j}" for j in range(len(run.exports))]
    lines.append(f"({''.join(c + ', ' for c in c_out)}), ({''.join(y + ', ' for y in y_out)}) = "
                 f"jax.lax.scan({fn}, ({init}{',' if run.carries else ''}), ({', '.join(xs_src)},))")
    last = run.start + (run.count - 1) * run.period
    for j, (_, (q, o)) in enumerate(run.carries):
        lines.append(f"{names(eqns[last + q].outputs[o])} = {c_out[j]}")
    for j, (q, o) in enumerate(run.exports):
        for k in range(run.count):
            v = eqns[run.start + k * run.period + q].outputs[o]
            producers_of_ys[id(v)] = (y_out[j], k)
            if not (k == run.count - 1 and any(key == (q, o) for _, key in run.carries)):
                lines.append(OPTIONAL + f"{names(v)} = {_take(y_out[j], f'[{k}]', v)}")
    return lines


OPTIONAL = "\0optional\0"      # marks a line binding one iteration's value: dropped if unused


def drop_unused(lines: list) -> list:
    """Remove the OPTIONAL lines whose name no other line mentions."""
    import re
    word = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
    used = set()
    for ln in lines:
        if not ln.startswith(OPTIONAL):
            used.update(word.findall(ln))
    out = []
    for ln in lines:
        if ln.startswith(OPTIONAL):
            ln = ln[len(OPTIONAL):]
            if ln.split(" = ", 1)[0] not in used:
                continue
        out.append(ln)
    return out


def _dtype(v):
    return {"f64": "jnp.float64", "f32": "jnp.float32", "i64": "jnp.int64", "i32": "jnp.int32"}.get(
        getattr(v.type, "dtype", None), "None")


def _stacked(atoms, names, producers_of_ys):
    """Per-iteration inputs stacked: a whole (or reversed) stacked output of an earlier run
    when that is what they are, else jnp.stack of the values."""
    src = [producers_of_ys.get(id(a)) for a in atoms]
    if all(s is not None and s[0] == src[0][0] for s in src):
        ks = [s[1] for s in src]
        lo, hi = min(ks), max(ks)
        if ks == list(range(lo, hi + 1)):
            return _take(src[0][0], f"[{lo}:{hi + 1}]", atoms[0])
        if ks == list(range(hi, lo - 1, -1)):
            return _take(src[0][0], f"[{lo}:{hi + 1}][::-1]", atoms[0])
    if not isinstance(atoms[0].type, TensorType):
        return f"jax.tree_util.tree_map(lambda *_a: jnp.stack(_a), {', '.join(names(a) for a in atoms)})"
    return f"jnp.stack([{', '.join(names(a) for a in atoms)}])"


def _take(stacked: str, index: str, v) -> str:
    """`stacked[index]`; leaf by leaf for a factorization value (a tuple of arrays)."""
    if isinstance(v.type, TensorType):
        return f"{stacked}{index}"
    return f"jax.tree_util.tree_map(lambda _a: _a{index}, {stacked})"
