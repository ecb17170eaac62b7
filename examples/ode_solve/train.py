"""An ODE with embedded linear solves, differentiated through the whole trajectory
(examples/ode_solve/ode_solve.la).

Reproduces the seed-gallery experiment of issue 8, item 4:
    dy/dt = solve(A(y), f(t, y)),   f(t, y) = −y + cos(t) u,   y(0) = y0 ∈ R³,
with A(y) symmetric and strictly diagonally dominant (so positive definite; solved by Cholesky),
built by an MLP of the state (3 → 8 → readouts, see the .la file). The ODE is integrated by
classical RK4 with N fixed steps of size dt (T = N dt; default N = 30, dt = 0.1), written as a
`for` loop in the .la file and unrolled at compile time — compile cost grows with N (XLA compiles
one straight-line program: ~4 s for N = 10, forward only, on one core), so N stays modest.

The loss L = ‖y(T) − y_target‖² at the final time is differentiated through the whole
trajectory — 4 Cholesky solves and 4 MLP evaluations per step — by lagrad's derived adjoint. The
driver checks that gradient against central differences (along a random direction of all
parameters and y0, and entry by entry for y0 and u; relative error ≤ 1e-6), then uses it: Adam in
jax.numpy on (u, the MLP) drives y(T) to y_target = (0.5, 0.5, 0.5) from y0 = (1, 0, −1).

The plot (ode_solve.png): the three components of y(t) before and after training (the targets
marked at T), and the loss against the Adam step. It should show the trained trajectory ending on
the targets and the loss falling by orders of magnitude.

Run:  python examples/ode_solve/train.py [--steps-ode 30] [--dt 0.1] [--train-steps 300] [--no-plot]
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))   # lagrad from this checkout
from examples.plotting import pyplot, save  # noqa: E402  (the optional PNG)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import lagrad  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "ode_solve.la"
PNG = HERE / "ode_solve.png"
PARAMS = ("u", "W1", "c1", "U", "Wg", "cg", "Wd", "cd")      # trained
Y0 = np.array([1.0, 0.0, -1.0])
TARGET = np.array([0.5, 0.5, 0.5])
FD_TOL = 1e-6


def load() -> lagrad.Module:
    return lagrad.loads(SOURCE.read_text(encoding="utf-8"), name=SOURCE.name)


def init_params(d: int = 3, m: int = 8, r: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (0.5 * rng.standard_normal(d),                                  # u
            rng.standard_normal((m, d)) / np.sqrt(d), np.zeros(m),         # W1, c1
            0.5 * rng.standard_normal((d, r)),                             # U
            rng.standard_normal((r, m)) / np.sqrt(m), np.zeros(r),         # Wg, cg
            0.3 * rng.standard_normal((d, m)), np.zeros(d))                # Wd, cd


def fd_checks(mod, params, dt, N, h=1e-6, seed=7):
    """Relative errors of lagrad's gradient of the final-time loss against central differences:
    along one random direction of (y0, all parameters), and entry by entry for y0 and u."""
    f = mod.final_loss
    ts = np.zeros(N)
    P = [np.asarray(p) for p in params]
    call = lambda y0, P: float(f(y0, TARGET, dt, ts, *P))
    g = [np.asarray(x) for x in f.grad(wrt=["y0", *PARAMS])(Y0, TARGET, dt, ts, *P)]
    rng = np.random.default_rng(seed)
    E = [rng.standard_normal(x.shape) for x in (Y0, *P)]
    nE = np.sqrt(sum(np.sum(e * e) for e in E))
    E = [e / nE for e in E]
    directional = float(sum(np.sum(gi * e) for gi, e in zip(g, E)))
    fd = (call(Y0 + h * E[0], [p + h * e for p, e in zip(P, E[1:])]) -
          call(Y0 - h * E[0], [p - h * e for p, e in zip(P, E[1:])])) / (2 * h)
    errs = {"random direction": abs(directional - fd) / abs(fd)}
    for name, idx in (("y0", 0), ("u", 1)):
        base = [Y0, *P]
        fd_vec = np.zeros_like(base[idx])
        for j in range(len(fd_vec)):
            plus, minus = [x.copy() for x in base], [x.copy() for x in base]
            plus[idx][j] += h
            minus[idx][j] -= h
            fd_vec[j] = (call(plus[0], plus[1:]) - call(minus[0], minus[1:])) / (2 * h)
        errs[f"∂L/∂{name}, entry by entry"] = float(np.linalg.norm(g[idx] - fd_vec) / np.linalg.norm(fd_vec))
    return errs, fd


def train(mod, params, dt, N, steps, lr, every=50, out=print):
    """Adam in jax.numpy on the parameters, gradient jax.value_and_grad of the lagrad Function."""
    ts = jnp.zeros(N)
    loss = lambda P: mod.final_loss(jnp.asarray(Y0), jnp.asarray(TARGET), dt, ts, *P)
    vg = jax.jit(jax.value_and_grad(loss))
    params = tuple(jnp.asarray(p) for p in params)
    mom = tuple(jnp.zeros_like(p) for p in params)
    vel = tuple(jnp.zeros_like(p) for p in params)
    hist = []
    for t in range(1, steps + 1):
        val, g = vg(params)
        hist.append((t - 1, float(val)))
        if (t - 1) % every == 0:
            out(f"  step {t - 1:4d}  loss {float(val):.4e}")
        mom = tuple(0.9 * m + 0.1 * gi for m, gi in zip(mom, g))
        vel = tuple(0.999 * v + 0.001 * gi * gi for v, gi in zip(vel, g))
        params = tuple(p - lr * (m / (1 - 0.9 ** t)) / (jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-12)
                       for p, m, v in zip(params, mom, vel))
    final = float(vg(params)[0])
    hist.append((steps, final))
    out(f"  step {steps:4d}  loss {final:.4e}")
    return params, hist


def plot(Y_before, Y_after, hist, dt, path):
    plt = pyplot(path)
    if plt is None:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    t = dt * np.arange(len(Y_before))
    for j, col in enumerate(("tab:blue", "tab:orange", "tab:green")):
        ax1.plot(t, Y_before[:, j], ":", color=col)
        ax1.plot(t, Y_after[:, j], "-", color=col, label=f"y{j + 1}")
        ax1.plot(t[-1], TARGET[j], "x", color=col, ms=10, mew=2)
    ax1.set_xlabel("t")
    ax1.set_title("y(t): before training (dotted), after (solid); × target at T")
    ax1.legend(fontsize=8)
    ax1.grid(True, alpha=0.3)
    steps, vals = zip(*hist)
    ax2.semilogy(steps, vals)
    ax2.set_xlabel("Adam step")
    ax2.set_ylabel("‖y(T) − y_target‖²")
    ax2.set_title("final-time loss, gradient through the RK4 trajectory")
    ax2.grid(True, which="both", alpha=0.3)
    return save(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps-ode", type=int, default=30, help="RK4 steps N (default 30)")
    ap.add_argument("--dt", type=float, default=0.1, help="RK4 step size (default 0.1)")
    ap.add_argument("--train-steps", type=int, default=300, help="Adam steps (default 300)")
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--png", type=pathlib.Path, default=PNG)
    a = ap.parse_args(argv)

    mod = load()
    N, dt = a.steps_ode, a.dt
    params = init_params()
    ok = True
    print(f"ODE with embedded solves: RK4, N = {N} steps of dt = {dt:g} (T = {N * dt:g}), "
          f"y0 = {Y0}, target {TARGET}")

    t0 = time.perf_counter()
    errs, _ = fd_checks(mod, params, dt, N)
    print(f"gradient checks (compile included: {time.perf_counter() - t0:.1f} s):")
    for k, e in errs.items():
        print(f"  {k:<28} lagrad vs central differences: rel. error {e:.1e}")
    if not max(errs.values()) <= FD_TOL:
        print(f"gradient check FAILED (rel. error > {FD_TOL:g})")
        ok = False

    ts = np.zeros(N)
    Y_before = np.asarray(mod.trajectory(Y0, dt, ts, *params))
    print(f"\nAdam, {a.train_steps} steps, lr {a.lr:g}, on u and the MLP of A(y)")
    t0 = time.perf_counter()
    trained, hist = train(mod, params, dt, N, a.train_steps, a.lr, a.every)
    print(f"training time {time.perf_counter() - t0:.1f} s (compile included)")
    Y_after = np.asarray(mod.trajectory(Y0, dt, ts, *trained))
    print(f"final-time loss: {hist[0][1]:.4e} → {hist[-1][1]:.4e}")
    print(f"y(T) before {np.round(Y_before[-1], 4)}, after {np.round(Y_after[-1], 4)}, target {TARGET}")
    if not hist[-1][1] < hist[0][1]:
        print("the loss did not fall: FAILED")
        ok = False
    if abs(np.sum((Y_after[-1] - TARGET) ** 2) - hist[-1][1]) > 1e-9 * hist[-1][1] + 1e-15:
        print("the trajectory's end does not match the loss: FAILED")
        ok = False

    if not a.no_plot:
        plot(Y_before, Y_after, hist, dt, a.png)
    print(f"\n{'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
