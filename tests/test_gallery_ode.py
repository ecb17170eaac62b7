"""examples/ode_solve: RK4 with embedded solves against a NumPy integration, and the driver end
to end on a short trajectory (the final-time gradient through the whole trajectory vs central
differences, the loss falls)."""
from __future__ import annotations

import re

import numpy as np

from example_driver import load_example


def load_driver():
    return load_example("ode_solve/train.py")


def numpy_trajectory(y0, dt, N, P):
    u, W1, c1, U, Wg, cg, Wd, cd = (np.asarray(p) for p in P)

    def mass(y):
        h = np.tanh(W1 @ y + c1)
        O = U @ np.diag(Wg @ h + cg) @ U.T
        O0 = O - np.diag(np.diag(O))
        return O0 + np.diag(np.abs(O0).sum(axis=1) + np.logaddexp(0, Wd @ h + cd) + 0.5)

    def rhs(t, y):
        A = mass(y)
        assert np.allclose(A, A.T) and np.all(np.linalg.eigvalsh(A) > 0)
        return np.linalg.solve(A, -y + np.cos(t) * u)

    y, Y = np.array(y0, float), [np.array(y0, float)]
    for i in range(N):
        t = i * dt
        k1 = rhs(t, y)
        k2 = rhs(t + dt / 2, y + dt / 2 * k1)
        k3 = rhs(t + dt / 2, y + dt / 2 * k2)
        k4 = rhs(t + dt, y + dt * k3)
        y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        Y.append(y)
    return np.array(Y)


def test_trajectory_and_loss_match_numpy():
    d = load_driver()
    mod = d.load()
    P = d.init_params(seed=3)
    N, dt = 5, 0.2
    want = numpy_trajectory(d.Y0, dt, N, P)
    np.testing.assert_allclose(np.asarray(mod.trajectory(d.Y0, dt, np.zeros(N), *P)), want, rtol=1e-10, atol=1e-14)
    loss = float(mod.final_loss(d.Y0, d.TARGET, dt, np.zeros(N), *P))
    assert abs(loss - np.sum((want[-1] - d.TARGET) ** 2)) <= 1e-10 * loss


def test_driver_short_trajectory(capsys):
    d = load_driver()
    assert d.main(["--steps-ode", "6", "--dt", "0.25", "--train-steps", "60", "--every", "20", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and out.rstrip().endswith("OK")
    errs = [float(x) for x in re.findall(r"central differences: rel\. error ([0-9.e+-]+)", out)]
    assert len(errs) == 3 and max(errs) <= 1e-6
    l0, l1 = (float(x) for x in out.split("final-time loss:")[1].splitlines()[0].split("→"))
    assert l1 < 0.5 * l0
