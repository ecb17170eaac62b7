"""examples/woodbury_preconditioner: the Kaporin loss and its gradient against a jax.numpy
reference, the Woodbury apply against a dense inverse, and the driver end to end (small)."""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

import lagrad

from example_driver import load_example

ROOT = pathlib.Path(__file__).resolve().parents[1]


def driver():
    return load_example("woodbury_preconditioner.py")


def test_loss_gradient_and_apply_match_references():
    ex = driver()
    rng = np.random.default_rng(0)
    n, r = 60, 5
    A = ex.kernel_system(n, rng)
    s, W = 0.3 * rng.standard_normal(n), 0.1 * rng.standard_normal((n, r))
    m = lagrad.load(ROOT / "examples" / "woodbury_preconditioner.la")

    def ref(s, W):
        d = jnp.exp(s)
        M = jnp.linalg.inv(jnp.diag(d) + W @ W.T)
        MA = M @ A
        return jnp.log(jnp.trace(MA) / n) - jnp.linalg.slogdet(MA)[1] / n
    assert abs(float(m.log_kaporin(A, s, W)) - float(ref(s, W))) <= 1e-9
    for g, w in zip(m.log_kaporin.grad(["s", "W"])(A, s, W), jax.grad(ref, (0, 1))(s, W)):
        assert np.linalg.norm(np.asarray(g) - w) <= 1e-8 * np.linalg.norm(w)
    v = rng.standard_normal(n)
    dense = np.linalg.solve(np.diag(np.exp(s)) + W @ W.T, v)
    assert np.linalg.norm(np.asarray(m.apply_precond(s, W, v)) - dense) <= 1e-12 * np.linalg.norm(dense)
    b = rng.standard_normal(n)
    assert np.linalg.norm(np.asarray(m.solve(A, s, W, b)) - np.linalg.solve(A, b)) <= 1e-8 * np.linalg.norm(np.linalg.solve(A, b))


def test_driver_trains_a_preconditioner_that_cuts_cg_iterations(capsys):
    assert driver().main(["--n", "120", "--r", "12", "--steps", "300"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "FAILED" not in out
