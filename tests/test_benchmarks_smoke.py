"""The benchmark script runs end to end in its --quick mode (tiny sizes). No timing is asserted:
timings belong in benchmarks/RESULTS_core.md, not in tests."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_bench_core_quick(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    out = tmp_path / "results.md"
    r = subprocess.run([sys.executable, "-m", "benchmarks.bench_core", "--quick", "--n-frechet", "4",
                        "--n-inv", "6", "--chain", "8", "--reps", "2", "--out", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    report = out.read_text(encoding="utf-8")
    for heading in ("## 1. frechet_inverse", "## 2. mean(inv(2θ) @ b)", "## 3. Compile time", "XLA_FLAGS"):
        assert heading in report


def test_bench_qr_quick(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    out = tmp_path / "results_qr.md"
    r = subprocess.run([sys.executable, "-m", "benchmarks.bench_qr", "--quick", "--sizes", "4", "--reps", "2",
                        "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    report = out.read_text(encoding="utf-8")
    for heading in ("## Summary", "## Results", "XLA_FLAGS", "| square | 4×4", "| tall   | 8×4", "| wide   | 4×8"):
        assert heading in report
    assert "agree with jax.grad to 1e-8 relative: yes" in report


def test_bench_lyap_quick(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    out = tmp_path / "results_lyap.md"
    r = subprocess.run([sys.executable, "-m", "benchmarks.bench_lyap", "--quick", "--sizes", "6", "--reps", "2",
                        "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    report = out.read_text(encoding="utf-8")
    for heading in ("## Summary", "## Times", "v&g ÷ forward (jitted)", "XLA_FLAGS"):
        assert heading in report


def test_bench_blr_quick(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    out = tmp_path / "results_blr.md"
    r = subprocess.run([sys.executable, "-m", "benchmarks.bench_blr", "--quick", "--sizes", "16", "--configs", "4:2",
                        "--reps", "2", "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    report = out.read_text(encoding="utf-8")
    for heading in ("## Summary", "## Times", "grad: BLR ÷ dense", "| 16 | 4 / 2 (p = 4)", "XLA_FLAGS"):
        assert heading in report


def test_bench_krylov_quick(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    out = tmp_path / "results_krylov.md"
    r = subprocess.run([sys.executable, "-m", "benchmarks.bench_krylov", "--quick", "--n", "24", "--maxiters", "4",
                        "12", "--reps", "2", "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    report = out.read_text(encoding="utf-8")
    for heading in ("## Summary", "## cg", "## gmres", "memory lagrad", "memory unrolled", "XLA_FLAGS"):
        assert heading in report
    assert report.count("lagrad's gradient working memory stays flat") == 2
