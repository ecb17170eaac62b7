"""lagrad: a compiler for differentiable linear algebra. ``.la`` models → jitted JAX forward,
tangent and adjoint programs derived from registered Fréchet rules."""
import jax as _jax

_jax.config.update("jax_enable_x64", True)

from . import stdlib  # noqa: E402,F401  (registers the standard library)
from .errors import InputError, LaNameError, LaSyntaxError, LaTypeError, LagradError, RuleError  # noqa: E402
from .runtime.api import Module, load, loads, primitive  # noqa: E402
from .runtime.function import Function  # noqa: E402
from .stdlib.lyap import is_schur_stable, is_stable  # noqa: E402

__version__ = "0.1.0"
__all__ = ["load", "loads", "primitive", "Module", "Function", "LagradError", "LaSyntaxError",
           "LaTypeError", "LaNameError", "InputError", "RuleError", "is_stable", "is_schur_stable"]
