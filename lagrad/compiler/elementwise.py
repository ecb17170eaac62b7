"""User `elementwise` functions: the body becomes a sympy expression; its JAX implementation
comes from `lambdify` and its derivative from `sympy.diff`, registered as the primitive
``d_NAME`` so printed programs show it by name (``dy = d_softish(x) * dx``)."""
from __future__ import annotations

import hashlib

import jax.numpy as jnp
import sympy

from ..dsl import ast
from ..errors import LaNameError, LaTypeError
from .primitive import REGISTRY, Primitive, register, suggest

X = sympy.Symbol("x", real=True)

_FUNCS = {
    "exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "sin": sympy.sin, "cos": sympy.cos,
    "tanh": sympy.tanh, "abs": sympy.Abs,
    "sigmoid": lambda x: 1 / (1 + sympy.exp(-x)),
    "softplus": lambda x: sympy.log(1 + sympy.exp(x)),
    "relu": lambda x: sympy.Max(x, 0),
    "celu": lambda x: sympy.Piecewise((x, x > 0), (sympy.exp(x) - 1, True)),
    "maximum": lambda a, b: sympy.Max(a, b), "minimum": lambda a, b: sympy.Min(a, b),
}


def _same_shape(types, params):
    from ..stdlib.shapes import same
    return same(types, params)


def to_sympy(node, param: str, ctx, source):
    def err(msg, n):
        return LaTypeError(msg, span=n.span, source=source)

    def go(n):
        if isinstance(n, ast.Num):
            return sympy.Integer(n.value) if isinstance(n.value, int) else sympy.Float(n.value)
        if isinstance(n, ast.Name):
            if n.id == param:
                return X
            raise LaNameError(f"unknown name `{n.id}` in an elementwise function (only `{param}` "
                              f"is in scope)", span=n.span, source=source)
        if isinstance(n, ast.Neg):
            return -go(n.operand)
        if isinstance(n, ast.BinOp):
            if n.op == "@":
                raise err("`@` is not elementwise", n)
            l, r = go(n.left), go(n.right)
            return {"+": l + r, "-": l - r, "*": l * r, "/": l / r, "**": l ** r}[n.op]
        if isinstance(n, ast.Call):
            args = [go(a) for a in n.args]
            if n.kwargs:
                raise err("keyword arguments are not allowed in an elementwise function", n)
            if n.func in _FUNCS:
                return _FUNCS[n.func](*args)
            other = ctx.elementwise.get(n.func) if ctx is not None else None
            if other is not None and len(args) == 1:
                return other.sympy_expr.subs(X, args[0])
            raise LaNameError(f"unknown elementwise function `{n.func}`" +
                              suggest(n.func, list(_FUNCS) + list(getattr(ctx, "elementwise", {}))),
                              span=n.func_span or n.span, source=source)
        raise err(f"{type(n).__name__} is not allowed in an elementwise function", n)

    return go(node)


def _lambdify(expr):
    f = sympy.lambdify(X, expr, modules="jax")
    return lambda x: f(x) + jnp.zeros_like(x)


def _key(name: str, expr) -> str:
    """Registry key of an elementwise function: its name and a digest of its expression, so
    two modules defining the same name differently never see each other's definition."""
    digest = hashlib.sha1(sympy.srepr(expr).encode()).hexdigest()[:10]
    return f"{name}__ew{digest}"


def make_elementwise(name: str, expr: sympy.Expr, math: str = "") -> Primitive:
    """Register the elementwise primitive computing `expr` (in the symbol X), printed `name`."""
    key = _key(name, expr)
    if key in REGISTRY:
        return REGISTRY[key]
    dname = "d_" + name

    def frechet(b, x, dx, y, params):
        d = make_elementwise(dname, sympy.diff(expr, X), f"d/dx of {name}")
        return b.emit(d.name, x[0]) * dx[0]

    p = Primitive(key, _lambdify(expr), _same_shape, frechet=frechet, user=True, internal=True,
                  display=name, math=math or f"y = {sympy.sstr(expr)}", min_args=1, max_args=1)
    p.sympy_expr = expr
    return register(p)


def define(defn: ast.ElementwiseDef, ctx, source) -> Primitive:
    existing = REGISTRY.get(defn.name)
    if existing is not None and not existing.internal:
        raise LaNameError(f"`{defn.name}` is a standard-library function; choose another name",
                          span=defn.span, source=source)
    expr = to_sympy(defn.expr, defn.param, ctx, source)
    return make_elementwise(defn.name, expr, f"{defn.name}({defn.param}) = {sympy.sstr(expr.subs(X, sympy.Symbol(defn.param)))}")
