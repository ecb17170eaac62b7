"""The rule table: one row per primitive (and per interesting shape combination), float64.

Every row runs, where they apply, the checks of RULES.md ("Checks every rule must pass"):

* ``value``   — the primitive's result equals the same function written in jax.numpy;
* ``fd``      — its Fréchet rule (``linearize``) agrees with central differences, h = 1e-6;
* ``dot``     — dot-product test of the derived adjoint: ⟨ȳ, L dx⟩ = ⟨Lᵀȳ, dx⟩, with L the
  tangent map of ``linearize`` and Lᵀ the adjoint of ``vjp_program``, ȳ non-symmetric;
* ``grad``    — lagrad's gradient of Σ w ⊙ f equals ``jax.grad`` of the jax.numpy version;
* ``linear``  — for primitives linear in some inputs, the dot-product test directly on their
  transpose rule (jointly for joint-linear primitives, one input at a time otherwise).

A new primitive gets all of them by adding a row; ``test_every_primitive_has_a_row`` insists.
"""
from __future__ import annotations

import zlib
import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.scipy.linalg as jsl  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lagrad.stdlib  # noqa: E402,F401  (registers every primitive)
from lagrad.compiler.autodiff import linearize, primitive_program, vjp_program  # noqa: E402
from lagrad.compiler.builder import Builder, Undef  # noqa: E402
from lagrad.compiler.ir import Namer, Program  # noqa: E402
from lagrad.compiler.primitive import REGISTRY  # noqa: E402
from lagrad.compiler.types import FactorType, ShapeError, TensorType  # noqa: E402
from lagrad.runtime.lower import to_jax  # noqa: E402

from rulebook import DOMAINS, FACTORS, FD_TOL, M, R, S, V, V3, W, Row, _fmt, rows_for  # noqa: E402

H = 1e-6            # central-difference step
DOT_TOL = 1e-10     # relative error of the dot-product tests
GRAD_TOL = 1e-8     # relative error against jax.grad
VALUE_TOL = 1e-10


# ---- the table ----------------------------------------------------------------------------
BROADCASTING = [(S, S), (S, V), (V, S), (V, V), (M, M), (S, M), (M, S), (R, R)]
UNARY_SHAPES = [(V,), (R,)]

def _lu_ref(A):
    """scipy-style (LU, pivots) and the permutation the pivots' row swaps make (perm: A[perm] = L U)."""
    lu, piv = jsl.lu_factor(A)
    perm = np.arange(A.shape[0])
    for i, p in enumerate(np.asarray(piv)):
        perm[[i, p]] = perm[[p, i]]
    return lu, piv, perm


ROWS = [
    # arithmetic (arith.py)
    *rows_for("add", *BROADCASTING),
    *rows_for("sub", *BROADCASTING),
    *rows_for("neg", (S,), (V,), (R,)),
    *rows_for("mul", *BROADCASTING),
    *rows_for("div", *BROADCASTING, domains=(None, "away0")),
    *rows_for("pow", (V, S), (R, R), (S, V), (M, S), domains=("positive", None)),
    *rows_for("matmul", ((4, 3), (3, 5)), (R, V3), (V, R), (V, V), (M, M)),
    # structure (structure.py)
    *rows_for("transpose", (R,), (V,)),
    *rows_for("sum", (V,), (R,), (S,)),
    Row("sum", (R,), {"axis": 0}, tag="axis0"),
    Row("sum", (R,), {"axis": 1}, tag="axis1"),
    Row("sum", (R,), {"axis": -1}, tag="axis-1"),
    Row("broadcast", (S,), {"shape": R, "axis": None}, tag="scalar"),
    Row("broadcast", (V,), {"shape": R, "axis": 1}, tag="axis1"),
    Row("broadcast", (V3,), {"shape": R, "axis": 0}, tag="axis0"),
    Row("index", (R,), {"spec": (("slice", 1, 3),)}, tag="rows"),
    Row("index", (R,), {"spec": (("at", 2),)}, tag="row"),
    Row("index", (R,), {"spec": (("slice", 0, 4), ("at", 1))}, tag="col"),
    Row("index", (R,), {"spec": (("at", 3), ("at", 2))}, tag="entry"),
    Row("index", (V,), {"spec": (("slice", 1, 4),)}, tag="vec"),
    Row("index_pad", (W,), {"spec": (("slice", 1, 3),), "shape": R}, tag="rows"),
    Row("index_pad", (V,), {"spec": (("slice", 0, 4), ("at", 1)), "shape": R}, tag="col"),
    Row("index_pad", (S,), {"spec": (("at", 3), ("at", 0)), "shape": R}, tag="entry"),
    Row("astype", (R,), {"dtype": "f64"}),      # f64 → f64 here; the f32 case: test_validation
    Row("zeros", (), {"shape": R, "dtype": "f64"}),
    Row("dimval", (), {"d": 5}, ref=lambda: 5.0),
    # construction (construction.py)
    Row("eye", (), {"n": 4, "dtype": "f64"}, ref=lambda: jnp.eye(4)),
    Row("ones", (), {"shape": R, "dtype": "f64"}, ref=lambda: jnp.ones(R)),
    *rows_for("diag", (V,), (M,), ref=jnp.diag),
    *rows_for("hcat", (R, M), (V, V3), (S, V, S), (R,), ref=lambda *xs: jnp.hstack(xs)),
    *rows_for("vcat", (R, W), (V3, V3), (W, V3), (S, S), (V,), ref=lambda *xs: jnp.vstack(xs)),
    *rows_for("outer", (V, V3), ref=lambda u, v: u[:, None] * v[None, :]),
    # reductions (reductions.py)
    *rows_for("mean", (V,), (R,), (S,), ref=lambda x: jnp.sum(x) / x.size),
    Row("mean", (R,), {"axis": 0}, ref=lambda x: jnp.sum(x, 0) / 4, tag="axis0"),
    Row("mean", (R,), {"axis": 1}, ref=lambda x: jnp.sum(x, 1) / 3, tag="axis1"),
    *rows_for("trace", (M,), ref=lambda a: jnp.sum(jnp.diag(a))),
    *rows_for("dot", (V, V), ref=lambda u, v: jnp.sum(u * v)),
    *rows_for("norm", (V,), (R,), ref=lambda x: jnp.sqrt(jnp.sum(x * x))),
    # elementwise (elementwise.py)
    *rows_for("exp", *UNARY_SHAPES), *rows_for("sin", *UNARY_SHAPES),
    *rows_for("cos", *UNARY_SHAPES), *rows_for("tanh", *UNARY_SHAPES),
    *rows_for("log", *UNARY_SHAPES, domains=("positive",)),
    *rows_for("sqrt", *UNARY_SHAPES, domains=("positive",)),
    *rows_for("abs", *UNARY_SHAPES, domains=("away0",)),
    *rows_for("sigmoid", *UNARY_SHAPES, ref=lambda x: 1 / (1 + jnp.exp(-x))),
    *rows_for("softplus", *UNARY_SHAPES, ref=lambda x: jnp.log1p(jnp.exp(x))),
    *rows_for("relu", *UNARY_SHAPES, domains=("away0",), ref=lambda x: jnp.where(x > 0, x, 0.0)),
    *rows_for("celu", *UNARY_SHAPES, (S,), domains=("away0",),
              ref=lambda x: jnp.where(x > 0, x, jnp.expm1(x))),
    *rows_for("sign", *UNARY_SHAPES, domains=("away0",)),
    *rows_for("step", *UNARY_SHAPES, domains=("away0",), ref=lambda x: jnp.where(x > 0, 1.0, 0.0)),
    *rows_for("signum", *UNARY_SHAPES, domains=("away0",), ref=lambda x: jnp.where(x >= 0, 1.0, -1.0)),
    *rows_for("maximum", (V, V), (S, V), (R, S), (M, M), ref=lambda a, b: jnp.where(a > b, a, b)),
    *rows_for("minimum", (V, V), (S, V), (R, S), (M, M), ref=lambda a, b: jnp.where(a < b, a, b)),
    # dense linear algebra (linalg.py)
    *[Row(m, (s,), {"k": k}, tag=f"{_fmt(s)}-k{k}") for m in ("tril", "triu")
      for s in (R, M) for k in (0, -1, 1)],
    *rows_for("stop_gradient", (M,), (S,), fd_tol=None),
    *rows_for("inv", (M,), domains=("wellcond",)),
    *[Row("solve", (M, b), {"assume": "gen"}, ("wellcond",), ref=jnp.linalg.solve, tag=f"gen-{_fmt(b)}")
      for b in (V, R)],
    *[Row("solve", (M, b), {"assume": a}, (d,), sym=(0,), ref=jnp.linalg.solve, tag=f"{a}-{_fmt(b)}")
      for a, d in (("pos", "spd"), ("sym", "sym")) for b in (V, R)],
    Row("solve", (M, R), {}, ("wellcond",), ref=jnp.linalg.solve, tag="default"),
    *[Row("solve_triangular", (M, b), {"lower": lo, "unit": u}, ("wellcond",),
          ref=lambda T, B, lo=lo, u=u: jnp.linalg.solve(_tri_ref(T, lo, u), B),
          tag=f"{'lower' if lo else 'upper'}{'-unit' if u else ''}-{_fmt(b)}")
      for lo in (True, False) for u in (False, True) for b in (V, R)],
    *rows_for("det", (M,), domains=("wellcond",)),
    Row("det", (M,), domains=("negdet",), tag="negative"),
    *rows_for("logdet", (M,), domains=("wellcond",),
              ref=lambda a: jnp.log(jnp.abs(jnp.linalg.det(a)))),
    Row("logdet", (M,), domains=("negdet",), ref=lambda a: jnp.log(jnp.abs(jnp.linalg.det(a))),
        tag="negative"),
    *rows_for("cholesky", (M,), domains=("spd",), sym=(0,)),
    # factorizations (linalg.py, internal): values and the transposes of the linear ones
    *rows_for("lu_factor", (M,), domains=("wellcond",), ref=_lu_ref),
    *[Row("lu_solve", (("lu", 4), b), {"trans": t}, tag=f"{'T' if t else 'N'}-{_fmt(b)}",
          ref=lambda A, B, t=t: jnp.linalg.solve(A.T if t else A, B))
      for t in (False, True) for b in (V, R)],
    Row("lu_factor", (M,), domains=("pivoting",), ref=_lu_ref, tag="pivoting"),
    *[Row("lu_solve", (("lu", 4), b), {"trans": t}, domains=("pivoting", None), tag=f"pivoting-{'T' if t else 'N'}-{_fmt(b)}",
          ref=lambda A, B, t=t: jnp.linalg.solve(A.T if t else A, B))
      for t in (False, True) for b in (V, R)],
    Row("lu_det", (("lu", 4),), domains=("pivoting",), ref=jnp.linalg.det, tag="pivoting"),
    Row("lu_inv", (("lu", 4),), ref=jnp.linalg.inv),
    Row("lu_logabsdet", (("lu", 4),), ref=lambda a: jnp.log(jnp.abs(jnp.linalg.det(a)))),
    Row("lu_det", (("lu", 4),), ref=jnp.linalg.det),
    Row("lu_det", (("lu", 4),), domains=("negdet",), ref=jnp.linalg.det, tag="negative"),
    Row("chol_factor", (M,), domains=("spd",), ref=jnp.linalg.cholesky),
    Row("chol_lower", (("chol", 4),), ref=jnp.linalg.cholesky),
    *rows_for("chol_solve", (("chol", 4), V), (("chol", 4), R), ref=jnp.linalg.solve),
    # inv, logdet, det of a matrix the program declares SPD, from its shared Cholesky
    Row("chol_inv", (("chol", 4),), ref=jnp.linalg.inv),
    Row("chol_logabsdet", (("chol", 4),), ref=lambda a: jnp.linalg.slogdet(a)[1]),
    Row("chol_det", (("chol", 4),), ref=jnp.linalg.det),
]


def _extra_rows():
    """Rows of the primitive families in ``tests/rows_*.py``."""
    import importlib
    import pathlib
    out = []
    for path in sorted(pathlib.Path(__file__).parent.glob("rows_*.py")):
        out += importlib.import_module(path.stem).ROWS
    return out


ROWS += _extra_rows()


def _tri_ref(T, lower, unit):
    t = jnp.tril(T) if lower else jnp.triu(T)
    return t - jnp.diag(jnp.diag(T)) + jnp.eye(T.shape[0]) if unit else t


# ---- sampling -----------------------------------------------------------------------------
def rng_for(row, salt=""):
    return np.random.default_rng(zlib.crc32((row.id + salt).encode()))


def sample(rng, shape, domain):
    """One input value: (matrix given to the reference, value given to lagrad)."""
    if shape and isinstance(shape[0], str):                 # a factorization of an n×n matrix
        kind, n = shape
        fdom, factorize = FACTORS[kind]
        a = sample(rng, (n, n), fdom if domain == "randn" else domain)[0]
        return a, factorize(a)
    x = jnp.asarray(DOMAINS[domain](rng, shape))
    return x, x


def in_type(shape):
    if shape and isinstance(shape[0], str):
        return FactorType(shape[0], TensorType("f64", (shape[1], shape[1])))
    return TensorType("f64", shape)


def inputs(row):
    rng = rng_for(row)
    pairs = [sample(rng, s, row.domain(i)) for i, s in enumerate(row.shapes)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def diff_positions(row):
    return [i for i, s in enumerate(row.shapes) if not (s and isinstance(s[0], str))]


def direction(rng, shape, symmetric=False):
    d = rng.standard_normal(shape)
    return jnp.asarray((d + d.T) / 2 if symmetric else d)


def directions(row, salt="dir"):
    rng = rng_for(row, salt)
    return [direction(rng, row.shapes[i], i in row.sym) for i in diff_positions(row)]


# ---- programs -----------------------------------------------------------------------------
def program(row):
    return primitive_program(row.prim, [in_type(s) for s in row.shapes], row.params)


def ref_fn(row):
    return row.ref or (lambda *xs: REGISTRY[row.prim].impl(*xs, **row.params))


def as_tuple(y):
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def vdot(a, b):
    return float(jnp.vdot(jnp.asarray(a), jnp.asarray(b)))


def nrm(xs):
    return float(np.sqrt(sum(vdot(x, x) for x in xs)))


def rel_err(got, want):
    diff = nrm([g - w for g, w in zip(got, want)])
    return diff / max(nrm(want), 1e-300) if diff else 0.0


def transpose_rule_program(row, positions):
    """The program ct ↦ the transpose rule of row.prim in the inputs `positions`, the other
    inputs held at their values."""
    p = REGISTRY[row.prim]
    types = [in_type(s) for s in row.shapes]
    namer = Namer()
    b = Builder(namer)
    consts = [namer.var(f"x{i}", t) for i, t in enumerate(types) if i not in positions]
    it = iter(consts)
    ins = [Undef(t) if i in positions else b.wrap(next(it)) for i, t in enumerate(types)]
    out_types = b.out_types(p, types, dict(row.params))
    cts = [namer.var(f"ct{k}", t) for k, t in enumerate(out_types)]
    res = p.transpose(b, [b.wrap(c) for c in cts], ins, [Undef(t) for t in out_types], dict(row.params))
    outs = [b.atom(b.zero(types[i]) if res[i] is None else res[i]) for i in positions]
    return Program(row.prim + "_transpose", consts + cts, b.eqns, outs, kind="adjoint")


# ---- which checks apply -------------------------------------------------------------------
def differentiable(row):
    p = REGISTRY[row.prim]
    return bool(diff_positions(row)) and (p.frechet is not None or p.zero_tangent)


def linear_groups(row):
    p = REGISTRY[row.prim]
    if p.transpose is None:
        return []
    lin = sorted(p.linear_positions(len(row.shapes)))
    return [tuple(lin)] if p.joint else [(i,) for i in lin]


DIFF_ROWS = [r for r in ROWS if differentiable(r)]
FD_ROWS = [r for r in DIFF_ROWS if r.fd_tol is not None]
LINEAR_CASES = [(r, g) for r in ROWS for g in linear_groups(r)]


def ids(rows):
    return [r.id for r in rows]


# ---- the checks ---------------------------------------------------------------------------
@pytest.mark.parametrize("row", ROWS, ids=ids(ROWS))
def test_value(row):
    raw, vals = inputs(row)
    got = to_jax(program(row))(*vals)
    want = as_tuple(ref_fn(row)(*raw))
    assert len(jax.tree.leaves(got)) == len(jax.tree.leaves(want))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert np.shape(g) == np.shape(w)
        np.testing.assert_allclose(g, w, rtol=VALUE_TOL, atol=VALUE_TOL)


@pytest.mark.parametrize("row", FD_ROWS, ids=ids(FD_ROWS))
def test_frechet_vs_central_differences(row):
    raw, vals = inputs(row)
    pos, dirs = diff_positions(row), directions(row)
    f = to_jax(program(row))

    def shifted(t):
        xs = list(vals)
        for i, d in zip(pos, dirs):
            xs[i] = xs[i] + t * d
        return f(*xs)

    out = to_jax(linearize(program(row)))(*vals, *dirs)
    tangents = out[len(out) // 2:]
    fd = [(a - b) / (2 * H) for a, b in zip(shifted(H), shifted(-H))]
    assert rel_err(tangents, fd) <= row.fd_tol


@pytest.mark.parametrize("row", DIFF_ROWS, ids=ids(DIFF_ROWS))
def test_adjoint_dot_product(row):
    raw, vals = inputs(row)
    dirs = directions(row)
    prog = program(row)
    out = to_jax(linearize(prog))(*vals, *dirs)
    tangents = out[len(out) // 2:]
    rng = rng_for(row, "ybar")
    ybars = [direction(rng, np.shape(t)) for t in tangents]
    xbars = to_jax(vjp_program(prog))(*vals, *ybars)
    lhs = sum(vdot(y, t) for y, t in zip(ybars, tangents))
    rhs = sum(vdot(x, d) for x, d in zip(xbars, dirs))
    scale = nrm(ybars) * nrm(tangents) + nrm(xbars) * nrm(dirs)
    assert abs(lhs - rhs) <= DOT_TOL * scale


@pytest.mark.parametrize("row", DIFF_ROWS, ids=ids(DIFF_ROWS))
def test_grad_matches_jax(row):
    raw, vals = inputs(row)
    pos = diff_positions(row)
    prog = program(row)
    rng = rng_for(row, "weights")
    weights = [direction(rng, np.shape(y)) for y in to_jax(prog)(*vals)]
    ref = ref_fn(row)

    def scalar(*diff_args):
        xs = list(raw)
        for i, a in zip(pos, diff_args):
            xs[i] = a
        return sum(jnp.sum(w * y) for w, y in zip(weights, as_tuple(ref(*xs))))

    want = jax.grad(scalar, argnums=tuple(range(len(pos))))(*[raw[i] for i in pos])
    got = to_jax(vjp_program(prog))(*vals, *weights)
    sym = lambda g, i: (g + g.T) / 2 if i in row.sym else g  # noqa: E731 (representatives differ)
    for i, g, w in zip(pos, got, want):
        assert rel_err([sym(g, i)], [sym(w, i)]) <= GRAD_TOL, f"input {i}"


@pytest.mark.parametrize("row,group", LINEAR_CASES, ids=[f"{r.id}-in{'_'.join(map(str, g))}"
                                                          for r, g in LINEAR_CASES])
def test_transpose_rule_dot_product(row, group):
    raw, vals = inputs(row)
    rng = rng_for(row, "lin")
    dxs = {i: direction(rng, row.shapes[i]) for i in group}
    args = [dxs.get(i, v) for i, v in enumerate(vals)]
    ys = as_tuple(REGISTRY[row.prim].impl(*args, **row.params))
    ybars = [direction(rng, np.shape(y)) for y in ys]
    consts = [v for i, v in enumerate(vals) if i not in group]
    xbars = to_jax(transpose_rule_program(row, group))(*consts, *ybars)
    lhs = sum(vdot(y, t) for y, t in zip(ybars, ys))
    rhs = sum(vdot(x, dxs[i]) for x, i in zip(xbars, group))
    for x, i in zip(xbars, group):
        assert np.shape(x) == np.shape(dxs[i])
    scale = nrm(ybars) * nrm(ys) + nrm(xbars) * nrm(list(dxs.values()))
    assert abs(lhs - rhs) <= DOT_TOL * scale


SHAPE_ERRORS = [
    ("solve", (M, V), {"assume": "lu"}, 'assume must be "gen", "pos" or "sym"'),
    ("solve", (R, V3), {}, "square"),
    ("hcat", (R, W), {}, "different row counts"),
    ("hcat", (R, V), {}, "hcat joins matrices"),
    ("vcat", (R, V), {}, "different column counts"),
    ("diag", (R,), {}, "vector or a square matrix"),
    ("dot", (V, V3), {}, "different lengths"),
    ("outer", (M, V), {}, "two vectors"),
    ("trace", (R,), {}, "square"),
    ("cholesky", (R,), {}, "square"),
    ("tril", (V,), {}, "matrix"),
    ("norm", (S,), {}, "vector or a matrix"),
    ("maximum", (V, V3), {}, "same shape"),
    ("lu_solve", (M, V), {}, "`lu` factorization"),
    ("chol_solve", (("lu", 4), V), {}, "`chol` factorization"),
    ("lyap_factor_solve", (M, M, M), {"trans": (True,)}, "2 right-hand sides but trans has 1"),
    ("dlyap_factor_solve", (M,), {}, "at least one right-hand side"),
]


@pytest.mark.parametrize("prim,shapes,params,words", SHAPE_ERRORS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(SHAPE_ERRORS)])
def test_shape_rule_rejects(prim, shapes, params, words):
    with pytest.raises(ShapeError, match=words.replace("(", r"\(")):
        primitive_program(prim, [in_type(s) for s in shapes], params)


def test_every_primitive_has_a_row():
    covered = {r.prim for r in ROWS}
    missing = sorted({n for n, p in REGISTRY.items() if not p.user} - covered)
    assert not missing, f"primitives without a row in the rule table: {missing}"


def test_every_linear_primitive_is_transpose_tested():
    tested = {r.prim for r, _ in LINEAR_CASES}
    missing = sorted(n for n, p in REGISTRY.items() if p.linear_in and not p.user and n not in tested)
    assert not missing, f"linear primitives whose transpose rule no row exercises: {missing}"


def test_every_differentiable_primitive_is_checked():
    checked = {r.prim for r in DIFF_ROWS}
    missing = sorted(n for n, p in REGISTRY.items()
                     if (p.frechet is not None and not p.zero_tangent and not p.user) and n not in checked
                     and n not in ("zeros", "eye", "ones"))
    assert not missing, f"primitives with a Fréchet rule but no differentiated row: {missing}"
