"""`f.to_torch()`: lagrad models inside PyTorch autograd, backward = lagrad's derived adjoint,
arrays by DLPack. torch is an optional extra: these tests skip without it."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lagrad  # noqa: E402
from lagrad.errors import InputError  # noqa: E402
from lagrad.runtime.torch_bridge import jax_to_tensor, tensor_to_jax  # noqa: E402
from tests.example_driver import load_example  # noqa: E402

D = torch.float64
MODELS = lagrad.loads("""
model solve_loss(theta: f64[n, n], b: f64[n]) -> f64 { return mean(solve(2 * theta, b)) }
model two_out(A: f64[n, n], x: f64[n], c: f64) -> (f64[n], f64) {
    y = expm(c * A) @ x
    return y, sum(lyap(A - 4 * eye(n), eye(n)))
}
model qr_parts(X: f64[n, n], Y: f64[k, n]) -> (f64[n + k, n], f64[n, n]) {
    Q, R = qr(vcat(X, Y))
    return Q, R
}
""")


def rand(*shape, seed=0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(*shape, generator=g, dtype=D)
    if shift:
        t = t + shift * torch.eye(shape[0], dtype=D)
    return t.requires_grad_()


def test_gradcheck_scalar_model():
    g = MODELS.solve_loss.to_torch()
    assert torch.autograd.gradcheck(g, (rand(4, 4, shift=4.0), rand(4, seed=1)))


def test_gradcheck_several_outputs_and_a_python_scalar():
    g = MODELS.two_out.to_torch()
    A, x = rand(3, 3, seed=2) * 0.3, rand(3, seed=3)
    A = A.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda A, x: g(A, x, 0.5), (A, x))
    y, s = g(A, x, 0.5)
    assert y.shape == (3,) and s.shape == () and y.dtype == D


def test_gradcheck_qr_tall():
    g = MODELS.qr_parts.to_torch()
    assert torch.autograd.gradcheck(g, (rand(3, 3, seed=5, shift=3.0), rand(2, 3, seed=4)))


def test_backward_is_lagrads_adjoint():
    f = MODELS.solve_loss
    th, b = rand(5, 5, seed=6, shift=5.0), rand(5, seed=7)
    f.to_torch()(th, b).backward()
    want_th, want_b = f.grad()(th.detach().numpy(), b.detach().numpy())
    np.testing.assert_allclose(th.grad.numpy(), want_th, rtol=1e-13)
    np.testing.assert_allclose(b.grad.numpy(), want_b, rtol=1e-13)


def test_only_the_used_output_gets_a_gradient():
    g = MODELS.two_out.to_torch()
    A, x = (rand(3, 3, seed=8) * 0.3).detach().requires_grad_(), rand(3, seed=9)
    y, s = g(A, x, 0.5)
    y.sum().backward()                       # s unused: its cotangent is zero
    f = MODELS.two_out
    _, pullback = f.vjp(A.detach().numpy(), x.detach().numpy(), 0.5)
    gA, gx, _ = pullback(np.ones(3), 0.0)
    np.testing.assert_allclose(A.grad.numpy(), gA, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-12)


def test_dlpack_shares_memory():
    t = torch.arange(12, dtype=D).reshape(3, 4)
    a = tensor_to_jax(t)
    assert a.unsafe_buffer_pointer() == t.data_ptr()            # torch → JAX: no copy
    back = jax_to_tensor(a)
    assert back.data_ptr() == a.unsafe_buffer_pointer()         # JAX → torch: no copy
    view = t.T                                                   # non-contiguous: copied once
    np.testing.assert_array_equal(np.asarray(tensor_to_jax(view)), view.numpy())


def test_argument_errors_are_input_errors():
    g = MODELS.solve_loss.to_torch()
    with pytest.raises(InputError, match="takes 2 argument"):
        g(rand(3, 3))
    with pytest.raises(InputError, match="no argument `c`"):
        g(rand(3, 3), c=rand(3))
    with pytest.raises(InputError, match="`b`"):
        g(rand(3, 3), rand(4))
    out = g(rand(3, 3, shift=3.0), b=rand(3, seed=1))            # keywords work
    assert out.shape == ()


def test_torch_example_trains_and_gradchecks():
    """The gallery's PyTorch example: the loss of a torch model through lagrad's lyap falls by
    orders of magnitude, and gradcheck passes on the bridge."""
    ex = load_example("torch_bridge/train.py")
    assert ex.gradcheck(n=3)
    hist = ex.train(n=3, steps=60)
    assert hist[-1] < 1e-2 * hist[0]


# -- second derivatives ---------------------------------------------------------------------
CUBE = lagrad.loads("model h(x: f64) -> f64 { return x ** 3 }").h
SCALAR = lagrad.loads("""
model m(A: f64[n, n], b: f64[n], c: f64) -> f64 { return sum(solve(A + 5 * eye(n), b) * b) * c + c ** 3 }
""").m


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_double_backward_through_the_bridge_is_right():
    """The audit's probe: the bridge's part of a second derivative was silently dropped (2, not
    6x + 2 = 14) while its backward was once-differentiable."""
    th = CUBE.to_torch()
    x = torch.tensor(2.0, dtype=D, requires_grad=True)
    g, = torch.autograd.grad(th(x) + x ** 2, x, create_graph=True)
    h, = torch.autograd.grad(g, x)
    assert h.item() == pytest.approx(14.0, rel=1e-14)
    g, = torch.autograd.grad(th(x), x, create_graph=True)        # the bridge alone: 6x
    assert torch.autograd.grad(g, x)[0].item() == pytest.approx(12.0, rel=1e-14)
    x.grad = None
    th(x).backward(create_graph=True)                             # .backward twice
    g = x.grad.clone()
    x.grad = None
    g.backward()
    assert x.grad.item() == pytest.approx(12.0, rel=1e-14)


def test_gradgradcheck_scalar_models():
    assert torch.autograd.gradgradcheck(MODELS.solve_loss.to_torch(), (rand(4, 4, shift=4.0), rand(4, seed=1)))
    g = SCALAR.to_torch()
    A, b, c = rand(3, 3, seed=4), rand(3, seed=5), torch.tensor(0.7, dtype=D, requires_grad=True)
    assert torch.autograd.gradgradcheck(g, (A, b, c))
    assert torch.autograd.gradgradcheck(lambda A, b: g(A, b, 0.7), (A, b))          # a Python scalar
    assert torch.autograd.gradgradcheck(lambda A: g(A, torch.tensor([1, 2, 3]), c.detach()), (A,))  # an int tensor


def test_hessian_is_lagrads_hvp():
    A, b = rand(3, 3, seed=4).detach(), rand(3, seed=5).detach()
    H = torch.autograd.functional.hessian(lambda b: SCALAR.to_torch()(A, b, 0.7), b)
    want = np.stack([np.asarray(SCALAR.hvp("b")((A.numpy(), b.numpy(), 0.7), e)) for e in np.eye(3)])
    assert np.diag(want).min() > 0.1                     # not the zeros of a dropped term
    np.testing.assert_allclose(H.numpy(), want, rtol=1e-12)


def test_second_derivative_of_a_non_scalar_model_is_refused():
    """Other models have no second-order adjoint in lagrad: a clear RuleError, never zeros (the
    once-differentiable backward gave gradgradcheck an all-zero analytical Jacobian)."""
    g = MODELS.two_out.to_torch()
    A, x = (rand(3, 3, seed=2) * 0.3).detach().requires_grad_(), rand(3, seed=3)
    with pytest.raises(lagrad.RuleError, match=r"differentiable once.*one scalar.*f\.hvp"):
        torch.autograd.gradgradcheck(lambda A, x: g(A, x, 0.5), (A, x))
    y, s = g(A, x, 0.5)
    gx, = torch.autograd.grad(y.sum() + s, x, create_graph=True)
    with pytest.raises(lagrad.RuleError, match="`two_out` returns 2 outputs"):
        torch.autograd.grad(gx.sum() + (x ** 2).sum(), x)          # mixed with torch's own ops
    with pytest.raises(lagrad.RuleError, match="differentiable once"):
        torch.autograd.gradgradcheck(MODELS.qr_parts.to_torch(), (rand(3, 3, seed=5, shift=3.0), rand(2, 3, seed=4)))


def test_derivative_with_respect_to_the_cotangent_works_for_any_model():
    """∂(Jᵀct)/∂ct · v = J·v (lagrad's jvp): torch's double-backward jvp works for several outputs."""
    f = MODELS.two_out
    A, x = (rand(3, 3, seed=2) * 0.3).detach(), rand(3, seed=3).detach()
    v = torch.randn(3, dtype=D, generator=torch.Generator().manual_seed(1))
    _, jv = torch.autograd.functional.jvp(lambda x: f.to_torch()(A, x, 0.5), x, v)
    _, want = f.jvp((A.numpy(), x.numpy(), 0.5), (np.zeros((3, 3)), v.numpy(), 0.0))
    for got, w in zip(jv, want):
        np.testing.assert_allclose(got.numpy(), np.asarray(w), rtol=1e-12, atol=1e-15)


def test_third_derivative_is_refused():
    th = CUBE.to_torch()
    x = torch.tensor(2.0, dtype=D, requires_grad=True)
    g, = torch.autograd.grad(th(x), x, create_graph=True)
    h, = torch.autograd.grad(g, x, create_graph=True)
    with pytest.raises(lagrad.RuleError, match="third derivative.*f\\.hvp"):
        torch.autograd.grad(h, x)


def test_backward_after_an_in_place_change_of_an_input_is_refused():
    x = torch.tensor(2.0, dtype=D, requires_grad=True)
    y = CUBE.to_torch()(x)
    with torch.no_grad():
        x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
