"""expm and expm_frechet beyond the rule table: scipy as the reference, large norms (more
squarings than JAX's expm allows), the shared factor in derived programs, Hessian-vector
products, and jax.jit / jax.vmap of models that use them."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest
import scipy.linalg as sla

import lagrad

MODELS = lagrad.loads("""
model expm_loss(A: f64[n, n], W: f64[n, n]) -> f64 { return sum(W * expm(A)) }
model frechet_loss(A: f64[n, n], E: f64[n, n], W: f64[n, n]) -> f64 { return sum(W * expm_frechet(A, E)) }
model expm_of(A: f64[n, n]) -> f64[n, n] { return expm(A) }
model two_uses(A: f64[n, n], B: f64[n, n]) -> f64 { return sum(expm(A) @ B) + trace(expm(A')) }
""", name="expm_tests.la")


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def jordan(n, lam, off):
    """A defective matrix: one Jordan block λ I + off·N."""
    return lam * np.eye(n) + off * np.eye(n, k=1)


CASES = {
    "randn": lambda rng: rng.standard_normal((6, 6)),
    "small": lambda rng: 1e-3 * rng.standard_normal((6, 6)),
    "nonnormal": lambda rng: np.triu(rng.standard_normal((6, 6)), 1) * 20 - np.eye(6),
    "defective": lambda rng: jordan(6, -0.5, 3.0),
    "rotation": lambda rng: np.array([[0.0, 40.0], [-40.0, 0.0]]),
    "scaled": lambda rng: 50 * rng.standard_normal((5, 5)) - 60 * np.eye(5),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_expm_and_frechet_match_scipy(case):
    rng = np.random.default_rng(len(case))
    A = CASES[case](rng)
    E, W = rng.standard_normal(A.shape), rng.standard_normal(A.shape)
    X, L = sla.expm_frechet(A, E)
    tol = 1e-11 * max(1.0, np.linalg.cond(X)) if case != "scaled" else 1e-9
    assert rel(MODELS.expm_of(A), X) <= tol
    g = MODELS.frechet_loss.grad("W")(A, E, W)                # ∂/∂W Σ W ⊙ L(A, E) = L(A, E)
    assert rel(g, L) <= tol
    # the gradient of Σ W ⊙ e^A is L(Aᵀ, W) (RULES.md: L(A, ·)ᵀ = L(Aᵀ, ·))
    assert rel(MODELS.expm_loss.grad("A")(A, W), sla.expm_frechet(A.T, W)[1]) <= tol


def test_large_norm_needs_more_than_16_squarings_and_is_not_nan():
    """‖A‖₁ ≈ 1e7 needs ≈ 21 squarings: JAX's expm gives NaN there, lagrad's is exact."""
    A = np.array([[-1.0, 1e7], [0.0, -2.0]])
    exact = np.array([[np.exp(-1), 1e7 * (np.exp(-1) - np.exp(-2))], [0.0, np.exp(-2)]])
    assert np.isnan(np.asarray(jsl.expm(jnp.asarray(A)))).all()           # the limit we lift
    X = np.asarray(MODELS.expm_of(A))
    assert np.all(np.isfinite(X)) and rel(X, exact) <= 1e-9
    W = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = MODELS.expm_loss.grad("A")(A, W)
    ref = sla.expm_frechet(A.T, W)[1]
    assert np.all(np.isfinite(g)) and rel(g, ref) <= 1e-8


def test_large_norm_random_matrix_matches_scipy():
    rng = np.random.default_rng(3)
    A = 1e6 * rng.standard_normal((4, 4)) - 3e6 * np.eye(4)     # stable: e^A tiny but finite
    A[0, 0] = 0.0                                                # one eigenvalue near 0 keeps e^A O(1)
    A = np.triu(A)
    X = sla.expm(A)
    assert rel(MODELS.expm_of(A), X) <= 1e-8


def test_adjoint_shares_one_factor_and_backward_is_products():
    text = str(MODELS.expm_loss.adjoint())
    assert text.count("expm_factor(") == 1
    assert "expm_frechet_apply(" in text and "trans=true" in text
    assert " inv(" not in text and "lu_factor" not in text
    text2 = str(MODELS.two_uses.adjoint())
    assert text2.count("expm_factor(") == 1                   # expm(A) and expm(Aᵀ) share it


def test_two_uses_gradient_matches_jax():
    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))

    def ref(A, B):
        return jnp.sum(jsl.expm(A) @ B) + jnp.trace(jsl.expm(A.T))
    got = MODELS.two_uses.grad()(A, B)
    want = jax.grad(ref, (0, 1))(jnp.asarray(A), jnp.asarray(B))
    for g, w in zip(got, want):
        assert rel(g, w) <= 1e-10


def test_hessian_vector_product_matches_jax():
    """hvp differentiates the adjoint again: the Fréchet rule of expm_frechet in A."""
    rng = np.random.default_rng(7)
    A, W, D = (rng.standard_normal((4, 4)) for _ in range(3))

    def loss(A):
        return jnp.sum(W * jsl.expm(A))
    want = jax.jvp(jax.grad(loss), (jnp.asarray(A),), (jnp.asarray(D),))[1]
    got = MODELS.expm_loss.hvp("A")((A, W), D)
    assert rel(got, want) <= 1e-9


def test_second_derivative_of_expm_frechet_in_A_matches_finite_differences():
    rng = np.random.default_rng(11)
    A, E, W, D = (rng.standard_normal((4, 4)) for _ in range(4))
    g = MODELS.frechet_loss.grad("A")
    h = 1e-6
    fd = (np.asarray(MODELS.frechet_loss(A + h * D, E, W)) - np.asarray(MODELS.frechet_loss(A - h * D, E, W))) / (2 * h)
    assert abs(float(np.sum(np.asarray(g(A, E, W)) * D)) - fd) <= 1e-6 * max(1.0, abs(fd))


def test_jit_and_vmap_through_the_jax_bridge():
    rng = np.random.default_rng(13)
    As = rng.standard_normal((3, 4, 4))
    W = rng.standard_normal((4, 4))
    f = MODELS.expm_loss
    vals = jax.vmap(f, in_axes=(0, None))(jnp.asarray(As), jnp.asarray(W))
    grads = jax.jit(jax.vmap(jax.grad(f), in_axes=(0, None)))(jnp.asarray(As), jnp.asarray(W))
    for k in range(3):
        assert abs(float(vals[k]) - float(np.sum(W * sla.expm(As[k])))) <= 1e-10 * abs(float(vals[k])) + 1e-12
        assert rel(grads[k], sla.expm_frechet(As[k].T, W)[1]) <= 1e-10


def test_shape_errors_are_lagrad_errors():
    with pytest.raises(lagrad.LagradError, match="square"):
        lagrad.loads("model f(A: f64[n, m]) -> f64[n, m] { return expm(A) }")
    with pytest.raises(lagrad.LagradError, match="direction"):
        lagrad.loads("model f(A: f64[n, n], E: f64[n, m]) -> f64[n, n] { return expm_frechet(A, E) }")


@pytest.mark.parametrize("b", [1e2, 1e4, 1e6])
def test_nonnormal_matrix_is_not_overscaled(b):
    """Al-Mohy & Higham 2009: for A = [[1, b], [0, −1]], ‖A‖₁ = b + 1 would ask ⌈log₂(b/θ₁₃)⌉
    squarings, but ‖Aᵏ‖^(1/k) stays O(1); the factor picks s from those (plus the ℓ term for the
    Padé remainder), and e^A = [[e, b sinh 1], [0, 1/e]] comes out to rounding."""
    from lagrad.stdlib.expm import THETA13, expm_factor_impl
    A = np.array([[1.0, b], [0.0, -1.0]])
    exact = np.array([[np.e, b * np.sinh(1.0)], [0.0, 1 / np.e]])
    s = int(jax.jit(expm_factor_impl)(jnp.asarray(A))[-1])
    assert s < np.ceil(np.log2((b + 1) / THETA13)) - 2
    assert rel(MODELS.expm_of(A), exact) <= 1e-13
    # the gradient L(Aᵀ, W) against the block identity evaluated in 50-digit arithmetic (scipy's
    # expm_frechet scales by the 1-norm rule and is off by 3e-6 at b = 1e6)
    import mpmath
    W = np.array([[1.0, -2.0], [0.5, 3.0]])
    with mpmath.workdps(50):
        block = mpmath.expm(mpmath.matrix(np.block([[A.T, W], [np.zeros((2, 2)), A.T]]).tolist()))
        ref = np.array([[float(block[i, j + 2]) for j in range(2)] for i in range(2)])
    assert rel(MODELS.expm_loss.grad("A")(A, W), ref) <= 1e-12


def _squarings_reference(B):
    """s of Al-Mohy & Higham 2009 Alg. 5.1 as expm._squarings computes it, with the ℓ term always
    from the exact ‖|B|²⁷‖₁ (NumPy), for the test of the bound that lets the factor skip it."""
    from lagrad.stdlib.expm import C27_LOG2
    one = lambda X: np.abs(X).sum(axis=0).max()
    B4 = np.linalg.matrix_power(B, 4)
    B6 = np.linalg.matrix_power(B, 6)
    n4, n6, n1 = one(B4), one(B6), one(B)
    d4, d6, d10 = n4 ** 0.25, n6 ** (1 / 6), (n4 * n6) ** 0.1
    eta = min(max(d6, d4), max(d4, d10))
    s = max(int(np.ceil(np.log2(eta / 4.25))), 0) if eta > 0 else 0
    M = np.abs(B) / n1
    log2_n27 = 27 * np.log2(n1) + np.log2(one(np.linalg.matrix_power(M, 27)))
    ell = np.ceil((log2_n27 - np.log2(n1) - C27_LOG2 + 53.0 - 26.0 * s) / 26.0)
    return s + max(int(ell), 0)


@pytest.mark.parametrize("n", [6, 40, 128])
@pytest.mark.parametrize("kind", ["randn", "positive", "nonnormal"])
@pytest.mark.parametrize("scale", [0.1, 1.0, 4.0])
def test_squarings_skip_the_ell_products_only_when_the_bound_allows(n, kind, scale):
    """‖|B|²⁷‖₁ ≤ ‖B‖₁²⁷: where that bound already gives ℓ = 0 the factor skips the 27 vector
    products; the count must equal the one with ℓ from the exact norm, on matrices where the
    bound is slack (randn: ‖|B|‖ ≫ ρ(B)), tight (positive) and far off (nonnormal)."""
    from lagrad.stdlib.expm import _squarings
    rng = np.random.default_rng(n)
    B = {"randn": lambda: rng.standard_normal((n, n)) / np.sqrt(n),
         "positive": lambda: np.abs(rng.standard_normal((n, n))) / n,
         "nonnormal": lambda: np.triu(rng.standard_normal((n, n)), 1) * 3 - np.eye(n)}[kind]() * scale
    B = jnp.asarray(B)
    got = int(jax.jit(_squarings)(B, B @ B @ B @ B, B @ B @ B @ B @ B @ B))
    assert got == _squarings_reference(np.asarray(B))
