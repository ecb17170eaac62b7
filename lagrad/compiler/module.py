"""A parsed module's definitions and the compilation of its models to Programs."""
from __future__ import annotations

from ..dsl import ast
from ..errors import LaNameError, LaSyntaxError, LaTypeError, RuleError
from . import elementwise as ew
from .builder import Builder, Zero
from .elaborate import Elaborator, names_in as _dim_names
from .frechet_text import check_signature, parse_frechet, same_rule
from .ir import Namer, Program, Var
from .passes import CANONICAL, LOWERING, run_passes, typecheck
from .primitive import REGISTRY, USER_KEYS, resolve, suggest
from .scope import DimRef, Scope
from .types import TensorType, WEAK, dim_symbol, shape_eq


class ModuleContext:
    def __init__(self, mod: ast.Module):
        self.ast = mod
        self.source = mod.source
        self.path = mod.path
        self.models, self.fns, self.elementwise = {}, {}, {}
        self._ew_pending, self._ew_defining = {}, []      # elementwise definitions not yet made
        self.dim_names = set()
        self.user_keys = dict(USER_KEYS)     # user primitives as registered when the file was loaded
        rules = {}
        for it in mod.items:                 # before any block attaches to its primitive
            if isinstance(it, ast.FrechetDef):
                if it.name in rules:
                    raise RuleError(f"a second `frechet {it.name}` block (the first is at line "
                                    f"{rules[it.name].span.line}): a primitive has one Fréchet rule",
                                    span=it.span, source=self.source)
                rules[it.name] = it
        seen = {}
        for it in mod.items:
            if isinstance(it, ast.FrechetDef):
                self._attach_frechet(it)
                continue
            if it.name in seen:
                raise LaNameError(f"`{it.name}` is defined twice (first at line {seen[it.name].span.line})",
                                  span=it.span, source=self.source)
            seen[it.name] = it
            if isinstance(it, ast.Model):
                self.models[it.name] = it
            elif isinstance(it, ast.FnDef):
                if it.name in REGISTRY and not REGISTRY[it.name].user and not REGISTRY[it.name].internal:
                    raise LaNameError(f"`{it.name}` is a standard-library function; choose another name",
                                      span=it.span, source=self.source)
                named = set()
                for prm in it.params:
                    if prm.name in named:
                        raise LaNameError(f"parameter `{prm.name}` of `{it.name}` is declared twice",
                                          span=prm.span, source=self.source)
                    named.add(prm.name)
                self.fns[it.name] = it
            elif isinstance(it, ast.ElementwiseDef):
                self._ew_pending[it.name] = it
        for name in list(self._ew_pending):      # in any order: one may use another defined below it
            self.elementwise_def(name)

    def elementwise_def(self, name):
        """The elementwise primitive `name` of this file, defined on first use (None if the file
        has no such definition); a definition that uses itself, directly or not, is an error."""
        if name in self.elementwise:
            return self.elementwise[name]
        it = self._ew_pending.get(name)
        if it is None:
            return None
        if name in self._ew_defining:
            raise LaTypeError(f"elementwise `{name}` uses itself (through "
                              f"{' → '.join(self._ew_defining + [name])}); elementwise functions cannot recurse",
                              span=it.span, source=self.source)
        self._ew_defining.append(name)
        try:
            self.elementwise[name] = ew.define(it, self, self.source)
        except (RecursionError, SyntaxError):   # sympy's and Python's own limits (docs/robustness.md)
            raise LaSyntaxError(f"elementwise `{name}` is nested too deeply for symbolic differentiation "
                                f"(its expression, with the elementwise functions it calls inlined); "
                                f"write it as a `fn`, which has no such limit", span=it.span,
                                source=self.source) from None
        finally:
            self._ew_defining.pop()
        return self.elementwise[name]

    def _check_rule_block(self, p, d: ast.FrechetDef):
        """What a frechet block gets wrong without types, at load rather than at the first
        derivative: its outputs, its argument count, a dOUT it never assigns, an unknown name.
        (Linearity needs the types: it is checked when the rule first runs.)"""
        from .elaborate import arity, arity_text
        check_signature(p, d, self.source)
        lo, hi = arity(p)
        if len(d.args) < lo or (hi is not None and len(d.args) > hi):
            raise RuleError(f"`frechet {d.name}` names {len(d.args)} argument(s), but `{d.name}` takes "
                            f"{arity_text(lo, hi)}",
                            span=d.span, source=self.source)
        known = set(d.args) | set(d.outs) | {"d" + a for a in d.args}
        for st in d.body:
            for node in _names_in(st.value):
                if node.id not in known:
                    hint = suggest(node.id, sorted(known)) or (
                        "; a frechet block knows its arguments, outputs, their tangents and what it "
                        "assigns, and names no dimensions: build sizes from its arguments (`x * 0 + 1` for ones)")
                    raise LaNameError(f"unknown name `{node.id}` in the frechet block of `{d.name}`" + hint,
                                      span=node.span, source=self.source)
            known |= {t.id for t in st.targets}
        for o in d.outs:
            if "d" + o not in known:
                raise RuleError(f"the frechet block of `{d.name}` does not assign `d{o}`", span=d.span,
                                source=self.source)

    def _attach_frechet(self, d: ast.FrechetDef):
        p = resolve(d.name, self.user_keys)
        if p is None or p.internal:
            from .primitive import public_names
            raise LaNameError(f"`frechet {d.name}`: no primitive `{d.name}` is registered (register it "
                              f"with lagrad.primitive first)" + suggest(d.name, public_names()),
                              span=d.span, source=self.source)
        if not p.user:
            std = parse_frechet(p) if isinstance(p.frechet, str) else None
            if std is not None and same_rule(d, std):
                return                          # the SPEC's `frechet inv(A) -> X { ... }`: the rule it has
            raise RuleError(f"`{d.name}` is a standard-library primitive; its Fréchet rule cannot be replaced"
                            + (f" (a block may restate it: `{p.frechet}`)" if std is not None else ""),
                            span=d.span, source=self.source)
        self._check_rule_block(p, d)
        p.frechet = d
        p.frechet_source = self.source
        p.frechet_module = self         # the block may call this file's fn and elementwise definitions
        p._compiled_frechet = None

    # -- what the elaborator asks ----------------------------------------------------------
    def lookup_callable(self, name):
        if name in self.fns:
            return self.fns[name]
        if name in self.elementwise:
            return self.elementwise[name]
        p = resolve(name, self.user_keys)
        if p is None:
            from .operators import MACROS
            return MACROS.get(name)
        return p if not p.internal else None

    def callable_names(self):
        from .operators import MACROS
        from .primitive import public_names
        return list(self.fns) + list(self.elementwise) + public_names() + list(MACROS)

    def globals_scope(self):
        return Scope({})

    def define_op(self, el, st, scope):
        """`op K(v) ...`: bind K to a closure over a snapshot of the names in scope."""
        from .operators import OpValue
        prev = scope.lookup(st.name)
        if isinstance(prev, DimRef) and st.name in el.dim_names:
            raise el.err(LaNameError, f"`{st.name}` is a dimension of the model; choose another name", st)
        scope.bind(st.name, OpValue(st, Scope(dict(scope.names), parent=scope.parent), self))

    # -- compiling a model ------------------------------------------------------------------
    def elaborate(self, name: str, bindings=None, sampling=False) -> tuple:
        """The raw Program of model `name` and the dimension bindings the elaboration used
        (`sampling`: the bindings are samples, see ``Elaborator.size_err``)."""
        m = self.models[name]
        namer = Namer()
        b = Builder(namer, source=self.source)
        scope = Scope({}, parent=self.globals_scope())
        el = Elaborator(self, b, bindings, sampling)
        inputs = []
        for prm, t in self._params(m, el, scope):
            v = Var(namer.fresh(prm.name), t)
            inputs.append(v)
            scope.bind(prm.name, b.wrap(v))
        el.float_dtype = self._float_dtype(m, inputs, el, scope)
        try:
            result = el.body(m.body, scope)
        except RecursionError:                  # only through pathological nesting (docs/robustness.md)
            raise LaSyntaxError(f"`{name}` is nested too deeply to compile (deeper than Python's "
                                f"recursion limit allows for this construct)", span=m.span,
                                source=self.source) from None
        results = list(result) if isinstance(result, tuple) else [result]
        ret = m.body[-1]
        outs = []
        for k, r in enumerate(results):
            if isinstance(r, Zero):
                r = b.materialize(r)
            if r.type.dtype == WEAK and el.float_dtype != "f64":    # `return 3.0` of an f32 model
                r = b.emit("zeros", shape=tuple(r.type.shape), dtype=el.float_dtype) + r
            outs.append(r.atom)
        self._check_return(m, outs, ret, el, scope)
        prog = Program(name, inputs, b.eqns, outs, kind="primal", path=self.path, source=self.source)
        prog.meta["dim_checks"] = tuple(dict.fromkeys(el.dim_checks))   # see Elaborator._index_in_range
        return prog, {k: bindings[k] for k in el.used_bindings}

    def signature(self, name: str) -> list:
        """[(parameter name, TensorType)] of model `name`."""
        el = Elaborator(self, Builder(Namer(), source=self.source))
        return [(prm.name, t) for prm, t in self._params(self.models[name], el, Scope({}))]

    def _float_dtype(self, m, inputs, el, scope) -> str:
        """The precision a model computes in where no argument says (``zeros``, ``ones``, ``eye``,
        a constant returned): f32 when every floating parameter and declared result is f32
        (SPEC §4: f32 models compute in single precision), else f64."""
        kinds = {v.type.dtype for v in inputs if isinstance(v.type, TensorType)}
        kinds |= {el.type_ann(a, scope).dtype for a in (m.ret or ())}
        return "f32" if kinds == {"f32"} else "f64"

    def _params(self, m, el, scope):
        """Declare the model's dimensions in `scope` (and in `el.dim_names`: per elaboration,
        so models of one module elaborate concurrently); yields (Param, TensorType)."""
        dim_names = el.dim_names = set()
        alone = set()
        for prm in m.params:
            if prm.type is None:
                raise LaTypeError(f"model parameter `{prm.name}` needs a type", span=prm.span, source=self.source)
            for d in prm.type.dims or ():
                for n in _dim_names(d):
                    dim_names.add(n)
                    scope.bind(n, DimRef(dim_symbol(n)))
                if isinstance(d, ast.Name):
                    alone.add(d.id)
        seen = set()
        out = []
        for prm in m.params:
            if prm.name in dim_names:
                raise LaNameError(f"`{prm.name}` is both a parameter and a dimension", span=prm.span, source=self.source)
            if prm.name in seen:
                raise LaNameError(f"parameter `{prm.name}` is declared twice", span=prm.span, source=self.source)
            seen.add(prm.name)
            out.append((prm, el.type_ann(prm.type, scope)))
        for prm, _ in out:
            for d in prm.type.dims or ():
                for n in _dim_names(d):
                    if n not in alone:
                        raise LaTypeError(f"dimension `{n}` must appear alone in some argument's type, "
                                          f"where a call can bind it", span=d.span, source=self.source)
        return out

    def _check_return(self, m, outs, ret, el, scope):
        if m.ret is None:
            return
        if len(m.ret) != len(outs):
            raise LaTypeError(f"`{m.name}` is declared to return {len(m.ret)} value(s) but returns {len(outs)}",
                              span=ret.span, source=self.source)
        for ann, o, node in zip(m.ret, outs, ret.values):
            want = el.type_ann(ann, scope)
            got = o.type
            ok = isinstance(got, TensorType) and shape_eq(got.shape, want.shape) and \
                got.dtype in (want.dtype, WEAK)
            if not ok:
                raise LaTypeError(f"`{m.name}` is declared to return {want} but this is {got}",
                                  span=node.span, source=self.source)


def canonical(prog: Program) -> Program:
    """The program differentiation works on: inv products rewritten, CSE, DCE."""
    return run_passes(prog, CANONICAL)


def lowered(prog: Program, out_names=None) -> Program:
    """The program that runs and prints: factorizations shared as values, tidy names."""
    from .passes import checking_passes, tidy_names
    prog = tidy_names(run_passes(prog, LOWERING), out_names)
    # checked (like every pass) only under LAGRAD_CHECK_PASSES=1: see run_passes
    return typecheck(prog, "lowering, tidy_names") if checking_passes() else prog



def _names_in(node):
    """The Name nodes an expression reads (not call names, keyword names or literals)."""
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Name):
            out.append(n)
        elif isinstance(n, tuple):
            stack.extend(n)
        elif isinstance(n, ast.Node):
            stack.extend(ast.fields_of(n).values())
    return out
