"""Gradient and tangent checks of a model on random inputs from each input's domain, against
central finite differences (what `lagrad check` prints)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compiler.ir import Lit, Var
from ..compiler.primitive import REGISTRY
from ..compiler.types import as_dim, dim_symbol


@dataclass
class CheckRow:
    model: str
    input: str
    domain: str
    fd: float            # central difference of the scalarized output along a random direction
    adjoint: float       # ⟨gradient, direction⟩
    tangent: float       # ⟨weights, jvp⟩
    adjoint_err: float
    tangent_err: float
    ok: bool
    note: str = ""       # "non-finite output", "non-finite adjoint", ...: why a row is not ok


_RANK = {"spd": 3, "stable": 2, "contractive": 2, "wellcond": 1, "fullrank": 1, "positive": 1}


def _want(out, name, dom):
    if dom and _RANK.get(dom, 0) > _RANK.get(out.get(name), 0):
        out[name] = dom


def value_domains(prog, applied=None) -> dict:
    """Value name -> the domain a sampler must respect, from the primitives that consume it
    (SPD for cholesky and `assume="pos"` solves, stable for lyap, ρ < 1 for dlyap, full rank
    for qr, SPD operators for cg), pulled back through transposes and positive scalings.
    In an operator body, `applied` = (v, domain) gives the matrices applied to v that domain."""
    out = {}
    for e in prog.eqns:
        if applied and e.prim == "matmul" and e.inputs[1] is applied[0] and isinstance(e.inputs[0], Var):
            _want(out, e.inputs[0].name, applied[1])
        p = REGISTRY.get(e.prim)
        for pos, a in enumerate(e.inputs):
            if not isinstance(a, Var):
                continue
            dom = p.domains.get(pos) if p is not None else None
            if e.prim in ("solve", "chol_factor") and pos == 0 and \
                    e.param("assume", "pos" if e.prim == "chol_factor" else "gen") in ("pos", "sym"):
                dom = "spd"
            _want(out, a.name, dom)
        if e.prim in ("cg", "gmres"):
            caps = e.inputs[1:]
            solver_dom = "spd" if e.prim == "cg" else "wellcond"
            for op, dom_k, offset in ((e.param("K"), solver_dom, 0), (e.param("M"), None, e.param("nk"))):
                if op is None:
                    continue
                ins = {v.name: caps[offset + k] for k, v in enumerate(op.prog.inputs[1:])}
                applied = (op.prog.inputs[0], dom_k) if dom_k else None   # A in `op K(v) = A @ v`
                for name, dom in value_domains(op.prog, applied).items():
                    if isinstance(ins.get(name), Var):
                        _want(out, ins[name].name, dom)
    for e in reversed(prog.eqns):          # pull domains back through domain-keeping steps
        if len(e.outputs) != 1 or e.outputs[0].name not in out:
            continue
        dom = out[e.outputs[0].name]
        if e.prim == "transpose" and isinstance(e.inputs[0], Var):
            _want(out, e.inputs[0].name, dom)
        elif e.prim == "add" and dom == "spd":          # a sum of SPD terms is SPD
            for a in e.inputs:
                if isinstance(a, Var) and len(a.type.shape) == 2:
                    _want(out, a.name, dom)
        elif e.prim == "mul" and len(e.inputs) == 2:
            lit = [a for a in e.inputs if isinstance(a, Lit)]
            var = [a for a in e.inputs if isinstance(a, Var)]
            if len(lit) == 1 and len(var) == 1 and float(lit[0].value) > 0:
                _want(out, var[0].name, dom)
    return out


def input_domains(prog) -> dict:
    """Input name -> domain (see `value_domains`); scalars default to positive."""
    doms = value_domains(prog)
    # scalar inputs are step sizes, scales and weights far more often than signed offsets
    return {v.name: doms.get(v.name, "positive" if not v.type.shape else None) for v in prog.inputs
            if v.name in doms or not v.type.shape}


def sample(rng, shape, domain):
    if domain == "spd" and len(shape) == 2:
        n = shape[0]
        G = rng.standard_normal(shape)
        return G @ G.T / n + np.eye(n)
    if domain in ("wellcond", "fullrank") and len(shape) == 2:
        n = min(shape)
        return rng.standard_normal(shape) + (n + 2.0) * np.eye(*shape)
    if domain == "stable" and len(shape) == 2:
        n = shape[0]
        return rng.standard_normal(shape) / np.sqrt(n) - 2.0 * np.eye(n)
    if domain == "contractive" and len(shape) == 2:
        A = rng.standard_normal(shape)
        return 0.5 * A / max(np.max(np.abs(np.linalg.eigvals(A))), 1e-3)
    if domain == "positive":
        return np.abs(rng.standard_normal(shape)) + 0.5
    return rng.standard_normal(shape)


def concrete_shape(t, dims):
    subs = {dim_symbol(k): v for k, v in dims.items()}
    return tuple(int(as_dim(d).subs(subs)) for d in t.shape)


def check_function(f, dims=None, seed=0, h=1e-6, rtol=1e-5):
    """Rows comparing lagrad's adjoint and tangent with central differences, one per input."""
    rng = np.random.default_rng(seed)
    free = set()
    for _, t in f.params:
        for d in t.shape:
            free |= {s.name for s in as_dim(d).free_symbols}
    dims = {**{k: 4 for k in free}, **(dims or {})}
    c = f.compiled(dims)
    domains = input_domains(c.canonical)
    args = [sample(rng, concrete_shape(t, dims), domains.get(n, "any")) for n, t in f.params]
    out = f(*args)
    outs = out if isinstance(out, tuple) else (out,)
    out_finite = all(np.all(np.isfinite(np.asarray(o))) for o in outs)
    weights = [rng.standard_normal(np.shape(o)) for o in outs]

    def scal(*a):
        o = f(*a)
        o = o if isinstance(o, tuple) else (o,)
        return sum(float(np.sum(np.asarray(x) * w)) for x, w in zip(o, weights))

    _, pullback = f.vjp(*args)
    grads = pullback(*weights)
    rows = []
    for k, (name, t) in enumerate(f.params):
        d = rng.standard_normal(np.shape(args[k]))
        if domains.get(name) == "spd":
            d = d + d.T
        plus = list(args); minus = list(args)
        plus[k] = args[k] + h * d
        minus[k] = args[k] - h * d
        f_plus, f_minus = scal(*plus), scal(*minus)
        fd = (f_plus - f_minus) / (2 * h)
        # rounding in the difference quotient: ~ ε|f|/h; below that, a derivative is zero
        noise = 100 * np.finfo(np.float64).eps * max(abs(f_plus), abs(f_minus), 1.0) / h
        adj = float(np.sum(np.asarray(grads[k]) * d))
        tans = [np.zeros_like(a) for a in args]
        tans[k] = d
        _, tout = f.jvp(args, tans)
        tout = tout if isinstance(tout, tuple) else (tout,)
        tan = sum(float(np.sum(np.asarray(x) * w)) for x, w in zip(tout, weights))
        scale = max(abs(fd), abs(adj), noise / rtol)
        ea, et = abs(adj - fd) / scale, abs(tan - fd) / scale
        nonfinite = [what for what, ok in (("output", out_finite), ("finite difference", np.isfinite(fd)),
                                           ("adjoint", np.isfinite(adj)), ("tangent", np.isfinite(tan))) if not ok]
        note = "non-finite " + ", ".join(nonfinite) if nonfinite else ""
        rows.append(CheckRow(f.name, name, domains.get(name, "any"), fd, adj, tan, ea, et,
                             bool(ea <= rtol and et <= rtol and not nonfinite), note))
    return rows


def format_rows(rows) -> str:
    head = f"{'model':<16} {'input':<10} {'domain':<9} {'finite diff':>14} {'adjoint':>14} {'tangent':>14} {'adj err':>9} {'tan err':>9}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.model:<16} {r.input:<10} {r.domain:<9} {r.fd:>14.6e} {r.adjoint:>14.6e} {r.tangent:>14.6e} "
                     f"{r.adjoint_err:>9.1e} {r.tangent_err:>9.1e}  {'yes' if r.ok else 'NO'}"
                     + (f" ({r.note})" if r.note else ""))
    return "\n".join(lines)
