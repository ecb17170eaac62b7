"""examples/hvp: f.hvp of a model with solve, expm and lyap against central differences of the
gradient, Hessian symmetry, and the driver end to end. Includes hvp with respect to lyap's A
argument alone (it raised a RuleError until (xᵀ)ᵀ folding was limited to transposition)."""
from __future__ import annotations

import re

import numpy as np
from example_driver import load_example


def load_driver():
    return load_example("hvp/hvp.py")


def test_hvp_matches_finite_differences_of_the_gradient():
    d = load_driver()
    f = d.load().hvp_demo
    args, v, w = d.problem(4, seed=2)
    Hv = f.hvp(wrt=d.WRT)(args, v)
    # central differences of the gradient converge to H v as ε² (the ε = 1e-3 error is ~100× the
    # 1e-4 one); at ε = 1e-5 truncation (~1e-9 here) and rounding are both small
    e3, e4, e5 = (d.rel(Hv, d.fd_hvp(f, args, v, e)) for e in (1e-3, 1e-4, 1e-5))
    assert 30 < e3 / e4 < 300 and e5 <= 1e-7
    # one direction at a time: the t-entry of H e_t is ∂²L/∂t², a second difference of L itself
    h = 1e-4
    F, G, b, t = args
    L = lambda s: float(f(F, G, b, s))  # noqa: E731
    d2 = (L(t + h) - 2 * L(t) + L(t - h)) / h ** 2
    Htt = float(f.hvp(wrt="t")(args, 1.0))
    assert abs(Htt - d2) <= 1e-5 * abs(d2)
    # symmetry of the Hessian
    Hw = f.hvp(wrt=d.WRT)(args, w)
    a1, a2 = d.inner(w, Hv), d.inner(v, Hw)
    assert abs(a1 - a2) <= 1e-10 * abs(a1)


def test_hvp_with_respect_to_lyap_A():
    d = load_driver()
    f = d.load().hvp_demo
    args, v, _ = d.problem(3, seed=1)
    F, G, b, t = args
    V = v[0]
    Hv = np.asarray(f.hvp(wrt="F")(args, V))
    eps = 1e-4
    g = f.grad(wrt="F")
    fd = (np.asarray(g(F + eps * V, G, b, t)) - np.asarray(g(F - eps * V, G, b, t))) / (2 * eps)
    assert np.linalg.norm(Hv - fd) <= 1e-6 * np.linalg.norm(fd)


def test_driver(capsys):
    d = load_driver()
    assert d.main(["--n", "4", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and out.rstrip().endswith("OK")
    best = float(re.search(r"best rel\. error ([0-9.e+-]+)", out).group(1))
    assert best <= 1e-7
    sym = float(re.search(r"symmetry: .*rel\. difference ([0-9.e+-]+)", out).group(1))
    assert sym <= 1e-10
