"""Parse .la source text into the frozen AST of ``lagrad.dsl.ast``.

``parse(text, path)`` runs one module-level lark LALR parser (grammar in ``grammar.lark``). The
AST is built *during* parsing: lark calls the ``_Builder`` method named after each grammar rule
(or alias) on every reduction, with all of the rule's tokens kept, so every node gets a ``Span``
from its first and last token and nothing recurses (deep nesting and long files are fine).
Every failure is a ``LaSyntaxError`` at the line and column of the offending text, with a hint
for the common mistakes (see "syntax errors" below).
"""
from __future__ import annotations

import dataclasses
import re
import threading
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import LarkError

from lagrad.dsl import ast
from lagrad.errors import LaSyntaxError

_GRAMMAR = Path(__file__).with_name("grammar.lark")
_OPENERS, _CLOSERS = "([{", ")]}"


class _BracketNewlines:
    """Postlexer: drop newline tokens inside ( ) and [ ], where they do not end a statement."""

    always_accept = ()

    def process(self, stream):
        stack: list[str] = []
        for tok in stream:
            if tok.type == "_NL":
                if stack and stack[-1] != "{":
                    continue
            elif len(tok) == 1 and tok.type != "STRING":
                if tok in _OPENERS:
                    stack.append(str(tok))
                elif tok in _CLOSERS and stack and _OPENERS.index(stack[-1]) == _CLOSERS.index(tok):
                    stack.pop()
            yield tok


def parse(text: str, path: str = "<string>") -> ast.Module:
    """Parse the text of a .la file into an ``ast.Module`` (``path`` is used in spans and errors).
    A leading byte-order mark is dropped and Windows (CR LF) and old Mac (CR) line ends read as
    LF, so a file saved by any editor parses, with the same lines and columns."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    with _LOCK:                                  # the builder holds this parse's path and text
        parser, builder = _get_parser()
        builder.path, builder.text = path, text
        try:
            return parser.parse(text)
        except LarkError as e:
            raise syntax_error(e, text, path, parser) from None
        except RecursionError:
            raise LaSyntaxError("expression nested too deeply", path=path, line=1, column=1,
                                source=text) from None
        finally:
            builder.text = ""


_LOCK = threading.Lock()
_CACHE: list = []


def _get_parser() -> tuple[Lark, "_Builder"]:
    """The one lark parser and its builder, made on first use."""
    if not _CACHE:
        builder = _Builder()
        parser = Lark(_GRAMMAR.read_text(encoding="utf-8"), start="module", parser="lalr",
                      lexer="basic", postlex=_BracketNewlines(), transformer=builder,
                      keep_all_tokens=True, maybe_placeholders=True)
        _CACHE.append((parser, builder))
    return _CACHE[0]


# ---- spans ----------------------------------------------------------------------------------
class _Seq(tuple):
    """A comma-separated list while it is being built, with the span it covers."""
    span = None


class _Body:
    """A `{ ... }` block while it is being built: its statements and the closing brace."""

    def __init__(self, stmts: tuple, span: ast.Span, close: Token):
        self.stmts, self.span, self.close = stmts, span, close


def _bounds(k):
    """(line, column, end_line, end_column) of a token or a built value; None if it has none."""
    if isinstance(k, Token):
        return None if k.type == "_NL" else (k.line, k.column, k.end_line, k.end_column)
    span = getattr(k, "span", None)
    if span is None or span is ast.NOSPAN:
        return None
    return (span.line, span.column, span.end_line, span.end_column)


# ---- the builder ----------------------------------------------------------------------------
def _binop(op):
    def build(self, kids):
        return ast.BinOp(op, kids[0], kids[2], span=self.join(kids[0], kids[2]))
    return build


def _nodes(kids) -> list:
    return [k for k in kids if k is not None and not isinstance(k, Token)]


class _Builder:
    """One method per grammar rule or alias; each gets the rule's children (tokens kept)."""

    path = "<string>"
    text = ""

    def span(self, kids) -> ast.Span:
        first = next((b for b in map(_bounds, kids) if b), None)
        if first is None:
            return ast.NOSPAN
        last = next(b for b in map(_bounds, reversed(kids)) if b)
        return ast.Span(self.path, first[0], first[1], last[2], last[3])

    def join(self, a, b) -> ast.Span:
        return self.span((a, b))

    def tspan(self, tok: Token) -> ast.Span:
        return ast.Span(self.path, tok.line, tok.column, tok.end_line, tok.end_column)

    def error(self, message: str, where, hint: str | None = None) -> LaSyntaxError:
        return LaSyntaxError(message, path=self.path, line=where.line, column=where.column,
                             source=self.text, hint=hint)

    def seq(self, kids, keep=None) -> _Seq:
        seq = _Seq(k for k in kids if (k.type == keep if isinstance(k, Token) else keep is None))
        seq.span = self.span(kids)
        return seq

    # ---- top level -------------------------------------------------------------------------
    def module(self, kids):
        return ast.Module(tuple(_nodes(kids)), path=self.path, source=self.text,
                          span=self.span(kids))

    def model(self, kids):
        _, name, _, params, _, ret, body = kids
        self.check_returns(body, f"model `{name}`")
        types, is_tuple = (tuple(ret), ret.is_tuple) if ret is not None else (None, False)
        return ast.Model(str(name), tuple(params), types, is_tuple, body.stmts,
                         span=self.span(kids))

    def params(self, kids):
        return self.seq(kids)

    fn_params = params

    def param(self, kids):
        return ast.Param(str(kids[0]), kids[2], span=self.span(kids))

    def ret_single(self, kids):
        ret = self.seq(kids)
        ret.is_tuple = False
        return ret

    def ret_tuple(self, kids):
        ret = self.seq(kids)
        ret.is_tuple = True
        return ret

    def fn_expr(self, kids):
        name, params, expr = kids[1], kids[3], kids[-1]
        return ast.FnDef(str(name), tuple(params), (ast.Return((expr,), span=expr.span),),
                         span=self.span(kids))

    def fn_block(self, kids):
        name, params, body = kids[1], kids[3], kids[-1]
        self.check_returns(body, f"fn `{name}`")
        return ast.FnDef(str(name), tuple(params), body.stmts, span=self.span(kids))

    def fn_param(self, kids):
        return ast.Param(str(kids[0]), kids[-1], span=self.span(kids))

    def elementwise(self, kids):
        name, params, expr = kids[1], kids[3], kids[-1]
        if len(params) != 1:
            raise self.error(f"elementwise `{name}` must take exactly one argument",
                             params.span,
                             hint="an elementwise function is a scalar function of one scalar `x`")
        return ast.ElementwiseDef(str(name), str(params[0]), expr, span=self.span(kids))

    def frechet(self, kids):
        name, args, body = kids[1], kids[3], kids[-1]
        outs = (kids[6],) if kids[6].type == "NAME" else kids[7]
        for stmt in body.stmts:
            if not isinstance(stmt, ast.Assign):
                raise self.error("only assignments are allowed in a `frechet` body", stmt.span,
                                 hint="assign the tangent of every output: `dX = ...`")
        return ast.FrechetDef(str(name), tuple(map(str, args)), tuple(map(str, outs)),
                              body.stmts, span=self.span(kids))

    def names(self, kids):
        return self.seq(kids, keep="NAME")

    # ---- types -----------------------------------------------------------------------------
    def type(self, kids):
        dims = tuple(_nodes(kids[1:])) or None
        for dim in dims or ():
            self.check_dim(dim)
        return ast.TypeAnn(str(kids[0]), dims, span=self.span(kids))

    def dtype(self, kids):
        return kids[0]

    def check_dim(self, dim):
        todo = [dim]
        while todo:
            node = todo.pop()
            if isinstance(node, ast.BinOp):
                todo += [node.left, node.right]
            elif isinstance(node, ast.Num) and not isinstance(node.value, int):
                raise self.error(f"a dimension must be an integer, not `{node.value}`", node.span)

    # ---- statements ------------------------------------------------------------------------
    def body(self, kids):
        return _Body(tuple(_nodes(kids)), self.span(kids), kids[-1])

    def check_returns(self, body: _Body, what: str):
        """The body ends with its one `return`."""
        stmts = body.stmts
        returns = [i for i, s in enumerate(stmts) if isinstance(s, ast.Return)]
        if not returns:
            kind = what.split()[0]
            raise self.error(f"missing `return` in {what}", body.close,
                             hint=f"the last statement of {'an' if kind == 'op' else 'a'} "
                                  f"{kind} body must be `return EXPR`")
        if returns[0] != len(stmts) - 1:
            raise self.error("statements after `return`", stmts[returns[0] + 1].span,
                             hint="`return` must be the last statement of the body")

    def assign(self, kids):
        targets = tuple(ast.Name(str(t), span=self.tspan(t)) for t in kids[:-2:2])
        return ast.Assign(targets, kids[-1], span=self.span(kids))

    def op_expr(self, kids):
        name, params, expr = kids[1], kids[3], kids[-1]
        return ast.OpDef(str(name), self.op_param(name, params),
                         (ast.Return((expr,), span=expr.span),), span=self.span(kids))

    def op_block(self, kids):
        name, params, body = kids[1], kids[3], kids[-1]
        param = self.op_param(name, params)
        self.check_returns(body, f"op `{name}`")
        return ast.OpDef(str(name), param, body.stmts, span=self.span(kids))

    def op_param(self, name, params) -> str:
        if len(params) != 1:
            raise self.error(f"op `{name}` must take exactly one argument", params.span,
                             hint="an operator is linear in its one argument: `op K(v) = A @ v`")
        return str(params[0])

    def for_stmt(self, kids):
        var, count, body = kids[1], kids[5], kids[-1]
        for stmt in body.stmts:
            if isinstance(stmt, ast.Return):
                raise self.error("`return` inside a `for` loop", stmt.span,
                                 hint="return once, as the last statement of the body")
        return ast.For(str(var), count, body.stmts, span=self.span(kids))

    def return_stmt(self, kids):
        return ast.Return(tuple(_nodes(kids)), span=self.span(kids))

    return_paren = return_stmt

    # ---- expressions -----------------------------------------------------------------------
    add, sub, mul, div, matmul, pow = map(_binop, ("+", "-", "*", "/", "@", "**"))

    def number(self, kids):
        return ast.Num(_number(kids[0]), span=self.tspan(kids[0]))

    def name(self, kids):
        return ast.Name(str(kids[0]), span=self.tspan(kids[0]))

    def atom(self, kids):                        # ( expr ): the span takes in the parentheses
        return dataclasses.replace(kids[1], span=self.span(kids))

    dim_atom = atom

    def neg(self, kids):
        return ast.Neg(kids[1], span=self.span(kids))

    def transpose(self, kids):
        return ast.Transpose(kids[0], span=self.span(kids))

    def attribute(self, kids):
        base, _, attr = kids
        if attr != "T":
            raise self.error(f"unknown attribute `.{attr}`", attr,
                             hint=f"only `.T` (transpose) exists; call functions as `{attr}(x)`")
        return ast.Transpose(base, span=self.span(kids))

    def index(self, kids):
        return ast.Index(kids[0], tuple(_nodes(kids[1:])), span=self.span(kids))

    def slice(self, kids):
        return ast.Slice(kids[0], kids[2], span=self.span(kids))

    def call(self, kids):
        name, args = kids[0], kids[2]
        seen: dict = {}
        for arg in args:
            if not isinstance(arg, ast.Kwarg):
                if seen:
                    raise self.error("positional argument after keyword argument", arg.span,
                                     hint="put positional arguments first: `f(a, b, k=v)`")
            elif arg.name in seen:
                raise self.error(f"keyword argument `{arg.name}` repeated", arg.span)
            else:
                seen[arg.name] = arg
        positional = tuple(a for a in args if not isinstance(a, ast.Kwarg))
        return ast.Call(str(name), positional, tuple(seen.values()), func_span=self.tspan(name),
                        span=self.span(kids))

    def args(self, kids):
        return self.seq(kids)

    def kwarg(self, kids):
        name, _, value = kids
        if isinstance(value, Token):
            span = self.tspan(value)
            if value.type == "NUMBER":
                value = ast.Num(_number(value), span=span)
            elif value.type == "STRING":
                value = ast.Str(_string(value), span=span)
            elif value.type == "NAME":
                value = ast.Name(str(value), span=span)
            else:
                value = ast.Bool(value == "true", span=span)
        elif isinstance(value, ast.Neg) and isinstance(value.operand, ast.Num):    # k=-1: one number
            value = ast.Num(-value.operand.value, span=value.span)
        return ast.Kwarg(str(name), value, span=self.span(kids))


def _number(text: str):
    return int(text) if text.isdigit() else float(text)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"'}


def _string(text: str) -> str:
    """A string literal's value: the escapes \\n \\t \\r \\\\ \\" read as in Python; any other
    backslash is kept as written."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text[1:-1])


# ---- syntax errors --------------------------------------------------------------------------
_KEYWORDS = ("model", "fn", "elementwise", "frechet", "op", "for", "in", "range", "return",
             "true", "false", "f32", "f64")
_STARTERS = ("model", "fn", "elementwise", "frechet", "op", "for", "in", "range", "return")
_WORDS = {"NAME": "a name", "NUMBER": "a number", "STRING": "a string", "_NL": "a new line",
          "$END": "the end of the file"}
_EXPR_START = {"NAME", "NUMBER", "LPAR", "MINUS"}
_BAD_CHAR_HINTS = {
    "^": "powers are written `**`",
    "!": "the language has no comparisons or logical operators",
    "<": "the language has no comparisons", ">": "the language has no comparisons",
    "&": "the language has no logical operators", "|": "the language has no logical operators",
    "`": "strings use double quotes",
}


def syntax_error(e: LarkError, text: str, path: str, parser: Lark) -> LaSyntaxError:
    """Translate a lark exception into a LaSyntaxError that says what went wrong, and where."""
    def fail(message, line, column, hint=None):
        return LaSyntaxError(message, path=path, line=line, column=column, source=text, hint=hint)

    pos = getattr(e, "pos_in_stream", None)
    if hasattr(e, "char"):                                   # UnexpectedCharacters
        char = text[pos] if pos is not None and pos < len(text) else e.char
        if char == '"':
            return fail("unterminated string", e.line, e.column,
                        "a string is double-quoted and ends on the same line")
        shown = f"`{char}`" if char.isprintable() else f"U+{ord(char):04X}"
        return fail(f"unexpected character {shown}", e.line, e.column, _BAD_CHAR_HINTS.get(char))
    tok = getattr(e, "token", None)
    if tok is None or tok.type == "$END" or getattr(tok, "line", None) is None:
        tok, line, column = None, *_end_of(text)
    else:
        line, column = tok.line, tok.column
    bracket = _bracket_problem(text)
    if bracket is not None and (line, column) >= bracket[-1]:
        return fail(*bracket[:-1])
    if not hasattr(e, "expected"):
        return fail(str(e).splitlines()[0], line, column)
    try:
        expected = set(e.accepts or e.expected)
    except Exception:                            # accepts replays the parser; keep going without
        expected = set(e.expected)
    message, hint, where = _explain(tok, expected, text, parser)
    return fail(message, *(where or (line, column)), hint)


def _explain(tok, expected, text, parser):
    """(message, hint, (line, column) or None) for an unexpected token."""
    desc = "end of file" if tok is None else \
        "end of line" if tok.type == "_NL" else f"`{tok}`"
    message = f"unexpected {desc}"
    words = _expected_words(expected, parser)
    if words:
        message += f"; expected {words}"
    if tok is None:
        return message, None, None
    prev = _previous_token(text, tok, parser)
    adjacent = prev is not None and prev.end_pos == tok.start_pos
    expr_wanted = _EXPR_START <= expected
    if prev is not None and prev.type == "NUMBER" and adjacent and tok.type == "NAME":
        if tok.startswith("_") or (prev == "0" and re.fullmatch(r"[xXoObB][0-9a-fA-F]+", str(tok))):
            return (f"`{prev}{tok}` is not a number", "numbers are written like `1000`, `0.5` or "   # 1_000, 0x10
                    "`1e-8` (no `_` separators, no hexadecimal)", _at(prev))
        return message, f"multiply with `*`: `{prev} * {tok}`", None                       # 2x
    if tok == "," and "RPAR" in expected and _in_range_call(text, tok):
        return message, "`range(N)` takes one count and runs `i` = 0, 1, …, N − 1", None
    if tok == "@" and prev == "@" and adjacent:
        return "`@@` is not an operator", "matrix product is a single `@`", _at(prev)
    if tok == "=" and (text[tok.end_pos:tok.end_pos + 1] == "=" or prev == "=" and adjacent):
        where = _at(prev) if prev == "=" and adjacent else None
        return "`==` is not an operator", "`=` assigns; the language has no comparisons", where
    if prev == "**":
        return (f"expected an exponent after `**`, not {desc}",
                "`**` is the power operator: `x ** 2`" + ("; `***` is not an operator"
                                                           if tok == "*" and adjacent else ""),
                None)
    if tok == "**":
        return message, "`**` is the power operator and needs a base on its left: `x ** 2`", None
    if tok.type in ("STRING", "TRUE", "FALSE") and expr_wanted:
        return message, ("strings and booleans appear only as keyword-argument values, "
                         "as in `f(x, flag=true)`"), None
    if tok in _KEYWORDS and "NAME" in expected:
        return f"`{tok}` is a keyword, not a name", "choose another name", None
    if prev in _STARTERS and tok in ("=", ",", ":"):
        return f"`{prev}` is a keyword, not a name", "choose another name", _at(prev)
    if "TRUE" in expected and "STRING" in expected:
        return message, ("a keyword argument's value is a number, a string, `true`, `false`, a name "
                         "(a dimension or an operator) or an integer expression of dimensions (`k=n-1`)"), None
    if tok == "(" and prev in (")", "]", "'"):
        return message, "only a function name can be called, as in `f(x)`", None
    if tok == "," and "RPAR" in expected:
        return message, ("a tuple can only be returned, `return (a, b)`; take several "
                         "results apart with `a, b = f(x)`"), None
    if tok == ":" and "RSQB" in expected:
        return message, "a slice is `a:b`, `a:` or `:b`; there is no step", None
    if tok == "'" and expr_wanted:
        return message, "`'` is the transpose; strings use double quotes", None
    if tok.type == "_NL" and expr_wanted:
        return (message, "a statement ends at the end of its line; wrap a long expression "
                         "in parentheses to continue it on the next line", None)
    if "MODEL" in expected and "FN" in expected:
        return message, ("a file holds `model`, `fn`, `elementwise` and `frechet` "
                         "definitions; statements belong inside their `{ }` bodies"), None
    if tok == "{" and expected and expected <= {"EQUAL", "COMMA"} and _after_elementwise_head(text, tok):
        return message, ("an elementwise function is one expression: `elementwise NAME(x) = EXPR` "
                         "(write a `fn` for a body of statements)"), None
    if expected and expected <= {"EQUAL", "COMMA"}:
        return message, "a statement is `name = expression`, `op`, `for` or `return`", None
    if tok.type in ("NAME", "NUMBER") and "COMMA" in expected and expected & {"RPAR", "RSQB"}:
        return message, "separate the items with `,`", None
    if "SEMICOLON" in expected and tok.type == "NAME":
        return message, "end each statement with a new line or `;`", None
    return message, None, None


def _after_elementwise_head(text, tok) -> bool:
    """Whether `tok` follows `elementwise NAME(x)` on its line."""
    line = text[text.rfind("\n", 0, tok.start_pos) + 1:tok.start_pos]
    return re.match(r"\s*elementwise\s+\w+\s*\([^)]*\)\s*$", line) is not None


def _in_range_call(text, tok) -> bool:
    """Whether the `,` at `tok` is inside `range(` on its line."""
    line_start = text.rfind("\n", 0, tok.start_pos) + 1
    head = text[line_start:tok.start_pos]
    return re.search(r"\brange\s*\([^()]*$", head) is not None


def _expected_words(expected, parser) -> str:
    words = []
    if _EXPR_START <= expected:
        words.append("an expression")
        expected = expected - _EXPR_START
    patterns = {t.name: t.pattern for t in parser.terminals}
    for name in expected:
        if name in _WORDS:
            words.append(_WORDS[name])
        elif name in patterns and patterns[name].type == "str":
            words.append(f"`{patterns[name].value}`")
    words.sort(key=lambda w: (w.startswith("`"), w))
    if not words or len(words) > 6:
        return ""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _previous_token(text, tok, parser):
    """The token just before ``tok`` (lexing the text before it), or None."""
    last = None
    try:
        for last in parser.lex(text[:tok.start_pos]):
            pass
    except LarkError:
        return None
    return last


def _at(tok):
    return (tok.line, tok.column)


def _end_of(text: str) -> tuple[int, int]:
    """Line and column just after the last non-blank character."""
    body = text.rstrip()
    lines = body.split("\n")
    return len(lines), len(lines[-1]) + 1


def _bracket_problem(text: str):
    """(message, line, column, hint, blame) for the first unbalanced bracket, or None.

    Comments and strings are skipped. A closer that matches a deeper opener means the openers
    above it were never closed; a closer that matches nothing is unmatched. A parse error at or
    after ``blame`` is put down to this bracket: after an unclosed `(` or `[` (the newlines
    inside it were swallowed), after the point where an unclosed `{` shows, or at a stray closer.
    """
    stack: list[tuple[str, int, int]] = []
    line, col, i, n = 1, 1, 0, len(text)
    string = re.compile(r'"(\\.|[^"\\\n])*"')
    while i < n:
        ch = text[i]
        if ch == "#" or ch == '"':
            j = text.find("\n", i)
            j = n if j == -1 else j
            m = string.match(text, i) if ch == '"' else None
            j = m.end() if m else j
            col, i = col + j - i, j
            continue
        if ch == "\n":
            line, col = line + 1, 0
        elif ch in _OPENERS:
            stack.append((ch, line, col))
        elif ch in _CLOSERS:
            want = _OPENERS[_CLOSERS.index(ch)]
            if stack and stack[-1][0] == want:
                stack.pop()
            elif any(b[0] == want for b in stack):
                return _unclosed(*stack[-1], f"the `{ch}` at line {line}, column {col}",
                                 (line, col))
            else:
                hint = f"there is no open `{want}` for it to close"
                if stack:
                    op, l0, c0 = stack[-1]
                    hint += f"; the `{op}` at line {l0}, column {c0} closes with `{_closer(op)}`"
                return f"unmatched `{ch}`", line, col, hint, (line, col)
        col, i = col + 1, i + 1
    if stack:
        return _unclosed(*stack[-1], "the end of the file", _end_of(text))
    return None


def _unclosed(op, line, col, where, shows):
    blame = shows if op == "{" else (line, col)
    return (f"unclosed `{op}`", line, col, f"expected `{_closer(op)}` before {where}", blame)


def _closer(opener: str) -> str:
    return _CLOSERS[_OPENERS.index(opener)]
