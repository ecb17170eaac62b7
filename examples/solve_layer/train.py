"""A physics-style solve layer trained end to end (examples/solve_layer/solve_layer.la).

Reproduces the seed-gallery experiment of issue 8, item 3: an MLP maps features φ to a matrix A
(made strictly diagonally dominant, so it is always invertible) and a right-hand side b, the layer
returns x = solve(A, b), and the whole thing is trained end to end. The gradient through the solve
is the implicit one lagrad derives from solve's Fréchet rule (one transposed solve with the
forward LU, Ā = −b̄ xᵀ); the driver prints that adjoint program (f.adjoint()).

The data: a 1-D steady diffusion problem −(κ u′)′ = q on (0, 1), u(0) = u(1) = 0, on n = 8
interior nodes tᵢ = i/(n+1), three features φ ∈ [−1, 1]³:
    κ(t) = exp(φ₀ + φ₁ (t − ½)),   q(t) = 1 + φ₂ sin(2π t),
discretized with conductivities at the midpoints, x* = the discrete solution (scaled by h²,
so A_true = tridiag(−κ_{i−½}, κ_{i−½} + κ_{i+½}, −κ_{i+½}) and b_true = h² q(tᵢ)). The layer does not know
the physics: it has to find some (A(φ), b(φ)) whose solution matches x*; A_true itself (only
weakly diagonally dominant) is not in its family, and need not be.

Training: full-batch Adam written in jax.numpy on all MLP parameters, loss the mean relative
squared error ‖x − x*‖² / ‖x*‖² over 256 training samples (jax.vmap of the lagrad Function), 256
held-out samples for testing. The gradient is checked against central differences along a random
direction first (relative error ≤ 1e-6).

The plot (solve_layer.png): the training and held-out loss against the Adam step, and x* against
the layer's x for three held-out φ. It should show both losses falling by orders of magnitude
together (no overfitting: 256 samples of a smooth 3-parameter family) and the predicted profiles on
top of the true ones.

Run:  python examples/solve_layer/train.py [--steps 1500] [--no-plot]
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
SOURCE = HERE / "solve_layer.la"
PNG = HERE / "solve_layer.png"
NAMES = ("W1", "c1", "U", "V", "Wg", "cg", "Wd", "cd", "Wb", "cb")
FD_TOL = 1e-6


def load() -> lagrad.Module:
    return lagrad.loads(SOURCE.read_text(encoding="utf-8"), name=SOURCE.name)


def diffusion_data(count: int, n: int, seed: int):
    """Features φ ~ U[−1, 1]³ and the scaled discrete diffusion solutions x* (see the docstring)."""
    rng = np.random.default_rng(seed)
    phi = rng.uniform(-1.0, 1.0, (count, 3))
    h = 1.0 / (n + 1)
    t = h * np.arange(1, n + 1)
    mid = h * (np.arange(n + 1) + 0.5)                       # κ at t_{i±½}
    X = np.empty((count, n))
    for k, (a, g, s) in enumerate(phi):
        kap = np.exp(a + g * (mid - 0.5))
        A = np.diag(kap[:-1] + kap[1:]) - np.diag(kap[1:-1], 1) - np.diag(kap[1:-1], -1)
        X[k] = np.linalg.solve(A, h * h * (1.0 + s * np.sin(2 * np.pi * t)))
    return phi, X


def init_params(n: int, p: int = 3, m: int = 32, r: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    g = lambda *shape, s=1.0: s * rng.standard_normal(shape)
    return tuple(jnp.asarray(x) for x in (
        g(m, p, s=1 / np.sqrt(p)), np.zeros(m),                   # W1, c1
        g(n, r, s=0.3), g(n, r, s=0.3),                           # U, V
        g(r, m, s=1 / np.sqrt(m)), np.zeros(r),                   # Wg, cg
        g(n, m, s=0.1 / np.sqrt(m)), np.zeros(n),                 # Wd, cd
        g(n, m, s=0.1 / np.sqrt(m)), np.zeros(n)))                # Wb, cb


def batch_loss(mod):
    per_sample = jax.vmap(mod.loss, in_axes=(0, 0) + (None,) * len(NAMES))
    return lambda params, phi, X: jnp.mean(per_sample(phi, X, *params))


def train(loss, params, data, held, steps, lr, every=100, out=print):
    """Full-batch Adam; returns the params and [(step, train loss, held-out loss)]."""
    vg = jax.jit(jax.value_and_grad(loss))
    loss_jit = jax.jit(loss)
    data = tuple(jnp.asarray(x) for x in data)
    held = tuple(jnp.asarray(x) for x in held)
    mom = tuple(jnp.zeros_like(p) for p in params)
    vel = tuple(jnp.zeros_like(p) for p in params)

    @jax.jit
    def update(params, mom, vel, g, t):
        mom = tuple(0.9 * m + 0.1 * gi for m, gi in zip(mom, g))
        vel = tuple(0.999 * v + 0.001 * gi * gi for v, gi in zip(vel, g))
        params = tuple(p - lr * (m / (1 - 0.9 ** t)) / (jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-12)
                       for p, m, v in zip(params, mom, vel))
        return params, mom, vel

    hist = []
    for t in range(1, steps + 1):
        val, g = vg(params, *data)
        if (t - 1) % every == 0:
            hist.append((t - 1, float(val), float(loss_jit(params, *held))))
            out(f"  step {t - 1:5d}  train {hist[-1][1]:.3e}  held-out {hist[-1][2]:.3e}")
        params, mom, vel = update(params, mom, vel, g, jnp.float64(t))
    hist.append((steps, float(loss_jit(params, *data)), float(loss_jit(params, *held))))
    out(f"  step {steps:5d}  train {hist[-1][1]:.3e}  held-out {hist[-1][2]:.3e}")
    return params, hist


def fd_check(mod, params, phi, xstar, h=1e-6, seed=7):
    """lagrad's gradient of the loss along one random direction of all parameters vs central
    differences: (directional derivative, FD, relative error)."""
    f = mod.loss
    P = [np.asarray(p) for p in params]
    g = f.grad(wrt=list(NAMES))(phi, xstar, *P)
    rng = np.random.default_rng(seed)
    E = [rng.standard_normal(p.shape) for p in P]
    nE = np.sqrt(sum(np.sum(e * e) for e in E))
    E = [e / nE for e in E]
    directional = float(sum(np.sum(np.asarray(gi) * e) for gi, e in zip(g, E)))
    fp = float(f(phi, xstar, *[p + h * e for p, e in zip(P, E)]))
    fm = float(f(phi, xstar, *[p - h * e for p, e in zip(P, E)]))
    fd = (fp - fm) / (2 * h)
    return directional, fd, abs(directional - fd) / max(abs(fd), 1e-300)


def plot(hist, phi, X, Xp, path):
    plt = pyplot(path)
    if plt is None:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    steps, tr, he = zip(*hist)
    ax1.semilogy(steps, tr, label="training")
    ax1.semilogy(steps, he, "--", label="held-out")
    ax1.set_xlabel("Adam step")
    ax1.set_ylabel("mean ‖x − x*‖² / ‖x*‖²")
    ax1.set_title("solve layer: loss")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend()
    n = X.shape[1]
    t = np.arange(1, n + 1) / (n + 1)
    for i, col in zip(range(3), ("tab:blue", "tab:orange", "tab:green")):
        ax2.plot(t, X[i], "o", color=col, label=f"x*, φ = ({', '.join(f'{v:.2f}' for v in phi[i])})")
        ax2.plot(t, Xp[i], "-", color=col)
    ax2.set_xlabel("t (node)")
    ax2.set_ylabel("u")
    ax2.set_title("held-out: x* (dots) vs solve(A(φ), b(φ)) (lines)")
    ax2.legend(fontsize=7)
    ax2.grid(True, alpha=0.3)
    return save(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="interior nodes (default 8)")
    ap.add_argument("--hidden", type=int, default=32, help="MLP width (default 32)")
    ap.add_argument("--rank", type=int, default=8, help="rank of the off-diagonal part (default 8)")
    ap.add_argument("--train", type=int, default=256)
    ap.add_argument("--test", type=int, default=256)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--no-adjoint", action="store_true", help="do not print the adjoint programs")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--png", type=pathlib.Path, default=PNG)
    a = ap.parse_args(argv)

    mod = load()
    ok = True
    if not a.no_adjoint:
        print("The derived adjoint of the solve (f.adjoint() of `solve_only`): one LU, reused transposed\n")
        print(mod.solve_only.adjoint(wrt=["A", "b"]))
        print("\n... and of the whole layer's loss w.r.t. the MLP's readouts (U, Wb):\n")
        print(mod.loss.adjoint(wrt=["U", "Wb"]))
        print()

    phi, X = diffusion_data(a.train, a.n, seed=0)
    phi_t, X_t = diffusion_data(a.test, a.n, seed=1)
    params = init_params(a.n, m=a.hidden, r=a.rank)

    d, fd, e = fd_check(mod, params, phi[0], X[0])
    print(f"gradient of the loss, one random direction of all parameters: lagrad {d:.10e}, "
          f"central differences {fd:.10e}, rel. error {e:.1e}")
    if not e <= FD_TOL:
        print(f"gradient check FAILED (rel. error {e:.1e} > {FD_TOL:g})")
        ok = False

    loss = batch_loss(mod)
    print(f"\nAdam, {a.steps} steps, lr {a.lr:g}; {a.train} training / {a.test} held-out samples, "
          f"n = {a.n}, hidden {a.hidden}, rank {a.rank}")
    t0 = time.perf_counter()
    params, hist = train(loss, params, (phi, X), (phi_t, X_t), a.steps, a.lr, a.every)
    print(f"training time {time.perf_counter() - t0:.1f} s (compile included)")
    print(f"training loss: {hist[0][1]:.3e} → {hist[-1][1]:.3e}")
    print(f"held-out loss: {hist[0][2]:.3e} → {hist[-1][2]:.3e}")
    if not (hist[-1][1] < hist[0][1] and hist[-1][2] < hist[0][2]):
        print("the loss did not fall: FAILED")
        ok = False

    layer = jax.vmap(mod.layer, in_axes=(0,) + (None,) * len(NAMES))
    Xp = np.asarray(layer(jnp.asarray(phi_t), *params))
    rel = np.linalg.norm(Xp - X_t, axis=1) / np.linalg.norm(X_t, axis=1)
    print(f"held-out relative error ‖x − x*‖ / ‖x*‖: median {np.median(rel):.2e}, max {rel.max():.2e}")
    if not a.no_plot:
        plot(hist, phi_t, X_t, Xp, a.png)
    print(f"\n{'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
