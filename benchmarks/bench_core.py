"""lagrad's core measurements, side by side with JAX in one process.

1. frechet_inverse (examples/frechet_inverse.la) at n = 40: lagrad's reverse mode (`f.grad`)
   and forward mode (`f.jvp`) against jitted `jax.grad` / `jax.jvp` of the jax.numpy function.
2. mean(inv(2θ) @ b) at n = 400: lagrad's gradient of the model written with `inv` (lagrad
   rewrites it to a solve) against `jax.grad` of the inv form and of the solve form, jitted.
   Target: lagrad ≥ 5× faster than jax.grad of the inv form.
3. Compile time from text to first result for both examples and a generated 1000-statement
   model, split into lagrad's own work and JAX trace + XLA compile, and the cost of loading the
   same text again (cached).
Timings: medians of interleaved repetitions, compile (the first call) reported apart; every
contender gets device-resident jax arrays.

    taskset -c 1 .venv/bin/python -m benchmarks.bench_core          # writes RESULTS_core.md
    python -m benchmarks.bench_core --quick                          # smoke run, tiny sizes
"""
from __future__ import annotations

from . import common  # noqa: I001  (sets XLA_FLAGS before jax is imported)

import argparse  # noqa: E402
import itertools  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import lagrad  # noqa: E402
from .common import Contender, fmt_s, interleaved, markdown_table, timed, warm_up  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = pathlib.Path(__file__).with_name("RESULTS_core.md")
INV_MEAN_LA = """model inv_mean(theta: f64[n, n], b: f64[n]) -> f64 {
    return mean(inv(2 * theta) @ b)
}
"""
CHAIN_OPS = [("x = tanh(A @ x + b)", lambda A, b, x: jnp.tanh(A @ x + b)),
             ("x = x * 0.5 + b", lambda A, b, x: x * 0.5 + b),
             ("x = sigmoid(A' @ x)", lambda A, b, x: jax.nn.sigmoid(A.T @ x)),
             ("x = x - 0.1 * b", lambda A, b, x: x - 0.1 * b)]
_fresh = itertools.count()


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def well_conditioned(rng, n):
    return jnp.asarray(rng.standard_normal((n, n)) + n * np.eye(n))


def clock(fn):
    """(seconds, result) of a host-side call (no arrays to wait for)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# ---- the functions, in lagrad and in jax.numpy ------------------------------------------------
def frechet_jnp(x, A, B, C):
    return (C @ jnp.linalg.inv(A + x * B))[-1, -1]


def implicit_jnp(theta, b):
    return jnp.mean(jnp.linalg.solve(2 * theta, b))


def chain_source(statements: int) -> str:
    """A model of `statements` statements: x = x0, then the CHAIN_OPS in turn, then return."""
    body = [CHAIN_OPS[i % len(CHAIN_OPS)][0] for i in range(statements - 2)]
    lines = ["model chain(A: f64[n, n], b: f64[n], x0: f64[n]) -> f64 {", "    x = x0"]
    lines += ["    " + s for s in body] + ["    return sum(x * x)", "}"]
    return "\n".join(lines) + "\n"


def chain_jnp(statements: int):
    def f(A, b, x0):
        x = x0
        for i in range(statements - 2):
            x = CHAIN_OPS[i % len(CHAIN_OPS)][1](A, b, x)
        return jnp.sum(x * x)
    return f


# ---- 1. frechet_inverse ------------------------------------------------------------------------
def bench_frechet(n: int, reps: int):
    f = lagrad.load(ROOT / "examples" / "frechet_inverse.la").frechet_inverse
    rng = np.random.default_rng(0)
    x, A, B, C = jnp.asarray(2.3), well_conditioned(rng, n), *(jnp.asarray(rng.standard_normal((n, n)))
                                                                for _ in range(2))
    args, tangents = (x, A, B, C), (jnp.ones(()), 0 * A, 0 * B, 0 * C)
    grad_x = f.grad(wrt="x")
    jax_grad = jax.jit(jax.grad(frechet_jnp))
    jax_jvp = jax.jit(lambda p, t: jax.jvp(frechet_jnp, p, t)[1])
    jax_grad_of_lagrad = jax.jit(jax.grad(f))
    jax_vjp = jax.jit(lambda a, ct: jax.vjp(frechet_jnp, *a)[1](ct)[0])
    cs = [Contender("lagrad f.grad(wrt='x') (reverse)", lambda: grad_x(*args)),
          Contender("jax.jit(jax.grad(jnp fn))", lambda: jax_grad(*args)),
          Contender("lagrad f.jvp, tangent (1,0,0,0) (forward)", lambda: f.jvp(args, tangents)[1]),
          Contender("jax.jit(jax.jvp(jnp fn))", lambda: jax_jvp(args, tangents)),
          Contender("jax.jit(jax.grad(lagrad f)) (lagrad's adjoint via JAX)", lambda: jax_grad_of_lagrad(*args)),
          Contender("lagrad f.vjp, then pullback(1.0) (two calls)", lambda: f.vjp(*args)[1](1.0)[0]),
          Contender("jax.jit(jax.vjp(jnp fn) and its pullback(1.0))", lambda: jax_vjp(args, 1.0))]
    warm_up(cs)
    exact = cs[1].fn()
    agree = [rel_err(c.fn(), exact) <= 1e-10 for c in cs]
    interleaved(cs, reps)
    base = {0: 1, 2: 3, 4: 1, 5: 6}    # which JAX contender each lagrad one is compared with
    rows = [[c.name, fmt_s(c.median_s), fmt_s(c.first_call_s),
             f"{c.median_s / cs[base[i]].median_s:.2f}" if i in base else "1", "yes" if agree[i] else "NO"]
            for i, c in enumerate(cs)]
    table = markdown_table(["contender", "median / call", "first call (compile)", "time ÷ JAX's", "= jax.grad"], rows)
    summary = [f"frechet_inverse, n = {n}: lagrad reverse mode takes {cs[0].median_s / cs[1].median_s:.2f}× the "
               f"time of jitted jax.grad, forward mode {cs[2].median_s / cs[3].median_s:.2f}× that of jitted "
               f"jax.jvp; jax.jit(jax.grad(lagrad f)), lagrad's derived adjoint run inside jax.jit without "
               f"lagrad's per-call Python work (argument binding, the unit cotangent), {cs[4].median_s / cs[1].median_s:.2f}×; "
               f"f.vjp and its pullback (two jitted calls: the split forward, then the backward on its residuals) "
               f"{cs[5].median_s / cs[6].median_s:.2f}× one jitted jax.vjp + pullback."]
    return f"1. frechet_inverse, n = {n}", table, summary, all(agree)


# ---- 2. mean(inv(2θ) @ b) ----------------------------------------------------------------------
def bench_inv_mean(n: int, reps: int):
    f = lagrad.loads(INV_MEAN_LA, name="inv_mean.la").inv_mean
    rewritten = " inv(" not in str(f.adjoint())
    rng = np.random.default_rng(1)
    theta, b = well_conditioned(rng, n), jnp.asarray(rng.standard_normal(n))
    grad = f.grad()
    jax_inv = jax.jit(jax.grad(lambda t, b: jnp.mean(jnp.linalg.inv(2 * t) @ b), argnums=(0, 1)))
    jax_solve = jax.jit(jax.grad(implicit_jnp, argnums=(0, 1)))
    jax_of_lagrad = jax.jit(jax.grad(f, argnums=(0, 1)))
    cs = [Contender("lagrad f.grad() (model written with inv)", lambda: grad(theta, b)),
          Contender("jax.jit(jax.grad(mean(inv(2θ) @ b)))", lambda: jax_inv(theta, b)),
          Contender("jax.jit(jax.grad(mean(solve(2θ, b))))", lambda: jax_solve(theta, b)),
          Contender("jax.jit(jax.grad(lagrad f))", lambda: jax_of_lagrad(theta, b))]
    warm_up(cs)
    ref = cs[2].fn()
    agree = [all(rel_err(g, r) <= 1e-8 for g, r in zip(c.fn(), ref)) for c in cs]
    interleaved(cs, reps)
    t_inv = cs[1].median_s
    rows = [[c.name, fmt_s(c.median_s), fmt_s(c.first_call_s), f"{c.median_s / t_inv:.3f}",
             f"{t_inv / c.median_s:.1f}×", "yes" if agree[i] else "NO"] for i, c in enumerate(cs)]
    table = markdown_table(["contender", "median / call", "first call (compile)", "time ÷ jax.grad(inv form)",
                            "speed-up", "= jax.grad"], rows)
    speedup = t_inv / cs[0].median_s
    summary = [f"mean(inv(2θ) @ b), n = {n}: lagrad / jax.grad(inv form) = {cs[0].median_s / t_inv:.3f}, i.e. "
               f"lagrad is {speedup:.1f}× faster (target ≥ 5×: {'met' if speedup >= 5 else 'NOT met'}); "
               f"lagrad / jax.grad(solve form) = {cs[0].median_s / cs[2].median_s:.2f}; inv rewritten to a "
               f"solve: {'yes' if rewritten else 'NO'}."]
    return f"2. mean(inv(2θ) @ b), n = {n}", table, summary, all(agree) and rewritten


# ---- 3. compile time ---------------------------------------------------------------------------
def compile_case(label, text, model, args, jnp_fn):
    """Text → first value and → first gradient, end to end and split; the cached reload."""
    def fresh():
        return text + f"\n# fresh copy {next(_fresh)} {time.time_ns()}\n"
    argnums = tuple(range(len(args)))
    # end to end, on a text lagrad has never seen
    src = fresh()
    t_load, mod = clock(lambda: lagrad.loads(src, name=label))
    f = mod[model]
    t_value, _ = timed(lambda: f(*args))
    t_grad, g = timed(lambda: f.grad()(*args))
    t_reload, mod2 = clock(lambda: lagrad.loads(src, name=label))
    t_recall, _ = timed(lambda: mod2[model].grad()(*args))
    # split: lagrad's passes and code generation, then what the first calls add (JAX + XLA)
    src2 = fresh()
    t_load2, mod = clock(lambda: lagrad.loads(src2, name=label))
    f = mod[model]
    t_primal_ir, prog = clock(lambda: f.program)
    t_adjoint_ir, adj = clock(lambda: f.adjoint())
    t_gen_primal, _ = clock(prog.to_python)
    t_gen_adjoint, _ = clock(adj.to_python)
    t_value2, _ = timed(lambda: f(*args))
    t_grad2, _ = timed(lambda: f.grad()(*args))
    # the same function in jax.numpy, for scale
    t_jax_value, _ = timed(lambda: jax.jit(jnp_fn)(*args))
    t_jax_grad, jg = timed(lambda: jax.jit(jax.grad(jnp_fn, argnums=argnums))(*args))
    ok = all(rel_err(a, b) <= 1e-8 for a, b in zip(g, jg))
    return dict(label=label, stmts=text.count("\n"), eqns=f"{len(prog.eqns)} / {len(adj.eqns)}",
                load=t_load, value=t_value, grad=t_grad, reload=t_reload, recall=t_recall,
                load2=t_load2, lagrad_own=t_load2 + t_primal_ir + t_adjoint_ir + t_gen_primal + t_gen_adjoint,
                primal_ir=t_primal_ir, adjoint_ir=t_adjoint_ir, codegen=t_gen_primal + t_gen_adjoint,
                jax_value=t_value2 - t_gen_primal, jax_grad=t_grad2 - t_gen_adjoint,
                ref_value=t_jax_value, ref_grad=t_jax_grad, ok=ok)


def bench_compile(n: int, chain_statements: int):
    rng = np.random.default_rng(2)

    def M():
        return well_conditioned(rng, n)

    def V():
        return jnp.asarray(rng.standard_normal(n))
    chain_A = jnp.asarray(rng.standard_normal((n, n)) / n)
    cases = [("frechet_inverse.la", (ROOT / "examples" / "frechet_inverse.la").read_text(), "frechet_inverse",
              (jnp.asarray(2.3), M(), M() - n * jnp.eye(n), M() - n * jnp.eye(n)), frechet_jnp),
             ("implicit_solve.la", (ROOT / "examples" / "implicit_solve.la").read_text(), "implicit_solve",
              (M(), V()), implicit_jnp),
             (f"chain.la ({chain_statements} statements)", chain_source(chain_statements), "chain",
              (chain_A, V(), V()), chain_jnp(chain_statements))]
    res = [compile_case(*c) for c in cases]
    t1 = markdown_table(
        ["model", "source lines", "eqns primal / adjoint", "loads", "text → first value", "+ first grad",
         "jax.numpy: first value / first grad", "loads again (cached)", "grad after cached load (1 call)"],
        [[r["label"], r["stmts"], r["eqns"], fmt_s(r["load"]), fmt_s(r["load"] + r["value"]), fmt_s(r["grad"]),
          f"{fmt_s(r['ref_value'])} / {fmt_s(r['ref_grad'])}", fmt_s(r["reload"]), fmt_s(r["recall"])]
         for r in res])
    t2 = markdown_table(
        ["model", "lagrad: loads (parse, elaborate, check)", "primal passes", "adjoint (derive + passes)",
         "codegen", "lagrad total", "JAX trace + XLA: value / grad", "lagrad share of text → first grad"],
        [[r["label"], fmt_s(r["load2"]), fmt_s(r["primal_ir"]), fmt_s(r["adjoint_ir"]), fmt_s(r["codegen"]),
          fmt_s(r["lagrad_own"]), f"{fmt_s(r['jax_value'])} / {fmt_s(r['jax_grad'])}",
          f"{r['lagrad_own'] / (r['lagrad_own'] + r['jax_value'] + r['jax_grad']):.0%}"] for r in res])
    big = res[-1]
    total = big["load"] + big["value"] + big["grad"]
    summary = [f"{big['label']}: text → first gradient takes {total / (big['ref_value'] + big['ref_grad']):.1f}× "
               f"jax.numpy's first value + first gradient; lagrad's own work is "
               f"{big['lagrad_own'] / (big['lagrad_own'] + big['jax_value'] + big['jax_grad']):.0%} of it, the "
               f"rest is JAX tracing and XLA compilation.",
               f"Loading the same text again (module cache): at most "
               f"{max(r['reload'] / r['load'] for r in res):.1%} of a first load."]
    return (f"3. Compile time (n = {n}; one fresh text per measurement)", t1 + "\n\n" + t2, summary,
            all(r["ok"] for r in res))


# ---- driver ------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions (a smoke run)")
    ap.add_argument("--n-frechet", type=int, help="n for frechet_inverse (default 40; --quick 8)")
    ap.add_argument("--n-inv", type=int, help="n for mean(inv(2θ) @ b) (default 400; --quick 16)")
    ap.add_argument("--chain", type=int, help="statements in the generated model (default 1000; --quick 20)")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (default 31; --quick 3)")
    ap.add_argument("--out", type=pathlib.Path, help="where to write the markdown (default "
                    "benchmarks/RESULTS_core.md; not written by --quick unless given)")
    a = ap.parse_args(argv)
    quick = a.quick
    n_frechet = a.n_frechet or (8 if quick else 40)
    n_inv = a.n_inv or (16 if quick else 400)
    chain = a.chain or (20 if quick else 1000)
    reps = a.reps or (3 if quick else 31)
    out = a.out or (None if quick else RESULTS)

    jax.block_until_ready(jnp.ones(3) + 1)           # start the backend before any clock
    sections = [bench_frechet(n_frechet, reps), bench_inv_mean(n_inv, reps),
                bench_compile(n_frechet, chain)]
    ok = all(s[3] for s in sections)
    text = [f"# lagrad core benchmarks{' (quick smoke run)' if quick else ''}", "",
            common.machine_description(), "",
            "Medians over interleaved repetitions (round-robin over the contenders, "
            f"{reps} rounds); results blocked on before the clock is read; the first call "
            "(trace + compile) is timed apart. Compare ratios, not absolute times.", "",
            "## Summary", ""] + [f"- {line}" for s in sections for line in s[2]]
    if not ok:
        text += ["", "**A result disagreed with JAX (see the `= jax.grad` columns).**"]
    for title, table, _, _ in sections:
        text += ["", f"## {title}", "", table]
    common.publish(text, out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
