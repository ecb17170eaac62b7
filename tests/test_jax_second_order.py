"""JAX's transforms of a Function in both modes and to second order (runtime/function.py,
Compiled.bridged and second_order; runtime/jax_linear.py). jax.grad of jax.grad raised JAX's
"Reverse-mode differentiation does not work for lax.while_loop" for every model whose programs
loop (lyap, dlyap, expm, cg, gmres), and jax.jvp of any Function raised; now each derivative of
the bridge is one of lagrad's derived programs (tangent, adjoint, hvp). References are
jax.numpy pipelines JAX differentiates itself."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrad
from lagrad.runtime.jax_linear import linear_map

SRC = """
model ly(A: f64[n, n], Q: f64[n, n]) -> f64 { return sum(sin(lyap(A, Q))) }
model ex(A: f64[n, n], Q: f64[n, n]) -> f64 { return sum(expm(A) * Q) + sum(A * A * Q) }
model sv(A: f64[n, n], Q: f64[n, n]) -> f64 { return sum(tanh(solve(A, Q))) }
model kr(A: f64[n, n], Q: f64[n, n]) -> f64 {
    op K(v) = A' @ (A @ v) + v
    return sum(sin(cg(K, Q[:, 0], tol=0, maxiter=40)))
}
model two(A: f64[n, n], Q: f64[n, n]) -> (f64[n, n], f64) { return lyap(A, Q) * A, sum(expm(A)) }
"""


def _lyap(A, Q):
    """X with A X + X Aᵀ + Q = 0, by the Kronecker-vectorized system."""
    n = A.shape[0]
    K = jnp.kron(jnp.eye(n), A) + jnp.kron(A, jnp.eye(n))
    return jnp.linalg.solve(K, -Q.T.reshape(-1)).reshape(n, n).T


REF = {
    "ly": lambda A, Q: jnp.sum(jnp.sin(_lyap(A, Q))),
    "ex": lambda A, Q: jnp.sum(jax.scipy.linalg.expm(A) * Q) + jnp.sum(A * A * Q),
    "sv": lambda A, Q: jnp.sum(jnp.tanh(jnp.linalg.solve(A, Q))),
    "kr": lambda A, Q: jnp.sum(jnp.sin(jnp.linalg.solve(A.T @ A + jnp.eye(A.shape[0]), Q[:, 0]))),
}


@pytest.fixture(scope="module")
def mod():
    return lagrad.loads(SRC, name="second_order.la")


def _args(seed=0, n=3):
    rng = np.random.default_rng(seed)
    A = jnp.asarray(rng.standard_normal((n, n)) / 3 - 1.5 * np.eye(n))
    return A, jnp.asarray(rng.standard_normal((n, n))), jnp.asarray(rng.standard_normal((n, n)))


def _close(a, b, tol=1e-10):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


def _outer(W):
    """A loss of a gradient and a value (value_and_grad), so the outer derivative runs through both."""
    def outer(vg):
        def loss(A, Q):
            v, (gA, gQ) = vg(A, Q)
            return jnp.sum(W * gA) + jnp.sum(jnp.cos(gQ)) + v ** 2
        return loss
    return outer


@pytest.mark.parametrize("name", list(REF))
def test_grad_of_value_and_grad(mod, name):
    A, Q, W = _args()
    vg = lambda fn: jax.value_and_grad(fn, argnums=(0, 1))                # noqa: E731
    outer = _outer(W)
    _close(jax.grad(outer(vg(mod[name])), argnums=(0, 1))(A, Q), jax.grad(outer(vg(REF[name])), argnums=(0, 1))(A, Q))


def test_jit_hessian_jacrev_linearize_and_vmap_of_second_derivatives(mod):
    f, ref = mod.ly, REF["ly"]
    A, Q, W = _args(3)
    gg = lambda fn: jax.grad(lambda A, Q: jnp.sum(W * jax.grad(fn)(A, Q)), argnums=(0, 1))   # noqa: E731
    _close(jax.jit(gg(f))(A, Q), gg(ref)(A, Q))
    _close(jax.hessian(f, argnums=(0, 1))(A, Q), jax.hessian(ref, argnums=(0, 1))(A, Q))
    _close(jax.jacrev(jax.jacrev(f))(A, Q), jax.jacrev(jax.jacrev(ref))(A, Q))
    _, lin = jax.linearize(jax.grad(f, argnums=(0, 1)), A, Q)
    _, lin_ref = jax.linearize(jax.grad(ref, argnums=(0, 1)), A, Q)
    _close(lin(W, Q), lin_ref(W, Q))
    As = jnp.stack([A, A + 0.05 * W, A - 0.05 * W])
    _close(jax.vmap(lambda A: gg(f)(A, Q))(As), jax.vmap(lambda A: gg(ref)(A, Q))(As))


def test_second_derivatives_of_a_model_with_several_results(mod):
    def ref(A, Q):
        return _lyap(A, Q) * A, jnp.sum(jax.scipy.linalg.expm(A))
    A, Q, W = _args(1)
    for r in (lambda t: jnp.sum(W * t[0]) + t[1] ** 2,):
        want = jax.grad(lambda A: jnp.sum(W * jax.grad(lambda A, Q: r(ref(A, Q)), argnums=(0, 1))(A, Q)[0]))(A)
        got = jax.grad(lambda A: jnp.sum(W * jax.grad(lambda A, Q: r(mod.two(A, Q)), argnums=(0, 1))(A, Q)[0]))(A)
        _close(got, want)
    _close(jax.jacrev(jax.jacrev(mod.two))(A, Q), jax.jacrev(jax.jacrev(ref))(A, Q))


@pytest.mark.parametrize("name", ["ly", "sv"])
def test_forward_mode_and_reverse_over_forward(mod, name):
    """jax.jvp and jax.jacfwd of a Function run its tangent program (they were JAX's "can't apply
    forward-mode autodiff (jvp) to a custom_vjp function"); jax.grad of jax.jvp runs the hvp."""
    f, ref = mod[name], REF[name]
    A, Q, W = _args(4)
    _close(jax.jvp(f, (A, Q), (W, Q)), jax.jvp(ref, (A, Q), (W, Q)))
    _close(jax.jacfwd(f, argnums=(0, 1))(A, Q), jax.jacfwd(ref, argnums=(0, 1))(A, Q))
    _close(jax.jit(jax.jacfwd(jax.jacfwd(f)))(A, Q), jax.jacfwd(jax.jacfwd(ref))(A, Q))
    rf = lambda fn: jax.grad(lambda A, Q: jax.jvp(fn, (A, Q), (W, Q))[1], argnums=(0, 1))   # noqa: E731
    _close(rf(f)(A, Q), rf(ref)(A, Q))


def test_a_third_derivative_in_reverse_mode(mod):
    """Works where JAX can transpose the programs (no loop); otherwise a LagradError."""
    A, Q, W = _args(2)
    g2 = lambda fn: jax.grad(lambda A: jnp.sum(W * jax.grad(fn)(A, Q)))   # noqa: E731
    _close(jax.grad(lambda A: jnp.sum(jnp.sin(g2(mod.sv)(A))))(A), jax.grad(lambda A: jnp.sum(jnp.sin(g2(REF["sv"])(A))))(A))
    with pytest.raises(lagrad.LagradError, match="third derivative .* in reverse mode is not supported"):
        jax.grad(lambda A: jnp.sum(g2(mod.ly)(A)))(A)


# ---- the linear-map primitive on its own: y = M x (+ N z), transpose x̄ = Mᵀ ȳ ---------------------
def _fun(M, N, x, z):
    return [M @ x + N @ z]


def _fun_t(M, N, ct):
    return [M.T @ ct, N.T @ ct]


def test_the_linear_map_primitive_evaluates_transposes_and_batches():
    rng = np.random.default_rng(5)
    M, N = jnp.asarray(rng.standard_normal((4, 3))), jnp.asarray(rng.standard_normal((4, 2)))
    x, z, y = (jnp.asarray(rng.standard_normal(k)) for k in (3, 2, 4))
    f = lambda x, z: linear_map(_fun, _fun_t, (M, N), (x, z), [y])[0]    # noqa: E731
    np.testing.assert_allclose(f(x, z), M @ x + N @ z, rtol=1e-14)
    np.testing.assert_allclose(jax.jit(f)(x, z), M @ x + N @ z, rtol=1e-14)
    # the dot-product test of the transpose: ⟨y, f(x, z)⟩ = ⟨f̄(y), (x, z)⟩
    xb, zb = jax.linear_transpose(f, x, z)(y)
    np.testing.assert_allclose(float(y @ f(x, z)), float(xb @ x + zb @ z), rtol=1e-13)
    np.testing.assert_allclose(jax.jvp(f, (x, z), (z[:1].repeat(3), x[:2]))[1], M @ z[:1].repeat(3) + N @ x[:2],
                               rtol=1e-14)
    # batched: x batched on axis 1, z not; the gradient of the batched map sums z̄ over the batch
    X = jnp.asarray(rng.standard_normal((3, 5)))
    Y = jax.vmap(f, in_axes=(1, None))(X, z)
    np.testing.assert_allclose(Y, (M @ X).T + N @ z, rtol=1e-13)
    gX, gz = jax.grad(lambda X, z: jnp.sum(jnp.sin(jax.vmap(f, in_axes=(1, None))(X, z))), argnums=(0, 1))(X, z)
    c = jnp.cos((M @ X).T + N @ z)
    np.testing.assert_allclose(gX, M.T @ c.T, rtol=1e-13)
    np.testing.assert_allclose(gz, N.T @ c.sum(0), rtol=1e-13)
