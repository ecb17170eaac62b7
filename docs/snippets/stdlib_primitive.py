"""A primitive in the standard-library form — what a file in lagrad/stdlib/ holds — and its
rule-table row, checked here by the rule table's own tests (tests/test_rules.py).

sqrtm(A): the symmetric square root X of a symmetric positive definite A (X X = A, X SPD).
Differentiating X X = A gives X dX + dX X = dA, a Lyapunov equation: with lyap(A, Q) solving
A Y + Y Aᵀ + Q = 0, dX = lyap(−X, dA) (−X is stable because X is positive definite)."""
import sys

import jax.numpy as jnp

from lagrad.compiler.primitive import Primitive, register
from lagrad.stdlib import shapes


# ---- the definition: this block is what goes into lagrad/stdlib/<family>.py ----------------
def _sqrtm(A):
    """X = V diag(√w) Vᵀ from the eigendecomposition of the symmetric part of A."""
    w, V = jnp.linalg.eigh((A + A.T) / 2)
    return (V * jnp.sqrt(w)) @ V.T


def _sqrtm_shape(types, params):
    return shapes.same([shapes.square(types[0], "sqrtm's argument")], params)


# sqrtm: X = A^½ for A SPD; X dX + dX X = dA, so dX = lyap(−X, dA) (Higham 2008, §6.1)
register(Primitive(
    "sqrtm", _sqrtm, _sqrtm_shape, math="X = A^½, X SPD", domains={0: "spd"},
    frechet="frechet sqrtm(A) -> X { dX = lyap(-X, dA) }"))
# ---- end of the definition ------------------------------------------------------------------

# ---- the row: this line goes into the list ROWS of tests/rows_<family>.py --------------------
sys.path.insert(0, "tests")
from rulebook import M, Row  # noqa: E402

ROWS = [Row("sqrtm", (M,), domains=("spd",), sym=(0,))]
# ---- end of the row -------------------------------------------------------------------------

# Run the checks test_rules.py runs on every row.
import test_rules as rules  # noqa: E402

for row in ROWS:
    for check in (rules.test_value, rules.test_frechet_vs_central_differences,
                  rules.test_adjoint_dot_product, rules.test_grad_matches_jax):
        check(row)
        print(f"{row.id:8} {check.__name__:40} passed")

# And the primitive in a model.
import lagrad  # noqa: E402

f = lagrad.loads("model f(A: f64[n, n]) -> f64 { return trace(sqrtm(A)) }", name="sqrtm.la").f
print()
print(f.adjoint())
