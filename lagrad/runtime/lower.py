"""Lowering: a Program becomes a jitted JAX function by executing its generated source."""
from __future__ import annotations

import jax

from ..compiler.ir import Program
from .codegen import function_name, generate_source


def to_callable(prog: Program, src: str | None = None):
    """The plain (un-jitted) Python function of the program (from `src`, its generated source
    as given, else generated here); returns a tuple of outputs."""
    src = generate_source(prog) if src is None else src
    namespace: dict = {"__name__": f"lagrad_generated_{prog.name}"}
    code = compile(src, f"<lagrad {prog.kind} {prog.name}>", "exec")
    exec(code, namespace)
    return namespace[function_name(prog)]


def to_jax(prog: Program):
    """The jitted JAX function of the program: ``f(*arrays) -> tuple of outputs``."""
    return jax.jit(to_callable(prog))
