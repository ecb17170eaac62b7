"""Fit a continuous-time linear-Gaussian state-space model by gradient descent on the Kalman
filter's negative log-likelihood, with gradients derived by lagrad from `kalman.la`.

Reproduces: the issue's Kalman example — discretize with expm, stationary covariance from lyap,
the filter's likelihood over T observations (a `for` loop), its gradient w.r.t. all parameters.
The script simulates data from known parameters (F, G), starts from perturbed ones and prints the
loss falling and the recovered parameters next to the true ones. G enters only through G Gᵀ,
so G is compared through G Gᵀ.

    python examples/kalman/fit.py [--T 200] [--steps 300] [--seed 0]
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
import scipy.linalg as sla

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))   # run from a checkout too
import lagrad  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent

F_TRUE = np.array([[-0.5, 1.0], [-1.0, -0.3]])     # a damped oscillator
G_TRUE = np.array([[0.6, 0.0], [0.2, 0.4]])
H = np.eye(2)
R = 0.05 * np.eye(2)
DT = 0.5


def simulate(F, G, T, rng):
    """Exact discretization of dx = F x dt + G dW observed through H with noise R."""
    A = sla.expm(F * DT)
    Pinf = sla.solve_continuous_lyapunov(F, -G @ G.T)
    Qd = Pinf - A @ Pinf @ A.T
    x = rng.multivariate_normal(np.zeros(2), Pinf)
    ys = []
    for _ in range(T):
        ys.append(H @ x + rng.multivariate_normal(np.zeros(2), R))
        x = A @ x + rng.multivariate_normal(np.zeros(2), Qd)
    return np.array(ys)


NAMES = ["F", "G", "H", "R", "Y", "dt"]


def fd_check(f, args, grads, rng, h=1e-6):
    """Relative error of ⟨∇f, d⟩ against (f(x + h d) − f(x − h d)) / 2h, one random d per input.
    R is a covariance and the filter's solves with assume="pos" read one triangle of S = H P Hᵀ + R,
    so R's direction is symmetric (the derivative along non-symmetric directions is not defined
    by the model, only by which triangle an implementation reads)."""
    errs = []
    for i, g in enumerate(grads):
        d = rng.standard_normal(np.shape(args[i]))
        if NAMES[i] == "R":
            d = (d + d.T) / 2
        plus, minus = list(args), list(args)
        plus[i], minus[i] = args[i] + h * d, args[i] - h * d
        fd = (float(f(*plus)) - float(f(*minus))) / (2 * h)
        exact = float(np.sum(np.asarray(g) * d))
        errs.append(abs(fd - exact) / max(abs(exact), 1e-8))
    return errs


def fit(f, Y, F0, G0, steps, lr=0.03, log_every=25, out=print):
    """Adam on (F, G) with the lagrad gradient; returns the parameters and the loss history."""
    vg = f.value_and_grad(wrt=["F", "G"])
    params = [F0.copy(), G0.copy()]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    T = len(Y)
    history = []
    for k in range(1, steps + 1):
        loss, grads = vg(params[0], params[1], H, R, Y, DT)
        history.append(float(loss) / T)
        if k == 1 or k % log_every == 0 or k == steps:
            out(f"step {k:4d}   nll/T = {float(loss) / T:.5f}   |grad| = "
                f"{np.sqrt(sum(float(np.sum(np.asarray(g) ** 2)) for g in grads)):.3e}")
        for i, g in enumerate(grads):
            g = np.asarray(g) / T
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            params[i] = params[i] - lr * (m[i] / (1 - 0.9 ** k)) / (np.sqrt(v[i] / (1 - 0.999 ** k)) + 1e-8)
    return params, history


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=200)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    Y = simulate(F_TRUE, G_TRUE, a.T, rng)
    f = lagrad.load(HERE / "kalman.la").kalman_nll
    F0 = F_TRUE + 0.3 * rng.standard_normal((2, 2))
    G0 = G_TRUE + 0.2 * rng.standard_normal((2, 2))
    print(f"T = {a.T} observations; gradients w.r.t. all parameters at the start:")
    args = (F0, G0, H, R, Y, DT)
    grads = f.grad()(*args)
    errs = fd_check(f, args, grads, rng)
    print("  input  |gradient|    directional derivative: rel. error vs central differences")
    for name, g, e in zip(NAMES, grads, errs):
        print(f"  {name:<6} {np.linalg.norm(np.asarray(g)):.4e}   {e:.1e}")
    if max(errs) > 1e-6:
        print("gradient check FAILED")
        return 1
    (F, G), hist = fit(f, Y, F0, G0, a.steps)
    np.set_printoptions(precision=3, suppress=True)
    print("\n          recovered                 true")
    for name, est, true in (("F", F, F_TRUE), ("G Gᵀ", G @ G.T, G_TRUE @ G_TRUE.T)):
        for i in range(2):
            print(f"{name if i == 0 else '':<6} {np.array2string(est[i]):<24} {np.array2string(true[i])}")
    print(f"\nloss per observation: {hist[0]:.5f} → {hist[-1]:.5f}")
    return 0 if hist[-1] < hist[0] else 1


if __name__ == "__main__":
    sys.exit(main())
