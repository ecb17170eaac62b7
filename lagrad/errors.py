"""Errors a user can cause. Every one is a LagradError; file errors print as
``path:line:col: message``, the source line and a caret under the place."""
from __future__ import annotations


class LagradError(Exception):
    """Base of every error caused by a user's file or inputs."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 column: int | None = None, source_line: str | None = None,
                 hint: str | None = None, span=None, source: str | None = None):
        if span is not None:
            path = path if path is not None else span.path
            line = line if line is not None else span.line
            column = column if column is not None else span.column
        if source_line is None and source is not None and line is not None:
            lines = source.splitlines()
            if 1 <= line <= len(lines):
                source_line = lines[line - 1]
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        self.source_line = source_line
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        head = self.message
        if self.line is not None:
            head = f"{self.path or '<string>'}:{self.line}:{self.column or 1}: {self.message}"
        parts = [head]
        if self.source_line is not None:
            line = self.source_line.rstrip("\n")
            prefix = line[:max((self.column or 1) - 1, 0)].expandtabs(4)
            parts.append("    " + line.expandtabs(4))
            parts.append("    " + " " * len(prefix) + "^")
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self._render()

    def located(self, span, source: str | None = None):
        """A copy of this error placed at ``span`` when it has no position yet."""
        if self.line is not None or span is None:
            return self
        return type(self)(self.message, span=span, source=source, hint=self.hint)


class LaSyntaxError(LagradError):
    """Malformed source text."""


class LaTypeError(LagradError):
    """Shapes, dtypes or linearity that do not fit."""


class LaNameError(LagradError):
    """An unknown or ill-used name."""


class InputError(LagradError):
    """A call-time argument that does not match the model's signature."""


class RuleError(LagradError):
    """A derivative needs a rule that is missing, or a rule is ill-formed."""
