"""Load ridge.la, run it, and take derivatives three ways."""
import jax
import jax.numpy as jnp
import numpy as np

import lagrad
from ridge_data import ridge_data

f = lagrad.load("docs/snippets/ridge.la").ridge
d = ridge_data()
args = (d["log_lam"], d["X"], d["y"], d["Xv"], d["yv"])

print("loss          ", round(float(f(*args)), 6))
print("loss (kwargs) ", round(float(f(**d)), 6))

g = f.grad("log_lam")(*args)                     # reverse mode: the derived adjoint
print("gradient      ", np.array2string(np.asarray(g), formatter={"float_kind": "{:.2e}".format}))

direction = np.ones(10)                          # forward mode: the derived tangent
loss, slope = f.jvp(args, (direction, 0 * d["X"], 0 * d["y"], 0 * d["Xv"], 0 * d["yv"]))
print("slope along 1 ", round(float(slope), 6), "= sum of the gradient:", round(float(np.sum(g)), 6))


def ridge_jnp(log_lam, X, y, Xv, yv):            # the same model in plain JAX
    w = jnp.linalg.solve(X.T @ X + jnp.diag(jnp.exp(log_lam)), X.T @ y)
    return jnp.mean((Xv @ w - yv) ** 2)


print("agrees with jax.grad:", np.allclose(g, jax.grad(ridge_jnp)(*args), rtol=1e-10, atol=0))

hv = f.hvp("log_lam")(args, direction)          # Hessian · direction, forward over reverse
hv_jax = jax.jvp(jax.grad(ridge_jnp), args, (direction, *(0 * a for a in args[1:])))[1]
print("Hessian-vector product agrees with JAX:", np.allclose(hv, hv_jax, rtol=1e-8, atol=1e-14))
