"""Language table tests: (source → result) and (source → error class, line, column)."""
import numpy as np
import pytest

import lagrad
from lagrad import LaNameError, LaSyntaxError, LaTypeError, RuleError

rng = np.random.default_rng(7)
A3 = rng.standard_normal((3, 3)) + 3 * np.eye(3)
B3 = rng.standard_normal((3, 3))
v3 = rng.standard_normal(3)
M23 = rng.standard_normal((2, 3))

# (source, args, expected value as a function of the args)
RESULTS = [
    ("model f(A: f64[n, n]) -> f64 { return A[-1, -1] }", (A3,), lambda A: A[-1, -1]),
    ("model f(A: f64[n, n]) -> f64[n] { return A[:, 0] }", (A3,), lambda A: A[:, 0]),
    ("model f(A: f64[n, n]) -> f64[n - 1, n] { return A[1:, :] }", (A3,), lambda A: A[1:, :]),
    ("model f(A: f64[n, n]) -> f64[2, n - 1] { return A[0:2, 0:n-1] }", (A3,), lambda A: A[0:2, 0:2]),
    ("model f(A: f64[n, n]) -> f64 { return A[n-1, 0] }", (A3,), lambda A: A[2, 0]),
    ("model f(A: f64[m, n]) -> f64[n, m] { return A' }", (M23,), lambda A: A.T),
    ("model f(A: f64[m, n]) -> f64[n, m] { return A.T }", (M23,), lambda A: A.T),
    ("model f(A: f64[n, n], x: f64[n]) -> f64[n] { return A @ x }", (A3, v3), lambda A, x: A @ x),
    ("model f(A: f64[n, n], x: f64[n]) -> f64[n] { return x @ A }", (A3, v3), lambda A, x: x @ A),
    ("model f(x: f64[n]) -> f64 { return x @ x }", (v3,), lambda x: x @ x),
    ("model f(A: f64[n, n]) -> f64 { return n' + A[0, 0]' }", (A3,), lambda A: 3 + A[0, 0]),   # scalars' transposes
    ("model f(A: f64[n, n], b: f64[n]) -> f64 { op K(v) = A @ v\n return sum(cg(K, b, tol=1e400)) }",  # tol=inf
     (A3 @ A3.T + np.eye(3), v3), lambda A, b: 0.0),
    ("fn g(w: f64[k + 1]) = sum(w[:k])\nmodel f(x: f64[n]) -> f64 { return g(x) }", (v3,), lambda x: x[:2].sum()),
    ("fn g(a: f64[k], w: f64[k + 1]) = dot(a, w[1:])\nmodel f(x: f64[n]) -> f64 { return g(x[1:], x) }", (v3,),
     lambda x: x[1:] @ x[1:]),
    ("model f(A: f64[n, n]) -> f64[n, n] { return tril(A, k=n-2) + triu(A, k=-n+2) }", (A3,),   # keyword expressions
     lambda A: np.tril(A, 1) + np.triu(A, -1)),
    ("model f(x: f64[n]) -> f64 { return x[1 - n] + x[-(n - 1)] }", (v3,), lambda x: x[1 - 3] + x[-(3 - 1)]),
    ("model f(x: f64[n]) -> f64[n - 1] { return x[-n + 1:] }", (v3,), lambda x: x[-3 + 1:]),
    ("model f(x: f64[n]) -> f64[4] { return x[:-n + 4] }", (np.arange(5.0),), lambda x: x[:-5 + 4]),
    ("model f(A: f64[n, n], x: f64[n]) -> f64[n] { return block_jacobi(A, block=1) @ x }",   # applied in place
     (A3 + 3 * np.eye(3), v3), lambda A, x: x / np.diag(A)),
    ("model f(x: f64[n]) -> f64 { return -x[0] ** 2 }", (v3,), lambda x: -x[0] ** 2),
    ("model f(x: f64) -> f64 { return 2 ** 3 ** 2 * x }", (1.5,), lambda x: 2 ** 9 * x),
    ("model f(x: f64) -> f64 { return 1 - 2 - x }", (1.5,), lambda x: 1 - 2 - x),
    ("model f(x: f64) -> f64 { return 8 / 2 / x }", (2.0,), lambda x: 8 / 2 / x),
    ("model f(x: f64[n]) -> f64 { return sum(x) / n }", (v3,), lambda x: np.mean(x)),
    ("model f(A: f64[n + k, n], B: f64[k, n]) -> f64 { return k * sum(A) }", (M23.T, np.ones((1, 2))),
     lambda A, B: 1 * np.sum(A)),
    ("model f(x: f64) -> f64 { y = x; y = y * 2; y = y + 1; return y }", (1.5,), lambda x: 2 * x + 1),
    ("model f(x: f64) -> f64 { y = x\n for i in range(3) { y = y * 2 + i }\n return y }", (1.0,),
     lambda x: ((x * 2 + 0) * 2 + 1) * 2 + 2),
    ("model f(x: f64[n]) -> f64 { s = 0.0\n for i in range(n) { s = s + x[i] * i }\n return s }", (v3,),
     lambda x: sum(x[i] * i for i in range(3))),
    ("model f(A: f64[n, n]) -> (f64[n, n], f64) { return A', trace(A) }", (A3,), lambda A: (A.T, np.trace(A))),
    ("model f(A: f64[n, n]) -> f64 { Q, R = qr_like(A); return Q + R }\nfn qr_like(A) { return sum(A), trace(A) }",
     (A3,), lambda A: A.sum() + np.trace(A)),
    ("fn sq(x) = x * x\nmodel f(x: f64) -> f64 { return sq(sq(x)) }", (1.5,), lambda x: x ** 4),
    ("fn g(A: f64[k, k], v: f64[k]) = A @ v + v\nmodel f(A: f64[n, n], x: f64[n]) -> f64[n] { return g(A, x) }",
     (A3, v3), lambda A, x: A @ x + x),
    ("elementwise softish(x) = log(1 + exp(x))\nmodel f(x: f64[n]) -> f64 { return sum(softish(x)) }", (v3,),
     lambda x: np.sum(np.log1p(np.exp(x)))),
    ("model f(A: f64[n, n]) -> f64 { return sum(A, axis=0)[1] } # a comment", (A3,), lambda A: A.sum(0)[1]),
    ("model f(A: f64[n, n]) -> f64 { L = tril(A, k=-1); return sum(L) }", (A3,), lambda A: np.tril(A, -1).sum()),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] { return solve(A, b, assume=\"gen\") }", (A3, v3),
     lambda A, b: np.linalg.solve(A, b)),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] { return solve_triangular(A, b, lower=false) }", (A3, v3),
     lambda A, b: np.linalg.solve(np.triu(A), b)),
    ("model f(A: f64[n, n]) -> f64[n, n] { return zeros(n, n) + eye(n) + ones(n, n) }", (A3,),
     lambda A: np.eye(3) + 1),
    ("model f(x: f64[n]) -> f64[2, n] { return vcat(x, x) }", (v3,), lambda x: np.vstack([x, x])),
    ("model f(A: f64[n, n]) -> f64[2 * n, n] { return vcat(A, A) }", (A3,), lambda A: np.vstack([A, A])),
    ("model f(A: f64[n, n]) -> f64 { B = inv(A); return (B @ A)[0, 0] }", (A3,), lambda A: 1.0),
    ("model f(x: f64) -> f64 {\n  a = x; b = 2 * a   # two statements on a line\n  return a + b\n}", (1.5,), lambda x: 3 * x),
    ("model f(x: f32) -> f32 { return x * 2 }", (1.5,), lambda x: 3.0),
    # a negative dimension expression counts from the end, as a negative integer does
    ("model f(x: f64[n], y: f64[k]) -> f64[k] { return x[-k:] + y }", (np.arange(7.0), np.ones(2)),
     lambda x, y: x[-2:] + y),
    ("model f(x: f64[n], y: f64[k]) -> f64 { return sum(x[:-k]) + x[-k - 1] }", (np.arange(7.0), np.ones(2)),
     lambda x, y: x[:-2].sum() + x[-3]),
    # constants: a negative one stays one operand; IEEE results where Python would raise
    ("model f(x: f64) -> f64 { return (-2.0) ** 2 + x }", (1.5,), lambda x: 4.0 + x),
    ("model f(x: f64) -> f64 { y = -2\n return x * y ** 2 }", (1.5,), lambda x: 4.0 * x),
    ("model f(x: f64) -> f64 { return -2.0 ** 2 + x - -3 }", (1.5,), lambda x: -4.0 + x + 3),
    ("model f(x: f64) -> f64 { return (-8.0) ** (1.0 / 3) + x }", (1.5,), lambda x: np.nan),
    ("model f(x: f64) -> f64 { return x + 1 / 0 }", (1.5,), lambda x: np.inf),
    ("model f(x: f64) -> f64 { return x * (0.0 / 0.0) }", (1.5,), lambda x: np.nan),
    ("model f(x: f64) -> f64 { return x - 1e400 + 0.0 ** -1 }", (1.5,), lambda x: np.nan),
    ("model f(x: f64) -> f64 { return x - 2 ** 100000 }", (1.5,), lambda x: -np.inf),
]


@pytest.mark.parametrize("src,args,expected", RESULTS, ids=[f"r{i}" for i in range(len(RESULTS))])
def test_results(src, args, expected):
    f = lagrad.loads(src)["f"]
    got = f(*args)
    want = expected(*args)
    if isinstance(want, tuple):
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6 if "f32" in src else 1e-12, atol=1e-12)


# (source, error class, line, column, message substring)
ERRORS = [
    ("model f(A: f64[n, n], x: f64[n]) -> f64 {\n  return sum(block_jacobi(A, block=1) * x) }", LaTypeError, 2, 14,
     "`block_jacobi(...)` is an operator, not an array"),
    ("model f(A: f64[n, n]) -> f64 {\n  return sum(slove(A)) }", LaNameError, 2, 14, "did you mean `solve`"),
    ("model f(A: f64[n, n]) -> f64 {\n  return sum(a) }", LaNameError, 2, 14, "unknown name `a`; did you mean `A`?"),
    ("model f(x: f64[n]) -> f64 {\n  return sum(maximum(x)) }", LaTypeError, 2, 14, "`maximum` takes 2 arguments, got 1"),
    ("model f(x: f64[n]) -> f64 {\n  return sum(neg(x, x)) }", LaTypeError, 2, 14, "`neg` takes 1 argument, got 2"),
    ("model f(A: f64[n, n]) -> f64 {\n  return sum(tril(A, k=A[0])) }", LaTypeError, 2, 24,
     "keyword argument `k` takes a number, a string, true/false, a name, or an integer expression"),
    ("fn g(a: f64[k], w: f64[k + 1]) = sum(w)\nmodel f(x: f64[n]) -> f64 {\n return g(x, x) }", LaTypeError, 3, 14,
     "`g` expects a dimension of n + 1, got n"),
    ("fn g(w: f64[k + m]) = sum(w)\nmodel f(x: f64[n]) -> f64 {\n return g(x) }", LaTypeError, 1, 13,
     "cannot tell `k`, `m` from a dimension of n"),
    ("model f(A: f64[n, n]) -> f64 {\n  return sum(tril(A, k=100000000000000000000)) }", LaTypeError, 2, 24,
     "keyword argument `k` is 100000000000000000000, too large"),
    ("model f(A: f64[n, n]) -> f64 {\n  return sum(zeros(100000000000000000000)) }", LaTypeError, 2, 20,
     "the integer 100000000000000000000 is too large for a size or an index"),
    ("model f(x: f64[n]) -> f64 {\n  return sum(x[3:1]) }", LaTypeError, 2, 16,
     "a slice may be empty (i:i) but not reversed"),
    ("model f(A: f64[n, n]) -> f64 {\n  return sum(INV(A)) }", LaNameError, 2, 14, "did you mean `inv`?"),
    ("model g(x: f64) -> f64 { return x }\nmodel f(x: f64) -> f64 { return g(x) }", LaNameError, 2, 33,
     "`g` is a model; a model cannot call another model: put the shared part in a `fn`"),
    ("model f(x: f64) -> f64 {\n for i in range(100000000) { x = x * 2 }\n return x }", LaTypeError, 2, 17,
     "would make 100000000 unrolled iterations in all; lagrad unrolls loops when it compiles and stops at 10000"),
    ("model f(A: f64[n, n]) -> f64 {\n  return sum(B) }", LaNameError, 2, 14, "unknown name `B`"),
    ("model f(Amat: f64[n, n]) -> f64 {\n  return sum(Amta) }", LaNameError, 2, 14, "did you mean `Amat`"),
    ("model f(A: f64[n, n], x: f64[m]) -> f64 {\n  y = A @ x\n  return sum(y) }", LaTypeError, 2, 7, "f64[n, n] @ f64[m]"),
    ("model f(x: f64[n], y: f64[m]) -> f64 {\n  return sum(x + y) }", LaTypeError, 2, 14, "f64[n] and f64[m]"),
    ("model f(x: f64[n]) -> f64 {\n  return x }", LaTypeError, 2, 10, "declared to return f64"),
    ("model f(x: f64[2 * n]) -> f64 { return sum(x) }", LaTypeError, 1, 16, "must appear alone"),
    ("model f(x: f64[n]) -> f64 { return sum(x, axs=0) }", LaNameError, 1, 43, "did you mean `axis`"),
    ("model f(x: f64[n]) -> f64 { return sum() }", LaTypeError, 1, 36, "takes"),
    ("model f(A: f64[n, n]) -> f64 { return inv(A, A) }", LaTypeError, 1, 39, "takes 1"),
    ("fn g(x) = g(x)\nmodel f(x: f64) -> f64 { return g(x) }", LaTypeError, 1, 11, "calls itself"),
    ("model f(A: f64[3, 3]) -> f64 { return A[3, 0] }", LaTypeError, 1, 41, "out of range"),
    ("model f(A: f64[n, n]) -> f64 { return A[0, 0, 0] }", LaTypeError, 1, 39, "too many indices"),
    ("model f(x: f64) -> f64 { a, b = x; return a }", LaTypeError, 1, 26, "cannot unpack"),
    ("model f(x: f64) -> f64 { return x }\nmodel f(y: f64) -> f64 { return y }", LaNameError, 2, 1, "defined twice"),
    ("model f(A: f64[n, m]) -> f64 { return det(A) }", LaTypeError, 1, 39, "square"),
    ("model f(A: f64[n, n]) -> f64 { n = 2.0; return n }", LaNameError, 1, 32, "dimension"),
    ("model f(A: f64[n, n], A: f64[n, n]) -> f64 { return 1.0 }", LaNameError, 1, 23, "twice"),
    ("model f(x: f64) -> f64 { return x + sum }", LaTypeError, 1, 37, "not a value"),
    ("model f(x: f64) -> f64 { return solve(x, x, assume=\"spd\") }", LaTypeError, 1, 33, ""),
    ("model f(x: f64) -> f64 {\n  return x @ x }", LaTypeError, 2, 10, "`@`"),
    ("model f(x: f64[n]) -> f64 { for i in range(-1) { x = x }\n return sum(x) }", LaTypeError, 1, 44, "negative"),
    ("model f(x: f64) -> f64 { return x @@ x }", LaSyntaxError, 1, 35, "@@"),
    ("model f(dx: f64) -> f64 { return dq }", LaNameError, 1, 34, "unknown name `dq`; did you mean `dx`?"),
    ("model f(x1: f64, y: f64) -> f64 { return x2 }", LaNameError, 1, 42, "did you mean `x1`?"),
    ("model f(x: f64) -> f64 { return True }", LaNameError, 1, 33, "booleans are written `true`"),
    ("model f(A: f64[n, n]) -> f64[n, n] { return tril(A, -1) }", LaTypeError, 1, 45,
     "`tril` takes 1 argument, got 2; its options are keyword arguments: k="),
    ("fn g(a, a) = a\nmodel f(x: f64) -> f64 { return g(x, x) }", LaNameError, 1, 9,
     "parameter `a` of `g` is declared twice"),
    ("frechet inv(A) -> X { dX = -X @ dA @ X }\n\nfrechet inv(B) -> Y { dY = -Y @ dB @ Y }", RuleError, 3, 1,
     "a second `frechet inv` block (the first is at line 1)"),
    ("model f(x: f64) -> f64 { y = (x + 1\n  return y }", LaSyntaxError, 1, 30, "unclosed"),
    ("model f(x: f64) -> f64 { y = x }", LaSyntaxError, None, None, "return"),
    ("frechet solve(A, B) -> X { dX = A }", RuleError, 1, 1, "standard-library"),
    ("frechet nosuch(A) -> X { dX = dA }", LaNameError, 1, 1, "no primitive"),
    ("elementwise relu(x) = x\nmodel f(x: f64) -> f64 { return x }", LaNameError, 1, 1, "standard-library"),
    ("elementwise g(x) = y * x\nmodel f(x: f64) -> f64 { return g(x) }", LaNameError, 1, 20, "unknown name `y`"),
    # keyword values of the wrong kind, sizes below 1
    ("model f(A: f64[n, n]) -> f64 { return sum(tril(A, k=0.5)) }", LaTypeError, 1, 53, "takes an integer"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] { return solve_triangular(A, b, lower=\"yes\") }", LaTypeError,
     1, 82, "takes true or false"),
    ("model f(A: f64[n, n]) -> f64[n] { return sum(A, axis=\"0\") }", LaTypeError, 1, 54, "takes an integer"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] { return solve(A, b, assume=1) }", LaTypeError, 1, 72,
     "takes a string"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] {\n op K(v) = A @ v\n return cg(K, b, tol=\"a\") }", LaTypeError,
     3, 22, "takes a number"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] {\n op K(v) = A @ v\n return gmres(K, b, restart=0) }",
     LaTypeError, 3, 29, "at least 1"),
    ("model f(x: f64) -> f64 { return sum(eye(-1)) + x }", LaTypeError, 1, 41, "at least 1, got -1"),
    ("model f(x: f64[0]) -> f64 { return sum(x) }", LaTypeError, 1, 16, "at least 1, got 0"),
    ("fn g(v: f32[k]) = v * 2\nmodel f(x: f64[n]) -> f64 { return sum(g(x)) }", LaTypeError, 2, 42,
     "`g` expects f32 values, got f64[n]"),
    ("model f(x: f64) -> f64 { return x * 1_000 }", LaSyntaxError, 1, 37, "no `_` separators"),
    ("model f(x: f64) -> f64 { y = 2x\n return y }", LaSyntaxError, 1, 31, "multiply with `*`: `2 * x`"),
    ("model f(x: f64) -> f64 {\n for i in range(1, 3) { x = x * 2 }\n return x }", LaSyntaxError, 2, 18,
     "`range(N)` takes one count"),
    ("model f(A: f64[n, n], b: f64[n]) -> f64[n] { return solve(A, b, assume=\"sp\") }", LaTypeError, 1, 53,
     "`solve`: assume must be"),
]


@pytest.mark.parametrize("src,cls,line,col,msg", ERRORS, ids=[f"e{i}" for i in range(len(ERRORS))])
def test_errors(src, cls, line, col, msg):
    with pytest.raises(cls) as info:
        lagrad.loads(src, name="case.la")
    e = info.value
    assert msg in str(e)
    if line is not None:
        assert (e.line, e.column) == (line, col), str(e)
        assert str(e).startswith(f"case.la:{line}:{col}: ")
        assert "^" in str(e)


def test_user_frechet_block_must_be_linear():
    lagrad.primitive("sq_user", lambda x: x * x, frechet="frechet sq_user(x) -> y { dy = dx * dx }")
    f = lagrad.loads("model f(x: f64[n]) -> f64 { return sum(sq_user(x)) }").f
    with pytest.raises(RuleError) as info:
        f.grad()(np.ones(3))
    assert "not linear" in str(info.value)
    assert info.value.line == 1
    lagrad.primitive("sq_user", lambda x: x * x, frechet="frechet sq_user(x) -> y { dy = 2 * x * dx }")
    g = lagrad.loads("model f(x: f64[n]) -> f64 { return sum(sq_user(x)) }").f
    np.testing.assert_allclose(g.grad("x")(np.arange(3.0)), 2 * np.arange(3.0))
    (gx,) = g.grad()(np.arange(3.0))          # wrt=None: a tuple of all inputs
    np.testing.assert_allclose(gx, 2 * np.arange(3.0))


def test_elementwise_derivative_is_printed_by_name():
    f = lagrad.loads("elementwise softish(x) = log(1 + exp(x))\n"
                     "model f(x: f64[n]) -> f64 { return sum(softish(x)) }").f
    text = str(f.adjoint())
    assert "d_softish(x)" in text
    x = rng.standard_normal(4)
    np.testing.assert_allclose(f.grad("x")(x), 1 / (1 + np.exp(-x)), rtol=1e-12)


def test_loop_over_dimension_needs_sizes_to_print():
    f = lagrad.loads("model f(x: f64[n]) -> f64 { s = 0.0\n for i in range(n) { s = s + x[i] }\n return s }").f
    with pytest.raises(lagrad.LagradError, match="specialize"):
        f.program
    assert str(f.specialize(n=3).program).count("x[") == 3
    np.testing.assert_allclose(f(np.arange(5.0)), 10.0)
    np.testing.assert_allclose(f.grad("x")(np.arange(4.0)), np.ones(4))


def test_a_negative_constant_is_one_operand_in_printed_and_generated_programs():
    f = lagrad.loads("model f(x: f64) -> f64 { return (-8.0) ** x + x * -1 }")["f"]
    text, src = str(f.program), f.program.to_python()
    assert "(-8.0) ** x" in text and "x * (-1.0)" in text
    assert "((-8.0) ** x)" in src and "(x * (-1.0))" in src
    assert float(f(2.0)) == 62.0


def test_a_size_written_with_dimensions_is_checked_per_call():
    f = lagrad.loads("model f(x: f64[n]) -> f64 {\n  return trace(eye(n - 5)) + sum(x) }", name="size.la")["f"]
    assert float(f(np.ones(7))) == 9.0
    with pytest.raises(lagrad.InputError, match="`eye` gets the size n - 5, which must be at least 1") as info:
        f(np.ones(5))
    assert (info.value.line, info.value.column) == (2, 20)


def test_the_exponent_derivative_of_a_zero_base_is_zero_as_in_jax():
    import jax
    f = lagrad.loads("model f(x: f64, p: f64) -> f64 { return x ** p }")["f"]
    for x in (0.0, 2.0, 0.5):
        got = f.grad()(x, 2.5)
        want = jax.grad(lambda x, p: x ** p, argnums=(0, 1))(x, 2.5)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=0)


def test_an_index_negative_from_some_size_on_counts_from_the_end_and_must_be_negative():
    f = lagrad.loads("model f(x: f64[n]) -> f64 {\n  return x[1 - n] }").f
    assert float(f(np.arange(4.0))) == 1.0 and float(f(np.arange(2.0))) == 1.0
    with pytest.raises(lagrad.InputError, match="the index 1 - n counts from the end, so it must be negative") as e:
        f(np.ones(1))                        # NumPy's x[0] there: a different meaning, refused
    assert (e.value.line, e.value.column) == (2, 12)


def test_abs_has_slope_one_at_zero_as_in_jax():
    import jax
    import jax.numpy as jnp
    m = lagrad.loads("elementwise g(x) = abs(x) * 2\nmodel f(x: f64[n]) -> f64 { return sum(abs(x)) + sum(g(x)) }")
    x = np.array([0.0, -1.0, 2.0])
    np.testing.assert_allclose(np.asarray(m.f.grad()(x)[0]), np.asarray(jax.grad(lambda x: 3 * jnp.sum(jnp.abs(x)))(x)))


def test_powers_0_and_1_have_finite_derivatives_at_zero():
    """x ** 0 and x ** 1 at x = 0: 0 · x^-1 and 1 · x^0 were NaN; JAX's integer powers give 0 and 1."""
    import jax
    import jax.numpy as jnp
    f = lagrad.loads("model f(x: f64[n]) -> f64 { return sum(x ** 0 * x) + sum(x ** 1) + sum(x ** 2) }").f
    ref = lambda x: jnp.sum(x ** 0 * x) + jnp.sum(x ** 1) + jnp.sum(x ** 2)
    x = np.array([0.0, 1.0, -2.0])
    np.testing.assert_allclose(np.asarray(f.grad()(x)[0]), np.asarray(jax.grad(ref)(x)), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(f.hvp("x")((x,), np.ones(3))), 2 * np.ones(3), rtol=1e-14)


@pytest.mark.parametrize("src", [
    "model f(A: f32[n, n]) -> f32[n, n] { return A + eye(n) - zeros(n, n) }",
    "model f(A: f32[n, n]) { return A @ ones(n) + 1.0 }",
    "model f(A: f32[n, n]) -> f32 { return 3.0 }",
    "model f(A: f32[n, n]) -> f32 { return sum(solve(A + eye(n), ones(n), assume=\"pos\")) }",
    # a function of a number literal stays a weak constant, as in JAX (was typed f64: refused)
    "model f(A: f32[n, n]) -> f32 { return sum(A) * exp(-1.0) }",
    "model f(A: f32[n, n]) -> f32[n, n] { return maximum(A * sqrt(2.0), exp(0.0)) }",
    "model f(A: f32[n, n]) -> f32 { return trace(A) * stop_gradient(2.0) - sin(2.5) }",
    "model f(A: f32[n, n]) { return cos(0.5) }",
])
def test_an_f32_model_computes_in_single_precision(src):
    """SPEC §4: f32 models compute in single; zeros/ones/eye and a returned constant follow the
    model's precision (an f64 model, or one with an f64 argument, keeps f64)."""
    f = lagrad.loads(src)["f"]
    A = (np.eye(3) * 2).astype(np.float32)
    assert np.asarray(f(A)).dtype == np.float32
    if "-> f32 {" in src:
        assert np.asarray(f.grad()(A)[0]).dtype == np.float32
    assert np.asarray(lagrad.loads(src.replace("f32", "f64"))["f"](A)).dtype == np.float64


@pytest.mark.parametrize("body,cls,col,msg", [
    ("s = s + x[ixd]", LaNameError, 15, "ixd"),
    ("s = s + sum(slove(A, x))", LaNameError, 17, "did you mean `solve`"),
    ("s = s + sum(A @ x)", LaTypeError, 17, "inner dimensions differ"),
])
def test_a_loop_over_a_dimension_is_checked_at_load(body, cls, col, msg):
    """A loop counted by a dimension is elaborated at load with a sample count, so its body's
    errors come at load (SPEC §4: load checks every model); value-dependent ones wait."""
    src = f"model f(A: f64[n, m], x: f64[n]) -> f64 {{\n  s = 0.0\n  for i in range(n) {{\n    {body}\n  }}\n  return s\n}}"
    with pytest.raises(cls, match=msg) as info:
        lagrad.loads(src, name="loop.la")
    assert (info.value.line, info.value.column) == (4, col)
    g = lagrad.loads("model g(x: f64[n]) -> f64 {\n s = 0.0\n for i in range(n - 5) { s = s + x[i + 5] }\n return s }")
    assert float(g["g"](np.arange(8.0))) == 18.0
    with pytest.raises(lagrad.InputError, match=r"the loop count n - 5 is -2 for the arguments' sizes \(n = 3\)") as e:
        g["g"](np.arange(3.0))                       # the call's sizes are wrong (was a LaTypeError)
    assert (e.value.line, e.value.column) == (3, 17)


def test_maximum_and_minimum_split_the_derivative_at_a_tie_as_jax_does():
    import jax
    import jax.numpy as jnp
    f = lagrad.loads("model f(a: f64[n], b: f64[n]) -> f64 { return sum(maximum(a, b)) + sum(minimum(a, b) * a) }")["f"]
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    want = jax.grad(lambda a, b: jnp.sum(jnp.maximum(a, b)) + jnp.sum(jnp.minimum(a, b) * a), argnums=(0, 1))(a, b)
    for g, w in zip(f.grad()(a, b), want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-14)


@pytest.mark.parametrize("body", ["maximum(x, 0.0)", "minimum(x, 0.0)", "maximum(x, 2 * x)", "relu(x)",
                                  "relu(x) + maximum(0.0, x)", "abs(x)"])
def test_an_elementwise_function_has_the_models_derivative_at_a_kink(body):
    # ties of maximum/minimum split ½/½ and relu'(0) = 0, as inline and in JAX: an elementwise
    # maximum(x, 0.0) was sympy's Max(x, 0) = relu, whose Heaviside gave 0 at the tie
    m = lagrad.loads(f"elementwise e(x) = {body}\n"
                     f"model f(x: f64[n]) -> f64 {{ return sum(e(x)) }}\n"
                     f"model g(x: f64[n]) -> f64 {{ return sum({body}) }}")
    x = np.array([0.0, -1.0, 2.0])
    np.testing.assert_allclose(np.asarray(m.f.grad()(x)[0]), np.asarray(m.g.grad()(x)[0]), rtol=0, atol=0)


def test_long_and_deep_elementwise_bodies_compile_or_say_they_are_too_deep():
    # §6: never a RecursionError (sympy's diff recursed once per term of a 97-term sum)
    m = lagrad.loads("elementwise e(x) = 0.5 * x" + " + x * x - 2.0 * x" * 150 + " + 1.0 - 2.0\n"
                     "elementwise flip(x) = " + "-" * 1001 + "x\n"
                     "model f(x: f64) -> f64 { return e(x) + 3 * flip(x) }")
    x = 0.7
    np.testing.assert_allclose(float(m.f(x)), 0.5 * x + 150 * (x * x - 2 * x) - 1.0 - 3 * x, rtol=1e-13)
    np.testing.assert_allclose(float(m.f.grad("x")(x)), 0.5 + 150 * (2 * x - 2) - 3, rtol=1e-13)
    deep = "elementwise e(x) = " + "sin(" * 500 + "x" + ")" * 500 + "\nmodel f(x: f64) -> f64 { return e(x) }"
    chain = "\n".join(f"elementwise e{i}(x) = e{i + 1}(x) + 1" for i in range(150)) + \
        "\nelementwise e150(x) = x\nmodel f(x: f64) -> f64 { return e0(x) }"
    for src in (deep, chain):
        with pytest.raises(LaSyntaxError, match="is nested too deeply for symbolic differentiation") as e:
            lagrad.loads(src)
        assert e.value.column == 1 and "write it as a `fn`" in str(e.value)


def test_arithmetic_on_constants_is_folded_with_ieee_results():
    f = lagrad.loads("model f(x: f64) -> f64 { return (2.0 - 1.0) * x + 1 / 0 * 0 }")["f"]
    text = str(f.program)
    assert "2.0 - 1.0" not in text and "1.0 * x" in text and "+ nan" in text
    assert np.isnan(float(f(1.0)))


@pytest.mark.parametrize("body", ["sqrt(x) ** 2", "exp(log(x))", "x ** 2 / x", "x / 0", "log(0) * x",
                                  "sqrt(-1) * x", "softplus(x)", "sigmoid(x)", "abs(x) * x", "relu(x) + celu(x)"])
def test_an_elementwise_function_computes_what_its_body_says_inline(body):
    """The body is not simplified (sqrt(x)**2 is not x for x < 0), constants follow IEEE as in a
    model, softplus/sigmoid keep JAX's stable forms, and second derivatives of abs/relu work.
    Where the body is NaN its derivatives are NaN; elsewhere they are compared where the body is
    finite (sympy's derivative is simplified, so NaN patterns of inf arithmetic may differ)."""
    m = lagrad.loads(f"elementwise g(x) = {body}\nmodel f(x: f64[n]) -> f64[n] {{ return g(x) }}\n"
                     f"model s(x: f64[n]) -> f64 {{ return sum(g(x)) }}")
    inline = lagrad.loads(f"model f(x: f64[n]) -> f64[n] {{ return {body} }}\n"
                          f"model s(x: f64[n]) -> f64 {{ return sum({body}) }}")
    x = np.array([-2.0, 0.0, 3.0, 800.0, -800.0])
    np.testing.assert_allclose(np.asarray(m.f(x)), np.asarray(inline.f(x)), rtol=1e-14, equal_nan=True)
    nan = np.isnan(np.asarray(m.f(x)))
    assert np.isnan(np.asarray(m.s.grad()(x)[0])[nan]).all()
    assert np.isnan(np.asarray(m.s.hvp("x")((x,), np.ones(5)))[nan]).all()
    y = np.array([-1.5, 0.5, 2.0])
    if not np.isfinite(np.asarray(inline.f(y))).all():
        y = np.array([0.25, 0.5, 2.0])
    if not np.isfinite(np.asarray(inline.f(y))).all():
        return
    np.testing.assert_allclose(np.asarray(m.s.grad()(y)[0]), np.asarray(inline.s.grad()(y)[0]), rtol=1e-12,
                               equal_nan=True)
    hv = m.s.hvp("x")((y,), np.ones(3))
    np.testing.assert_allclose(np.asarray(hv), np.asarray(inline.s.hvp("x")((y,), np.ones(3))), rtol=1e-12,
                               equal_nan=True)


def test_a_linear_elementwise_function_may_sit_in_an_operator_body():
    """g(x) = 2x − x/4 is c·x, so `A @ g(v)` is linear in v (it was refused); its transpose is
    itself, checked by the gradient through gmres's transposed solve. sqrt(x)² is not linear."""
    import jax
    import jax.numpy as jnp
    src = ("elementwise g(x) = 2 * x - x / 4\nelementwise k(x) = sqrt(x) ** 2\n"
           "model f(A: f64[n, n], b: f64[n]) -> f64 {\n op K(v) = A @ g(v)\n return sum(gmres(K, b)) }")
    f = lagrad.loads(src).f
    A, b = 2 * np.eye(3) + 0.1, np.arange(1.0, 4.0)
    ref = lambda A, b: jnp.sum(jnp.linalg.solve(1.75 * A, b))
    np.testing.assert_allclose(float(f(A, b)), float(ref(A, b)), rtol=1e-10)
    for g, w in zip(f.grad()(A, b), jax.grad(ref, (0, 1))(A, b)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-8)
    with pytest.raises(LaTypeError, match="but `k` here is not linear in it"):
        lagrad.loads(src.replace("A @ g(v)", "A @ k(v)"))


def test_elementwise_definitions_may_come_in_any_order_and_cannot_recurse():
    m = lagrad.loads("elementwise g(x) = h(x) * 2\nelementwise h(x) = x * x\n"
                     "model f(x: f64[n]) -> f64 { return sum(g(x)) }")
    np.testing.assert_allclose(np.asarray(m.f.grad()(np.ones(3))[0]), 4.0 * np.ones(3))
    with pytest.raises(LaTypeError, match=r"uses itself \(through g → h → g\)"):
        lagrad.loads("elementwise g(x) = h(x)\nelementwise h(x) = g(x)\nmodel f(x: f64) -> f64 { return g(x) }")
    with pytest.raises(LaTypeError, match="elementwise `h` takes 1 argument, got 2") as e:
        lagrad.loads("elementwise g(x) = h(x, x)\nelementwise h(x) = x\nmodel f(x: f64) -> f64 { return g(x) }")
    assert (e.value.line, e.value.column) == (1, 20)
