"""Reproduces the question "can I register a custom Fréchet derivative for inv?".

f(x) = (C·inv(A + xB))[end, end] for 40×40 A, B, C (frechet_inverse.la). lagrad derives its
reverse mode (``f.grad``) and its forward mode (``f.jvp``) from the standard library's rule for
inv, dX = −X dA X; this script checks both against the closed form −(C M⁻¹ B M⁻¹)[end, end],
M = A + xB, and a central finite difference, prints the derived adjoint program, and shows that
a primitive of your own can carry the same rule (``lagrad.primitive(..., frechet=...)``) while
the standard library's rule for inv cannot be replaced.

Run:  python examples/frechet_inverse.py        exit status 1 if the values disagree beyond 1e-8.
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.append(str(pathlib.Path(__file__).resolve().parents[1]))   # lagrad from this checkout if not installed
import lagrad  # noqa: E402

SOURCE = pathlib.Path(__file__).with_name("frechet_inverse.la")
MODEL = "frechet_inverse"
TOL = 1e-8          # relative agreement demanded of every derivative below
X0 = 2.3            # the point x at which we differentiate (as in SPEC §1)


def load() -> lagrad.Function:
    """The model, named by its file name so printed programs say `frechet_inverse.la:LINE`."""
    return lagrad.loads(SOURCE.read_text(encoding="utf-8"), name=SOURCE.name)[MODEL]


def inputs(n: int = 40, seed: int = 0):
    """(x, A, B, C): A = randn + n·I is well conditioned, so M = A + xB is too at x = 2.3."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) + n * np.eye(n)
    B = rng.standard_normal((n, n))
    C = rng.standard_normal((n, n))
    return X0, A, B, C


def jax_reference(x, A, B, C):
    """The same function in jax.numpy (what `jax.grad` differentiates for comparison)."""
    import jax.numpy as jnp
    return (C @ jnp.linalg.inv(A + x * B))[-1, -1]


def closed_form(x, A, B, C) -> float:
    """df/dx = −(C M⁻¹ B M⁻¹)[end, end] with M = A + xB (from dM⁻¹ = −M⁻¹ dM M⁻¹)."""
    Minv = np.linalg.inv(A + x * B)
    return float(-(C @ Minv @ B @ Minv)[-1, -1])


def central_difference(fun, x: float, h: float = 1e-3) -> float:
    """Fourth-order central difference of a scalar function of a scalar (error O(h⁴))."""
    return float((-fun(x + 2 * h) + 8 * fun(x + h) - 8 * fun(x - h) + fun(x - 2 * h)) / (12 * h))


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def custom_rule_demo(x, A, B, C, reference: float) -> bool:
    """A stdlib rule may be restated in a file but not replaced; a user primitive with inv's rule
    gives the same dx."""
    import jax.numpy as jnp
    lagrad.loads("frechet inv(A) -> X { dX = -X @ dA @ X }\n", name="restate_inv.la")
    print("  `frechet inv(A) -> X { dX = -X @ dA @ X }` in a file -> accepted: the rule inv has")
    try:
        lagrad.loads("frechet inv(A) -> X { dX = -X @ dA }\n", name="replace_inv.la")
        print("  replacing inv's rule was accepted (expected a RuleError)")
        return False
    except lagrad.RuleError as e:
        print(f"  `frechet inv(A) -> X {{ dX = -X @ dA }}` -> RuleError: {str(e).splitlines()[0]}")
    lagrad.primitive("my_inv", jnp.linalg.inv, frechet="frechet my_inv(A) -> X { dX = -X @ dA @ X }")
    g = lagrad.loads(SOURCE.read_text(encoding="utf-8").replace("inv(M)", "my_inv(M)"),
                     name="frechet_my_inv.la")[MODEL]
    dx = float(g.grad(wrt="x")(x, A, B, C))
    ok = rel_err(dx, reference) <= TOL
    print(f"  lagrad.primitive('my_inv', jnp.linalg.inv, frechet=...) -> f.grad = {dx:.16e}"
          f"  (rel. err {rel_err(dx, reference):.1e})")
    return ok


def main() -> int:
    f = load()
    x, A, B, C = inputs()
    args = (x, A, B, C)
    value = float(f(*args))
    reverse = float(f.grad(wrt="x")(*args))
    _, forward = f.jvp(args, (1.0, 0 * A, 0 * B, 0 * C))
    forward = float(forward)
    exact = closed_form(*args)
    fd = central_difference(lambda t: float(f(t, A, B, C)), x)

    print(f"f(x) = (C·inv(A + xB))[end, end] at x = {x}, n = {A.shape[0]}")
    print(f"  {'f(x)':<40}= {value:.16e}")
    rows = [("reverse mode  f.grad(wrt='x')", reverse), ("forward mode  f.jvp, tangent (1,0,0,0)", forward),
            ("closed form   -(C M⁻¹ B M⁻¹)[end,end]", exact), ("central finite difference", fd)]
    for label, v in rows:
        print(f"  {label:<40}= {v:.16e}   rel. err vs closed form {rel_err(v, exact):.1e}")
    ok = all(rel_err(v, exact) <= TOL for _, v in rows)

    print("\nThe derived adjoint program (reverse mode, wrt x):")
    print(f.adjoint(wrt="x"))
    print("\nA custom Fréchet rule:")
    ok = custom_rule_demo(*args, exact) and ok
    print(f"\n{'OK' if ok else 'MISMATCH'}: reverse mode, forward mode, closed form and finite "
          f"difference {'agree' if ok else 'disagree'} to {TOL:g} relative")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
