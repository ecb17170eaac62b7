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
