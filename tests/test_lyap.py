"""lyap and dlyap beyond the rule table: scipy as the reference on random, defective and strongly
non-normal matrices; the gradient against finite differences and the explicit adjoint formula
(and the classic lyap(A, Ḡ) bug); the shared factor in derived programs; NaN on unstable
input; and jax.jit / jax.vmap of models that use them."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla

import lagrad

MODELS_TEXT = """
model lyap_of(A: f64[n, n], Q: f64[n, n]) -> f64[n, n] { return lyap(A, Q) }
model dlyap_of(A: f64[n, n], Q: f64[n, n]) -> f64[n, n] { return dlyap(A, Q) }
model loss(A: f64[n, n], Q: f64[n, n], W: f64[n, n]) -> f64 { return sum(W * lyap(A, Q)) }
model dloss(A: f64[n, n], Q: f64[n, n], W: f64[n, n]) -> f64 { return sum(W * dlyap(A, Q)) }
model two_uses(A: f64[n, n], Q: f64[n, n]) -> f64 { return sum(lyap(A, Q) * lyap(A', Q)) }
"""
MODELS = lagrad.loads(MODELS_TEXT, name="lyap_tests.la")


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def jordan(n, lam, off):
    """A defective matrix: one Jordan block λ I + off·N."""
    return lam * np.eye(n) + off * np.eye(n, k=1)


STABLE = {
    "random": lambda rng: rng.standard_normal((8, 8)) / np.sqrt(8) - 1.5 * np.eye(8),
    "defective": lambda rng: jordan(6, -1.0, 1.0),
    "nonnormal": lambda rng: 10.0 * np.triu(rng.standard_normal((6, 6)), 1) - np.eye(6),
    "near_axis": lambda rng: np.array([[-1e-2, 5.0], [-5.0, -1e-2]]),
    "one": lambda rng: np.array([[-3.0]]),
}

CONTRACTIVE = {
    "random": lambda rng: (lambda A: 0.9 * A / np.max(np.abs(np.linalg.eigvals(A))))(rng.standard_normal((8, 8))),
    "defective": lambda rng: jordan(6, 0.5, 1.0),
    "nonnormal": lambda rng: 5.0 * np.triu(rng.standard_normal((6, 6)), 1) + 0.3 * np.eye(6),
}


@pytest.mark.parametrize("case", sorted(STABLE))
def test_lyap_matches_scipy(case):
    """lyap(A, Q) = scipy's solve_continuous_lyapunov(A, −Q) (scipy solves A X + X Aᵀ = Q)."""
    rng = np.random.default_rng(len(case))
    A = STABLE[case](rng)
    Q = rng.standard_normal(A.shape)
    assert bool(lagrad.is_stable(A))
    assert rel(MODELS.lyap_of(A, Q), sla.solve_continuous_lyapunov(A, -Q)) <= 1e-10
    assert rel(MODELS.lyap_of(A.T, Q), sla.solve_continuous_lyapunov(A.T, -Q)) <= 1e-10


@pytest.mark.parametrize("case", sorted(CONTRACTIVE))
def test_dlyap_matches_scipy(case):
    """dlyap(A, Q) = scipy's solve_discrete_lyapunov(A, Q) (the same sign)."""
    rng = np.random.default_rng(len(case) + 100)
    A = CONTRACTIVE[case](rng)
    Q = rng.standard_normal(A.shape)
    assert bool(lagrad.is_schur_stable(A))
    assert rel(MODELS.dlyap_of(A, Q), sla.solve_discrete_lyapunov(A, Q)) <= 1e-10


def _problem(seed=0, n=6):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) / np.sqrt(n) - 1.2 * np.eye(n)
    Q, W = rng.standard_normal((n, n)), rng.standard_normal((n, n))     # W non-symmetric
    return A, Q, W


def test_gradient_matches_explicit_formula_and_finite_differences():
    A, Q, W = _problem()
    X = sla.solve_continuous_lyapunov(A, -Q)
    S = sla.solve_continuous_lyapunov(A.T, -W)                 # S = lyap(Aᵀ, W)
    gA, gQ = MODELS.loss.grad("A, Q")(A, Q, W)
    assert rel(gQ, S) <= 1e-10                                 # Q̄ = S
    assert rel(gA, S @ X.T + S.T @ X) <= 1e-10                 # Ā = S Xᵀ + Sᵀ X
    rng = np.random.default_rng(1)
    h = 1e-6
    for arg, g in ((0, gA), (1, gQ)):
        D = rng.standard_normal(A.shape)
        plus, minus = [A, Q, W], [A, Q, W]
        plus[arg] = plus[arg] + h * D
        minus[arg] = minus[arg] - h * D
        fd = (float(MODELS.loss(*plus)) - float(MODELS.loss(*minus))) / (2 * h)
        assert abs(float(np.sum(np.asarray(g) * D)) - fd) <= 1e-7 * max(1.0, abs(fd))


def test_the_classic_bug_gives_a_different_answer():
    """Using lyap(A, Ḡ) for the adjoint (instead of lyap(Aᵀ, Ḡ)) is wrong for non-normal A and
    non-symmetric Ḡ; lagrad's derived adjoint matches the right formula, not the wrong one."""
    A, Q, W = _problem(seed=2)
    X = sla.solve_continuous_lyapunov(A, -Q)
    S_right = sla.solve_continuous_lyapunov(A.T, -W)
    S_wrong = sla.solve_continuous_lyapunov(A, -W)
    right, wrong = S_right @ X.T + S_right.T @ X, S_wrong @ X.T + S_wrong.T @ X
    assert rel(wrong, right) > 1e-2 and rel(S_wrong, S_right) > 1e-2
    gA, gQ = MODELS.loss.grad("A, Q")(A, Q, W)
    assert rel(gA, right) <= 1e-10 and rel(gQ, S_right) <= 1e-10
    assert rel(gA, wrong) > 1e-2


def test_dlyap_gradient_matches_explicit_formula():
    rng = np.random.default_rng(3)
    A = CONTRACTIVE["random"](rng)
    Q, W = rng.standard_normal(A.shape), rng.standard_normal(A.shape)
    X = sla.solve_discrete_lyapunov(A, Q)
    S = sla.solve_discrete_lyapunov(A.T, W)                    # S = dlyap(Aᵀ, W)
    gA, gQ = MODELS.dloss.grad("A, Q")(A, Q, W)
    assert rel(gQ, S) <= 1e-10
    assert rel(gA, S @ A @ X.T + S.T @ A @ X) <= 1e-10        # Ā = S A Xᵀ + Sᵀ A X


@pytest.mark.parametrize("model,kind", [("loss", "lyap"), ("dloss", "dlyap"), ("two_uses", "lyap")])
def test_adjoint_shares_one_factor_and_backward_is_products(model, kind):
    text = str(getattr(MODELS, model).adjoint())
    # one factor loop, which carries the forward solves (`fuse_factor_solves`)
    assert text.count(f"{kind}_factor_solve(") == 1 and f"{kind}_factor(" not in text
    assert " inv(" not in text and "lu_" not in text
    assert f"= {kind}(" not in text                           # every solve lowered to the factor
    if model == "two_uses":
        # the seeds depend on X: the backward pass (the lines that read the cotangent) runs
        # applies of the kept factor and products only
        assert f"{kind}_apply(" in text and "trans=true" in text
        back = [ln for ln in text.splitlines() if "_bar" in ln.split("=")[0]]
        assert back and not any(f"{kind}_factor" in ln for ln in back)
    else:
        # a loss linear in X: the seed W does not depend on X, so the adjoint's transposed solve
        # rides in the same loop and no step is stored; the rest of the backward pass is products
        assert "factor=false, trans=(false, true)" in text and f"{kind}_apply(" not in text


def test_two_uses_gradient_matches_finite_differences():
    A, Q, _ = _problem(seed=4, n=5)
    gA = MODELS.two_uses.grad("A")(A, Q)
    D = np.random.default_rng(5).standard_normal(A.shape)
    h = 1e-6
    fd = (float(MODELS.two_uses(A + h * D, Q)) - float(MODELS.two_uses(A - h * D, Q))) / (2 * h)
    assert abs(float(np.sum(np.asarray(gA) * D)) - fd) <= 1e-7 * max(1.0, abs(fd))


def test_hessian_vector_product_matches_jax():
    """hvp differentiates the adjoint again: the Fréchet rule of lyap applied to its own output."""
    from rows_lyap import lyap_ref
    A, Q, W = _problem(seed=6, n=4)
    D = np.random.default_rng(7).standard_normal(A.shape)

    def f(A):
        return jnp.sum(W * lyap_ref(A, Q))
    want = jax.jvp(jax.grad(f), (jnp.asarray(A),), (jnp.asarray(D),))[1]
    assert rel(MODELS.loss.hvp("A")((A, Q, W), D), want) <= 1e-9


UNSTABLE = {
    "random": lambda rng: rng.standard_normal((6, 6)),
    "antistable": lambda rng: -STABLE["random"](rng),
    "imaginary_axis": lambda rng: np.array([[0.0, 1.0], [-1.0, 0.0]]),
    "zero": lambda rng: np.zeros((3, 3)),
    "one_positive": lambda rng: np.diag([-1.0, -2.0, 1e-3]),
}


@pytest.mark.parametrize("case", sorted(UNSTABLE))
def test_unstable_matrix_gives_nan_and_is_stable_false(case):
    A = UNSTABLE[case](np.random.default_rng(8))
    n = A.shape[0]
    Q, W = np.eye(n), np.ones((n, n))
    assert not bool(lagrad.is_stable(A))
    assert np.isnan(np.asarray(MODELS.lyap_of(A, Q))).all()
    assert np.isnan(np.asarray(MODELS.loss.grad("A")(A, Q, W))).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_matrix_gives_k_minus_one_and_nan(bad):
    """A non-finite A (the iteration's loop state starts from ‖A + I‖_F, which is then not
    finite): K = −1 for the factor alone and fused with its forward solve, and lyap and its
    gradient are NaN."""
    from lagrad.stdlib.lyap import lyap_factor_impl, lyap_factor_solve_impl
    A = STABLE["random"](np.random.default_rng(2))
    A[1, 2] = bad
    n = A.shape[0]
    Q, W = np.eye(n), np.ones((n, n))
    assert int(jax.jit(lyap_factor_impl)(jnp.asarray(A))[-1]) == -1
    F, X = jax.jit(lyap_factor_solve_impl)(jnp.asarray(A), jnp.asarray(Q))
    assert int(F[-1]) == -1 and np.isnan(np.asarray(X)).all()
    assert not bool(lagrad.is_stable(A))
    assert np.isnan(np.asarray(MODELS.lyap_of(A, Q))).all()
    assert np.isnan(np.asarray(MODELS.loss.grad("A")(A, Q, W))).all()


@pytest.mark.parametrize("A", [np.eye(3), 1.01 * np.eye(2), np.array([[0.0, 1.0], [-1.0, 0.0]]),
                               2.0 * np.random.default_rng(9).standard_normal((5, 5))],
                         ids=["identity", "radius-1.01", "rotation", "random-big"])
def test_dlyap_spectral_radius_at_least_one_gives_nan(A):
    assert not bool(lagrad.is_schur_stable(A))
    assert np.isnan(np.asarray(MODELS.dlyap_of(A, np.eye(A.shape[0])))).all()


def test_stability_helpers_jit_vmap_and_reject_non_square():
    As = np.stack([STABLE["random"](np.random.default_rng(0)), -STABLE["random"](np.random.default_rng(0))])
    assert list(np.asarray(jax.vmap(lagrad.is_stable)(jnp.asarray(As)))) == [True, False]
    assert bool(jax.jit(lagrad.is_schur_stable)(0.5 * np.eye(3)))
    with pytest.raises(lagrad.LagradError, match="square"):
        lagrad.is_stable(np.ones((2, 3)))


def test_jit_and_vmap_through_the_jax_bridge():
    rng = np.random.default_rng(13)
    As = np.stack([rng.standard_normal((4, 4)) / 2 - 1.5 * np.eye(4) for _ in range(3)])
    Q, W = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    f = MODELS.loss
    vals = jax.vmap(f, in_axes=(0, None, None))(jnp.asarray(As), Q, W)
    grads = jax.jit(jax.vmap(jax.grad(f), in_axes=(0, None, None)))(jnp.asarray(As), Q, W)
    for k in range(3):
        X = sla.solve_continuous_lyapunov(As[k], -Q)
        S = sla.solve_continuous_lyapunov(As[k].T, -W)
        assert abs(float(vals[k]) - float(np.sum(W * X))) <= 1e-10 * abs(float(np.sum(W * X)))
        assert rel(grads[k], S @ X.T + S.T @ X) <= 1e-10
    assert rel(jax.jit(MODELS.lyap_of)(As[0], Q), sla.solve_continuous_lyapunov(As[0], -Q)) <= 1e-10


def test_shape_errors_are_lagrad_errors_with_a_position():
    with pytest.raises(lagrad.LagradError, match="square") as e:
        lagrad.loads("model f(A: f64[n, m], Q: f64[n, n]) -> f64[n, n] { return lyap(A, Q) }")
    assert e.value.line == 1
    with pytest.raises(lagrad.LagradError, match="right-hand side Q") as e:
        lagrad.loads("model f(A: f64[n, n], Q: f64[n, m]) -> f64[n, n] { return dlyap(A, Q) }")
    assert e.value.line == 1


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_steps_beyond_the_stored_slots_are_recomputed(monkeypatch, slots):
    """The factor stores the first S steps (lyap also the iterate after them); an apply with K > S
    recomputes the rest. With S forced down to 1–3, the solves (plain and transposed, as the
    adjoint uses them) agree with scipy and the derived gradient with the default (stored) run."""
    import lagrad.stdlib.buffers as B
    import lagrad.stdlib.lyap as L
    rng = np.random.default_rng(slots)
    for kind, cases, ref, loss in (
            ("lyap", STABLE, lambda A, Q: sla.solve_continuous_lyapunov(A, -Q), "loss"),
            ("dlyap", CONTRACTIVE, sla.solve_discrete_lyapunov, "dloss")):
        factor, apply = getattr(L, f"{kind}_factor_impl"), getattr(L, f"{kind}_apply_impl")
        solve = getattr(L, f"{kind}_factor_solve_impl")
        beyond = 0
        for name, make in sorted(cases.items()):
            A = make(rng)
            Q, W = rng.standard_normal(A.shape), rng.standard_normal(A.shape)
            stored = getattr(MODELS, loss).grad(("A", "Q"))(A, Q, W)
            monkeypatch.setattr(B, "MIN_SLOTS", slots)
            monkeypatch.setattr(B, "MAX_SLOTS", slots)
            F = jax.jit(lambda A: factor(A))(A)        # a fresh function: traced anew
            assert F[0].shape[0] == slots + 1               # and a scratch slot
            beyond += int(F[-1]) > slots
            assert rel(jax.jit(lambda F, Q: apply(F, Q))(F, Q), ref(A, Q)) <= 1e-10
            assert rel(jax.jit(lambda F, Q: apply(F, Q, trans=True))(F, Q), ref(A.T, Q)) <= 1e-10
            Ff, X = jax.jit(lambda A, Q: solve(A, Q))(A, Q)    # the fused loop: all K steps in it
            assert all(np.array_equal(a, b) for a, b in zip(Ff, F)) and rel(X, ref(A, Q)) <= 1e-10
            fresh = lagrad.loads(MODELS_TEXT, name=f"slots_{slots}_{kind}_{name}.la")
            recomputed = getattr(fresh, loss).grad(("A", "Q"))(A, Q, W)
            assert all(rel(a, b) <= 1e-10 for a, b in zip(recomputed, stored))
            monkeypatch.undo()
        assert beyond >= 3, (kind, beyond)         # the recomputing path ran for most cases


def test_sign_iteration_stops_a_step_early_and_its_closing_correction_restores_the_accuracy():
    """The factor stops at ‖A_K + I‖_F ≤ √(10 n ε) (the quadratic phase's last step saved) and
    the apply closes with X = ½Q_K + ¼(E Q_K + Q_K Eᵀ), E = A_K + I: exact to O(‖E‖²). Without
    the correction (E zeroed), the error is of the order of ‖E‖; with it, at the rounding level,
    for A and (trans) Aᵀ."""
    from lagrad.stdlib.lyap import lyap_apply_impl, lyap_factor_impl
    rng = np.random.default_rng(3)
    n = 48
    A = rng.standard_normal((n, n)) / np.sqrt(n) - 1.5 * np.eye(n)
    Q = rng.standard_normal((n, n))
    F = jax.jit(lyap_factor_impl)(jnp.asarray(A))
    E = float(jnp.linalg.norm(F[2]))                 # K ≤ S here, so the factor keeps E itself
    assert int(F[-1]) == 5 <= F[0].shape[0] and 1e-10 < E <= np.sqrt(10 * n * np.finfo(float).eps)
    apply = jax.jit(lyap_apply_impl, static_argnames="trans")
    no_correction = F[:2] + (jnp.zeros_like(F[2]),) + F[3:]
    for trans, At in ((False, A), (True, A.T)):
        ref = sla.solve_continuous_lyapunov(At, -Q)
        err = np.linalg.norm(np.asarray(apply(F, jnp.asarray(Q), trans=trans)) - ref) / np.linalg.norm(ref)
        err0 = np.linalg.norm(np.asarray(apply(no_correction, jnp.asarray(Q), trans=trans)) - ref) / np.linalg.norm(ref)
        assert err <= 1e-13 and err0 >= 1e-11, (trans, err, err0)
