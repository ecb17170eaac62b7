"""Block low-rank (BLR) tensors: the dense primitives behind ``blr(D, U, V)`` operators.

An n × n BLR matrix M with n = p·b has p × p blocks of size b: diagonal blocks D[i] (D: [p, b, b])
and off-diagonal blocks U[i, j] V[i, j]ᵀ of rank r (U, V: [p, p, b, r]; the i = j factors are
ignored — masked). With x viewed as X[p, b] (RULES.md, "BLR"):

    t = einsum('ijcr,jc->ijr', V, X) ⊙ [i ≠ j]
    y = einsum('ibc,ic->ib', D, X) + einsum('ijar,ijr->ia', U, t)

Batched contractions only, no Python loop over blocks. The primitives:

* ``blr_apply(D, U, V, x)`` — y = M x (x: [n] or [n, k]). y = Dx + UVᵀx is linear in x but
  only affine in each of D, U, V (with the others fixed), so it is registered linear in x alone:
  x̄ = Mᵀȳ = ``blr_apply(D, U, V, ȳ, trans=true)`` (Mᵀ = BLR(Dᵀ, V', U') with the block
  indices swapped too: U'ᵢⱼ = Vⱼᵢ, V'ᵢⱼ = Uⱼᵢ — `trans` contracts the factors in place). Its Fréchet rule dy = M dx + dD x + (dU Vᵀ + U dVᵀ) x emits the
  multilinear ``blr_einsum`` contractions, whose transposes give D̄ᵢ = Σ ȳᵢxᵢᵀ,
  Ūᵢⱼ = ȳᵢ tᵢⱼᵀ, V̄ᵢⱼ = xⱼ sᵢⱼᵀ with sᵢⱼ = Uᵢⱼᵀȳᵢ (masked i = j).
* ``blr_dense(D, U, V)`` — the dense [n, n] matrix; dM = blkdiag(dD) + [dU Vᵀ + U dVᵀ]ᵢ≠ⱼ.
* ``D, U, V = blr_compress(A, block=b, rank=r)`` — per-block truncated SVD (the singular
  values split evenly, U = u√s, V = v√s), diagonal blocks copied; a stop-gradient step.
* ``block_diag_inv(A, block=b)`` — the inverses of A's diagonal blocks, [p, b, b];
  dDᵢ = −Dᵢ dAᵢᵢ Dᵢ.

Helpers (internal, all linear, each with its Fréchet and transpose rules so that Hessian-vector
products and re-linearization work):

* ``blr_einsum(*xs, spec=, mask=)`` — a multilinear einsum, linear in each operand separately;
  ``mask="ij"`` multiplies by [i ≠ j]. The transpose in operand k is the einsum of the other
  operands and ȳ onto operand k's indices (with the same mask), so the shape rule insists that
  every index of an operand appears in another operand or in the output.
* ``blr_reshape(x, shape=)`` — a reshape; its transpose reshapes back.
* ``diag_blocks(A, block=b)`` — A's diagonal blocks [p, b, b]; transpose ``blocks_to_diag``.
* ``blocks_to_diag(D)`` — the block-diagonal [n, n] matrix; transpose ``diag_blocks``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import sympy

from ..compiler.builder import Undef, expect, is_zero
from ..compiler.primitive import ALL, Primitive, register
from ..compiler.types import ShapeError, TensorType, as_dim, dim_eq, fmt_shape, promote
from . import shapes
from .linalg import inverse


# ---- shapes -------------------------------------------------------------------------------
def _dt(*types):
    return promote(*[shapes._dt(t) for t in types])


def _int_param(v, what, who):
    """A non-negative integer keyword (an int or a dimension expression)."""
    if isinstance(v, bool) or v is None:
        raise ShapeError(f"{who}: {what} must be a positive integer or dimension, got {v!r}")
    if isinstance(v, float):
        if v != int(v):
            raise ShapeError(f"{who}: {what} must be an integer, got {v!r}")
        v = int(v)
    if isinstance(v, str):
        raise ShapeError(f"{who}: {what} must be an integer or dimension, got {v!r}")
    d = as_dim(v)
    if d.is_Integer and int(d) < 0:
        raise ShapeError(f"{who}: {what} must not be negative, got {v!r}")
    return d


def _blocks_of(n, block, t, who):
    """p with n = p·block, as a dimension expression (integer polynomial), or a ShapeError."""
    block = _int_param(block, "block", who)
    if block.is_Integer and int(block) == 0:
        raise ShapeError(f"{who}: block must be positive, got 0")
    q = sympy.cancel(as_dim(n) / block)
    # a symbolic size that is not provably a multiple (n/128 for f64[n, n]) is accepted here and
    # checked when the sizes are known (the implementations raise an InputError)
    ok = q.is_Integer and int(q) > 0 if q.is_number else (_is_int_poly(q) or block.is_Integer)
    if not ok:
        raise ShapeError(f"{who}: {t} does not split into blocks of size {block} "
                         f"(its size must be a multiple of the block size, e.g. [p*{block}, p*{block}])")
    return q, block


def _is_int_poly(q):
    try:
        poly = sympy.Poly(q, *sorted(q.free_symbols, key=str))
    except sympy.PolynomialError:
        return False
    return all(c.is_Integer for c in poly.coeffs())


def _blr_dims(D, U, V, who):
    """(p, b, r) from D [p, b, b], U and V [p, p, b, r], checked for consistency."""
    for t, what in ((D, "D"), (U, "U"), (V, "V")):
        shapes.tensor(t, f"{who}'s {what}")
    expect(D.ndim == 3 and dim_eq(D.shape[1], D.shape[2]),
           f"{who}: D must be the diagonal blocks [p, b, b], got {D}")
    p, b = D.shape[0], D.shape[1]
    expect(U.ndim == 4, f"{who}: U must be [p, p, b, r], got {U}")
    expect(V.ndim == 4, f"{who}: V must be [p, p, b, r], got {V}")
    r = U.shape[3]
    for t, what in ((U, "U"), (V, "V")):
        if not (dim_eq(t.shape[0], p) and dim_eq(t.shape[1], p) and dim_eq(t.shape[2], b)
                and dim_eq(t.shape[3], r)):
            raise ShapeError(f"{who}: {what} must be [p, p, b, r] = {fmt_shape((p, p, b, r))} "
                             f"for D {D} and U {U}, got {t}")
    return p, b, r


def _blr_apply_shape(types, params):
    D, U, V, x = types
    p, b, r = _blr_dims(D, U, V, "blr_apply")
    x = shapes.tensor(x, "blr_apply's x")
    expect(x.ndim in (1, 2), f"blr_apply: x must be a vector [n] or a matrix [n, k], got {x}")
    if not dim_eq(x.shape[0], p * b):
        raise ShapeError(f"blr_apply: x {x} must have p·b = {p * b} rows for D {D}")
    return TensorType(_dt(D, U, V, x), x.shape)


def _blr_dense_shape(types, params):
    D, U, V = types
    p, b, r = _blr_dims(D, U, V, "blr_dense")
    return TensorType(_dt(D, U, V), (p * b, p * b))


def _square_blocks(A, params, who):
    A = shapes.square(shapes.tensor(A), f"{who}'s argument")
    p, b = _blocks_of(A.shape[0], params.get("block"), A, who)
    return A, p, b


def _compress_shape(types, params):
    A, p, b = _square_blocks(types[0], params, "blr_compress")
    r = _int_param(params.get("rank"), "rank", "blr_compress")
    if r.is_Integer and b.is_Integer and int(r) > int(b):
        raise ShapeError(f"blr_compress: rank {r} exceeds the block size {b}")
    dt = _dt(A)
    return (TensorType(dt, (p, b, b)), TensorType(dt, (p, p, b, r)), TensorType(dt, (p, p, b, r)))


def _diag_blocks_shape(who):
    def rule(types, params):
        A, p, b = _square_blocks(types[0], params, who)
        return TensorType(_dt(A), (p, b, b))
    return rule


def _blocks_to_diag_shape(types, params):
    D = shapes.tensor(types[0])
    expect(D.ndim == 3 and dim_eq(D.shape[1], D.shape[2]),
           f"blocks_to_diag needs diagonal blocks [p, b, b], got {D}")
    n = D.shape[0] * D.shape[1]
    return TensorType(_dt(D), (n, n))


def _reshape_shape(types, params):
    x = shapes.tensor(types[0])
    shape = tuple(as_dim(d) for d in params.get("shape", ()))
    size = sympy.Integer(1)
    for d in x.shape:
        size *= d
    new = sympy.Integer(1)
    for d in shape:
        new *= d
    if not dim_eq(size, new):
        raise ShapeError(f"blr_reshape: cannot reshape {x} to {fmt_shape(shape)}")
    return TensorType(_dt(x), shape)


# ---- einsum specs -------------------------------------------------------------------------
def _parse(spec, nargs=None):
    """'ab,bc->ac' → (['ab', 'bc'], 'ac'), checked: lowercase letters, none repeated within a
    term, output letters taken from the inputs."""
    if not isinstance(spec, str) or spec.count("->") != 1:
        raise ShapeError(f"blr_einsum: spec must look like 'ab,bc->ac', got {spec!r}")
    lhs, out = spec.split("->")
    ins = lhs.split(",") if lhs else []
    for term in ins + [out]:
        if not all("a" <= c <= "z" for c in term) or len(set(term)) != len(term):
            raise ShapeError(f"blr_einsum: bad term {term!r} in {spec!r} (distinct lowercase letters)")
    if nargs is not None and len(ins) != nargs:
        raise ShapeError(f"blr_einsum: spec {spec!r} names {len(ins)} operands, got {nargs}")
    if not set(out) <= set("".join(ins)):
        raise ShapeError(f"blr_einsum: output letters of {spec!r} must appear in an operand")
    return ins, out


def _einsum_shape(types, params):
    spec, mask = params.get("spec"), params.get("mask", "")
    ins, out = _parse(spec, len(types))
    dims = {}
    for t, term in zip(types, ins):
        shapes.tensor(t)
        if t.ndim != len(term):
            raise ShapeError(f"blr_einsum {spec!r}: operand {term!r} has {len(term)} indices, got {t}")
        for c, d in zip(term, t.shape):
            if c in dims and not dim_eq(dims[c], d):
                raise ShapeError(f"blr_einsum {spec!r}: index {c!r} is {dims[c]} in one operand "
                                 f"and {d} in {t}")
            dims.setdefault(c, d)
    for k, term in enumerate(ins):          # transposable: each index is read elsewhere too
        rest = set(out).union(*[set(s) for m, s in enumerate(ins) if m != k])
        if not set(term) <= rest:
            raise ShapeError(f"blr_einsum {spec!r}: operand {term!r} sums an index no other term has")
    if mask:
        if len(mask) != 2 or not set(mask) <= set(dims) or not dim_eq(dims[mask[0]], dims[mask[1]]):
            raise ShapeError(f"blr_einsum {spec!r}: mask {mask!r} must name two indices of equal size")
    return TensorType(_dt(*types), tuple(dims[c] for c in out))


def _offdiag(p, dtype):
    return 1 - jnp.eye(p, dtype=dtype)


def _mask_for(term, mask, p, dtype):
    """[i ≠ j] broadcast against an array indexed by `term` (which holds both mask letters)."""
    shape = [1] * len(term)
    shape[term.index(mask[0])] = p
    shape[term.index(mask[1])] = p
    return _offdiag(p, dtype).reshape(shape)       # symmetric: the axis order does not matter


def blr_einsum_impl(*xs, spec, mask=""):
    ins, out = _parse(spec)
    xs = [jnp.asarray(x) for x in xs]
    dtype = jnp.result_type(*xs) if xs else jnp.float64
    if not mask:
        return jnp.einsum(spec, *xs)
    p = None
    for x, term in zip(xs, ins):
        if mask[0] in term:
            p = x.shape[term.index(mask[0])]
            break
    if set(mask) <= set(out):                      # mask the (smaller) result
        return jnp.einsum(spec, *xs) * _mask_for(out, mask, p, dtype)
    for k, term in enumerate(ins):
        if set(mask) <= set(term):                 # mask the operand that holds both indices
            xs[k] = xs[k] * _mask_for(term, mask, p, dtype)
            return jnp.einsum(spec, *xs)
    return jnp.einsum(",".join(ins + [mask]) + "->" + out, *xs, _offdiag(p, dtype))


# ---- numerics -----------------------------------------------------------------------------
def _split_x(x, p, b):
    return x.reshape((p, b) + x.shape[1:])


def blr_apply_impl(D, U, V, x, *, trans=False):
    """y = M x (Mᵀx if trans), in one pass over the factors in their own layout: t = Vᵀx per
    block pair, masked off the diagonal, then U t per block pair (batched over (i, j)) summed
    over j. Mᵀ has diagonal blocks Dᵢᵀ and off-diagonal blocks (j, i) = Vᵢⱼ Uᵢⱼᵀ.

    t for a vector x is a dot batched over the block pairs with X broadcast to [p, p, b] (n²/b
    numbers, a quarter of U at rank 4), which reads each factor as it lies; with several columns
    that broadcast is k times larger, so t is a multiply-reduce there. (XLA's CPU backend takes
    a slow strided path for the vector multiply-reduce, and a dot batched over i alone makes a
    transposed copy of the factor: on the benchmark's block 128, rank 4, the broadcast dot is
    1.7–2.4× faster than the multiply-reduce for n = 1024…16384 in both directions, where the
    copying dot is 2.5× slower at n = 16384; benchmarks/results_notes.md, stop 20.)"""
    p, b = D.shape[0], D.shape[1]
    X = _split_x(jnp.asarray(x), p, b)                       # [p, b] or [p, b, k]
    dtype = jnp.result_type(D, U, V, X)
    mask = _offdiag(p, dtype).reshape((p, p, 1) + (1,) * (X.ndim - 2))
    F, G = (U, V) if trans else (V, U)          # tᵢⱼ = Fᵢⱼᵀ x_(i if trans else j); then Gᵢⱼ tᵢⱼ
    dg = jax.lax.dot_general
    if X.ndim == 2:
        Xb = jnp.broadcast_to((X[:, None, :] if trans else X[None, :, :]).astype(dtype), (p, p, b))
        t = dg(Xb, F, (((2,), (2,)), ((0, 1), (0, 1)))) * mask                  # [i, j, r]
    else:
        Xe = X[:, None, :, None, :] if trans else X[None, :, :, None, :]
        t = jnp.sum(F[..., None] * Xe, axis=2) * mask                             # [i, j, r, k]
    w = dg(G, t, (((3,), (2,)), ((0, 1), (0, 1))))                               # [i, j, a(, k)]
    if trans:
        y = jnp.einsum("ibc,ib...->ic...", D, X) + jnp.sum(w, axis=0)
    else:
        y = jnp.einsum("ibc,ic...->ib...", D, X) + jnp.sum(w, axis=1)
    return y.reshape(jnp.shape(x))


def blr_dense_impl(D, U, V):
    p, b = D.shape[0], D.shape[1]
    dtype = jnp.result_type(D, U, V)
    off = jnp.einsum("ijar,ijcr->iajc", U, V) * _offdiag(p, dtype)[:, None, :, None]
    dense = off + jnp.einsum("iac,ij->iajc", D, jnp.eye(p, dtype=dtype))
    return dense.reshape(p * b, p * b)


def _n_blocks(A, block):
    """p = n / block, checked when the size is known (a symbolic n is accepted at compile time)."""
    n = A.shape[0]
    if n % block:
        from ..errors import InputError
        raise InputError(f"a matrix of size {n} does not split into blocks of size {block}")
    return n // block


def diag_blocks_impl(A, *, block):
    A = jnp.asarray(A)
    p = _n_blocks(A, block)
    return jnp.einsum("ibic->ibc", A.reshape(p, block, p, block))


def blocks_to_diag_impl(D):
    D = jnp.asarray(D)
    p, b = D.shape[0], D.shape[1]
    return jnp.einsum("ibc,ij->ibjc", D, jnp.eye(p, dtype=D.dtype)).reshape(p * b, p * b)


def blr_compress_impl(A, *, block, rank):
    """Per-block truncated SVD of the [p, p, b, b] block tensor (one batched SVD); the singular
    values are split evenly between the factors, the i = j factors zeroed."""
    A = jax.lax.stop_gradient(jnp.asarray(A))
    p = _n_blocks(A, block)
    A4 = A.reshape(p, block, p, block).transpose(0, 2, 1, 3)          # [i, j, a, c]
    D = jnp.einsum("iiac->iac", A4)
    u, s, vt = jnp.linalg.svd(A4, full_matrices=False)
    sq = jnp.sqrt(s[..., :rank])[..., None, :]
    m = _offdiag(p, A.dtype)[:, :, None, None]
    U = u[..., :rank] * sq * m
    V = jnp.swapaxes(vt[..., :rank, :], -1, -2) * sq * m
    return D, U, V


def block_diag_inv_impl(A, *, block):
    return inverse(diag_blocks_impl(A, block=block))


# ---- rules --------------------------------------------------------------------------------
def _sum_terms(terms, zero):
    terms = [t for t in terms if not is_zero(t)]
    if not terms:
        return zero
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


def _multilinear_frechet(name):
    """d f(x₁, …, x_m) = Σₖ f(x₁, …, dxₖ, …, x_m) for f linear in each argument separately."""
    def rule(b, x, dx, y, p):
        terms = [b.emit(name, *[d if m == k else x[m] for m in range(len(x))], **p)
                 for k, d in enumerate(dx) if not is_zero(d)]
        return _sum_terms(terms, b.zero(y[0].type))
    return rule


def _einsum_transpose(b, ct, x, y, p):
    """āₖ = einsum(others…, ȳ → indices of aₖ), with the same [i ≠ j] mask."""
    ins, out = _parse(p["spec"])
    res = [None] * len(x)
    if is_zero(ct[0]):
        return res
    for k, v in enumerate(x):
        if isinstance(v, Undef):
            others = [m for m in range(len(x)) if m != k]
            spec = ",".join([ins[m] for m in others] + [out]) + "->" + ins[k]
            res[k] = b.blr_einsum(*[x[m] for m in others], ct[0], spec=spec, mask=p.get("mask", ""))
    return res


def _reshape(b, v, shape):
    return b.blr_reshape(v, shape=tuple(shape))


def _blr_apply_frechet(b, x, dx, y, p):
    """dy = M dx + dD x + (dU Vᵀ + U dVᵀ) x off the diagonal (transposed blockwise if trans):
    y is linear in x but only affine in each of D, U, V (y = Dx + UVᵀx), so their tangents go
    through multilinear einsums."""
    D, U, V, xv = x
    dD, dU, dV, dxv = dx
    trans = p.get("trans", False)
    pb, bb = D.shape[0], D.shape[1]
    kdim = tuple(xv.shape[1:])
    k = "k" if kdim else ""
    terms = [] if is_zero(dxv) else [b.blr_apply(D, U, V, dxv, trans=trans)]
    if not (is_zero(dD) and is_zero(dU) and is_zero(dV)):
        X = _reshape(b, xv, (pb, bb) + kdim)
        d_spec = f"ibc,ib{k}->ic{k}" if trans else f"ibc,ic{k}->ib{k}"
        uv_spec = f"ijar,ijcr,ia{k}->jc{k}" if trans else f"ijar,ijcr,jc{k}->ia{k}"
        blocks = [] if is_zero(dD) else [b.blr_einsum(dD, X, spec=d_spec)]
        blocks += [b.blr_einsum(Ut, Vt, X, spec=uv_spec, mask="ij")
                   for Ut, Vt in ((dU, V), (U, dV)) if not (is_zero(Ut) or is_zero(Vt))]
        terms.append(_reshape(b, _sum_terms(blocks, None), xv.shape))
    return _sum_terms(terms, b.zero(y[0].type))


def _blr_apply_transpose(b, ct, x, y, p):
    """x̄ = Mᵀȳ (M ȳ if trans): the same factors with `trans` flipped."""
    D, U, V, xv = x
    if is_zero(ct[0]):
        return [None] * 4
    return [None, None, None, b.blr_apply(D, U, V, ct[0], trans=not p.get("trans", False))]


def _blr_dense_frechet(b, x, dx, y, p):
    """dM = blkdiag(dD) + [dUᵢⱼVᵢⱼᵀ + UᵢⱼdVᵢⱼᵀ]ᵢ≠ⱼ (bilinear in U, V; linear in D)."""
    D, U, V = x
    dD, dU, dV = dx
    pb, bb = D.shape[0], D.shape[1]
    n = pb * bb
    terms = [] if is_zero(dD) else [b.blocks_to_diag(dD)]
    off = [b.blr_einsum(Ut, Vt, spec="ijar,ijcr->iajc", mask="ij")
           for Ut, Vt in ((dU, V), (U, dV)) if not (is_zero(Ut) or is_zero(Vt))]
    if off:
        terms.append(_reshape(b, _sum_terms(off, None), (n, n)))
    return _sum_terms(terms, b.zero(y[0].type))


def _block_diag_inv_frechet(b, x, dx, y, p):
    """dDᵢ = −Dᵢ dAᵢᵢ Dᵢ (the inverse's rule per diagonal block)."""
    D = y[0]
    dA = b.diag_blocks(dx[0], block=p["block"])
    return -b.blr_einsum(D, dA, D, spec="ibc,icd,ide->ibe")


# ---- registration -------------------------------------------------------------------------
# blr_apply: y = M x (Mᵀx if trans), M = BLR(D, U, V); dy = M dx + dD x + (dU Vᵀ + U dVᵀ)x;
# linear in x with x̄ = Mᵀȳ (D̄, Ū, V̄ come from transposing the einsum tangents)
register(Primitive(
    "blr_apply", blr_apply_impl, _blr_apply_shape, linear_in=(3,), kwargs={"trans": False},
    math="y = BLR(D, U, V) x (Mᵀx if trans)",
    frechet=_blr_apply_frechet, transpose=_blr_apply_transpose,
    doc="y = M x for the BLR matrix with diagonal blocks D [p, b, b] and off-diagonal blocks "
        "U[i, j] V[i, j]ᵀ (U, V: [p, p, b, r]); x is [p·b] or [p·b, k]"))

# blr_dense: the dense [n, n] matrix of BLR(D, U, V); dM = blkdiag(dD) + [dU Vᵀ + U dVᵀ]ᵢ≠ⱼ
register(Primitive(
    "blr_dense", blr_dense_impl, _blr_dense_shape, math="M = BLR(D, U, V)",
    frechet=_blr_dense_frechet,
    doc="the dense [p·b, p·b] matrix of the BLR operator (D, U, V)"))

# blr_compress: per-block truncated SVD, D = diagonal blocks; a stop-gradient step (dD = dU = dV = 0)
register(Primitive(
    "blr_compress", blr_compress_impl, _compress_shape, nout=3, zero_tangent=True,
    kwargs={"block": None, "rank": None}, math="D, U, V = tsvd_r(blocks of A), d = 0",
    frechet=lambda b, x, dx, y, p: [b.zero(o.type) for o in y],
    doc="D, U, V of the BLR approximation of A: per-block truncated SVD (not differentiated)"))

# block_diag_inv: Dᵢ = (A's i-th diagonal block)⁻¹; dDᵢ = −Dᵢ dAᵢᵢ Dᵢ
register(Primitive(
    "block_diag_inv", block_diag_inv_impl, _diag_blocks_shape("block_diag_inv"),
    kwargs={"block": None}, math="Dᵢ = Aᵢᵢ⁻¹", domains={0: "wellcond"},
    frechet=_block_diag_inv_frechet,
    doc="the inverses of A's diagonal blocks of size `block`, as [p, b, b]"))

# blr_einsum: a multilinear einsum (optionally ⊙ [i ≠ j]); āₖ = einsum(others, ȳ → aₖ)
register(Primitive(
    "blr_einsum", blr_einsum_impl, _einsum_shape, linear_in=ALL, kwargs={"spec": None, "mask": ""},
    internal=True, math="y = einsum(spec, x₁, …, x_m) ⊙ mask",
    frechet=_multilinear_frechet("blr_einsum"), transpose=_einsum_transpose))

# blr_reshape: y = x reshaped; linear, x̄ = ȳ reshaped back
register(Primitive(
    "blr_reshape", lambda x, *, shape: jnp.reshape(x, tuple(shape)), _reshape_shape, linear_in=(0,),
    kwargs={"shape": None}, internal=True, math="y = reshape(x)",
    frechet=lambda b, x, dx, y, p: b.blr_reshape(dx[0], **p),
    transpose=lambda b, ct, x, y, p: [None if is_zero(ct[0]) else _reshape(b, ct[0], x[0].shape)]))

# diag_blocks: D[i] = A's i-th diagonal block; linear, transpose Ā = blocks_to_diag(D̄)
register(Primitive(
    "diag_blocks", diag_blocks_impl, _diag_blocks_shape("diag_blocks"), linear_in=(0,),
    kwargs={"block": None}, internal=True, math="Dᵢ = Aᵢᵢ",
    frechet=lambda b, x, dx, y, p: b.diag_blocks(dx[0], **p),
    transpose=lambda b, ct, x, y, p: [None if is_zero(ct[0]) else b.blocks_to_diag(ct[0])]))

# blocks_to_diag: the block-diagonal matrix of D; linear, transpose D̄ = diag_blocks(Ȳ)
register(Primitive(
    "blocks_to_diag", blocks_to_diag_impl, _blocks_to_diag_shape, linear_in=(0,), internal=True,
    math="A = blkdiag(D₁, …, D_p)",
    frechet=lambda b, x, dx, y, p: b.blocks_to_diag(dx[0]),
    transpose=lambda b, ct, x, y, p: [None if is_zero(ct[0]) else b.diag_blocks(ct[0], block=x[0].shape[1])]))
