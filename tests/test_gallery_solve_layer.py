"""examples/solve_layer: the layer against NumPy, its adjoint is the implicit one (one LU, reused
transposed), and the driver end to end on a small instance (gradient vs central differences, the
training and held-out losses fall)."""
from __future__ import annotations

import re

import numpy as np

from example_driver import load_example


def load_driver():
    return load_example("solve_layer/train.py")


def numpy_layer(phi, P):
    W1, c1, U, V, Wg, cg, Wd, cd, Wb, cb = (np.asarray(p) for p in P)
    h = np.tanh(W1 @ phi + c1)
    O = U @ np.diag(Wg @ h + cg) @ V.T
    O0 = O - np.diag(np.diag(O))
    A = O0 + np.diag(np.abs(O0).sum(axis=1) + np.logaddexp(0, Wd @ h + cd) + 0.1)
    return A, np.linalg.solve(A, Wb @ h + cb)


def test_layer_matches_numpy_and_is_diagonally_dominant():
    d = load_driver()
    mod = d.load()
    phi, X = d.diffusion_data(3, 6, seed=4)
    P = d.init_params(6, m=5, r=3, seed=2)
    P = tuple(3 * np.asarray(p) + 0.1 for p in P)          # away from the small initial scale
    for f, xs in zip(phi, X):
        A, x = numpy_layer(f, P)
        off = np.abs(A).sum(axis=1) - np.abs(np.diag(A))
        assert np.all(np.abs(np.diag(A)) >= off + 0.1 - 1e-12)
        np.testing.assert_allclose(np.asarray(mod.layer(f, *P)), x, rtol=1e-10)
        want = np.sum((x - xs) ** 2) / np.sum(xs ** 2)
        assert abs(float(mod.loss(f, xs, *P)) - want) <= 1e-10 * want


def test_diffusion_data_solves_the_discrete_problem():
    d = load_driver()
    phi, X = d.diffusion_data(2, 7, seed=5)
    h = 1 / 8
    t = h * np.arange(1, 8)
    for (a, g, s), x in zip(phi, X):
        u = np.concatenate([[0.0], x, [0.0]])
        kap = np.exp(a + g * (h * (np.arange(8) + 0.5) - 0.5))
        flux = kap * np.diff(u)                                  # κ_{i+½}(u_{i+1} − u_i)
        np.testing.assert_allclose(-np.diff(flux), h * h * (1 + s * np.sin(2 * np.pi * t)), rtol=1e-10)


def test_adjoint_is_the_implicit_one():
    d = load_driver()
    mod = d.load()
    for text in (str(mod.solve_only.adjoint(wrt=["A", "b"])), str(mod.loss.adjoint(wrt=["U", "Wb"]))):
        assert text.count("lu_factor(") == 1                    # the forward LU only
        assert re.search(r"lu_solve\(A_lu, \w+, trans=true\)", text)   # reused, transposed
        assert "A_bar" in text and "outer(" in text              # Ā = −b̄ xᵀ


def test_driver_small_run(capsys):
    d = load_driver()
    argv = ["--n", "6", "--hidden", "12", "--rank", "4", "--train", "48", "--test", "48",
            "--steps", "250", "--every", "50", "--no-plot"]
    assert d.main(argv) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and out.rstrip().endswith("OK")
    assert "adjoint solve_only" in out and "trans=true" in out
    rel = float(re.search(r"central differences .*rel\. error ([0-9.e+-]+)", out).group(1))
    assert rel <= 1e-6
    l0, l1 = (float(x) for x in out.split("training loss:")[1].splitlines()[0].split("→"))
    h0, h1 = (float(x) for x in out.split("held-out loss:")[1].splitlines()[0].split("→"))
    assert l1 < 0.1 * l0 and h1 < 0.1 * h0
