"""lagrad against its peers, side by side: ``python -m benchmarks``.

Cases: frechet_inverse, solve, inv, qr_tall, qr_wide, expm, lyap, dlyap, kalman, krylov, blr.
Peers: lagrad, jax.grad of the jax.numpy pipeline, hand-written JAX with jax.custom_vjp,
PyTorch (CPU autograd), PyTensor (default mode and mode="JAX"); a peer that is not installed or
cannot do a case is recorded as such. Every peer runs on one thread (set before import).

    taskset -c 1 .venv/bin/python -m benchmarks                       # all cases, full sizes
    taskset -c 1 .venv/bin/python -m benchmarks --cases expm,lyap      # some cases
    python -m benchmarks --quick                                       # smoke run, tiny sizes

Each case's results go to OUT/data/<case>.json as soon as it is measured; RESULTS.md and the
plots (OUT/plots/*.png) are rebuilt from every JSON in OUT/data after each case, so cases run
in separate processes add up (``--report-only`` rebuilds without measuring).
"""
from __future__ import annotations

from . import peers  # noqa: I001  (pins threads, sets XLA_FLAGS, before numpy/jax)

import argparse  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from . import cases_dense as cd  # noqa: E402
from . import cases_struct as cst  # noqa: E402
from . import report, runner  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
ALL = report.ORDER


def make_case(name: str, quick: bool):
    return {"frechet_inverse": cd.frechet_case, "solve": cd.solve_case, "inv": cd.inv_case,
            "qr_tall": lambda: cd.qr_case("tall"), "qr_wide": lambda: cd.qr_case("wide"),
            "expm": cd.expm_case, "lyap": cst.lyap_case, "dlyap": cst.dlyap_case,
            "kalman": lambda: cst.kalman_case(quick=quick), "blr": lambda: cst.blr_case(quick=quick)}[name]()


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def write_report(out: pathlib.Path, quick: bool) -> str:
    res = report.load(out / "data")
    made = report.plots(res, out / "plots")
    lines = [f"# lagrad against its peers{' (quick smoke run)' if quick else ''}", "",
             "Written by `python -m benchmarks` (benchmarks/__main__.py); each case's raw numbers are in "
             "data/<case>.json next to this file.", ""]
    machines = {"\n".join(ln for ln in r.get("machine", "").splitlines() if not ln.startswith("- date:"))
                for r in res.values()}
    lines += ["## Machine", ""] + sorted(machines) + [""]
    lines += ["Load average (1, 5, 15 min; the machine is shared, 2 cores, this run pinned to one) at the start / "
              "end of each case:", ""] + [f"- {k} ({r.get('date', '?')}, {r.get('wall_s', 0):.0f} s): "
                                          f"{r.get('load_start', '?')} / {r.get('load_end', '?')}"
                                          for k, r in res.items()] + [""]
    gpu = [r.get("device", "") for r in res.values()]
    lines += ["Device: " + ", ".join(sorted(set(gpu))) + ". No GPU was lent to this task, so there is no GPU run; the "
              "runner works unchanged on a GPU machine (JAX peers and lagrad then run on the GPU; PyTorch and "
              "PyTensor stay on the CPU as written) and records the device here.", ""]
    lines += ["## Method", "",
              "- One process per case; inputs fixed per size; every contender (each peer's forward and gradient) "
              "is warmed up (first call timed apart as compile), then timed in interleaved rounds (round-robin, "
              "order rotated), results blocked on before the clock is read; medians. Rounds: as many as a time "
              "budget allows, at least 3 (recorded per size in data/*.json).",
              "- A timed sample repeats one contender's call until it lasts at least "
              + ", ".join(sorted({f"{1e3 * r.get('min_sample_s', 1e-3):g} ms" for r in res.values()}))
              + " (`--min-sample`; data/*.json records it per case), and the sample's time is divided by "
              "the calls: a single call timed right after another library's call runs with cold caches, "
              "which a training loop calling the same gradient again and again does not see (measured in "
              "\"Added in this round (stop 16)\" below).",
              "- Right before each timed sample the contender runs untimed for "
              + ", ".join(sorted({f"{1e3 * r.get('settle_s', 0.0):g} ms" for r in res.values()}))
              + " (at least one call; `--settle`; data/*.json records it per case). After another "
              "library's call the next few calls of a JAX program are slower for about 10 ms (the Kalman "
              "gradient at n = 8: 3.1, 2.8, 2.7, 2.5 ms, then 1.6 ms), more than a 10 ms sample absorbs; "
              "with the settle, each contender is timed as a training loop calling it again and again "
              "runs it (see \"Stop 23\" below).",
              "- Each sample records wall time and the process's CPU time. The machine is shared (the load "
              "averages during each case are above), so other processes may take turns on this run's "
              "core and inflate wall times at random; every computation here is single-threaded, so its CPU "
              "time is its compute time. **Ratios and targets use the CPU-time medians**; the wall-time "
              "medians are given beside them (in parentheses) and in data/*.json. On a GPU backend no CPU "
              "time is recorded and everything uses wall time.",
              "- lagrad is called through its API: `f(*args)` and `f.grad(wrt)(*args)` on device arrays (its "
              "per-call Python work, a type check and one jitted call, included). jax.grad and custom_vjp: `jax.jit(f)` and `jax.jit(jax.grad(f, argnums))`. "
              "PyTorch: eager, forward under `no_grad`, gradient by `torch.autograd.grad`. PyTensor: "
              "`pytensor.function` of the cost and of `pytensor.grad`, default mode and `mode=\"JAX\"`.",
              "- Memory: for lagrad and the JAX peers, XLA's compiled memory analysis of the gradient function "
              "(temp + output bytes; arguments excluded), as benchmarks/bench_krylov.py does. For every peer "
              "also the peak resident-set growth during one gradient call (VmHWM reset through "
              "/proc/self/clear_refs): a lower bound, since memory an allocator already holds is not counted.",
              "- Gradient ÷ forward: each peer's own gradient call (which recomputes the forward) over its own "
              "forward call.", ""]
    lines += ["## Targets", "", report.markdown_table(
        ["target", "measured", "met"],
        [[t, m, "n/a" if ok is None else ("**met**" if ok else "**not met**")] for t, m, ok in report.targets(res)]), ""]
    notes = HERE / "results_notes.md"          # hand-written findings on the targets, kept with the code
    if not quick and notes.exists():
        lines += [notes.read_text(encoding="utf-8").rstrip(), ""]
    lines += ["## Summary: each peer's gradient time ÷ lagrad's at the largest size (> 1: lagrad faster)", ""]
    lines += report.summary_table(res) + [""]
    if "overview.png" in made:
        lines += ["![gradient time vs size, all cases](plots/overview.png)", ""]
    lines += ["## Cases", ""]
    for k, r in res.items():
        lines += report.case_section(r)
        if f"{k}.png" in made:
            lines += [f"![{k}](plots/{k}.png)", ""]
    text = "\n".join(lines) + "\n"
    (out / "RESULTS.md").write_text(text, encoding="utf-8")
    return text


def update_readme(out: pathlib.Path, readme: pathlib.Path) -> None:
    """Replace the README's last section, "## Benchmarks", with a summary of OUT's results."""
    res = report.load(out / "data")
    rel = os.path.relpath(out, readme.parent)
    lines = ["## Benchmarks", "",
             "`python -m benchmarks` (install the `bench` extra: PyTorch, PyTensor, matplotlib) times lagrad "
             "against `jax.grad` of the same pipeline in jax.numpy, hand-written JAX with `jax.custom_vjp`, "
             "PyTorch autograd and PyTensor (default and JAX modes), side by side in one process on one CPU "
             "thread: forward and gradient time, gradient ÷ forward, memory and compile time, for "
             "frechet_inverse, the implicit solve (written with `solve` and with `inv`), qr (tall, wide), "
             "expm, lyap, dlyap, the Kalman likelihood, cg/gmres (implicit vs unrolled) and the BLR matvec. "
             f"Full tables, method and machine: [{rel}/RESULTS.md]({rel}/RESULTS.md); `--quick` is a smoke "
             "run, `--cases a,b` selects cases. The machine was shared while these ran, so ratios use CPU-time "
             "medians (wall times are in RESULTS.md). No GPU was available for these runs.", "",
             "Targets:", "", report.markdown_table(
                 ["target", "measured", "met"],
                 [[t, m, "n/a" if ok is None else ("met" if ok else "**not met**")] for t, m, ok in report.targets(res)]),
             "", "Each peer's gradient time ÷ lagrad's at the largest size measured (> 1: lagrad is faster):", ""]
    lines += report.summary_table(res)
    if (out / "plots" / "overview.png").exists():
        lines += ["", f"![gradient time vs size, every case and peer]({rel}/plots/overview.png)"]
    text = readme.read_text(encoding="utf-8")
    head = text.split("\n## Benchmarks\n")[0].rstrip("\n")
    readme.write_text(head + "\n\n" + "\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, few rounds (a smoke run)")
    ap.add_argument("--cases", default=",".join(ALL), help=f"comma-separated, from {','.join(ALL)}")
    ap.add_argument("--peers", default=",".join(peers.PEERS),
                    help="comma-separated peers to run (lagrad always runs: every ratio is against it)")
    ap.add_argument("--sizes", help="comma-separated n, overriding every selected case's sizes "
                    "(krylov: maxiter values)")
    ap.add_argument("--reps", type=int, help="at most this many interleaved rounds (default 15; --quick 3)")
    ap.add_argument("--budget", type=float, help="seconds of timing per size (default 15; --quick 0.5)")
    ap.add_argument("--min-sample", type=float, help="seconds a timed sample lasts at least (the "
                    "call repeated; default 0.01)")
    ap.add_argument("--settle", type=float, help="seconds each contender runs untimed right before each "
                    "timed sample (at least one call; 0: none; default 0.01)")
    ap.add_argument("--out", type=pathlib.Path, help="output folder (default benchmarks/; --quick a temp folder)")
    ap.add_argument("--report-only", action="store_true", help="rebuild RESULTS.md and plots from OUT/data")
    ap.add_argument("--update-readme", action="store_true",
                    help="with --report-only: also rewrite README.md's closing '## Benchmarks' section")
    a = ap.parse_args(argv)
    out = a.out or (pathlib.Path(tempfile.mkdtemp(prefix="lagrad-bench-")) if a.quick else HERE)
    if a.report_only:
        write_report(out, a.quick)
        if a.update_readme:
            update_readme(out, HERE.parent / "README.md")
        return 0
    names = [c.strip() for c in a.cases.split(",") if c.strip()]
    bad = [c for c in names if c not in ALL]
    if bad:
        ap.error(f"unknown case(s) {bad}; choose from {ALL}")
    peer_names = [p.strip() for p in a.peers.split(",") if p.strip()]
    bad = [p for p in peer_names if p not in peers.PEERS]
    if bad:
        ap.error(f"unknown peer(s) {bad}; choose from {peers.PEERS}")
    peer_names = ["lagrad"] + [p for p in peer_names if p != "lagrad"]
    reps = a.reps or (3 if a.quick else 15)
    budget = a.budget if a.budget is not None else (0.5 if a.quick else 15.0)
    sizes = [int(s) for s in a.sizes.split(",")] if a.sizes else None
    if a.min_sample is not None:
        runner.MIN_SAMPLE_S = a.min_sample
    if a.settle is not None:
        runner.SETTLE_S = a.settle
    runner.start_backend()
    import jax
    device = f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind})"
    for name in names:
        t0, load0 = time.time(), load_average()
        print(f"== {name} (load {load0})", flush=True)
        if name == "krylov":
            n = 24 if a.quick else 1000
            its = sizes or ([4, 12] if a.quick else [10, 30, 100, 300, 1000])
            res = runner.run_krylov(n, its, reps, budget, peer_names)
        else:
            case = make_case(name, a.quick)
            case.sizes = sizes or (case.quick if a.quick else case.sizes)
            res = runner.run_case(case, peer_names, reps, budget)
        res.update(machine=runner.machine(), date=time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(t0)),
                   device=device, min_sample_s=runner.MIN_SAMPLE_S,
                   settle_s=runner.SETTLE_S, load_start=load0, load_end=load_average(),
                   wall_s=time.time() - t0, quick=a.quick)
        runner.save(res, out / "data" / f"{name}.json")
        write_report(out, a.quick)
    print(f"(RESULTS.md, data/ and plots/ in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
