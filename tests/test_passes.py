"""Compiler passes: CSE, DCE, the inv rewrite, factorization sharing, the type check."""
import jax
import jax.numpy as jnp
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


SPD_SHARED = """model f(A: f64[n, n], b: f64[n]) -> f64 {
    x = solve(A, b, assume="pos")
    y = solve(A', b)
    return dot(x, y) + logdet(A) + det(A) + trace(inv(A) @ A @ A) + DECL
}"""


@pytest.mark.parametrize("decl", ['0.0', 'sum(cholesky(A))'])
def test_a_matrix_declared_spd_is_factored_once_by_cholesky_for_every_use(decl):
    """solve(A, ·, assume="pos") (or cholesky(A)) declares A SPD: the program's other solves,
    det, logdet and inv of A, forward and adjoint, share its one Cholesky; no LU is made."""
    src = SPD_SHARED.replace("DECL", decl)
    if decl != "0.0":           # the declaration is cholesky(A) alone
        src = src.replace('solve(A, b, assume="pos")', "solve(A, b)")
    f = lagrad.loads(src).f
    for prog in (f.program, f.adjoint(), f.tangent()):
        assert prims(prog).count("chol_factor") == 1 and "lu_factor" not in prims(prog)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 5))
    A, b = X @ X.T + 5 * np.eye(5), rng.standard_normal(5)

    def ref(A, b):
        x = jnp.linalg.solve(A, b)
        extra = jnp.sum(jnp.linalg.cholesky(A)) if decl != "0.0" else 0.0
        return (x @ jnp.linalg.solve(A.T, b) + jnp.linalg.slogdet(A)[1] + jnp.linalg.det(A)
                + jnp.trace(jnp.linalg.inv(A) @ A @ A) + extra)
    np.testing.assert_allclose(f(A, b), ref(A, b), rtol=1e-12)
    for got, want in zip(f.grad(["A", "b"])(A, b), jax.grad(ref, argnums=(0, 1))(A, b)):
        # the Cholesky rule reads A's symmetric part; the others differentiate A as a full
        # matrix, so compare on symmetric perturbations: ⟨Ā, E⟩ for E = Eᵀ
        if got.ndim == 2:
            got, want = 0.5 * (got + got.T), 0.5 * (want + want.T)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


def test_without_an_spd_declaration_det_and_logdet_keep_the_lu():
    f = lagrad.loads('model f(A: f64[n, n], b: f64[n]) -> f64 { return logdet(A) + sum(solve(A, b, assume="sym")) }').f
    assert "chol_factor" not in prims(f.adjoint()) and prims(f.adjoint()).count("lu_factor") == 1
    A = np.array([[2.0, 1.0], [1.0, -3.0]])           # symmetric, indefinite: LU, not Cholesky
    np.testing.assert_allclose(f(A, np.ones(2)), np.log(7.0) + np.sum(np.linalg.solve(A, np.ones(2))), rtol=1e-12)


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


def test_run_passes_names_the_pass_that_breaks_a_program_when_checking(monkeypatch):
    from lagrad.compiler.passes import run_passes
    prog = lagrad.loads("model f(A: f64[n, n]) -> f64[n, n] { return A @ A }").f.program

    def drop_everything(p):
        return p.copy(eqns=[])
    monkeypatch.setenv("LAGRAD_CHECK_PASSES", "1")
    with pytest.raises(CompilerBug, match="drop_everything"):
        run_passes(prog, (drop_everything,))
    monkeypatch.setenv("LAGRAD_CHECK_PASSES", "0")          # an ordinary compile: no check
    assert run_passes(prog, (drop_everything,)).eqns == []


PUSH = lagrad.loads("""
model entry(A: f64[n, n], C: f64[n, n]) -> f64 { return (C @ inv(A))[0, 1] }
model row(X: f64[n, n], Y: f64[n, n]) -> f64[n] { return (X @ Y)[1, :] }
model col(X: f64[n, n], Y: f64[n, n]) -> f64[n] { return (X @ Y)[:, 2] }
model shared(X: f64[n, n], Y: f64[n, n]) -> f64 { P = X @ Y
  return P[0, 0] + sum(P) }
""")


@pytest.mark.parametrize("model,prims,absent", [
    ("entry", {"lu_factor": 1, "lu_solve": 1}, "inv"),     # one solve with one right-hand side
    ("row", {"matmul": 1}, None),
    ("col", {"matmul": 1}, None),
])
def test_index_pushed_into_products(model, prims, absent):
    f = PUSH[model]
    prog = f.program
    counts = {}
    for e in prog.eqns:
        counts[e.prim] = counts.get(e.prim, 0) + 1
    for p, k in prims.items():
        assert counts.get(p, 0) == k, (p, counts)
    if absent:
        assert absent not in counts
    assert all(len(e.outputs[0].type.shape) < 2 for e in prog.eqns if e.prim == "matmul")
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((4, 4)) + 4 * np.eye(4), rng.standard_normal((4, 4))
    want = {"entry": lambda A, C: (C @ np.linalg.inv(A))[0, 1], "row": lambda X, Y: (X @ Y)[1, :],
            "col": lambda X, Y: (X @ Y)[:, 2]}[model]
    np.testing.assert_allclose(f(X, Y), want(X, Y), rtol=1e-12)
    if model == "entry":
        gA, gC = f.grad()(X, Y)
        jA, jC = jax.grad(lambda A, C: (C @ jnp.linalg.inv(A))[0, 1], argnums=(0, 1))(X, Y)
        np.testing.assert_allclose(gA, jA, rtol=1e-10)
        np.testing.assert_allclose(gC, jC, rtol=1e-10)


def test_index_not_pushed_into_a_shared_product():
    prog = PUSH.shared.program
    assert [e for e in prog.eqns if e.prim == "matmul"][0].outputs[0].type.ndim == 2


def _lyap_problem(kind, n=5, seed=7):
    import scipy.linalg as sla
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    if kind == "lyap":
        A = A / np.sqrt(n) - 2 * np.eye(n)
        ref = lambda A, Q: sla.solve_continuous_lyapunov(A, -Q)   # noqa: E731
    else:
        A = 0.6 * A / np.max(np.abs(np.linalg.eigvals(A)))
        ref = sla.solve_discrete_lyapunov
    return A, rng.standard_normal((n, n)), rng.standard_normal((n, n)), ref


@pytest.mark.parametrize("kind", ["lyap", "dlyap"])
def test_a_lyapunov_factor_carries_every_solve_that_does_not_depend_on_it(kind):
    """`fuse_factor_solves`: the factor and every apply(F, Q, trans) whose Q does not depend on F
    become one K_factor_solve (the solves ride in the factor's loop), transposed or not; the
    factor stays an output only where something else reads it (a tangent's solve, whose
    right-hand side depends on X), and is left out (factor=false, no step stored) otherwise."""
    two = lagrad.loads(f"model f(A: f64[n, n], Q: f64[n, n], P: f64[n, n]) -> f64[n, n] "
                       f"{{ return {kind}(A, Q) + 2 * {kind}(A, P) }}").f
    p = prims(two.program)
    assert p.count(f"{kind}_factor_solve") == 1 and f"{kind}_factor" not in p and f"{kind}_apply" not in p
    fused = two.program.eqns[p.index(f"{kind}_factor_solve")]
    assert fused.param("factor") is False and fused.param("trans") is None and len(fused.outputs) == 2
    first_t = lagrad.loads(f"model g(A: f64[n, n], Q: f64[n, n]) -> f64[n, n] {{ return {kind}(A', Q) }}").g
    assert prims(first_t.program) == [f"{kind}_factor_solve"]
    assert first_t.program.eqns[0].param("trans") == (True,)
    tangent = str(first_t.tangent())
    assert f"{kind}_factor_solve(A, Q, trans=(true,))" in tangent      # the factor is kept…
    assert f"{kind}_apply(" in tangent                                  # …for the tangent's solve
    A, Q, P, ref = _lyap_problem(kind)
    np.testing.assert_allclose(two(A, Q, P), ref(A, Q) + 2 * ref(A, P), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(first_t(A, Q), ref(A.T, Q), rtol=1e-10, atol=1e-12)
    dA = np.random.default_rng(1).standard_normal(A.shape)
    _, dX = first_t.jvp((A, Q), (dA, np.zeros_like(Q)))
    fd = (ref((A + 1e-6 * dA).T, Q) - ref((A - 1e-6 * dA).T, Q)) / 2e-6
    np.testing.assert_allclose(dX, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", ["lyap", "dlyap"])
def test_the_adjoint_solve_of_a_loss_linear_in_x_rides_in_the_forward_loop(kind):
    """sum(W ⊙ K(A, Q)): the seed W ⊙ ȳ does not depend on X, so the adjoint's transposed solve
    joins the forward solve in the factor's loop and no step is stored. Its right-hand side is
    computed after the forward solve's place, so the pass reorders (a valid order: typecheck).
    When the program is to be cut at its seed (vjp, jax.grad through the bridge) the seed's
    solve stays out of the forward part, which reads the factor instead."""
    from lagrad.compiler.split import split_adjoint
    f = lagrad.loads(f"model loss(A: f64[n, n], Q: f64[n, n], W: f64[n, n]) -> f64 "
                     f"{{ return sum(W * {kind}(A, Q)) }}").loss
    adj = f.adjoint()
    typecheck(adj)
    assert prims(adj).count(f"{kind}_factor_solve") == 1 and f"{kind}_apply" not in prims(adj)
    fused = next(e for e in adj.eqns if e.prim == f"{kind}_factor_solve")
    assert fused.param("factor") is False and fused.param("trans") == (False, True)
    c = f._static()
    cut = c.adjoint(tuple(range(c.n_in)), keep=True, split=True)
    fwd, bwd = split_adjoint(cut, c.n_in, c.n_out)
    assert f"{kind}_factor_solve" in prims(fwd) and f"{kind}_apply" in prims(bwd)
    A, Q, W, ref = _lyap_problem(kind)
    S, X = ref(A.T, W), ref(A, Q)
    want_A = S @ X.T + S.T @ X if kind == "lyap" else S @ A @ X.T + S.T @ A @ X
    for gA, gQ in (f.grad(["A", "Q"])(A, Q, W), jax.grad(f, argnums=(0, 1))(A, Q, W),
                   f.vjp(A, Q, W)[1](1.0)[:2]):
        np.testing.assert_allclose(gQ, S, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(gA, want_A, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", ["lyap", "dlyap"])
def test_fused_solves_in_a_mixed_model_agree_with_jax_on_every_path(kind):
    """Four solves with one A: two whose right-hand sides are inputs (fused, one transposed), a
    seed that does not depend on X (W) and one that does (X ⊙ Y): every gradient path (grad,
    vjp and jax.grad through the split bridge, hvp, jvp) against jax of the Kronecker-vectorized
    equation (tests/rows_lyap.py)."""
    from rows_lyap import dlyap_ref, lyap_ref
    ref = lyap_ref if kind == "lyap" else dlyap_ref
    f = lagrad.loads(f"""model mix(A: f64[n, n], Q: f64[n, n], P: f64[n, n], W: f64[n, n]) -> f64 {{
        X = {kind}(A, Q)
        Y = {kind}(A', P)
        return sum(W * X) + sum(X * Y)
    }}""").mix

    def g(A, Q, P, W):
        X, Y = ref(A, Q), ref(A.T, P)
        return jnp.sum(W * X) + jnp.sum(X * Y)
    A, Q, P, ref_np = _lyap_problem(kind)
    W = np.random.default_rng(2).standard_normal(A.shape)
    args = tuple(jnp.asarray(x) for x in (A, Q, P, W))
    want = jax.grad(g, argnums=(0, 1, 2, 3))(*args)
    adj = str(f.adjoint())
    assert f"{kind}_factor_solve(A, Q, P, trans=(false, true))" in adj     # factor kept for the seeds
    for got in (f.grad()(*args), jax.grad(f, argnums=(0, 1, 2, 3))(*args), f.vjp(*args)[1](1.0)):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
    D = jnp.asarray(np.random.default_rng(3).standard_normal(A.shape))
    hv = f.hvp("A")(args, D)
    want_hv = jax.jvp(lambda a: jax.grad(g)(a, *args[1:]), (args[0],), (D,))[1]
    np.testing.assert_allclose(hv, want_hv, rtol=1e-8, atol=1e-10)
    _, dy = f.jvp(args, (D, args[1], args[2], args[3]))
    _, want_dy = jax.jvp(g, args, (D, args[1], args[2], args[3]))
    np.testing.assert_allclose(dy, want_dy, rtol=1e-9, atol=1e-11)
