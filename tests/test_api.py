"""The Python API of SPEC §4: Function methods, argument checks, JAX composition, caching."""
import networkx as nx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrad
from lagrad import InputError, LagradError

SRC = """
model ftest(x: f64, A: f64[n, n], B: f64[n, n], C: f64[n, n]) -> f64 {
    M = A + x * B
    return (C @ inv(M))[-1, -1]
}
model two(A: f64[n, n], b: f64[n]) -> (f64[n], f64) {
    y = solve(A, b)
    return y, dot(y, y)
}
"""
rng = np.random.default_rng(3)
n = 6
A = rng.standard_normal((n, n)) + 6 * np.eye(n)
B = rng.standard_normal((n, n))
C = rng.standard_normal((n, n))
b = rng.standard_normal(n)


def ref(x, A, B, C):
    return (C @ jnp.linalg.inv(A + x * B))[-1, -1]


@pytest.fixture(scope="module")
def mod():
    return lagrad.loads(SRC, name="api.la")


def test_call_positional_and_keyword(mod):
    f = mod.ftest
    assert mod["ftest"] is f
    np.testing.assert_allclose(f(2.3, A, B, C), ref(2.3, A, B, C), rtol=1e-12)
    np.testing.assert_allclose(f(2.3, A, C=C, B=B), ref(2.3, A, B, C), rtol=1e-12)
    y, s = mod.two(A, b)
    np.testing.assert_allclose(y, np.linalg.solve(A, b), rtol=1e-12)
    np.testing.assert_allclose(s, y @ y, rtol=1e-12)


def test_grad_variants(mod):
    f = mod.ftest
    gx = f.grad(wrt="x")(2.3, A, B, C)
    gx_ref, gA_ref = jax.grad(ref, argnums=(0, 1))(2.3, A, B, C)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-10)
    gx2, gA = f.grad(wrt=["x", "A"])(2.3, A, B, C)
    np.testing.assert_allclose(gA, gA_ref, rtol=1e-10, atol=1e-14)
    allg = f.grad()(2.3, A, B, C)
    assert isinstance(allg, tuple) and len(allg) == 4
    v, g = f.value_and_grad(wrt="A")(2.3, A, B, C)
    np.testing.assert_allclose(v, ref(2.3, A, B, C), rtol=1e-12)
    np.testing.assert_allclose(g, gA_ref, rtol=1e-10, atol=1e-14)


def test_jvp_and_vjp(mod):
    f = mod.ftest
    dA = rng.standard_normal((n, n))
    y, ty = f.jvp((2.3, A, B, C), (1.0, dA, 0 * B, 0 * C))
    y_ref, ty_ref = jax.jvp(ref, (2.3, A, B, C), (1.0, dA, 0 * B, 0 * C))
    np.testing.assert_allclose(ty, ty_ref, rtol=1e-10)
    out, pull = mod.two.vjp(A, b)
    cy, cs = rng.standard_normal(n), 0.7
    gA, gb = pull(cy, cs)
    _, pull_ref = jax.vjp(lambda A, b: (jnp.linalg.solve(A, b), jnp.linalg.solve(A, b) @ jnp.linalg.solve(A, b)), A, b)
    gA_ref, gb_ref = pull_ref((cy, cs))
    np.testing.assert_allclose(gA, gA_ref, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gb, gb_ref, rtol=1e-10, atol=1e-14)


def test_grad_needs_scalar(mod):
    with pytest.raises(LagradError, match="scalar"):
        mod.two.grad()(A, b)


def test_programs_print_and_views(mod):
    f = mod.ftest
    for prog in (f.program, f.adjoint(wrt="x"), f.tangent()):
        text = str(prog)
        assert text.splitlines()[0].startswith(prog.kind)
        for line in text.splitlines()[1:-1]:
            assert "# from api.la:" in line
        g = prog.graph
        assert isinstance(g, nx.DiGraph) and nx.is_directed_acyclic_graph(g)
        assert prog.to_dot().startswith("digraph")
    assert "x_bar" in str(f.adjoint(wrt="x"))


def test_to_python_runs_on_its_own(mod):
    f = mod.ftest
    src = f.adjoint(wrt="x").to_python()
    ns = {}
    exec(compile(src, "generated.py", "exec"), ns)
    fn = [v for k, v in ns.items() if k.endswith("_adjoint")][0]
    (gx,) = fn(2.3, jnp.asarray(A), jnp.asarray(B), jnp.asarray(C), 1.0)
    np.testing.assert_allclose(gx, f.grad(wrt="x")(2.3, A, B, C), rtol=1e-12)


@pytest.mark.parametrize("call,msg", [
    (lambda f: f(2.3, A, B), "missing argument(s) `C`"),
    (lambda f: f(2.3, A, B, C, C), "takes 4 argument(s)"),
    (lambda f: f(2.3, A, B, C[:3, :3]), "dimension `n` is 6 from argument `A` (axis 0) but 3 from argument `C` (axis 0)"),
    (lambda f: f(2.3, A, B, C[0]), "argument `C` must be f64[n, n]"),
    (lambda f: f(2.3, A, B, D=C), "has no argument `D`"),
    (lambda f: f(2.3, A + 1j, B, C), "complex"),
    (lambda f: f("x", A, B, C), "argument `x`"),
    (lambda f: f.grad(wrt="y"), "no argument `y`"),
    (lambda f: f.grad(wrt=["x", "A", "x"]), "names `x` twice"),
    (lambda f: f(2.3, A, B[:, :3], C), "from argument `A` (axis 0) but 3 from argument `B` (axis 1)"),
    (lambda f: f.adjoint(wrt="A, A"), "names `A` twice"),
])
def test_input_errors(mod, call, msg):
    with pytest.raises(InputError) as info:
        call(mod.ftest)
    assert msg in str(info.value)


def test_integers_are_converted(mod):
    f = lagrad.loads("model s(x: f64[n]) -> f64 { return sum(x * x) }").s
    assert f(np.arange(3)) == 5.0
    assert f([1, 2]) == 5.0


def test_jax_transformations_compose(mod):
    f = mod.ftest
    np.testing.assert_allclose(jax.jit(f)(2.3, A, B, C), ref(2.3, A, B, C), rtol=1e-12)
    g = jax.grad(f, argnums=(0, 1))(2.3, A, B, C)
    g_ref = jax.grad(ref, argnums=(0, 1))(2.3, A, B, C)
    for u, v in zip(g, g_ref):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-14)
    xs = jnp.linspace(0.0, 1.0, 5)
    np.testing.assert_allclose(jax.vmap(f, in_axes=(0, None, None, None))(xs, A, B, C),
                               jax.vmap(ref, in_axes=(0, None, None, None))(xs, A, B, C), rtol=1e-12)
    gv = jax.vmap(jax.grad(f), in_axes=(0, None, None, None))(xs, A, B, C)
    gv_ref = jax.vmap(jax.grad(ref), in_axes=(0, None, None, None))(xs, A, B, C)
    np.testing.assert_allclose(gv, gv_ref, rtol=1e-10)
    np.testing.assert_allclose(jax.jit(jax.grad(f))(2.3, A, B, C), jax.grad(ref)(2.3, A, B, C), rtol=1e-10)


def test_jax_grad_uses_lagrads_adjoint():
    # JAX sees a zero derivative through this implementation; only lagrad's rule knows better
    lagrad.primitive("opaque_sin", lambda x: jax.lax.stop_gradient(jnp.sin(x)),
                     frechet="frechet opaque_sin(x) -> y { dy = cos(x) * dx }")
    f = lagrad.loads("model f(x: f64[n]) -> f64 { return sum(opaque_sin(x)) }").f
    x = rng.standard_normal(4)
    np.testing.assert_allclose(jax.grad(f)(x), np.cos(x), rtol=1e-12)


def test_f32_models_compute_in_single_precision():
    f = lagrad.loads("model f(A: f32[n, n], b: f32[n]) -> f32 { return sum(solve(A, b)) }").f
    out = f(A, b)
    assert out.dtype == jnp.float32
    assert f.grad(wrt="b")(A, b).dtype == jnp.float32


def test_cache_makes_second_compile_free():
    text = "model c(x: f64[n]) -> f64 { return sum(exp(x)) }  # cache test"
    m1 = lagrad.loads(text)
    m1.c.grad()(np.ones(3))
    m2 = lagrad.loads(text)
    assert m2 is m1
    assert m2.c.compiled({"n": 3}) is m1.c.compiled({"n": 3})


def test_load_missing_file():
    with pytest.raises(LagradError, match="cannot read"):
        lagrad.load("/nonexistent/model.la")


def test_unknown_model_suggests(mod):
    with pytest.raises(lagrad.LaNameError, match="did you mean `ftest`"):
        mod.ftets


def test_module_is_a_collection_of_its_models_and_signatures_show_parameters():
    import inspect
    m = lagrad.loads("model a(x: f64) -> f64 { return x }\nmodel b(y: f64, z: f64) -> f64 { return y * z }")
    assert len(m) == 2 and list(m) == ["a", "b"] and "b" in m and "c" not in m
    assert str(inspect.signature(m.b)) == "(y, z)" == str(inspect.signature(m.b.grad("y")))
    assert str(inspect.signature(m.b.value_and_grad())) == "(y, z)"


def test_names_that_differ_only_in_case_are_suggested():
    f = lagrad.loads("model f(x: f64, A: f64[n]) -> f64 { return x * sum(A) }").f
    with pytest.raises(LagradError, match="no argument `X` to differentiate with respect to; did you mean `x`"):
        f.grad("X")(1.0, np.ones(2))
    with pytest.raises(lagrad.InputError, match="no argument `a`; did you mean `A`"):
        f(1.0, a=np.ones(2))


def test_hvp_forward_over_reverse():
    src = "model h(A: f64[n, n], b: f64[n]) -> f64 { x = solve(A, b); return dot(x, x) + logdet(A) }"
    f = lagrad.loads(src).h
    ref = lambda A, b: jnp.sum(jnp.linalg.solve(A, b) ** 2) + jnp.linalg.slogdet(A)[1]
    V, v = rng.standard_normal((n, n)), rng.standard_normal(n)
    hv = f.hvp(wrt=["A", "b"])((A, b), (V, v))
    _, want = jax.jvp(jax.grad(ref, argnums=(0, 1)), (A, b), (V, v))
    for u, w in zip(hv, want):
        np.testing.assert_allclose(u, w, rtol=1e-9, atol=1e-12)
    hb = f.hvp(wrt="b")((A, b), v)
    _, wb = jax.jvp(lambda b: jax.grad(ref, argnums=1)(A, b), (b,), (v,))
    np.testing.assert_allclose(hb, wb, rtol=1e-9, atol=1e-12)
    # a scalar direction seeds every entry, as a scalar tangent does in jvp
    np.testing.assert_allclose(f.hvp(wrt="b")((A, b), 1.0), f.hvp(wrt="b")((A, b), np.ones(n)), rtol=1e-12)


def test_elementwise_definitions_stay_in_their_module():
    m1 = lagrad.loads("elementwise softish(x) = log(1 + exp(x))\nmodel f(x: f64[n]) -> f64 { return sum(softish(x)) }")
    m2 = lagrad.loads("elementwise softish(x) = x * x\nmodel f(x: f64[n]) -> f64 { return sum(softish(x)) }")
    np.testing.assert_allclose(m1.f(np.ones(3)), 3 * np.log1p(np.e))
    np.testing.assert_allclose(m2.f(np.ones(3)), 3.0)
    with pytest.raises(lagrad.LaNameError, match="unknown function `softish`"):
        lagrad.loads("model g(x: f64[n]) -> f64 { return sum(softish(x)) }")


def test_repeated_calls_with_device_arrays_still_check_shapes():
    """The per-call binding fast path (device arrays of the declared dtype, shapes seen before)
    gives the same results and still refuses shapes that do not fit."""
    f = lagrad.loads("model m(A: f64[n, n], b: f64[n]) -> f64 {\n    return sum(A @ b)\n}\n", name="fast.la").m
    A, b = jnp.ones((3, 3)), jnp.arange(3.0)
    g = f.grad(["A", "b"])
    first = [np.asarray(x) for x in g(A, b)]
    for _ in range(3):
        assert float(f(A, b)) == 9.0
        assert all(np.array_equal(x, np.asarray(y)) for x, y in zip(first, g(A, b)))
    with pytest.raises(InputError):
        f(A, jnp.arange(4.0))
    with pytest.raises(InputError):
        g(jnp.ones((3, 3), jnp.float32).astype(jnp.float64)[:2], b)
    assert float(f(np.ones((2, 2)), np.ones(2))) == 4.0        # numpy arguments take the full path


def test_device_array_calls_go_through_one_jit_per_gradient():
    """Device-array calls run one jax.jit per Function (primal) and per gradient callable, made
    once: `f.grad(wrt)` returns the same callable, a repeated call does not trace again, new
    shapes trace once more, and the result equals the Python path's (NumPy arguments, keywords)."""
    f = lagrad.loads("model m(A: f64[n, n], b: f64[n]) -> f64 {\n    return sum(solve(A, b))\n}\n",
                     name="jitpath.la").m
    g = f.grad(["A", "b"])
    assert f.grad(["A", "b"]) is g and f.value_and_grad("b") is f.value_and_grad("b")
    traces = []
    slow = f.compiled                                   # called once per trace of the jitted gradient

    def counting(dims=None):
        traces.append(dict(dims or {}))
        return slow(dims)
    f.compiled = counting
    A3, b3 = jnp.eye(3) * 2.0, jnp.arange(3.0)
    lam = np.linalg.solve(np.asarray(A3).T, np.ones(3))            # loss 1ᵀA⁻¹b: b̄ = A⁻ᵀ1, Ā = −b̄ xᵀ
    want = [-np.outer(lam, np.linalg.solve(np.asarray(A3), np.asarray(b3))), lam]
    for _ in range(3):
        got = g(A3, b3)
        for x, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(x), w, rtol=1e-14, atol=1e-14)
    assert traces == [{"n": 3}]
    for _ in range(2):          # a second trace, then its cached executable (JAX's C++ path)
        np.testing.assert_allclose(np.asarray(g(jnp.eye(4), jnp.ones(4))[1]), np.ones(4))
    assert traces == [{"n": 3}, {"n": 4}]
    for x, y in zip(g(np.asarray(A3), np.asarray(b3)), g(A=A3, b=b3)):      # the Python path
        assert np.array_equal(np.asarray(x), np.asarray(y))
    for x, w in zip(g(np.asarray(A3), np.asarray(b3)), want):
        np.testing.assert_allclose(np.asarray(x), w, rtol=1e-14, atol=1e-14)
    with pytest.raises(InputError, match="dimension `n` is 3"):
        g(A3, jnp.ones(4))
    with pytest.raises(InputError, match="missing argument"):
        g(A3)
    strict = lagrad.loads("model m(b: f64[n]) -> f64 {\n    return sum(b * b)\n}\n", name="jitpath_finite.la",
                          check_finite=True).m
    with pytest.raises(InputError, match="non-finite value"):       # check_finite reads the values
        strict.grad("b")(jnp.array([1.0, jnp.nan]))


def test_jvp_and_hvp_on_device_arrays_trace_once_and_match_the_python_path():
    """jvp and hvp calls whose groups are device arrays (or tuples of them) take the same jitted
    path as grad: one trace per shape, results equal to the Python path's (lists, NumPy)."""
    f = lagrad.loads("model m(A: f64[n, n], b: f64[n]) -> f64 {\n    return dot(b, A @ b)\n}\n",
                     name="jitpath_jvp.la").m
    traces = []
    slow = f.compiled

    def counting(dims=None):
        traces.append(dict(dims or {}))
        return slow(dims)
    f.compiled = counting
    A3, b3 = jnp.asarray(np.arange(9.0).reshape(3, 3)), jnp.asarray([1.0, -2.0, 0.5])
    dA, db = jnp.ones((3, 3)), jnp.asarray([0.0, 1.0, 2.0])
    Ab, bb = np.asarray(A3), np.asarray(b3)
    want_out = bb @ Ab @ bb
    want_dout = bb @ np.ones((3, 3)) @ bb + np.asarray(db) @ (Ab + Ab.T) @ bb      # dA: bᵀ dA b; db: dbᵀ(A + Aᵀ)b
    for _ in range(3):
        out, dout = f.jvp((A3, b3), (dA, db))
        np.testing.assert_allclose([float(out), float(dout)], [want_out, want_dout], rtol=1e-13)
    out, dout = f.jvp((A3, b3), (jnp.ones(()), db))              # a scalar tangent is broadcast
    np.testing.assert_allclose(float(dout), want_dout, rtol=1e-13)
    assert traces == [{"n": 3}, {"n": 3}]                        # one trace per tangent shape
    traces.clear()
    h = f.hvp("b")
    assert f.hvp("b") is h
    want_h = (Ab + Ab.T) @ np.asarray(db)                         # H_b = A + Aᵀ
    for _ in range(3):
        np.testing.assert_allclose(np.asarray(h((A3, b3), db)), want_h, rtol=1e-13)
    assert traces == [{"n": 3}]
    np.testing.assert_allclose(np.asarray(h([Ab, bb], np.asarray(db))), want_h, rtol=1e-13)   # Python path
    np.testing.assert_allclose(float(f.jvp([Ab, bb], [np.ones((3, 3)), np.asarray(db)])[1]), want_dout,
                               rtol=1e-13)
    with pytest.raises(InputError, match="tangent of `b` has shape"):
        f.jvp((A3, b3), (dA, jnp.ones(4)))
    with pytest.raises(InputError, match="direction for `b` has shape"):
        h((A3, b3), jnp.ones(4))


def test_vjp_on_device_arrays_binds_once_per_shape_and_matches_the_python_path():
    """vjp on device arrays binds the arguments once per (shape, dtype) signature; later calls
    reuse that binding's Compiled. Results, cotangent checks and errors match the Python path
    (NumPy arguments, keywords); arguments binding converts (int arrays) are never cached."""
    f = lagrad.loads("model m(A: f64[n, n], b: f64[n]) -> (f64, f64[n]) {\n"
                     "    return dot(b, A @ b), 2 * b\n}\n", name="vjppath.la").m
    binds = []
    slow = f._bind

    def counting(args, kwargs):
        binds.append(len(args) + len(kwargs))
        return slow(args, kwargs)
    f._bind = counting
    A3, b3 = jnp.asarray(np.arange(9.0).reshape(3, 3)), jnp.asarray([1.0, -2.0, 0.5])
    Ab, bb = np.asarray(A3), np.asarray(b3)
    ct = (jnp.asarray(1.5), jnp.asarray([1.0, 0.0, -1.0]))
    want = [1.5 * np.outer(bb, bb), 1.5 * (Ab + Ab.T) @ bb + 2 * np.asarray(ct[1])]
    for _ in range(3):
        out, pull = f.vjp(A3, b3)
        np.testing.assert_allclose([float(out[0])], [bb @ Ab @ bb], rtol=1e-14)
        for x, w in zip(pull(*ct), want):
            np.testing.assert_allclose(np.asarray(x), w, rtol=1e-13)
    assert binds == [2]                                            # bound once, then reused
    for args, kw in (((Ab, bb), {}), ((A3,), {"b": b3})):           # the Python path binds every call
        out, pull = f.vjp(*args, **kw)
        for x, w in zip(pull(1.5, np.asarray(ct[1])), want):           # NumPy / scalar cotangents convert
            np.testing.assert_allclose(np.asarray(x), w, rtol=1e-13)
    assert binds == [2, 2, 2]
    Ai = jnp.asarray(np.arange(9).reshape(3, 3))                     # int: binding converts, no cache entry
    f.vjp(Ai, b3), f.vjp(Ai, b3)
    assert binds == [2, 2, 2, 2, 2]
    with pytest.raises(InputError, match="dimension `n` is 3"):
        f.vjp(A3, jnp.ones(4))
    with pytest.raises(InputError, match="cotangent of output 1"):
        f.vjp(A3, b3)[1](ct[0], jnp.ones(4))
    with pytest.raises(InputError, match="takes 2 cotangent"):
        f.vjp(A3, b3)[1](ct[0])


def test_a_file_that_is_not_utf8_is_a_syntax_error_at_the_byte(tmp_path):
    p = tmp_path / "bin.la"
    p.write_bytes(b"model m(x: f64) -> f64 { return x }\n# caf\xc3\xa9 \xff\xfe\n")
    with pytest.raises(lagrad.LaSyntaxError, match="not UTF-8") as info:
        lagrad.load(p)
    assert (info.value.path, info.value.line, info.value.column) == (str(p), 2, 8)


@pytest.mark.parametrize("text", [123, None, b"model m(x: f64) -> f64 { return x }"])
def test_loads_wants_text(text):
    with pytest.raises(TypeError, match="as a str"):
        lagrad.loads(text)


def test_a_module_is_indexed_by_name(mod):
    with pytest.raises(TypeError, match="by model name"):
        mod[0]


def test_messages_name_a_cotangent_and_a_fixed_size_plainly():
    f = lagrad.loads("model f(x: f64[n]) -> f64[n] { return x * 2 }").f
    _, pullback = f.vjp(np.ones(3))
    with pytest.raises(InputError, match=r"^the cotangent of output 0 of `f` is complex"):
        pullback(np.ones(3) * 1j)
    g = lagrad.loads("model g(x: f64[4]) -> f64 { return sum(x) }").g
    with pytest.raises(InputError, match=r"argument `x` axis 0 must be 4, got 3$"):
        g(np.ones(3))


def test_jax_transforms_of_a_function_in_both_modes():
    """jax.vjp, jax.jacrev, jax.hessian, and jax.jvp and jax.jacfwd (the tangent program) work."""
    f = lagrad.loads("model q(A: f64[n, n], b: f64[n]) -> f64 { return dot(b, solve(A, b)) }").q
    rng = np.random.default_rng(0)
    Am, b = rng.standard_normal((4, 4)) + 4 * np.eye(4), rng.standard_normal(4)
    Ai = np.linalg.inv(Am)
    np.testing.assert_allclose(jax.vjp(f, Am, b)[1](1.0)[1], (Ai + Ai.T) @ b, rtol=1e-12)
    np.testing.assert_allclose(jax.jacrev(f, argnums=1)(Am, b), (Ai + Ai.T) @ b, rtol=1e-12)
    np.testing.assert_allclose(jax.hessian(f, argnums=1)(Am, b), Ai + Ai.T, rtol=1e-12)
    np.testing.assert_allclose(jax.jvp(f, (Am, b), (0 * Am, b))[1], b @ (Ai + Ai.T) @ b, rtol=1e-12)
    np.testing.assert_allclose(jax.jacfwd(f, argnums=1)(Am, b), (Ai + Ai.T) @ b, rtol=1e-12)


def test_a_model_named_like_a_module_member_is_that_attribute():
    m = lagrad.loads("model path(x: f64) -> f64 { return x }\nmodel names(x: f64) -> f64 { return 2 * x }", name="p.la")
    assert float(m.path(1.5)) == 1.5 and float(m.names(1.5)) == 3.0
    assert m["path"] is m.path and lagrad.Module.path.fget(m) == "p.la"
    u = lagrad.loads("model _p(x: f64) -> f64 { return 3 * x }", name="u.la")   # a name may start with _
    assert float(u._p(1.5)) == 4.5 and u["_p"] is u._p
    with pytest.raises(AttributeError):
        u._q


def test_the_command_line_checks_a_model_named_names(tmp_path, capsys):
    (tmp_path / "names.la").write_text("model names(x: f64[n]) -> f64 { return sum(x * x) }\n")
    from lagrad.cli import main
    assert main(["check", str(tmp_path / "names.la")]) == 0
    assert "1 of 1 inputs agree" in capsys.readouterr().out


@pytest.mark.parametrize("src,shapes,ref", [
    ("model f(x: f64[n], y: f64[m]) -> f64 { return sum(exp(hcat(x, y))) }", [(3,), (2,)],
     lambda x, y: jnp.sum(jnp.exp(jnp.concatenate([x, y])))),
    ("model f(A: f64[n, k], B: f64[m, k]) -> f64 { C = vcat(A, B)\n return sum(tanh(C' @ C)) }", [(2, 3), (4, 3)],
     lambda A, B: jnp.sum(jnp.tanh(jnp.vstack([A, B]).T @ jnp.vstack([A, B])))),
    ("model f(A: f64[n, m], B: f64[k, m]) -> f64[n + k, m] { return vcat(A, B) * 2 }", [(2, 3), (4, 3)],
     lambda A, B: jnp.vstack([A, B]) * 2),
])
def test_vjp_binds_dimensions_seen_only_inside_sums(src, shapes, ref):
    """The backward part of a vjp binds n and m from the primal inputs when its residuals show
    them only as n + m (it raised 'dimensions cannot be bound'); jax.grad goes the same way."""
    f = lagrad.loads(src).f
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s) for s in shapes]
    out, pullback = f.vjp(*args)
    ct = rng.standard_normal(np.shape(out))
    want = jax.vjp(ref, *args)[1](jnp.asarray(ct))
    for g, w in zip(pullback(ct), want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12)
    if np.ndim(out) == 0:
        for g, w in zip(jax.grad(f, (0, 1))(*map(jnp.asarray, args)), jax.grad(ref, (0, 1))(*args)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12)
