"""Fixed-size buffers of per-step matrices that the iterative factors (``lyap_factor``,
``dlyap_factor``, ``expm_factor``) keep for their applies.

A factor that iterates a data-dependent number of steps K keeps the matrices of its first S steps,
S fixed from the shape (``slots``), and an apply needing more recomputes the later ones from the
last kept state. S is as many n × n matrices as fit in ``SLOT_BYTES``, between ``MIN_SLOTS`` and a
per-factor cap: a buffer sized for the worst case (50 steps) would hold 105 MB at n = 512 in
float64, mostly never read, and a fresh allocation of that size is paid for in page faults on
every call (measured: the dlyap factor at n = 512 took 56 ms with 50 slots, 13 ms with 8).

Two ways to write step k's matrix: ``keep`` (expm's squares) selects between it and the last
slot; a buffer made by ``with_scratch`` (the lyap and dlyap factors) has one more, scratch, slot S
that the steps beyond the kept ones write into (``write``), so a step writes slot min(k, S) with
no select (3 of the dlyap factor's 45 µs at n = 32); ``kept`` is its S."""
from __future__ import annotations

import jax
import jax.numpy as jnp

SLOT_BYTES = 16 << 20          # a factor's buffer of kept steps: at most this many bytes…
MIN_SLOTS, MAX_SLOTS = 4, 16   # …but at least MIN_SLOTS matrices and at most MAX_SLOTS


def slots(n, dtype, most=None, least=None, budget=None) -> int:
    """How many n × n matrices of `dtype` a factor keeps (static: from the shape): as many as fit
    in `budget` bytes (SLOT_BYTES), at least `least` (MIN_SLOTS), at most `most` (MAX_SLOTS)."""
    most = MAX_SLOTS if most is None else min(most, MAX_SLOTS)
    least = min(MIN_SLOTS if least is None else least, most)
    fit = (SLOT_BYTES if budget is None else budget) // max(1, n * n * jnp.dtype(dtype).itemsize)
    return int(max(least, min(most, fit)))


def keep(buf, M, k):
    """buf with M in slot k when k < len(buf); otherwise buf unchanged (its last slot rewritten
    with itself: one n² copy, where a conditional around the whole buffer could copy all of it)."""
    S = buf.shape[0]
    last = jnp.minimum(k, S - 1)
    return jax.lax.dynamic_update_index_in_dim(buf, jnp.where(k < S, M, buf[last]), last, 0)


def with_scratch(S, n, dtype):
    """A zero buffer for S kept n × n matrices and one scratch slot after them."""
    return jnp.zeros((S + 1, n, n), dtype)


def write(buf, M, k):
    """buf (from ``with_scratch``) with step k's M in slot k, or in the scratch slot when k ≥ S."""
    return jax.lax.dynamic_update_index_in_dim(buf, M, jnp.minimum(k, kept(buf)), 0)


def kept(buf) -> int:
    """How many steps a ``with_scratch`` buffer keeps (static): all its slots but the scratch."""
    return buf.shape[0] - 1
