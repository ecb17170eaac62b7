"""Elaboration: the AST of a model becomes a flat, typed, single-assignment Program.
Names are resolved (with suggestions), `fn` helpers are inlined, `for` loops are unrolled,
and every operation's shape rule runs here, so shape errors point at the source expression."""
from __future__ import annotations

import functools
import inspect

import sympy

from ..dsl import ast
from ..errors import InputError, LaNameError, LaTypeError, LagradError
from .autodiff import _rename_result
from .builder import Builder, Val, Zero
from .operators import OpValue
from .primitive import REGISTRY, suggest
from .replay import current, logged_names, record, replay, template_key
from .scope import DimRef, LoopInt, Scope
from .types import WEAK, ShapeError, TensorType, as_dim, dim_eq, dim_symbol, fmt_dim

# calls whose positional arguments are dimensions, not values
DIM_CALLS = {"zeros": "shape", "ones": "shape", "eye": "n"}


def _is_int(v) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, sympy.Expr) and v.is_integer is not False)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# what a keyword argument's value must be, by the kind of its default (`kwarg_kind`)
KWARG_KINDS = {
    "flag": (lambda v: isinstance(v, bool), "true or false"),
    "int": (_is_int, "an integer or a dimension"),
    "number": (_is_number, "a number"),
    "text": (lambda v: isinstance(v, str), "a string"),
}


def kwarg_kind(default) -> str:
    """A keyword's kind from its default: true/false for a flag, a number for a float, a string
    for a string, and an integer (or a dimension) for an integer or no default (axis, maxiter,
    block, rank: sizes and counts)."""
    if isinstance(default, bool):
        return "flag"
    if isinstance(default, float):
        return "number"
    if isinstance(default, str):
        return "text"
    return "int"
MAX_INLINE_DEPTH = 64
MAX_INT = 2 ** 31 - 1        # sizes, indices and integer keyword values (XLA's int32 range)
MAX_UNROLLED = 10_000        # loop iterations one elaboration unrolls (nested loops multiply); XLA takes
                             # ~8 s to compile 10,000 distinct steps, minutes for 100,000
# Expressions are evaluated by recursion (value → expr → e_Call → value ...), a few Python frames
# per level. Past DEEP levels, `expr` switches to `_expr_deep`: the subexpressions at every
# STEP-th height are evaluated first, bottom-up, so no evaluation recurses more than ~DEEP
# levels and 1000-deep `exp(exp(...))` or 10 000-term sums elaborate within Python's default
# recursion limit (docs/robustness.md).
DEEP, STEP = 40, 20
_UNSET = object()


class NeedDims(LagradError):
    """A loop count depends on dimensions whose values are only known at call time."""

    def __init__(self, dims, span=None, source=None):
        self.dims = set(dims)
        super().__init__(f"the loop count depends on the dimension(s) {', '.join(sorted(self.dims))}, "
                         f"known only when the model is called; give their values "
                         f"(`f.specialize({sorted(self.dims)[0]}=...)`, or `--dims` on the command line)",
                         span=span, source=source)


class SampleDependent(Exception):
    """Raised instead of an error that depends on the sample sizes a load-time check of a model
    with call-time loop counts elaborates with (``Elaborator.sampling``): not the user's error."""


class Elaborator:
    def __init__(self, module_ctx, builder: Builder, bindings=None, sampling=False):
        self.ctx = module_ctx                  # lagrad.compiler.module.ModuleContext
        self.b = builder
        self.source = module_ctx.source
        self.bindings = dict(bindings or {})   # dimension name -> int, for loop counts
        self.used_bindings = set()
        self.inline_stack = []
        self.inherit = None                    # (prim name, params) inside a frechet text rule
        self.capture = None                    # operators.Capture while elaborating an operator body
        self._nest = 0                         # expression nesting of the current evaluation
        self._done = {}                        # id(node) -> value, deep subexpressions done first
        self.dim_names = set(getattr(module_ctx, "dim_names", ()))   # the model's (set by _params)
        self.dim_checks = []                   # (expression that must be >= 0, span): checked per call
        self.unrolled = 0                      # loop iterations unrolled so far (MAX_UNROLLED)
        self.sampling = sampling               # bindings are samples (api._check_model): size_err
        self.float_dtype = "f64"               # of zeros/ones/eye: the model's (ModuleContext._float_dtype)
        self._calls = {}                       # fn calls elaborated, by key: replayed (see inline)

    # ---- errors ------------------------------------------------------------------------------
    def err(self, cls, msg, node, hint=None):
        return cls(msg, span=node.span, source=self.source, hint=hint)

    def size_err(self, msg, node):
        """An error about sizes known only from the bindings (a loop count, an index or a size
        with a bound dimension): when the bindings are load-time samples, not an error."""
        if self.sampling:
            return SampleDependent(msg)
        return self.err(LaTypeError, msg, node)

    # ---- dimensions ---------------------------------------------------------------------------
    def dim(self, node, scope) -> sympy.Expr:
        """Evaluate a dimension expression: integers, dimension names, loop variables, + - *.
        Iterative (post-order over an explicit stack), so any nesting depth is fine."""
        todo, vals = [(node, False)], []
        while todo:
            n, ready = todo.pop()
            if isinstance(n, ast.Neg):
                if ready:
                    vals.append(-vals.pop())
                else:
                    todo += [(n, True), (n.operand, False)]
            elif isinstance(n, ast.BinOp) and n.op in "+-*":
                if ready:
                    r, l = vals.pop(), vals.pop()
                    vals.append(sympy.expand(l + r if n.op == "+" else l - r if n.op == "-" else l * r))
                else:
                    todo += [(n, True), (n.right, False), (n.left, False)]
            else:
                vals.append(self._dim_leaf(n, scope))
        return vals[0]

    def _dim_leaf(self, node, scope) -> sympy.Expr:
        if isinstance(node, ast.Num):
            if not isinstance(node.value, int):
                raise self.err(LaTypeError, f"expected an integer or a dimension, got `{node.value}`", node)
            if abs(node.value) > MAX_INT:
                raise self.err(LaTypeError, f"the integer {node.value} is too large for a size or an index "
                               f"(at most {MAX_INT})", node)
            return sympy.Integer(node.value)
        if isinstance(node, ast.Name):
            v = scope.lookup(node.id)
            if isinstance(v, DimRef):
                return v.expr
            if isinstance(v, LoopInt):
                return sympy.Integer(v.value)
            if v is None:
                hint = ("; a frechet block names no dimensions: build sizes from its arguments "
                        "(`x * 0 + 1` for ones)") if self.inherit is not None else suggest(node.id, self._dim_names(scope))
                raise self.err(LaNameError, f"unknown dimension `{node.id}`" + hint, node)
            raise self.err(LaTypeError, f"`{node.id}` is a value, not an integer or a dimension", node)
        raise self.err(LaTypeError, "expected an integer or a dimension expression (integers, "
                       "dimension names, + - *)", node)

    def _dim_names(self, scope):
        return [n for n in scope.all_names() if isinstance(scope.lookup(n), (DimRef, LoopInt))]

    def concrete(self, expr, node) -> int:
        """The integer value of a dimension expression, using call-time bindings if needed."""
        expr = as_dim(expr)
        if expr.is_Integer:
            return int(expr)
        names = {s.name for s in expr.free_symbols}
        missing = names - set(self.bindings)
        if missing:
            raise NeedDims(missing, span=node.span, source=self.source)
        self.used_bindings |= names
        return int(expr.subs({dim_symbol(k): self.bindings[k] for k in names}))

    def type_ann(self, ann: ast.TypeAnn, scope) -> TensorType:
        if ann.dims is None:
            return TensorType(ann.dtype, ())
        dims = tuple(self.dim(d, scope) for d in ann.dims)
        for d, node in zip(dims, ann.dims):
            if d.is_Integer and int(d) < 1:
                raise self.err(LaTypeError, f"a dimension's size must be at least 1, got {d}", node)
        return TensorType(ann.dtype, dims)

    # ---- expressions -------------------------------------------------------------------------
    def value(self, node, scope):
        """Evaluate an expression to a Val (or a tuple of Vals for several results)."""
        r = self.expr(node, scope)
        return self.as_value(r, node)

    def as_value(self, r, node):
        if isinstance(r, LoopInt):
            return self.b.lit(r.value)
        if isinstance(r, DimRef):
            self.b.span = node.span
            return self.b.emit("dimval", d=r.expr)
        if isinstance(r, (Val, tuple)):
            return r
        if hasattr(r, "apply"):                 # an operator (op, blr, block_jacobi) used as an array
            what = f"`{node.func}(...)`" if isinstance(node, ast.Call) else f"`{_text(node)}`"
            raise self.err(LaTypeError, f"{what} is an operator, not an array: apply it to a vector "
                           f"(`P @ x` or `P(x)` after `P = ...`), pass it as a solver's K or M=, or "
                           f"take `dense(P)`", node)
        raise self.err(LaTypeError, f"`{_text(node)}` is not a value", node)

    def expr(self, node, scope):
        done = self._done.get(id(node), _UNSET)
        if done is not _UNSET:
            return done
        if self._nest >= DEEP:
            return self._expr_deep(node, scope)
        m = getattr(self, "e_" + type(node).__name__, None)
        if m is None:
            raise self.err(LaTypeError, f"{type(node).__name__} is not allowed here", node)
        self._nest += 1
        try:
            return m(node, scope)
        finally:
            self._nest -= 1

    def _expr_deep(self, root, scope):
        """Evaluate a deeply nested expression with bounded recursion: its value subexpressions
        (see `_value_children`) at heights STEP, 2·STEP, ... are evaluated first, bottom-up, and
        remembered for the one evaluation of `root` that follows. Expressions have no side
        effects, so only the order of the emitted equations changes."""
        heights, order, todo = {}, [], [(root, False)]
        while todo:                                  # post-order, iterative
            n, ready = todo.pop()
            kids = _value_children(n, scope, self)
            if ready:
                heights[id(n)] = h = 1 + max((heights[id(k)] for k in kids), default=-1)
                if n is not root and h > 0 and h % STEP == 0:
                    order.append(n)
            elif id(n) not in heights:
                todo.append((n, True))
                todo += [(k, False) for k in reversed(kids)]
        saved, added = self._nest, []
        try:
            for n in order:
                self._nest = 0
                value = self.expr(n, scope)
                self._done[id(n)] = value
                added.append(id(n))
            self._nest = 0
            return self.expr(root, scope)
        finally:
            self._nest = saved
            for k in added:
                del self._done[k]

    def e_Num(self, node, scope):
        return self.b.lit(node.value)

    def e_Str(self, node, scope):
        raise self.err(LaTypeError, "strings appear only as keyword-argument values", node)

    e_Bool = e_Str

    def e_Name(self, node, scope):
        v = scope.lookup(node.id)
        if v is None and self.ctx.lookup_callable(node.id) is not None:
            raise self.err(LaTypeError, f"`{node.id}` is a function, not a value; call it: `{node.id}(...)`", node)
        if v is None:
            cands = [n for n in scope.all_names()]
            raise self.err(LaNameError, f"unknown name `{node.id}`" + suggest(node.id, cands), node)
        if isinstance(v, (Val, DimRef, LoopInt, tuple)):
            return self.captured(v)
        raise self.err(LaTypeError, f"`{node.id}` is {_describe(v)}, not a value; call it", node)

    def captured(self, v):
        """A value of an enclosing program, seen from inside an operator body, becomes one of the
        body's inputs."""
        if self.capture is None:
            return v
        if isinstance(v, tuple):
            return tuple(self.captured(x) for x in v)
        return self.capture.value(v) if isinstance(v, Val) else v

    def e_Neg(self, node, scope):
        if isinstance(node.operand, ast.Num):
            return self.b.lit(-node.operand.value)
        x = self.single(self.value(node.operand, scope), node.operand)
        return self.emit("neg", [x], {}, node)

    def e_BinOp(self, node, scope):
        named = isinstance(node.left, ast.Name)
        left = scope.lookup(node.left.id) if named else self.expr(node.left, scope)
        if node.op == "@" and hasattr(left, "apply") and hasattr(left, "instance"):
            # `P @ x` for an operator P (a name, or written in place: `block_jacobi(A, block=4) @ x`)
            x = self.single(self.value(node.right, scope), node.right)
            getattr(left, "check", left.instance)(self, x.type, node)  # an `op`: checked linear
            return left.apply(self, x, node)
        prim = {"+": "add", "-": "sub", "*": "mul", "/": "div", "@": "matmul", "**": "pow"}[node.op]
        l = self.single(self.value(node.left, scope) if named else self.as_value(left, node.left), node.left)
        r = self.single(self.value(node.right, scope), node.right)
        return self.emit(prim, [l, r], {}, node)

    def e_Transpose(self, node, scope):
        x = self.single(self.value(node.operand, scope), node.operand)
        return self.emit("transpose", [x], {}, node)

    def e_Index(self, node, scope):
        x = self.single(self.value(node.base, scope), node.base)
        t = x.type
        if not isinstance(t, TensorType) or len(node.items) > t.ndim:
            raise self.err(LaTypeError, f"too many indices ({len(node.items)}) for a value of type {t}", node)
        spec = []
        for k, (it, d) in enumerate(zip(node.items, t.shape)):
            if isinstance(it, ast.Slice):
                lo = sympy.Integer(0) if it.lo is None else self._bound(it.lo, d, scope, node, slice_=True)
                hi = d if it.hi is None else self._bound(it.hi, d, scope, node, slice_=True)
                ext = sympy.expand(hi - lo)
                if ext.is_number and ext < 0:
                    raise self.err(LaTypeError, f"slice {lo}:{hi} of a dimension of size {d} runs backwards (its "
                                   f"end is before its start); a slice may be empty (i:i) but not reversed", it)
                spec.append(("slice", lo, hi))
            else:
                spec.append(("at", self._bound(it, d, scope, node)))
        self._index_in_range(spec, t.shape, node)
        return self.emit("index", [x], {"spec": tuple(spec)}, node)

    def _index_in_range(self, spec, shape, node):
        """Index bounds written with dimensions (`x[2]` or `x[n-5]` of an `f64[n]`) are checked:
        at compile time when the answer is known, else for the sizes of each call (JAX would clamp
        an out-of-range index silently). With every dimension ≥ 1, `x[0]`, `x[n-1]`, `x[1:n]`
        need no check."""
        for item, d, written in zip(spec, shape, node.items):      # the error points at the index
            if item[0] == "at":
                needs = [item[1], d - 1 - item[1]]
            else:
                needs = [item[1], item[2] - item[1], d - item[2]]
            for c in needs:
                self.require_nonnegative(c, written, f"index out of range for a dimension of size {d}",
                                         "this index is out of range")

    def _size_at_least_one(self, d, who, node):
        """A size written with dimensions (`zeros(n - 5)`) is ≥ 1, like every argument's dimension."""
        self.require_nonnegative(d - 1, node, f"`{who}` needs sizes of at least 1, got {d}",
                                 f"`{who}` gets the size {d}, which must be at least 1")

    def require_nonnegative(self, c, node, now: str, per_call: str):
        """A dimension expression that must be ≥ 0: checked now when it is a number (loop counts
        fixed for this elaboration substituted: `Y[t, :]` in `for t in range(T)`), with the
        error `now`; else for the sizes of each call, with `per_call` (binding.check_dims)."""
        fixed = {x: self.bindings[x.name] for x in getattr(c, "free_symbols", ()) if x.name in self.used_bindings}
        if fixed:                                   # substituted first: `T - 1 - t` is then a number
            c = sympy.sympify(c.xreplace(fixed))
        if not getattr(c, "is_number", True):
            c = sympy.expand(c)
        if getattr(c, "is_number", True):
            if c < 0:
                raise self.size_err(now, node)
        elif not c.is_nonnegative:
            self.dim_checks.append((c, node.span, per_call))

    def _bound(self, item, d, scope, node, slice_=False):
        try:
            i = self.dim(item, scope)
        except LaTypeError:
            raise self.err(LaTypeError, "indices must be integers or dimension expressions", item) from None
        written = i
        # 1 - n (2 - n) is negative from n = 2 (3) on: it counts from the end too (x[1 - n] is
        # x[1], as in NumPy), and must be negative at each call (at n = 1 it is 0)
        below = (i.free_symbols and not i.is_negative
                 and bool(i.subs({s: 10 ** 6 for s in i.free_symbols}) < 0))
        if below:
            self.require_nonnegative(-written - 1, item, f"index {fmt_dim(written)} is 0 here, not a count from the end",
                                     f"the index {fmt_dim(written)} counts from the end, so it must be negative")
        if (i.is_Integer and int(i) < 0) or i.is_negative or below:   # counts from the end: x[-1], x[-k:]
            i = sympy.expand(d + i)
        if i.is_Integer and d.is_Integer:
            limit = int(d) + (1 if slice_ else 0)
            if not 0 <= int(i) < limit:
                raise self.size_err(f"index {fmt_dim(written)} is out of range for a dimension of size {d}", item)
        return i

    def e_Call(self, node, scope):
        name = node.func
        target = scope.lookup(name)
        if target is None:
            target = self.ctx.lookup_callable(name)
        if target is None and name in getattr(self.ctx, "models", {}):
            raise self.err(LaNameError, f"`{name}` is a model; a model cannot call another model: put "
                           f"the shared part in a `fn` and call that from both", _SpanHolder(node.func_span or node.span))
        if target is None:
            cands = list(self.ctx.callable_names()) + [n for n in scope.all_names()]
            span_node = _SpanHolder(node.func_span or node.span)
            raise self.err(LaNameError, f"unknown function `{name}`" + suggest(name, cands), span_node)
        if isinstance(target, ast.FnDef):
            return self.inline(target, node, scope)
        if hasattr(target, "apply_op"):
            return target.apply_op(self, node, scope)
        if not hasattr(target, "impl"):
            raise self.err(LaTypeError, f"`{name}` is {_describe(target)}, not a function", node)
        return self.call_prim(target, node, scope)

    def call_prim(self, p, node, scope):
        if p.elaborate is not None:
            return p.elaborate(self, node, scope)
        kwargs = {}
        for kw in node.kwargs:
            if kw.name not in p.kwargs:
                raise self.err(LaNameError, f"`{p.label}` has no keyword argument `{kw.name}`" +
                               (suggest(kw.name, p.kwargs) or
                                (f"; it takes {', '.join(p.kwargs)}" if p.kwargs else "; it takes none")), kw)
            if kw.name in kwargs:
                raise self.err(LaNameError, f"keyword argument `{kw.name}` given twice", kw)
            kwargs[kw.name] = self.kwarg_value(kw, scope, p.kwargs[kw.name], p.name, any_if_none=p.user)
        if p.name in DIM_CALLS:
            dims = tuple(self.dim(a, scope) for a in node.args)
            for d, a in zip(dims, node.args):
                self._size_at_least_one(d, p.name, a)
            if p.name == "eye":
                if len(dims) != 1:
                    raise self.err(LaTypeError, f"`eye` takes one dimension, got {len(dims)}", node)
                kwargs["n"] = dims[0]
            else:
                if not dims:
                    raise self.err(LaTypeError, f"`{p.label}` needs at least one dimension", node)
                kwargs["shape"] = dims
            if self.float_dtype != "f64":          # in an f32 model, f32 (default: f64)
                kwargs["dtype"] = self.float_dtype
            return self.emit(p.name, [], kwargs, node)
        lo, hi = arity(p)
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            want = arity_text(lo, hi)
            kws = [k for k in (p.kwargs or {}) if not k.startswith("_")]
            hint = (f"; its options are keyword arguments: {', '.join(f'{k}=' for k in kws)}"
                    if hi is not None and n > hi and kws else "")
            raise self.err(LaTypeError, f"`{p.label}` takes {want} argument{'s' if want != '1' else ''}, "
                           f"got {n}{hint}", node)
        args = [self.single(self.value(a, scope), a) for a in node.args]
        if self.inherit is not None and self.inherit[0] == p.name:
            kwargs = {**self.inherit[1], **kwargs}
        return self.emit(p.name, args, kwargs, node)

    def kwarg_value(self, kw, scope, default=None, who=None, any_if_none=False):
        """A keyword argument's value: a literal, or a name denoting a dimension or loop integer.
        With `who` (the callee), the value must be of its `default`'s kind (``kwarg_kind``; a user
        primitive's keyword without a default takes any value)."""
        if not isinstance(kw.value, (ast.Name, ast.Num, ast.Str, ast.Bool)):   # k=n-1: a dimension expression
            try:
                v = self.dim(kw.value, scope)
            except LaTypeError:
                raise self.err(LaTypeError, f"keyword argument `{kw.name}` takes a number, a string, true/false, "
                               f"a name, or an integer expression of dimensions (`k=n-1`)", kw.value) from None
            v = int(v) if v.is_Integer else v
        elif not isinstance(kw.value, ast.Name):
            v = kw.value.value
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT:
                raise self.err(LaTypeError, f"keyword argument `{kw.name}` is {v}, too large (at most "
                               f"{MAX_INT} in size)", kw.value)
        else:
            v = self._kwarg_name(kw, scope)
        if who is not None and not (any_if_none and default is None):
            kind = kwarg_kind(default)
            if not KWARG_KINDS[kind][0](v):
                shown = f'"{v}"' if isinstance(v, str) else ("true" if v is True else "false" if v is False else v)
                raise self.err(LaTypeError, f"keyword argument `{kw.name}` of `{who}` takes "
                               f"{KWARG_KINDS[kind][1]}, got {shown}", kw.value)
        return v

    def _kwarg_name(self, kw, scope):
        v = scope.lookup(kw.value.id)
        if isinstance(v, LoopInt):
            return v.value
        if isinstance(v, DimRef):
            return v.expr
        if v is None:
            raise self.err(LaNameError, f"unknown name `{kw.value.id}`" +
                           suggest(kw.value.id, self._dim_names(scope)), kw.value)
        raise self.err(LaTypeError, f"keyword argument `{kw.name}` takes a number, a string, true/false "
                       f"or a dimension, not {_describe(v)}", kw.value)

    def single(self, v, node):
        if isinstance(v, tuple):
            raise self.err(LaTypeError, f"this call gives {len(v)} results; unpack them with "
                           f"`a, b = ...` first", node)
        return v

    def emit(self, prim, args, params, node):
        self.b.span = node.span
        try:
            out = self.b.emit(prim, *args, **params)
        except ShapeError as e:
            msg, head = str(e), _opname(prim)
            bare = head.strip("`")
            if msg.startswith(f"{bare}: "):                   # "solve: assume …": name it once
                msg = f"{head}: {msg[len(bare) + 2:]}"
            elif msg.startswith(f"{bare} "):                  # "hcat joins …"
                msg = f"{head} {msg[len(bare) + 1:]}"
            raise self.err(LaTypeError, msg if msg.startswith(head) else f"{head}: {msg}", node) from None
        self._sizes_whole(out, prim, node)
        return out

    def _sizes_whole(self, out, prim, node):
        """A result size that is a quotient of dimensions (p = n/b blocks of `block_jacobi(A,
        block=b)` for f64[n, n]) needs each call's sizes to divide: checked per call, here."""
        for v in out if isinstance(out, tuple) else (out,):
            for d in getattr(v.type, "shape", ()) if hasattr(v, "type") else ():
                q = _quotient(d)
                if q is not None:
                    who = f"`{node.func}`" if isinstance(node, ast.Call) else _opname(prim)
                    self.dim_checks.append((-sympy.Mod(*q), node.span,
                                            f"{who} makes a size of {d}, which must be a whole number"))

    # ---- helpers: fn inlining -----------------------------------------------------------------
    def inline(self, fn: ast.FnDef, node, scope):
        if node.kwargs:
            raise self.err(LaTypeError, f"`{fn.name}` is a fn; it takes no keyword arguments", node.kwargs[0])
        if len(node.args) != len(fn.params):
            raise self.err(LaTypeError, f"`{fn.name}` takes {len(fn.params)} argument(s), got {len(node.args)}", node)
        if fn.name in self.inline_stack:
            raise self.err(LaTypeError, f"`{fn.name}` calls itself; fn helpers are inlined and cannot recurse", node)
        if len(self.inline_stack) >= MAX_INLINE_DEPTH:
            raise self.err(LaTypeError, f"`{fn.name}` is called through {MAX_INLINE_DEPTH} nested fn helpers; "
                           f"inlining stops there", node)
        inner = Scope({}, parent=self.ctx.globals_scope())
        dimmap, compound, args = {}, [], []
        for prm, a in zip(fn.params, node.args):
            v = self.value(a, scope)
            if prm.type is not None:
                compound += self._unify(prm.type, v, dimmap, a, fn)
            inner.bind(prm.name, v)
            args.append(v)
        self._unify_compound(compound, dimmap, fn)
        key = self._call_key(fn, args)
        done = self._calls.get(key) if key is not None else None
        if done is not None and current(done[0]) and self.unrolled + done[2] <= MAX_UNROLLED:
            return self._replay_call(done, args)
        for dn, expr in dimmap.items():
            if inner.lookup(dn) is None:
                inner.bind(dn, DimRef(expr))
        start, unrolled = len(self.b.eqns), self.unrolled
        self.inline_stack.append(fn.name)
        try:
            with logged_names(self.b.namer) as calls:
                result = self.body(fn.body, inner)
        finally:
            self.inline_stack.pop()
        outs = list(result) if isinstance(result, tuple) else [result]
        if key is not None and all(isinstance(v, Val) for v in outs):
            tpl = record(self.b.eqns[start:], calls, outs, args, spans=True)
            if tpl is not None:
                self._calls[key] = (tpl, isinstance(result, tuple), self.unrolled - unrolled,
                                    (self.b.span, self.b.origin))
        return result

    def _call_key(self, fn, args):
        """What elaborating `fn`'s body on `args` depends on besides the template's arguments
        (replay.template_key): where it is called (the nesting that picks the order of deep
        subexpressions, the fn helpers it is inlined in) and which arguments a transpose made
        (`a'` in the body folds to the transposed value). None: elaborate it afresh."""
        if self.capture is not None or self.inherit is not None:
            return None
        b = self.b
        folded = tuple(getattr(b._defining(getattr(v, "atom", None)), "prim", None) == "transpose"
                       for v in args) if b.fold_transposes else None
        return template_key(args, (id(fn), self._nest, tuple(self.inline_stack), folded))

    def _replay_call(self, done, args):
        """The equations the first call with this key emitted, on `args` (replay.replay), and
        that call's effects on the elaboration: the loop iterations it unrolled, where it left the
        builder's span. (Its size checks and the dimensions it read are the recorded call's, which
        made them already: `dim_checks` is deduplicated and `used_bindings` a set.)"""
        tpl, many, unrolled, (span, origin) = done
        outs = replay(self.b, tpl, args)
        self.b.span, self.b.origin = span, origin
        self.unrolled += unrolled
        return tuple(outs) if many else outs[0]

    def _unify(self, ann, v, dimmap, node, fn):
        t = v.type if isinstance(v, Val) else None
        if t is None or not isinstance(t, TensorType):
            raise self.err(LaTypeError, f"argument of `{fn.name}` must be an array", node)
        want = len(ann.dims or ())
        if t.ndim != want:
            raise self.err(LaTypeError, f"`{fn.name}` expects {ann.dtype}{'[..]' * bool(want)} with {want} "
                           f"dimension(s), got {t}", node)
        if t.dtype not in (ann.dtype, WEAK):        # a constant (weak) fits either precision
            raise self.err(LaTypeError, f"`{fn.name}` expects {ann.dtype} values, got {t}", node)
        compound = []
        for d, got in zip(ann.dims or (), t.shape):
            if isinstance(d, ast.Name):
                prev = dimmap.get(d.id)
                if prev is None:
                    dimmap[d.id] = got
                elif not dim_eq(prev, got):
                    raise self.err(LaTypeError, f"`{fn.name}`: dimension `{d.id}` is {prev} and {got}", node)
            elif isinstance(d, ast.Num):
                if not dim_eq(d.value, got):
                    raise self.err(LaTypeError, f"`{fn.name}` expects a dimension of {d.value}, got {got}", node)
            else:
                compound.append((d, got, node))
        return compound

    def _unify_compound(self, compound, dimmap, fn):
        """`fn g(w: f64[k + 1])` called with an f64[n]: a dimension expression binds the one name
        the others do not (k = n - 1), else it is checked against the argument's size."""
        todo = list(compound)
        while todo:
            left = []
            for d, got, node in todo:
                names = names_in(d)
                expr = self.dim(d, Scope({n: DimRef(dim_symbol(n)) for n in names}))
                unknown = sorted({n for n in names if n not in dimmap})
                expr = expr.subs({dim_symbol(n): dimmap[n] for n in names if n in dimmap})
                if not unknown:
                    if not dim_eq(expr, got):
                        raise self.err(LaTypeError, f"`{fn.name}` expects a dimension of {fmt_dim(expr)}, "
                                       f"got {fmt_dim(got)}", node)
                    continue
                sols = sympy.solve(sympy.Eq(expr, got), dim_symbol(unknown[0])) if len(unknown) == 1 else []
                if len(sols) == 1:
                    dimmap[unknown[0]] = sympy.expand(sols[0])
                else:
                    left.append((d, got, node))
            if len(left) == len(todo):
                d, got, node = left[0]
                raise self.err(LaTypeError, f"`{fn.name}`: cannot tell {', '.join(f'`{n}`' for n in names_in(d) if n not in dimmap)} "
                               f"from a dimension of {fmt_dim(got)}; give each name alone in some parameter's type", d)
            todo = left

    # ---- statements ---------------------------------------------------------------------------
    def body(self, stmts, scope):
        """Run statements; returns the Return's values (a Val or a tuple) or None."""
        for k, st in enumerate(stmts):
            if isinstance(st, ast.Return):
                if k != len(stmts) - 1:
                    raise self.err(LaTypeError, "statements after `return`", stmts[k + 1])
                vals = [self.single(self.value(v, scope), v) for v in st.values]
                return vals[0] if len(vals) == 1 else tuple(vals)
            self.stmt(st, scope)
        return None

    def stmt(self, st, scope):
        if isinstance(st, ast.Assign):
            return self.assign(st, scope)
        if isinstance(st, ast.For):
            return self.loop(st, scope)
        if isinstance(st, ast.OpDef):
            return self.ctx.define_op(self, st, scope)
        raise self.err(LaTypeError, f"unexpected {type(st).__name__}", st)

    def assign(self, st, scope):
        start = len(self.b.eqns)
        v = self.expr(st.value, scope)
        targets = st.targets
        if len(targets) == 1:
            v = self.single(v, st.value) if isinstance(v, tuple) else v
            self._bind(targets[0], v, scope, start)
            return
        if not isinstance(v, tuple):
            raise self.err(LaTypeError, f"cannot unpack one value into {len(targets)} names", st)
        if len(v) != len(targets):
            raise self.err(LaTypeError, f"the right side gives {len(v)} results, not {len(targets)}", st)
        for t, x in zip(targets, v):
            self._bind(t, x, scope, start)

    def _bind(self, target, v, scope, start):
        name = target.id
        prev = scope.lookup(name)
        if isinstance(prev, DimRef) and name in self.dim_names:
            raise self.err(LaNameError, f"`{name}` is a dimension of the model; choose another name", target)
        if isinstance(prev, LoopInt):
            raise self.err(LaNameError, f"`{name}` is a loop variable and cannot be assigned", target)
        if isinstance(v, Val) and not isinstance(v, Zero):
            v = _rename_result(self.b, start, v, name)
        scope.bind(name, v)

    def loop(self, st, scope):
        written = self.dim(st.count, scope)
        count = self.concrete(written, st.count)
        if count < 0:
            sizes = sorted(x.name for x in getattr(written, "free_symbols", ()))
            if sizes and not self.sampling:         # `range(n - 5)` at a call with n = 3: the sizes'
                raise self.err(InputError, f"the loop count {fmt_dim(written)} is {count} for the arguments' "
                               f"sizes ({', '.join(f'{k} = {self.bindings[k]}' for k in sizes)})", st.count)
            raise self.size_err(f"loop count {count} is negative", st.count)
        prev = scope.names.get(st.var)
        if isinstance(prev, (Val, DimRef)):
            raise self.err(LaNameError, f"loop variable `{st.var}` hides a name already in use", st)
        if self.unrolled + count > MAX_UNROLLED:
            raise self.size_err(f"this loop would make {self.unrolled + count} unrolled iterations in all; "
                                f"lagrad unrolls loops when it compiles and stops at {MAX_UNROLLED}", st.count)
        self.unrolled += count
        for i in range(count):
            scope.bind(st.var, LoopInt(i))
            self.body(st.body, scope)


_ARITY: dict = {}        # id(primitive) -> (primitive, (lo, hi)): inspect.signature is slow, and
                         # an unrolled loop or a Fréchet rule asks once per use


def arity(p):
    if p.min_args is not None:
        return p.min_args, p.max_args
    hit = _ARITY.get(id(p))
    if hit is None or hit[0] is not p:
        hit = _ARITY[id(p)] = (p, _signature_arity(p))
    return hit[1]


def _signature_arity(p):
    try:
        sig = inspect.signature(p.impl)
    except (TypeError, ValueError):
        return 0, None
    lo, hi = 0, 0
    for prm in sig.parameters.values():
        if prm.kind == prm.VAR_POSITIONAL:
            hi = None
        elif prm.kind in (prm.POSITIONAL_ONLY, prm.POSITIONAL_OR_KEYWORD) and prm.name not in p.kwargs:
            if prm.default is prm.empty:
                lo += 1
            if hi is not None:
                hi += 1
    return lo, hi


class _SpanHolder:
    def __init__(self, span):
        self.span = span


def arity_text(lo, hi) -> str:
    """`2`, `at least 1` or `1 to 3`: an argument count as `arity` gives it."""
    return f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")


def names_in(node):
    """The dimension names in a dimension expression, left to right (iterative)."""
    out, todo = [], [node]
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name):
            out.append(n.id)
        elif isinstance(n, ast.BinOp):
            todo += [n.right, n.left]
        elif isinstance(n, ast.Neg):
            todo.append(n.operand)
    return out


def _value_children(node, scope, el) -> list:
    """The subexpressions of `node` that are evaluated as values in the same scope (so may be
    evaluated ahead of it): operands, an index's base, the arguments of primitives, `fn` helpers
    and operators. Dimension positions (indices, `zeros(n)`), keyword arguments and operator
    names are left out."""
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, (ast.Neg, ast.Transpose)):
        return [node.operand]
    if isinstance(node, ast.Index):
        return [node.base]
    if not isinstance(node, ast.Call) or node.func in DIM_CALLS:
        return []
    target = scope.lookup(node.func)
    if target is None:
        target = el.ctx.lookup_callable(node.func)
    if isinstance(target, (ast.FnDef, OpValue)):
        return list(node.args)
    if getattr(target, "impl", None) is None:
        return []
    if target.elaborate is None:
        return list(node.args)
    return list(node.args[1:2]) if target.name in ("cg", "gmres") else []


@functools.lru_cache(maxsize=4096)
def _quotient(d):
    """(numerator, denominator) of a size that is a quotient of dimensions (n/4), else None;
    memoized: every equation an elaboration emits asks it of each result size."""
    if d.is_Integer or d.is_Symbol:
        return None
    num, den = sympy.fraction(sympy.together(d))
    return None if den.is_Integer and int(den) == 1 else (num, den)


def _opname(prim):
    p = REGISTRY.get(prim)
    return f"`{p.infix}`" if p is not None and p.infix else f"`{p.label if p is not None else prim}`"


def _text(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Num):
        return str(node.value)
    if isinstance(node, ast.Neg):
        return "-" + _text(node.operand)
    return type(node).__name__.lower()


def _describe(v):
    if isinstance(v, ast.FnDef):
        return "a fn"
    if hasattr(v, "apply_op"):
        return "an operator"
    if isinstance(v, (Val, tuple)):
        return "a value"
    if hasattr(v, "impl"):
        return "a function"
    return "not a value"
