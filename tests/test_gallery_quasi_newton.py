"""examples/quasi_newton: the .la iteration against NumPy, and the driver end to end on a small
instance (gradient vs central differences, the training loss falls, the learned first step leaves
a smaller residual than the plain quasi-Newton step)."""
from __future__ import annotations

import re

import numpy as np

from example_driver import load_example


def load_driver():
    return load_example("quasi_newton/train.py")


def F(x, s, ab):
    return np.array([x[0] + ab[0] * x[0] * x[1] - s[0], ab[1] * x[0] * x[1] + x[1] - s[1]])


def Jt(x, ab):
    return np.array([[1 + ab[0] * x[1], 1.0], [1.0, 1 + ab[1] * x[0]]])


def celu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def mlp(P, z):
    W1, b1, W2, b2, W3, b3, W4, b4 = (np.asarray(p) for p in P)
    h = celu(W1 @ z + b1)
    h = celu(W2 @ h + b2)
    h = celu(W3 @ h + b3)
    return W4 @ h + b4


def numpy_history(P, s, x0, ab, nlearn, variant):
    x, out = np.array(x0, float), [np.linalg.norm(F(x0, s, ab))]
    for k in range(6):
        f = F(x, s, ab)
        if k < nlearn:
            nf = np.linalg.norm(f)
            z = np.concatenate([f / nf, s, [np.log(nf), k]])
            dx = nf * mlp(P, z) if variant == "x" else np.linalg.solve(Jt(x, ab), nf * (f / nf + mlp(P, z)))
        else:
            dx = np.linalg.solve(Jt(x, ab), f)
        x = x - dx
        out.append(np.linalg.norm(F(x, s, ab)))
    return np.array(out)


def test_histories_match_numpy():
    d = load_driver()
    mod = d.load()
    S = d.sources(3, 5)
    for variant in ("x", "w"):
        P = d.init_params([5, 7, 4], variant, seed=3)
        for s in S:
            got = np.asarray(mod.hist_plain(s, d.X0, d.AB))
            np.testing.assert_allclose(got, numpy_history(P, s, d.X0, d.AB, 0, variant), rtol=1e-10)
            for n in ((1, 6) if variant == "x" else (3,)):
                got = np.asarray(getattr(mod, f"hist_{variant}")(*P, s, d.X0, d.AB, np.zeros(n)))
                np.testing.assert_allclose(got, numpy_history(P, s, d.X0, d.AB, n, variant), rtol=1e-9)
            # the loss: Σ_k ‖F(x_k)‖² / ‖F(x₀)‖² over 2 learned steps
            h = numpy_history(P, s, d.X0, d.AB, 2, variant)
            want = (h[1] ** 2 + h[2] ** 2) / h[0] ** 2
            got = float(getattr(mod, f"loss_{variant}")(*P, s, d.X0, d.AB, np.zeros(2)))
            assert abs(got - want) <= 1e-10 * want


def test_gradient_through_two_learned_steps_matches_fd():
    d = load_driver()
    mod = d.load()
    P = d.init_params([6, 8, 5], "w", seed=4)
    _, _, e = d.fd_check(mod, "w", P, d.sources(1, 9)[0], unroll=2)
    assert e <= 1e-6


def test_driver_small_run(capsys):
    d = load_driver()
    argv = ["--samples", "40", "--batches", "4", "--test", "40", "--epochs", "40",
            "--hidden", "16", "32", "16", "--every", "10", "--no-plot"]
    assert d.main(argv) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and out.rstrip().endswith("OK")
    rel = float(re.search(r"central differences .*rel\. error ([0-9.e+-]+)", out).group(1))
    assert rel <= 1e-6
    before, after = (float(x) for x in out.split("training loss:")[1].splitlines()[0].split("→"))
    assert after < 1e-2 * before
    tb, ta = (float(x) for x in out.split("test loss:")[1].splitlines()[0].split("→"))
    assert ta < tb
    m = re.search(r"after step 1: start ([0-9.e+-]+), plain ([0-9.e+-]+), learned ([0-9.e+-]+)", out)
    f0, plain, learned = (float(x) for x in m.groups())
    assert learned < plain and learned < f0
