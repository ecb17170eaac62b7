"""Elementwise functions. Unary ones come from one table: ``unary(name, impl, rule, math)``
where ``rule(b, x, dx, y)`` gives the tangent, reusing the output ``y`` where that is cheap.
``sign`` and ``step`` are internal helpers with a zero derivative that the rules use."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..compiler.primitive import Primitive, register
from . import shapes


def unary(name, impl, rule, math, **kw):
    frechet = None if rule is None else (lambda b, x, dx, y, p: rule(b, x[0], dx[0], y[0]))
    register(Primitive(name, impl, shapes.same, math=math, frechet=frechet, **kw))


# sign: y = sign(x), piecewise constant: dy = 0
unary("sign", jnp.sign, None, "y = sign(x)", zero_tangent=True, internal=True)
# step: Heaviside, y = 1 if x > 0 else 0 (step(0) = 0): dy = 0
unary("step", lambda x: jnp.heaviside(x, 0.0), None, "y = [x > 0]", zero_tangent=True,
      internal=True)

# exp: dy = y dx
unary("exp", jnp.exp, lambda b, x, dx, y: y * dx, "y = eˣ")
# log: dy = dx / x (`lagrad check` samples its argument positive)
unary("log", jnp.log, lambda b, x, dx, y: dx / x, "y = log x", domains={0: "positive"})
# sqrt: dy = dx / (2y)
unary("sqrt", jnp.sqrt, lambda b, x, dx, y: dx / (2.0 * y), "y = √x", domains={0: "positive"})
# sin: dy = cos(x) dx
unary("sin", jnp.sin, lambda b, x, dx, y: b.cos(x) * dx, "y = sin x")
# cos: dy = −sin(x) dx
unary("cos", jnp.cos, lambda b, x, dx, y: -(b.sin(x) * dx), "y = cos x")
# tanh: dy = (1 − y²) dx
unary("tanh", jnp.tanh, lambda b, x, dx, y: (1.0 - y * y) * dx, "y = tanh x")
# signum: y = 1 if x ≥ 0 else −1 (the slope of |x| JAX takes: +1 at 0): dy = 0
unary("signum", lambda x: jnp.where(x >= 0, 1.0, -1.0).astype(jnp.result_type(x, 1.0)), None,
      "y = 1 if x ≥ 0 else −1", zero_tangent=True, internal=True)
# abs: dy = sign(x) dx, with slope +1 at 0 as in JAX
unary("abs", jnp.abs, lambda b, x, dx, y: b.signum(x) * dx, "y = |x|")
# sigmoid: y = 1 / (1 + e⁻ˣ), dy = y (1 − y) dx
unary("sigmoid", jax.nn.sigmoid, lambda b, x, dx, y: y * (1.0 - y) * dx, "y = 1 / (1 + e⁻ˣ)")
# softplus: y = log(1 + eˣ), dy = sigmoid(x) dx
unary("softplus", jax.nn.softplus, lambda b, x, dx, y: b.sigmoid(x) * dx, "y = log(1 + eˣ)")
# relu: y = max(x, 0), dy = step(x) dx
unary("relu", jax.nn.relu, lambda b, x, dx, y: b.step(x) * dx, "y = max(x, 0)")
# celu (α = 1): y = x if x > 0 else eˣ − 1, dy = e^min(x, 0) dx
unary("celu", jax.nn.celu, lambda b, x, dx, y: b.exp(b.minimum(x, 0.0)) * dx,
      "y = x if x > 0 else eˣ − 1")


def binary_select(name, impl, pick_a, math):
    """maximum/minimum: dy = s da + (1 − s) db with s = (1 + sign(pick_a(a, b)))/2: 1 where a is
    picked, 0 where b is, ½ at a tie (each gets half, as in JAX)."""
    def frechet(b, x, dx, y, p):
        s = 0.5 * (1.0 + b.sign(pick_a(x[0], x[1])))
        return s * dx[0] + (1.0 - s) * dx[1]
    register(Primitive(name, impl, shapes.elementwise, math=math, frechet=frechet, min_args=2, max_args=2))


# maximum: y = max(a, b); dy = s da + (1 − s) db, s = (1 + sign(a − b))/2
binary_select("maximum", jnp.maximum, lambda a, c: a - c, "y = max(a, b)")
# minimum: y = min(a, b); dy = s da + (1 − s) db, s = (1 + sign(b − a))/2
binary_select("minimum", jnp.minimum, lambda a, c: c - a, "y = min(a, b)")
