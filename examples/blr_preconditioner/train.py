"""Learn a block low-rank (BLR) preconditioner P ≈ A⁻¹ through Arnoldi, then compare GMRES.

Test matrices (banded, m = 512 and 1024, block size b = 128, p = m / b blocks):
    A = diag(d + shift) + Σ_{o ∈ {1, 2, 3, 10, 40, 100}} (diag(e_o, +o) + diag(f_o, −o)),
    d ~ uniform(0.1, 1), band entries e_o, f_o ~ N(0, 0.4²), shift ∈ {4, 3, 2, 1.5, 1}.
The bands and the diagonal are drawn once per size (seed 0), so along a size only the shift
changes. Scale 0.4: each row has 12 off-diagonal entries of that size (row norm ≈ √12 · 0.4 ≈ 1.4),
so the shifts span easy to nearly singular: at shift 4 A is well conditioned (cond ≈ 2.7, GMRES
needs ≈ 16 iterations without a preconditioner); at shift 1 the smallest eigenvalue modulus is
0.036 (m = 512) and 0.007 (m = 1024, cond ≈ 1.4e3), and GMRES(30) without a preconditioner needs
hundreds of iterations or stalls.

Model (blr_preconditioner.la): P = blr(D, U, V), `op AP(x) = A @ (P @ x)`, `Q, H = arnoldi(AP, v, 10)`;
the loss is Σⱼ H[j+1, j] divided by |mean diag H| (see the .la file: H is linear in P, so the raw
sum is minimized by P → 0; the quotient is scale invariant and 0 at P = A⁻¹), averaged over a few
fixed random start vectors v (jax.vmap of the lagrad Function over v).

Training: Adam written in JAX (jax.numpy, one jitted step) on D, U, V, with the gradient of
jax.value_and_grad of the lagrad Function (lagrad's derived adjoint through the unrolled Arnoldi).
Start from the identity: D[i] = I; U, V small random (scale --init, default 1e-2). They cannot
start at 0: the off-diagonal blocks are U Vᵀ, whose derivative is dU Vᵀ + U dVᵀ, so at U = V = 0
the gradient w.r.t. U and V vanishes (a saddle point) and Adam would never move them.

Comparison: GMRES(30) written here in NumPy, right-preconditioned (solve A M y = b, x = M y),
classical Gram–Schmidt with one re-orthogonalization, Givens rotations, the residual norm
recorded every iteration; the preconditioners are applied as dense matrices made by lagrad models
(`dense(blr(D, U, V))`, `dense(block_jacobi(A, block=128))`). Iterations to ‖b − A x‖ ≤ 1e-8 ‖b‖
and wall times (solve; training and preconditioner setup separately) go to a table
(RESULTS.md, with the machine description) and residual histories to a PNG (optional, matplotlib).

Run (the default run writes RESULTS.md and blr_preconditioner.png next to this file):
    taskset -c 1 python examples/blr_preconditioner/train.py
    python examples/blr_preconditioner/train.py --quick      # m = 256, b = 64, 2 shifts, < 60 s
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))                        # lagrad and benchmarks/ from this checkout
from examples.plotting import pyplot, save  # noqa: E402  (the optional PNG)
from benchmarks.common import machine_description, markdown_table  # noqa: E402  (sets XLA_FLAGS before jax)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import lagrad  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "blr_preconditioner.la"
PNG = HERE / "blr_preconditioner.png"
RESULTS = HERE / "RESULTS.md"

OFFSETS = (1, 2, 3, 10, 40, 100)
SHIFTS = (4.0, 3.0, 2.0, 1.5, 1.0)
BAND_SCALE = 0.4
K_ARNOLDI = 10                                       # fixed in the .la model
FD_TOL = 1e-6


def load() -> lagrad.Module:
    return lagrad.loads(SOURCE.read_text(encoding="utf-8"), name=SOURCE.name)


# ----------------------------------------------------------------------------- test matrices
def band_parts(m: int, seed: int = 0):
    """The shift-free part of A: diag(uniform(0.1, 1)) plus the random bands (drawn once per m)."""
    rng = np.random.default_rng(seed)
    A0 = np.diag(rng.uniform(0.1, 1.0, m))
    for o in OFFSETS:
        if o < m:
            A0 += np.diag(BAND_SCALE * rng.standard_normal(m - o), o)
            A0 += np.diag(BAND_SCALE * rng.standard_normal(m - o), -o)
    return A0


def test_matrix(m: int, shift: float, seed: int = 0):
    return band_parts(m, seed) + shift * np.eye(m)


# ----------------------------------------------------------------------------- training
def init_factors(p: int, b: int, r: int, init: float, seed: int = 1):
    """P = I: identity diagonal blocks; U, V small random (not 0: see the module docstring)."""
    rng = np.random.default_rng(seed)
    D = np.tile(np.eye(b), (p, 1, 1))
    U = init * rng.standard_normal((p, p, b, r))
    V = init * rng.standard_normal((p, p, b, r))
    return D, U, V


def make_loss(mod):
    """The mean over start vectors of the model's loss, as a function of (D, U, V)."""
    f = mod.arnoldi_loss
    batched = jax.vmap(f, in_axes=(None, None, None, None, 0))

    def loss(params, A, vs):
        D, U, V = params
        return jnp.mean(batched(A, D, U, V, vs))
    return loss


def adam_step_fn(loss, lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-12):
    """One jitted Adam step in jax.numpy: (params, m, v, t, A, vs) -> (params, m, v, loss)."""
    vg = jax.value_and_grad(loss)

    @jax.jit
    def step(params, mom, vel, t, A, vs):
        val, g = vg(params, A, vs)
        mom = jax.tree_util.tree_map(lambda m_, g_: b1 * m_ + (1 - b1) * g_, mom, g)
        vel = jax.tree_util.tree_map(lambda v_, g_: b2 * v_ + (1 - b2) * g_ * g_, vel, g)
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        params = jax.tree_util.tree_map(
            lambda x, m_, v_: x - lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + eps), params, mom, vel)
        return params, mom, vel, val
    return step


def train(step, loss_jit, params, A, vs, steps: int, every: int, out=print):
    """Adam from `params`; returns the trained factors, [(step, loss)] and the wall time of the steps."""
    A, vs = jnp.asarray(A), jnp.asarray(vs)
    params = tuple(jnp.asarray(x) for x in params)
    mom = tuple(jnp.zeros_like(x) for x in params)
    vel = tuple(jnp.zeros_like(x) for x in params)
    hist = []
    t0 = time.perf_counter()
    for k in range(steps):
        params, mom, vel, val = step(params, mom, vel, jnp.float64(k + 1), A, vs)
        if k % every == 0:
            hist.append((k, float(val)))
            out(f"      step {k:5d}  loss {float(val):.4f}")
    final = float(loss_jit(params, A, vs))
    hist.append((steps, final))
    jax.block_until_ready(params)
    seconds = time.perf_counter() - t0
    out(f"      step {steps:5d}  loss {final:.4f}   ({seconds:.1f} s)")
    return tuple(np.asarray(x) for x in params), hist, seconds


def fd_check(mod, A, params, v, seed: int = 7, h: float = 1e-5):
    """lagrad's gradient of the model's loss against central differences in one random direction."""
    f = mod.arnoldi_loss
    D, U, V = params
    gD, gU, gV = (np.asarray(g) for g in f.grad(wrt=["D", "U", "V"])(A, D, U, V, v))
    rng = np.random.default_rng(seed)
    E = [rng.standard_normal(x.shape) for x in (D, U, V)]
    nE = np.sqrt(sum(np.sum(e * e) for e in E))
    E = [e / nE for e in E]
    directional = float(np.sum(gD * E[0]) + np.sum(gU * E[1]) + np.sum(gV * E[2]))
    fp = float(f(A, D + h * E[0], U + h * E[1], V + h * E[2], v))
    fm = float(f(A, D - h * E[0], U - h * E[1], V - h * E[2], v))
    fd = (fp - fm) / (2 * h)
    return directional, fd, abs(directional - fd) / max(abs(fd), 1e-300)


# ----------------------------------------------------------------------------- GMRES
def gmres_history(A, M, rhs, tol: float = 1e-8, restart: int = 30, maxiter: int = 3000):
    """Right-preconditioned restarted GMRES in NumPy: A M y = rhs, x = M y (M None: no preconditioner).

    Returns (x, hist, iters): hist[k] = ‖rhs − A x_k‖ / ‖rhs‖ after k iterations (k = 0 … iters),
    the Givens estimate inside a cycle (equal to the true residual in exact arithmetic, since right
    preconditioning leaves the residual unchanged) and the true residual at each restart; iters is
    the first k with the true relative residual ≤ tol (None if maxiter is reached first).
    """
    A = np.asarray(A)
    m = A.shape[0]
    apply_M = (lambda z: z) if M is None else (lambda z: M @ z)
    bn = np.linalg.norm(rhs)
    x = np.zeros(m)
    r = rhs.copy()
    beta = bn
    hist = [1.0]
    it = 0
    while it < maxiter:
        Q = np.zeros((restart + 1, m))
        H = np.zeros((restart + 1, restart))
        cs, sn = np.zeros(restart), np.zeros(restart)
        g = np.zeros(restart + 1)
        Q[0] = r / beta
        g[0] = beta
        j_done = 0
        for j in range(restart):
            w = A @ apply_M(Q[j])
            for _ in range(2):                               # CGS with one re-orthogonalization
                h = Q[:j + 1] @ w
                w = w - Q[:j + 1].T @ h
                H[:j + 1, j] += h
            H[j + 1, j] = np.linalg.norm(w)
            if H[j + 1, j] > 0:
                Q[j + 1] = w / H[j + 1, j]
            for i in range(j):                               # previous rotations on column j
                H[i, j], H[i + 1, j] = cs[i] * H[i, j] + sn[i] * H[i + 1, j], -sn[i] * H[i, j] + cs[i] * H[i + 1, j]
            rho = np.hypot(H[j, j], H[j + 1, j])
            cs[j], sn[j] = H[j, j] / rho, H[j + 1, j] / rho
            H[j, j], H[j + 1, j] = rho, 0.0
            g[j + 1] = -sn[j] * g[j]
            g[j] = cs[j] * g[j]
            it += 1
            j_done = j + 1
            if abs(g[j + 1]) <= tol * bn or it >= maxiter or j == restart - 1:
                break                                        # the true residual is recorded below
            hist.append(abs(g[j + 1]) / bn)
        y = np.linalg.solve(np.triu(H[:j_done, :j_done]), g[:j_done])
        x = x + apply_M(Q[:j_done].T @ y)
        r = rhs - A @ x
        beta = np.linalg.norm(r)
        hist.append(beta / bn)                               # the true residual ends each cycle
        if beta <= tol * bn:
            return x, np.array(hist), it
    return x, np.array(hist), None


def timed_solve(A, M, rhs, tol, restart, maxiter, reps: int = 3):
    """(x, hist, iters, median solve seconds over `reps` runs)."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        x, hist, iters = gmres_history(A, M, rhs, tol, restart, maxiter)
        times.append(time.perf_counter() - t0)
    return x, hist, iters, float(np.median(times))


# ----------------------------------------------------------------------------- plot
def plot(cases, path, restart):
    plt = pyplot(path)
    if plt is None:
        return False
    sizes = sorted({c["m"] for c in cases})
    shifts = sorted({c["shift"] for c in cases}, reverse=True)
    fig, axes = plt.subplots(len(sizes), len(shifts), figsize=(3.2 * len(shifts), 2.8 * len(sizes)),
                             squeeze=False, sharey=True)
    style = {"none": ("tab:gray", "-"), "block-Jacobi": ("tab:blue", "--"), "learned BLR": ("tab:red", "-")}
    for c in cases:
        ax = axes[sizes.index(c["m"])][shifts.index(c["shift"])]
        for name, hist in c["hist"].items():
            col, ls = style[name]
            ax.semilogy(np.arange(len(hist)), hist, color=col, ls=ls, lw=1.2, label=name)
        ax.axhline(c["tol"], color="k", lw=0.6, ls=":")
        done = [it for it in c["iters"].values() if it is not None]
        right = min(max(len(h) for h in c["hist"].values()), int(1.4 * max(done)) + 5) if done else None
        if right is not None:
            ax.set_xlim(0, right)
        stalled = [k for k, it in c["iters"].items() if it is None]
        if stalled:
            ax.text(0.97, 0.97, "not converged in\n" + f"{c['maxiter']} its: " + ", ".join(stalled),
                    transform=ax.transAxes, ha="right", va="top", fontsize=7)
        ax.set_title(f"m = {c['m']}, shift = {c['shift']:g}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xlabel("GMRES iteration", fontsize=8)
    for row in axes:
        row[0].set_ylabel("‖b − A x‖ / ‖b‖", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"GMRES({restart}) residual histories, right-preconditioned", fontsize=10)
    return save(fig, path, dpi=110)


# ----------------------------------------------------------------------------- main
def fmt_it(it, maxiter):
    return str(it) if it is not None else f">{maxiter}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: m = 256, block 64, shifts 4 and 1.5, few steps")
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="matrix sizes m (default 512 1024)")
    ap.add_argument("--block", type=int, default=128, help="block size b (default 128)")
    ap.add_argument("--shifts", type=float, nargs="+", default=list(SHIFTS), help="diagonal shifts")
    ap.add_argument("--rank", type=int, default=8, help="BLR off-diagonal rank r (default 8)")
    ap.add_argument("--steps", type=int, default=600, help="Adam steps per case (default 600)")
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    ap.add_argument("--nvec", type=int, default=8, help="fixed random Arnoldi start vectors (default 8)")
    ap.add_argument("--init", type=float, default=1e-2, help="scale of the random initial U, V (default 1e-2)")
    ap.add_argument("--every", type=int, default=50, help="print the loss every N steps")
    ap.add_argument("--restart", type=int, default=30, help="GMRES restart length (default 30)")
    ap.add_argument("--tol", type=float, default=1e-8, help="GMRES relative residual tolerance (default 1e-8)")
    ap.add_argument("--maxiter", type=int, default=3000, help="GMRES iteration cap (default 3000)")
    ap.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    ap.add_argument("--png", type=pathlib.Path, default=None, help=f"PNG path (default {PNG.name}; quick: none)")
    ap.add_argument("--results", type=pathlib.Path, default=None,
                    help=f"markdown results path (default {RESULTS.name}; quick: none)")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.block, a.shifts, a.steps, a.every = [256], 64, [4.0, 1.5], min(a.steps, 60), min(a.every, 20)
    png = a.png if a.png is not None else (None if a.quick or a.no_plot else PNG)
    results = a.results if a.results is not None else (None if a.quick else RESULTS)
    if a.no_plot:
        png = None
    if a.block != 128:                                # the .la's block_jacobi uses block=128: re-specialize
        src = SOURCE.read_text(encoding="utf-8").replace("block=128", f"block={a.block}")
        mod = lagrad.loads(src, name=SOURCE.name)
    else:
        mod = load()

    ok = True
    loss = make_loss(mod)
    loss_jit = jax.jit(loss)
    step = adam_step_fn(loss, a.lr)
    cases, rows = [], []
    compile_s = {}
    print(f"BLR preconditioner: block {a.block}, rank {a.rank}, Adam {a.steps} steps, lr {a.lr:g}, "
          f"{a.nvec} start vectors, Arnoldi k = {K_ARNOLDI}; GMRES({a.restart}) to {a.tol:g}")
    for m in a.sizes:
        if m % a.block:
            raise SystemExit(f"block size {a.block} does not divide m = {m}")
        p = m // a.block
        A0 = band_parts(m)
        vs = np.random.default_rng(2).standard_normal((a.nvec, m))       # training start vectors
        v_held = np.random.default_rng(3).standard_normal((8, m))        # held-out start vectors
        rhs = np.random.default_rng(4).standard_normal(m)                # the GMRES right-hand side
        params0 = init_factors(p, a.block, a.rank, a.init)

        # the gradient check (once per size, at the start point, on the first shift)
        A = A0 + a.shifts[0] * np.eye(m)
        dirv, fd, e = fd_check(mod, A, params0, vs[0])
        print(f"\nm = {m} (p = {p} blocks): gradient of the Arnoldi loss at P = I, one random direction:"
              f" lagrad {dirv:.10e}, central differences {fd:.10e}, rel. error {e:.1e}")
        if not e <= FD_TOL:
            print(f"gradient check FAILED (rel. error {e:.1e} > {FD_TOL:g})")
            ok = False
        t0 = time.perf_counter()                      # compile the Adam step once per size (one call)
        P0 = tuple(jnp.asarray(x) for x in params0)
        Z0 = tuple(jnp.zeros_like(x) for x in P0)
        jax.block_until_ready(step(P0, Z0, Z0, jnp.float64(1), jnp.asarray(A), jnp.asarray(vs)))
        jax.block_until_ready(loss_jit(P0, jnp.asarray(A), jnp.asarray(vs)))
        jax.block_until_ready(loss_jit(P0, jnp.asarray(A), jnp.asarray(v_held)))
        jax.block_until_ready((mod.blr_matrix(*P0), mod.block_jacobi_matrix(A)))   # compile, not timed below
        compile_s[m] = time.perf_counter() - t0
        print(f"  compile of the jitted Adam step (lagrad gradient through arnoldi): {compile_s[m]:.1f} s")

        for shift in a.shifts:
            A = A0 + shift * np.eye(m)
            print(f"\n  m = {m}, shift = {shift:g}: training")
            params, hist, train_s = train(step, loss_jit, params0, A, vs, a.steps, a.every)
            t0 = time.perf_counter()
            M_blr = np.asarray(mod.blr_matrix(*params))
            blr_setup = time.perf_counter() - t0
            t0 = time.perf_counter()
            M_bj = np.asarray(mod.block_jacobi_matrix(A))
            bj_setup = time.perf_counter() - t0
            case = {"m": m, "shift": shift, "tol": a.tol, "maxiter": a.maxiter, "hist": {}, "iters": {}}
            # the Arnoldi loss of each preconditioner (block-Jacobi: its diagonal blocks, U = V = 0)
            D_bj = np.stack([M_bj[i * a.block:(i + 1) * a.block, i * a.block:(i + 1) * a.block] for i in range(p)])
            Z = np.zeros_like(params0[1])
            as_P = {"none": params0, "block-Jacobi": (D_bj, Z, Z), "learned BLR": params}
            losses = {k: (float(loss_jit(tuple(map(jnp.asarray, P)), A, vs)),
                          float(loss_jit(tuple(map(jnp.asarray, P)), A, v_held))) for k, P in as_P.items()}
            for name, M, setup in (("none", None, 0.0), ("block-Jacobi", M_bj, bj_setup),
                                   ("learned BLR", M_blr, blr_setup)):
                x, h, it, solve_s = timed_solve(A, M, rhs, a.tol, a.restart, a.maxiter)
                true_res = np.linalg.norm(rhs - A @ x) / np.linalg.norm(rhs)
                case["hist"][name] = h
                case["iters"][name] = it
                case.setdefault("solve_s", {})[name] = solve_s
                train_col = f"{train_s:.1f} s" if name == "learned BLR" else "—"
                rows.append((m, f"{shift:g}", name, fmt_it(it, a.maxiter), f"{solve_s * 1e3:.1f} ms",
                             f"{setup * 1e3:.1f} ms" if M is not None else "—", train_col, f"{true_res:.1e}",
                             f"{losses[name][0]:.3f}", f"{losses[name][1]:.3f}"))
                print(f"    {name:<13} GMRES iterations {fmt_it(it, a.maxiter):>6}   solve {solve_s * 1e3:8.1f} ms"
                      f"   final ‖b − A x‖/‖b‖ {true_res:.1e}")
            case["loss"] = hist
            case["train_s"] = train_s
            cases.append(case)

    headers = ("m", "shift", "preconditioner", f"GMRES({a.restart}) its to {a.tol:g}", "solve time",
               "setup (dense M)", "training time", "final rel. residual", "loss (train v)", "loss (held-out v)")
    table = markdown_table(headers, rows)
    print("\n" + table)

    # the checks a run must pass: training lowers the loss; the learned P beats no preconditioner
    for c in cases:
        if not c["loss"][-1][1] < c["loss"][0][1]:
            print(f"m = {c['m']}, shift = {c['shift']:g}: the loss did not decrease: FAILED")
            ok = False
    easy = [c for c in cases if c["shift"] == max(a.shifts)]
    for c in easy:
        il, i0 = c["iters"]["learned BLR"], c["iters"]["none"]
        if il is None or (i0 is not None and il >= i0):
            print(f"m = {c['m']}, shift = {c['shift']:g}: learned BLR does not reduce GMRES iterations: FAILED")
            ok = False

    if png is not None:
        plot(cases, png, a.restart)
    if results is not None:
        write_results(results, a, table, compile_s, cases, png)
    print(f"\n{'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


def observations(cases, maxiter):
    """Bullet lines computed from the run: who wins each case, and what training costs against what it saves."""
    lines = []
    for c in cases:
        it, t = c["iters"], c["solve_s"]
        il, ib, i0 = (it[k] if it[k] is not None else float("inf") for k in ("learned BLR", "block-Jacobi", "none"))
        tag = f"m = {c['m']}, shift {c['shift']:g}"
        if il < ib:
            saved = t["block-Jacobi"] - t["learned BLR"]
            pay = (f"training ({c['train_s']:.1f} s) pays for itself after ≈ {c['train_s'] / saved:,.0f} solves"
                   if saved > 0 else "but no solve time is saved")
            lines.append(f"- {tag}: learned BLR wins, {fmt_it(it['learned BLR'], maxiter)} vs "
                         f"{fmt_it(it['block-Jacobi'], maxiter)} iterations (block-Jacobi); {pay} "
                         f"({t['learned BLR'] * 1e3:.1f} vs {t['block-Jacobi'] * 1e3:.1f} ms per solve).")
        elif il == ib:
            lines.append(f"- {tag}: learned BLR ties with block-Jacobi ({fmt_it(it['learned BLR'], maxiter)} "
                         f"iterations) after {c['train_s']:.1f} s of training — the training is pure cost.")
        else:
            if il == float("inf") and i0 == float("inf"):
                vs0 = f"and, like no preconditioner, does not converge in {maxiter} iterations"
            elif il > i0:
                vs0 = "and also loses to no preconditioner"
            else:
                vs0 = f"though it beats no preconditioner ({fmt_it(it['none'], maxiter)})"
            lines.append(f"- {tag}: **learned BLR loses** to block-Jacobi, {fmt_it(it['learned BLR'], maxiter)} vs "
                         f"{fmt_it(it['block-Jacobi'], maxiter)} iterations, {vs0}.")
    return "\n".join(lines)


def write_results(path, a, table, compile_s, cases, png=None):
    comp = ", ".join(f"m = {m}: {s:.1f} s" for m, s in compile_s.items())
    obs = observations(cases, a.maxiter)
    pic = f"\n![GMRES residual histories]({png.name})\n" if png is not None and png.exists() else ""
    text = f"""# Learned BLR preconditioner: results

Generated by `examples/blr_preconditioner/train.py` ({' '.join(sys.argv[1:]) or 'default run'}).
Block size {a.block}, BLR rank {a.rank}, Adam {a.steps} steps (lr {a.lr:g}) from P = I on
{a.nvec} fixed random Arnoldi start vectors, k = {K_ARNOLDI}; GMRES({a.restart}), right-preconditioned,
written in NumPy in the driver, tolerance ‖b − A x‖ ≤ {a.tol:g}·‖b‖, at most {a.maxiter} iterations;
preconditioners applied as dense matrices. Solve time: median of 3 solves. Setup: building the
dense M from the lagrad model (block-Jacobi includes inverting the diagonal blocks). Training
time: the Adam steps after compilation (compiling the jitted step once per size: {comp}).
Arnoldi loss: Σⱼ H[j+1, j] / |mean diag H| averaged over the start vectors (before → after training).

{table}
{pic}
## Observations (computed by the run)

{obs}

## Discussion

- **Where learned BLR wins:** on the well- to moderately conditioned shifts it needs a few GMRES
  iterations fewer than block-Jacobi with the same block size, and about half of what no
  preconditioner needs. Its off-diagonal rank-r blocks couple neighbouring blocks (the offset-40
  and offset-100 bands cross block boundaries), which block-Jacobi cannot do.
- **Where it loses — near-singular A (shift 1):** block-Jacobi is far better, and the learned P
  barely helps (m = 512) or does not converge at all (m = 1024). The Arnoldi loss is a poor proxy
  there: the learned P has a *lower* loss than block-Jacobi yet much worse GMRES. Ten Arnoldi
  steps from a few random vectors mostly see the large, well-separated part of the spectrum of
  A·P; the few eigenvalues near 0 that GMRES must resolve hardly move the subdiagonal sum.
  Block-Jacobi inverts the dominant near-diagonal coupling exactly.
- **Training cost vs iterations saved:** the saving per solve is below a millisecond at these
  sizes, while training costs seconds to tens of seconds (plus a few seconds of compilation per
  size), so training repays itself only after 10⁴–10⁵ solves with the same A
  (see the observations). Block-Jacobi's setup is a few milliseconds.
- **Overfitting to the start vectors:** the loss on held-out start vectors stays well above the
  training loss on the harder shifts (at shift 1.5 it is about block-Jacobi's), with 10⁵
  (m = 512) to 2.6·10⁵ (m = 1024) parameters fit on 8 Krylov spaces of dimension 11. More start
  vectors (or fresh ones each step) would cost proportionally more training time.
- **Optimization:** Adam at lr 3e-3 makes the loss non-monotone on the hard shifts (spikes,
  visible in the printed training log); the final iterate is used, not the best one.
- **Timing caveats:** A and both preconditioners are applied as dense matrices (m² flops each),
  so a preconditioned iteration costs about twice an unpreconditioned one; a sparse banded A and
  a BLR-structured apply (p·b² + 2·p²·b·r flops) would change the absolute times, not the
  iteration counts. Solve times of a few milliseconds are noisy on a shared machine.

## Machine

{machine_description()}
"""
    path.write_text(text, encoding="utf-8")
    print(f"results written to {path}")


if __name__ == "__main__":
    sys.exit(main())
