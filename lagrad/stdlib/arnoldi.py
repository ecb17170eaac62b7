"""``V, H = arnoldi(K, v, k)``: k steps of the Arnoldi process on an operator K from v, so that
K V[:, :k] = V H with V [n, k+1] orthonormal and H [k+1, k] upper Hessenberg.

Modified Gram–Schmidt with one re-orthogonalization pass, statically unrolled (k is an integer
or a dimension known at compile time; fine for k ≤ 50). A k written with dimensions (`n`,
`n - 1`) keeps the types symbolic: V is [n, k + 1] and H [k + 1, k] in those dimensions, so a
declared result type checks. Every step is ordinary primitives (the operator's body inlined,
dot, norm, scalar arithmetic), so the derivative of (V, H) comes from their rules: forward and
reverse mode through the unrolled process, no rule of its own. At a breakdown (an invariant
subspace, H[j+1, j] = 0) the derivative is not defined.
"""
from __future__ import annotations

from ..compiler.operators import MACROS
from ..errors import LaTypeError

MAX_STEPS = 200


class Arnoldi:
    name = "arnoldi"

    def apply_op(self, el, node, scope):
        from .krylov import operator_value
        if node.kwargs or len(node.args) != 3:
            raise el.err(LaTypeError, "`arnoldi` takes an operator, a start vector and a step count: "
                         "`V, H = arnoldi(K, v, k)`", node)
        v = el.single(el.value(node.args[1], scope), node.args[1])
        if v.type.ndim != 1:
            raise el.err(LaTypeError, f"arnoldi: the start vector must be a vector, got {v.type}", node.args[1])
        steps = el.dim(node.args[2], scope)              # k as written: `6`, `n`, `n - 1`
        k = el.concrete(steps, node.args[2])             # the count the process is unrolled to
        if not 1 <= k <= MAX_STEPS:
            raise el.err(LaTypeError, f"arnoldi: the step count must be between 1 and {MAX_STEPS}, got {k}",
                         node.args[2])
        n = v.type.shape[0]                              # k ≤ n: past n steps the basis breaks down
        el.require_nonnegative(n - k, node.args[2], f"arnoldi: the step count {k} is more than the vector's "
                               f"length {n}", f"arnoldi's step count {k} is more than the vector's length {n}")
        K = operator_value(el, node.args[0], scope, "the first argument of `arnoldi`")
        K.instance(el, v.type, node)                     # checks linearity (and the shape below)
        el.b.span = node.span
        b = el.b
        zero = b.lit(0.0)
        V = [v / b.norm(v)]
        H = [[zero] * k for _ in range(k + 1)]
        for j in range(k):
            w = K.apply(el, V[j], node)
            if w.type.shape != v.type.shape and str(w.type) != str(v.type):
                raise el.err(LaTypeError, f"arnoldi: operator `{K.name}` maps {v.type} to {w.type}", node)
            el.b.span = node.span
            for _ in range(2):                           # MGS, then once more (re-orthogonalization)
                for i in range(j + 1):
                    h = b.dot(V[i], w)
                    w = w - h * V[i]
                    H[i][j] = h if H[i][j] is zero else H[i][j] + h
            hn = b.norm(w)
            H[j + 1][j] = hn
            V.append(w / hn)
        symbolic = not steps.is_Integer
        Vt = b.vcat(*V)                                  # rows v₀ … v_k
        Vm = (_sized(b, Vt, steps + 1) if symbolic else Vt).T
        Hm = b.vcat(*[b.hcat(*row) for row in H])
        return Vm, _sized(b, Hm, steps + 1, steps) if symbolic else Hm


def _sized(b, X, *sizes):
    """X, built from k + 1 pieces and so of integer sizes, typed with the sizes it has for a step
    count written with dimensions (`arnoldi(K, v, n)`: V is [n, n + 1], H [n + 1, n]), so that
    its type reads as declared: all of X, indexed with those sizes. The elaboration holds only
    for the sizes the count was fixed with (`Elaborator.concrete` records them), where they agree."""
    return b.index(X, spec=tuple(("slice", 0, d) for d in sizes))


MACROS["arnoldi"] = Arnoldi()
