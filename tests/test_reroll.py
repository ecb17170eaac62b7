"""Re-rolled loops (lagrad/runtime/reroll.py): the generated JAX source runs an unrolled `for`
loop — and the loops its tangent and adjoint repeat — as lax.scan. Every program here is run
both ways, re-rolled and unrolled, and must give the same numbers."""
import contextlib
from pathlib import Path

import jax
import numpy as np
import pytest

import lagrad
from lagrad.runtime import reroll
from lagrad.runtime.codegen import generate_source
from lagrad.runtime.lower import to_jax

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def rerolling(on):
    old = reroll.ENABLED
    reroll.ENABLED = on
    try:
        yield
    finally:
        reroll.ENABLED = old


def both_ways(prog, *args):
    outs = []
    for on in (True, False):
        with rerolling(on):
            outs.append(jax.block_until_ready(to_jax(prog)(*args)))
    return outs


def assert_same(a, b, rtol=1e-12):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-13)


def kalman_args(T, seed=0):
    rng = np.random.default_rng(seed)
    F = -np.eye(2) + 0.2 * rng.standard_normal((2, 2))
    G = 0.5 * np.eye(2) + 0.1 * rng.standard_normal((2, 2))
    H, R = rng.standard_normal((1, 2)), np.array([[0.3]])
    return [F, G, H, R, rng.standard_normal((T, 1)), 0.5]


@pytest.fixture(scope="module")
def kalman():
    return lagrad.load(ROOT / "examples/kalman/kalman.la").kalman_nll


def test_kalman_adjoint_runs_as_two_scans(kalman):
    c = kalman.compiled({"T": 12})
    adj = c.adjoint(tuple(range(6)), True)
    with rerolling(True):
        src = generate_source(adj)
    assert src.count("jax.lax.scan(") == 2          # the filter forward, its adjoint backward
    assert "[::-1]" in src                            # the adjoint reads the residuals last to first
    with rerolling(True):
        assert generate_source(c.primal()).count("jax.lax.scan(") == 1
    args = [np.asarray(a, float) for a in kalman_args(12)] + [np.float64(1.0)]
    rolled, unrolled = both_ways(adj, *args)
    assert_same(rolled, unrolled)


def test_kalman_tangent_and_hvp_agree(kalman):
    c = kalman.compiled({"T": 8})
    args = [np.asarray(a, float) for a in kalman_args(8, seed=1)]
    rng = np.random.default_rng(2)
    tans = [rng.standard_normal(np.shape(a)) for a in args]
    rolled, unrolled = both_ways(c.tangent(tuple(range(6))), *args, *tans)
    assert_same(rolled, unrolled)
    prog = c.hvp((0, 1))                   # inputs: primal inputs, output seed, directions
    assert [v.name for v in prog.inputs[len(args):]][0].endswith("_bar") and len(prog.inputs) == len(args) + 3
    dF, dG = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
    rolled, unrolled = both_ways(prog, *args, 1.0, dF, dG)
    assert_same(rolled, unrolled, rtol=1e-10)


def test_kalman_gradient_through_the_api_matches_finite_differences(kalman):
    args = kalman_args(15, seed=3)
    val, grads = kalman.value_and_grad()(*args)
    d = np.random.default_rng(4).standard_normal((2, 2))
    h = 1e-6
    plus = list(args); plus[0] = args[0] + h * d
    minus = list(args); minus[0] = args[0] - h * d
    fd = (float(kalman(*plus)) - float(kalman(*minus))) / (2 * h)
    assert abs(float(np.sum(np.asarray(grads[0]) * d)) - fd) <= 1e-6 * max(1.0, abs(fd))


GS = lagrad.load(ROOT / "examples/learned_gauss_seidel.la")


@pytest.mark.parametrize("model", ["gs_residual5", "gs_errors20", "gs_solve20"])
def test_gauss_seidel_loops(model):
    f = GS[model]
    c = f.compiled({})
    rng = np.random.default_rng(5)
    A = np.array([[10., -1, 2, 0], [-1, 11, -1, 3], [2, -1, 10, -1], [0, 3, -1, 8]])
    P = np.eye(4) + 0.05 * rng.standard_normal((4, 4))
    v = rng.standard_normal(4)
    rolled, unrolled = both_ways(c.primal(), P, A, v)
    assert_same(rolled, unrolled)
    ct = [np.ones(np.shape(o)) for o in rolled]
    rolled, unrolled = both_ways(c.adjoint((0, 1, 2)), P, A, v, *ct)
    assert_same(rolled, unrolled, rtol=1e-10)


LOOPS = lagrad.loads("""
model backwards(Y: f64[T, n], w: f64[n], A: f64[n, n]) -> f64 {
    s = zeros(n)
    for t in range(T) {
        s = tanh(A @ s + Y[T - 1 - t, :] * w)
    }
    return sum(s * s)
}
model factor_in_loop(A: f64[n, n], b: f64[n]) -> f64 {
    x = b
    for k in range(6) {
        x = solve(A + dot(x, x) * eye(n), x) + b
    }
    return sum(x)
}
""")


def test_reversed_index_and_gradient():
    f = LOOPS.backwards.specialize(T=20)
    c = f.compiled({"T": 20})
    rng = np.random.default_rng(6)
    Y, w, A = rng.standard_normal((20, 3)), rng.standard_normal(3), 0.3 * rng.standard_normal((3, 3))
    adj = c.adjoint((0, 1, 2))
    with rerolling(True):
        assert generate_source(adj).count("jax.lax.scan(") == 2
    rolled, unrolled = both_ways(adj, Y, w, A, 1.0)
    assert_same(rolled, unrolled)


def test_a_factorization_per_iteration_is_carried_through_the_scan():
    """solve(A + ‖x‖²I, x) factors a different matrix every step: the LU factors (a tuple of
    arrays) are per-iteration residuals of the forward scan, stacked leaf by leaf."""
    c = LOOPS.factor_in_loop.compiled({})
    rng = np.random.default_rng(7)
    A, b = rng.standard_normal((4, 4)) + 5 * np.eye(4), 0.3 * rng.standard_normal(4)
    adj = c.adjoint((0, 1))
    with rerolling(True):
        src = generate_source(adj)
    assert src.count("jax.lax.scan(") == 2 and "tree_map" in src
    rolled, unrolled = both_ways(adj, A, b, 1.0)
    assert_same(rolled, unrolled, rtol=1e-10)


def test_short_programs_are_not_rerolled():
    f = lagrad.loads("model f(x: f64[n]) -> f64 { return sum(exp(x)) }").f
    with rerolling(True):
        assert "scan" not in generate_source(f.compiled({}).adjoint((0,)))


SWAP = lagrad.loads("""
model swap(Y: f64[T, n], A: f64[n, n]) -> f64 {
    s = zeros(n)
    r = zeros(n)
    for t in range(T) {
        q = s
        s = tanh(A @ s + Y[t, :] * r + 0.1 * Y[t, :])
        r = q
    }
    return sum(s * s)
}
""")


def test_a_value_from_two_iterations_back_rolls_two_iterations_per_step():
    """r_t = s_{t−2}: no one-iteration loop carries it, but two iterations per scan step do."""
    c = SWAP.swap.specialize(T=60).compiled({"T": 60})
    rng = np.random.default_rng(8)
    Y, A = rng.standard_normal((60, 3)), 0.5 * rng.standard_normal((3, 3))
    adj = c.adjoint((0, 1))
    runs = reroll.find_runs(c.primal())
    assert len(runs) == 1 and runs[0].count == 30
    rolled, unrolled = both_ways(adj, Y, A, 1.0)
    assert_same(rolled, unrolled)


def test_rerolled_source_runs_on_numpy_arrays():
    """`.to_python()` of a program with a re-rolled loop is source that runs as printed, on NumPy
    arrays too (the scan body indexes the inputs with a traced counter)."""
    rng = np.random.default_rng(0)
    g = lagrad.load(Path(__file__).resolve().parents[1] / "docs/snippets/rollout.la").rollout.specialize(T=40)
    args = (rng.standard_normal((3, 3)), rng.standard_normal(3), rng.standard_normal((40, 3)))
    for prog, extra, want in ((g.program, (), g(*args)), (g.adjoint(), (1.0,), g.grad()(*args))):
        src = prog.to_python()
        assert "jax.lax.scan" in src
        ns = {}
        exec(src, ns)
        fn = next(v for k, v in ns.items() if k.startswith("rollout") and callable(v))
        got = fn(*args, *extra)
        for a, b in zip(got, want if isinstance(want, tuple) else (want,)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)
