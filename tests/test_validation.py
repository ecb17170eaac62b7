"""Call-time validation (issue 7): every bad argument is an InputError naming it; check_finite;
documented results (NaN/inf, never a silent finite wrong answer) on singular, indefinite and
unstable inputs; `lagrad check` reports non-finite results. See docs/robustness.md."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrad
from lagrad import InputError, LagradError

SRC = """
model f(x: f64, A: f64[n, n], b: f64[n]) -> f64 {
    return x * dot(b, solve(A, b))
}
model g(A: f64[n, k], B: f64[k + 1, n]) -> f64[n, n] {
    return A @ B[0:k, :]
}
model h(x: f32[n]) -> f32 {
    return sum(x * x)
}
model v(x: f64[n]) -> f64[n] {
    return 2 * x
}
model idx(x: f64[n]) -> f64 {
    return x[2] + sum(x[1:3]) + x[-3]
}
model loop(x: f64[n]) -> f64 {
    s = 0
    for i in range(n) {
        s = s + x[i]
    }
    return s
}
"""
A = 2 * np.eye(3) + 0.1 * np.arange(9.0).reshape(3, 3)
b = np.array([1.0, -2.0, 0.5])


@pytest.fixture(scope="module")
def mod():
    return lagrad.loads(SRC, name="validation.la")


def _ref(x, A, b):
    return x * b @ np.linalg.solve(A, b)


# ---- arguments --------------------------------------------------------------------------------
BAD_CALLS = [
    # (label, args, kwargs, words the message must contain)
    ("complex matrix", (1.0, A + 0j, b), {}, ["`A`", "complex"]),
    ("complex scalar", (1j, A, b), {}, ["`x`", "complex"]),
    ("object array", (1.0, np.array([[1, None, 2]] * 3, dtype=object), b), {}, ["`A`", "object"]),
    ("string", ("a", A, b), {}, ["`x`"]),
    ("None", (None, A, b), {}, ["`x`"]),
    ("ragged list", (1.0, [[1, 2], [3]], b), {}, ["`A`", "not an array"]),
    ("dict", ({}, A, b), {}, ["`x`"]),
    ("datetime", (np.datetime64("2020-01-01"), A, b), {}, ["`x`"]),
    ("huge int", (10 ** 400, A, b), {}, ["`x`"]),
    ("vector for a matrix", (1.0, b, b), {}, ["`A`", "f64[n, n]", "(3,)"]),
    ("array for a scalar", (np.ones(1), A, b), {}, ["`x`", "(1,)"]),
    ("inconsistent n", (1.0, A, np.ones(4)), {}, ["`n`", "`A`", "`b`", "3", "4"]),
    ("non-square", (1.0, np.ones((3, 4)), b), {}, ["`n`", "`A`"]),
    ("zero size", (1.0, np.zeros((0, 0)), np.zeros(0)), {}, ["`n`", "`A`", "at least 1"]),
    ("missing", (1.0, A), {}, ["`b`", "missing"]),
    ("too many", (1.0, A, b, b), {}, ["takes 3"]),
    ("unknown keyword", (1.0, A, b), {"c": b}, ["`c`"]),
    ("keyword twice", (1.0, A, b), {"A": A}, ["`A`", "twice"]),
    ("jax complex", (1.0, jnp.asarray(A, jnp.complex64), b), {}, ["`A`", "complex"]),
]


@pytest.mark.parametrize("label,args,kwargs,words", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_are_input_errors_naming_them(mod, label, args, kwargs, words):
    for call in (mod.f, mod.f.grad(), mod.f.value_and_grad("A"), lambda *a, **k: mod.f.vjp(*a, **k)):
        with pytest.raises(InputError) as info:
            call(*args, **kwargs)
        for w in words:
            assert w in str(info.value), (label, str(info.value))


def test_dimension_expressions_are_checked(mod):
    assert mod.g(np.ones((3, 2)), np.ones((3, 3))).shape == (3, 3)
    with pytest.raises(InputError, match=r"`B` axis 0 must be k \+ 1 = 3, got 4"):
        mod.g(np.ones((3, 2)), np.ones((4, 3)))


@pytest.mark.parametrize("value", [1, np.int32(1), True, np.float16(1.0), np.longdouble(1.0),
                                   np.float32(1.0), jnp.bfloat16(1.0), jnp.ones((), jnp.bfloat16)])
def test_real_numbers_are_converted_to_the_model_dtype(mod, value):
    y = mod.f(value, A.astype(np.float32), np.array([1, -2, 0]))
    assert y.dtype == jnp.float64
    np.testing.assert_allclose(y, _ref(float(value), A.astype(np.float32).astype(np.float64),
                                       np.array([1.0, -2.0, 0.0])), rtol=1e-12)


def test_f32_models_compute_in_single_precision(mod):
    assert mod.h(np.arange(3.0)).dtype == jnp.float32
    assert mod.h(np.arange(3)).dtype == jnp.float32
    assert mod.h(jnp.arange(3.0, dtype=jnp.float64)).dtype == jnp.float32


def test_a_mixed_model_gives_each_input_a_cotangent_of_its_own_precision():
    """As JAX does: the f32 input's gradient is f32, the f64 one's f64 (both were f64)."""
    import jax
    f = lagrad.loads("model f(A: f32[n, n], x: f64[n]) -> f64 { return sum(tanh(A @ x)) }").f
    A32, x = jnp.asarray(np.arange(9.0).reshape(3, 3) / 9, jnp.float32), jnp.asarray([0.5, -1.0, 2.0])
    ref = jax.grad(lambda A, x: jnp.sum(jnp.tanh(A @ x)), (0, 1))(A32, x)
    for got in (f.grad()(A32, x), jax.grad(f, (0, 1))(A32, x), f.vjp(A32, x)[1](1.0)):
        assert [g.dtype for g in got] == [jnp.float32, jnp.float64]
        for g, r in zip(got, ref):
            np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-6)


def test_python_integers_past_int64_become_floats():
    f = lagrad.loads("model f(x: f64) -> f64 { return x * 2 }").f
    assert float(f(10 ** 20)) == 2e20
    with pytest.raises(lagrad.InputError, match="argument `x` is an integer too large for f64"):
        f(10 ** 400)


def test_integer_jax_arrays_are_converted(mod):
    y = mod.f(1.0, jnp.asarray(2 * np.eye(3), jnp.int32), b)
    np.testing.assert_allclose(y, _ref(1.0, 2 * np.eye(3), b), rtol=1e-12)


def test_wrt_and_derived_call_arguments(mod):
    f = mod.f
    with pytest.raises(InputError, match="`y`"):
        f.grad(wrt="y")
    with pytest.raises(InputError, match="wrt"):
        f.grad(wrt=0)
    with pytest.raises(LagradError, match="one scalar"):
        mod.v.grad()(b)
    with pytest.raises(InputError, match="cotangent"):
        mod.v.vjp(b)[1](np.ones(5))
    with pytest.raises(InputError, match="complex"):
        mod.v.vjp(b)[1](np.ones(3) + 1j)
    with pytest.raises(InputError, match="cotangent"):
        mod.v.vjp(b)[1](None)
    with pytest.raises(InputError, match="takes 1 cotangent"):
        mod.v.vjp(b)[1](b, b)
    np.testing.assert_allclose(mod.v.vjp(b)[1](1.0)[0], 2 * np.ones(3))   # a scalar seeds all
    with pytest.raises(InputError, match="tangent of `b`"):
        f.jvp((1.0, A, b), (1.0, A, np.ones(4)))
    with pytest.raises(InputError, match="complex"):
        f.jvp((1.0, A, b), (1j, A, b))
    with pytest.raises(InputError, match="3 primals but 2 tangents"):
        f.jvp((1.0, A, b), (1.0, A))
    with pytest.raises(InputError, match="two tuples"):
        f.jvp(1.0, 1.0)
    with pytest.raises(InputError, match="direction for `b`"):
        f.hvp("b")((1.0, A, b), np.ones(4))
    with pytest.raises(InputError, match="2 direction"):
        f.hvp(["b", "x"])((1.0, A, b), [np.ones(3)])
    with pytest.raises(InputError, match="args"):
        f.hvp("x")(1.0, 1.0)


def test_specialize_refuses_a_dimension_the_model_lacks(mod):
    with pytest.raises(InputError, match="has no dimension `q`"):
        mod.loop.specialize(q=3)


def test_specialize_checks_its_sizes(mod):
    with pytest.raises(InputError, match="positive integer"):
        mod.loop.specialize(n=-1)
    with pytest.raises(InputError, match="positive integer"):
        mod.loop.specialize(n="a")
    f5 = mod.loop.specialize(n=5)
    assert float(f5(np.ones(5))) == 5.0
    with pytest.raises(InputError, match="specialized to n = 5"):
        f5(np.ones(3))


def test_indices_out_of_range_for_the_call_sizes(mod):
    x = np.arange(5.0)
    np.testing.assert_allclose(mod.idx(x), 2 + 3 + 2)
    with pytest.raises(InputError) as info:
        mod.idx(np.arange(2.0))                     # x[2] would be clamped by JAX to x[1]
    assert (info.value.line, info.value.column) == (15, 14) and "n = 2" in str(info.value)   # at the index
    with pytest.raises(InputError):
        jax.vmap(mod.idx)(np.ones((4, 2)))
    with pytest.raises(LagradError) as info:
        lagrad.loads("model f(x: f64[n]) -> f64 {\n    return x[n]\n}\n")
    assert (info.value.line, info.value.column) == (2, 14)


def test_under_jax_transformations(mod):
    xs = np.stack([A, A + np.eye(3)])
    out = jax.vmap(mod.f, in_axes=(None, 0, None))(1.5, xs, b)
    np.testing.assert_allclose(out, [_ref(1.5, a, b) for a in xs], rtol=1e-12)
    with pytest.raises(InputError, match="`n`"):
        jax.vmap(mod.f, in_axes=(None, 0, None))(1.0, xs, np.ones(4))
    with pytest.raises(InputError, match="complex"):
        jax.jit(mod.f)(1.0, A + 0j, b)


# ---- check_finite -------------------------------------------------------------------------------
def test_check_finite_refuses_nan_and_inf():
    m = lagrad.loads(SRC, name="validation.la", check_finite=True)
    assert m is not lagrad.loads(SRC, name="validation.la")        # options are in the cache key
    assert m is lagrad.loads(SRC, name="validation.la", check_finite=True)
    bad = A.copy()
    bad[1, 2] = np.nan
    for call in (m.f, m.f.grad(), lambda *a: m.f.vjp(*a), lambda *a: m.f.jvp(a, a)):
        with pytest.raises(InputError, match=r"`A` holds 1 non-finite value\(s\), nan \(first at index \(1, 2\)\)"):
            call(1.0, bad, b)
    with pytest.raises(InputError, match="`x`"):
        m.f(np.inf, A, b)
    with pytest.raises(InputError, match="`b`"):
        m.f(1.0, A, jnp.array([0.0, -np.inf, 1.0]))
    np.testing.assert_allclose(m.f(1.0, A, b), _ref(1.0, A, b), rtol=1e-12)
    assert m.loop.specialize(n=2).check_finite
    # without the option NaN propagates
    assert np.isnan(lagrad.loads(SRC, name="validation.la").f(1.0, bad, b))


def test_check_finite_from_a_file(tmp_path):
    p = tmp_path / "m.la"
    p.write_text(SRC)
    with pytest.raises(InputError, match="`x`"):
        lagrad.load(p, check_finite=True).f(np.nan, A, b)


# ---- numerical results on bad inputs ------------------------------------------------------------
NUM_SRC = """
model solve_gen(A: f64[n, n], b: f64[n]) -> f64 { return sum(solve(A, b)) }
model solve_pos(A: f64[n, n], b: f64[n]) -> f64 { return sum(solve(A, b, assume="pos")) }
model solve_sym(A: f64[n, n], b: f64[n]) -> f64 { return sum(solve(A, b, assume="sym")) }
model inv_(A: f64[n, n]) -> f64 { return sum(inv(A)) }
model det_(A: f64[n, n]) -> f64 { return det(A) }
model logdet_(A: f64[n, n]) -> f64 { return logdet(A) }
model chol(A: f64[n, n]) -> f64 { return sum(cholesky(A)) }
model tri(T: f64[n, n], b: f64[n]) -> f64 { return sum(solve_triangular(T, b)) }
model lyap_(A: f64[n, n], Q: f64[n, n]) -> f64 { return sum(lyap(A, Q)) }
model dlyap_(A: f64[n, n], Q: f64[n, n]) -> f64 { return sum(dlyap(A, Q)) }
model qr_(A: f64[n, n]) -> f64 {
    Q, R = qr(A)
    return sum(Q) + sum(R)
}
model expm_(A: f64[n, n]) -> f64 { return sum(expm(A)) }
model cg_(A: f64[n, n], b: f64[n]) -> f64 {
    op K(v) = A @ v
    return sum(cg(K, b))
}
model gmres_(A: f64[n, n], b: f64[n]) -> f64 {
    op K(v) = A @ v
    return sum(gmres(K, b))
}
model cg_fixed(A: f64[n, n], b: f64[n]) -> f64 {
    op K(v) = A @ v
    return sum(cg(K, b, tol=0, maxiter=2))
}
model norm_(x: f64[n]) -> f64 { return norm(x) }
model sqrt_(x: f64[n]) -> f64 { return sum(sqrt(x)) }
model log_(x: f64[n]) -> f64 { return sum(log(x)) }
model div_(x: f64[n], y: f64[n]) -> f64 { return sum(x / y) }
"""
SING = np.array([[1.0, 2, 3], [2, 4, 6], [1, 0, 1]])           # rank 2 (row 2 = 2 · row 1)
ZERO = np.zeros((3, 3))
INDEF = np.diag([1.0, -1.0, 2.0])
NONSYM = np.array([[1.0, 5, 0], [0, 1, 5], [5, 0, 1]])            # not symmetric: no cg
UNSTABLE = np.diag([1.0, -0.5, -0.3]) + np.triu(np.ones((3, 3)), 1)
T0 = np.triu(np.ones((3, 3)))
T0[1, 1] = 0
v3 = np.array([1.0, 2.0, 3.0])

# (model, args, value is NaN/inf, gradient has NaN/inf)
BAD_NUMERICS = [
    ("solve_gen", (SING, v3), True, True), ("solve_gen", (ZERO, v3), True, True),
    ("solve_pos", (INDEF, v3), True, True), ("solve_pos", (SING, v3), True, True),
    ("solve_sym", (SING, v3), True, True), ("inv_", (SING,), True, True), ("inv_", (ZERO,), True, True),
    ("logdet_", (SING,), True, True), ("logdet_", (ZERO,), True, True),
    ("chol", (INDEF,), True, True), ("chol", (SING,), True, True),
    ("tri", (T0, v3), True, True),
    ("lyap_", (UNSTABLE, np.eye(3)), True, True), ("lyap_", (ZERO, np.eye(3)), True, True),
    ("dlyap_", (np.eye(3), np.eye(3)), True, True), ("dlyap_", (2 * np.eye(3), np.eye(3)), True, True),
    ("expm_", (1000 * np.eye(3),), True, True), ("expm_", (np.full((3, 3), np.nan),), True, True),
    ("cg_", (NONSYM, v3), True, True), ("cg_", (SING, v3), True, True), ("cg_", (ZERO, v3), True, True),
    ("gmres_", (ZERO, v3), True, True), ("gmres_", (SING, v3 + [0, 1, 0]), True, True),
    ("sqrt_", (np.array([-1.0, 0, 1]),), True, True), ("log_", (np.array([-1.0, 0, 1]),), True, True),
    ("div_", (v3, np.zeros(3)), True, True),
    # a finite value whose derivative does not exist there
    ("det_", (SING,), False, True), ("qr_", (np.diag([1.0, 0.0, 1.0]),), False, True),
    ("norm_", (np.zeros(3),), False, True), ("sqrt_", (np.zeros(3),), False, True),
    ("gmres_", (SING, v3), False, True),            # consistent: a solution, but no derivative
]


@pytest.fixture(scope="module")
def num():
    return lagrad.loads(NUM_SRC, name="numerics.la")


@pytest.mark.parametrize("name,args,bad_value,bad_grad", BAD_NUMERICS,
                         ids=[f"{r[0]}-{k}" for k, r in enumerate(BAD_NUMERICS)])
def test_bad_inputs_give_nan_or_inf_never_a_silent_finite_answer(num, name, args, bad_value, bad_grad):
    f = num[name]
    y = np.asarray(f(*args))
    assert bool(~np.isfinite(y).all()) == bad_value, (name, y)
    grads = f.grad()(*args)
    assert any(not np.isfinite(np.asarray(g)).all() for g in grads) == bad_grad, (name, grads)


def test_singular_determinant_is_zero(num):
    assert abs(float(num.det_(SING))) < 1e-12 and float(num.det_(ZERO)) == 0.0


def test_cg_fixed_iterations_keep_the_last_iterate(num):
    """tol=0 asks for exactly maxiter iterations: the last iterate, NaN only from arithmetic."""
    y = num.cg_fixed(np.diag([1.0, 2.0, 3.0, 4.0]), np.ones(4))
    assert np.isfinite(y)


def test_numerically_rank_deficient_qr_has_huge_not_wrong_gradients(num):
    """Rank deficient up to rounding: R's last pivot is ~1e-16, so the derivative is ~1e13,
    the true conditioning of the problem (documented), not an arbitrary finite value."""
    rd = np.array([[1.0, 2, 0], [2, 4, 0], [3, 6, 1]])
    g = num.qr_.grad()(rd)[0]
    assert np.isfinite(num.qr_(rd)) and np.max(np.abs(g)) > 1e10


def test_check_reports_non_finite_results():
    from lagrad.runtime.check import check_function, format_rows
    f = lagrad.loads("model f(x: f64[n]) -> f64 {\n    return sum(log(x - 10))\n}\n").f
    rows = check_function(f)
    assert not any(r.ok for r in rows)
    assert all("non-finite" in r.note and "output" in r.note for r in rows)
    assert "NO (non-finite output" in format_rows(rows)
    good = check_function(lagrad.loads("model f(x: f64[n]) -> f64 {\n    return sum(x * x)\n}\n").f)
    assert all(r.ok and r.note == "" for r in good)


def test_a_computed_dimension_below_one_is_refused():
    f = lagrad.loads("model m(x: f64[n], y: f64[n - 1]) -> f64 { return sum(x) }").m
    with pytest.raises(lagrad.InputError, match="n - 1 = 0 for n = 1; a dimension's size must be at least 1"):
        f(np.ones(1), np.ones(0))
