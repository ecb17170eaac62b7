"""Learn a preconditioner P by differentiating through 5 Gauss–Seidel sweeps (learned_gauss_seidel.la).

The system is the textbook 4×4 one, A x = b with
    A = [[10, −1, 2, 0], [−1, 11, −1, 3], [2, −1, 10, −1], [0, 3, −1, 8]],  b = [6, 25, −11, 15],
whose solution is x* = [1, 2, −1, 1]. Gauss–Seidel runs on the preconditioned system (P A) x = P b:
with B = P A and L + D = tril(B), one sweep is x ← x + (L + D)⁻¹ P (b − A x), from x₀ = 0; P = I
is plain Gauss–Seidel.

Design (see the .la file for the details):
  * P is a full 4×4 matrix. A diagonal P would do nothing (tril(D A) = D tril(A), so the sweep is
    plain Gauss–Seidel for every diagonal D), and only a full P can reach the ideal iteration
    (P = A⁻¹: B = I, one sweep solves). More generally the loss is invariant under P → D P for
    diagonal D, so the gradient G satisfies Σⱼ Gᵢⱼ Pᵢⱼ = 0 for each row i; the script prints that.
  * Training loss: the squared residual ‖b − A x₅‖² after 5 sweeps. It needs no known solution
    (the example's x* is used for evaluation only). The residual is carried through the sweeps
    recursively (r ← r − A δ), equal to b − A x in exact arithmetic but free of the ~1e-15 floor
    that b − A x hits in floating point.
  * Evaluation: the error ‖x₂₀ − x*‖ after 20 sweeps, computed by running the sweep on the error
    e = x − x* (same iteration, no cancellation). This matters here: plain Gauss–Seidel already
    converges to rounding level on this diagonally dominant A (contraction ≈ 0.09 per sweep,
    ‖x₁₆ − x*‖ ≈ 2e-16), so the textbook iterate x₂₀ is exact to the last bit for P = I and for the
    learned P alike; the table's 20-sweep error is the exact-arithmetic error of the iteration.
    For a number a user sees in floating point, the script also prints how many sweeps each P
    needs to bring the error below 1e-12.
  * Optimizer: Adam written in NumPy (β = 0.9, 0.999) on the loss itself, from P = I, with lagrad's
    gradient f.value_and_grad(wrt="P") — derived through the unrolled loop, the triangular solves
    and the tril mask. Adam's per-entry normalization copes with a loss that starts at ~1e-6 and
    falls by orders of magnitude; plain gradient descent would need its step retuned as it falls.
  * The gradient at P = I is checked entry by entry against central finite differences
    (relative error ≤ 1e-6, exit status 1 otherwise); the run also fails if the trained P does not
    beat P = I at 20 sweeps.
  * Honest caveat: this is a toy. Learning P costs far more than solving a 4×4 system, and P is fit
    to one right-hand side (16 parameters, loss zero on a large set of P, not only at A⁻¹).

Run:  python examples/learned_gauss_seidel.py [--steps 500] [--lr 0.02] [--every 25] [--no-plot]
A PNG of the 20-sweep error against the training step goes to examples/learned_gauss_seidel.png
when matplotlib is installed (optional: pip install matplotlib); otherwise the script says so.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))   # lagrad from this checkout too
from examples.plotting import pyplot, save  # noqa: E402  (the optional PNG)
import lagrad  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "learned_gauss_seidel.la"
PNG = HERE / "learned_gauss_seidel.png"

A = np.array([[10.0, -1.0, 2.0, 0.0],
              [-1.0, 11.0, -1.0, 3.0],
              [2.0, -1.0, 10.0, -1.0],
              [0.0, 3.0, -1.0, 8.0]])
B_RHS = np.array([6.0, 25.0, -11.0, 15.0])
X_STAR = np.array([1.0, 2.0, -1.0, 1.0])
FD_TOL = 1e-6          # relative error allowed between lagrad's gradient and central differences
SWEEP_TOL = 1e-12      # "converged" for the sweeps-needed column


def load() -> lagrad.Module:
    """The module, named by its file name so printed programs say `learned_gauss_seidel.la:LINE`."""
    return lagrad.loads(SOURCE.read_text(encoding="utf-8"), name=SOURCE.name)


def fd_gradient(f, P, h=1e-6):
    """Central differences of the scalar f(P) entry by entry (error O(h²) plus rounding)."""
    G = np.zeros_like(P)
    for idx in np.ndindex(P.shape):
        E = np.zeros_like(P)
        E[idx] = h
        G[idx] = (float(f(P + E)) - float(f(P - E))) / (2 * h)
    return G


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def sweeps_needed(errors, tol=SWEEP_TOL):
    """The first sweep count k (1-based) with ‖x_k − x*‖ < tol, or None within the history."""
    below = np.nonzero(np.asarray(errors) < tol)[0]
    return int(below[0]) + 1 if below.size else None


def train(mod, steps, lr, every, out=print):
    """Adam on P from P = I. Returns the trained P and rows (step, loss at that step's P, 20-sweep error)."""
    vg = mod.gs_residual5.value_and_grad(wrt="P")
    errors = mod.gs_errors20
    P = np.eye(len(B_RHS))
    m, v = np.zeros_like(P), np.zeros_like(P)
    rows = []
    out(f"{'step':>6}  {'loss ‖b − A x₅‖²':>18}  {'error ‖x₂₀ − x*‖':>18}")
    for k in range(steps + 1):
        loss, g = vg(P, A, B_RHS)
        if k % every == 0 or k == steps:
            err20 = float(errors(P, A, X_STAR)[-1])
            rows.append((k, float(loss), err20))
            out(f"{k:6d}  {float(loss):18.3e}  {err20:18.3e}")
        if k == steps:
            break
        g = np.asarray(g)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        P = P - lr * (m / (1 - 0.9 ** (k + 1))) / (np.sqrt(v / (1 - 0.999 ** (k + 1))) + 1e-300)
    return P, rows


def plot(rows, hist_I, hist_P, path):
    """Two panels: the 20-sweep error against the training step, and error against sweep count."""
    plt = pyplot(path)
    if plt is None:
        return False
    steps, _, err20 = zip(*rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.semilogy(steps, err20, "o-")
    ax1.set_xlabel("training step (Adam)")
    ax1.set_ylabel("‖x₂₀ − x*‖ after 20 sweeps")
    ax1.set_title("error after 20 Gauss–Seidel sweeps")
    ax1.grid(True, which="both", alpha=0.3)
    k = np.arange(1, len(hist_I) + 1)
    ax2.semilogy(k, hist_I, "o-", label="P = I (plain Gauss–Seidel)")
    ax2.semilogy(k, hist_P, "s-", label="learned P")
    ax2.axhline(2.2e-16 * np.linalg.norm(X_STAR), color="gray", ls="--", lw=1, label="rounding level of x")
    ax2.set_xticks(range(0, len(hist_I) + 1, 5))
    ax2.set_xlabel("sweep k")
    ax2.set_ylabel("‖x_k − x*‖ (error form)")
    ax2.set_title("error against sweeps")
    ax2.legend()
    ax2.grid(True, which="both", alpha=0.3)
    return save(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500, help="Adam steps (default 500)")
    ap.add_argument("--lr", type=float, default=0.02, help="Adam learning rate (default 0.02)")
    ap.add_argument("--every", type=int, default=25, help="evaluate the 20-sweep error every N steps")
    ap.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    ap.add_argument("--png", type=pathlib.Path, default=PNG, help="where the PNG goes")
    a = ap.parse_args(argv)

    mod = load()
    f = mod.gs_residual5
    I = np.eye(len(B_RHS))
    ok = True

    # 1. the gradient at the start against central differences
    g = np.asarray(f.grad(wrt="P")(I, A, B_RHS))
    g_fd = fd_gradient(lambda P: f(P, A, B_RHS), I)
    e_fd = rel_err(g, g_fd)
    print(f"Gradient of the 5-sweep loss at P = I ({f(I, A, B_RHS):.6e}):")
    print(f"  lagrad f.grad(wrt='P') vs central differences (h = 1e-6, 16 entries): rel. error {e_fd:.1e}")
    row_dot = np.abs(np.sum(g * I, axis=1)).max() / np.linalg.norm(g)
    print(f"  invariance under P → diag·P: max_i |Σ_j G_ij P_ij| / ‖G‖ = {row_dot:.1e} (0 in exact arithmetic)")
    if not e_fd <= FD_TOL:
        print(f"gradient check FAILED (rel. error {e_fd:.1e} > {FD_TOL:g})")
        ok = False

    # 2. training
    print(f"\nAdam on P from P = I: {a.steps} steps, lr = {a.lr:g}")
    P, rows = train(mod, a.steps, a.lr, a.every)

    # 3. the trained P against P = I
    hist_I = np.asarray(mod.gs_errors20(I, A, X_STAR))
    hist_P = np.asarray(mod.gs_errors20(P, A, X_STAR))
    x20_I = np.asarray(mod.gs_solve20(I, A, B_RHS))
    x20_P = np.asarray(mod.gs_solve20(P, A, B_RHS))
    np.set_printoptions(precision=4, suppress=True)
    print(f"\nlearned P (rows scale freely: the loss is invariant under P → diag·P):\n{P}")
    print(f"\n{'':26}{'P = I':>12}{'learned P':>12}")
    print(f"{'loss ‖b − A x₅‖²':26}{rows[0][1]:12.3e}{rows[-1][1]:12.3e}")
    for k in (5, 10, 20):
        print(f"{f'error after {k} sweeps':26}{hist_I[k - 1]:12.3e}{hist_P[k - 1]:12.3e}")
    nI, nP = sweeps_needed(hist_I), sweeps_needed(hist_P)
    print(f"{f'sweeps to error < {SWEEP_TOL:g}':26}{str(nI):>12}{str(nP):>12}")
    print(f"{'‖x₂₀ − x*‖, textbook sweep':26}{np.linalg.norm(x20_I - X_STAR):12.3e}"
          f"{np.linalg.norm(x20_P - X_STAR):12.3e}   (rounding level: both converged)")
    print(f"\ntraining loss: {rows[0][1]:.3e} → {rows[-1][1]:.3e}")
    print(f"error after 20 sweeps: {rows[0][2]:.3e} → {rows[-1][2]:.3e}")
    if not hist_P[-1] < hist_I[-1]:
        print("the learned P does NOT beat P = I after 20 sweeps: FAILED")
        ok = False

    if not a.no_plot:
        plot(rows, hist_I, hist_P, a.png)
    print(f"\n{'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
