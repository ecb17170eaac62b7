"""Tables for the .la parser: source → AST (spans are not compared), source → LaSyntaxError."""

import pytest

from lagrad.dsl import ast, parse
from lagrad.errors import LaSyntaxError

import lagrad

# ---- short constructors ---------------------------------------------------------------------
N, Num, Str, Bool, Neg, T = ast.Name, ast.Num, ast.Str, ast.Bool, ast.Neg, ast.Transpose


def B(op, a, b):
    return ast.BinOp(op, a, b)


def C(func, *args, **kwargs):
    return ast.Call(func, args, tuple(ast.Kwarg(k, v) for k, v in kwargs.items()))


def I(base, *items):
    return ast.Index(base, items)


def S(lo=None, hi=None):
    return ast.Slice(lo, hi)


def Ret(*values):
    return ast.Return(values)


def A(targets, value):
    return ast.Assign(tuple(N(t) for t in targets.split(",")), value)


def ty(dtype, *dims):
    return ast.TypeAnn(dtype, dims or None)


def expr_of(src):
    """The expression `src`, parsed as the body of `fn t() = src`."""
    (fn,) = parse(f"fn t() = {src}").items
    return fn.body[0].values[0]


def stmts_of(src):
    """The statements of `src`, parsed as a model body ending in `return 0`."""
    (model,) = parse(f"model t() {{\n{src}\nreturn 0\n}}").items
    assert model.body[-1] == Ret(Num(0))
    return model.body[:-1]


# ---- expressions ----------------------------------------------------------------------------
x, a, b, c, A_, B_, M = N("x"), N("a"), N("b"), N("c"), N("A"), N("B"), N("M")

EXPRESSIONS = [
    ("2", Num(2)),
    ("0.5", Num(0.5)),
    ("1e-8", Num(1e-8)),
    ("2.", Num(2.0)),
    (".5", Num(0.5)),
    ("1E3", Num(1000.0)),
    ("x", x),
    ("a + b * c", B("+", a, B("*", b, c))),
    ("a - b - c", B("-", B("-", a, b), c)),
    ("a / b * c", B("*", B("/", a, b), c)),
    ("a ** b ** c", B("**", a, B("**", b, c))),
    ("-x ** 2", Neg(B("**", x, Num(2)))),
    ("-x * 2", B("*", Neg(x), Num(2))),
    ("2**-1", B("**", Num(2), Neg(Num(1)))),
    ("A @ B * c", B("*", B("@", A_, B_), c)),
    ("A + B @ c", B("+", A_, B("@", B_, c))),
    ("(a + b) * c", B("*", B("+", a, b), c)),
    ("--x", Neg(Neg(x))),
    ("A'", T(A_)),
    ("A.T", T(A_)),
    ("A''", T(T(A_))),
    ("A' @ B", B("@", T(A_), B_)),
    ("x ** 2'", B("**", x, T(Num(2)))),
    ("A[0:2, :]'", T(I(A_, S(Num(0), Num(2)), S()))),
    ("f(x).T", T(C("f", x))),
    ("inv(M)[-1, -1]", I(C("inv", M), Neg(Num(1)), Neg(Num(1)))),
    ("(C @ inv(M))[-1, -1]", I(B("@", N("C"), C("inv", M)), Neg(Num(1)), Neg(Num(1)))),
    ("A[i, j]", I(A_, N("i"), N("j"))),
    ("A[0:n-1, :]", I(A_, S(Num(0), B("-", N("n"), Num(1))), S())),
    ("A[1:, :n]", I(A_, S(Num(1)), S(None, N("n")))),
    ("A[2*n:]", I(A_, S(B("*", Num(2), N("n"))))),
    ("A[0][1]", I(I(A_, Num(0)), Num(1))),
    ("f()", C("f")),
    ("f(a, b)", C("f", a, b)),
    ("f(a, b,)", C("f", a, b)),
    ("f(g(a), -b)", C("f", C("g", a), Neg(b))),
    ("f(x, k=-1)", C("f", x, k=Num(-1))),
    ("f(x, k=3, tol=1e-8)", C("f", x, k=Num(3), tol=Num(1e-8))),
    ("f(x, k=-0.5)", C("f", x, k=Num(-0.5))),
    ('f(x, side="left")', C("f", x, side=Str("left"))),
    ('f(x, s="a\\"b")', C("f", x, s=Str('a"b'))),
    ('f(x, s=")]} #")', C("f", x, s=Str(")]} #"))),
    ("f(x, lower=true, unit=false)", C("f", x, lower=Bool(True), unit=Bool(False))),
    ("f(k=1)", C("f", k=Num(1))),
    ("f(a,\n  b,\n  k=1\n)", C("f", a, b, k=Num(1))),
    ("(a +\n b)", B("+", a, b)),
    ("A[0,\n 1]", I(A_, Num(0), Num(1))),
    ("x # a comment", x),
    ("T", N("T")),
]


@pytest.mark.parametrize("src, expected", EXPRESSIONS, ids=[s for s, _ in EXPRESSIONS])
def test_expression(src, expected):
    got = expr_of(src)
    assert got == expected
    if isinstance(expected, ast.Num):
        assert type(got.value) is type(expected.value)


# ---- statements -----------------------------------------------------------------------------
STATEMENTS = [
    ("y = x", (A("y", x),)),
    ("a, b = qr(A)", (A("a,b", C("qr", A_)),)),
    ("y = x; z = y", (A("y", x), A("z", N("y")))),
    ("y = x;\n\n; z = y;", (A("y", x), A("z", N("y")))),
    ("# only a comment\n  y = x  # trailing\n\n", (A("y", x),)),
    ("op K(v) = A @ v", (ast.OpDef("K", "v", (Ret(B("@", A_, N("v"))),)),)),
    ("op K(v) {\n w = A @ v\n return w + v\n}",
     (ast.OpDef("K", "v", (A("w", B("@", A_, N("v"))), Ret(B("+", N("w"), N("v"))))),)),
    ("op K(v) { return v }", (ast.OpDef("K", "v", (Ret(N("v")),)),)),
    ("for i in range(3) { x = x @ A }", (ast.For("i", Num(3), (A("x", B("@", x, A_)),)),)),
    ("for i in range(n+1) {\n x = x * 2\n y = x\n}",
     (ast.For("i", B("+", N("n"), Num(1)), (A("x", B("*", x, Num(2))), A("y", x))),)),
    ("for i in range(n)\n{\n x = 1\n}", (ast.For("i", N("n"), (A("x", Num(1)),)),)),
    ("for i in range(2) { for j in range(3) { x = x } }",
     (ast.For("i", Num(2), (ast.For("j", Num(3), (A("x", x),)),)),)),
    ("for i in range(2) { op K(v) { return v } }",
     (ast.For("i", Num(2), (ast.OpDef("K", "v", (Ret(N("v")),)),)),)),
]


@pytest.mark.parametrize("src, expected", STATEMENTS, ids=[s for s, _ in STATEMENTS])
def test_statements(src, expected):
    assert stmts_of(src) == expected


RETURNS = [
    ("return x", Ret(x)),
    ("return a, b", Ret(a, b)),
    ("return (a, b)", Ret(a, b)),
    ("return (a, b,)", Ret(a, b)),
    ("return (a)", Ret(a)),
    ("return (a + b)[0]", Ret(I(B("+", a, b), Num(0)))),
    ("return -a, b'", Ret(Neg(a), T(b))),
]


@pytest.mark.parametrize("src, expected", RETURNS, ids=[s for s, _ in RETURNS])
def test_return(src, expected):
    (model,) = parse(f"model t() {{ {src} }}").items
    assert model.body == (expected,)


# ---- top-level items ------------------------------------------------------------------------
SPEC_EXAMPLE = """\
# ftest.la — the derivative of one entry of C·(A + xB)⁻¹
model ftest(x: f64, A: f64[n, n], B: f64[n, n], C: f64[n, n]) -> f64 {
    M = A + x * B
    return (C @ inv(M))[-1, -1]
}
"""
nn = ty("f64", N("n"), N("n"))
P = ast.Param

ITEMS = [
    (SPEC_EXAMPLE, (ast.Model(
        "ftest", (P("x", ty("f64")), P("A", nn), P("B", nn), P("C", nn)), (ty("f64"),), False,
        (A("M", B("+", A_, B("*", x, B_))),
         Ret(I(B("@", N("C"), C("inv", M)), Neg(Num(1)), Neg(Num(1)))))),)),
    ("model f() { return 1 }", (ast.Model("f", (), None, False, (Ret(Num(1)),)),)),
    ("model f(x: f32) -> (f64, f32[3]) { return x, x }",
     (ast.Model("f", (P("x", ty("f32")),), (ty("f64"), ty("f32", Num(3))), True,
                (Ret(x, x),)),)),
    ("model f(x: f64) -> (f64) { return x }",
     (ast.Model("f", (P("x", ty("f64")),), (ty("f64"),), True, (Ret(x),)),)),
    ("model f(\n  x: f64,\n  A: f64[2*n, n+1],\n) -> f64\n{\n  return x\n}",
     (ast.Model("f", (P("x", ty("f64")),
                      P("A", ty("f64", B("*", Num(2), N("n")), B("+", N("n"), Num(1))))),
                (ty("f64"),), False, (Ret(x),)),)),
    ("model f(A: f64[(n+1)*m, n-1, 4]) { return A }",
     (ast.Model("f", (P("A", ty("f64", B("*", B("+", N("n"), Num(1)), N("m")),
                                 B("-", N("n"), Num(1)), Num(4))),),
                None, False, (Ret(A_),)),)),
    ("fn sq(x) = x * x", (ast.FnDef("sq", (P("x"),), (Ret(B("*", x, x)),)),)),
    ("fn g(a, b: f64[n]) {\n c = a * b\n return c\n}",
     (ast.FnDef("g", (P("a"), P("b", ty("f64", N("n")))), (A("c", B("*", a, b)), Ret(c))),)),
    ("fn two(a) { return a, a }", (ast.FnDef("two", (P("a"),), (Ret(a, a),)),)),
    ("elementwise softplus(x) = log(1 + exp(x))",
     (ast.ElementwiseDef("softplus", "x", C("log", B("+", Num(1), C("exp", x)))),)),
    ("frechet inv(A) -> X { dX = -X @ dA @ X }",
     (ast.FrechetDef("inv", ("A",), ("X",),
                     (A("dX", B("@", B("@", Neg(N("X")), N("dA")), N("X"))),)),)),
    ("frechet qr(A) -> (Q, R) {\n dQ = Q\n dR = R\n}",
     (ast.FrechetDef("qr", ("A",), ("Q", "R"), (A("dQ", N("Q")), A("dR", N("R")))),)),
    ("frechet solve(A, B) -> X { dX = solve(A, dB - dA @ X) }",
     (ast.FrechetDef("solve", ("A", "B"), ("X",),
                     (A("dX", C("solve", A_, B("-", N("dB"), B("@", N("dA"), N("X"))))),)),)),
    ("", ()),
    ("\n# nothing but comments\n\n", ()),
    ("fn f(x) = x; fn g(x) = x\r\nfn h(x) = x\r\n",
     tuple(ast.FnDef(n, (P("x"),), (Ret(x),)) for n in "fgh")),
    ("\n\nfn f(x) = x\n\n\nelementwise e(x) = x\nmodel m() { return 1 }\n",
     (ast.FnDef("f", (P("x"),), (Ret(x),)), ast.ElementwiseDef("e", "x", x),
      ast.Model("m", (), None, False, (Ret(Num(1)),)))),
]


@pytest.mark.parametrize("src, expected", ITEMS, ids=[s[:40] for s, _ in ITEMS])
def test_items(src, expected):
    module = parse(src, "m.la")
    assert module.items == expected
    assert module.path == "m.la" and module.source == src.replace("\r\n", "\n")   # line ends read as LF


def test_module_and_types_of_values():
    module = parse("fn f(x) = g(x, k=-1, s=\"s\", b=true)")
    assert isinstance(module, ast.Module)
    call = module.items[0].body[0].values[0]
    assert isinstance(call.args, tuple) and isinstance(call.kwargs, tuple)
    assert [type(k.value) for k in call.kwargs] == [ast.Num, ast.Str, ast.Bool]
    assert call.kwargs[0].value.value == -1 and isinstance(call.kwargs[0].value.value, int)


# ---- spans ----------------------------------------------------------------------------------
def test_spans():
    module = parse(SPEC_EXAMPLE, "ftest.la")
    model = module.items[0]
    assert model.span == ast.Span("ftest.la", 2, 1, 5, 2)
    x_param, a_param = model.params[:2]
    assert (x_param.span.line, x_param.span.column) == (2, 13)
    assert (a_param.type.span.line, a_param.type.span.column) == (2, 24)
    assign, ret = model.body
    assert assign.span == ast.Span("ftest.la", 3, 5, 3, 18)
    assert assign.targets[0].span == ast.Span("ftest.la", 3, 5, 3, 6)
    assert assign.value.right.span == ast.Span("ftest.la", 3, 13, 3, 18)      # x * B
    index = ret.values[0]
    assert index.span == ast.Span("ftest.la", 4, 12, 4, 32)                   # (C @ ...)[-1, -1]
    call = index.base.right
    assert call.func_span == ast.Span("ftest.la", 4, 17, 4, 20)
    assert call.span == ast.Span("ftest.la", 4, 17, 4, 23)
    assert index.items[0].span == ast.Span("ftest.la", 4, 25, 4, 27)          # -1
    assert str(call.span) == "ftest.la:4:17"


def test_spans_of_expression_forms():
    fn = parse("fn f(x) =   x' + 1").items[0]
    ret = fn.body[0]
    assert ret.span == ret.values[0].span == ast.Span("<string>", 1, 13, 1, 19)
    assert ret.values[0].left.span == ast.Span("<string>", 1, 13, 1, 15)
    call = parse("fn f(x) = g(\n  x,\n  k=-1)").items[0].body[0].values[0]
    assert call.span == ast.Span("<string>", 1, 11, 3, 8)
    assert call.kwargs[0].value.span == ast.Span("<string>", 3, 5, 3, 7)
    sl = parse("fn f(x) = x[:, 1:]").items[0].body[0].values[0].items
    assert sl[0].span.column == 13 and (sl[1].span.column, sl[1].span.end_column) == (16, 18)


# ---- syntax errors --------------------------------------------------------------------------
ERRORS = [
    # (source, line, column, substring of the message or hint)
    ("model f(x: f64) {\n  y = g(x\n  return y\n}", 2, 8, "unclosed `(`"),
    ("model f(x: f64) {\n  y = g(x\n  return y\n}", 2, 8, "expected `)` before the `}`"),
    ("model f(x: f64) {\n  y = A[0\n  return y\n}", 2, 8, "unclosed `[`"),
    ("model f(x: f64) {\n  y = x\n  return y\n", 1, 17, "unclosed `{`"),
    ("model f(x: f64) {\n  return y\n", 1, 17, "before the end of the file"),
    ("model f(x: f64) {\n  y = x)\n  return y\n}", 2, 8, "unmatched `)`"),
    ("model f(x: f64) {\n  y = g(x]\n  return y\n}", 2, 10, "unmatched `]`"),
    ("model f(x: f64) { return x }\n}", 2, 1, "unmatched `}`"),
    ('model f(x: f64) { return g(x, s=")" }  # (', 1, 27, "unclosed `(`"),
    ("model f(x: f64) {\n  y = A @@ B\n  return y\n}", 2, 9, "`@@`"),
    ("model f(x: f64) {\n  y = A @@ B\n  return y\n}", 2, 9, "matrix product is a single `@`"),
    ("model f(x: f64) { y = x }", 1, 25, "missing `return`"),
    ("model f(x: f64) { y = x }", 1, 25, "the last statement of a model body must be `return"),
    ("model f(x: f64) {\n  y = x\n}", 3, 1, "missing `return` in model `f`"),
    ("model f(x: f64) { }", 1, 19, "missing `return`"),
    ("fn g(x) { y = x }", 1, 17, "missing `return` in fn `g`"),
    ("model f(x: f64) { op K(v) { w = v }\n return x }", 1, 35, "an op body must be"),
    ("model f(x: f64) {\n  return x\n  y = x\n}", 3, 3, "statements after `return`"),
    ("model f(x: f64) {\n  return x\n  return x\n}", 3, 3, "statements after `return`"),
    ("model f(x: f64) {\n  for i in range(3) { return x }\n  return x\n}", 2, 23,
     "`return` inside a `for` loop"),
    ("frechet inv(A) -> X {\n  return A\n}", 2, 3, "only assignments"),
    ("model f(x: f64) { return x == 1 }", 1, 28, "`==`"),
    ("model f(x: f64) {\n  x == 1\n  return x\n}", 2, 5, "`==` is not an operator"),
    ("model f(x: f64) { return x ** * 2 }", 1, 31, "exponent after `**`"),
    ("model f(x: f64) { return x *** 2 }", 1, 30, "`***` is not an operator"),
    ("model f(x: f64) { return ** 2 }", 1, 26, "`**` is the power operator"),
    ("model f(x: f64) {\n  range = 1\n  return x\n}", 2, 3, "`range` is a keyword"),
    ("model f(x: f64) {\n  op = 1\n  return x\n}", 2, 3, "`op` is a keyword"),
    ("model f(x: f64) {\n  y = in + 1\n  return x\n}", 2, 7, "`in` is a keyword"),
    ("model f(return: f64) { return x }", 1, 9, "`return` is a keyword"),
    ("model f(x: f64) { y = x\n  return model }", 2, 10, "`model` is a keyword"),
    ('model f(x: f64) { return g(x, k="abc) }', 1, 33, "unterminated string"),
    ("model f(x: f64) { return x $ 1 }", 1, 28, "unexpected character `$`"),
    ("model f(x: f64) { return x ^ 2 }", 1, 28, "powers are written `**`"),
    ("fn f(x) = x\n\x00", 2, 1, "unexpected character U+0000"),
    ("model f(x: f64) { return x.foo }", 1, 28, "unknown attribute `.foo`"),
    ("model f(x: f64) { return x.foo }", 1, 28, "only `.T`"),
    ("model f(x: f64) { return g(k=1, x) }", 1, 33, "positional argument after keyword"),
    ("model f(x: f64) { return g(x, k=1, k=2) }", 1, 36, "`k` repeated"),
    ("model f(x: f64) { return g(x, k=) }", 1, 33, "unexpected `)`"),
    ("model f(x: f64) { return g(x, k=[1]) }", 1, 33, "a number, a string, `true`, `false`, a name (a dimension or an operator) or an integer expression"),
    ("model f(x: f64) { return g(x k=1) }", 1, 30, "separate the items with `,`"),
    ("model f(x: f64) { return A[0 1] }", 1, 30, "separate the items with `,`"),
    ("model f(x: f64) { return true }", 1, 26, "only as keyword-argument values"),
    ('model f(x: f64) { return "s" }', 1, 26, "only as keyword-argument values"),
    ("model f(x: f64) { return 'x' }", 1, 26, "strings use double quotes"),
    ("model f(x: f64) {\n  y = x +\n  return y\n}", 2, 10, "expected an expression"),
    ("model f(x: f64) {\n  y = x +\n  return y\n}", 2, 10, "wrap a long expression"),
    ("model f(x: f64) { y = x z = 2\n return y }", 1, 25, "new line or `;`"),
    ("model f(x: f64) {\n  x + 1\n  return x\n}", 2, 5, "a statement is `name = expression`"),
    ("elementwise g(x) {\n  return x\n}", 1, 18, "an elementwise function is one expression"),
    ("y = 1", 1, 1, "statements belong inside"),
    ("model f(x: f64) -> f64", 1, 23, "unexpected end of file"),
    ("model f(x: f64) { return x[1:2:3] }", 1, 31, "there is no step"),
    ("model f(x: f64[1.5]) { return x }", 1, 16, "a dimension must be an integer"),
    ("model f(x: f64[-n]) { return x }", 1, 16, "unexpected `-`"),
    ("model f(x: int) { return x }", 1, 12, "unexpected `int`"),
    ("model f(x) { return x }", 1, 10, "expected `:`"),
    ("elementwise e(x, y) = x", 1, 15, "exactly one argument"),
    ("model f(x: f64) { op K(v, w) = v\n return x }", 1, 24, "exactly one argument"),
    ("model f(x: f64) { return f(x)(x) }", 1, 30, "only a function name can be called"),
    ("model f(x: f64) { return (a, b) + 1 }", 1, 33, "unexpected `+`"),
    ("model f(x: f64) { y = (a, b)\n return y }", 1, 25, "a tuple can only be returned"),
    ("fn f(x) = x\nfn", 2, 3, "end of file"),
]


@pytest.mark.parametrize("src, line, column, text", ERRORS,
                         ids=[f"{i}:{t}" for i, (_, _, _, t) in enumerate(ERRORS)])
def test_syntax_error(src, line, column, text):
    with pytest.raises(LaSyntaxError) as info:
        parse(src, "bad.la")
    err = info.value
    assert (err.path, err.line, err.column) == ("bad.la", line, column), str(err)
    assert text in err.message + "\n" + (err.hint or ""), str(err)
    rendered = str(err)
    assert rendered.startswith(f"bad.la:{line}:{column}: ")
    assert rendered.splitlines()[2] == "    " + " " * (column - 1) + "^"


GARBAGE = ["(", ")", "{", "}", "[", "]", "model", "model f", "model f(", "model f(x",
           "model f(x:", "model f(x: f64", "model f(x: f64)", "model f(x: f64) {", "fn f(x) =",
           "\"", "'", "@", "#", ";;;", "fn f(x) = x\n\x00", "model f(x: f64) { return x }}",
           "frechet f(A) -> { dX = A }", "frechet f() -> X { dX = 1 }", "for i in range(3) {}"]


@pytest.mark.parametrize("src", GARBAGE)
def test_garbage_is_always_a_syntax_error(src):
    if src in ("#", ";;;"):
        assert parse(src).items == ()
        return
    with pytest.raises(LaSyntaxError) as info:
        parse(src)
    assert info.value.line is not None and info.value.line >= 1


# ---- size -----------------------------------------------------------------------------------
@pytest.mark.parametrize("wrap", ["({})", "-({})", "g({})", "({} + 1)", "{}[0]", "{}'"])
def test_deep_nesting(wrap):
    src = "x"
    depth = 1000
    for _ in range(depth):
        src = wrap.format(src)
    expr = parse(f"fn f(x) = {src}").items[0].body[0].values[0]
    levels = 0                                   # walk down without recursion
    while not isinstance(expr, ast.Name):
        expr = next(v for v in vars(expr).values() if isinstance(v, ast.Node)) \
            if not isinstance(expr, ast.Call) else expr.args[0]
        levels += 1
    assert expr == x and levels in (0 if wrap == "({})" else depth, 2 * depth)


def test_long_model_parses():
    """10 000 statements parse with their positions (the time it takes is measured in
    benchmarks/RESULTS_compile_scaling.md, not asserted here)."""
    n = 10000
    lines = "".join(f"    y{i} = A @ y{i - 1} + x * inv(A)[0, :]'  # step {i}\n" for i in range(n))
    src = f"model big(x: f64, A: f64[n, n], y_1: f64[n]) -> f64[n] {{\n{lines}    return y{n - 1}\n}}\n"
    module = parse(src)
    assert len(module.items[0].body) == n + 1
    assert module.items[0].body[-1].span.line == n + 2


@pytest.mark.parametrize("text", [
    "\ufeffmodel m(x: f64) -> f64 {\r\n  y = x * 2\r\n  return y\r\n}\r\n",   # BOM, Windows line ends
    "model m(x: f64) -> f64 {\r  y = x * 2\r  return y\r}",                     # old Mac line ends
])
def test_a_byte_order_mark_and_cr_line_ends_parse(text):
    assert float(lagrad.loads(text).m(1.5)) == 3.0
    with pytest.raises(lagrad.LaSyntaxError) as info:
        lagrad.loads(text.replace("x * 2", "x @@ 2"))
    assert (info.value.line, info.value.column) == (2, 9)


def test_string_escapes_read_as_in_python():
    from lagrad.dsl.parser import _string
    assert _string(r'"a\"b"') == 'a"b' and _string(r'"x\ny"') == "x\ny" and _string(r'"c\\d"') == "c\\d"
    assert _string(r'"\d"') == "\\d"            # an unknown escape keeps its backslash
