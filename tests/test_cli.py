"""The command line through subprocesses: show, check, run, bench and every error path."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "implicit_solve.la"


def lagrad(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "lagrad", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_show_program_adjoint_tangent():
    r = lagrad("show", EXAMPLE)
    assert r.returncode == 0 and r.stdout.startswith("primal implicit_solve(")
    r = lagrad("show", EXAMPLE, "--adjoint")
    assert r.returncode == 0 and r.stdout.count("lu_factor") == 1 and "trans=true" in r.stdout
    assert "theta_bar" in r.stdout and "b_bar" in r.stdout
    r = lagrad("show", EXAMPLE, "--adjoint", "--wrt", "b")
    assert r.returncode == 0 and "theta_bar" not in r.stdout
    r = lagrad("show", EXAMPLE, "--tangent")
    assert r.returncode == 0 and r.stdout.startswith("tangent")


def test_show_formats(tmp_path):
    r = lagrad("show", EXAMPLE, "--adjoint", "--format", "dot")
    assert r.returncode == 0 and r.stdout.startswith("digraph")
    r = lagrad("show", EXAMPLE, "--adjoint", "--format", "python")
    assert r.returncode == 0
    src = tmp_path / "adj.py"
    src.write_text(r.stdout)
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import jax; jax.config.update('jax_enable_x64', True)\n"
            "import numpy as np, adj\nth = np.eye(3) * 2 + 0.1; b = np.ones(3)\n"
            "print(adj.implicit_solve_adjoint(th, b, 1.0)[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert out.returncode == 0, out.stderr
    assert "[" in out.stdout


def test_check_passes_on_the_example():
    r = lagrad("check", EXAMPLE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 of 2 inputs agree" in r.stdout


def test_run_with_npz(tmp_path):
    rng = np.random.default_rng(0)
    theta, b = rng.standard_normal((4, 4)) + 4 * np.eye(4), rng.standard_normal(4)
    np.savez(tmp_path / "in.npz", theta=theta, b=b)
    r = lagrad("run", EXAMPLE, "--model", "implicit_solve", "--inputs", tmp_path / "in.npz", "--grad", "b",
               "--out", tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["out"], np.mean(np.linalg.solve(2 * theta, b)), rtol=1e-12)
    lam = np.linalg.solve((2 * theta).T, np.full(4, 0.25))
    np.testing.assert_allclose(out["grad_b"], lam, rtol=1e-10)


def test_bench_reports_ratio():
    r = lagrad("bench", EXAMPLE, "--model", "implicit_solve", "--dims", "n=8", "--repeat", "3")
    assert r.returncode == 0, r.stderr
    assert "gradient/forward" in r.stdout


BAD = [
    ("model f(x: f64) -> f64 { return x @@ x }", "bad.la:1:35: ", "@@"),
    ("model f(x: f64) -> f64 {\n  return slove(x) }", "bad.la:2:10: ", "did you mean `solve`"),
    ("model f(x: f64[n], y: f64[m]) -> f64 {\n  return sum(x + y) }", "bad.la:2:14: ", "f64[n] and f64[m]"),
]


@pytest.mark.parametrize("src,where,msg", BAD)
def test_errors_exit_2_without_traceback(tmp_path, src, where, msg):
    (tmp_path / "bad.la").write_text(src)
    for cmd in ("show", "check"):
        r = lagrad(cmd, "bad.la", cwd=tmp_path)
        assert r.returncode == 2
        assert r.stderr.startswith(where) and msg in r.stderr
        assert "^" in r.stderr and "Traceback" not in r.stderr


def test_debug_shows_traceback(tmp_path):
    (tmp_path / "bad.la").write_text(BAD[1][0])
    r = lagrad("--debug", "show", "bad.la", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" in r.stderr


@pytest.mark.parametrize("args,msg", [
    (("show", "missing.la"), "cannot read"),
    (("show", EXAMPLE, "--model", "nosuch"), "no model `nosuch`"),
    (("show", EXAMPLE, "--adjoint", "--wrt", "q"), "no argument `q`"),
])
def test_other_user_errors_exit_2(args, msg):
    r = lagrad(*args)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr


def test_check_reports_a_wrong_rule():
    import lagrad as lg
    from lagrad.runtime.check import check_function
    lg.primitive("wrong_sin", lambda x: __import__("jax").numpy.sin(x),
                 frechet="frechet wrong_sin(x) -> y { dy = -cos(x) * dx }")
    f = lg.loads("model f(x: f64[n]) -> f64 { return sum(wrong_sin(x)) }").f
    rows = check_function(f)
    assert not rows[0].ok and rows[0].adjoint_err > 0.1
