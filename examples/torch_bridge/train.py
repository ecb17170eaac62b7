"""The PyTorch bridge (gallery item 6): a PyTorch model whose loss contains a lagrad model.

Reproduces: the "use lagrad from PyTorch" experiment. A `torch.nn.Module` parameterizes a drift
matrix that is stable by construction, F = −(L Lᵀ + εI) + (S − Sᵀ), and is trained with
torch.optim.Adam so that the stationary covariance P(F) of dx = F x dt + dW — the solution of
the Lyapunov equation F P + P Fᵀ + Q = 0, which PyTorch cannot solve — matches a target Σ
generated from a hidden stable drift. The Lyapunov solve and its gradient run in lagrad
(`stationary_cov.la`, `f.to_torch()`): PyTorch's backward calls lagrad's derived adjoint, with
arrays passed by DLPack. The driver first runs `torch.autograd.gradcheck` on the bridge.

The plot (torch_bridge.png) shows the loss ‖P(F) − Σ‖²_F falling over the Adam steps
(log scale), from the initial F = −I to a drift whose covariance matches Σ.

Run:  python examples/torch_bridge/train.py [--steps 300] [--n 6]
"""
from __future__ import annotations

import argparse
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.append(str(HERE.parents[1]))       # lagrad from this checkout when not installed

import lagrad  # noqa: E402
import torch  # noqa: E402
from examples.plotting import pyplot, save  # noqa: E402  (the optional PNG)


class StableDrift(torch.nn.Module):
    """F = −(L Lᵀ + εI) + (S − Sᵀ): its symmetric part is negative definite, so F is stable."""

    def __init__(self, n, eps=0.1):
        super().__init__()
        self.L = torch.nn.Parameter(torch.eye(n, dtype=torch.float64))
        self.S = torch.nn.Parameter(torch.zeros(n, n, dtype=torch.float64))
        self.eps = eps

    def forward(self):
        n = self.L.shape[0]
        return -(self.L @ self.L.T + self.eps * torch.eye(n, dtype=torch.float64)) + (self.S - self.S.T)


def target(n, seed=0):
    """A hidden stable drift, its noise covariance Q and the stationary covariance Σ (scipy)."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=torch.float64)
    F_true = -(A @ A.T / n + 0.5 * torch.eye(n, dtype=torch.float64)) + 0.5 * (A - A.T)
    Q = torch.eye(n, dtype=torch.float64)
    from scipy.linalg import solve_continuous_lyapunov
    Sigma = torch.from_numpy(solve_continuous_lyapunov(F_true.numpy(), -Q.numpy()))
    return F_true, Q, Sigma


def train(n=6, steps=300, lr=0.05, seed=0):
    """Adam on the bridge; returns the loss history."""
    loss_fn = lagrad.load(HERE / "stationary_cov.la").cov_loss.to_torch()
    _, Q, Sigma = target(n, seed)
    model = StableDrift(n)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(), Q, Sigma)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    return history


def gradcheck(n=4, seed=1):
    loss_fn = lagrad.load(HERE / "stationary_cov.la").cov_loss.to_torch()
    _, Q, Sigma = target(n, seed)
    F = StableDrift(n)().detach().requires_grad_()
    Qr = Q.clone().requires_grad_()
    return torch.autograd.gradcheck(loss_fn, (F, Qr, Sigma))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--n", type=int, default=6)
    a = ap.parse_args()
    print("torch.autograd.gradcheck on the bridge:", gradcheck())
    hist = train(a.n, a.steps)
    print(f"loss ‖P(F) − Σ‖²: {hist[0]:.4e} at step 1 → {hist[-1]:.4e} at step {len(hist)}")
    plt = pyplot(HERE / "torch_bridge.png")
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.semilogy(range(1, len(hist) + 1), hist)
    ax.set_xlabel("Adam step (torch.optim)")
    ax.set_ylabel("‖lyap(F, Q) − Σ‖²_F")
    ax.set_title(f"PyTorch model, lagrad Lyapunov solve (n = {a.n})")
    save(fig, HERE / "torch_bridge.png")


if __name__ == "__main__":
    main()
