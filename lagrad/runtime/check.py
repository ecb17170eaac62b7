"""Gradient and tangent checks of a model on random inputs from each input's domain, against
central finite differences (what `lagrad check` prints)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy

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


_RANK = {"spd": 3, "stable-contractive": 2.5, "stable": 2, "contractive": 2, "wellcond": 1, "fullrank": 1,
         "positive": 1}
# one matrix that two uses constrain: a domain that satisfies both (lyap and dlyap of one A)
_BOTH = {frozenset(("stable", "contractive")): "stable-contractive"}


def _want(out, name, dom):
    both = _BOTH.get(frozenset((out.get(name), dom)))
    if both:
        out[name] = both
    elif dom and _RANK.get(dom, 0) > _RANK.get(out.get(name), 0):
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
    if domain == "stable-contractive" and len(shape) == 2:   # eigenvalues in |λ + ½| ≤ 0.3: Re λ < 0, |λ| < 1
        G = rng.standard_normal(shape)
        return 0.3 * G / max(np.max(np.abs(np.linalg.eigvals(G))), 1e-3) - 0.5 * np.eye(shape[0])
    if domain == "contractive" and len(shape) == 2:
        A = rng.standard_normal(shape)
        return 0.5 * A / max(np.max(np.abs(np.linalg.eigvals(A))), 1e-3)
    if domain == "positive":
        return np.abs(rng.standard_normal(shape)) + 0.5
    return rng.standard_normal(shape)


def concrete_shape(t, dims):
    subs = {dim_symbol(k): v for k, v in dims.items()}
    return tuple(int(as_dim(d).subs(subs)) for d in t.shape)


# Tolerances. f64 models: central differences in f64 with the step `h`, agreement to `rtol`
# (1e-5). f32 models: the adjoint and tangent run in f32, rounding ~ ε32 ≈ 1.2e-7 per operation
# times the model's conditioning, so they cannot agree to 1e-5. The finite differences are then
# taken in f64 where possible: the lowered primal is rerun with its dtypes widened to f64 on the
# f32 inputs (the same point), so the f64 step `h` stays accurate, and the f32 derivatives must
# agree to `RTOL_F32` = 2e-3 (JAX's check_grads tolerance for float32 gradients; ~ 2e4 ε32, far
# below the O(1) error of a wrong rule), plus a floor for the f32 rounding of ⟨gradient,
# direction⟩ itself, ~ 100 ε32 Σ|gᵢdᵢ| (cancellation in the sum leaves that error). Where the
# program does not run in f64 (a user primitive fixed to f32), the differences are taken in f32:
# the step ε32^(1/3) ≈ 4.9e-3 times the input's scale (its RMS, at least 1) keeps the rounding
# error ~ ε32 |f| / h near 2.5e-5 |f|, and a fourth-order stencil keeps the truncation error
# (~h⁴) below it where a second-order one (~h² ≈ 2.4e-5 times the third derivative) can be 1e-3
# in unrolled loops; that estimate must agree to `RTOL_F32_FD` = 1e-2.
RTOL_F32 = 2e-3
RTOL_F32_FD = 1e-2
_EPS32 = float(np.finfo(np.float32).eps)
_EPS64 = float(np.finfo(np.float64).eps)


def _computes_in_f64(jaxpr) -> bool:
    """Whether every floating value of a jaxpr (and of the jaxprs nested in its equations:
    jit, scan, while, cond, custom rules) is f64."""
    import jax.numpy as jnp
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            dt = getattr(getattr(v, "aval", None), "dtype", None)
            if dt is not None and jnp.issubdtype(dt, jnp.inexact) and dt != np.float64:
                return False
        for p in eqn.params.values():
            for sub in (p if isinstance(p, (tuple, list)) else (p,)):
                if hasattr(sub, "eqns") and not _computes_in_f64(sub):
                    return False
    return True


def _widened(c, args, n_out):
    """The primal of `c` as a JAX function computing in f64 (its f32 constants and loop carries
    widened), or None when that does not run or some value in it stays f32 (a user primitive
    that casts to f32 would make f64 differences of its rounded values)."""
    import re

    import jax

    from .codegen import generate_source
    from .lower import to_callable
    try:
        prog = c.primal()
        src = generate_source(prog, with_comments=False)
        src = re.sub(r"\bjnp\.float32\b", "jnp.float64", src)
        src = re.sub(r"""(['"])f32\1""", r"\1f64\1", src)      # dtype="f32" parameters
        plain = to_callable(prog, src)
        if not _computes_in_f64(jax.make_jaxpr(plain)(*args)):
            return None
        primal = jax.jit(plain)
        outs = primal(*args)
        if len(outs) != n_out or any(np.asarray(o).dtype != np.float64 for o in outs):
            return None
    except Exception:               # whatever fails here, the f32 differences remain
        return None

    def run(*a):
        return tuple(primal(*(np.asarray(x, np.float64) for x in a)))
    return run


HELD = ("stop_gradient", "blr_compress")      # not differentiated, by their definition


def _held_fixed(c, args):
    """The primal of `c` with the results of `stop_gradient` and `blr_compress` held at their
    values at `args` (None when it has none): their derivative is zero by definition, so the
    finite differences must not move them either."""
    from .lower import to_jax
    prog = c.primal()
    held = [e for e in prog.eqns if e.prim in HELD]
    if not held:
        return None
    fixed = [o for e in held for o in e.outputs]
    base = to_jax(prog.copy(outputs=fixed))(*args)
    rest = to_jax(prog.copy(inputs=list(prog.inputs) + fixed, eqns=[e for e in prog.eqns if e.prim not in HELD]))

    def run(*a):
        out = rest(*a, *base)
        return out[0] if len(out) == 1 else tuple(out)
    return run


def _whole_blocks(c, dims, given):
    """The default sizes raised to the multiples a model's size checks ask for (n a multiple of
    128 for `block_jacobi(A, block=128)` of an f64[n, n]); sizes the user gave stay."""
    dims = dict(dims)
    for expr, _, _ in c.dim_checks:
        m = -expr
        if isinstance(m, sympy.Mod) and m.args[0].is_Symbol and m.args[1].is_Integer:
            name = m.args[0].name
            if name in dims and name not in given:
                dims[name] = math.lcm(dims[name], int(m.args[1]))
    return dims


def check_function(f, dims=None, seed=0, h=1e-6, rtol=1e-5, fd64=True):
    """Rows comparing lagrad's adjoint and tangent with central differences, one per input.
    `h` and `rtol` are for f64 models; a model with f32 inputs or outputs is compared with
    differences in f64 (`fd64`, where its program runs in f64) to `RTOL_F32`, else with
    differences in f32 to `RTOL_F32_FD` (see the comment above)."""
    rng = np.random.default_rng(seed)
    free = set()
    for _, t in f.params:
        for d in t.shape:
            free |= {s.name for s in as_dim(d).free_symbols}
    given = dict(dims or {})
    dims = {**{k: 4 for k in free}, **given}
    dims = _whole_blocks(f.compiled(dims, check_sizes=False), dims, given)
    c = f.compiled(dims)
    domains = input_domains(c.canonical)
    args = [sample(rng, concrete_shape(t, dims), domains.get(n, "any")) for n, t in f.params]
    in32 = [getattr(t, "dtype", "f64") == "f32" for _, t in f.params]
    out32 = [getattr(o.type, "dtype", "f64") == "f32" for o in c.canonical.outputs]
    single = any(in32) or any(out32)
    if single:                      # the point the f32 program sees, exactly, in f64
        args = [np.asarray(a, np.float32).astype(np.float64) if s else a for a, s in zip(args, in32)]
    out = f(*args)
    outs = out if isinstance(out, tuple) else (out,)
    out_finite = all(np.all(np.isfinite(np.asarray(o))) for o in outs)
    weights = [rng.standard_normal(np.shape(o)) for o in outs]
    if single:
        weights = [np.asarray(w, np.float32).astype(np.float64) if s else w for w, s in zip(weights, out32)]

    wide = _widened(c, args, len(outs)) if single and fd64 else None
    run = wide if wide is not None else (_held_fixed(c, args) if not single else None) or f
    fd_eps = _EPS32 if single and wide is None else _EPS64
    tol = rtol if not single else RTOL_F32 if wide is not None else RTOL_F32_FD

    def scal(*a):
        o = run(*a)
        o = o if isinstance(o, tuple) else (o,)
        return sum(float(np.sum(np.asarray(x, np.float64) * w)) for x, w in zip(o, weights))

    _, pullback = f.vjp(*args)
    grads = pullback(*weights)
    rows = []
    for k, (name, t) in enumerate(f.params):
        d = rng.standard_normal(np.shape(args[k]))
        if domains.get(name) == "spd":
            d = d + d.T
        if in32[k]:
            d = np.asarray(d, np.float32).astype(np.float64)
        def at(s):
            moved = list(args)
            moved[k] = args[k] + s * d
            return scal(*moved)
        if fd_eps == _EPS64:
            step = h
            f_plus, f_minus = at(step), at(-step)
            fd = (f_plus - f_minus) / (2 * step)
        else:                       # f32 differences (see RTOL_F32_FD): fourth order
            step = _EPS32 ** (1 / 3) * max(1.0, float(np.sqrt(np.mean(np.square(args[k])))) if np.size(args[k]) else 1.0)
            f_plus, f_minus = at(step), at(-step)
            fd = (8 * (f_plus - f_minus) - (at(2 * step) - at(-2 * step))) / (12 * step)
        # rounding in the difference quotient: ~ ε|f|/h; below that, a derivative is zero
        noise = 100 * fd_eps * max(abs(f_plus), abs(f_minus), 1.0) / step
        g = np.asarray(grads[k], np.float64)
        adj = float(np.sum(g * d))
        tans = [np.zeros_like(a) for a in args]
        tans[k] = d
        _, tout = f.jvp(args, tans)
        tout = tout if isinstance(tout, tuple) else (tout,)
        tan = sum(float(np.sum(np.asarray(x, np.float64) * w)) for x, w in zip(tout, weights))
        if single:
            # rounding of the f32 adjoint and tangent themselves: ~ ε32 times the size of
            # the terms summed (cancellation in ⟨gradient, direction⟩ leaves that error)
            terms = max(float(np.sum(np.abs(g * d))),
                        sum(float(np.sum(np.abs(np.asarray(x, np.float64) * w))) for x, w in zip(tout, weights)))
            noise = max(noise, 100 * _EPS32 * terms) if np.isfinite(terms) else noise
        scale = max(abs(fd), abs(adj), noise / tol)
        ea, et = abs(adj - fd) / scale, abs(tan - fd) / scale
        nonfinite = [what for what, ok in (("output", out_finite), ("finite difference", np.isfinite(fd)),
                                           ("adjoint", np.isfinite(adj)), ("tangent", np.isfinite(tan))) if not ok]
        note = "non-finite " + ", ".join(nonfinite) if nonfinite else ""
        rows.append(CheckRow(f.name, name, domains.get(name, "any"), fd, adj, tan, ea, et,
                             bool(ea <= tol and et <= tol and not nonfinite), note))
    return rows


def format_rows(rows) -> str:
    w = max([9] + [len(r.domain) for r in rows])
    head = f"{'model':<16} {'input':<10} {'domain':<{w}} {'finite diff':>14} {'adjoint':>14} {'tangent':>14} {'adj err':>9} {'tan err':>9}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.model:<16} {r.input:<10} {r.domain:<{w}} {r.fd:>14.6e} {r.adjoint:>14.6e} {r.tangent:>14.6e} "
                     f"{r.adjoint_err:>9.1e} {r.tangent_err:>9.1e}  {'yes' if r.ok else 'NO'}"
                     + (f" ({r.note})" if r.note else ""))
    return "\n".join(lines)
