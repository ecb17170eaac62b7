"""Measurement for ``python -m benchmarks``: one case at one size, every peer side by side in one
process (forward and gradient of each, interleaved rounds, medians), plus compile time, memory
and the gradients' agreement. Results are plain dicts, saved as JSON per case (so cases can run
in separate processes and the report is assembled from whatever has been measured)."""
from __future__ import annotations

from . import peers  # noqa: I001  (thread pinning and XLA flags first)

import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from . import common  # noqa: E402
from .common import Contender, interleaved, warm_up  # noqa: E402
from .peers import PEERS, build_jax, build_lagrad, build_pytensor, build_torch, have, rel_err, rss_growth  # noqa: E402

NEEDS = {"PyTorch": "torch", "PyTensor": "pytensor", "PyTensor JAX": "pytensor"}


def available(peer: str) -> bool:
    return peer not in NEEDS or have(NEEDS[peer])


def _first_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg[:160]}"


def build_peer(case, peer, n, args):
    wrt = case.wrt_idx()
    if peer == "lagrad":
        return build_lagrad(case.la, case.model, args, case.wrt, case.fixed_dims(n) if case.fixed_dims else None)
    impl = case.impls.get(peer, "not written")
    if isinstance(impl, str):
        raise LookupError(impl)
    loss = impl(args)
    if peer in ("jax.grad", "JAX custom_vjp"):
        return build_jax(peer, loss, args, wrt)
    if peer == "PyTorch":
        return build_torch(loss, args, wrt)
    return build_pytensor(peer, loss, args, wrt)


# a timed sample repeats one contender's call until it lasts about this long (--min-sample): a
# single call timed right after another library's call runs with cold caches (the Kalman gradient
# at n = 16: 1.6–2.0 ms after a PyTorch call, 1.27 ms warm), which a training loop calling the same
# gradient again and again does not see
MIN_SAMPLE_S = 1e-2
# and before each timed sample the contender runs untimed for about this long, at least one call
# (--settle): right after a PyTensor call, lagrad's Kalman gradient at n = 8 takes 3.1, 2.8, 2.7,
# 2.5 ms for its next calls and 1.6 ms from the fifth on; the 10 ms sample alone absorbed too little
# of that (lagrad ÷ custom_vjp 0.95 in the run against 0.73 with the settle, and 0.72–0.74 alone)
SETTLE_S = 1e-2


def run_rounds(cs, reps: int, budget_s: float):
    """warm_up, one timed round to learn its cost, then as many more as `budget_s` allows
    (at least 2 more, at most reps − 1)."""
    warm_up(cs, MIN_SAMPLE_S, SETTLE_S)
    t0 = time.perf_counter()
    interleaved(cs, 1)
    round_s = time.perf_counter() - t0
    more = int(max(2, min(reps - 1, budget_s / max(round_s, 1e-9))))
    interleaved(cs, more)
    return 1 + more


def cpu_median(c) -> float:
    """The CPU-time median; NaN off the CPU backend (a GPU's work is not this process's CPU time,
    so the report then falls back to wall time)."""
    if jax.default_backend() != "cpu":
        return float("nan")
    return statistics.median(c.cpu_samples)


def measure(case, n: int, peer_names, reps: int, budget_s: float, log=print) -> dict:
    args = case.inputs(n)
    built, skipped = {}, {}
    for peer in peer_names:
        if not available(peer):
            skipped[peer] = f"{NEEDS[peer]} not installed"
            continue
        if n > case.max_n.get(peer, math.inf):
            skipped[peer] = f"not run above n = {case.max_n[peer]} (too slow)"
            continue
        try:
            built[peer] = build_peer(case, peer, n, args)
        except LookupError as e:
            skipped[peer] = str(e.args[0]) if e.args else "not available"
        except Exception as e:      # noqa: BLE001  (a peer that cannot do the job is recorded)
            skipped[peer] = "fails: " + _first_line(e)
    row = dict(n=n, peers={}, skipped=skipped, after={})
    ref_peer = "jax.grad" if "jax.grad" in built else "lagrad"
    ref_g, ref_v = None, None
    if ref_peer in built:
        ref_g = built[ref_peer].grad()
        ref_v = float(np.asarray(built[ref_peer].fwd()))
    for p, b in list(built.items()):
        try:
            err = rel_err(b.grad(), ref_g) if ref_g is not None else float("nan")
            v = b.fwd()
            v = float(np.asarray(v.detach() if hasattr(v, "detach") else v))
            verr = abs(v - ref_v) / max(abs(ref_v), 1e-300)
        except Exception as e:      # noqa: BLE001
            skipped[p] = "fails when run: " + _first_line(e)
            del built[p]
            continue
        row["peers"][p] = dict(err=err, value_err=verr, compile_fwd=b.compile_fwd, compile_grad=b.compile_grad,
                               split=b.split, xla_mem=b.xla_mem, rss=rss_growth(b.grad), note=b.note)
    cs = []
    for p, b in built.items():
        cs += [Contender(f"{p}|fwd", b.fwd), Contender(f"{p}|grad", b.grad)]
    if cs:
        row["rounds"] = run_rounds(cs, reps, budget_s)
        for c in cs:
            p, kind = c.name.split("|")
            row["peers"][p][kind] = c.median_s
            row["peers"][p][kind + "_cpu"] = cpu_median(c)
    built.clear()
    cs.clear()
    gc.collect()
    if case.after is not None:
        extra = [Contender(name, fn) for name, fn in case.after(n, args)]
        run_rounds(extra, reps, budget_s)
        row["after"] = {c.name: c.median_s for c in extra}
        row["after_cpu"] = {c.name: cpu_median(c) for c in extra}
        extra.clear()
        gc.collect()
    line = ", ".join(f"{p} {common.fmt_s(r.get('grad', float('nan')))}" for p, r in row["peers"].items())
    log(f"  {case.name} n={n}: grad {line}" + (f"; skipped {list(skipped)}" if skipped else ""))
    return row


def run_case(case, peer_names, reps, budget_s, log=print) -> dict:
    rows = []
    for n in case.sizes:
        rows.append(measure(case, n, peer_names, reps, budget_s, log=log))
    return dict(case=case.name, title=case.title, note=case.note, wrt=case.wrt, rows=rows)


# ---- Krylov: time and memory against the iteration count ----------------------------------------
def run_krylov(n, maxiters, reps, budget_s, peer_names, log=print) -> dict:
    from . import bench_krylov as bk
    from . import krylov_peers as kp
    bk.RESTART = 30 if n >= 100 else 4
    rows = []
    pt_solvers = {}                       # PyTensor: one compiled graph per solver, steps as inputs
    for M in maxiters:
        mods = bk.lagrad_models(n, M)
        for solver in ("cg", "gmres"):
            theta, b = bk.problem(solver, n)
            f = getattr(mods, f"{solver}_loss")
            unrolled, jsp = bk.solver_fns(solver, M)
            grad_l = f.grad(["theta", "b"])
            fns = {"lagrad": (lambda: f(theta, b), lambda: grad_l(theta, b)),
                   "unrolled JAX (jax.grad)": None, "jax.scipy (implicit)": None}
            mem, first, rss = {}, {}, {}
            jit_l = jax.jit(jax.grad(f, argnums=(0, 1)))
            mem["lagrad"] = peers.xla_memory(jit_l, theta, b)
            for name, loss in (("unrolled JAX (jax.grad)", unrolled), ("jax.scipy (implicit)", jsp)):
                fj, gj = jax.jit(loss), jax.jit(jax.grad(loss, argnums=(0, 1)))
                fns[name] = (lambda fj=fj: fj(theta, b), lambda gj=gj: gj(theta, b))
                mem[name] = peers.xla_memory(gj, theta, b)
            skipped = {}
            r, cycles = bk.restart_for(M), math.ceil(M / bk.restart_for(M))
            if "PyTorch" in peer_names and available("PyTorch"):
                tl = kp.torch_cg_loss(M, bk.SHIFT) if solver == "cg" else kp.torch_gmres_loss(r, cycles)
                tb = build_torch(tl, (np.asarray(theta), np.asarray(b)), [0, 1])
                fns["PyTorch (unrolled, autograd)"] = (tb.fwd, tb.grad)
            elif "PyTorch" in peer_names:
                skipped["PyTorch"] = "PyTorch: torch not installed"
            steps = [M] if solver == "cg" else [r, cycles]
            fresh = {}                      # label -> graph build + compile, charged to its first call
            for peer, label in (("PyTensor", "PyTensor (scan, unrolled)"), ("PyTensor JAX", "PyTensor JAX (scan)")):
                if peer not in peer_names:
                    continue
                if not available(peer):
                    skipped[peer] = f"{peer}: pytensor not installed"
                    continue
                try:
                    if peer == "PyTensor JAX":      # a graph per maxiter (constant step counts)
                        built = kp.PyTensorKrylov(solver, bk.SHIFT, mode="JAX", steps=steps)
                        fresh[label] = built.compile_s
                    else:                           # one graph per solver (step counts as inputs)
                        if solver not in pt_solvers:
                            pt_solvers[solver] = kp.PyTensorKrylov(solver, bk.SHIFT)
                            fresh[label] = pt_solvers[solver].compile_s
                        built = pt_solvers[solver]
                    fns[label] = built.bind(theta, b, steps)
                except Exception as e:      # noqa: BLE001  (a peer that cannot do the job is recorded)
                    skipped[peer] = f"{peer} fails: " + _first_line(e)
            cs = []
            for name, (fw, gr) in list(fns.items()):
                t0 = time.perf_counter()
                try:
                    common.block(gr())
                except Exception as e:      # noqa: BLE001  (PyTensor's JAX backend traces on the first call)
                    skipped[name] = f"{name} fails when run: " + _first_line(e)
                    del fns[name]
                    continue
                first[name] = time.perf_counter() - t0 + fresh.get(name, 0.0)
                rss[name] = rss_growth(gr)
                cs += [Contender(f"{name}|fwd", fw), Contender(f"{name}|grad", gr)]
            ref = fns["jax.scipy (implicit)"][1]()
            errs = {name: rel_err(fns[name][1](), ref) for name in fns}
            finite = {name: bool(all(np.all(np.isfinite(g)) for g in peers.to_numpy_list(fns[name][1]())))
                      for name in fns}
            rounds = run_rounds(cs, reps, budget_s)
            res = {name: dict(err=errs[name], finite=finite[name], xla_mem=mem.get(name, float("nan")),
                              rss=rss[name], compile_grad=first[name]) for name in fns}
            for c in cs:
                name, kind = c.name.split("|")
                res[name][kind] = c.median_s
                res[name][kind + "_cpu"] = cpu_median(c)
            rows.append(dict(solver=solver, maxiter=M, steps=bk.inner_steps(solver, M), peers=res,
                             skipped=skipped, rounds=rounds, n=n))
            log(f"  krylov {solver} maxiter={M}: " + ", ".join(
                f"{k} {common.fmt_s(v['grad'])} {v['xla_mem'] / 2**20:.3g} MiB" for k, v in res.items()))
            cs.clear()
            gc.collect()
    return dict(case="krylov", title=f"cg / gmres: implicit (lagrad) vs unrolled, n = {n}, loss mean(x), "
                "gradient w.r.t. θ and b, tol = 0 (exactly maxiter iterations)", rows=rows,
                note="Operators and the unrolled/jax.scipy solvers are benchmarks/bench_krylov.py's: cg on "
                     "K = θᵀθ/n + 0.1·I, gmres(min(30, maxiter)) on K = 2θ, θ = I + 0.3·randn/√n. PyTorch and "
                     "PyTensor have no implicit-gradient Krylov solver: they run the same algorithms for the same "
                     "steps and differentiate through every iteration (benchmarks/krylov_peers.py; PyTorch: autograd "
                     "over a Python loop; PyTensor: `scan`, default mode, step counts as inputs so each solver "
                     "compiles once).")


def save(result: dict, path):
    path.parent.mkdir(parents=True, exist_ok=True)

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (np.floating, np.integer)):
            return clean(x.item())
        return x
    path.write_text(json.dumps(clean(result), indent=1), encoding="utf-8")


def machine() -> str:
    return common.machine_description() + f"\n- peers: {peers.versions()}"


def start_backend():
    jax.block_until_ready(jnp.ones(3) + 1)


__all__ = ["PEERS", "measure", "run_case", "run_krylov", "save", "machine", "start_backend"]
