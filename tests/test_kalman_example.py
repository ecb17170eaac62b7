"""examples/kalman: the model's likelihood against an independent NumPy/SciPy Kalman filter, and
the driver end to end on a short series (gradient check against central differences, loss falls)."""
from __future__ import annotations

import pathlib

import numpy as np
import scipy.linalg as sla

import lagrad

from example_driver import load_example

ROOT = pathlib.Path(__file__).resolve().parents[1]
KALMAN = ROOT / "examples" / "kalman"


def load_driver():
    return load_example("kalman/fit.py")


def reference_nll(F, G, H, R, Y, dt):
    """The textbook filter: exact discretization, stationary start, Gaussian innovations."""
    A = sla.expm(F * dt)
    Pinf = sla.solve_continuous_lyapunov(F, -G @ G.T)          # F P + P Fᵀ = −G Gᵀ
    Qd = Pinf - A @ Pinf @ A.T
    n, m = F.shape[0], H.shape[0]
    x, P, total = np.zeros(n), Pinf, 0.0
    for y in Y:
        S = H @ P @ H.T + R
        v = y - H @ x
        K = P @ H.T @ np.linalg.inv(S)
        total += 0.5 * (np.linalg.slogdet(S)[1] + v @ np.linalg.solve(S, v) + m * np.log(2 * np.pi))
        x = A @ (x + K @ v)
        P = A @ (P - K @ S @ K.T) @ A.T + Qd
    return total


def test_likelihood_matches_a_numpy_kalman_filter():
    fit = load_driver()
    rng = np.random.default_rng(1)
    Y = fit.simulate(fit.F_TRUE, fit.G_TRUE, 12, rng)
    f = lagrad.load(KALMAN / "kalman.la").kalman_nll
    F = fit.F_TRUE + 0.1 * rng.standard_normal((2, 2))
    G = fit.G_TRUE + 0.1 * rng.standard_normal((2, 2))
    got = float(f(F, G, fit.H, fit.R, Y, fit.DT))
    want = reference_nll(F, G, fit.H, fit.R, Y, fit.DT)
    assert abs(got - want) <= 1e-10 * abs(want)


def test_driver_checks_its_gradient_and_the_loss_falls(capsys):
    fit = load_driver()
    assert fit.main(["--T", "12", "--steps", "15"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and "recovered" in out
    first, last = (float(x) for x in out.split("loss per observation:")[1].split("→"))
    assert last < first
