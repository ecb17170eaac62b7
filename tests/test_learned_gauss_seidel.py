"""examples/learned_gauss_seidel: the model's sweeps against NumPy re-implementations, and the
driver end to end on a short run (gradient check against central differences, 20-sweep error falls)."""
from __future__ import annotations

import re

import numpy as np
import scipy.linalg as sla


from example_driver import load_example



def load_driver():
    return load_example("learned_gauss_seidel.py")


def textbook_loss(P, A, b, sweeps=5):
    """Gauss–Seidel on (P A) x = P b from x = 0, residual recomputed each sweep: ‖b − A x_k‖²."""
    T = np.tril(P @ A)
    x = np.zeros(len(b))
    for _ in range(sweeps):
        x = x + sla.solve_triangular(T, P @ (b - A @ x), lower=True)
    r = b - A @ x
    return float(r @ r)


def recursive_loss(P, A, b, sweeps=5):
    """The same sweeps with the residual carried recursively (r ← r − A δ), as the model does."""
    T = np.tril(P @ A)
    r = np.array(b, float)
    for _ in range(sweeps):
        r = r - A @ sla.solve_triangular(T, P @ r, lower=True)
    return float(r @ r)


def error_history(P, A, xstar, sweeps=20):
    """‖x_k − x*‖ for k = 1..sweeps, from the error recursion e ← e − tril(PA)⁻¹ PA e, e₀ = −x*."""
    B = P @ A
    T = np.tril(B)
    e, out = -np.array(xstar, float), []
    for _ in range(sweeps):
        e = e - sla.solve_triangular(T, B @ e, lower=True)
        out.append(np.linalg.norm(e))
    return np.array(out)


def test_five_sweep_loss_matches_numpy():
    d = load_driver()
    mod = d.load()
    rng = np.random.default_rng(3)
    for P in (np.eye(4), np.eye(4) + 0.1 * rng.standard_normal((4, 4))):
        got = float(mod.gs_residual5(P, d.A, d.B_RHS))
        same = recursive_loss(P, d.A, d.B_RHS)
        assert abs(got - same) <= 1e-12 * abs(same)
        # the textbook form differs only by rounding in b − A x (|x| ≈ 2.6): ~1e-18 absolute here
        assert abs(got - textbook_loss(P, d.A, d.B_RHS)) <= 1e-12
        assert abs(got - textbook_loss(P, d.A, d.B_RHS)) <= 1e-9 * abs(same)
    # P = I is plain Gauss–Seidel: the value the driver starts from
    assert abs(float(mod.gs_residual5(np.eye(4), d.A, d.B_RHS)) - textbook_loss(np.eye(4), d.A, d.B_RHS)) <= 1e-12


def test_twenty_sweep_errors_and_iterate_match_numpy():
    d = load_driver()
    mod = d.load()
    P = np.eye(4) + 0.05 * np.random.default_rng(4).standard_normal((4, 4))
    for Q in (np.eye(4), P):
        got = np.asarray(mod.gs_errors20(Q, d.A, d.X_STAR))
        want = error_history(Q, d.A, d.X_STAR)
        assert np.all(np.abs(got - want) <= 1e-10 * want)
        assert np.allclose(np.asarray(mod.gs_solve20(Q, d.A, d.B_RHS)), d.X_STAR, rtol=0, atol=1e-13)


def test_driver_short_run(capsys):
    d = load_driver()
    assert d.main(["--steps", "40", "--every", "10", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and "OK" in out
    rel = float(re.search(r"central differences.*rel\. error ([0-9.e+-]+)", out).group(1))
    assert rel <= 1e-6
    first, last = (float(x) for x in out.split("error after 20 sweeps:")[1].splitlines()[0].split("→"))
    assert last < first
    loss0, loss1 = (float(x) for x in out.split("training loss:")[1].splitlines()[0].split("→"))
    assert loss1 < loss0
