"""Fit ridge.la's per-feature penalties by Adam, written in plain JAX. The lagrad Function is an
ordinary JAX callable: jax.value_and_grad differentiates it with lagrad's derived adjoint, and
jax.jit compiles the whole step."""
import jax
import jax.numpy as jnp
import numpy as np

import lagrad
from ridge_data import ridge_data

f = lagrad.load("docs/snippets/ridge.la").ridge
d = ridge_data()
data = (d["X"], d["y"], d["Xv"], d["yv"])


@jax.jit
def adam_step(theta, m, v, k, lr=0.1, b1=0.9, b2=0.999, eps=1e-8):
    loss, g = jax.value_and_grad(f)(theta, *data)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1 ** k), v / (1 - b2 ** k)
    return theta - lr * m_hat / (jnp.sqrt(v_hat) + eps), m, v, loss


theta = jnp.zeros(10)                    # log penalties, one per feature
m, v = jnp.zeros(10), jnp.zeros(10)
for k in range(1, 301):
    theta, m, v, loss = adam_step(theta, m, v, k)
    if k == 1 or k % 100 == 0:
        print(f"step {k:3d}  validation loss {float(loss):.4f}")
print("penalties:", np.array2string(np.exp(np.asarray(theta)), precision=1, suppress_small=True))
