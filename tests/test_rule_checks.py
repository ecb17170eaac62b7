"""A text Fréchet rule must give each `dOUT` the output's type (SPEC §2): a tangent of another
shape (or of a dtype that does not promote to the output's) is a RuleError at the rule's
assignment, naming the primitive, the output and both types; correct rules are unaffected."""
import itertools

import jax.numpy as jnp
import numpy as np
import pytest

import lagrad
from lagrad import RuleError

_fresh = itertools.count()


def load(src):
    """A module of its own: `lagrad.loads` caches by text."""
    return lagrad.loads(src + f"\n# copy {next(_fresh)}\n")


def register(body, impl=lambda A: A @ A):
    name = f"sq_rule_{next(_fresh)}"
    lagrad.primitive(name, impl, frechet=f"frechet {name}(A) -> X {{\n    {body}\n}}")
    return name


@pytest.mark.parametrize("body,got", [("dX = sum(dA)", "f64"), ("dX = dA[0, :]", "f64[n]")])
@pytest.mark.parametrize("mode", ["tangent", "grad"])
def test_a_tangent_of_the_wrong_shape_is_a_rule_error(body, got, mode):
    name = register(body)
    m = load(f"model f(A: f64[n, n]) -> f64 {{ return sum({name}(A)) }}")
    with pytest.raises(RuleError) as info:
        m.f.tangent() if mode == "tangent" else m.f.grad()(np.eye(3))
    e = info.value
    msg = str(e)
    assert f"`{name}`" in msg and "`dX`" in msg and "`X`" in msg
    assert f"type {got}," in msg and "f64[n, n]" in msg
    assert (e.line, e.column) == (2, 5), msg                 # at the assignment in the rule text
    assert body in msg                                       # the rule's line is shown


def test_the_check_compares_symbolic_dimensions():
    """dX of type f64[n + 1] for an output f64[n + 1] passes; f64[n] for it does not."""
    good = f"grow_ok_{next(_fresh)}"
    lagrad.primitive(good, lambda v: jnp.concatenate([v, v[:1]]),
                     frechet=f"frechet {good}(v) -> w {{ dw = hcat(dv, dv[0:1]) }}")
    bad = f"grow_bad_{next(_fresh)}"
    lagrad.primitive(bad, lambda v: jnp.concatenate([v, v[:1]]),
                     frechet=f"frechet {bad}(v) -> w {{ dw = 2 * dv }}")
    v = np.arange(1.0, 4.0)
    _, t = load(f"model f(v: f64[n]) -> f64[n + 1] {{ return {good}(v) }}").f.jvp((v,), (np.ones(3),))
    np.testing.assert_allclose(t, np.ones(4))
    with pytest.raises(RuleError, match=r"type f64\[n\], but its output `w` is f64\[n \+ 1\]"):
        load(f"model f(v: f64[n]) -> f64[n + 1] {{ return {bad}(v) }}").f.tangent()


def test_a_tangent_of_a_wider_dtype_is_a_rule_error():
    name = f"mixed_{next(_fresh)}"
    lagrad.primitive(name, lambda a, b: a * b.astype(a.dtype),
                     frechet=f"frechet {name}(a, b) -> y {{ dy = da * b + a * db }}")
    m = load(f"model f(a: f32[n], b: f64[n]) -> f32 {{ return sum({name}(a, b)) }}")
    with pytest.raises(RuleError, match=r"gives `dy` the type f64\[n\], but its output `y` is f32\[n\]"):
        m.f.tangent()


def test_a_rule_in_a_la_file_points_at_its_line():
    name = f"sq_file_{next(_fresh)}"
    lagrad.primitive(name, lambda A: A @ A)
    src = (f"frechet {name}(A) -> X {{\n    T = dA @ X\n    dX = T[0, :]\n}}\n"
           f"model f(A: f64[n, n]) -> f64 {{ return sum({name}(A)) }}")
    with pytest.raises(RuleError) as info:
        lagrad.loads(src, name="rules.la").f.tangent()
    assert (info.value.line, info.value.column) == (3, 5), str(info.value)
    assert "f64[n]" in str(info.value) and "f64[n, n]" in str(info.value)


def test_a_correct_rule_passes_and_gives_the_right_derivatives():
    name = register("dX = dA @ A + A @ dA")
    two = f"two_out_{next(_fresh)}"
    lagrad.primitive(two, lambda A, B: (A @ B, jnp.sum(A * B)), nout=2,
                     frechet=f"frechet {two}(A, B) -> (P, s) {{\n    dP = dA @ B + A @ dB\n"
                             f"    ds = sum(dA * B) + sum(A * dB)\n}}")
    m = load(f"model f(A: f64[n, n], B: f64[n, n]) -> f64 {{\n    P, s = {two}({name}(A), B)\n"
             f"    return sum(P * P) + s * s\n}}")

    def ref(A, B):
        P, s = A @ A @ B, jnp.sum(A @ A * B)
        return jnp.sum(P * P) + s * s
    rng = np.random.default_rng(0)
    A, B, D = (rng.standard_normal((3, 3)) for _ in range(3))
    for wrt in (None, "A", "B"):                             # zero tangents for a subset
        str(m.f.tangent(wrt))
    gA, gB = m.f.grad()(A, B)
    import jax
    rA, rB = jax.grad(ref, (0, 1))(A, B)
    np.testing.assert_allclose(gA, rA, rtol=1e-10)
    np.testing.assert_allclose(gB, rB, rtol=1e-10)
    _, t = m.f.jvp((A, B), (D, np.zeros_like(B)))
    np.testing.assert_allclose(t, jax.jvp(lambda A: ref(A, B), (A,), (D,))[1], rtol=1e-10)
