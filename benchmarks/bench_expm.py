"""expm gradients: lagrad against JAX, side by side in one process.

The loss is sum(W ⊙ e^A) with a fixed non-symmetric W; its gradient is Ā = L(Aᵀ, W). Contenders,
for n = 64 … 512 and two norms of A (one squaring or several):

1. lagrad `f.grad("A")`: the forward pass keeps the factor (the Taylor T₁₈ pieces and the
   scaling), the adjoint is one Fréchet evaluation from it (products only).
2. `jax.jit(jax.grad(loss))` through `jax.scipy.linalg.expm`. Target: lagrad ≤ 0.6× at n ≥ 128.
3. The "Fréchet adjoint through JAX's own jvp": e^A, then `jax.scipy.linalg.expm_frechet(Aᵀ, W)`
   (the issue quotes 0.72× of jax.grad for it).
4. Forward only: lagrad `f(A, W)` and jitted jnp `loss(A)`.

    taskset -c 1 .venv/bin/python -m benchmarks.bench_expm          # writes RESULTS_expm.md
    python -m benchmarks.bench_expm --quick                          # smoke run, tiny sizes
"""
from __future__ import annotations

from . import common  # noqa: I001  (sets XLA_FLAGS before jax is imported)

import argparse  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.scipy.linalg as jsl  # noqa: E402
import numpy as np  # noqa: E402

import lagrad  # noqa: E402
from lagrad.stdlib.expm import expm_factor_impl  # noqa: E402
from .common import Contender, fmt_s, interleaved, markdown_table, warm_up  # noqa: E402

RESULTS = pathlib.Path(__file__).with_name("RESULTS_expm.md")
MODEL = """model expm_loss(A: f64[n, n], W: f64[n, n]) -> f64 {
    return sum(W * expm(A))
}
"""


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def bench_case(n: int, scale: float, reps: int):
    f = lagrad.loads(MODEL, name="expm_loss.la").expm_loss
    rng = np.random.default_rng(n)
    A = jnp.asarray(scale * rng.standard_normal((n, n)) / np.sqrt(n))
    W = jnp.asarray(rng.standard_normal((n, n)))

    def loss(A):
        return jnp.sum(W * jsl.expm(A))

    grad_A = f.grad("A")
    jax_grad = jax.jit(jax.grad(loss))

    @jax.jit
    def frechet_adjoint(A):
        X = jsl.expm(A)                                # the forward value, as a gradient needs it
        return jnp.sum(W * X), jsl.expm_frechet(A.T, W, compute_expm=False)

    jax_fwd = jax.jit(loss)
    cs = [Contender("lagrad f.grad('A')", lambda: grad_A(A, W)),
          Contender("jax.jit(jax.grad(loss)), jsl.expm", lambda: jax_grad(A)),
          Contender("jit: expm(A), jsl.expm_frechet(Aᵀ, W)", lambda: frechet_adjoint(A)[1]),
          Contender("lagrad f(A, W) (forward)", lambda: f(A, W)),
          Contender("jax.jit(loss) (forward)", lambda: jax_fwd(A))]
    warm_up(cs)
    ref = cs[1].fn()
    errs = [rel_err(cs[0].fn(), ref), rel_err(cs[2].fn(), ref), rel_err(cs[3].fn(), cs[4].fn())]
    interleaved(cs, reps)
    norm1 = float(jnp.max(jnp.sum(jnp.abs(A), axis=0)))
    # squarings: lagrad's factor (T₁₈, α-scaling) and jax.scipy.linalg.expm's ⌊log₂(‖A‖₁/θ₁₃)⌋
    sq = (int(jax.jit(expm_factor_impl)(A)[-1]), max(0, int(np.floor(np.log2(norm1 / 5.371920351148152)))))
    t = {c.name: c.median_s for c in cs}
    g_ratio = cs[0].median_s / cs[1].median_s
    return dict(n=n, scale=scale, norm1=norm1, sq=sq, times=[c.median_s for c in cs],
                compile=[c.first_call_s for c in cs], names=list(t), g_ratio=g_ratio,
                fr_ratio=cs[2].median_s / cs[1].median_s, f_ratio=cs[3].median_s / cs[4].median_s,
                errs=errs, ok=max(errs) <= 1e-8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions (a smoke run)")
    ap.add_argument("--sizes", type=int, nargs="*", help="n values (default 64 128 256 512; --quick 8)")
    ap.add_argument("--scales", type=float, nargs="*", help="A = scale·randn/√n (default 1 8)")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (default 15; --quick 3)")
    ap.add_argument("--out", type=pathlib.Path, help="markdown output (default benchmarks/RESULTS_expm.md; "
                    "not written by --quick unless given)")
    a = ap.parse_args(argv)
    sizes = a.sizes or ([8] if a.quick else [64, 128, 256, 512])
    scales = a.scales or [1.0, 8.0]
    reps = a.reps or (3 if a.quick else 15)
    out = a.out or (None if a.quick else RESULTS)
    jax.block_until_ready(jnp.ones(3) + 1)
    res = [bench_case(n, s, reps) for n in sizes for s in scales]
    rows = [[r["n"], f"{r['scale']:g} ({r['norm1']:.3g}; {r['sq'][0]}, {r['sq'][1]})",
             fmt_s(r["times"][0]), fmt_s(r["times"][1]), fmt_s(r["times"][2]),
             f"**{r['g_ratio']:.2f}**", f"{r['fr_ratio']:.2f}", f"{r['f_ratio']:.2f}",
             f"{max(r['errs']):.1e}"] for r in res]
    table = markdown_table(
        ["n", "scale (‖A‖₁; squarings: lagrad, JAX)", "lagrad grad", "jax.grad", "expm + jsl.expm_frechet(Aᵀ, W)",
         "lagrad ÷ jax.grad", "jsl Fréchet adjoint ÷ jax.grad", "forward: lagrad ÷ jnp", "max rel. diff"], rows)
    big = [r for r in res if r["n"] >= 128]
    summary = []
    if big:
        worst = max(big, key=lambda r: r["g_ratio"])
        summary.append(f"lagrad's expm gradient takes {min(r['g_ratio'] for r in big):.2f}–{worst['g_ratio']:.2f}× "
                       f"the time of jitted jax.grad through jax.scipy.linalg.expm at n ≥ 128 (target ≤ 0.6×; "
                       f"worst at n = {worst['n']}, scale {worst['scale']:g}); the Fréchet adjoint through "
                       f"JAX's own expm_frechet takes {min(r['fr_ratio'] for r in big):.2f}–"
                       f"{max(r['fr_ratio'] for r in big):.2f}×.")
    ok = all(r["ok"] for r in res)
    text = [f"# expm gradient benchmark{' (quick smoke run)' if a.quick else ''}", "",
            common.machine_description(), "",
            f"Loss sum(W ⊙ e^A), A = scale·randn(n, n)/√n, W = randn(n, n). Medians over {reps} interleaved "
            "rounds; results blocked on before the clock is read; compile timed apart and excluded. "
            "Compare ratios, not absolute times.", "", "## Summary", ""] + [f"- {s}" for s in summary] + [
            "", "## Times", "", table]
    if not ok:
        text += ["", "**A gradient disagreed with jax.grad by more than 1e-8.**"]
    common.publish(text, out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
