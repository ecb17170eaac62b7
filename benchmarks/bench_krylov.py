"""Implicit vs unrolled gradients of cg / gmres: time and peak memory against maxiter.

The loss is mean(x), x ≈ K(θ)⁻¹ b, differentiated with respect to θ and b, at n = 1000:

* cg:    K(v) = θᵀ(θ v)/n + s·v with θ = randn(n, n), s = 0.1 (SPD, κ ≈ 40);
* gmres: K(v) = 2 θ v with θ = I + 0.3·randn(n, n)/√n (nonsymmetric, well conditioned),
  restarted GMRES(r), r = min(30, maxiter).

Both solvers run with tol = 0, so they do exactly `maxiter` iterations (gmres: whole restart
cycles, ⌈maxiter / r⌉·r inner steps). Contenders, for maxiter ∈ {10, 30, 100, 300, 1000}:

1. lagrad: `jax.jit(jax.value_and_grad(f, argnums=(0, 1)))` of the lagrad Function (its
   custom_vjp bridge runs lagrad's derived adjoint: one more solve with the transposed
   operator; no backward pass through the iterations);
2. unrolled: `jax.jit(jax.value_and_grad(loss))` of a pure-JAX CG / GMRES(r) — the same
   algorithm as lagrad's (lagrad/stdlib/krylov.py) — with a static trip count (`lax.fori_loop`
   → `lax.scan`), which JAX reverse-differentiates by storing every iteration's residuals;
3. for reference, `jax.scipy.sparse.linalg.cg` / `gmres(solve_method="batched")` (JAX
   differentiates those implicitly too, through `lax.custom_linear_solve`).

Time: interleaved medians, results blocked on. Peak working memory: XLA's compiled memory
analysis of each jitted value-and-grad, `temp_size_in_bytes + output_size_in_bytes` (the
arguments, θ and b, are the same 8 MB for all and listed apart). Gradients are compared with
each other and with the gradient of the dense solve `jnp.linalg.solve`.

    taskset -c 1 .venv/bin/python -m benchmarks.bench_krylov          # writes RESULTS_krylov.md
    python -m benchmarks.bench_krylov --quick                          # smoke run, tiny sizes
"""
from __future__ import annotations

from . import common  # noqa: I001  (sets XLA_FLAGS before jax is imported)

import argparse  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.scipy.sparse.linalg as jspl  # noqa: E402
import numpy as np  # noqa: E402

import lagrad  # noqa: E402  (enables x64)
from .common import Contender, fmt_s, interleaved, markdown_table, warm_up  # noqa: E402

RESULTS = pathlib.Path(__file__).with_name("RESULTS_krylov.md")
SHIFT = 0.1            # cg: K = θᵀθ/n + SHIFT·I
GM_SCALE = 0.3         # gmres: θ = I + GM_SCALE·randn/√n, K = 2θ
RESTART = 30          # gmres restart length (--restart); GMRES(min(RESTART, maxiter))


def restart_for(maxiter: int) -> int:
    return min(RESTART, maxiter)


def inner_steps(solver: str, maxiter: int) -> int:
    if solver == "cg":
        return maxiter
    r = restart_for(maxiter)
    return math.ceil(maxiter / r) * r


def lagrad_models(n: int, maxiter: int):
    r = restart_for(maxiter)
    return lagrad.loads(f"""
model cg_loss(theta: f64[n, n], b: f64[n]) -> f64 {{
    op K(v) = theta' @ (theta @ v) / {n} + {SHIFT} * v
    return mean(cg(K, b, tol=0, maxiter={maxiter}))
}}
model cg_x(theta: f64[n, n], b: f64[n]) -> f64[n] {{
    op K(v) = theta' @ (theta @ v) / {n} + {SHIFT} * v
    return cg(K, b, tol=0, maxiter={maxiter})
}}
model gmres_loss(theta: f64[n, n], b: f64[n]) -> f64 {{
    op K(v) = 2 * theta @ v
    return mean(gmres(K, b, restart={r}, tol=0, maxiter={maxiter}))
}}
model gmres_x(theta: f64[n, n], b: f64[n]) -> f64[n] {{
    op K(v) = 2 * theta @ v
    return gmres(K, b, restart={r}, tol=0, maxiter={maxiter})
}}
""", name=f"bench_krylov_{maxiter}.la")


# ---- operators ------------------------------------------------------------------------------
def cg_op(theta):
    n = theta.shape[0]
    return lambda v: theta.T @ (theta @ v) / n + SHIFT * v


def gmres_op(theta):
    return lambda v: 2 * (theta @ v)


def dense_matrix(solver, theta):
    n = theta.shape[0]
    return theta.T @ theta / n + SHIFT * jnp.eye(n) if solver == "cg" else 2 * theta


# ---- unrolled pure-JAX solvers (the same algorithms as lagrad/stdlib/krylov.py) ---------------
def cg_unrolled(A, b, iters: int):
    """Unpreconditioned CG from x₀ = 0, exactly `iters` steps (static trip count)."""
    def body(_, s):
        x, r, p, rz = s
        Ap = A(p)
        alpha = rz / jnp.vdot(p, Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rz_new = jnp.vdot(r, r)
        p = r + (rz_new / rz) * p
        return x, r, p, rz_new
    s0 = (jnp.zeros_like(b), b, b, jnp.vdot(b, b))
    return jax.lax.fori_loop(0, iters, body, s0)[0]


def gmres_unrolled(A, b, m: int, cycles: int):
    """GMRES(m) from x₀ = 0, exactly `cycles` restart cycles of m Arnoldi steps (CGS2, lstsq)."""
    n = b.shape[0]
    tiny = jnp.finfo(b.dtype).tiny

    def cycle(_, x):
        r = b - A(x)
        beta = jnp.linalg.norm(r)
        V = jnp.zeros((n, m + 1), b.dtype).at[:, 0].set(r / jnp.where(beta > tiny, beta, 1))
        H = jnp.zeros((m + 1, m), b.dtype)

        def arnoldi_step(j, VH):
            V, H = VH
            w = A(V[:, j])
            mask = (jnp.arange(m + 1) <= j).astype(b.dtype)
            h = (V.T @ w) * mask
            w = w - V @ h
            h2 = (V.T @ w) * mask
            w = w - V @ h2
            h = h + h2
            hn = jnp.linalg.norm(w)
            V = V.at[:, j + 1].set(w / jnp.where(hn > tiny, hn, 1))
            H = H.at[:, j].set(h.at[j + 1].set(hn))
            return V, H
        V, H = jax.lax.fori_loop(0, m, arnoldi_step, (V, H))
        e1 = jnp.zeros((m + 1,), b.dtype).at[0].set(beta)
        y = jnp.linalg.lstsq(H, e1)[0]
        return x + V[:, :m] @ y
    return jax.lax.fori_loop(0, cycles, cycle, jnp.zeros_like(b))


def solver_fns(solver: str, maxiter: int):
    """loss(θ, b) for the unrolled and the jax.scipy versions."""
    if solver == "cg":
        def unrolled(theta, b):
            return jnp.mean(cg_unrolled(cg_op(theta), b, maxiter))

        def jsp(theta, b):
            return jnp.mean(jspl.cg(cg_op(theta), b, tol=0.0, atol=0.0, maxiter=maxiter)[0])
    else:
        r = restart_for(maxiter)
        cycles = math.ceil(maxiter / r)

        def unrolled(theta, b):
            return jnp.mean(gmres_unrolled(gmres_op(theta), b, r, cycles))

        def jsp(theta, b):
            return jnp.mean(jspl.gmres(gmres_op(theta), b, tol=0.0, atol=0.0, restart=r, maxiter=cycles,
                                       solve_method="batched")[0])
    return unrolled, jsp


# ---- measurement ----------------------------------------------------------------------------
def memory(jitted, *args) -> dict:
    ma = jitted.lower(*args).compile().memory_analysis()
    if ma is None:
        return dict(temp=float("nan"), out=float("nan"), arg=float("nan"), peak=float("nan"))
    temp, out, arg = ma.temp_size_in_bytes, ma.output_size_in_bytes, ma.argument_size_in_bytes
    return dict(temp=temp, out=out, arg=arg, peak=temp + out)


def rel_diff(g, ref) -> float:
    num = sum(float(jnp.sum((jnp.asarray(a) - jnp.asarray(c)) ** 2)) for a, c in zip(g, ref))
    den = sum(float(jnp.sum(jnp.asarray(c) ** 2)) for c in ref)
    return math.sqrt(num / max(den, 1e-300))


def problem(solver: str, n: int):
    rng = np.random.default_rng(1234 + n)
    if solver == "cg":
        theta = rng.standard_normal((n, n))
    else:
        theta = np.eye(n) + GM_SCALE * rng.standard_normal((n, n)) / np.sqrt(n)
    return jnp.asarray(theta), jnp.asarray(rng.standard_normal(n))


def dense_grad(solver, theta, b):
    def loss(theta, b):
        return jnp.mean(jnp.linalg.solve(dense_matrix(solver, theta), b))
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(theta, b)


def bench_case(solver: str, n: int, maxiter: int, reps: int, mods, dense) -> dict:
    theta, b = problem(solver, n)
    f = getattr(mods, f"{solver}_loss")
    fx = getattr(mods, f"{solver}_x")
    unrolled, jsp = solver_fns(solver, maxiter)
    vg = {"lagrad": jax.jit(jax.value_and_grad(f, argnums=(0, 1))),
          "unrolled": jax.jit(jax.value_and_grad(unrolled, argnums=(0, 1))),
          "jax.scipy": jax.jit(jax.value_and_grad(jsp, argnums=(0, 1)))}
    cs = [Contender(k, (lambda g=g: g(theta, b))) for k, g in vg.items()]
    warm_up(cs)
    interleaved(cs, reps)
    outs = {c.name: c.fn() for c in cs}
    mem = {k: memory(g, theta, b) for k, g in vg.items()}
    x = fx(theta, b)
    K = dense_matrix(solver, theta)
    resid = float(jnp.linalg.norm(b - K @ x) / jnp.linalg.norm(b))
    grads = {k: o[1] for k, o in outs.items()}
    finite = {k: all(bool(jnp.all(jnp.isfinite(a))) for a in g) for k, g in grads.items()}
    return dict(solver=solver, maxiter=maxiter, steps=inner_steps(solver, maxiter),
                restart=restart_for(maxiter) if solver == "gmres" else None,
                t={c.name: c.median_s for c in cs}, compile={c.name: c.first_call_s for c in cs},
                mem=mem, resid=resid, finite=finite,
                d_lu=rel_diff(grads["lagrad"], grads["unrolled"]),
                d_ld=rel_diff(grads["lagrad"], dense[1]), d_ud=rel_diff(grads["unrolled"], dense[1]),
                d_lj=rel_diff(grads["lagrad"], grads["jax.scipy"]),
                v_lu=abs(float(outs["lagrad"][0]) - float(outs["unrolled"][0])) / abs(float(dense[0])))


def fmt_mb(x: float) -> str:
    if x != x:
        return "—"
    return f"{x / 2**20:.3g} MiB" if x >= 2**20 else f"{x / 2**10:.3g} KiB"


def reps_for(maxiter: int, base: int) -> int:
    return base if maxiter <= 100 else max(2, base // 2) if maxiter <= 300 else max(2, base // 3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions (a smoke run)")
    ap.add_argument("--n", type=int, help="problem size (default 1000; --quick 40)")
    ap.add_argument("--maxiters", type=int, nargs="*", help="maxiter values (default 10 30 100 300 1000; "
                    "--quick 5 20)")
    ap.add_argument("--restart", type=int, help="gmres restart length (default 30; --quick 4)")
    ap.add_argument("--reps", type=int, help="interleaved repetitions at maxiter ≤ 100 (halved at 300, "
                    "a third at 1000; default 9; --quick 2)")
    ap.add_argument("--out", type=pathlib.Path, help="markdown output (default benchmarks/RESULTS_krylov.md; "
                    "not written by --quick unless given)")
    a = ap.parse_args(argv)
    n = a.n or (40 if a.quick else 1000)
    maxiters = a.maxiters or ([4, 12] if a.quick else [10, 30, 100, 300, 1000])
    global RESTART
    RESTART = a.restart or (4 if a.quick else 30)
    base = a.reps or (2 if a.quick else 9)
    out = a.out or (None if a.quick else RESULTS)
    jax.block_until_ready(jnp.ones(3) + 1)

    dense = {s: dense_grad(s, *problem(s, n)) for s in ("cg", "gmres")}
    res = {"cg": [], "gmres": []}
    for M in maxiters:
        mods = lagrad_models(n, M)
        for s in ("cg", "gmres"):
            r = bench_case(s, n, M, reps_for(M, base), mods, dense[s])
            res[s].append(r)
            print(f"{s} maxiter={M}: lagrad {fmt_s(r['t']['lagrad'])} {fmt_mb(r['mem']['lagrad']['peak'])}, "
                  f"unrolled {fmt_s(r['t']['unrolled'])} {fmt_mb(r['mem']['unrolled']['peak'])}, "
                  f"jax.scipy {fmt_s(r['t']['jax.scipy'])} {fmt_mb(r['mem']['jax.scipy']['peak'])}", flush=True)

    sections, summary = [], []
    ok = True
    for s, title in (("cg", f"cg — K = θᵀθ/n + {SHIFT}·I (SPD)"),
                     ("gmres", f"gmres — K = 2θ, θ = I + {GM_SCALE}·randn/√n, GMRES(min({RESTART}, maxiter))")):
        rs = res[s]
        rows = [[r["maxiter"], r["steps"], fmt_s(r["t"]["lagrad"]), fmt_s(r["t"]["unrolled"]),
                 f"**{r['t']['lagrad'] / r['t']['unrolled']:.2f}**", fmt_s(r["t"]["jax.scipy"]),
                 fmt_mb(r["mem"]["lagrad"]["peak"]), fmt_mb(r["mem"]["unrolled"]["peak"]),
                 fmt_mb(r["mem"]["jax.scipy"]["peak"]), f"{r['resid']:.1e}"] for r in rs]
        table = markdown_table(
            ["maxiter", "inner steps", "time lagrad", "time unrolled", "lagrad ÷ unrolled", "time jax.scipy",
             "memory lagrad", "memory unrolled", "memory jax.scipy", "‖b − Kx‖/‖b‖"], rows)
        grows = [[r["maxiter"], f"{r['d_lu']:.1e}", f"{r['d_ld']:.1e}", f"{r['d_ud']:.1e}", f"{r['d_lj']:.1e}",
                  f"{r['v_lu']:.1e}", ", ".join(k for k, v in r["finite"].items() if v) or "none"] for r in rs]
        gtable = markdown_table(
            ["maxiter", "lagrad vs unrolled", "lagrad vs dense solve", "unrolled vs dense solve",
             "lagrad vs jax.scipy", "loss: lagrad − unrolled (rel.)", "finite gradients"], grows)
        ctable = markdown_table(
            ["maxiter", "compile+1st lagrad", "compile+1st unrolled", "compile+1st jax.scipy",
             "temp lagrad", "temp unrolled", "temp jax.scipy"],
            [[r["maxiter"], fmt_s(r["compile"]["lagrad"]), fmt_s(r["compile"]["unrolled"]),
              fmt_s(r["compile"]["jax.scipy"]), fmt_mb(r["mem"]["lagrad"]["temp"]),
              fmt_mb(r["mem"]["unrolled"]["temp"]), fmt_mb(r["mem"]["jax.scipy"]["temp"])] for r in rs])
        sections += [f"## {title}", "", table, "", "Gradients (relative 2-norm difference over (θ̄, b̄)):", "",
                     gtable, "", "Compile (first call) and XLA temp buffers alone:", "", ctable, ""]
        lo, hi = rs[0], rs[-1]
        both = [r for r in rs if r["finite"]["lagrad"] and r["finite"]["unrolled"]]
        agree = both[-1] if both else hi
        nan_un = [r["maxiter"] for r in rs if not r["finite"]["unrolled"]]
        nan_txt = (f" The unrolled gradient is not finite at maxiter = {', '.join(map(str, nan_un))}: "
                   "differentiating through iterations past convergence divides by vanishing residual "
                   "norms; lagrad's implicit gradient stays finite." if nan_un else "")
        same = [r for r in rs if r["restart"] == hi["restart"]]     # gmres: same restart length as the last
        ml = [r["mem"]["lagrad"]["peak"] for r in same]
        mu = [r["mem"]["unrolled"]["peak"] for r in rs]
        flat = max(ml) <= 1.05 * min(ml) + 2**16
        rtxt = f" (restart {hi['restart']})" if s == "gmres" else ""
        per_step = (hi["mem"]["unrolled"]["temp"] - lo["mem"]["unrolled"]["temp"]) / max(hi["steps"] - lo["steps"], 1)
        summary.append(
            f"**{s}**: from maxiter = {same[0]['maxiter']} to {hi['maxiter']}{rtxt}, lagrad's gradient working memory "
            f"{'stays flat' if flat else 'changes'} ({fmt_mb(min(ml))}–{fmt_mb(max(ml))}, of which "
            f"{fmt_mb(hi['mem']['lagrad']['out'])} is the output θ̄), the unrolled one grows "
            f"{fmt_mb(mu[0])} → {fmt_mb(mu[-1])} (≈ {fmt_mb(per_step)} per inner step, linear in the "
            f"iteration count); time lagrad ÷ unrolled {min(r['t']['lagrad'] / r['t']['unrolled'] for r in rs):.2f}–"
            f"{max(r['t']['lagrad'] / r['t']['unrolled'] for r in rs):.2f}×. At maxiter = {agree['maxiter']} "
            f"(‖b − Kx‖/‖b‖ = {agree['resid']:.1e}) the two gradients agree to {agree['d_lu']:.1e} "
            f"(lagrad vs dense solve {agree['d_ld']:.1e}; at maxiter = {hi['maxiter']} {hi['d_ld']:.1e}); at "
            f"maxiter = {lo['maxiter']} they differ by {lo['d_lu']:.1e}." + nan_txt)
        ok &= flat and all(r["finite"]["lagrad"] for r in rs)
        if not a.quick:
            ok &= agree["d_lu"] <= 1e-6 and hi["d_ld"] <= 1e-6
    text = [f"# Krylov gradients: implicit (lagrad) vs unrolled{' (quick smoke run)' if a.quick else ''}", "",
            common.machine_description(), "",
            f"n = {n}; loss = mean(x), x ≈ K(θ)⁻¹ b; value and gradient with respect to (θ, b). "
            f"tol = 0, so every solve runs exactly maxiter iterations (gmres: whole restart cycles — "
            f"'inner steps'). Medians over {base} interleaved rounds at maxiter ≤ 100, "
            f"{reps_for(300, base)} at 300, {reps_for(1000, base)} at 1000; results blocked on before the "
            "clock is read; compile timed apart and excluded. Compare ratios, not absolute times.", "",
            "Contenders: **lagrad** = `jax.jit(jax.value_and_grad(f, argnums=(0, 1)))` of the lagrad "
            "Function (forward solve, then lagrad's derived adjoint: one solve with the transposed operator); "
            "**unrolled** = the same algorithm in pure JAX with a static trip count (`lax.fori_loop` → "
            "`lax.scan`), reverse-differentiated through every iteration; **jax.scipy** = "
            "`jax.scipy.sparse.linalg.cg` / `gmres(solve_method='batched')` (implicit too, via "
            "`lax.custom_linear_solve`).", "",
            "Memory = XLA's compiled memory analysis of the jitted value-and-grad: `temp_size_in_bytes + "
            "output_size_in_bytes` (the output includes θ̄, n² doubles); the arguments θ, b "
            f"({fmt_mb(res['cg'][0]['mem']['lagrad']['arg'])}) are the same for all and not counted.", "",
            "## Summary", ""] + [f"- {x}" for x in summary] + [
            "- At small maxiter the two gradients are different quantities: the unrolled one is the exact "
            "derivative of the truncated iteration x_M(θ, b); lagrad's is the implicit-function formula of the "
            "exact solution (b̄ = K⁻ᵀx̄, θ̄ = −adjoint of θ ↦ K(θ)x at λ = b̄), evaluated with the truncated x "
            "and an adjoint solve truncated at the same maxiter. They coincide once the solves converge.",
            "- Time per iteration: XLA:CPU materializes the transpose of a captured matrix (an n² copy) in "
            "every iteration of a `lax.while_loop` with a data-dependent trip count when an operator applies "
            "it transposed (cg's θᵀ(θv); gmres's derived Kᵀ(w) = 2θᵀw) — ≈ 7× the cost of θ @ v in an "
            "isolated test (jax.scipy's cg pays it here). lagrad's generated code avoids it: an operator's "
            "loop-invariant part (θᵀ, 2θ, a Jacobi diagonal, ...) is computed once per solve, and a remaining "
            "`Aᵀ @ v` is one `dot_general` contracting A's first axis.",
            "", *sections]
    if not ok:
        text += ["**A check failed: lagrad's memory grew with maxiter, a lagrad gradient was not finite, or "
                 "the converged gradients disagree by more than 1e-6.**"]
    common.publish(text, out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
