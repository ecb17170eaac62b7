"""Every benchmark script runs end to end in its --quick mode (tiny sizes). No timing is
asserted: timings belong in benchmarks/RESULTS_*.md, not in tests."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# module, extra arguments, what the report must contain
CASES = [
    ("bench_core", ["--n-frechet", "4", "--n-inv", "6", "--chain", "8"],
     ["## 1. frechet_inverse", "## 2. mean(inv(2θ) @ b)", "## 3. Compile time"]),
    ("bench_expm", ["--sizes", "5", "--scales", "1"], ["## Summary", "## Times", "lagrad ÷ jax.grad"]),
    ("bench_qr", ["--sizes", "4"],
     ["## Summary", "## Results", "| square | 4×4", "| tall   | 8×4", "| wide   | 4×8",
      "agree with jax.grad to 1e-8 relative: yes"]),
    ("bench_lyap", ["--sizes", "6"], ["## Summary", "## Times", "v&g ÷ forward (jitted)"]),
    ("bench_blr", ["--sizes", "16", "--configs", "4:2"],
     ["## Summary", "## Times", "grad: BLR ÷ dense", "| 16 | 4 / 2 (p = 4)"]),
    ("bench_krylov", ["--n", "24", "--maxiters", "4", "12"],
     ["## Summary", "## cg", "## gmres", "memory lagrad", "memory unrolled"]),
]


@pytest.mark.parametrize("module,args,expected", CASES, ids=[c[0] for c in CASES])
def test_benchmark_quick(module, args, expected, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    out = tmp_path / f"{module}.md"
    r = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--quick", *args, "--reps", "2",
                        "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    report = out.read_text(encoding="utf-8")
    for text in expected + ["XLA_FLAGS"]:
        assert text in report
    if module == "bench_krylov":
        assert report.count("lagrad's gradient working memory stays flat") == 2


def test_peer_runner_quick(tmp_path):
    """`python -m benchmarks --quick` (the side-by-side runner) on two small cases; peers that are
    not installed (CI installs only `.[test]`) are recorded as such, not failed. PyTensor is left
    out here: its first (Numba) compilation alone takes tens of seconds. lagrad runs without
    being named (every ratio is against it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--cases", "frechet_inverse,solve",
                        "--peers", "jax.grad,JAX custom_vjp,PyTorch", "--sizes", "6", "--reps", "2",
                        "--budget", "0.1", "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    report = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    for text in ["## Targets", "## Summary", "### frechet_inverse", "### implicit solve", "XLA_FLAGS",
                 "lagrad gradient within 1.1× of jax.grad"]:
        assert text in report
    assert (tmp_path / "data" / "solve.json").exists()
    rows = json.loads((tmp_path / "data" / "solve.json").read_text(encoding="utf-8"))["rows"]
    assert all({"lagrad", "jax.grad", "JAX custom_vjp"} <= set(row["peers"]) for row in rows)
    try:
        import torch  # noqa: F401
    except ImportError:
        assert "torch not installed" in report


@pytest.mark.parametrize("solver", ["cg", "gmres"])
def test_torch_krylov_peers_differentiate_the_same_iteration_as_unrolled_jax(solver):
    """The PyTorch Krylov peers (benchmarks/krylov_peers.py) run the unrolled JAX solvers'
    algorithm: same loss and gradient for the same steps (before convergence, where the two
    differ from the implicit gradient)."""
    torch = pytest.importorskip("torch")
    import jax
    import numpy as np

    from benchmarks import bench_krylov as bk
    from benchmarks import krylov_peers as kp
    n, M, r = 16, 6, 3
    theta, b = bk.problem(solver, n)
    if solver == "cg":
        jloss = lambda th, b: bk.cg_unrolled(bk.cg_op(th), b, M).mean()          # noqa: E731
        tloss = kp.torch_cg_loss(M, bk.SHIFT)
    else:
        jloss = lambda th, b: bk.gmres_unrolled(bk.gmres_op(th), b, r, M // r).mean()   # noqa: E731
        tloss = kp.torch_gmres_loss(r, M // r)
    val, grads = jax.value_and_grad(jloss, argnums=(0, 1))(theta, b)
    tt, tb = (torch.tensor(np.asarray(a), requires_grad=True) for a in (theta, b))
    out = tloss(tt, tb)
    tg = torch.autograd.grad(out, [tt, tb])
    assert abs(out.item() - float(val)) <= 1e-12 * abs(float(val))
    for g, t in zip(grads, tg):
        np.testing.assert_allclose(t.numpy(), np.asarray(g), rtol=1e-9, atol=1e-12)


def test_peer_runner_refuses_an_unknown_peer():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--cases", "solve", "--peers", "jax.grad,numba"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "unknown peer(s) ['numba']" in r.stderr, r.stdout + r.stderr
