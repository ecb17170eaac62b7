"""lagrad.primitive (SPEC §4): text and builder Fréchet rules, transpose rules, shape rules."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lagrad
from lagrad import RuleError
from lagrad.compiler.types import TensorType

rng = np.random.default_rng(11)


def test_custom_frechet_for_an_inverse_gives_forward_and_reverse_mode():
    lagrad.primitive("my_inv", jnp.linalg.inv, frechet="frechet my_inv(A) -> X { dX = -X @ dA @ X }")
    f = lagrad.loads("model f(x: f64, A: f64[n, n], B: f64[n, n], C: f64[n, n]) -> f64 {\n"
                     "  return (C @ my_inv(A + x * B))[-1, -1] }").f
    n = 7
    A, B, C = rng.standard_normal((n, n)) + 7 * np.eye(n), rng.standard_normal((n, n)), rng.standard_normal((n, n))
    Mi = np.linalg.inv(A + 0.3 * B)
    want = -(C @ Mi @ B @ Mi)[-1, -1]
    np.testing.assert_allclose(f.grad("x")(0.3, A, B, C), want, rtol=1e-10)
    np.testing.assert_allclose(f.jvp((0.3, A, B, C), (1.0, 0 * A, 0 * B, 0 * C))[1], want, rtol=1e-10)
    assert "my_inv" in str(f.adjoint("x"))


def test_linear_primitive_with_builder_transpose():
    # y = K x with K a fixed banded stencil, written as a JAX function; linear in x
    def stencil(x):
        return 2 * x - jnp.roll(x, 1) - jnp.roll(x, -1)

    def stencil_t(b, cts, inputs, outs, params):
        return [b.emit("stencil_op", cts[0])]          # the stencil is symmetric

    lagrad.primitive("stencil_op", stencil, linear_in=(0,), transpose=stencil_t,
                     frechet=lambda b, x, dx, y, p: b.emit("stencil_op", dx[0]))
    f = lagrad.loads("model f(x: f64[n]) -> f64 { y = stencil_op(x * x); return dot(y, y) }").f
    x = rng.standard_normal(6)
    ref = lambda x: jnp.sum(stencil(x * x) ** 2)
    np.testing.assert_allclose(f.grad("x")(x), jax.grad(ref)(x), rtol=1e-10)


def test_missing_transpose_is_a_lagrad_error_naming_the_rule():
    lagrad.primitive("lin_no_t", lambda x: 3 * x, linear_in=(0,),
                     frechet=lambda b, x, dx, y, p: b.emit("lin_no_t", dx[0]))
    f = lagrad.loads("model f(x: f64[n]) -> f64 { return sum(lin_no_t(x)) }").f
    np.testing.assert_allclose(f.jvp((np.ones(3),), (np.ones(3),))[1], 9.0)
    with pytest.raises(RuleError, match="lin_no_t.*transpose rule"):
        f.grad()(np.ones(3))


def test_default_shape_rule_maps_symbolic_dims():
    lagrad.primitive("first_col", lambda A: A[:, 0], frechet="frechet first_col(A) -> y { dy = first_col(dA) }",
                     linear_in=(0,))
    f = lagrad.loads("model f(A: f64[n, m]) -> f64[n] { return first_col(A) }").f
    assert str(f.program.eqns[0].outputs[0].type) == "f64[n]"
    lagrad.primitive("grow", lambda v: jnp.concatenate([v, v[:1]]))
    g = lagrad.loads("model g(v: f64[n]) -> f64[n + 1] { return grow(v) }").g
    np.testing.assert_allclose(g(np.arange(3.0)), [0, 1, 2, 0])


def test_explicit_shape_rule_and_linearity_declaration():
    src = "model f(A: f64[n, m]) -> f64 { return sum(rowsum(A) * rowsum(A)) }"
    A = rng.standard_normal((3, 4))
    # without linear_in, a rule applying rowsum to a tangent is not linear
    lagrad.primitive("rowsum", lambda A: A.sum(1), shape=lambda t: TensorType(t.dtype, t.shape[:1]),
                     frechet="frechet rowsum(A) -> y { dy = rowsum(dA) }")
    with pytest.raises(RuleError, match="not linear"):
        lagrad.loads(src).f.grad("A")(A)
    lagrad.primitive("rowsum", lambda A: A.sum(1), shape=lambda t: TensorType(t.dtype, t.shape[:1]),
                     frechet="frechet rowsum(A) -> y { dy = rowsum(dA) }", linear_in=(0,),
                     transpose=lambda b, ct, x, y, p: [b.broadcast(ct[0], shape=x[0].shape, axis=1)])
    f = lagrad.loads(src).f
    np.testing.assert_allclose(f.grad("A")(A), jax.grad(lambda A: jnp.sum(A.sum(1) ** 2))(A), rtol=1e-12)


def test_frechet_block_in_a_file_attaches_to_a_registered_primitive():
    lagrad.primitive("cube", lambda x: x ** 3)
    f = lagrad.loads("frechet cube(x) -> y { dy = 3 * x * x * dx }\n"
                     "model f(x: f64[n]) -> f64 { return sum(cube(x)) }").f
    x = rng.standard_normal(5)
    np.testing.assert_allclose(f.grad("x")(x), 3 * x ** 2, rtol=1e-12)


def test_frechet_block_in_a_file_calls_that_files_fn_and_elementwise():
    # d tanh(x) = (1 − tanh²x) dx, with the derivative written as the file's own definitions
    lagrad.primitive("file_tanh", jnp.tanh)
    f = lagrad.loads("frechet file_tanh(x) -> y { dy = scale(sech2(x), dx) }\n"
                     "elementwise sech2(x) = 1 - tanh(x)**2\n"
                     "fn scale(a, b) = a * b\n"
                     "model f(x: f64[n]) -> f64 { return sum(file_tanh(x) ** 2) }").f
    x = rng.standard_normal(5)
    g = jax.grad(lambda x: jnp.sum(jnp.tanh(x) ** 2))
    np.testing.assert_allclose(f.grad("x")(x), g(x), rtol=1e-12)
    v = rng.standard_normal(5)           # second order through the file's elementwise derivative
    np.testing.assert_allclose(f.hvp("x")((x,), v), jax.jvp(g, (x,), (v,))[1], rtol=1e-10)
    # a rule given to lagrad.primitive as text sees only primitives
    lagrad.primitive("text_tanh", jnp.tanh, frechet="frechet text_tanh(x) -> y { dy = sech2(x) * dx }")
    with pytest.raises(lagrad.LaNameError, match="sech2"):
        lagrad.loads("elementwise sech2(x) = 1 - tanh(x)**2\n"
                     "model f(x: f64[n]) -> f64 { return sum(text_tanh(x)) }").f.grad("x")(x)
    lagrad.primitive("dim_sum", jnp.sum)
    with pytest.raises(lagrad.LaNameError, match="names no dimensions") as e:     # at load
        lagrad.loads("frechet dim_sum(x) -> y { dy = dot(ones(n), dx) }\n"
                     "model f(x: f64[n]) -> f64 { return dim_sum(x) }")
    assert (e.value.line, e.value.column) == (1, 41)


def test_registering_a_name_again_leaves_modules_loaded_before_unchanged():
    # SPEC §4: a primitive is registered "for .la files loaded afterwards"; the value, gradient
    # and tangent of a module loaded before all keep its first definition, even those compiled
    # after the second registration
    x = np.array([0.1, 0.7, -1.3])
    src = "model f(x: f64[n]) -> f64 { return sum(again(x) * again(x)) }"
    lagrad.primitive("again", lambda x: 2 * x, frechet="frechet again(x) -> y { dy = 2 * dx }")
    old = lagrad.loads(src, name="again.la").f
    assert float(old(x)) == pytest.approx(4 * np.sum(x * x))
    lagrad.primitive("again", lambda x: 5 * x, frechet="frechet again(x) -> y { dy = 5 * dx }")
    new = lagrad.loads(src, name="again.la").f
    for f, c in ((old, 2.0), (new, 5.0)):
        v, g = f.value_and_grad("x")(x)
        np.testing.assert_allclose(float(v), c * c * np.sum(x * x), rtol=1e-14)
        np.testing.assert_allclose(np.asarray(g), 2 * c * c * x, rtol=1e-14)
        np.testing.assert_allclose(np.asarray(jax.grad(f)(x)), 2 * c * c * x, rtol=1e-14)
        np.testing.assert_allclose(float(f.jvp((x,), (np.ones(3),))[1]), 2 * c * c * np.sum(x), rtol=1e-14)
    assert "again(x)" in str(new.adjoint()) and "__v" not in str(new.adjoint())


def test_a_python_rule_emitting_its_own_name_calls_its_own_registration():
    # a Python rule's b.emit("again_py", ...) gave the first registration's primitive, so after
    # a second registration the gradient and tangent used the old 2·x in place of 5·x
    x = np.array([0.1, 0.7, -1.3])
    src = "model f(x: f64[n]) -> f64 { return sum(again_py(x) * x) }"
    mods = []
    for c in (2.0, 5.0):
        lagrad.primitive("again_py", lambda x, c=c: c * x, linear_in=(0,),
                         frechet=lambda b, x, dx, y, p: b.emit("again_py", dx[0]),
                         transpose=lambda b, ct, x, y, p: [b.emit("again_py", ct[0])])
        mods.append((c, lagrad.loads(src, name="again_py.la").f))
    for c, f in mods:                    # the first module is differentiated after the second registration
        np.testing.assert_allclose(np.asarray(f.grad("x")(x)), 2 * c * x, rtol=1e-14)
        np.testing.assert_allclose(float(f.jvp((x,), (np.ones(3),))[1]), 2 * c * np.sum(x), rtol=1e-14)
        np.testing.assert_allclose(np.asarray(jax.grad(f)(x)), 2 * c * x, rtol=1e-14)


def test_a_shape_rule_that_disagrees_with_the_implementation_is_a_type_error():
    # a wrong `shape=` gave wrong-shaped results and gradients, or a raw JAX error at the call
    lagrad.primitive("rowsum_wrong", lambda A: A.sum(1), shape=lambda t: TensorType(t.dtype, t.shape[1:]))
    with pytest.raises(lagrad.LaTypeError, match=r"the shape rule gives f64\[n\], but the implementation "
                                                 r"returns f64\[1009\] at m = 1009, n = 1013") as e:
        lagrad.loads("model f(A: f64[m, n], b: f64[n]) -> f64 {\n return dot(rowsum_wrong(A), b) }").f.program
    assert (e.value.line, e.value.column) == (2, 13)
    lagrad.primitive("first2", lambda A: A[:2, 0], shape=lambda t: TensorType(t.dtype, (2,)))
    f = lagrad.loads("model f(A: f64[m, n]) -> f64[2] { return first2(A) }").f
    np.testing.assert_allclose(f(np.arange(9.0).reshape(3, 3)), [0.0, 3.0])


@pytest.mark.parametrize("rule,msg", [
    (lambda b, x, dx, y, p: "hello", "returned str for result 1"),
    (lambda b, x, dx, y, p: np.ones(3), "returned ndarray for result 1"),
    (lambda b, x, dx, y, p: 1 / 0, r"\(a Python function\) raised ZeroDivisionError: division by zero"),
    (lambda b, x, dx, y, p: b.emit("sum", dx[0]), r"returned f64 for result 1; .* of type f64\[n\]"),
])
def test_a_python_rule_that_fails_or_returns_junk_is_a_rule_error_at_the_call(rule, msg):
    lagrad.primitive("junk_rule", lambda x: 2 * x, frechet=rule)
    with pytest.raises(RuleError, match=msg) as e:
        lagrad.loads("model f(x: f64[n]) -> f64 {\n return sum(junk_rule(x)) }").f.grad("x")(np.ones(3))
    assert "Fréchet rule of `junk_rule`" in str(e.value) and (e.value.line, e.value.column) == (2, 13)
    lagrad.primitive("junk_t", lambda x: 2 * x, frechet=lambda b, x, dx, y, p: b.emit("junk_t", dx[0]),
                     linear_in=(0,), transpose=lambda b, c, i, o, p: [rule(b, i, c, o, p)])
    with pytest.raises(RuleError, match="transpose rule of `junk_t`"):
        lagrad.loads("model f(x: f64[n]) -> f64 { return sum(junk_t(x)) }").f.grad("x")(np.ones(3))


def test_a_rule_using_an_argument_missing_from_linear_in_says_so():
    lagrad.primitive("mv_half", lambda W, v: W @ v, linear_in=(1,),
                     frechet="frechet mv_half(W, v) -> y { dy = mv_half(W, dv) + mv_half(dW, v) }",
                     transpose=lambda b, c, i, o, p: [None, b.emit("matmul", b.emit("transpose", i[0]), c[0])])
    f = lagrad.loads("model f(W: f64[n, n], x: f64[n]) -> f64 { return sum(mv_half(W, x)) }").f
    for wrt in ("x", "W"):
        with pytest.raises(RuleError, match=r"`mv_half` gets a tangent as argument 1, which its linear_in "
                                            r"does not list: declare it linear there, linear_in=\(0, 1\)"):
            f.grad(wrt)(np.eye(2), np.ones(2))


@pytest.mark.parametrize("kwargs,msg", [
    (dict(name="bad name", impl=jnp.sin), "not a name a .la file can call"),
    (dict(name="solve", impl=jnp.sin), "standard-library"),
    (dict(name="okname", impl=3), "must be a function"),
    (dict(name="okname", impl=jnp.sin, frechet=lambda x: x), "must take"),
])
def test_registration_errors(kwargs, msg):
    with pytest.raises(RuleError, match=msg):
        lagrad.primitive(kwargs.pop("name"), kwargs.pop("impl"), **kwargs)


def test_wrong_frechet_block_name_is_reported():
    lagrad.primitive("wrongname", jnp.sin, frechet="frechet other(x) -> y { dy = dx }")
    f = lagrad.loads("model f(x: f64[n]) -> f64 { return sum(wrongname(x)) }").f
    with pytest.raises(RuleError, match="not `wrongname`"):
        f.grad()(np.ones(2))


@pytest.mark.parametrize("block", ["frechet inv(A) -> X { dX = -X @ dA @ X }",     # SPEC §2's example
                                   "frechet inv(M) -> Y {\n  dY = -Y @ dM @ Y\n}"])
def test_a_file_may_restate_a_standard_library_rule(block):
    m = lagrad.loads(block + "\nmodel f(A: f64[n, n]) -> f64 { return sum(inv(A) @ A @ inv(A)) }")
    A = np.array([[2.0, 0.3, 0.0], [0.1, 1.5, 0.2], [0.0, 0.4, 3.0]])
    want = jax.grad(lambda A: jnp.sum(jnp.linalg.inv(A)))(A)       # inv(A) A inv(A) = inv(A)
    np.testing.assert_allclose(np.asarray(m.f.grad()(A)[0]), np.asarray(want), rtol=1e-12)


@pytest.mark.parametrize("block,col,msg", [
    ("frechet inv(A) -> X { dX = -X @ dA }", 1,
     r"`inv` is a standard-library primitive; its Fréchet rule cannot be replaced \(a block may restate it: "
     r"`frechet inv\(A\) -> X \{ dX = -X @ dA @ X \}`\)"),
    ("frechet qr(A) -> (Q, R) { dQ = dA; dR = dA }", 1, r"`qr` is a standard-library primitive; its Fréchet "
                                                        r"rule cannot be replaced\n"),
])
def test_a_file_cannot_replace_a_standard_library_rule(block, col, msg):
    with pytest.raises(RuleError, match=msg) as e:
        lagrad.loads("\n" + block)
    assert (e.value.line, e.value.column) == (2, col)


@pytest.mark.parametrize("block,cls,line,col,msg", [
    ("frechet blk_load(x) -> y {\n  dy = cos(x) * dq\n}", lagrad.LaNameError, 2, 17,
     "unknown name `dq` in the frechet block of `blk_load`; did you mean `dx`?"),
    ("frechet blk_load(x, z) -> y { dy = dx }", RuleError, 1, 1, "names 2 argument(s), but `blk_load` takes 1"),
    ("frechet blk_load(x) -> y { dz = dx }", RuleError, 1, 1, "does not assign `dy`"),
    ("frechet blk_load(x) -> (y, z) { dy = dx }", RuleError, 1, 1, "`blk_load` has 1 output(s)"),
])
def test_a_frechet_block_in_a_file_is_checked_at_load(block, cls, line, col, msg):
    """What needs no types is checked when the file loads, not at the first derivative, and the
    primitive keeps the rule it had."""
    lagrad.primitive("blk_load", jnp.sin, frechet="frechet blk_load(x) -> y { dy = cos(x) * dx }")
    with pytest.raises(cls, match=re.escape(msg)) as e:
        lagrad.loads(block + "\nmodel f(x: f64) -> f64 { return blk_load(x) }")
    assert (e.value.line, e.value.column) == (line, col)
    f = lagrad.loads("model f(x: f64) -> f64 { return blk_load(x) }").f
    assert float(f.grad("x")(0.3)) == pytest.approx(np.cos(0.3), rel=1e-14)


def test_parameters_with_defaults_are_optional_arguments():
    """A JAX function with optional parameters (logsumexp has five) is callable with only its
    required ones; too many arguments still fail with the range."""
    import jax
    lagrad.primitive("lse_opt", jax.scipy.special.logsumexp,
                     frechet="frechet lse_opt(x) -> y { dy = sum(exp(x - y) * dx) }")
    m = lagrad.loads("model g(x: f64[n]) -> f64 { return lse_opt(x) }")
    x = np.array([0.1, -0.4, 2.0])
    np.testing.assert_allclose(m.g(x), np.log(np.sum(np.exp(x))), rtol=1e-14)
    np.testing.assert_allclose(m.g.grad()(x)[0], np.exp(x) / np.sum(np.exp(x)), rtol=1e-13)


def test_domains_reach_lagrad_check():
    from lagrad.runtime.check import input_domains
    lagrad.primitive("spd_logdet", lambda A: jnp.linalg.slogdet(A)[1], domains={0: "spd"})
    m = lagrad.loads("model h(B: f64[n, n]) -> f64 { return spd_logdet(2 * B') }")
    assert input_domains(m.h.compiled({}).canonical) == {"B": "spd"}
    with pytest.raises(lagrad.LagradError, match="domains maps argument positions"):
        lagrad.primitive("bad_dom", lambda A: A, domains={0: "psd"})


def _result_type(m, k=0):
    return str(m.program.eqns[k].outputs[0].type)


@pytest.mark.parametrize("name,impl,sig,want", [
    ("cat_nk", lambda a, b: jnp.concatenate([a, b]), "a: f64[n], b: f64[k]", "f64[k + n]"),
    ("flat_nk", lambda A: A.reshape(-1), "A: f64[n, k]", "f64[k*n]"),
    ("kron_nn", lambda a: jnp.kron(a, a), "a: f64[n]", "f64[n^2]"),
    ("flat_nkm", lambda A: A.reshape(-1), "A: f64[n, k, m]", "f64[k*m*n]"),
    ("head3", lambda a: a[:3], "a: f64[n]", "f64[3]"),
    ("pad_shift", lambda a, b: jnp.zeros((2 * a.shape[0] - 1, b.shape[0] + 5)), "a: f64[n], b: f64[k]",
     "f64[2*n - 1, k + 5]"),
    ("tril_pack", lambda a: jnp.outer(a, a)[jnp.tril_indices(a.shape[0])], "a: f64[n]", "f64[n^2/2 + n/2]"),
])
def test_default_shape_rule_fits_result_sizes_as_polynomials_in_the_dims(name, impl, sig, want):
    """Each result size is a polynomial in the symbolic dims, fitted from several sample sizes,
    never a number read off one sample (concatenate of f64[n] and f64[k] was f64[2022])."""
    lagrad.primitive(name, impl)
    args = ", ".join(re.findall(r"(\w+):", sig))
    m = lagrad.loads(f"model f({sig}) -> f64 {{ return sum({name}({args})) }}").f
    assert _result_type(m) == want


def test_fitted_size_types_check_against_the_written_dims():
    lagrad.primitive("mycat", lambda a, b: jnp.concatenate([a, b]))
    f = lagrad.loads("model f(a: f64[n], b: f64[k], c: f64[n + k]) -> f64[k + n] { return mycat(a, b) + c }").f
    a, b, c = np.arange(2.0), np.arange(3.0), np.ones(5)
    np.testing.assert_allclose(f(a, b, c), np.concatenate([a, b]) + c)
    lagrad.primitive("flat", lambda A: A.reshape(-1))
    g = lagrad.loads("model g(A: f64[n, k], v: f64[n * k]) -> f64 { return dot(flat(A), v) }").g
    A = rng.standard_normal((2, 3))
    np.testing.assert_allclose(g(A, np.arange(6.0)), A.reshape(-1) @ np.arange(6.0), rtol=1e-14)


def test_a_result_size_that_is_no_polynomial_asks_for_a_shape_rule():
    lagrad.primitive("first_half", lambda a: a[: a.shape[0] // 2])
    with pytest.raises(lagrad.LaTypeError, match=r"(?s)`first_half`: cannot infer axis 0 of the result.*"
                       r"no polynomial in n; pass `shape=`") as e:
        lagrad.loads("model f(a: f64[n]) -> f64 {\n  return sum(first_half(a)) }")
    assert (e.value.line, e.value.column) == (2, 14)             # at the call in the file
    lagrad.primitive("longer", lambda a, b: jnp.zeros(max(a.shape[0], b.shape[0])))
    with pytest.raises(lagrad.LaTypeError, match="no polynomial in k, n"):
        lagrad.loads("model f(a: f64[n], b: f64[k]) -> f64 { return sum(longer(a, b)) }")
    # the same size with an explicit shape rule
    lagrad.primitive("first_half", lambda a: a[: a.shape[0] // 2],
                     shape=lambda t: TensorType(t.dtype, (t.shape[0] // 2,)))
    f = lagrad.loads("model f(a: f64[n]) -> f64 { return sum(first_half(a)) }").f
    np.testing.assert_allclose(f(np.arange(5.0)), 1.0)


def test_registration_and_result_structure_mistakes_are_lagrad_errors():
    with pytest.raises(lagrad.RuleError, match="keyword"):
        lagrad.primitive("model", lambda a: a)
    with pytest.raises(lagrad.RuleError, match=r"linear_in lists argument position\(s\) \[3\]"):
        lagrad.primitive("lin_out_of_range", lambda a: 2 * a, linear_in=(3,))
    lagrad.primitive("two_results_one_declared", lambda a: (a, a))
    with pytest.raises(lagrad.LaTypeError, match="returns 2 arrays, but the primitive is registered with nout=1"):
        lagrad.loads("model f(x: f64[n]) -> f64 { return sum(two_results_one_declared(x)) }")
    lagrad.primitive("dict_result", lambda a: {"a": a})
    with pytest.raises(lagrad.LaTypeError, match="returns a dict"):
        lagrad.loads("model f(x: f64[n]) -> f64 { return sum(dict_result(x)) }")
