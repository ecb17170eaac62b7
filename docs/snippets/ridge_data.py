"""Seeded data for docs/snippets/ridge.la: three informative features out of p, noise 0.5.
Imported by the tutorial's snippets; run as a script it writes ridge_inputs.npz."""
import sys

import numpy as np


def ridge_data(n=40, m=200, p=10, seed=3):
    rng = np.random.default_rng(seed)
    w_true = np.where(np.arange(p) < 3, 2.0 * rng.standard_normal(p), 0.0)
    X, Xv = rng.standard_normal((n, p)), rng.standard_normal((m, p))
    y = X @ w_true + 0.5 * rng.standard_normal(n)
    yv = Xv @ w_true + 0.5 * rng.standard_normal(m)
    return dict(log_lam=np.zeros(p), X=X, y=y, Xv=Xv, yv=yv)


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "ridge_inputs.npz"
    data = ridge_data(n=8, m=12, p=3)
    np.savez(path, **data)
    print(f"wrote {path}: " + ", ".join(f"{k} {v.shape}" for k, v in data.items()))
