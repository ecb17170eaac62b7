"""Shape rules shared by many primitives. Each takes (in_types, params) and returns the result
type(s), raising ShapeError with a message naming both shapes."""
from __future__ import annotations

from ..compiler.builder import expect
from ..compiler.types import ShapeError, TensorType, WEAK, dim_eq, promote, shape_eq


def _dt(t):
    return "f64" if t.dtype == WEAK else t.dtype


def tensor(t, what="argument") -> TensorType:
    if not isinstance(t, TensorType):
        raise ShapeError(f"{what} must be an array or scalar, got {t}")
    return t


def elementwise(types, params):
    """Scalars broadcast against anything; otherwise shapes must match."""
    for t in types:
        tensor(t)
    shaped = [t for t in types if t.shape]
    shape = shaped[0].shape if shaped else ()
    for t in shaped[1:]:
        if not shape_eq(t.shape, shape):
            raise ShapeError(f"elementwise operands must have the same shape, got {shaped[0]} and {t}")
    return TensorType(promote(*[t.dtype for t in types]), shape)


def same(types, params):
    """The argument's type. A number literal's stays weak, as in JAX (jnp.exp(2.0) is weakly
    typed): `x * exp(-1.0)` of an f32 `x` is f32."""
    t = tensor(types[0])
    return TensorType(t.dtype, t.shape)


def square(t, what="argument") -> TensorType:
    tensor(t, what)
    expect(t.ndim == 2 and dim_eq(t.shape[0], t.shape[1]), f"{what} must be a square matrix, got {t}")
    return t


def matrix(t, what="argument") -> TensorType:
    tensor(t, what)
    expect(t.ndim == 2, f"{what} must be a matrix, got {t}")
    return t


def matmul(types, params):
    a, b = tensor(types[0]), tensor(types[1])
    dt = promote(a.dtype, b.dtype)
    expect(a.ndim in (1, 2) and b.ndim in (1, 2),
           f"`@` needs matrices or vectors, got {a} and {b}; use `*` for scalars")
    k1 = a.shape[-1]
    k2 = b.shape[0]
    if not dim_eq(k1, k2):
        raise ShapeError(f"`@` inner dimensions differ: {a} @ {b} ({k1} vs {k2})")
    shape = a.shape[:-1] + b.shape[1:]
    return TensorType(dt, shape)


def square_solve(types, params, what="solve"):
    """A square [n, n] with B [n] or [n, k]: the result has B's shape."""
    a, b = square(types[0], "the matrix"), tensor(types[1])
    expect(b.ndim in (1, 2), f"{what}: the right-hand side must be a vector or matrix, got {b}")
    if not dim_eq(a.shape[0], b.shape[0]):
        raise ShapeError(f"{what}: {a} and right-hand side {b} have different row counts")
    return TensorType(promote(a.dtype, b.dtype), b.shape)
