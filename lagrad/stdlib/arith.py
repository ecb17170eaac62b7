"""Arithmetic: + - * / @ ** and unary minus. All elementwise ones broadcast scalars."""
from __future__ import annotations

import jax.numpy as jnp

from ..compiler.builder import Undef, Val, is_zero
from ..compiler.ir import Lit
from ..compiler.primitive import Primitive, register
from . import shapes


def unbroadcast(b, ct, t):
    """The cotangent of an input of type t that was broadcast to ct's shape (sum it back)."""
    if is_zero(ct):
        return None
    if not t.shape and ct.shape:
        return b.sum(ct)
    return ct


def _infix(op):
    return lambda a, p: f"({a[0]} {op} {a[1]})"


def _add_zero_simplify(sign):
    def simplify(b, inputs, zpos, params):
        (i,) = [k for k in range(2) if k not in zpos]
        other = inputs[i]
        out_t = shapes.elementwise([v.type for v in inputs], params)
        if other.shape != out_t.shape:       # a scalar tangent broadcast against a zero array
            other = b.broadcast(other, shape=out_t.shape, axis=None)
        return -other if (sign < 0 and i == 1) else other
    return simplify


# add: d(a + b) = da + db; transpose: (ȳ, ȳ) summed back over broadcasts
register(Primitive(
    "add", jnp.add, shapes.elementwise, linear_in=(0, 1), joint=True, infix="+", min_args=2, max_args=2,
    math="y = a + b", codegen=_infix("+"), zero_simplify=_add_zero_simplify(+1),
    frechet=lambda b, x, dx, y, p: dx[0] + dx[1],
    transpose=lambda b, ct, x, y, p: [unbroadcast(b, ct[0], x[0].type) if isinstance(x[0], Undef) else None,
                                      unbroadcast(b, ct[0], x[1].type) if isinstance(x[1], Undef) else None]))

# sub: d(a - b) = da - db; transpose: (ȳ, -ȳ)
register(Primitive(
    "sub", jnp.subtract, shapes.elementwise, linear_in=(0, 1), joint=True, infix="-", min_args=2, max_args=2,
    math="y = a - b", codegen=_infix("-"), zero_simplify=_add_zero_simplify(-1),
    frechet=lambda b, x, dx, y, p: dx[0] - dx[1],
    transpose=lambda b, ct, x, y, p: [unbroadcast(b, ct[0], x[0].type) if isinstance(x[0], Undef) else None,
                                      unbroadcast(b, -ct[0], x[1].type) if isinstance(x[1], Undef) else None]))

# neg: d(-a) = -da; transpose: -ȳ
register(Primitive(
    "neg", jnp.negative, shapes.same, linear_in=(0,), infix="-", math="y = -a", min_args=1, max_args=1,
    codegen=lambda a, p: f"(-{a[0]})",
    frechet=lambda b, x, dx, y, p: -dx[0],
    transpose=lambda b, ct, x, y, p: [-ct[0]]))


def _mul_transpose(b, ct, x, y, p):
    a, c = x
    if isinstance(a, Undef):
        return [unbroadcast(b, ct[0] * c, a.type), None]
    return [None, unbroadcast(b, a * ct[0], c.type)]


# mul (elementwise): d(a ⊙ b) = da ⊙ b + a ⊙ db; transpose in a: ȳ ⊙ b (summed if a was a scalar)
register(Primitive(
    "mul", jnp.multiply, shapes.elementwise, linear_in=(0, 1), infix="*", math="y = a ⊙ b", min_args=2, max_args=2,
    codegen=_infix("*"),
    frechet=lambda b, x, dx, y, p: dx[0] * x[1] + x[0] * dx[1],
    transpose=_mul_transpose))

# div: d(a / b) = (da - y ⊙ db) / b; linear in a with transpose ȳ / b
register(Primitive(
    "div", jnp.divide, shapes.elementwise, linear_in=(0,), infix="/", math="y = a / b",
    codegen=_infix("/"),
    frechet=lambda b, x, dx, y, p: (dx[0] - y[0] * dx[1]) / x[1],
    transpose=lambda b, ct, x, y, p: [unbroadcast(b, ct[0] / x[1], x[0].type), None]))


def _pow_frechet(b, x, dx, y, p):
    a, e = x
    k = e.atom.value if isinstance(e, Val) and isinstance(e.atom, Lit) else None
    if is_zero(dx[0]) or k == 0:            # a ** 0 is 1: no da-term (0 · a^-1 would be NaN at a = 0)
        out = b.zero(y[0].type)
    elif k == 1:                            # a ** 1 is a: da itself (not 1 · a^0, as JAX's integer_pow)
        out = dx[0]
    else:
        out = dx[0] * (e * a ** (e - 1.0))
    if not is_zero(dx[1]):      # log(a) with a = 0 read as log 1 = 0, as JAX does: 0^e has de-term 0
        out = out + dx[1] * (b.log(a + (1.0 - b.abs(b.sign(a)))) * y[0])
    return out


# pow: d(a^e) = e a^(e-1) da + log(a) a^e de (the de-term 0 where a = 0)
register(Primitive(
    "pow", jnp.power, shapes.elementwise, infix="**", math="y = a ** e",
    codegen=_infix("**"), frechet=_pow_frechet, domains={0: "positive"}))   # a^e real for a > 0


def _matmul_transpose(b, ct, x, y, p):
    a, c = x
    g = ct[0]
    if is_zero(g):
        return [None, None]
    if isinstance(a, Undef):
        if a.ndim == 2:
            ga = b.outer(g, c) if c.ndim == 1 else g @ c.T
        else:
            ga = c @ g if c.ndim == 2 else g * c
        return [ga, None]
    if c.ndim == 2:
        gc = b.outer(a, g) if a.ndim == 1 else a.T @ g
    else:
        gc = a.T @ g if a.ndim == 2 else g * a
    return [None, gc]


# matmul: d(A B) = dA B + A dB; transposes Ā = Ȳ Bᵀ, B̄ = Aᵀ Ȳ (outer products for vectors)
register(Primitive(
    "matmul", jnp.matmul, shapes.matmul, linear_in=(0, 1), infix="@", math="Y = A B",
    codegen=_infix("@"),
    frechet=lambda b, x, dx, y, p: dx[0] @ x[1] + x[0] @ dx[1],
    transpose=_matmul_transpose))
