"""BLR matvec and its gradient against the dense matvec, side by side in one process.

The operator is a block low-rank M = BLR(D, U, V), n = p·b (p blocks of size b, off-diagonal
rank r), applied by batched einsums (`blr_apply`). The loss is sum(w ⊙ M x). Contenders, for
n = 1024 … 16384 with (block, rank) = (128, 4) and (256, 16):

1. lagrad forward: `blr_apply(D, U, V, x)` (O(n·b + n·p·r) flops and memory).
2. lagrad gradient w.r.t. D, U, V, x: the derived adjoint (transposed einsums + one Mᵀȳ).
3. jax.jit(jax.grad) of the same loss written with jnp.einsum (the reference for 2).
4. dense forward: lagrad `sum(w ⊙ (A x))` with A = dense(M) (O(n²)).
5. dense gradient w.r.t. A and x (Ā = w xᵀ is an n × n outer product).

After each sample the result is dropped and the process idles 50 ms (untimed): XLA frees an n × n
gradient asynchronously, which would otherwise slow whichever contender runs next. The dense
contenders are skipped where A and its gradient (≈ 3·8·n² bytes) exceed --dense-max-gb
(default 8 GB).

    taskset -c 1 .venv/bin/python -m benchmarks.bench_blr          # writes RESULTS_blr.md
    python -m benchmarks.bench_blr --quick                          # smoke run, tiny sizes
"""
from __future__ import annotations

from . import common  # noqa: I001  (sets XLA_FLAGS before jax is imported)

import argparse  # noqa: E402
import gc  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import lagrad  # noqa: E402
from lagrad.stdlib.blr import blr_dense_impl  # noqa: E402
from .common import Contender, block, fmt_s, markdown_table, warm_up  # noqa: E402

RESULTS = pathlib.Path(__file__).with_name("RESULTS_blr.md")
MODEL = """
model blr_loss(D: f64[p, b, b], U: f64[p, p, b, r], V: f64[p, p, b, r], x: f64[p*b], w: f64[p*b]) -> f64 {
    return sum(w * blr_apply(D, U, V, x))
}
model dense_loss(A: f64[n, n], x: f64[n], w: f64[n]) -> f64 {
    return sum(w * (A @ x))
}
"""


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def jnp_loss(D, U, V, x, w):
    """The same loss in jnp.einsum (masked i = j), differentiated by jax.grad."""
    p, b = D.shape[0], D.shape[1]
    X = x.reshape(p, b)
    t = jnp.einsum("ijcr,jc->ijr", V, X) * (1 - jnp.eye(p))[:, :, None]
    y = jnp.einsum("ibc,ic->ib", D, X) + jnp.einsum("ijar,ijr->ia", U, t)
    return jnp.sum(w * y.reshape(-1))


def interleaved_settled(contenders, reps: int, settle_s: float):
    """common.interleaved, but each sample's result is dropped and the process left idle for
    `settle_s` before the next contender is timed: XLA frees an n × n result asynchronously
    after it is blocked on (≈ 15 ms at n = 4096), which would otherwise land on whichever
    contender runs next."""
    k = len(contenders)
    for r in range(reps):
        for c in contenders[r % k:] + contenders[:r % k]:
            t0 = time.perf_counter()
            for _ in range(c.number):
                out = block(c.fn())
            c.samples.append((time.perf_counter() - t0) / c.number)
            del out
            time.sleep(settle_s)
    return contenders


def bench_case(mod, n: int, block: int, rank: int, reps: int, dense_max_gb: float, settle_s: float = 0.05):
    p = n // block
    k = jax.random.split(jax.random.PRNGKey(n + block + rank), 5)
    D = jax.random.normal(k[0], (p, block, block)) / np.sqrt(block)
    U = jax.random.normal(k[1], (p, p, block, rank)) / np.sqrt(n)
    V = jax.random.normal(k[2], (p, p, block, rank)) / np.sqrt(n)
    x = jax.random.normal(k[3], (n,))
    w = jax.random.normal(k[4], (n,))
    blr_grad = mod.blr_loss.grad(["D", "U", "V", "x"])
    jax_grad = jax.jit(jax.grad(jnp_loss, argnums=(0, 1, 2, 3)))
    # the BLR contenders are timed first, in rounds of their own: next to the dense matrix and its
    # gradient (2 GB each at n = 16384) being allocated and freed, a BLR forward that takes 11 ms
    # alone measured 40-110 ms
    cs = [Contender("BLR forward (lagrad)", lambda: mod.blr_loss(D, U, V, x, w)),
          Contender("BLR grad D,U,V,x (lagrad)", lambda: blr_grad(D, U, V, x, w)),
          Contender("BLR grad (jax.grad, jnp.einsum)", lambda: jax_grad(D, U, V, x, w))]
    warm_up(cs)
    g, gj = cs[1].fn(), cs[2].fn()
    errs = [rel_err(a, b) for a, b in zip(g, gj)]
    del gj
    interleaved_settled(cs, reps, settle_s)
    dense = 3 * 8 * n * n / 1e9 <= dense_max_gb
    if dense:
        A = jax.jit(blr_dense_impl)(D, U, V)
        dense_grad = mod.dense_loss.grad(["A", "x"])
        cd = [Contender("dense forward (lagrad)", lambda: mod.dense_loss(A, x, w)),
              Contender("dense grad A,x (lagrad)", lambda: dense_grad(A, x, w))]
        warm_up(cd)
        errs.append(rel_err(cs[0].fn(), cd[0].fn()))
        errs.append(rel_err(g[3], cd[1].fn()[1]))            # x̄ = Mᵀw both ways
        interleaved_settled(cd, reps, settle_s)
        cs += cd
    del g
    t = [c.median_s for c in cs] + [float("nan")] * (5 - len(cs))
    res = dict(n=n, block=block, rank=rank, p=p, times=t, dense=dense, errs=errs, ok=max(errs) <= 1e-8,
               fwd_ratio=t[0] / t[3], grad_ratio=t[1] / t[4], jax_ratio=t[1] / t[2],
               blr_mb=8 * (p * block * block + 2 * p * p * block * rank) / 1e6, dense_mb=8 * n * n / 1e6)
    cs.clear()
    if dense:
        del A
    gc.collect()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions (a smoke run)")
    ap.add_argument("--sizes", type=int, nargs="*", help="n values (default 1024 … 16384; --quick 32)")
    ap.add_argument("--configs", nargs="*", help="block:rank pairs (default 128:4 256:16; --quick 8:2)")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (default 9; --quick 2)")
    ap.add_argument("--dense-max-gb", type=float, default=8.0,
                    help="skip the dense contenders above this estimate of 3·8·n² bytes (default 8)")
    ap.add_argument("--out", type=pathlib.Path, help="markdown output (default benchmarks/RESULTS_blr.md; "
                    "not written by --quick unless given)")
    a = ap.parse_args(argv)
    sizes = a.sizes or ([32] if a.quick else [1024, 2048, 4096, 8192, 16384])
    configs = [tuple(map(int, c.split(":"))) for c in (a.configs or (["8:2"] if a.quick else ["128:4", "256:16"]))]
    reps = a.reps or (2 if a.quick else 9)
    out = a.out or (None if a.quick else RESULTS)
    mod = lagrad.loads(MODEL, name="bench_blr.la")
    jax.block_until_ready(jnp.ones(3) + 1)
    res = []
    for n in sizes:
        for bs, rank in configs:
            if n % bs:
                continue
            r = bench_case(mod, n, bs, rank, reps, a.dense_max_gb)
            res.append(r)
            print(f"n={n} b={bs} r={rank}: " + ", ".join(fmt_s(s) for s in r["times"]), flush=True)

    def ratio(v):
        return "—" if v != v else f"{v:.3f}"
    rows = [[r["n"], f"{r['block']} / {r['rank']} (p = {r['p']})", f"{r['blr_mb']:.3g} / {r['dense_mb']:.3g}",
             *[fmt_s(s) for s in r["times"]], f"**{ratio(r['fwd_ratio'])}**", f"**{ratio(r['grad_ratio'])}**",
             ratio(r["jax_ratio"]), f"{max(r['errs']):.1e}"] for r in res]
    table = markdown_table(
        ["n", "block / rank", "MB: BLR / dense", "BLR fwd", "BLR grad (lagrad)", "BLR grad (jax)",
         "dense fwd", "dense grad", "fwd: BLR ÷ dense", "grad: BLR ÷ dense", "BLR grad: lagrad ÷ jax",
         "max rel. diff"], rows)
    summary = []
    with_dense = [r for r in res if r["dense"]]
    if with_dense:
        summary.append(
            f"BLR forward ÷ dense forward: {min(r['fwd_ratio'] for r in with_dense):.3f}–"
            f"{max(r['fwd_ratio'] for r in with_dense):.3f}; BLR gradient (D, U, V, x) ÷ dense gradient "
            f"(A, x): {min(r['grad_ratio'] for r in with_dense):.3f}–{max(r['grad_ratio'] for r in with_dense):.3f} "
            f"(n = {min(r['n'] for r in with_dense)} … {max(r['n'] for r in with_dense)}).")
    if res:
        summary.append(f"lagrad's derived BLR gradient ÷ jax.grad of the same jnp.einsum loss: "
                       f"{min(r['jax_ratio'] for r in res):.2f}–{max(r['jax_ratio'] for r in res):.2f}.")
        for r in res:
            g_over_f = r["times"][1] / r["times"][0]
            r["g_over_f"] = g_over_f
        summary.append(f"BLR gradient ÷ BLR forward (lagrad): {min(r['g_over_f'] for r in res):.2f}–"
                       f"{max(r['g_over_f'] for r in res):.2f}.")
    skipped = sorted({r["n"] for r in res if not r["dense"]})
    if skipped:
        summary.append(f"Dense contenders skipped at n = {', '.join(map(str, skipped))}: A and its gradient "
                       f"(≈ 3·8·n² bytes) exceed {a.dense_max_gb:g} GB.")
    ok = all(r["ok"] for r in res)
    text = [f"# BLR matvec benchmark{' (quick smoke run)' if a.quick else ''}", "",
            common.machine_description(), "",
            "Loss sum(w ⊙ M x), M = BLR(D, U, V) with D: [p, b, b], U, V: [p, p, b, r] (random normal, "
            "scaled), x, w random. The dense contenders use A = dense(M), allocated after the BLR contenders "
            f"are timed; each group is timed in {reps} interleaved rounds of its own; medians; results blocked on before the clock is read; compile timed apart "
            "and excluded; each sample is followed by an untimed 50 ms pause (see the script's docstring). Compare ratios, not absolute times. `max rel. diff`: lagrad's BLR gradient against "
            "jax.grad, and (where dense runs) the BLR forward value and x̄ against the dense ones.", "",
            "## Summary", ""] + [f"- {s}" for s in summary] + ["", "## Times", "", table]
    if not ok:
        text += ["", "**A result disagreed with its reference by more than 1e-8.**"]
    common.publish(text, out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
