"""Rule-table rows of the block low-rank primitives (lagrad/stdlib/blr.py).

References are written block by block with Python loops (independent of the batched einsums),
so the `grad` rows compare lagrad's derived adjoints with jax.grad of plain block algebra.
Sizes: p = 3 blocks of size b = 2, ranks r = 0, 1, 2."""
from __future__ import annotations

import jax.numpy as jnp
import jax.scipy.linalg as jsl

from rulebook import Row, _fmt

P, B = 3, 2
N = P * B


def dense_ref(D, U, V):
    """The n × n matrix, one block at a time."""
    p = D.shape[0]
    return jnp.block([[D[i] if i == j else U[i, j] @ V[i, j].T for j in range(p)] for i in range(p)])


def apply_ref(D, U, V, x):
    return dense_ref(D, U, V) @ x


def apply_t_ref(D, U, V, x):
    return dense_ref(D, U, V).T @ x


def diag_blocks_ref(A, block=B):
    p = A.shape[0] // block
    return jnp.stack([A[i * block:(i + 1) * block, i * block:(i + 1) * block] for i in range(p)])


def _offdiag(p):
    return 1 - jnp.eye(p)


def _masked(spec, mask):
    """jnp.einsum with the [i ≠ j] mask as one more operand."""
    if not mask:
        return lambda *xs: jnp.einsum(spec, *xs)
    lhs, out = spec.split("->")

    def f(*xs):
        p = next(x.shape[t.index(mask[0])] for x, t in zip(xs, lhs.split(",")) if mask[0] in t)
        return jnp.einsum(f"{lhs},{mask}->{out}", *xs, _offdiag(p))
    return f


def _shapes(spec, dims):
    lhs = spec.split("->")[0]
    return tuple(tuple(dims[c] for c in t) for t in lhs.split(","))


def einsum_row(spec, mask="", tag="", **dims):
    d = dict(i=P, j=P, a=B, b=B, c=B, d=B, e=B, r=2, k=3)
    d.update(dims)
    return Row("blr_einsum", _shapes(spec, d), {"spec": spec, "mask": mask}, ref=_masked(spec, mask),
               tag=tag or spec.replace(",", "_").replace("->", "-") + (f"-m{mask}" if mask else ""))


def factors(r):
    return ((P, B, B), (P, P, B, r), (P, P, B, r))


ROWS = [
    # the operator and its dense matrix: linear in each of D, U, V, x
    *[Row("blr_apply", factors(r) + ((N,),), ref=apply_ref, tag=f"r{r}-vec") for r in (0, 1, 2)],
    Row("blr_apply", factors(2) + ((N, 3),), ref=apply_ref, tag="r2-mat"),
    *[Row("blr_apply", factors(r) + (x,), {"trans": True}, ref=apply_t_ref, tag=f"T-r{r}-{_fmt(x)}")
      for r, x in ((0, (N,)), (2, (N,)), (1, (N, 3)))],
    *[Row("blr_dense", factors(r), ref=dense_ref, tag=f"r{r}") for r in (0, 2)],
    # compression: a stop-gradient step (values only; the derivative is zero by fiat)
    *[Row("blr_compress", ((N, N),), {"block": B, "rank": r}, fd_tol=None, tag=f"r{r}") for r in (0, 1, 2)],
    # inverses of the diagonal blocks, and the block extraction / scatter pair
    Row("block_diag_inv", ((N, N),), {"block": B}, ("wellcond",),
        ref=lambda A: jnp.linalg.inv(diag_blocks_ref(A)), tag="b2"),
    Row("block_diag_inv", ((N, N),), {"block": 3}, ("wellcond",),
        ref=lambda A: jnp.linalg.inv(diag_blocks_ref(A, 3)), tag="b3"),
    Row("diag_blocks", ((N, N),), {"block": B}, ref=diag_blocks_ref),
    Row("blocks_to_diag", ((P, B, B),), ref=lambda D: jsl.block_diag(*D)),
    # reshapes between vectors/matrices and block tensors
    Row("blr_reshape", ((N,),), {"shape": (P, B)}, ref=lambda x: x.reshape(P, B), tag="vec"),
    Row("blr_reshape", ((N, 3),), {"shape": (P, B, 3)}, ref=lambda x: x.reshape(P, B, 3), tag="mat"),
    Row("blr_reshape", ((N, N),), {"shape": (P, B, P, B)}, ref=lambda x: x.reshape(P, B, P, B), tag="dense"),
    # every contraction the rules above emit, and some of their transposes (the transpose
    # rule is generic; the `linear` checks run it on each operand of each row)
    einsum_row("ibc,ic->ib"),                       # dD x
    einsum_row("ibc,ick->ibk"),
    einsum_row("ijar,ijcr,jc->ia", "ij"),           # (dU Vᵀ + U dVᵀ) x
    einsum_row("ijar,ijcr,jck->iak", "ij"),
    einsum_row("ibc,ib->ic"),                       # dDᵀ x (trans)
    einsum_row("ijar,ijcr,iak->jck", "ij"),         # (dU Vᵀ + U dVᵀ)ᵀ x (trans)
    einsum_row("ijar,ijcr->iajc", "ij"),            # dense off-diagonal blocks
    einsum_row("ibc->icb"),                         # Dᵀ, blockwise
    einsum_row("ibc,icd,ide->ibe"),                 # −D dA D, blockwise
    einsum_row("ib,ic->ibc"),                       # D̄ = Σ ȳ xᵀ
    einsum_row("ijcr,jc,ia->ijar", "ij"),           # Ū
    einsum_row("ijar,jc,ia->ijcr", "ij"),           # V̄
    einsum_row("ijar,ijcr,ia->jc", "ij", tag="mask-operand"),
    einsum_row("ia,ja,ib,jb->ab", "ij", tag="mask-separate"),
]
