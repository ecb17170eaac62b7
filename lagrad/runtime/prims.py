"""``P``: the namespace generated programs call primitives through (``P.solve(A, B)``)."""
from __future__ import annotations

from ..compiler.primitive import REGISTRY


class _Prims:
    @staticmethod
    def _lagrad_elementwise(key, name, expr, body=""):
        """An elementwise function of a .la file, registered where generated source runs."""
        from ..compiler.elementwise import from_source
        from_source(key, name, expr, body)

    def __getattr__(self, name):
        try:
            return REGISTRY[name].impl
        except KeyError:
            raise AttributeError(f"no lagrad primitive `{name}` is registered") from None


P = _Prims()
