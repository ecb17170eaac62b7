"""Unrolled conjugate gradients with learned step corrections (examples/learned_cg/learned_cg.la).

Reproduces the seed-gallery experiment of issue 8, item 2: CG unrolled for K = 5 iterations, the
step length α_k scaled by a learned c_k and the direction update β_k shifted by a learned d_k
(10 parameters; c = 1, d = 0 is plain CG), trained to minimize the residual after K iterations
on a family of SPD systems, and compared with plain CG.

The family: A = Q diag(λ) Qᵀ, n = 50, Q a random orthogonal matrix (QR of a Gaussian matrix),
eigenvalues λ log-uniform in [1, κ] with κ = 100, b ~ N(0, I); a fresh (A, b) per sample, 64 for
training and 64 held out (other seeds).

Why there is anything to learn: plain CG minimizes the A-norm of the error over the Krylov space
K_k(A, b); it does not minimize the residual's 2-norm, which is what the loss measures
(log ‖b − A x_K‖² / ‖b‖², averaged over the batch with jax.vmap). Every corrected iterate still
lies in K_k(A, b), so the minimal-residual iterate (MINRES/GMRES after k steps, computed here in
NumPy) is a lower bound no choice of (c, d) can beat; the driver prints it for reference.

Training: full-batch Adam written in jax.numpy on (c, d) from (1, 0), with the gradient
jax.value_and_grad of the vmapped lagrad Function (lagrad's derived adjoint through the unrolled
iterations), checked against central differences first (relative error ≤ 1e-6).

The plot (learned_cg.png): the median relative residual ‖b − A x_k‖ / ‖b‖ over the held-out
systems for k = 0..5, plain CG vs the learned corrections (10–90 % bands), with the
minimal-residual bound; and the learned c_k, d_k. It should show the learned iteration below plain
CG at every k ≥ 1 and, at k = K (the iteration it was trained for), close above the
minimal-residual bound.

Run:  python examples/learned_cg/train.py [--n 50] [--kappa 100] [--steps 300] [--no-plot]
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
SOURCE = HERE / "learned_cg.la"
PNG = HERE / "learned_cg.png"
FD_TOL = 1e-6


def load() -> lagrad.Module:
    return lagrad.loads(SOURCE.read_text(encoding="utf-8"), name=SOURCE.name)


def spd_family(count: int, n: int, kappa: float, seed: int):
    """`count` systems A = Q diag(λ) Qᵀ (λ log-uniform in [1, κ]) with b ~ N(0, I)."""
    rng = np.random.default_rng(seed)
    As, bs = np.empty((count, n, n)), np.empty((count, n))
    for i in range(count):
        Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        lam = np.exp(rng.uniform(0.0, np.log(kappa), n))
        As[i] = (Q * lam) @ Q.T
        bs[i] = rng.standard_normal(n)
    return As, bs


def min_residual_history(A, b, K):
    """min over x ∈ K_k(A, b) of ‖b − A x‖ / ‖b‖, k = 0..K (what MINRES/GMRES reach), in NumPy."""
    out = [1.0]
    V = np.zeros((len(b), 0))
    v = b / np.linalg.norm(b)
    for _ in range(K):
        V = np.column_stack([V, v])
        AV = A @ V
        y, *_ = np.linalg.lstsq(AV, b, rcond=None)
        out.append(np.linalg.norm(b - AV @ y) / np.linalg.norm(b))
        w = A @ v
        for _ in range(2):                        # Gram–Schmidt, twice
            w = w - V @ (V.T @ w)
        v = w / np.linalg.norm(w)
    return np.array(out)


def batch_loss(mod):
    per_system = jax.vmap(mod.cg_loss, in_axes=(0, 0, None, None))
    return lambda params, As, bs: jnp.mean(per_system(As, bs, params[0], params[1]))


def train(loss, params, As, bs, steps, lr, every=50, out=print):
    """Full-batch Adam (β = 0.9, 0.999) on (c, d); returns the params and [(step, loss)]."""
    vg = jax.jit(jax.value_and_grad(loss))
    As, bs = jnp.asarray(As), jnp.asarray(bs)
    mom = tuple(jnp.zeros_like(p) for p in params)
    vel = tuple(jnp.zeros_like(p) for p in params)
    hist = []
    for t in range(1, steps + 1):
        val, g = vg(params, As, bs)
        hist.append((t - 1, float(val)))
        if (t - 1) % every == 0:
            out(f"  step {t - 1:4d}  loss {float(val):.5f}")
        mom = tuple(0.9 * m + 0.1 * gi for m, gi in zip(mom, g))
        vel = tuple(0.999 * v + 0.001 * gi * gi for v, gi in zip(vel, g))
        params = tuple(p - lr * (m / (1 - 0.9 ** t)) / (jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-12)
                       for p, m, v in zip(params, mom, vel))
    final = float(loss(params, As, bs))
    hist.append((steps, final))
    out(f"  step {steps:4d}  loss {final:.5f}")
    return params, hist


def fd_check(mod, A, b, c, d, h=1e-6):
    """lagrad's gradient w.r.t. (c, d) against central differences, entry by entry; the max
    relative error over the entries whose derivative is not ~0 (d_{K−1}'s is exactly 0)."""
    f = mod.cg_loss
    gc, gd = (np.asarray(g) for g in f.grad(wrt=["c", "d"])(A, b, c, d))
    fd_c, fd_d = np.zeros_like(c), np.zeros_like(d)
    for k in range(len(c)):
        e = np.zeros_like(c)
        e[k] = h
        fd_c[k] = (float(f(A, b, c + e, d)) - float(f(A, b, c - e, d))) / (2 * h)
        fd_d[k] = (float(f(A, b, c, d + e)) - float(f(A, b, c, d - e))) / (2 * h)
    g, fd = np.concatenate([gc, gd]), np.concatenate([fd_c, fd_d])
    return float(np.linalg.norm(g - fd) / np.linalg.norm(fd)), g, fd


def plot(hist_plain, hist_learned, hist_min, c, d, path):
    plt = pyplot(path)
    if plt is None:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 2]})
    k = np.arange(hist_plain.shape[1])
    for H, name, col in ((hist_plain, "plain CG", "tab:gray"), (hist_learned, "learned c, d", "tab:red"),
                         (hist_min, "minimal residual over K_k (MINRES bound)", "tab:blue")):
        lo, med, hi = np.percentile(H, [10, 50, 90], axis=0)
        ax1.semilogy(k, med, "o-" if col != "tab:blue" else "--", color=col, label=name)
        ax1.fill_between(k, lo, hi, color=col, alpha=0.12)
    ax1.set_xlabel("iteration k")
    ax1.set_ylabel("‖b − A x_k‖ / ‖b‖ (held-out systems, median, 10–90 %)")
    ax1.set_title("unrolled CG, K = 5")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8)
    kk = np.arange(len(c))
    ax2.bar(kk - 0.2, c, width=0.4, label="c_k (α scale)")
    ax2.bar(kk + 0.2, d, width=0.4, label="d_k (β shift)")
    ax2.axhline(1.0, color="k", lw=0.6, ls=":")
    ax2.axhline(0.0, color="k", lw=0.6)
    ax2.set_xlabel("iteration k")
    ax2.set_title("learned corrections (plain CG: c = 1, d = 0)")
    ax2.legend(fontsize=8)
    return save(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="system size (default 50)")
    ap.add_argument("--kappa", type=float, default=100.0, help="condition number bound (default 100)")
    ap.add_argument("--iters", type=int, default=5, help="unrolled CG iterations K (default 5)")
    ap.add_argument("--train", type=int, default=64, help="training systems (default 64)")
    ap.add_argument("--test", type=int, default=64, help="held-out systems (default 64)")
    ap.add_argument("--steps", type=int, default=300, help="Adam steps (default 300)")
    ap.add_argument("--lr", type=float, default=0.02, help="Adam learning rate (default 0.02)")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--png", type=pathlib.Path, default=PNG)
    a = ap.parse_args(argv)

    mod = load()
    K = a.iters
    As, bs = spd_family(a.train, a.n, a.kappa, seed=0)
    At, bt = spd_family(a.test, a.n, a.kappa, seed=1)
    ones = np.ones(K)
    ok = True
    print(f"Learned CG corrections: K = {K}, n = {a.n}, κ ≤ {a.kappa:g}, "
          f"{a.train} training / {a.test} held-out systems")

    e, g, fd = fd_check(mod, As[0], bs[0], ones + 0.1 * np.sin(np.arange(K)), 0.05 * np.cos(np.arange(K)))
    print(f"gradient w.r.t. (c, d), {2 * K} entries, vs central differences (h = 1e-6): rel. error {e:.1e}")
    if not e <= FD_TOL:
        print(f"gradient check FAILED (rel. error {e:.1e} > {FD_TOL:g})")
        ok = False

    loss = batch_loss(mod)
    t0 = time.perf_counter()
    params, hist = train(loss, (jnp.ones(K), jnp.zeros(K)), As, bs, a.steps, a.lr, a.every)
    train_s = time.perf_counter() - t0
    c, d = (np.asarray(p) for p in params)
    held0 = float(loss((jnp.ones(K), jnp.zeros(K)), jnp.asarray(At), jnp.asarray(bt)))
    held1 = float(loss(params, jnp.asarray(At), jnp.asarray(bt)))
    np.set_printoptions(precision=4, suppress=True)
    print(f"training time {train_s:.1f} s (compile included)")
    print(f"learned c = {c}\nlearned d = {d}")
    print(f"training loss: {hist[0][1]:.5f} → {hist[-1][1]:.5f}")
    print(f"held-out loss: {held0:.5f} → {held1:.5f}")

    hv = jax.vmap(mod.cg_history, in_axes=(0, 0, None, None))
    H_plain = np.asarray(hv(jnp.asarray(At), jnp.asarray(bt), jnp.ones(K), jnp.zeros(K)))
    H_learn = np.asarray(hv(jnp.asarray(At), jnp.asarray(bt), params[0], params[1]))
    H_min = np.array([min_residual_history(A, b, K) for A, b in zip(At, bt)])
    print(f"\nmedian ‖b − A x_k‖ / ‖b‖ over the held-out systems, k = 0..{K}:")
    for name, H in (("plain CG", H_plain), ("learned c, d", H_learn), ("minimal residual", H_min)):
        print(f"  {name:<18}" + " ".join(f"{v:8.4f}" for v in np.median(H, axis=0)))
    rp, rl, rm = (float(np.median(H[:, -1])) for H in (H_plain, H_learn, H_min))
    wins = float(np.mean(H_learn[:, -1] < H_plain[:, -1]))
    print(f"median residual after {K} iterations: plain {rp:.4f}, learned {rl:.4f}, minimal {rm:.4f}")
    print(f"held-out systems where the learned iteration beats plain CG at k = {K}: {100 * wins:.0f} %")
    if not held1 < held0 or not rl < rp:
        print("the learned corrections do not beat plain CG on the held-out systems: FAILED")
        ok = False
    if not np.all(H_min[:, -1] <= H_learn[:, -1] * (1 + 1e-9)):
        print("an iterate beat the minimal residual over the Krylov space (impossible): FAILED")
        ok = False

    if not a.no_plot:
        plot(H_plain, H_learn, H_min, c, d, a.png)
    print(f"\n{'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
