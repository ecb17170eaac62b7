"""Source fuzzing (issue 7): random well-typed pipelines agree with a jax.numpy reference, in
value and gradient; mutated sources fail only with a LagradError; deep nesting and long
bodies compile without RecursionError.

The default run is short (a few examples each). `LAGRAD_SLOW_FUZZ=1 pytest -m slow_fuzz
tests/test_fuzz.py` runs the long campaign: hundreds of examples, and the deep programs run
as well as compiled."""
from __future__ import annotations

import os
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import lagrad
from lagrad import LagradError

from fuzz_programs import PARAMS, TYPES, mutations, programs

SLOW = os.environ.get("LAGRAD_SLOW_FUZZ") == "1"
ROOT = Path(__file__).resolve().parent.parent
FAST = settings(max_examples=6, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LONG = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _inputs(n, m, seed):
    rng = np.random.default_rng(seed)
    shapes = {"S": (), "V": (n,), "W": (m,), "M": (n, n), "R": (n, m)}
    return [0.7 * rng.standard_normal(shapes[t]) for _, t in PARAMS]


def _agrees(prog, n, m, seed):
    f = lagrad.loads(prog.text, name="fuzz.la").fz
    args = _inputs(n, m, seed)
    want = prog.reference(*args)
    got = f(*args)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11, err_msg=prog.text)
    grads = f.grad()(*args)
    ref_grads = jax.grad(prog.reference, argnums=tuple(range(len(args))))(*args)
    for (name, _), g, r in zip(PARAMS, grads, ref_grads):
        scale = 1e-9 * (1 + float(jnp.max(jnp.abs(r))))
        np.testing.assert_allclose(g, r, rtol=1e-7, atol=scale, err_msg=f"d/d{name} of\n{prog.text}")
    rng = np.random.default_rng(seed + 1)
    dirs = [rng.standard_normal(np.shape(a)) for a in args]
    _, t = f.jvp(args, dirs)
    _, t_ref = jax.jvp(prog.reference, tuple(map(jnp.asarray, args)), tuple(map(jnp.asarray, dirs)))
    np.testing.assert_allclose(t, t_ref, rtol=1e-7, atol=1e-9 * (1 + abs(float(t_ref))), err_msg=prog.text)


sizes = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**16))


@FAST
@given(programs(), sizes)
def test_generated_programs_agree_with_reference(prog, nms):
    _agrees(prog, *nms)


@pytest.mark.slow_fuzz
@pytest.mark.skipif(not SLOW, reason="long fuzzing: LAGRAD_SLOW_FUZZ=1")
@LONG
@given(programs(max_stmts=5, depth=3), sizes)
def test_generated_programs_long(prog, nms):
    _agrees(prog, *nms)


def test_generator_covers_every_type():
    """The generator's productions are consistent: every production's result is its type."""
    from fuzz_programs import PRODUCTIONS
    assert set(PRODUCTIONS) == set(TYPES)


# ---- mutated sources --------------------------------------------------------------------------
SEEDS = [p.read_text(encoding="utf-8") for p in sorted(ROOT.glob("examples/**/*.la"))] + [
    "model fz(s: f64, x: f64[n], y: f64[m], A: f64[n, n], B: f64[n, m]) -> f64 {\n"
    "    t0 = solve(A' @ A + 3 * eye(n), x)\n    op K(v) = A @ v + s * v\n"
    "    t1 = tanh(B @ y) + cg(K, x, tol=1e-8)\n    Q, R = qr(A)\n"
    "    return dot(t0, t1) + sum(R[0:2, :]) + logdet(expm(A * 0.1))\n}\n",
    "elementwise soft(x) = log(1 + exp(x))\nfn h(a, b: f64[k]) { c = a * b; return c }\n"
    "model fz(s: f64, x: f64[n], y: f64[m], A: f64[n, n], B: f64[n, m]) -> (f64, f64[n]) {\n"
    "    for i in range(3) { x = soft(A @ x) }\n    return sum(h(x, x)), x[-1:n]\n}\n",
]


def _ints(text):
    return [int(t) for t in re.findall(r"(?<![\w.])\d+(?![\w.])", text)]


def _loads_only_lagrad_errors(text, call=False):
    try:
        mod = lagrad.loads(text, name="mutant.la")
    except LagradError as e:
        assert e.line is None or e.line >= 1, e          # file errors have positions
        str(e)
        return
    if call and "fz" in mod:
        f = mod.fz
        args = _inputs(3, 2, 0)
        try:
            f(*args[:len(f.params)])
        except LagradError:
            pass


def _mutant_ok(seed, mutant):
    """Mutants that would only test patience (a loop unrolled 10⁶ times) are left out."""
    return max(_ints(mutant), default=0) <= max(_ints(seed) + [200])


@FAST
@given(st.data())
def test_mutated_sources_raise_only_lagrad_errors(data):
    seed = data.draw(st.sampled_from(SEEDS))
    mutant = data.draw(mutations(seed))
    assume(_mutant_ok(seed, mutant))
    _loads_only_lagrad_errors(mutant)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_mutated_generated_programs_load_or_raise_lagrad_errors(data):
    prog = data.draw(programs())
    mutant = data.draw(mutations(prog.text))
    _loads_only_lagrad_errors(mutant)


@pytest.mark.slow_fuzz
@pytest.mark.skipif(not SLOW, reason="long fuzzing: LAGRAD_SLOW_FUZZ=1")
@LONG
@given(st.data())
def test_mutated_sources_long(data):
    seed = data.draw(st.sampled_from(SEEDS))
    mutant = data.draw(mutations(seed))
    assume(_mutant_ok(seed, mutant))
    _loads_only_lagrad_errors(mutant, call=True)


@pytest.mark.parametrize("text", [
    "", "\n\n", "model", "model f(", "model f(x: f64) -> f64 {", "}", "model f() -> f64 { return 1 }",
    "model f(x: f64[n]) -> f64 { return x }", "model f(x: f64) { return x ** x ** }",
    "model f(x: f64[0.5]) -> f64 { return 1 }", "\x00", "model f(x: f64) -> f64 { return x }\x00",
    "model f(x: f64) -> f64 {\n return \"s\"\n}", "model f(x: f64) -> f64 { return x[0] }",
    "model f(x: f64[n]) -> f64 { return x[n] }", "model f(x: f64[n]) -> f64 { return sum(x[0:n+1]) }",
    "model f(x: f64[n]) -> f64 { for i in range(-1) { x = x } return sum(x) }",
    "fn g(a) = g(a)\nmodel f(x: f64) -> f64 { return g(x) }",
    "model f(x: f64[n]) -> f64 { op K(v) = v * v\n return sum(cg(K, x)) }",
    "frechet nosuch(x) -> y { dy = dx }",
    "model f(x: f64[n]) -> f64 { return sum(zeros(n - n)) }",
])
def test_malformed_sources(text):
    _loads_only_lagrad_errors(text)


# ---- depth and length -------------------------------------------------------------------------
DEPTH = 1000
HEAD = "model f(x: f64[n]) -> f64 {\n    return sum("
NESTINGS = {
    "parentheses": "(" * DEPTH + "x" + ")" * DEPTH,
    "exp": "exp(" * DEPTH + "x" + ")" * DEPTH,
    "negation": "-" * DEPTH + "x",
    "negated_parentheses": "-(" * DEPTH + "x" + ")" * DEPTH,
    "left_sum": " + ".join(["x"] * DEPTH),
    "right_sum": "x + (" * DEPTH + "x" + ")" * DEPTH,
    "power": "x" + " ** 1" * DEPTH,
    "fn_calls": "g(" * DEPTH + "x" + ")" * DEPTH,
    "operator_calls": "K(" * DEPTH + "x" + ")" * DEPTH,
}
CHEAP = {"parentheses", "negation", "left_sum", "right_sum", "power"}   # fast to run as XLA too


def _nested(kind):
    return ("fn g(a) = 0.5 * a\n" + HEAD.replace("    return", "    op K(v) = 0.5 * v\n    return")
            + NESTINGS[kind] + ")\n}\n")


@pytest.mark.parametrize("kind", sorted(NESTINGS))
def test_1000_levels_of_nesting(kind):
    f = lagrad.loads(_nested(kind), name=f"deep_{kind}.la").f
    eqns = len(f.program.eqns)
    assert eqns >= 1
    if kind in CHEAP or SLOW:
        x = np.array([0.1, -0.2, 0.3])
        ref = {"parentheses": x, "negation": x, "negated_parentheses": x, "left_sum": DEPTH * x,
               "right_sum": (DEPTH + 1) * x, "power": x, "exp": None,
               "fn_calls": 0.5 ** DEPTH * x, "operator_calls": 0.5 ** DEPTH * x}[kind]
        y = f(x)
        if ref is not None:
            np.testing.assert_allclose(y, np.sum(ref), rtol=1e-12, atol=1e-300)
        g = f.grad("x")(x)
        assert g.shape == x.shape and np.all(np.isfinite(g))


def test_nesting_in_types_and_dimension_arguments():
    dim = "(" * DEPTH + "n" + " + 1)" * DEPTH
    f = lagrad.loads(f"model f(x: f64[n], y: f64[{dim}]) -> f64 {{\n"
                     f"    return sum(x) + sum(y) + sum(zeros({dim}))\n}}\n").f
    np.testing.assert_allclose(f(np.ones(2), np.ones(2 + DEPTH)), 2 + 2 + DEPTH)


def test_past_the_supported_nesting_is_a_positioned_error():
    """Operators applying operators nest through Python recursion; far past any sensible
    depth the compiler says so at the model, never with a RecursionError."""
    ops = "\n".join(f"    op K{i}(v) = K{i - 1}(v)" for i in range(1, 1000))
    src = f"model f(x: f64[n]) -> f64 {{\n    op K0(v) = 0.5 * v\n{ops}\n    return sum(K999(x))\n}}\n"
    with pytest.raises(LagradError) as info:
        lagrad.loads(src, name="ops.la")
    assert info.value.line == 1 and "nested too deeply" in str(info.value)


def test_operator_chains_compile_in_polynomial_time():
    """An operator applying another was re-checked for linearity at every level (2^depth)."""
    ops = "\n".join(f"    op K{i}(v) = K{i - 1}(v) + v" for i in range(1, 40))
    src = f"model f(x: f64[n]) -> f64 {{\n    op K0(v) = 0.5 * v\n{ops}\n    return sum(K39(x))\n}}\n"
    f = lagrad.loads(src).f
    v = 0.5 * np.ones(2)
    for _ in range(39):
        v = v + np.ones(2)
    np.testing.assert_allclose(f(np.ones(2)), np.sum(v))


def test_10000_statement_body():
    n = 10000
    body = "".join(f"    y = y * 0.5 + x{' ' if k % 2 else '  # note'}\n" for k in range(n))
    src = f"model f(x: f64[n]) -> f64 {{\n    y = x\n{body}    return sum(y)\n}}\n"
    f = lagrad.loads(src, name="long.la").f
    assert len(f.program.eqns) >= n
    if SLOW:
        x = np.array([1.0, 2.0])
        np.testing.assert_allclose(f(x), np.sum(2 * x * (1 - 0.5 ** n) + 0.5 ** n * x), rtol=1e-12)
