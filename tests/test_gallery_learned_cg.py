"""examples/learned_cg: the unrolled CG against NumPy, and the driver end to end on a small
family (gradient vs central differences, the loss falls, the learned corrections beat plain CG on
held-out systems without beating the minimal residual over the Krylov space)."""
from __future__ import annotations

import re

import numpy as np

from example_driver import load_example


def load_driver():
    return load_example("learned_cg/train.py")


def numpy_cg(A, b, c, d):
    x, r, p = np.zeros_like(b), b.copy(), b.copy()
    rr, out = r @ r, [1.0]
    for ck, dk in zip(c, d):
        Ap = A @ p
        alpha = ck * rr / (p @ Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = r @ r
        p, rr = r + (rr_new / rr + dk) * p, rr_new
        out.append(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
    return np.array(out), np.log(rr / (b @ b))


def test_unrolled_cg_matches_numpy_and_plain_cg_is_cg():
    d = load_driver()
    mod = d.load()
    As, bs = d.spd_family(2, 12, 50.0, seed=3)
    c, dd = 1 + 0.2 * np.sin(np.arange(4)), 0.1 * np.cos(np.arange(4))
    for A, b in zip(As, bs):
        for cc, ddd in ((np.ones(4), np.zeros(4)), (c, dd)):
            hist, loss = numpy_cg(A, b, cc, ddd)
            np.testing.assert_allclose(np.asarray(mod.cg_history(A, b, cc, ddd)), hist, rtol=1e-10)
            assert abs(float(mod.cg_loss(A, b, cc, ddd)) - loss) <= 1e-10 * abs(loss)
        # plain CG run to n iterations solves the system (to rounding)
        h = np.asarray(mod.cg_history(A, b, np.ones(12), np.zeros(12)))
        assert h[-1] <= 1e-6
    # the minimal-residual reference is below plain CG at every k
    hist, _ = numpy_cg(As[0], bs[0], np.ones(4), np.zeros(4))
    assert np.all(d.min_residual_history(As[0], bs[0], 4) <= hist + 1e-12)


def test_driver_small_run(capsys):
    d = load_driver()
    argv = ["--n", "20", "--train", "16", "--test", "16", "--steps", "150", "--every", "50", "--no-plot"]
    assert d.main(argv) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and out.rstrip().endswith("OK")
    rel = float(re.search(r"central differences.*rel\. error ([0-9.e+-]+)", out).group(1))
    assert rel <= 1e-6
    l0, l1 = (float(x) for x in out.split("training loss:")[1].splitlines()[0].split("→"))
    h0, h1 = (float(x) for x in out.split("held-out loss:")[1].splitlines()[0].split("→"))
    assert l1 < l0 and h1 < h0
    m = re.search(r"after 5 iterations: plain ([0-9.]+), learned ([0-9.]+), minimal ([0-9.]+)", out)
    plain, learned, minimal = (float(x) for x in m.groups())
    assert minimal <= learned < plain
