"""Gradient checks of the two examples: the first thing to run.

For implicit_solve.la and frechet_inverse.la this prints the model, the adjoint program lagrad
derives for it, and a table comparing lagrad's gradient (``f.grad()``, every input) with
  * a central finite difference of the model along a random direction, per input, and
  * ``jax.grad`` of the same function written in jax.numpy,
then a one-line verdict per model. Exit status 1 on any mismatch.

Run:  python examples/main.py          (from the repository root, or anywhere)
"""
from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:           # the two drivers live beside this file
    sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent))       # lagrad from this checkout when it is not installed

import jax  # noqa: E402
import numpy as np  # noqa: E402

import frechet_inverse  # noqa: E402
import implicit_solve  # noqa: E402

FD_TOL = 1e-6       # central differences (RULES.md, check 1)
JAX_TOL = 1e-10     # the same function differentiated by JAX


def directional_fd(f, args, k, d, h=1e-4) -> float:
    """d/dt f(args with args[k] + t·d) at t = 0, fourth-order central difference."""
    def at(t):
        moved = list(args)
        moved[k] = np.asarray(args[k], float) + t * d
        return float(f(*moved))
    return (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def check(example, seed: int = 7) -> bool:
    """Print the model, its adjoint and the gradient table; True when everything agrees."""
    f = example.load()
    args = example.inputs()
    n = np.shape(args[-1])[0]
    print(f"=== {example.SOURCE.name} (n = {n}) " + "=" * 40)
    print(example.SOURCE.read_text(encoding="utf-8").rstrip())
    print("\nDerived adjoint program:")
    print(f.adjoint())

    grads = f.grad()(*args)
    ref = jax.grad(example.jax_reference, argnums=tuple(range(len(args))))(*args)
    rng = np.random.default_rng(seed)
    print("\n| input | shape    | ⟨∇f, d⟩ lagrad          | central difference      | rel. err | vs jax.grad | ok |")
    print("| ----- | -------- | ----------------------- | ----------------------- | -------- | ----------- | -- |")
    ok = True
    for k, (name, _) in enumerate(f.params):
        d = rng.standard_normal(np.shape(args[k]))
        d = d / np.sqrt(np.mean(d * d))     # entries of size ~1 (a scalar direction is ±1)
        lagrad_dd = float(np.sum(np.asarray(grads[k]) * d))
        fd = directional_fd(f, args, k, d)
        e_fd = abs(lagrad_dd - fd) / max(abs(fd), 1e-300)
        e_jax = rel_err(grads[k], ref[k])
        row_ok = e_fd <= FD_TOL and e_jax <= JAX_TOL
        ok &= row_ok
        shape = "×".join(map(str, np.shape(args[k]))) or "scalar"
        print(f"| {name:<5} | {shape:<8} | {lagrad_dd:>23.16e} | {fd:>23.16e} | {e_fd:8.1e} | "
              f"{e_jax:11.1e} | {'✓' if row_ok else '✗':<2} |")
    verdict = "OK" if ok else "MISMATCH"
    print(f"\n{verdict}: {f.name} — lagrad's gradient {'agrees' if ok else 'DISAGREES'} with central "
          f"differences (≤ {FD_TOL:g}) and jax.grad (≤ {JAX_TOL:g}) for {', '.join(n for n, _ in f.params)}\n")
    return ok


def main() -> int:
    results = [check(implicit_solve), check(frechet_inverse)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
