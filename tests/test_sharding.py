"""Sharding a batch of systems over several devices with jax.sharding (issue 7, scale; see
docs/scaling.md). The device count of the CPU backend is fixed when JAX starts, so the check
runs in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import lagrad

    assert len(jax.devices()) == 8, jax.devices()
    mod = lagrad.loads('''
    model loss(A: f64[n, n], b: f64[n]) -> f64 {
        x = solve(A, b)
        op K(v) = A' @ (A @ v) + v
        return dot(x, x) + dot(b, cg(K, b, tol=1e-12))
    }
    ''', name="sharded.la")
    f = mod.loss
    rng = np.random.default_rng(0)
    B, n = 16, 5
    A = rng.standard_normal((B, n, n)) + (n + 2) * np.eye(n)
    b = rng.standard_normal((B, n))

    mesh = Mesh(np.array(jax.devices()), ("batch",))
    rows = NamedSharding(mesh, P("batch"))
    A_s, b_s = jax.device_put(A, rows), jax.device_put(b, rows)
    value = jax.jit(jax.vmap(f))
    grad = jax.jit(jax.vmap(f.grad("A")))
    y, gA = value(A_s, b_s), grad(A_s, b_s)

    assert y.sharding.is_equivalent_to(NamedSharding(mesh, P("batch")), 1), y.sharding
    assert len(y.sharding.device_set) == 8 and len(gA.sharding.device_set) == 8
    assert {s.data.shape for s in gA.addressable_shards} == {(2, n, n)}
    np.testing.assert_allclose(y, [f(A[i], b[i]) for i in range(B)], rtol=1e-10)
    np.testing.assert_allclose(gA, np.stack([f.grad("A")(A[i], b[i]) for i in range(B)]), rtol=1e-9)

    # a 2-D mesh: batch over 4 devices, each shard replicated over 2
    mesh2 = Mesh(np.array(jax.devices()).reshape(4, 2), ("batch", "rep"))
    y2 = jax.jit(jax.vmap(f))(jax.device_put(A, NamedSharding(mesh2, P("batch"))),
                              jax.device_put(b, NamedSharding(mesh2, P("batch"))))
    np.testing.assert_allclose(y2, y, rtol=1e-12)
    print("SHARDED OK")
""")


def test_batch_sharded_over_8_cpu_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
    assert r.returncode == 0 and "SHARDED OK" in r.stdout, r.stdout + r.stderr
