"""Hessian-vector products of a model with solve, expm and lyap (examples/hvp/hvp.la).

Reproduces the seed-gallery experiment of issue 8, item 5: f.hvp(wrt) — the linearization of
lagrad's derived adjoint program (forward over reverse) — on
    L(F, G, b, t) = bᵀ K⁻¹ b + trace(P E) + log det K,
    E = e^{tF},  F P + P Fᵀ + G Gᵀ = 0,  K = P + E Eᵀ,
checked against central differences of the gradient, (∇L(θ + εv) − ∇L(θ − εv)) / 2ε, for
θ = (F, G, b, t): F reaches lyap (its A argument) and expm, G reaches lyap through its Q argument,
t reaches expm, and all reach the Cholesky solve and logdet. Also checked: the symmetry
⟨w, H v⟩ = ⟨v, H w⟩ of the Hessian.

(Writing this example found a bug, fixed in lagrad/compiler/builder.py: hvp with respect to lyap's
A argument raised "the Fréchet rule of `lyap` is not linear in the tangents", because the builder
folded (dFᵀ)ᵀ to dF while linearizing the adjoint's lyap(Fᵀ, ·), a tangent the rule's linearity
check was not told about; (xᵀ)ᵀ is now folded only while transposing. tests/test_gallery_hvp.py
keeps the case.)

The plot (hvp.png): the relative difference between lagrad's H·v and the central difference of the
gradient as ε goes from 1e-1 to 1e-9. It should show a V: the difference falls as ε² (the
difference quotient's truncation error) down to ~1e-10 near ε ≈ 1e-5, then rises as 1/ε
(rounding in the gradients) — lagrad's hvp is the exact value the differences converge to.

Run:  python examples/hvp/hvp.py [--n 6] [--no-plot]
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))   # lagrad from this checkout
from examples.plotting import pyplot, save  # noqa: E402  (the optional PNG)
import lagrad  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "hvp.la"
PNG = HERE / "hvp.png"
WRT = ["F", "G", "b", "t"]
FD_TOL = 1e-7


def load() -> lagrad.Module:
    return lagrad.loads(SOURCE.read_text(encoding="utf-8"), name=SOURCE.name)


def problem(n: int, seed: int = 0):
    """F stable (−2I plus a small random part), G and b random, t = 0.7; two random directions
    (F's scaled by 0.3, so F ± εv stays stable for every ε used)."""
    rng = np.random.default_rng(seed)
    F = -2.0 * np.eye(n) + 0.4 * rng.standard_normal((n, n))
    G = rng.standard_normal((n, n))
    b = rng.standard_normal(n)
    v = (0.3 * rng.standard_normal((n, n)), rng.standard_normal((n, n)), rng.standard_normal(n), 1.0)
    w = (0.3 * rng.standard_normal((n, n)), rng.standard_normal((n, n)), rng.standard_normal(n), -0.5)
    return (F, G, b, 0.7), v, w


def inner(x, y):
    return float(sum(np.sum(np.asarray(a) * np.asarray(c)) for a, c in zip(x, y)))


def fd_hvp(f, args, v, eps):
    """Central difference of the gradient w.r.t. (F, G, b, t) along v."""
    g = f.grad(wrt=WRT)
    gp = g(*[x + eps * dx for x, dx in zip(args, v)])
    gm = g(*[x - eps * dx for x, dx in zip(args, v)])
    return [(np.asarray(p) - np.asarray(m)) / (2 * eps) for p, m in zip(gp, gm)]


def rel(x, y):
    num = sum(np.sum((np.asarray(a) - np.asarray(c)) ** 2) for a, c in zip(x, y))
    return float(np.sqrt(num / sum(np.sum(np.asarray(c) ** 2) for c in y)))


def plot(eps, errs, path):
    plt = pyplot(path)
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(eps, errs, "o-", label="‖H v (lagrad) − FD of ∇L‖ / ‖FD‖")
    ax.loglog(eps, errs[0] * (np.asarray(eps) / eps[0]) ** 2, ":", color="gray", label="slope 2 (ε²)")
    ax.set_xlabel("ε (central difference of the gradient)")
    ax.set_ylabel("relative difference")
    ax.set_title("f.hvp(wrt=[F, G, b, t]) vs finite differences of f.grad", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6, help="matrix size (default 6)")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--png", type=pathlib.Path, default=PNG)
    a = ap.parse_args(argv)

    mod = load()
    f = mod.hvp_demo
    args, v, w = problem(a.n)
    ok = True
    print(f"L = bᵀ K⁻¹ b + trace(P E) + log det K with expm, lyap, solve; n = {a.n}; L = {float(f(*args)):.10f}")
    hvp = f.hvp(wrt=WRT)
    t0 = time.perf_counter()
    Hv = hvp(args, v)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    Hw = hvp(args, w)
    t_hvp = time.perf_counter() - t0
    g = f.grad(wrt=WRT)
    g(*args)
    t0 = time.perf_counter()
    g(*args)
    t_grad = time.perf_counter() - t0
    print(f"f.hvp(wrt={WRT}): first call {t_first:.2f} s (derivation and compile), then {t_hvp * 1e3:.2f} ms; "
          f"f.grad: {t_grad * 1e3:.2f} ms")

    eps_list = [10.0 ** -k for k in range(1, 10)]
    errs = [rel(Hv, fd_hvp(f, args, v, e)) for e in eps_list]
    print("\nrelative difference of H·v to the central difference of the gradient:")
    for e, r in zip(eps_list, errs):
        print(f"  ε = {e:.0e}   {r:.2e}")
    best = min(errs)
    print(f"hvp vs finite differences of the gradient: best rel. error {best:.1e} "
          f"(at ε = {eps_list[int(np.argmin(errs))]:.0e})")
    if not best <= FD_TOL:
        print(f"hvp check FAILED (best rel. error {best:.1e} > {FD_TOL:g})")
        ok = False
    a1, a2 = inner(w, Hv), inner(v, Hw)
    sym = abs(a1 - a2) / max(abs(a1), abs(a2))
    print(f"symmetry: ⟨w, H v⟩ = {a1:.12e}, ⟨v, H w⟩ = {a2:.12e}, rel. difference {sym:.1e}")
    if not sym <= 1e-10:
        print("the Hessian is not symmetric: FAILED")
        ok = False

    if not a.no_plot:
        plot(eps_list, errs, a.png)
    print(f"\n{'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
