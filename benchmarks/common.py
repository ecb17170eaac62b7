"""Timing helpers shared by the benchmarks.

Import this module BEFORE jax: it sets XLA_FLAGS for single-threaded, reproducible CPU timings
(keeping any flag the caller already set). Then time contenders side by side in one process:
warm-up (compile) timed separately, repetitions interleaved round-robin over the contenders,
every result blocked on (``jax.block_until_ready``) before the clock is read, medians reported.
"""
from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

SINGLE_THREAD_FLAGS = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")


def configure_xla_flags() -> str:
    """Add the single-thread flags to XLA_FLAGS unless the caller set those flags already."""
    existing = os.environ.get("XLA_FLAGS", "")
    present = {tok.lstrip("-").split("=")[0] for tok in existing.split()}
    extra = [f for f in SINGLE_THREAD_FLAGS if f.lstrip("-").split("=")[0] not in present]
    os.environ["XLA_FLAGS"] = " ".join(([existing] if existing else []) + extra)
    return os.environ["XLA_FLAGS"]


configure_xla_flags()

import jax  # noqa: E402  (after XLA_FLAGS)


def block(result):
    """Wait for every array in `result` (any pytree) to be computed."""
    return jax.block_until_ready(result)


def timed(fn: Callable[[], object]) -> tuple:
    """(seconds, result) of one call, blocked on its result."""
    t0 = time.perf_counter()
    out = block(fn())
    return time.perf_counter() - t0, out


@dataclass
class Contender:
    """One thing to time: `fn()` runs it once on fixed inputs."""
    name: str
    fn: Callable[[], object]
    first_call_s: float = float("nan")      # the warm-up: trace + compile + one run
    number: int = 1                         # calls per timed sample
    settle: int = 0                         # untimed calls right before each timed sample
    samples: list = field(default_factory=list)        # wall seconds per call, one per sample
    cpu_samples: list = field(default_factory=list)    # this process's CPU seconds per call

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples)


def warm_up(contenders, min_sample_s: float = 1e-3, settle_s: float = 0.0):
    """Time each first call (compile), then choose calls per sample so a sample lasts ≳ min_sample_s,
    and the untimed calls before each sample so they last ≳ settle_s (at least one if settle_s > 0)."""
    for c in contenders:
        c.first_call_s, _ = timed(c.fn)
        once = min(timed(c.fn)[0] for _ in range(3))
        c.number = max(1, int(min_sample_s / max(once, 1e-9)))
        c.settle = max(1, math.ceil(settle_s / max(once, 1e-9))) if settle_s > 0 else 0


def interleaved(contenders, reps: int):
    """`reps` rounds; each round times every contender once (order rotated per round), right after
    `c.settle` untimed calls: the sample then does not pay for the caches and predictors the previous
    contender (another library's code) left behind. Each sample records wall time and the process's
    CPU time: on a shared machine a single-threaded computation's CPU time is not inflated by other
    processes taking the core, its wall time is."""
    k = len(contenders)
    for r in range(reps):
        for c in contenders[r % k:] + contenders[:r % k]:
            for _ in range(c.settle):
                block(c.fn())
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(c.number):
                block(c.fn())
            c.samples.append((time.perf_counter() - t0) / c.number)
            c.cpu_samples.append((time.process_time() - c0) / c.number)
    return contenders


def fmt_s(s: float) -> str:
    """A duration with a unit that keeps three significant digits readable."""
    if s != s:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale or unit == "µs":
            return f"{s / scale:.3g} {unit}"


def markdown_table(headers, rows) -> str:
    cells = [list(map(str, headers))] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"
    return "\n".join([line(cells[0]), "| " + " | ".join("-" * w for w in widths) + " |"]
                     + [line(r) for r in cells[1:]])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for ln in fh:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_description() -> str:
    import jaxlib
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cpus = []
    return "\n".join([
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- platform: {platform.platform()}, Python {platform.python_version()}",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical CPUs; this process may run on {cpus or 'all'})",
        f"- jax {jax.__version__}, jaxlib {jaxlib.__version__}, devices {[str(d) for d in jax.devices()]}",
        f"- XLA_FLAGS: `{os.environ.get('XLA_FLAGS', '')}`",
    ])


def publish(lines, out) -> str:
    """Print the report (a list of markdown lines) and write it to `out` unless that is None."""
    report = "\n".join(lines) + "\n"
    print(report)
    if out is not None:
        out.write_text(report, encoding="utf-8")
        print(f"(written to {out})")
    return report
