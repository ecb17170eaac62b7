"""Rule-table rows of the Krylov solvers `cg` and `gmres` (lagrad/stdlib/krylov.py).

Each row's operator is built directly as a program, K(v) = A v with A a captured input (the
primitive's second input), so the table's checks apply unchanged: the value against a dense
solve, the implicit Fréchet rule against central differences (in b and in A through the
operator body), the dot-product test of the derived adjoint, jax.grad of the dense solve,
and the transpose rule (a solve with the transposed operator)."""
from __future__ import annotations

import jax.numpy as jnp

from lagrad.compiler.builder import Builder
from lagrad.compiler.ir import Namer, Program
from lagrad.compiler.operators import Operator
from lagrad.compiler.types import TensorType
from rulebook import Row


def matvec_operator(n, name="K"):
    """The operator v ↦ A v with A captured: inputs [v, A]."""
    b = Builder(Namer())
    v = b.namer.var("v", TensorType("f64", (n,)))
    A = b.namer.var("A", TensorType("f64", (n, n)))
    out = b.wrap(A) @ b.wrap(v)
    return Operator(name, Program(name, [v, A], b.eqns, [out.atom], kind="operator"))


def _solve(b, A):
    return jnp.linalg.solve(A, b)


K4 = matvec_operator(4)
ROWS = [
    Row("cg", ((4,), (4, 4)), {"K": K4, "nk": 1, "tol": 1e-14}, domains=(None, "spd"), sym=(1,),
        ref=_solve, tag="spd"),
    Row("cg", ((4,), (4, 4)), {"K": K4, "nk": 1, "tol": 1e-14, "M": None, "maxiter": 40},
        domains=(None, "spd"), sym=(1,), ref=_solve, tag="maxiter"),
    Row("gmres", ((4,), (4, 4)), {"K": K4, "nk": 1, "tol": 1e-14}, domains=(None, "wellcond"), ref=_solve,
        tag="restart30"),
    Row("gmres", ((4,), (4, 4)), {"K": K4, "nk": 1, "tol": 1e-14, "restart": 2, "maxiter": 200},
        domains=(None, "wellcond"), ref=_solve, tag="restart2"),
]
