"""Compiler passes: CSE, DCE, the inv rewrite, factorization sharing, the type check."""
import numpy as np
import pytest

import lagrad
from lagrad.compiler.ir import Eqn, Var
from lagrad.compiler.passes import CompilerBug, typecheck
from lagrad.compiler.types import TensorType


def prims(prog):
    return [e.prim for e in prog.eqns]


def test_cse_merges_repeated_work():
    f = lagrad.loads("model f(A: f64[n, n]) -> f64 { return sum(A @ A) + sum(A @ A) }").f
    assert prims(f.program).count("matmul") == 1


def test_dce_drops_unused_work():
    f = lagrad.loads("model f(A: f64[n, n]) -> f64 { B = inv(A); C = A @ A; return trace(A) }").f
    assert prims(f.program) == ["trace"]


def test_inv_times_matrix_becomes_solve():
    f = lagrad.loads("model f(A: f64[n, n], B: f64[n, n]) -> f64[n, n] { return inv(A) @ B }").f
    assert "lu_inv" not in prims(f.program) and "lu_solve" in prims(f.program)
    g = lagrad.loads("model g(A: f64[n, n], B: f64[n, n]) -> f64[n, n] { return B @ inv(A) }").g
    assert "lu_inv" not in prims(g.program)
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((4, 4)) + 4 * np.eye(4), rng.standard_normal((4, 4))
    np.testing.assert_allclose(f(A, B), np.linalg.solve(A, B), rtol=1e-12)
    np.testing.assert_allclose(g(A, B), B @ np.linalg.inv(A), rtol=1e-12)
    h = lagrad.loads("model h(A: f64[n, n], b: f64[n]) -> f64[n] { return b @ inv(A) }").h
    np.testing.assert_allclose(h(A, B[0]), B[0] @ np.linalg.inv(A), rtol=1e-12)


def test_solve_and_its_adjoint_share_one_factorization():
    f = lagrad.loads("model f(K: f64[n, n], b: f64[n]) -> f64 { return mean(solve(K, b)) }").f
    adj = f.adjoint()
    assert prims(adj).count("lu_factor") == 1
    solves = [e for e in adj.eqns if e.prim == "lu_solve"]
    assert sorted(e.param("trans") for e in solves) == [False, True]
    assert len({id(e.inputs[0]) for e in solves}) == 1
    spd = lagrad.loads("model f(K: f64[n, n], b: f64[n]) -> f64 { return mean(solve(K, b, assume=\"pos\")) }").f
    assert prims(spd.adjoint()).count("chol_factor") == 1


def test_inverse_written_pipeline_gradient_uses_one_lu():
    f = lagrad.loads("model f(theta: f64[n, n], b: f64[n]) -> f64 { return mean(inv(2 * theta) @ b) }").f
    adj = f.adjoint()
    assert prims(adj).count("lu_factor") == 1 and "lu_inv" not in prims(adj)


def test_det_logdet_inv_share_the_lu():
    f = lagrad.loads("model f(A: f64[n, n]) -> f64 { return logdet(A) + det(A) + trace(inv(A)) }").f
    assert prims(f.program).count("lu_factor") == 1
    assert prims(f.adjoint()).count("lu_factor") == 1


def test_typecheck_catches_ill_typed_programs():
    f = lagrad.loads("model f(A: f64[n, n]) -> f64[n, n] { return A @ A }").f
    prog = f.program
    e = prog.eqns[0]
    bad_out = Var(e.outputs[0].name, TensorType("f64", (3,)))
    broken = prog.copy(eqns=[Eqn(e.prim, e.inputs, e.params, (bad_out,), e.span)], outputs=[bad_out])
    with pytest.raises(CompilerBug, match="has type"):
        typecheck(broken)
    with pytest.raises(CompilerBug, match="never defined"):
        typecheck(prog.copy(eqns=[]))
