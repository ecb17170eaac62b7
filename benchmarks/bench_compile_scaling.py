"""Compile time of a model against its length: text → first call, for 100 … 10 000 statements.

Each size gets a fresh model (a distinct text, so no cache is hit) whose body is N statements
cycling through a matrix–vector product, an elementwise function and scaled sums. Times, in
seconds: `parse` (text → AST), `load` (lagrad.loads: parse, elaboration, type checks, the
canonical passes), `first call` (lowering, code generation, JAX tracing and XLA compilation,
one run) and `grad first call` (the derived adjoint, the same stages). Linear scaling shows as a
flat per-statement cost.

Not a comparison between peers: run pinned to one core, e.g.
    taskset -c 0 python -m benchmarks.bench_compile_scaling [--sizes 100 300 1000 3000 10000]
and the results go to benchmarks/RESULTS_compile_scaling.md (--out to change).
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

FORMS = ("y = A @ y * 0.1 + x", "y = tanh(y) + 0.5 * x", "y = y * 0.9 - 0.01 * x", "z = z + sum(y)")


def model_text(n_stmts: int) -> str:
    body = "".join(f"    {FORMS[k % len(FORMS)]}\n" for k in range(n_stmts))
    return (f"# {n_stmts} statements\nmodel chain(A: f64[n, n], x: f64[n]) -> f64 {{\n"
            f"    y = x\n    z = 0\n{body}    return z + sum(y)\n}}\n")


def measure(n_stmts: int, grad: bool = True) -> dict:
    import lagrad
    from lagrad.dsl import parse
    text = model_text(n_stmts)
    rng = np.random.default_rng(0)
    A, x = rng.standard_normal((8, 8)) / 8, rng.standard_normal(8)
    t0 = time.perf_counter()
    parse(text, path=f"chain{n_stmts}.la")
    t1 = time.perf_counter()
    f = lagrad.loads(text, name=f"chain{n_stmts}.la").chain
    t2 = time.perf_counter()
    np.asarray(f(A, x))
    t3 = time.perf_counter()
    row = {"statements": n_stmts, "equations": len(f.program.eqns), "parse": t1 - t0,
           "load": t2 - t1, "first call": t3 - t2}
    if grad:
        t4 = time.perf_counter()
        np.asarray(f.grad("A")(A, x))
        row["grad first call"] = time.perf_counter() - t4
    row["total"] = row["load"] + row["first call"] + row.get("grad first call", 0.0)
    return row


def report(rows) -> str:
    cols = ["statements", "equations", "parse", "load", "first call", "grad first call", "total"]
    lines = ["| " + " | ".join(cols) + " | ms per statement (total) |",
             "|" + "---|" * (len(cols) + 1)]
    for r in rows:
        cells = [str(r[c]) if c in ("statements", "equations") else f"{r.get(c, float('nan')):.2f}" for c in cols]
        lines.append("| " + " | ".join(cells) + f" | {1e3 * r['total'] / r['statements']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000, 10000])
    ap.add_argument("--no-grad", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_compile_scaling.md")))
    a = ap.parse_args(argv)
    import jax
    rows = []
    for n in a.sizes:
        rows.append(measure(n, grad=not a.no_grad))
        print(rows[-1], flush=True)
    table = report(rows)
    print(table)
    if a.out and a.out != "-":
        big, small = rows[-1], rows[0]
        ratio = (big["total"] / big["statements"]) / (small["total"] / small["statements"])
        Path(a.out).write_text(
            "# Compile time against model length\n\n"
            "`python -m benchmarks.bench_compile_scaling`, pinned to one core (`taskset -c 0`) on a "
            "machine shared with other jobs; not a comparison between peers, only the shape of the "
            "curve. Each row is a fresh model of N statements (a matrix–vector product, tanh, scaled "
            "sums, in turn), n = 8. Seconds.\n\n" + table + "\n\n"
            f"Per-statement cost from {small['statements']} to {big['statements']} statements changes by "
            f"a factor {ratio:.2f} (1 = exactly linear).\n\n"
            f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
            f"JAX {jax.__version__}, {jax.devices()[0].platform}.\n")
    return rows


if __name__ == "__main__":
    main()
