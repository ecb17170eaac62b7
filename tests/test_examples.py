"""The examples: the drivers and examples/main.py run and pass, and their claims hold.

The scripts run as subprocesses exactly as a user runs them (PYTHONPATH set to the repository
root, so no install is needed); the numerical claims are also checked in-process."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from example_driver import load_example

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _load_driver(name):
    return load_example(f"{name}.py")


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.fixture(scope="module")
def run_script():
    """Run examples/NAME.py once per module; returns the CompletedProcess."""
    done = {}

    def run(name):
        if name not in done:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
            done[name] = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py")], cwd=ROOT, env=env,
                                        capture_output=True, text=True, timeout=300)
        return done[name]
    return run


# ---- the scripts ------------------------------------------------------------------------------
def test_implicit_solve_driver(run_script):
    r = run_script("implicit_solve")
    assert r.returncode == 0, r.stdout + r.stderr
    adjoint = r.stdout.split("The derived adjoint program:")[1].split("\n\n")[0]
    assert adjoint.count("lu_factor") == 1             # one factorization, shared
    assert "trans=true" in adjoint                     # the adjoint solve uses it transposed
    assert "inv(" not in adjoint
    assert "OK:" in r.stdout


def test_frechet_inverse_driver(run_script):
    r = run_script("frechet_inverse")
    assert r.returncode == 0, r.stdout + r.stderr
    for label in ("reverse mode", "forward mode", "closed form", "central finite difference"):
        assert label in r.stdout
    assert "adjoint frechet_inverse(" in r.stdout
    assert "RuleError" in r.stdout                     # inv's stdlib rule cannot be replaced
    assert "OK:" in r.stdout


def test_main(run_script):
    r = run_script("main")
    assert r.returncode == 0, r.stdout + r.stderr
    for model in ("implicit_solve", "frechet_inverse"):
        assert f"adjoint {model}(" in r.stdout
        assert f"OK: {model}" in r.stdout
    assert "MISMATCH" not in r.stdout and "✗" not in r.stdout
    assert len(r.stdout.splitlines()) < 150            # readable: a few dozen lines per model


# ---- frechet_inverse ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_inverse_both_modes_equal_closed_form(seed):
    ex = _load_driver("frechet_inverse")
    f = ex.load()
    x, A, B, C = ex.inputs(n=40, seed=seed)
    exact = ex.closed_form(x, A, B, C)
    reverse = f.grad(wrt="x")(x, A, B, C)
    _, forward = f.jvp((x, A, B, C), (1.0, 0 * A, 0 * B, 0 * C))
    assert _rel(reverse, exact) <= 1e-10
    assert _rel(forward, exact) <= 1e-10


def test_frechet_inverse_all_gradients_equal_jax_grad():
    ex = _load_driver("frechet_inverse")
    args = ex.inputs(n=40)
    ours = ex.load().grad()(*args)
    theirs = jax.grad(ex.jax_reference, argnums=(0, 1, 2, 3))(*args)
    for mine, ref in zip(ours, theirs):
        assert _rel(mine, ref) <= 1e-10


# ---- implicit_solve -----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 5, 40])
def test_implicit_solve_gradients_equal_closed_form_and_jax_grad(n):
    ex = _load_driver("implicit_solve")
    theta, b = ex.inputs(n=n)
    g_theta, g_b = ex.load().grad()(theta, b)
    c_theta, c_b = ex.closed_form(theta, b)              # (−2λx̂ᵀ, λ), λ = K⁻ᵀ(1/n)
    j_theta, j_b = jax.grad(ex.jax_reference, argnums=(0, 1))(theta, b)
    assert _rel(g_b, c_b) <= 1e-10 and _rel(g_theta, c_theta) <= 1e-10
    assert _rel(g_b, j_b) <= 1e-10 and _rel(g_theta, j_theta) <= 1e-10


def test_implicit_solve_adjoint_lines_name_their_source_line():
    ex = _load_driver("implicit_solve")
    lines = str(ex.load().adjoint()).splitlines()
    assert lines[0].startswith("adjoint implicit_solve(")
    assert lines[-1].strip().startswith("return ")     # the return line names outputs, not a source line
    body = lines[1:-1]
    assert body
    for line in body:
        assert re.search(r"# from implicit_solve\.la:\d+", line), line


def test_implicit_solve_adjoint_shares_one_transposed_factorization():
    ex = _load_driver("implicit_solve")
    text = str(ex.load().adjoint())
    assert text.count("lu_factor") == 1
    assert "trans=true" in text


# ---- qr_backprop --------------------------------------------------------------------------------
def test_qr_backprop_driver(run_script):
    r = run_script("qr_backprop")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("  sum(")]
    assert sorted((row[0], row[1]) for row in rows) == sorted(
        (f"sum({w})", case) for w in "QR" for case in ("square", "tall", "wide"))
    assert all(float(row[3]) <= 1e-6 and float(row[4]) <= 1e-6 for row in rows)
    adjoint = r.stdout.split("adjoint q_tall(")[1].split("\n\n")[0]
    assert "solve_triangular(" in adjoint and "inv(" not in adjoint
    assert "OK:" in r.stdout and "✗" not in r.stdout


@pytest.mark.parametrize("case, shape", [("square", (6, 6)), ("tall", (9, 4)), ("wide", (4, 9)),
                                         ("tall", (3, 1)), ("wide", (1, 3))])
def test_qr_backprop_gradients_equal_jax_grad_and_central_differences(case, shape):
    ex = _load_driver("qr_backprop")
    mod = ex.load()
    A = ex.matrix(shape, seed=sum(shape))
    for which in ("q", "r"):
        g = ex.lagrad_gradient(mod, which, case, A)
        ref = np.asarray(jax.grad(ex.jax_reference(which))(A))
        assert g.shape == A.shape
        if not ref.any():                                 # one row: Q = [1], sum(Q) is constant
            assert shape[0] == 1 and which == "q" and np.abs(g).max() <= 1e-12
            continue
        assert _rel(g, ref) <= 1e-12
        assert _rel(g, ex.central_difference(mod, which, case, A)) <= 1e-6
