"""Text Fréchet rules are elaborated once per kind of call and replayed after (an unrolled loop
differentiates the same call once per iteration): the replayed programs must be the ones a fresh
elaboration gives, name for name, and a replay must notice a re-registered primitive."""
import itertools

import numpy as np
import pytest

import lagrad
from lagrad import RuleError
from lagrad.compiler import frechet_text

SRC = """
model m(A: f64[n, n], Q: f64[n, n], B: f64[n, n]) -> f64 {
    X = B
    for k in range(4) {
        M = X @ X' + A @ A' + 5 * Q @ Q'
        X = inv(M) @ inv(M) + solve(M, X) + solve(M, M)
    }
    return sum(X) + logdet(A @ A' + Q @ Q') + sum(lyap(Q - 9 * A @ A', A @ A')) + det(M)
}
"""


_fresh = itertools.count()


def load(src):
    """A module of its own: `lagrad.loads` caches by text, with everything derived from it."""
    return lagrad.loads(src + f"# copy {next(_fresh)}\n")


@pytest.mark.parametrize("kind", ["adjoint", "tangent"])
@pytest.mark.parametrize("wrt", [None, "A", "Q"])
def test_replayed_rules_give_the_programs_a_fresh_elaboration_gives(monkeypatch, kind, wrt):
    """Repeated calls (the loop), one variable in two argument slots (solve(M, M)), zero
    tangents (wrt a subset), and rules calling their own primitive (solve, lyap)."""
    cached = str(getattr(load(SRC).m, kind)(wrt))
    monkeypatch.setattr(frechet_text, "_template_key", lambda *a: None)     # never replay
    fresh = str(getattr(load(SRC).m, kind)(wrt))
    assert cached == fresh
    assert cached.count("inv(") >= 4 and "lyap" in cached


def test_replay_is_used_and_gives_the_right_derivative():
    calls = []
    real = frechet_text._replay
    frechet_text._replay = lambda *a: calls.append(1) or real(*a)
    try:
        f = load(SRC).m
        rng = np.random.default_rng(3)
        A, Q, B = (rng.standard_normal((4, 4)) for _ in range(3))
        g = f.grad("A")(A, Q, B)
    finally:
        frechet_text._replay = real
    assert calls, "the loop's repeated inv/solve calls should replay their rules"
    h, E = 1e-6, rng.standard_normal((4, 4))
    fd = (f(A + h * E, Q, B) - f(A - h * E, Q, B)) / (2 * h)
    np.testing.assert_allclose(np.sum(g * E), fd, rtol=1e-6)


def test_replay_notices_a_reregistered_callee():
    """wrap_p's rule calls halve_q on the tangent; re-registered without linear_in, halve_q makes
    that rule nonlinear, which only a fresh elaboration (not a stale replay) can report."""
    lagrad.primitive("halve_q", lambda x: x / 2, linear_in=(0,),
                     frechet="frechet halve_q(x) -> y { dy = halve_q(dx) }")
    lagrad.primitive("wrap_p", lambda x: x / 2, frechet="frechet wrap_p(x) -> y { dy = halve_q(dx) }")
    src = "model f(x: f64[n]) -> f64 { return sum(wrap_p(x)) + sum(wrap_p(2 * x)) }"
    x = np.arange(3.0)
    _, t = load(src).f.jvp((x,), (np.ones(3),))
    np.testing.assert_allclose(t, 4.5)
    lagrad.primitive("halve_q", lambda x: x / 2, frechet="frechet halve_q(x) -> y { dy = halve_q(dx) }")
    with pytest.raises(RuleError, match="not linear"):
        load(src).f.jvp((x,), (np.ones(3),))
