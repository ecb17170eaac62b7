"""The peers of the side-by-side benchmark (``python -m benchmarks``) and how each one is run.

Import this module first (before numpy, jax, torch or pytensor): it pins every BLAS / OpenMP
pool to one thread and sets XLA's single-thread flags (through benchmarks.common), so all peers
compute on the same single core.

Peers: lagrad; ``jax.grad`` of the same pipeline in jax.numpy; hand-written JAX with
``jax.custom_vjp``; PyTorch CPU autograd; PyTensor in its default mode and with ``mode="JAX"``.
Each case gives, per peer, a loss function; this module turns it into a forward callable and a
gradient callable (both on fixed inputs), times the build + first call (compile), and measures
memory.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
           "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

from . import common  # noqa: E402,I001  (XLA_FLAGS before jax)

import contextlib  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from typing import NamedTuple  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import lagrad  # noqa: E402  (x64 on)

PEERS = ["lagrad", "jax.grad", "JAX custom_vjp", "PyTorch", "PyTensor", "PyTensor JAX"]
_unique = [0]


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def torch_mod():
    import torch
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:            # already set (can be set once per process)
        pass
    return torch


def pytensor_mode_name() -> str:
    import pytensor
    from pytensor.compile.mode import get_default_mode
    m = get_default_mode()
    return f"mode={pytensor.config.mode!r} → {type(m.linker).__name__}"


def versions() -> str:
    parts = [f"lagrad (this tree), jax {jax.__version__}"]
    if have("torch"):
        parts.append(f"torch {torch_mod().__version__} (threads {torch_mod().get_num_threads()})")
    else:
        parts.append("torch not installed")
    if have("pytensor"):
        import pytensor
        parts.append(f"pytensor {pytensor.__version__} (default {pytensor_mode_name()})")
    else:
        parts.append("pytensor not installed")
    parts.append("BLAS/OpenMP threads: " + ", ".join(f"{v}={os.environ[v]}" for v in
                                                     ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")))
    return "; ".join(parts)


# ---- memory ---------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="utf-8") as fh:
        for ln in fh:
            if ln.startswith(field + ":"):
                return int(ln.split()[1])
    return -1


def rss_growth(fn) -> float:
    """Peak resident-set growth (bytes) during one call of `fn`: VmHWM after resetting it through
    /proc/self/clear_refs, minus VmRSS before. Memory an allocator already holds (a pool, a freed
    heap chunk it reuses) is not counted, so this is a lower bound on the call's working memory;
    NaN where /proc is not available."""
    try:
        before = _status_kb("VmRSS")
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as fh:
            fh.write("5")
        common.block(fn())
        return max(0, _status_kb("VmHWM") - before) * 1024.0
    except OSError:
        return float("nan")


def xla_memory(jitted, *args) -> float:
    """temp + output bytes of XLA's compiled memory analysis (what bench_krylov reports)."""
    try:
        ma = jitted.lower(*args).compile().memory_analysis()
    except Exception:               # noqa: BLE001  (a backend without the analysis)
        return float("nan")
    if ma is None:
        return float("nan")
    return float(ma.temp_size_in_bytes + ma.output_size_in_bytes)


# ---- building each peer's (forward, gradient) -------------------------------------------------
class Built:
    """One peer at one size: fwd() and grad() on fixed inputs, compile times, memory."""

    def __init__(self, peer, fwd, grad, compile_fwd, compile_grad, split=None, xla_mem=float("nan"),
                 note=""):
        self.peer, self.fwd, self.grad = peer, fwd, grad
        self.compile_fwd, self.compile_grad = compile_fwd, compile_grad
        self.split = split or {}
        self.xla_mem = xla_mem
        self.note = note


def _clock(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


class Span(NamedTuple):
    """One phase's duration, wall clock and process CPU time (seconds)."""
    wall: float
    cpu: float


def _clock_both(fn):
    """(Span, result): the split of lagrad's compile is compared in CPU time, like the runtimes
    (the machine is shared; each phase runs on one thread), and summed in wall time."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return Span(time.perf_counter() - t0, time.process_time() - c0), out


OWN_REPEATS = 5            # independent text → adjoint-program builds; lagrad's own work is their median


def build_lagrad(text: str, model: str, args, wrt_names, fixed_dims=None) -> Built:
    """Text → callables, split: lagrad's own work (parse, elaborate, derive the adjoint, generate
    the source), then JAX tracing (lower) and XLA compilation of the gradient program, then the
    first calls."""
    if _unique[0] == 0:             # one-time process start-up (parser tables, imports), not per model
        lagrad.loads("model warm(x: f64[n]) -> f64 {\n    return sum(x * x)\n}\n", name="warm.la").warm.grad()(
            np.ones(2))
    args = tuple(jnp.asarray(a) for a in args)        # device arrays, as the JAX peers get

    def own_work():
        """Text → the gradient's generated program, from a text never seen before (lagrad
        caches by text): (load, elaborate, adjoint + codegen) seconds, and what they built."""
        _unique[0] += 1
        src = text + f"\n# benchmark copy {_unique[0]} {time.time_ns()}\n"
        # untimed: a full collection that the cases before left due (PyTensor's graphs, the
        # peers' executables: ~750k objects) would otherwise land in this build, right where
        # lagrad's paused collector resumes; Kalman at n = 8 after the dlyap and lyap cases took
        # 0.47 s of own work that way, 0.32 s after a collection, 0.33 s in a fresh process
        gc.collect()
        t_load, mod = _clock_both(lambda: lagrad.loads(src, name=f"{model}.la"))
        f = mod[model]
        if fixed_dims:
            f = f.specialize(**fixed_dims)
        idx, _ = f._wrt(list(wrt_names))
        t_own, c = _clock_both(lambda: f._static())
        t_adj, _ = _clock_both(lambda: c.jax_fn(("adjoint", idx, False), lambda: c.adjoint(idx, False)))
        return (t_load, t_own, t_adj), (f, c)

    # the median (in CPU time) of OWN_REPEATS builds: one build is a single sample of a few hundred
    # ms on a shared machine (a stray 100 ms pause was seen); XLA is asked once (seconds, and costly)
    builds = [own_work() for _ in range(OWN_REPEATS)]
    (t_load, t_own, t_adj), (f, c) = sorted(builds, key=lambda b: sum(t.cpu for t in b[0]))[
        len(builds) // 2]
    t_prog, fwd_j = _clock(lambda: c.jax_fn(("primal",), c.primal))
    # the gradient as it runs on device arrays: one jax.jit of lagrad's call (binding, then the
    # generated adjoint program inlined), traced and compiled ahead of time here; the
    # first call below reuses that compilation
    grad = f.grad(list(wrt_names))
    t_trace, lowered = _clock_both(lambda: grad._jitted.lower(*args))
    t_xla, compiled = _clock_both(lambda: lowered.compile())
    ma = compiled.memory_analysis()
    mem = float(ma.temp_size_in_bytes + ma.output_size_in_bytes) if ma is not None else float("nan")
    t_f1, _ = common.timed(lambda: f(*args))
    t_g1, _ = common.timed(lambda: grad(*args))
    # the gradient's own work: text → the generated adjoint program (the primal program, made
    # above for the forward timings, is not part of it: f.grad never builds it)
    own = t_load.wall + t_own.wall + t_adj.wall
    own_cpu = t_load.cpu + t_own.cpu + t_adj.cpu
    split = dict(load=t_load.wall, ir=t_own.wall + t_adj.wall, own=own, primal=t_prog, trace=t_trace.wall,
                 xla=t_xla.wall, own_cpu=own_cpu, trace_cpu=t_trace.cpu, xla_cpu=t_xla.cpu,
                 ratio=own_cpu / t_xla.cpu if t_xla.cpu > 0 else float("nan"))
    # the first gradient call reuses the executable compiled just above (JAX caches it), so the
    # text → first gradient time is lagrad's own work + tracing + XLA compilation + that call
    return Built("lagrad", lambda: f(*args), lambda: grad(*args), t_load.wall + t_own.wall + t_prog + t_f1,
                 own + t_trace.wall + t_xla.wall + t_g1, split=split, xla_mem=mem)


def build_jax(peer: str, loss, args, wrt) -> Built:
    jargs = tuple(jnp.asarray(a) for a in args)
    fj = jax.jit(loss)
    gj = jax.jit(jax.grad(loss, argnums=tuple(wrt)))
    t_f1, _ = common.timed(lambda: fj(*jargs))
    t_g1, _ = common.timed(lambda: gj(*jargs))
    return Built(peer, lambda: fj(*jargs), lambda: gj(*jargs), t_f1, t_g1, xla_mem=xla_memory(gj, *jargs))


def build_torch(loss, args, wrt) -> Built:
    torch = torch_mod()
    targs = [torch.from_numpy(np.array(a, dtype=np.float64)) for a in args]

    def fwd():
        with torch.no_grad():
            return loss(*targs)

    def grad():
        leaves = [t.detach().requires_grad_(True) if i in wrt else t for i, t in enumerate(targs)]
        out = loss(*leaves)
        return torch.autograd.grad(out, [leaves[i] for i in wrt])
    t_f1, _ = _clock(fwd)
    t_g1, _ = _clock(grad)
    return Built("PyTorch", fwd, grad, t_f1, t_g1, note="eager: first call, no compilation")


class _Count(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.failures = 0

    def emit(self, record):
        self.failures += record.getMessage().startswith("Rewrite failure")


@contextlib.contextmanager
def _quiet_rewrites():
    """PyTensor logs a rewrite that raises inside its graph optimizer (with the traceback) at
    ERROR and goes on without it: counted here instead of printed (a run's stderr stays
    readable); the count goes into the peer's note."""
    log = logging.getLogger("pytensor.graph.rewriting.basic")
    h, propagate = _Count(), log.propagate
    log.addHandler(h)
    log.propagate = False
    try:
        yield h
    finally:
        log.removeHandler(h)
        log.propagate = propagate


def build_pytensor(peer: str, symbolic, args, wrt) -> Built:
    """`symbolic(*vars) -> cost` builds the graph; pytensor.function compiles value and gradient."""
    import pytensor
    import pytensor.tensor as pt
    mode = "JAX" if peer == "PyTensor JAX" else None
    with _quiet_rewrites() as rewrites:
        t0 = time.perf_counter()
        vs = [pt.dscalar(f"a{i}") if np.ndim(a) == 0 else pt.tensor(f"a{i}", dtype="float64", shape=(None,) * np.ndim(a))
              for i, a in enumerate(args)]
        cost = symbolic(*vs)
        gs = pytensor.grad(cost, [vs[i] for i in wrt])
        ff = pytensor.function(vs, cost, mode=mode)
        t_fb = time.perf_counter() - t0
        t1 = time.perf_counter()
        gf = pytensor.function(vs, gs, mode=mode)
        t_gb = time.perf_counter() - t1
    nargs = [np.asarray(a, dtype=np.float64) for a in args]
    t_f1, _ = common.timed(lambda: ff(*nargs))
    t_g1, _ = common.timed(lambda: gf(*nargs))
    note = "graph + pytensor.function compile + first call"
    if rewrites.failures:
        note += f"; PyTensor's optimizer skipped {rewrites.failures} rewrite(s) that raised"
    return Built(peer, lambda: ff(*nargs), lambda: gf(*nargs), t_fb + t_f1, t_gb + t_g1, note=note)


def to_numpy_list(g) -> list:
    if isinstance(g, (tuple, list)):
        return [np.asarray(x.detach().numpy() if hasattr(x, "detach") else x, dtype=float) for x in g]
    return [np.asarray(g.detach().numpy() if hasattr(g, "detach") else g, dtype=float)]


def rel_err(g, ref) -> float:
    a, b = to_numpy_list(g), to_numpy_list(ref)
    num = sum(float(np.sum((x - y) ** 2)) for x, y in zip(a, b))
    den = sum(float(np.sum(y ** 2)) for y in b)
    return float(np.sqrt(num / max(den, 1e-300)))
