"""Two primitives of your own with lagrad.primitive: `logsumexp` (nonlinear, its Fréchet rule
written as a `frechet` block) and `cumsum` (linear, with a transpose rule). Then a model that
uses both, its gradient compared with jax.grad, and its derived adjoint."""
import jax
import jax.numpy as jnp
import numpy as np

import lagrad


# logsumexp: y = log Σ eˣ. Its Fréchet rule dy = softmax(x)ᵀ dx, written in the language.
def logsumexp(x):
    return jax.scipy.special.logsumexp(x)


lagrad.primitive(
    "logsumexp", logsumexp,
    frechet="frechet logsumexp(x) -> y { dy = dot(exp(x - y), dx) }")


# cumsum: y = (x₁, x₁ + x₂, …). Linear in x, so its Fréchet rule applies cumsum to the tangent,
# and its transpose is the reversed cumulative sum: x̄ᵢ = Σ_{j ≥ i} ȳⱼ.
def cumsum(x, *, reverse=False):
    return jnp.flip(jnp.cumsum(jnp.flip(x))) if reverse else jnp.cumsum(x)


def cumsum_frechet(b, primals, tangents, outs, params):
    return b.emit("cumsum", tangents[0], **params)


def cumsum_transpose(b, cotangents, inputs, outs, params):
    reverse = not params.get("reverse", False)
    return [b.emit("cumsum", cotangents[0], reverse=reverse)]


lagrad.primitive("cumsum", cumsum, linear_in=(0,), kwargs={"reverse": False},
                 frechet=cumsum_frechet, transpose=cumsum_transpose)

mod = lagrad.loads("""
model smooth_max_path(x: f64[n]) -> f64 {
    return logsumexp(cumsum(x))
}
""", name="paths.la")
f = mod.smooth_max_path

x = np.random.default_rng(0).standard_normal(6)
ours = f.grad("x")(x)
theirs = jax.grad(lambda x: jax.scipy.special.logsumexp(jnp.cumsum(x)))(x)
print("value   ", np.round(float(f(x)), 6))
print("gradient", np.round(np.asarray(ours), 6))
print("max |lagrad - jax.grad| < 1e-12:", bool(np.max(np.abs(ours - theirs)) < 1e-12))
print()
print(f.adjoint())
