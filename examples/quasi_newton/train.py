"""Quasi-Newton with a learned preconditioner (examples/quasi_newton/quasi_newton.la).

Reproduces the seed-gallery experiment of issue 8, item 1: the 2-D nonlinear system
    F₁ = x₁ + α x₁ x₂ − s₁,   F₂ = β x₁ x₂ + x₂ − s₂,   α = 0.03, β = −0.07,
from x₀ = (1.9, 2.2), with sources s ~ N(2, 0.01) per component. We read 0.01 as the *variance*
(the usual N(μ, σ²) notation): s = 2 + 0.1·N(0, 1). The quasi-Newton iteration uses the
approximate Jacobian J̃ = [[1 + α x₂, 1], [1, 1 + β x₁]].

What the plain iteration does. J̃'s off-diagonal 1s are far from the true αx₁ ≈ 0.06 and
βx₂ ≈ −0.15; J̃ is nearly singular (det ≈ −0.07 at the root), and near the root the error map
I − J̃⁻¹J has spectral radius ≈ 27. So 6 plain steps do not converge: the residual jumps from
≈ 0.1 to ≈ 2 after one step and stays O(1) (the iterates wander off to x ≈ (15, −29)).

The learned preconditioner P⁻¹ is an MLP 6 → 100 → 200 → 100 → 2 with celu, inputs
z = (f/‖f‖, s, log‖f‖, k), output rescaled by ‖f‖. The task writes "δw = pinv(J̃)·P⁻¹(…),
δx = P⁻¹(…)"; we read the two formulas as the two places the MLP can act, implement both in the
.la file and train either (--variant):
  x (default, step space):  δx = ‖f‖ P⁻¹(z) — the MLP gives the step itself.
  w (residual space):       δx = pinv(J̃) δw, δw = ‖f‖ (f/‖f‖ + P⁻¹(z)) — identity plus the MLP
                            on the residual, then the quasi-Newton solve (pinv(J̃) = J̃⁻¹: square,
                            nonsingular), so an MLP with zero output is the plain step.
x ← x − δx either way. Variant w trains poorly, and the reason is the same near-singular J̃: the
MLP's output error is amplified by ‖J̃⁻¹‖ ≈ 25 along one direction, so the training loss is
ill-conditioned in the MLP's output (its relative squared residual stalls near 0.1, see
docs/gallery.md); variant x trains to ~1e-4.

Training (as in the task): 100 samples of s in 10 mini-batches, Adam written in jax.numpy
(lr 1e-3), the step size halved when the epoch's mean mini-batch loss has not improved for
5 epochs; the loss is Σ_{k=1..K} ‖F(x_k)‖² / ‖F(x₀)‖² over K learned steps (--unroll, default
K = 1), its gradient lagrad's derived adjoint through the unrolled steps, the 2×2 solves and the
MLP (jax.value_and_grad of jax.vmap of the lagrad Function). The gradient is checked against
central differences along a random direction (relative error ≤ 1e-6).

The plot (quasi_newton.png): the residual history ‖F(x_k)‖, k = 0..6, on 100 test samples
(median and 10–90 % band) for 6 plain steps, for one learned step followed by 5 plain steps (the
task's comparison), and for 6 learned steps (the MLP applied at every step; it was trained at
k = 0 only). It should show the learned step cutting the residual by two orders of magnitude
where the plain step increases it twenty-fold; the plain steps after the learned one then lose that
again (the plain iteration is unstable near the root), while learned steps at every iteration
keep the residual small.

Run:  python examples/quasi_newton/train.py [--epochs 200] [--variant x|w] [--unroll 1] [--no-plot]
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
SOURCE = HERE / "quasi_newton.la"
PNG = HERE / "quasi_newton.png"
AB = np.array([0.03, -0.07])               # (α, β)
X0 = np.array([1.9, 2.2])
S_MEAN, S_VAR = 2.0, 0.01                  # s ~ N(2, 0.01), 0.01 read as the variance
FD_TOL = 1e-6


def load() -> lagrad.Module:
    return lagrad.loads(SOURCE.read_text(encoding="utf-8"), name=SOURCE.name)


def sources(n: int, seed: int) -> np.ndarray:
    return S_MEAN + np.sqrt(S_VAR) * np.random.default_rng(seed).standard_normal((n, 2))


def init_params(hidden, variant: str, seed: int = 0):
    """He-like N(0, 1/fan_in) weights, zero biases. The last layer: N(0, 1/fan_in) for the step
    variant x; 1e-3 of that for w, so that the untrained w step is the plain quasi-Newton step."""
    rng = np.random.default_rng(seed)
    sizes = [6, *hidden, 2]
    params = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        scale = 1.0 / np.sqrt(a) * (1e-3 if (variant == "w" and i == len(sizes) - 2) else 1.0)
        params += [scale * rng.standard_normal((b, a)), np.zeros(b)]
    return tuple(jnp.asarray(p) for p in params)


def batch_loss(mod, variant: str, unroll: int):
    """mean over a batch of sources of the model's per-sample loss, as a function of the params."""
    per_sample = jax.vmap(getattr(mod, f"loss_{variant}"), in_axes=(None,) * 8 + (0, None, None, None))
    ks = jnp.zeros(unroll)                 # binds the loop count `steps`

    def loss(params, S):
        return jnp.mean(per_sample(*params, S, jnp.asarray(X0), jnp.asarray(AB), ks))
    return loss


def adam_step(loss, b1=0.9, b2=0.999, eps=1e-8):
    """One jitted Adam step in jax.numpy: (params, m, v, t, lr, S) -> (params, m, v, loss)."""
    vg = jax.value_and_grad(loss)

    @jax.jit
    def step(params, mom, vel, t, lr, S):
        val, g = vg(params, S)
        mom = tuple(b1 * m + (1 - b1) * gi for m, gi in zip(mom, g))
        vel = tuple(b2 * v + (1 - b2) * gi * gi for v, gi in zip(vel, g))
        params = tuple(p - lr * (m / (1 - b1 ** t)) / (jnp.sqrt(v / (1 - b2 ** t)) + eps)
                       for p, m, v in zip(params, mom, vel))
        return params, mom, vel, val
    return step


def train(loss, params, S, epochs, batches, lr, patience=5, every=25, seed=1, out=print):
    """Mini-batch Adam; lr halved when the epoch's mean batch loss has not improved for `patience`
    epochs. Returns the params and [(epoch, mean batch loss, lr)]."""
    step = adam_step(loss)
    rng = np.random.default_rng(seed)
    mom = tuple(jnp.zeros_like(p) for p in params)
    vel = tuple(jnp.zeros_like(p) for p in params)
    n = len(S)
    size = n // batches
    best, stall, t, hist = np.inf, 0, 0, []
    for ep in range(epochs):
        perm = rng.permutation(n)
        total = 0.0
        for b in range(batches):
            t += 1
            params, mom, vel, val = step(params, mom, vel, jnp.float64(t), jnp.float64(lr),
                                         jnp.asarray(S[perm[b * size:(b + 1) * size]]))
            total += float(val) / batches
        hist.append((ep, total, lr))
        if total < best:
            best, stall = total, 0
        else:
            stall += 1
            if stall >= patience:
                lr, stall = lr / 2, 0
        if ep % every == 0 or ep == epochs - 1:
            out(f"  epoch {ep:4d}  mean batch loss {total:.4e}  lr {hist[-1][2]:.2e}")
    return params, hist


def histories(mod, variant, params, S):
    """‖F(x_k)‖, k = 0..6, per sample: 6 plain steps, 1 learned + 5 plain, 6 learned."""
    x0, ab = jnp.asarray(X0), jnp.asarray(AB)
    hist = jax.vmap(getattr(mod, f"hist_{variant}"), in_axes=(None,) * 8 + (0, None, None, None))
    plain = jax.vmap(mod.hist_plain, in_axes=(0, None, None))
    return {"6 plain steps": np.asarray(plain(jnp.asarray(S), x0, ab)),
            "1 learned + 5 plain": np.asarray(hist(*params, jnp.asarray(S), x0, ab, jnp.zeros(1))),
            "6 learned steps": np.asarray(hist(*params, jnp.asarray(S), x0, ab, jnp.zeros(6)))}


def fd_check(mod, variant, params, s, unroll=1, h=1e-6, seed=7):
    """lagrad's gradient of the per-sample loss against central differences along one random
    direction of all MLP parameters: (directional derivative, FD, relative error)."""
    f = getattr(mod, f"loss_{variant}")
    args = lambda P: (*P, s, X0, AB, np.zeros(unroll))
    P = [np.asarray(p) for p in params]
    g = f.grad(wrt=["W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"])(*args(P))
    rng = np.random.default_rng(seed)
    E = [rng.standard_normal(p.shape) for p in P]
    nE = np.sqrt(sum(np.sum(e * e) for e in E))
    E = [e / nE for e in E]
    directional = float(sum(np.sum(np.asarray(gi) * e) for gi, e in zip(g, E)))
    fp = float(f(*args([p + h * e for p, e in zip(P, E)])))
    fm = float(f(*args([p - h * e for p, e in zip(P, E)])))
    fd = (fp - fm) / (2 * h)
    return directional, fd, abs(directional - fd) / max(abs(fd), 1e-300)


def plot(hists, path, title):
    plt = pyplot(path)
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    k = np.arange(7)
    for (name, H), col in zip(hists.items(), ("tab:gray", "tab:red", "tab:blue")):
        lo, med, hi = np.percentile(H, [10, 50, 90], axis=0)
        ax.semilogy(k, med, "o-", color=col, label=f"{name} (median)")
        ax.fill_between(k, np.maximum(lo, 1e-17), hi, color=col, alpha=0.15)
    ax.set_xlabel("iteration k")
    ax.set_ylabel("‖F(x_k)‖ (100 test sources; band 10–90 %)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=("x", "w"), default="x", help="where the MLP acts (default x)")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--samples", type=int, default=100, help="training sources (default 100)")
    ap.add_argument("--batches", type=int, default=10, help="mini-batches per epoch (default 10)")
    ap.add_argument("--test", type=int, default=100, help="test sources (default 100)")
    ap.add_argument("--hidden", type=int, nargs=3, default=[100, 200, 100])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--unroll", type=int, default=1, help="learned steps in the training loss (default 1)")
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--png", type=pathlib.Path, default=PNG)
    a = ap.parse_args(argv)

    mod = load()
    S, S_test = sources(a.samples, 0), sources(a.test, 1)
    params = init_params(a.hidden, a.variant)
    ok = True
    print(f"Quasi-Newton, learned preconditioner (variant {a.variant}), MLP 6 → "
          f"{' → '.join(map(str, a.hidden))} → 2, s ~ N({S_MEAN:g}, variance {S_VAR:g})")

    d, fd, e = fd_check(mod, a.variant, params, S[0], a.unroll)
    print(f"gradient of the loss at the initial MLP, one random direction: lagrad {d:.10e}, "
          f"central differences {fd:.10e}, rel. error {e:.1e}")
    if not e <= FD_TOL:
        print(f"gradient check FAILED (rel. error {e:.1e} > {FD_TOL:g})")
        ok = False

    loss = batch_loss(mod, a.variant, a.unroll)
    loss_jit = jax.jit(loss)
    before = float(loss_jit(params, jnp.asarray(S)))
    test_before = float(loss_jit(params, jnp.asarray(S_test)))
    print(f"\nAdam, {a.epochs} epochs × {a.batches} mini-batches, lr {a.lr:g} halved after 5 stalled epochs")
    t0 = time.perf_counter()
    params, _ = train(loss, params, S, a.epochs, a.batches, a.lr, every=a.every)
    train_s = time.perf_counter() - t0
    after = float(loss_jit(params, jnp.asarray(S)))
    test_after = float(loss_jit(params, jnp.asarray(S_test)))
    print(f"training time {train_s:.1f} s (compile included)")
    print(f"training loss: {before:.4e} → {after:.4e}")
    print(f"test loss: {test_before:.4e} → {test_after:.4e}")
    if not after < before:
        print("the training loss did not fall: FAILED")
        ok = False

    hists = histories(mod, a.variant, params, S_test)
    print(f"\nmedian ‖F(x_k)‖ over {a.test} test sources, k = 0..6:")
    for name, H in hists.items():
        print(f"  {name:<22}" + " ".join(f"{v:9.2e}" for v in np.median(H, axis=0)))
    f0 = np.median(hists["6 plain steps"][:, 0])
    plain1 = np.median(hists["6 plain steps"][:, 1])
    learned1 = np.median(hists["1 learned + 5 plain"][:, 1])
    better = float(np.mean(hists["1 learned + 5 plain"][:, 1] < hists["6 plain steps"][:, 1]))
    print(f"median residual after step 1: start {f0:.3e}, plain {plain1:.3e}, learned {learned1:.3e}")
    print(f"test sources where the learned step beats the plain step: {100 * better:.0f} %")
    if not learned1 < min(plain1, f0):
        print("the learned step does not beat the plain step: FAILED")
        ok = False

    if not a.no_plot:
        plot(hists, a.png, f"quasi-Newton with J̃, learned preconditioner (variant {a.variant})")
    print(f"\n{'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
