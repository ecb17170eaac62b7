"""Load an example's driver script as a module (the examples are scripts, not a package), so
tests can call its functions and `main(argv)` in-process."""
from __future__ import annotations

import importlib.util
import pathlib

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def load_example(relpath: str):
    """The module of examples/<relpath>, e.g. ``load_example("kalman/fit.py")``."""
    path = EXAMPLES / relpath
    name = "lagrad_example_" + relpath.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
