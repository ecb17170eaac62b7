"""examples/blr_preconditioner: the driver's GMRES against a dense solve, the dense preconditioner
models against NumPy, the Arnoldi loss against NumPy, and the driver end to end in --quick mode
(gradient check against central differences, the loss falls, the learned BLR preconditioner cuts
GMRES iterations against no preconditioner on the easy shift)."""
from __future__ import annotations

import re

import numpy as np

from example_driver import load_example



def load_driver():
    return load_example("blr_preconditioner/train.py")


def test_gmres_history_solves_and_records_residuals():
    d = load_driver()
    rng = np.random.default_rng(0)
    m = 80
    A = rng.standard_normal((m, m)) / np.sqrt(m) + 2 * np.eye(m)
    rhs = rng.standard_normal(m)
    want = np.linalg.solve(A, rhs)
    for M in (None, np.linalg.inv(np.diag(np.diag(A)))):
        x, hist, it = d.gmres_history(A, M, rhs, tol=1e-10, restart=10)
        assert it is not None and len(hist) == it + 1          # one entry per iteration, plus the start
        assert hist[0] == 1.0 and hist[-1] <= 1e-10
        assert np.linalg.norm(x - want) <= 1e-8 * np.linalg.norm(want)
    # the exact inverse as M: one iteration
    _, hist, it = d.gmres_history(A, np.linalg.inv(A), rhs, tol=1e-10)
    assert it == 1 and hist[-1] <= 1e-10
    # not converged within maxiter (restart 5, 12 iterations): still one entry per iteration
    _, hist, it = d.gmres_history(A, None, rhs, tol=1e-14, restart=5, maxiter=12)
    assert it is None and len(hist) == 13


def test_models_against_numpy():
    d = load_driver()
    mod = d.load()
    p, b, r = 2, 128, 3
    m = p * b
    A = d.test_matrix(m, 2.0)
    D, U, V = d.init_factors(p, b, r, 0.1)
    D = D + 0.01 * np.random.default_rng(5).standard_normal(D.shape)
    P = np.zeros((m, m))
    for i in range(p):
        for j in range(p):
            P[i * b:(i + 1) * b, j * b:(j + 1) * b] = D[i] if i == j else U[i, j] @ V[i, j].T
    assert np.abs(np.asarray(mod.blr_matrix(D, U, V)) - P).max() <= 1e-14
    BJ = np.zeros((m, m))
    for i in range(p):
        s = slice(i * b, (i + 1) * b)
        BJ[s, s] = np.linalg.inv(A[s, s])
    assert np.abs(np.asarray(mod.block_jacobi_matrix(A)) - BJ).max() <= 1e-12
    # the Arnoldi loss: Σ H[j+1, j] / |mean diag H| of 10 Arnoldi steps on A P, here in NumPy
    v = np.random.default_rng(6).standard_normal(m)
    K = A @ P
    Q = [v / np.linalg.norm(v)]
    H = np.zeros((11, 10))
    for j in range(10):
        w = K @ Q[j]
        for _ in range(2):
            for i in range(j + 1):
                h = Q[i] @ w
                w = w - h * Q[i]
                H[i, j] += h
        H[j + 1, j] = np.linalg.norm(w)
        Q.append(w / H[j + 1, j])
    want = np.sum(np.diag(H[1:])) / abs(np.trace(H[:10]) / 10)
    assert abs(float(mod.arnoldi_loss(A, D, U, V, v)) - want) <= 1e-12 * want
    assert abs(float(mod.arnoldi_subdiag(A, D, U, V, v)) - np.sum(np.diag(H[1:]))) <= 1e-12 * want
    # scale invariance of the loss (P → 3 P), which is why the raw subdiagonal sum is not used
    assert abs(float(mod.arnoldi_loss(A, 3 * D, 3 * U, V, v)) - want) <= 1e-12 * want


def test_driver_quick(capsys):
    d = load_driver()
    assert d.main(["--quick", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and out.rstrip().endswith("OK")
    rel = float(re.search(r"central differences .*rel\. error ([0-9.e+-]+)", out).group(1))
    assert rel <= 1e-6
    rows = [ln for ln in out.splitlines() if ln.startswith("| 256 ")]
    cells = {(c[2].strip(), c[3].strip()): [x.strip() for x in c] for c in (ln.split("|") for ln in rows)}
    for shift in ("4", "1.5"):
        # the Arnoldi loss (train v) falls from P = I (the "none" row) to the learned P
        assert float(cells[(shift, "learned BLR")][9]) < float(cells[(shift, "none")][9])
    # the learned preconditioner cuts GMRES iterations against none on the easy shift
    assert int(cells[("4", "learned BLR")][4]) < int(cells[("4", "none")][4])
