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
    # against 50-digit arithmetic: scipy's expm_frechet (1-norm scaling) is off by 1e-4 here
    assert np.all(np.isfinite(g)) and rel(g, _frechet_50_digits(A.T, W)) <= 1e-11


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
    """Al-Mohy & Higham 2009: for A = [[1, b], [0, −1]], ‖A‖₁ = b + 1 would ask ⌈log₂(b/θ₁₈)⌉
    squarings, but ‖Aᵏ‖^(1/k) stays O(1); the factor picks s from those, and e^A = [[e, b sinh 1],
    [0, 1/e]] comes out to rounding."""
    from lagrad.stdlib.expm import THETA18, expm_factor_impl
    A = np.array([[1.0, b], [0.0, -1.0]])
    exact = np.array([[np.e, b * np.sinh(1.0)], [0.0, 1 / np.e]])
    s = int(jax.jit(expm_factor_impl)(jnp.asarray(A))[-1])
    assert s < np.ceil(np.log2((b + 1) / THETA18)) - 2
    assert rel(MODELS.expm_of(A), exact) <= 1e-13
    # the gradient L(Aᵀ, W) against the block identity evaluated in 50-digit arithmetic (scipy's
    # expm_frechet scales by the 1-norm rule and is off by 3e-6 at b = 1e6)
    W = np.array([[1.0, -2.0], [0.5, 3.0]])
    assert rel(MODELS.expm_loss.grad("A")(A, W), _frechet_50_digits(A.T, W)) <= 1e-12


def _expm_50_digits(A):
    import mpmath
    with mpmath.workdps(50):
        X = mpmath.expm(mpmath.matrix(np.asarray(A).tolist()), method="taylor")
        return np.array(X.tolist(), dtype=float)


def _frechet_50_digits(A, E):
    """L(A, E) = [e^M]₁₂ for M = [[A, E], [0, A]], in 50-digit arithmetic."""
    n = A.shape[0]
    return _expm_50_digits(np.block([[A, E], [np.zeros((n, n)), A]]))[:n, n:]


def _hard_matrices():
    """Test matrices with the properties that break scaling and squaring: non-normal (large
    off-diagonal entries, |A| ≫ A), defective, large norm, sign-alternating, nearly singular
    scales; 5 × 5 so a 50-digit reference is cheap."""
    rng = np.random.default_rng(7)
    out = {"moler-van loan": np.array([[-131.0, 19, 18], [-390, 56, 54], [-387, 57, 52]]),
           "jordan": jordan(5, -1.0, 30.0),
           "tiny": 1e-8 * rng.standard_normal((5, 5))}
    for i in range(24):
        sc = 10.0 ** rng.uniform(-2, 1.7)
        kind = i % 4
        if kind == 0:
            A = rng.standard_normal((5, 5)) * sc
        elif kind == 1:
            A = np.triu(rng.standard_normal((5, 5))) * sc
        elif kind == 2:
            A = np.diag(-rng.uniform(0, sc, 5)) + np.triu(rng.standard_normal((5, 5)) * sc * 10, 1)
        else:
            A = rng.choice([-1.0, 1.0], (5, 5)) * sc + np.diag(rng.standard_normal(5))
        out[f"{['randn', 'triangular', 'non-normal', 'signs'][kind]} {i}"] = A
    return out


HARD = _hard_matrices()


@pytest.mark.parametrize("name", sorted(HARD))
def test_value_and_frechet_match_50_digit_references(name):
    """e^A and L(A, E) to within a small multiple of the unit roundoff times the condition
    (estimated as ‖L(A, ·)‖‖A‖/‖e^A‖ from the 50-digit Fréchet derivative along A itself and a
    random E). T₁₈ was measured against the Padé-13 factor it replaced, on 200 random 5 × 5 matrices
    of five kinds against 50-digit references: median error ratio 1.4, worst relative error
    1.8e-12 against Padé's 1.0e-12 (benchmarks/results_notes.md, stop 19)."""
    A = HARD[name]
    E = np.random.default_rng(3).standard_normal(A.shape)
    X, L = _expm_50_digits(A), _frechet_50_digits(A, E)
    cond = max(1.0, np.linalg.norm(_frechet_50_digits(A, A), 1) / np.linalg.norm(X, 1),
               np.linalg.norm(L, 1) * np.linalg.norm(A, 1) / (np.linalg.norm(E, 1) * np.linalg.norm(X, 1)))
    assert rel(MODELS.expm_of(A), X) <= 1e-13 * cond
    assert rel(MODELS.frechet_loss.grad("W")(A, E, np.ones_like(A)), L) <= 1e-12 * cond


def _power_norm(B, k):
    """‖Bᵏ‖₁ (NumPy)."""
    return np.abs(np.linalg.matrix_power(B, k)).sum(axis=0).max()


def _exact_squarings(B):
    """s from the exact α = min(max(d₃, d₄), max(d₄, d₅)), dₖ = ‖Bᵏ‖₁^(1/k) (NumPy)."""
    from lagrad.stdlib.expm import THETA18
    d3, d4, d5 = (_power_norm(B, k) ** (1 / k) for k in (3, 4, 5))
    alpha = min(max(d3, d4), max(d4, d5))
    return max(int(np.ceil(np.log2(alpha / THETA18))), 0) if alpha > 0 else 0


def _test_matrix(kind, n, rng):
    return {"randn": lambda: rng.standard_normal((n, n)) / np.sqrt(n),
            "positive": lambda: np.abs(rng.standard_normal((n, n))) / n,
            "signs": lambda: rng.choice([-1.0, 1.0], (n, n)) / n,
            "nonnormal": lambda: np.triu(rng.standard_normal((n, n)), 1) * 3 - np.eye(n)}[kind]()


@pytest.mark.parametrize("n", [6, 40, 128])
@pytest.mark.parametrize("kind", ["randn", "positive", "signs", "nonnormal"])
@pytest.mark.parametrize("scale", [0.1, 1.0, 4.0])
def test_squarings_follow_the_exact_rule_to_within_the_estimate(n, kind, scale):
    """d₄ and d₅ are 1-norm estimates (lower bounds, usually exact): the count is never above
    the exact rule's and at most one below it; the estimate is exact for a nonnegative B and on
    the benchmark's randn/√n matrices, so there it is the exact count."""
    from lagrad.stdlib.expm import _squarings
    B = _test_matrix(kind, n, np.random.default_rng(n)) * scale
    got = int(jax.jit(_squarings)(_power_norm(B, 1), jnp.asarray(B @ B), jnp.asarray(B @ B @ B)))
    exact = _exact_squarings(B)
    assert exact - 1 <= got <= exact
    if kind in ("randn", "positive"):
        assert got == exact


@pytest.mark.parametrize("kind", ["randn", "positive", "signs", "nonnormal"])
def test_power_norm_estimates_are_lower_bounds_within_a_small_factor(kind):
    """Hager's estimate of ‖B⁴‖₁ and ‖B⁵‖₁ never exceeds the norm, is exact for a nonnegative
    matrix (the column of largest sum is found in one step), and is within a factor 3 on these
    classes (Higham & Tisseur 2000 report the same for their block version)."""
    from lagrad.stdlib.expm import _power_norms
    rng = np.random.default_rng(5)
    for n in (5, 20, 64):
        for _ in range(10):
            B = _test_matrix(kind, n, rng)
            e4, e5 = _power_norm(B, 4), _power_norm(B, 5)
            g4, g5 = (float(x) for x in _power_norms(jnp.asarray(B @ B), jnp.asarray(B @ B @ B)))
            assert g4 <= e4 * (1 + 1e-12) and g5 <= e5 * (1 + 1e-12)
            assert g4 >= e4 / 3 and g5 >= e5 / 3
            if kind == "positive":
                assert g4 == pytest.approx(e4, rel=1e-12) and g5 == pytest.approx(e5, rel=1e-12)
