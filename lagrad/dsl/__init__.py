"""The front end: ``parse(text, path)`` turns .la source into the frozen AST of ``ast``."""
from lagrad.dsl import ast
from lagrad.dsl.parser import parse

__all__ = ["ast", "parse"]
