"""Threads and caching (issue 7): compiled functions called from many threads at once agree
with a single-threaded run, including the first call that compiles; the module cache is keyed
by text, name, options and the primitive registry; modules share no mutable state."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import jax.numpy as jnp
import numpy as np

import lagrad

THREADS = 16
SRC = """
model loss(A: f64[n, n], b: f64[n], s: f64) -> f64 {
    x = solve(A + s * eye(n), b)
    return dot(x, x) + sum(tanh(A @ x))
}
model pair(A: f64[n, n], b: f64[n]) -> (f64[n], f64) {
    op K(v) = A' @ (A @ v) + v
    x = cg(K, b)
    return x, dot(x, b)
}
model looped(x: f64[n]) -> f64 {
    s = 0
    for i in range(n) {
        s = s + x[i] * x[i]
    }
    return s
}
"""
rng = np.random.default_rng(7)


def _problem(n, k):
    r = np.random.default_rng(k)
    return r.standard_normal((n, n)) + n * np.eye(n), r.standard_normal(n), 0.1 * k


def _hammer(calls):
    """Run `calls` (thunks) from THREADS threads released together; results in order."""
    barrier = threading.Barrier(THREADS)

    def run(k):
        barrier.wait()
        return calls[k]()
    with ThreadPoolExecutor(THREADS) as ex:
        return list(ex.map(run, range(THREADS)))


def test_first_calls_and_grads_from_16_threads():
    """A fresh module: the first call of f, f.grad and the vjp compile while other threads call."""
    mod = lagrad.loads(SRC, name="threads_first.la")
    probs = [_problem(4 + k % 3, k) for k in range(THREADS)]       # 3 sizes: distinct compiles
    kinds = ["f", "grad", "vjp", "loop"]

    def call(k):
        A, b, s = probs[k]
        kind = kinds[k % 4]
        if kind == "f":
            return lambda: np.asarray(mod.loss(A, b, s))
        if kind == "grad":
            return lambda: tuple(np.asarray(g) for g in mod.loss.grad()(A, b, s))
        if kind == "vjp":
            return lambda: tuple(np.asarray(g) for g in mod.pair.vjp(A, b)[1](np.ones(len(b)), 1.0))
        return lambda: np.asarray(mod.looped(b))
    got = _hammer([call(k) for k in range(THREADS)])
    fresh = lagrad.loads(SRC + "\n# serial\n", name="threads_serial.la")
    for k in range(THREADS):
        A, b, s = probs[k]
        kind = kinds[k % 4]
        want = {"f": lambda: np.asarray(fresh.loss(A, b, s)),
                "grad": lambda: tuple(np.asarray(g) for g in fresh.loss.grad()(A, b, s)),
                "vjp": lambda: tuple(np.asarray(g) for g in fresh.pair.vjp(A, b)[1](np.ones(len(b)), 1.0)),
                "loop": lambda: np.asarray(fresh.looped(b))}[kind]()
        for g, w in zip(np.atleast_1d(got[k]) if kind in ("f", "loop") else got[k],
                        np.atleast_1d(want) if kind in ("f", "loop") else want):
            np.testing.assert_array_equal(g, w)


def test_warm_calls_from_16_threads_repeatedly():
    mod = lagrad.loads(SRC, name="threads_warm.la")
    A, b, s = _problem(5, 1)
    want = float(mod.loss(A, b, s))
    want_g = np.asarray(mod.loss.grad("A")(A, b, s))
    for _ in range(3):
        got = _hammer([(lambda: (float(mod.loss(A, b, s)), np.asarray(mod.loss.grad("A")(A, b, s))))] * THREADS)
        for v, g in got:
            assert v == want
            np.testing.assert_array_equal(g, want_g)


def test_loads_of_one_text_from_16_threads_give_one_module():
    text = SRC + "\n# concurrent loads\n"
    mods = _hammer([lambda: lagrad.loads(text, name="threads_loads.la")] * THREADS)
    assert all(m is mods[0] for m in mods)


def test_models_of_one_module_elaborate_concurrently():
    """Each elaboration keeps its own dimension names (they were one field of the module)."""
    src = "".join(f"model m{k}(x{k}: f64[d{k}]) -> f64 {{\n    y = x{k} * {k + 1}\n    for i in range(d{k}) {{\n"
                  f"        y = y + x{k}[i]\n    }}\n    return sum(y)\n}}\n" for k in range(THREADS))
    mod = lagrad.loads(src, name="threads_many.la")
    xs = [np.arange(1.0, 3 + k % 4) for k in range(THREADS)]
    got = _hammer([(lambda k=k: float(mod[f"m{k}"](xs[k]))) for k in range(THREADS)])
    for k, x in enumerate(xs):
        assert got[k] == float(np.sum(x * (k + 1) + np.sum(x)))


def test_cache_keyed_by_text_name_and_options():
    a = lagrad.loads(SRC, name="cache.la")
    assert lagrad.loads(SRC, name="cache.la") is a
    assert lagrad.loads(SRC, name="other.la") is not a
    assert lagrad.loads(SRC + " ", name="cache.la") is not a
    assert lagrad.loads(SRC, name="cache.la", check_finite=True) is not a
    A, b, s = _problem(4, 2)
    a.loss(A, b, s)
    assert lagrad.loads(SRC, name="cache.la").loss._cache is a.loss._cache   # compiled work reused


def test_registering_a_primitive_makes_new_modules_and_leaves_old_ones_alone():
    text = "model m(x: f64[n]) -> f64 {\n    return sum(x * x)\n}\n"
    first = lagrad.loads(text, name="reg.la")
    x = np.arange(3.0)
    before = float(first.m(x))
    lagrad.primitive("robustness_twice", lambda x: 2 * x, linear_in=(0,))
    second = lagrad.loads(text, name="reg.la")
    assert second is not first                                   # the registry is in the key
    assert float(second.m(x)) == before == float(first.m(x))
    assert second.m._cache is not first.m._cache
    assert second._ctx is not first._ctx and second.m._ctx is second._ctx
    third = lagrad.loads("model m(x: f64[n]) -> f64 {\n    return sum(robustness_twice(x))\n}\n", name="reg.la")
    assert float(third.m(x)) == 6.0 and float(first.m(x)) == before


def test_two_loads_share_no_mutable_state():
    a = lagrad.loads(SRC, name="iso_a.la")
    b = lagrad.loads(SRC, name="iso_b.la")
    assert a._ctx is not b._ctx and a.loss is not b.loss
    assert a.loss._cache is not b.loss._cache
    f5 = a.looped.specialize(n=5)
    assert f5._fixed == {"n": 5} and a.looped._fixed == {} and b.looped._fixed == {}
    A, B, s = _problem(3, 4)
    np.testing.assert_array_equal(a.loss(A, B, s), b.loss(A, B, s))
    assert jnp.asarray(a.pair(A, B)[0]).shape == (3,)
