"""lyap: lagrad's forward solve, its value-and-gradient, and scipy's Bartels–Stewart, side by
side in one process.

The loss is sum(W ⊙ X), X = lyap(A, Q) (A X + X Aᵀ + Q = 0), with A = randn(n, n)/√n − 1.5 I
(stable) and non-symmetric W. Contenders, for n = 64 … 512:

1. lagrad forward `f(A, Q, W)`: the scaled sign iteration (one inverse and a scaling per step,
   stored in the factor) and the Q-recurrence apply (two products per step).
2. lagrad `f.value_and_grad("A, Q")`: the same forward, then the adjoint apply with the stored
   inverses transposed (two products per step, no inverse) and Ā = S Xᵀ + Sᵀ X. Target: ≤ 1.3×
   the forward.
3. `scipy.linalg.solve_continuous_lyapunov(A, −Q)` (Bartels–Stewart: real Schur form + a
   triangular Sylvester solve, LAPACK), forward only.
4. jax.grad through a JAX-only reference: the same sign iteration for a fixed step count (the K
   lagrad's factor used) in `lax.fori_loop`, differentiated by JAX through the iterations (it
   differentiates every inverse; RULES.md says not to do this — shown for scale).

    taskset -c 1 .venv/bin/python -m benchmarks.bench_lyap          # writes RESULTS_lyap.md
    python -m benchmarks.bench_lyap --quick                          # smoke run, tiny sizes
"""
from __future__ import annotations

from . import common  # noqa: I001  (sets XLA_FLAGS before jax is imported)

import argparse  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg as sla  # noqa: E402

import lagrad  # noqa: E402
from lagrad.stdlib.lyap import lyap_factor_impl  # noqa: E402
from .common import Contender, fmt_s, interleaved, markdown_table, warm_up  # noqa: E402

RESULTS = pathlib.Path(__file__).with_name("RESULTS_lyap.md")
MODEL = """model lyap_loss(A: f64[n, n], Q: f64[n, n], W: f64[n, n]) -> f64 {
    return sum(W * lyap(A, Q))
}
"""


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def sign_lyap_fixed(A, Q, steps):
    """The sign-function Lyapunov solve in plain JAX with a static step count (so jax.grad can
    reverse-differentiate the loop), with lagrad's closing correction X = ½Q + ¼(E Q + Q Eᵀ),
    E = A_K + I."""
    def body(_, s):
        Ak, Qk = s
        Ainv = jnp.linalg.inv(Ak)
        c = jnp.sqrt(jnp.linalg.norm(Ainv) / jnp.linalg.norm(Ak))
        return 0.5 * (c * Ak + Ainv / c), 0.5 * (c * Qk + Ainv @ Qk @ Ainv.T / c)
    AK, QK = jax.lax.fori_loop(0, steps, body, (A, Q))
    return QK + 0.25 * (AK @ QK + QK @ AK.T)


def bench_case(n: int, reps: int, with_jax: bool):
    f = lagrad.loads(MODEL, name="lyap_loss.la").lyap_loss
    rng = np.random.default_rng(n)
    A_np = rng.standard_normal((n, n)) / np.sqrt(n) - 1.5 * np.eye(n)
    Q_np, W_np = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    A, Q, W = (jnp.asarray(x) for x in (A_np, Q_np, W_np))
    K = int(jax.jit(lyap_factor_impl)(A)[-1])
    vg = f.value_and_grad("A, Q")
    jf = jax.jit(f)
    jvg = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
    cs = [Contender("lagrad forward f(A, Q, W)", lambda: f(A, Q, W)),
          Contender("lagrad value_and_grad wrt A, Q", lambda: vg(A, Q, W)),
          Contender("scipy solve_continuous_lyapunov (forward)", lambda: sla.solve_continuous_lyapunov(A_np, -Q_np)),
          Contender("jax.jit(f) forward", lambda: jf(A, Q, W)),
          Contender("jax.jit(jax.value_and_grad(f)) (lagrad's adjoint)", lambda: jvg(A, Q, W))]
    if with_jax:
        ref = jax.jit(jax.value_and_grad(lambda A, Q: jnp.sum(W * sign_lyap_fixed(A, Q, K)), argnums=(0, 1)))
        cs.append(Contender(f"jax.value_and_grad through the iteration ({K} steps)", lambda: ref(A, Q)))
    warm_up(cs)
    # agreement: the forward against scipy, the gradient against the explicit adjoint formula
    X = sla.solve_continuous_lyapunov(A_np, -Q_np)
    S = sla.solve_continuous_lyapunov(A_np.T, -W_np)
    val, (gA, gQ) = cs[1].fn()
    errs = [abs(float(cs[0].fn()) - float(np.sum(W_np * X))) / abs(float(np.sum(W_np * X))),
            rel_err(gQ, S), rel_err(gA, S @ X.T + S.T @ X)]
    if with_jax:
        jv, (jA, jQ) = cs[5].fn()
        errs += [rel_err(jA, S @ X.T + S.T @ X), rel_err(jQ, S)]
    interleaved(cs, reps)
    t = [c.median_s for c in cs]
    jA2, jQ2 = cs[4].fn()[1]
    errs += [rel_err(jQ2, S), rel_err(jA2, S @ X.T + S.T @ X)]
    return dict(n=n, K=K, times=t, first=[c.first_call_s for c in cs], errs=errs,
                g_ratio=t[4] / t[3], api_ratio=t[1] / t[0], s_ratio=t[3] / t[2],
                j_ratio=(t[5] / t[4]) if with_jax else float("nan"),
                ok=max(errs) <= 1e-8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions (a smoke run)")
    ap.add_argument("--sizes", type=int, nargs="*", help="n values (default 64 128 256 512; --quick 8)")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (default 15; --quick 3)")
    ap.add_argument("--no-jax", action="store_true", help="skip the jax.grad-through-the-iteration contender")
    ap.add_argument("--out", type=pathlib.Path, help="markdown output (default benchmarks/RESULTS_lyap.md; "
                    "not written by --quick unless given)")
    a = ap.parse_args(argv)
    sizes = a.sizes or ([8] if a.quick else [64, 128, 256, 512])
    reps = a.reps or (3 if a.quick else 15)
    out = a.out or (None if a.quick else RESULTS)
    jax.block_until_ready(jnp.ones(3) + 1)
    res = [bench_case(n, reps, not a.no_jax) for n in sizes]
    rows = [[r["n"], r["K"], fmt_s(r["times"][3]), fmt_s(r["times"][4]), f"**{r['g_ratio']:.2f}**",
             fmt_s(r["times"][0]), fmt_s(r["times"][1]), f"{r['api_ratio']:.2f}", fmt_s(r["times"][2]),
             f"{r['s_ratio']:.2f}", fmt_s(r["times"][5]) if len(r["times"]) > 5 else "—",
             f"{r['j_ratio']:.2f}" if r["j_ratio"] == r["j_ratio"] else "—", f"{max(r['errs']):.1e}"]
            for r in res]
    table = markdown_table(
        ["n", "steps K", "jit forward", "jit value_and_grad", "v&g ÷ forward (jitted)", "f(A, Q, W)",
         "f.value_and_grad", "v&g ÷ forward (API)", "scipy forward", "jit fwd ÷ scipy",
         "jax.grad through iteration", "jax-through ÷ lagrad v&g", "max rel. err"], rows)
    compile_rows = [[r["n"], fmt_s(r["first"][0]), fmt_s(r["first"][1])] for r in res]
    notes = ["jitted: `jax.jit(f)` and `jax.jit(jax.value_and_grad(f))` (lagrad's derived adjoint through "
             "its custom_vjp bridge), no per-call Python work on either side: the compute ratio. API: "
             "`f(A, Q, W)` and `f.value_and_grad(\"A, Q\")`, each with lagrad's argument binding (a concrete call runs "
             "the jitted primal directly).",
             "Cost model per sign step: forward = one inverse (LU) + two products (the Q apply); the adjoint "
             "adds the transposed apply (two products, no inverse) and Ā = S Xᵀ + Sᵀ X (two products once)."]
    worst = max(res, key=lambda r: r["g_ratio"])
    summary = [f"lagrad's value_and_grad of sum(W ⊙ lyap(A, Q)), jitted, takes {min(r['g_ratio'] for r in res):.2f}–"
               f"{worst['g_ratio']:.2f}× its jitted forward solve (target ≤ 1.3×: "
               f"{'met at every n' if worst['g_ratio'] <= 1.3 else 'NOT met at every n'}; worst at n = {worst['n']}); "
               f"through the API (f.value_and_grad ÷ f) {min(r['api_ratio'] for r in res):.2f}–"
               f"{max(r['api_ratio'] for r in res):.2f}×.",
               f"lagrad's jitted forward (sign iteration) takes {min(r['s_ratio'] for r in res):.2f}–"
               f"{max(r['s_ratio'] for r in res):.2f}× the time of scipy's Bartels–Stewart on this CPU."]
    if not a.no_jax:
        summary.append(f"jax.value_and_grad through the same iteration (fixed K) takes "
                       f"{min(r['j_ratio'] for r in res):.2f}–{max(r['j_ratio'] for r in res):.2f}× lagrad's "
                       f"value_and_grad.")
    ok = all(r["ok"] for r in res)
    text = [f"# lyap benchmark{' (quick smoke run)' if a.quick else ''}", "",
            common.machine_description(), "",
            f"Loss sum(W ⊙ lyap(A, Q)), A = randn(n, n)/√n − 1.5 I, Q, W = randn(n, n). Medians over {reps} "
            "interleaved rounds; results blocked on before the clock is read; compile timed apart and "
            "excluded. Compare ratios, not absolute times.", "", "## Summary", ""] + [f"- {s}" for s in summary] + [
            "", "## Times", "", table, "", *[f"- {x}" for x in notes], "", "## First call (trace + compile + run)", "",
            markdown_table(["n", "lagrad forward", "lagrad value_and_grad"], compile_rows)]
    if not ok:
        text += ["", "**A result disagreed with scipy / the explicit adjoint formula by more than 1e-8.**"]
    common.publish(text, out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
