"""`fn` calls are elaborated once per kind of call and replayed after (an unrolled loop inlines
the same call once per iteration; lagrad/compiler/replay.py): the replayed programs must be the
ones a fresh elaboration gives, name for name and position for position, with the same checks."""
import itertools
import pathlib

import numpy as np
import pytest

import lagrad
from lagrad import LagradError
from lagrad.compiler import elaborate

ROOT = pathlib.Path(__file__).resolve().parents[1]

KINDS = """
fn g(a, b) {
    c = a @ b' + b @ a'
    return c + a, sum(c)
}
fn h(u, v) {
    w = u * v
    for k in range(3) {
        w = w + u
    }
    return w
}
fn t(a, b) {
    return a' @ b
}
model m(A: f64[n, n], B: f64[n, n], x: f64[n]) -> f64 {
    X = A
    s = 0.0
    for k in range(4) {
        X, r = g(X, B)
        s = s + r
        X = X / 100.0
    }
    Y, q = g(A, A)
    Z, p = g(2.0 * B, B')
    W = t(A', B) + t(A', B) + t(B, A)
    v = h(x, x) + h(x, A @ x) + h(2.0, x)
    return s + q + p + sum(Y) + sum(Z) + sum(W) + sum(v) + sum(X)
}
"""

_fresh = itertools.count()


def load(src):
    """A module of its own (`lagrad.loads` caches by text)."""
    return lagrad.loads(src + f"# copy {next(_fresh)}\n")


def never_replay(monkeypatch):
    monkeypatch.setattr(elaborate.Elaborator, "_call_key", lambda self, fn, args: None)


def programs(f, wrt):
    return [str(f.program), str(f.adjoint(wrt)), str(f.tangent(wrt))]


def spans(prog):
    return [(e.prim, e.span) for e in prog.eqns]


@pytest.mark.parametrize("case", ["kinds", "kalman"])
def test_replayed_calls_give_the_programs_a_fresh_elaboration_gives(monkeypatch, case):
    """Calls repeated by a loop; literal arguments; one variable in two argument slots; an
    argument a transpose made (the body's `a'` folds it); a fn with its own loop: the program,
    the adjoint and the tangent, and every equation's source position, as a fresh elaboration."""
    if case == "kinds":
        make, wrt = (lambda: load(KINDS).m), ["A", "B"]
    else:
        text = (ROOT / "examples" / "kalman" / "kalman.la").read_text()
        make, wrt = (lambda: load(text).kalman_nll.specialize(T=6)), ["F", "G", "H"]
    replayed = make()
    got, got_spans = programs(replayed, wrt), spans(replayed.program)
    never_replay(monkeypatch)
    fresh = make()
    assert got == programs(fresh, wrt)
    assert got_spans == spans(fresh.program)


def test_replay_is_used_and_gives_the_right_derivative(monkeypatch):
    calls = []
    real = elaborate.Elaborator._replay_call
    monkeypatch.setattr(elaborate.Elaborator, "_replay_call",
                        lambda self, *a: calls.append(1) or real(self, *a))
    f = load(KINDS).m
    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((2, 3, 3))
    x = rng.standard_normal(3)
    gA = f.grad("A")(A, B, x)
    assert len(calls) >= 3, "the loop's repeated g(X, B) calls should replay"
    h, E = 1e-6, rng.standard_normal((3, 3))
    fd = (f(A + h * E, B, x) - f(A - h * E, B, x)) / (2 * h)
    np.testing.assert_allclose(np.sum(gA * E), fd, rtol=1e-6)


UNROLL = """
fn inner(x) {
    for k in range(600) {
        x = x + 1.0
    }
    return x
}
model u(x: f64[n]) -> f64 {
    for k in range(20) {
        x = inner(x)
    }
    return sum(x)
}
"""


def _error(src):
    with pytest.raises(LagradError) as e:
        load(src).u.program
    return str(e.value), e.value.line, e.value.column


def test_a_replayed_call_counts_its_unrolled_iterations(monkeypatch):
    """The unrolling limit (10,000 iterations) counts a replayed call's inner loop: the same
    error, at the same place, as a fresh elaboration."""
    replayed = _error(UNROLL)
    assert "10220 unrolled" in replayed[0] and replayed[1:] == (3, 20)      # the 17th call's loop
    never_replay(monkeypatch)
    assert _error(UNROLL) == replayed


SIZES = """
fn last3(x: f64[k]) {
    return x[k - 3] + x[2]
}
model s(x: f64[k]) -> f64 {
    t = 0.0
    for i in range(3) {
        t = t + last3(x * i)
    }
    return t
}
"""


def test_a_replayed_call_keeps_its_size_checks(monkeypatch):
    """A size check a call makes (the index needs k ≥ 3) holds for the replayed calls too: the
    model's checks are a fresh elaboration's, and a call with too short an x is refused."""
    f = load(SIZES).s
    checks = f.program.meta["dim_checks"]
    np.testing.assert_allclose(f(np.arange(4.0)), 3 * (1.0 + 2.0))
    with pytest.raises(LagradError, match="out of range"):
        f(np.arange(2.0))
    never_replay(monkeypatch)
    assert load(SIZES).s.program.meta["dim_checks"] == checks and len(checks) == 2     # x[k - 3], x[2]
