"""``P``: the namespace generated programs call primitives through (``P.solve(A, B)``)."""
from __future__ import annotations

from ..compiler.primitive import REGISTRY


class _Prims:
    def __getattr__(self, name):
        try:
            return REGISTRY[name].impl
        except KeyError:
            raise AttributeError(f"no lagrad primitive `{name}` is registered") from None


P = _Prims()
