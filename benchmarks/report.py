"""RESULTS.md and the PNG plots of ``python -m benchmarks``, assembled from the per-case JSON
files in OUT/data (whatever has been measured so far)."""
from __future__ import annotations

import json
import math

from .common import fmt_s, markdown_table

PEER_ORDER = ["lagrad", "jax.grad", "JAX custom_vjp", "PyTorch", "PyTensor", "PyTensor JAX"]
ORDER = ["frechet_inverse", "solve", "inv", "qr_tall", "qr_wide", "expm", "lyap", "dlyap", "kalman", "krylov", "blr"]
NAN = float("nan")


def load(data_dir) -> dict:
    out = {}
    for p in sorted(data_dir.glob("*.json")):
        r = json.loads(p.read_text(encoding="utf-8"))
        out[r["case"]] = r
    return {k: out[k] for k in ORDER if k in out} | {k: v for k, v in out.items() if k not in ORDER}


def g(d, *keys):
    for k in keys:
        if d is None:
            return NAN
        d = d.get(k)
    return NAN if d is None else d


def _cpu_or_wall(row, what):
    """lagrad's compile split in CPU time (`own_cpu`, …), or in wall time for data recorded
    before the CPU time was."""
    v = g(row, "peers", "lagrad", "split", what + "_cpu")
    return v if v == v else g(row, "peers", "lagrad", "split", what)


def tm(row, peer, kind, wall=False):
    """The median time of one contender: process CPU time (robust to other processes on a shared
    core) unless `wall` or not recorded."""
    if not wall:
        x = g(row, "peers", peer, kind + "_cpu")
        if x == x:
            return x
    return g(row, "peers", peer, kind)


def ratio(a, b):
    return a / b if (a == a and b == b and b > 0) else NAN


def fr(x, digits=2):
    return "—" if x != x else f"{x:.{digits}f}"


def fmb(x):
    if x is None or x != x:
        return "—"
    return f"{x / 2**20:.3g} MiB" if x >= 2**20 else f"{x / 2**10:.3g} KiB"


# ---- targets -----------------------------------------------------------------------------------
def targets(res: dict) -> list:
    """(target, measured, met) rows."""
    rows = []
    generic = {k: v for k, v in res.items() if k != "krylov"}

    def worst(peer, cases=None, nmin=0):
        w = (NAN, None, None, NAN)
        for k, r in generic.items():
            if cases and k not in cases:
                continue
            for row in r["rows"]:
                if row["n"] < nmin:
                    continue
                x = ratio(tm(row, "lagrad", "grad"), tm(row, peer, "grad"))
                xw = ratio(tm(row, "lagrad", "grad", True), tm(row, peer, "grad", True))
                if x == x and not (w[0] == w[0] and w[0] >= x):
                    w = (x, k, row["n"], xw)
        return w

    def count_over(peer, lim):
        tot = over = 0
        for k, r in generic.items():
            for row in r["rows"]:
                x = ratio(tm(row, "lagrad", "grad"), tm(row, peer, "grad"))
                if x == x:
                    tot += 1
                    over += x > lim
        return over, tot

    for peer in ("jax.grad", "JAX custom_vjp"):
        x, k, n, xw = worst(peer)
        over, tot = count_over(peer, 1.1)
        rows.append((f"lagrad gradient within 1.1× of {peer}, every case and size",
                     f"worst {fr(x)} ({k}, n = {n}; wall {fr(xw)}); {over} of {tot} (case, n) pairs above 1.1",
                     x == x and x <= 1.1))
    if "expm" in res:
        x, _, n, xw = worst("jax.grad", ["expm"], 128)
        rows.append(("expm: lagrad ≤ 0.6× jax.grad at n ≥ 128", f"worst {fr(x)} (n = {n}; wall {fr(xw)})",
                     x == x and x <= 0.6))
    if "inv" in res:
        x, _, n, xw = worst("jax.grad", ["inv"], 400)
        rows.append(("inv-written pipeline: lagrad ≤ 0.2× jax.grad at n ≥ 400",
                     f"worst {fr(x, 3)} (n = {n}; wall {fr(xw, 3)})", x == x and x <= 0.2))
    for case in ("expm", "lyap", "dlyap"):
        if case not in res:
            continue
        for peer in ("PyTensor", "PyTensor JAX"):
            sp = [(ratio(tm(row, peer, "grad"), tm(row, "lagrad", "grad")), row["n"])
                  for row in res[case]["rows"]]
            sp = [s for s in sp if s[0] == s[0]]
            if sp:
                m = min(sp)
                rows.append((f"{case}: lagrad ≥ 10× faster than {peer}'s gradient",
                             f"{fr(m[0], 1)}× at worst (n = {m[1]}); best {fr(max(sp)[0], 1)}×", m[0] >= 10))
            elif case != "dlyap":
                why = {row.get("skipped", {}).get(peer) for row in res[case]["rows"]} - {None}
                rows.append((f"{case}: lagrad ≥ 10× faster than {peer}'s gradient",
                             "not measurable: " + "; ".join(sorted(why)), None))
    for case in ("solve", "lyap"):
        if case in res:
            xs = [(ratio(tm(row, "lagrad", "grad"), tm(row, "lagrad", "fwd")), row["n"])
                  for row in res[case]["rows"]]
            xs = [x for x in xs if x[0] == x[0]]
            if xs:
                m = max(xs)
                rows.append((f"{case}: lagrad gradient ÷ forward ≤ 1.3", f"worst {fr(m[0])} (n = {m[1]}); best "
                             f"{fr(min(xs)[0])}", m[0] <= 1.3))
    if "krylov" in res:
        kr = [r for r in res["krylov"]["rows"] if r["solver"] == "cg"]
        xs = [(ratio(tm(r, "lagrad", "grad"), tm(r, "lagrad", "fwd")), r["maxiter"]) for r in kr]
        xs = [x for x in xs if x[0] == x[0]]
        if xs:
            m = max(xs)
            rows.append(("cg: lagrad gradient ÷ forward ≤ 1.3", f"worst {fr(m[0])} (maxiter = {m[1]}); best "
                         f"{fr(min(xs)[0])}", m[0] <= 1.3))
        for solver in ("cg", "gmres"):
            rs = [r for r in res["krylov"]["rows"] if r["solver"] == solver]
            if solver == "gmres":
                rs = [r for r in rs if r["maxiter"] >= 30] or rs
            ml = [g(r, "peers", "lagrad", "xla_mem") for r in rs]
            mu = [g(r, "peers", "unrolled JAX (jax.grad)", "xla_mem") for r in rs]
            if ml and all(m == m for m in ml):
                flat = max(ml) <= 1.05 * min(ml) + 2**16
                rows.append((f"{solver}: implicit-gradient memory flat in iterations",
                             f"lagrad {fmb(min(ml))}–{fmb(max(ml))} for maxiter {rs[0]['maxiter']}–{rs[-1]['maxiter']}"
                             f" (unrolled JAX {fmb(mu[0])} → {fmb(mu[-1])})", flat))
    own = [(g(row, "peers", "lagrad", "split", "ratio"), k, row["n"]) for k, r in generic.items() for row in r["rows"]]
    own = [o for o in own if o[0] == o[0]]
    if own:
        m = max(own)
        rows.append(("lagrad's own compile work < 10% of XLA's compile time (gradient program)",
                     f"worst {m[0]:.1%} ({m[1]}, n = {m[2]}); median {sorted(o[0] for o in own)[len(own) // 2]:.1%}",
                     m[0] < 0.10))
    return rows


# ---- tables -------------------------------------------------------------------------------------
def present(r) -> list:
    seen = {p for row in r["rows"] for p in row["peers"]}
    return [p for p in PEER_ORDER if p in seen] + sorted(seen - set(PEER_ORDER))


def case_section(r) -> list:
    if r["case"] == "krylov":
        return krylov_section(r)
    ps = present(r)
    out = [f"### {r['title']}", "", r.get("note", ""), ""]
    hdr = ["n"] + [f"{p} grad" for p in ps] + [f"{p} ÷ lagrad" for p in ps if p != "lagrad"]
    rows = []
    for row in r["rows"]:
        lg, lw = tm(row, "lagrad", "grad"), tm(row, "lagrad", "grad", True)
        rows.append([row["n"]] + [f"{fmt_s(tm(row, p, 'grad'))} ({fmt_s(tm(row, p, 'grad', True))})" for p in ps] +
                    [f"**{fr(ratio(tm(row, p, 'grad'), lg))}** ({fr(ratio(tm(row, p, 'grad', True), lw))})"
                     for p in ps if p != "lagrad"])
    out += ["Gradient time per call, CPU-time median (wall-time median in parentheses), and each peer's "
            "time ÷ lagrad's (> 1: lagrad faster; CPU (wall)):", "", markdown_table(hdr, rows), ""]
    hdr = ["n"] + [f"{p} fwd" for p in ps] + [f"{p} grad÷fwd" for p in ps]
    rows = [[row["n"]] + [fmt_s(tm(row, p, "fwd")) for p in ps] +
            [fr(ratio(tm(row, p, "grad"), tm(row, p, "fwd"))) for p in ps] for row in r["rows"]]
    out += ["Forward time (CPU) and gradient ÷ forward (CPU):", "", markdown_table(hdr, rows), ""]
    xla = [p for p in ps if p in ("lagrad", "jax.grad", "JAX custom_vjp")]
    hdr = ["n"] + [f"{p} (XLA temp+out)" for p in xla] + [f"{p} (RSS growth)" for p in ps]
    rows = [[row["n"]] + [fmb(g(row, "peers", p, "xla_mem")) for p in xla] +
            [fmb(g(row, "peers", p, "rss")) for p in ps] for row in r["rows"]]
    out += ["Gradient memory: XLA's compiled memory analysis where the peer runs on XLA; peak RSS growth "
            "during one call for every peer:", "", markdown_table(hdr, rows), ""]
    hdr = (["n"] + [f"{p} fwd / grad" for p in ps] +
           ["lagrad own (parse…codegen, CPU)", "JAX trace (grad, CPU)", "XLA compile (grad, CPU)", "own ÷ XLA"])
    rows = [[row["n"]] + [f"{fmt_s(g(row, 'peers', p, 'compile_fwd'))} / {fmt_s(g(row, 'peers', p, 'compile_grad'))}"
                          for p in ps] +
            [fmt_s(_cpu_or_wall(row, "own")), fmt_s(_cpu_or_wall(row, "trace")), fmt_s(_cpu_or_wall(row, "xla")),
             "—" if g(row, "peers", "lagrad", "split", "ratio") != g(row, "peers", "lagrad", "split", "ratio")
             else f"{g(row, 'peers', 'lagrad', 'split', 'ratio'):.1%}"] for row in r["rows"]]
    out += ["Compile: text/graph → first forward / first gradient result (build + trace + compile + one "
            "run; PyTorch is eager: its first call). lagrad's gradient split into its own work (load, "
            "elaborate, derive the adjoint, generate its source; not the primal program, which `f.grad` "
            "does not build; the median of five builds from fresh copies of the text, each after an untimed "
            "garbage collection of the process), JAX tracing and "
            "XLA compilation (once), in CPU time like the runtimes (wall time in data/*.json):", "",
            markdown_table(hdr, rows), ""]
    errs = [[row["n"]] + [f"{g(row, 'peers', p, 'err'):.1e}" if g(row, 'peers', p, 'err') == g(row, 'peers', p, 'err')
                          else "—" for p in ps] for row in r["rows"]]
    out += ["Gradient agreement (relative 2-norm difference from jax.grad's, or lagrad's where jax.grad "
            "is absent):", "", markdown_table(["n"] + ps, errs), ""]
    after = [row for row in r["rows"] if row.get("after")]
    if after:
        names = list(after[0]["after"])
        out += ["Timed after the peers, in their own rounds:", "",
                markdown_table(["n"] + names + ["lagrad BLR grad ÷ dense grad"],
                               [[row["n"]] + [fmt_s(row["after"].get(k, NAN)) for k in names] +
                                [fr(ratio(tm(row, "lagrad", "grad"), row.get("after_cpu", row["after"]).get(names[-1], NAN)), 3)]
                                for row in after]), ""]
    sk = {}
    for row in r["rows"]:
        for p, why in row.get("skipped", {}).items():
            sk.setdefault((p, why), []).append(row["n"])
    if sk:
        out += ["Not measured:", ""] + [f"- {p} (n = {', '.join(map(str, ns))}): {why}" for (p, why), ns in sk.items()] + [""]
    return out


def krylov_section(r) -> list:
    out = [f"### {r['title']}", "", r.get("note", ""), ""]
    for solver in ("cg", "gmres"):
        rs = [x for x in r["rows"] if x["solver"] == solver]
        if not rs:
            continue
        names = list(rs[0]["peers"])
        hdr = ["maxiter", "inner steps"] + [f"{k} grad" for k in names] + [f"{k} memory" for k in names] + [
            "lagrad grad÷fwd"]
        rows = [[x["maxiter"], x["steps"]] + [fmt_s(tm(x, k, "grad")) for k in names] +
                [fmb(g(x, "peers", k, "xla_mem")) if not k.startswith(("PyTorch", "PyTensor")) else
                 fmb(g(x, "peers", k, "rss")) + " (RSS)" for k in names] +
                [fr(ratio(tm(x, "lagrad", "grad"), tm(x, "lagrad", "fwd")))] for x in rs]
        out += [f"**{solver}** — gradient time (CPU-time median) and memory (XLA temp + output of the jitted gradient; "
                "PyTorch, PyTensor: peak RSS growth):", "", markdown_table(hdr, rows), ""]
        errs = [[x["maxiter"]] + [f"{g(x, 'peers', k, 'err'):.1e}" + ("" if g(x, "peers", k, "finite") else " (not finite)")
                                  for k in names] for x in rs]
        out += [f"{solver} gradients, relative difference from jax.scipy's (implicit):", "",
                markdown_table(["maxiter"] + names, errs), ""]
        sk = {why for x in rs for why in x.get("skipped", {}).values()}
        if sk:
            out += ["Not measured: " + "; ".join(sorted(sk)), ""]
    return out


def summary_table(res) -> list:
    hdr = ["case", "n"] + [f"{p}" for p in PEER_ORDER if p != "lagrad"]
    rows = []
    for k, r in res.items():
        if k == "krylov":
            for solver in ("cg", "gmres"):
                rs = [x for x in r["rows"] if x["solver"] == solver]
                if rs:
                    x = rs[-1]
                    un = ratio(tm(x, "unrolled JAX (jax.grad)", "grad"), tm(x, "lagrad", "grad"))
                    rows.append([f"{solver} (maxiter {x['maxiter']})", x["n"], f"{fr(un)} (unrolled)", "—"] +
                                [fr(ratio(tm(x, p, "grad"), tm(x, "lagrad", "grad")))
                                 for p in ("PyTorch (unrolled, autograd)", "PyTensor (scan, unrolled)",
                                           "PyTensor JAX (scan)")])
            continue
        row = r["rows"][-1]
        lg = tm(row, "lagrad", "grad")
        rows.append([k, row["n"]] + [fr(ratio(tm(row, p, "grad"), lg)) for p in PEER_ORDER if p != "lagrad"])
    return [markdown_table(hdr, rows)]


# ---- plots --------------------------------------------------------------------------------------
STYLE = {"lagrad": ("C0", "o"), "jax.grad": ("C1", "s"), "JAX custom_vjp": ("C2", "^"), "PyTorch": ("C3", "v"),
         "PyTensor": ("C4", "D"), "PyTensor JAX": ("C5", "x")}


def _plot_case(ax, r):
    if r["case"] == "krylov":
        for solver, ls in (("cg", "-"), ("gmres", "--")):
            rs = [x for x in r["rows"] if x["solver"] == solver]
            for k in rs[0]["peers"] if rs else []:
                xs = [x["maxiter"] for x in rs]
                ys = [tm(x, k, "grad") for x in rs]
                ax.plot(xs, ys, ls, marker="o", ms=3, label=f"{solver}: {k}")
        ax.set_xlabel("maxiter")
    else:
        for p in present(r):
            xs = [row["n"] for row in r["rows"] if tm(row, p, "grad") == tm(row, p, "grad")]
            ys = [tm(row, p, "grad") for row in r["rows"] if tm(row, p, "grad") == tm(row, p, "grad")]
            c, m = STYLE.get(p, ("k", "."))
            ax.plot(xs, ys, "-", color=c, marker=m, ms=4, label=f"{p} grad")
        xs = [row["n"] for row in r["rows"]]
        ax.plot(xs, [tm(row, "lagrad", "fwd") for row in r["rows"]], ":", color="C0", label="lagrad forward")
        ax.set_xlabel("n")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import NullFormatter
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("CPU seconds per call")
    ax.set_title(r["case"])
    ax.grid(True, which="both", alpha=0.3)


def plots(res, plot_dir) -> list:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    plot_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for k, r in res.items():
        fig, ax = plt.subplots(figsize=(6, 4.2))
        _plot_case(ax, r)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plot_dir / f"{k}.png", dpi=110)
        plt.close(fig)
        made.append(f"{k}.png")
    ks = list(res)
    if ks:
        cols = 4
        rows = math.ceil(len(ks) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
        for ax, k in zip(axes.flat, ks):
            _plot_case(ax, res[k])
            ax.set_ylabel("")
            if k == "krylov":
                ax.legend(fontsize=5)
        for ax in list(axes.flat)[len(ks):]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower right", fontsize=8)
        fig.suptitle("gradient CPU time per call (s) vs size, log-log; lagrad forward dotted")
        fig.tight_layout()
        fig.savefig(plot_dir / "overview.png", dpi=90)
        plt.close(fig)
        made.append("overview.png")
    return made
