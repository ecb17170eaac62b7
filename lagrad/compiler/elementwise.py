"""User `elementwise` functions: the body becomes a sympy expression; its JAX implementation
comes from `lambdify` and its derivative from `sympy.diff`, registered as the primitive
``d_NAME`` so printed programs show it by name (``dy = d_softish(x) * dx``).

The expression is built unevaluated, so it computes what the body says, as the same body
written in a model would: sympy would otherwise rewrite ``sqrt(x) ** 2`` to ``x`` and
``exp(log(x))`` to ``x``, finite where the body is NaN. Arithmetic on constants is done in
float64 with IEEE results (``1 / 0`` is inf, ``sqrt(-1.0)`` NaN), as in a model. ``softplus`` and
``sigmoid`` are functions of their own that lower to JAX's stable ones; the derivatives of
``abs``, ``relu``, ``maximum`` and ``minimum`` are those of the standard library and of JAX at
the kink (|x|' = 1 and relu' = 0 at 0, ties split ½/½; the second derivative 0: no Dirac delta). sympy.diff simplifies, so a derivative is made NaN
wherever the body is NaN (outside its domain), as the function is."""
from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import sympy

from ..dsl import ast
from ..errors import LaNameError, LaTypeError
from .primitive import REGISTRY, Primitive, register, suggest

X = sympy.Symbol("x", real=True)


class Sigmoid(sympy.Function):
    """σ(x) = 1 / (1 + e⁻ˣ), lowered to jax.nn.sigmoid; σ' = σ (1 − σ)."""
    def fdiff(self, argindex=1):
        s = Sigmoid(self.args[0])
        return s * (1 - s)


class Softplus(sympy.Function):
    """log(1 + eˣ), lowered to jax.nn.softplus (no overflow for large x); its derivative is σ."""
    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])


class Step(sympy.Function):
    """[x > 0] (0 at 0): relu's derivative, with a zero derivative (no Dirac delta)."""
    def fdiff(self, argindex=1):
        return sympy.Integer(0)


class Relu(sympy.Function):
    """max(x, 0), lowered to jax.nn.relu; relu'(0) = 0 as in JAX, where maximum(x, 0.0)'s tie
    splits ½/½ (sympy's Max, whose Heaviside is ½ at 0 here)."""
    def fdiff(self, argindex=1):
        return Step(self.args[0])


_FUNCS = {
    "exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "sin": sympy.sin, "cos": sympy.cos,
    "tanh": sympy.tanh, "abs": sympy.Abs, "sigmoid": Sigmoid, "softplus": Softplus,
    "relu": Relu,
    "celu": lambda x: sympy.Piecewise((x, x > 0), (sympy.exp(x) - 1, True)),
    "maximum": lambda a, b: sympy.Max(a, b), "minimum": lambda a, b: sympy.Min(a, b),
}

# the same functions on constants, in float64 (IEEE: log(0) = −inf, sqrt(−1) = nan)
_NUMERIC = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
    "abs": np.abs, "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "softplus": lambda x: np.logaddexp(0, x),
    "relu": lambda x: np.maximum(x, 0), "celu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "maximum": np.maximum, "minimum": np.minimum,
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "**": np.power,
}

# lambdify's names for what the JAX printer does not know
_MODULES = [{"Sigmoid": jax.nn.sigmoid, "Softplus": jax.nn.softplus, "Relu": jax.nn.relu,
             "Step": lambda x: jnp.heaviside(x, jnp.zeros_like(x)),              # relu'(0) = 0
             "sign": lambda x: jnp.where(x >= 0, 1.0, -1.0),     # d|x|/dx: +1 at 0, as JAX's abs
             # Max/Min's derivative: ties split ½/½, as jnp.maximum's and the stdlib's
             "Heaviside": lambda x, *h: jnp.heaviside(x, jnp.full_like(x, 0.5)),
             "DiracDelta": lambda x, *k: jnp.zeros_like(x)}, "jax"]


def _constant(f, args):
    """f of sympy numbers, computed in float64, as a sympy number (inf/nan included)."""
    with np.errstate(all="ignore"):
        v = float(f(*(np.float64(float(a)) for a in args)))
    return sympy.nan if v != v else sympy.oo if v == np.inf else -sympy.oo if v == -np.inf else sympy.Float(v)


def _is_const(e) -> bool:
    return isinstance(e, sympy.Number) or e in (sympy.oo, -sympy.oo, sympy.nan)


def _same_shape(types, params):
    from ..stdlib.shapes import same
    return same(types, params)


def to_sympy(node, param: str, ctx, source):
    def err(msg, n):
        return LaTypeError(msg, span=n.span, source=source)

    def go(n):
        if isinstance(n, ast.Num):
            return sympy.Integer(n.value) if isinstance(n.value, int) else _constant(lambda v: v, [n.value])
        if isinstance(n, ast.Name):
            if n.id == param:
                return X
            raise LaNameError(f"unknown name `{n.id}` in an elementwise function (only `{param}` "
                              f"is in scope)", span=n.span, source=source)
        if isinstance(n, ast.Neg):
            odd = True
            while isinstance(n.operand, ast.Neg):      # − − x is x exactly: no recursion per sign
                n, odd = n.operand, not odd
            v = go(n.operand)
            if not odd:
                return v
            if _is_const(v):
                return _constant(np.negative, [v])
            with sympy.evaluate(False):
                return -v
        if isinstance(n, ast.BinOp) and n.op in _CHAINS and isinstance(n.left, ast.BinOp) \
                and n.left.op in _CHAINS[n.op]:
            return chain(n)
        if isinstance(n, ast.BinOp):
            if n.op == "@":
                raise err("`@` is not elementwise", n)
            l, r = go(n.left), go(n.right)
            if _is_const(l) and _is_const(r):
                return _constant(_NUMERIC[n.op], [l, r])
            if n.op == "/" and _is_const(r):          # x / 0: times inf, not a Python 0 ** -1
                with sympy.evaluate(False):
                    return l * _constant(np.reciprocal, [r])
            with sympy.evaluate(False):
                return {"+": lambda: l + r, "-": lambda: l - r, "*": lambda: l * r, "/": lambda: l / r,
                        "**": lambda: l ** r}[n.op]()
        if isinstance(n, ast.Call):
            args = [go(a) for a in n.args]
            if n.kwargs:
                raise err("keyword arguments are not allowed in an elementwise function", n)
            if n.func in _FUNCS:
                if len(args) != (2 if n.func in ("maximum", "minimum") else 1):
                    raise err(f"`{n.func}` takes {2 if n.func in ('maximum', 'minimum') else 1} "
                              f"argument(s), got {len(args)}", n)
                if all(_is_const(a) for a in args):
                    return _constant(_NUMERIC[n.func], args)
                with sympy.evaluate(False):
                    return _FUNCS[n.func](*args)
            other = ctx.elementwise_def(n.func)
            if other is not None:
                if len(args) != 1:
                    raise err(f"elementwise `{n.func}` takes 1 argument, got {len(args)}", n)
                with sympy.evaluate(False):
                    return other.sympy_expr.subs(X, args[0])
            raise LaNameError(f"unknown elementwise function `{n.func}`" +
                              suggest(n.func, list(_FUNCS) + list(getattr(ctx, "elementwise", {}))),
                              span=n.func_span or n.span, source=source)
        raise err(f"{type(n).__name__} is not allowed in an elementwise function", n)

    def chain(n):
        """A left-nested sum a + b − c + … (or product a · b · …) as one flat, unevaluated Add
        (Mul): walked without recursion, and sympy differentiates it without one level per term."""
        ops = _CHAINS[n.op]
        rights = []
        while isinstance(n, ast.BinOp) and n.op in ops:
            rights.append((n.op, n.right))
            n = n.left
        acc, terms = go(n), None
        for op, r in reversed(rights):
            v = go(r)
            if terms is None and _is_const(acc) and _is_const(v):
                acc = _constant(_NUMERIC[op], [acc, v])           # constants fold left to right
                continue
            if terms is None:
                terms = [acc]
            with sympy.evaluate(False):
                terms.append(-v if op == "-" else v)
        if terms is None:
            return acc
        with sympy.evaluate(False):
            return (sympy.Add if "+" in ops else sympy.Mul)(*terms)

    return go(node)


_CHAINS = {"+": ("+", "-"), "-": ("+", "-"), "*": ("*",)}


def _lambdify(expr, body=None):
    """JAX function of `expr`; with `body` (a derivative's function), NaN wherever the body is
    NaN: sympy.diff simplifies (d/dx sqrt(x)² = 1), so the derivative would be finite outside
    the body's domain (x < 0), where the function is NaN and JAX's derivative is NaN too."""
    f = sympy.lambdify(X, expr, modules=_MODULES)
    if body is None:
        return lambda x: f(x) + jnp.zeros_like(x)
    g = sympy.lambdify(X, body, modules=_MODULES)
    return lambda x: jnp.where(jnp.isnan(g(x) + jnp.zeros_like(x)), jnp.nan, f(x) + jnp.zeros_like(x))


def _key(name: str, expr, body=None) -> str:
    """Registry key of an elementwise function: its name and a digest of its expression (and
    of the body it is a derivative of), so two modules defining the same name differently
    never see each other's definition."""
    text = sympy.srepr(expr) + ("" if body is None else "|" + sympy.srepr(body))
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    return f"{name}__ew{digest}"


def make_elementwise(name: str, expr: sympy.Expr, math: str = "", body=None) -> Primitive:
    """Register the elementwise primitive computing `expr` (in the symbol X), printed `name`;
    `body`: the function `expr` is a derivative of (its values are NaN where the body's are)."""
    key = _key(name, expr, body)
    if key in REGISTRY:
        return REGISTRY[key]
    dname = "d_" + name
    base = expr if body is None else body

    def frechet(b, x, dx, y, params):
        d = make_elementwise(dname, sympy.diff(expr, X), f"d/dx of {name}", body=base)
        return b.emit(d.name, x[0]) * dx[0]

    linear = body is None and _is_linear(expr)
    p = Primitive(key, _lambdify(expr, body), _same_shape, frechet=frechet, user=True, internal=True,
                  display=name, math=math or f"y = {sympy.sstr(expr)}", min_args=1, max_args=1,
                  linear_in=(0,) if linear else (),
                  # y = c x: its own transpose (x̄ = c ȳ), so it may sit in an `op` body
                  transpose=(lambda b, ct, x, y, p: [b.emit(key, ct[0])]) if linear else None)
    p.sympy_expr, p.sympy_body = expr, body
    return register(p)


def _is_linear(expr) -> bool:
    """Whether the body is c·x: built from x and numbers by + − × ÷ and non-negative integer
    powers only (no function: sqrt(x)² is NaN for x < 0), with a zero second derivative and 0 at 0."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Function) or node in (sympy.nan, sympy.oo, -sympy.oo, sympy.zoo):
            return False
        if isinstance(node, sympy.Pow) and not (node.exp.is_Integer and node.exp >= 0):
            return False
    return sympy.diff(expr, X, 2) == 0 and sympy.simplify(expr.subs(X, 0)) == 0

def source_line(p) -> str:
    """The line of generated source that registers elementwise primitive `p` where the source
    runs (another process): ``P._lagrad_elementwise(key, name, srepr(expr), srepr(body))``."""
    body = "" if p.sympy_body is None else sympy.srepr(p.sympy_body)
    return (f"P._lagrad_elementwise({p.name!r}, {p.label!r}, {sympy.srepr(p.sympy_expr)!r}, {body!r})"
            f"  # {p.math}")


def from_source(key, name, expr, body=""):
    """The primitive `source_line` wrote, registered under `key` (made again from the exact,
    unevaluated expressions)."""
    if key in REGISTRY:
        return REGISTRY[key]
    from sympy.functions.elementary.piecewise import ExprCondPair
    ns = {**vars(sympy), "Sigmoid": Sigmoid, "Softplus": Softplus, "Relu": Relu, "Step": Step,
          "ExprCondPair": ExprCondPair,
          "true": sympy.true, "false": sympy.false}
    with sympy.evaluate(False):
        e = eval(expr, ns)                                  # noqa: S307 (sympy's own srepr text)
        b = eval(body, ns) if body else None                # noqa: S307
    p = make_elementwise(name, e, body=b)
    REGISTRY.setdefault(key, p)
    return p


def define(defn: ast.ElementwiseDef, ctx, source) -> Primitive:
    existing = REGISTRY.get(defn.name)
    if existing is not None and not existing.internal:
        raise LaNameError(f"`{defn.name}` is a standard-library function; choose another name",
                          span=defn.span, source=source)
    expr = to_sympy(defn.expr, defn.param, ctx, source)
    return make_elementwise(defn.name, expr, f"{defn.name}({defn.param}) = {sympy.sstr(expr.subs(X, sympy.Symbol(defn.param)))}")
