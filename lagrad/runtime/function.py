"""``Function``: a compiled model. Calling it runs the jitted primal program; `grad`,
`value_and_grad`, `vjp`, `jvp` run derived programs; `jax.grad` of it uses lagrad's adjoint
through a bridge (``Compiled.bridged``) whose every derivative is one of lagrad's derived programs, so
jit/vmap/grad/jvp compose."""
from __future__ import annotations

import inspect
import threading

import jax
import jax.numpy as jnp
import numpy as np

from ..compiler.autodiff import linearize, vjp_program
from ..compiler.elaborate import NeedDims
from ..compiler.ir import Var
from ..compiler.module import canonical, lowered
from ..compiler.primitive import suggest
from ..compiler.split import split_adjoint
from ..compiler.types import TensorType, as_dim
from ..compiler.gc_pause import paused_gc
from ..errors import InputError, LagradError
from . import binding
from .jax_linear import linear_map
from .lower import to_jax


_ARRAY = type(jnp.zeros(()))          # the concrete jax.Array class (tracers are not it)


def _device_arrays(args, kwargs) -> bool:
    """Whether a call can take a Function's jitted fast path: positional concrete jax.Arrays
    only (not tracers, NumPy arrays, Python scalars or lists, which go through binding)."""
    if kwargs:
        return False
    for a in args:
        if type(a) is not _ARRAY:
            return False
    return True


def _seed(dtype):
    """The output seed 1 of a gradient, as a NumPy scalar: inside the jitted call it is a literal
    of the program. (A device array closed over by a trace becomes an extra argument of the
    executable, which JAX 0.10.2's C++ dispatch then fails to pass on the next call: "Execution
    supplied 2 arguments but compiled program expected 3".) Off the jitted path, binding the
    arguments costs more than the scalar's conversion."""
    return np.float32(1.0) if dtype == "f32" else np.float64(1.0)


def _device_array_groups(args, kwargs) -> bool:
    """The fast-path test of `jvp` and `hvp` calls: two positional groups (primals and tangents;
    arguments and directions), each a concrete jax.Array or a tuple of them."""
    if kwargs or len(args) != 2:
        return False
    return all(type(g) is _ARRAY or (type(g) is tuple and _device_arrays(g, None)) for g in args)


def _fast_path(slow, check_finite, accepts=_device_arrays):
    """`slow` (a call through lagrad's binding), with calls on positional device arrays sent to
    one ``jax.jit`` of it: JAX's C++ dispatch then keys its cache on the arguments' shapes and
    dtypes (which determine the model's dimensions), so a repeated call skips lagrad's Python
    path. The first call with new shapes traces `slow`, which binds the tracers (the same
    checks and errors) and inlines the jitted program. `check_finite` needs the values, so
    such Functions keep the Python path."""
    if check_finite:
        return slow
    jitted = jax.jit(slow)

    def run(*args, **kwargs):
        if accepts(args, kwargs):
            return jitted(*args)
        return slow(*args, **kwargs)
    run._jitted = jitted            # the ahead-of-time path (``.lower(...).compile()``): benchmarks
    return run


class Compiled:
    """Everything derived from one elaboration of a model (one binding of its loop dims)."""

    def __init__(self, prog):
        self.canonical = canonical(prog)
        self.dim_checks = prog.meta.get("dim_checks", ())
        self.n_in = len(prog.inputs)
        self.n_out = len(prog.outputs)
        self._memo = {}
        self._lock = threading.RLock()

    def memo(self, key, make):
        with self._lock:
            if key not in self._memo:
                with paused_gc():
                    self._memo[key] = make()
            return self._memo[key]

    def primal(self):
        return self.memo("primal", lambda: lowered(self.canonical))

    def out_names(self):
        """Names for the outputs (a literal output, `return 0.5`, is `outK`)."""
        return [o.name if isinstance(o, Var) else f"out{k}" for k, o in enumerate(self.canonical.outputs)]

    def adjoint(self, wrt, keep=False, split=False):
        """The lowered adjoint program; with `split`, one that `split_adjoint` will cut at its seed
        inputs, so lowering keeps everything computed from a seed out of the forward part."""
        names = (self.out_names() if keep else []) + [self.canonical.inputs[i].name + "_bar" for i in wrt]

        def make():
            adj = vjp_program(self.canonical, list(wrt), keep_primal_outputs=keep)
            adj.meta["split"] = split
            return lowered(adj, names)
        return self.memo(("adjoint", wrt, keep, split), make)

    def tangent(self, wrt):
        names = self.out_names() + ["d" + n for n in self.out_names()]
        return self.memo(("tangent", wrt), lambda: lowered(linearize(self.canonical, list(wrt)), names))

    def hvp(self, wrt):
        """Forward over reverse: the linearization of the adjoint program in the `wrt` inputs.
        Inputs: primal inputs, the output seed, directions; outputs: H·direction."""
        def make():
            adj = vjp_program(self.canonical, list(wrt))
            tp = linearize(adj, list(wrt))
            tp = tp.copy(outputs=tp.outputs[len(adj.outputs):], kind="hvp")
            names = [self.canonical.inputs[i].name + "_hvp" for i in wrt]
            return lowered(tp, names)
        return self.memo(("hvp", wrt), make)

    def jax_fn(self, key, make_prog):
        return self.memo(("jax",) + key, lambda: to_jax(make_prog()))

    def split(self):
        def make():
            adj = self.adjoint(tuple(range(self.n_in)), keep=True, split=True)
            f, b = split_adjoint(adj, self.n_in, self.n_out)
            return to_jax(f), to_jax(b)
        return self.memo("split", make)

    def bridged(self):
        """The primal as a JAX function whose derivatives are lagrad's derived programs: its
        tangent is J ẋ (the tangent program), a linear map whose transpose is the split adjoint's
        backward part on the forward part's residuals. So jax.grad runs the forward part once and
        the backward part, as a custom_vjp would, and jax.jvp and jax.jacfwd run the tangent
        program."""
        def make():
            primal = self.jax_fn(("primal",), self.primal)
            n_in, n_out = self.n_in, self.n_out
            outputs, backward, tangent = self.second_order()

            def push(*a):       # (x, residuals, ẋ) ↦ J ẋ
                return list(tangent(a[:n_in], a[len(a) - n_in:]))
            push.transposable_in_res = True      # its derivative in x is `tangent`'s linear_map

            tree = []           # the residuals' structure (a factor is a tuple of arrays)

            def pull(*a):       # (x, residuals, ȳ) ↦ Jᵀ ȳ, from the residuals
                res = jax.tree.unflatten(tree[0], a[n_in:len(a) - n_out])
                return list(backward(a[:n_in], tuple(res), a[len(a) - n_out:]))
            pull.transposable_in_res = True      # its derivative in x is `backward`'s linear_map

            @jax.custom_jvp
            def f(*args):
                return tuple(primal(*args))

            @f.defjvp
            def f_jvp(args, dargs):
                r = self.split()[0](*args)
                # the forward part's results and residuals are functions of the arguments, but
                # their derivatives come from `outputs` and `backward`: JAX must not differentiate
                # (and could not reverse) the forward part's loops
                ys = outputs(tuple(args), tuple(jax.lax.stop_gradient(v) for v in r[:n_out]))
                res, t = jax.tree.flatten(tuple(r[n_out:]))
                tree[:] = [t]
                res = [jax.lax.stop_gradient(v) for v in res]
                return tuple(ys), tuple(linear_map(push, pull, (*args, *res), dargs, ys))
            return f
        return self.memo("bridged", make)

    def second_order(self):
        """The bridge's forward results and backward pass as JAX functions whose derivatives are
        lagrad's, so jax.grad of jax.grad, jax.hessian and jax.linearize of jax.grad run derived
        programs (JAX cannot reverse-differentiate the programs' own while loops):
        - `outputs(x, y)` is y (the split forward's results), moving by J ẋ (the tangent program),
          a linear map whose transpose is the adjoint ȳ ↦ Jᵀ ȳ;
        - `backward(x, residuals, ȳ)` is x̄ = Jᵀ ȳ, moving by H_ȳ ẋ + Jᵀ ȳ̇ (H_ȳ = Σ ȳ_k ∇²f_k, the
          hvp program), a linear map whose transpose is ḡ ↦ (H_ȳ ḡ, J ḡ);
        - `tangent(x, v)` is J v, moving by ∂²f(ẋ, v) + J v̇ (JAX's jvp of the tangent program), a
          linear map whose transpose is ȳ ↦ (H_ȳ v, Jᵀ ȳ): jax.grad of jax.jvp."""
        def make():
            idx = tuple(range(self.n_in))
            n_in, n_out = self.n_in, self.n_out

            # derived on first use: a first-order jax.grad never asks for them
            def hvp(*a):
                return self.jax_fn(("hvp", idx), lambda: self.hvp(idx))(*a)

            def tan(*a):
                return self.jax_fn(("tangent", idx), lambda: self.tangent(idx))(*a)

            def adj(*a):
                return self.jax_fn(("adjoint", idx, False), lambda: self.adjoint(idx))(*a)

            def move(*a):       # (x, ȳ, ẋ, ȳ̇) ↦ H_ȳ ẋ + Jᵀ ȳ̇
                x, ct, xd, cd = a[:n_in], a[n_in:n_in + n_out], a[n_in + n_out:2 * n_in + n_out], a[2 * n_in + n_out:]
                return [u + v for u, v in zip(hvp(*x, *ct, *xd), adj(*x, *cd))]

            def move_t(*a):     # (x, ȳ, ḡ) ↦ (H_ȳ ḡ, J ḡ)
                x, ct, g = a[:n_in], a[n_in:n_in + n_out], a[n_in + n_out:]
                return list(hvp(*x, *ct, *g)) + list(tan(*x, *g)[n_out:])

            def push(*a):       # (x, ẋ) ↦ J ẋ
                return list(tan(*a)[n_out:])

            @jax.custom_jvp
            def outputs(xs, ys):
                return ys

            @outputs.defjvp
            def outputs_jvp(primals, tangents):
                xs, ys = primals
                return ys, tuple(linear_map(push, adj, xs, tangents[0], ys))     # adj: (x, ȳ) ↦ Jᵀ ȳ

            def turn(*a):       # (x, v, ẋ, v̇) ↦ ∂²f(ẋ, v) + J v̇
                x, v, xd, vd = a[:n_in], a[n_in:2 * n_in], a[2 * n_in:3 * n_in], a[3 * n_in:]
                d2 = jax.jvp(lambda *x: push(*x, *v), tuple(x), tuple(xd))[1]
                return [u + w for u, w in zip(d2, push(*x, *vd))]

            def turn_t(*a):     # (x, v, ȳ) ↦ (H_ȳ v, Jᵀ ȳ)
                x, v, ct = a[:n_in], a[n_in:2 * n_in], a[2 * n_in:]
                return list(hvp(*x, *ct, *v)) + list(adj(*x, *ct))

            @jax.custom_jvp
            def tangent(xs, vs):
                return tuple(push(*xs, *vs))

            @tangent.defjvp
            def tangent_jvp(primals, tangents):
                xs, vs = primals
                t = tangent(xs, vs)
                return t, tuple(linear_map(turn, turn_t, (*xs, *vs), (*tangents[0], *tangents[1]), t))

            @jax.custom_jvp
            def backward(xs, rs, cts):
                return tuple(self.split()[1](*rs, *cts))

            @backward.defjvp
            def backward_jvp(primals, tangents):
                xs, rs, cts = primals
                xd, _, cd = tangents
                return backward(xs, rs, cts), tuple(linear_map(move, move_t, (*xs, *cts), (*xd, *cd), xs))
            return outputs, backward, tangent
        return self.memo("second_order", make)


class Function:
    """A model of a loaded module, callable like a JAX function."""

    def __init__(self, ctx, name, fixed_dims=None, check_finite=False):
        self._ctx = ctx
        self.name = name
        self._model = ctx.models[name]
        self._fixed = dict(fixed_dims or {})
        self.check_finite = bool(check_finite)   # refuse NaN/inf arguments (docs/robustness.md)
        self._cache = {}
        self._loop_dims = None
        self._lock = threading.RLock()
        self._grads = {}                         # (wrt, single, keep) / ("hvp", wrt, single) -> callable
        self._vjp_seen = {}                      # ((shape, dtype), ...) of bound device arrays -> Compiled
        self.params = ctx.signature(name)
        self._call = _fast_path(self._call_slow, self.check_finite)
        self._jvp = _fast_path(self._jvp_slow, self.check_finite, _device_array_groups)
        self.__name__ = name
        self.__doc__ = f"lagrad model `{name}` from {ctx.path}"
        # inspect.signature(f) (and of f.grad(...)) shows the model's parameters
        self.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                                for n, _ in self.params])

    def __repr__(self):
        sig = ", ".join(f"{n}: {t}" for n, t in self.params)
        return f"<lagrad.Function {self.name}({sig})>"

    # -- compilation ------------------------------------------------------------------------
    def compiled(self, dims=None, check_sizes=True) -> Compiled:
        """The compiled programs for these dimension sizes (`check_sizes`: raise the InputError
        of a size check the sizes fail, see Elaborator.require_nonnegative)."""
        for k, v in self._fixed.items():
            if dims and k in dims and dims[k] != v:
                raise InputError(f"`{self.name}` is specialized to {k} = {v}, but the arguments give "
                                 f"{k} = {dims[k]}")
        dims = {**(dims or {}), **self._fixed}
        with self._lock:
            if self._loop_dims is not None:
                key = tuple(sorted((k, dims[k]) for k in self._loop_dims if k in dims))
                if key in self._cache:
                    c = self._cache[key]
                    if check_sizes:
                        binding.check_dims(self.name, c.dim_checks, dims, self._ctx.source)
                    return c
            with paused_gc():
                prog, used = self._ctx.elaborate(self.name, dims)
                self._loop_dims = set(used)
                key = tuple(sorted(used.items()))
                c = self._cache.setdefault(key, Compiled(prog))
        if check_sizes:
            binding.check_dims(self.name, c.dim_checks, dims, self._ctx.source)
        return c

    def specialize(self, **dims) -> "Function":
        """The same model with some dimensions fixed (needed to print a model whose loop
        counts are dimensions)."""
        known = self.dim_names()
        for k, v in dims.items():
            if k not in known:
                raise InputError(f"`{self.name}` has no dimension `{k}`" + (suggest(k, sorted(known)) or
                                 f" (its dimensions: {', '.join(sorted(known)) or 'none'})"))
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"dimension `{k}` must be a positive integer, got {v!r}")
        return Function(self._ctx, self.name, {**self._fixed, **{k: int(v) for k, v in dims.items()}},
                        check_finite=self.check_finite)

    def dim_names(self) -> set:
        """The model's dimension names: the symbols in its arguments' shapes."""
        return {x.name for _, t in self.params for d in getattr(t, "shape", ()) for x in as_dim(d).free_symbols}

    def _bind(self, args, kwargs):
        """(arrays, dims): the arguments checked against the signature (binding.bind)."""
        return binding.bind(self.name, self.params, args, kwargs, check_finite=self.check_finite)

    def _wrt(self, wrt):
        names = [n for n, _ in self.params]
        if wrt is None:
            return tuple(range(len(names))), False
        single = isinstance(wrt, str)
        if not single and not (isinstance(wrt, (list, tuple)) and all(isinstance(w, str) for w in wrt)):
            raise InputError(f"`wrt` names arguments of `{self.name}` ({', '.join(names)}): a name, "
                             f"a list of names or None, not {wrt!r}")
        items = [w.strip() for w in wrt.split(",")] if single else list(wrt)
        single = single and len(items) == 1
        idx = []
        for w in items:
            if w not in names:
                raise InputError(f"`{self.name}` has no argument `{w}` to differentiate with respect to" +
                                 suggest(w, names))
            if names.index(w) in idx:
                raise InputError(f"`wrt` names `{w}` twice: list each argument of `{self.name}` once")
            idx.append(names.index(w))
        return tuple(idx), single

    # -- running ----------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def _call_slow(self, *args, **kwargs):
        arrays, dims = self._bind(args, kwargs)
        c = self.compiled(dims)
        if any(isinstance(a, jax.core.Tracer) for a in arrays):
            fn = c.bridged()                    # under a JAX transformation: lagrad's adjoint
        else:
            fn = c.jax_fn(("primal",), c.primal)
        out = fn(*arrays)
        return out[0] if len(out) == 1 else tuple(out)

    def _scalar_check(self, c, what):
        outs = c.canonical.outputs
        if len(outs) != 1 or not (isinstance(outs[0].type, TensorType) and outs[0].type.is_scalar):
            raise LagradError(f"`{what}` needs `{self.name}` to return one scalar; it returns "
                              f"{', '.join(str(o.type) for o in outs)} (use `vjp` instead)")

    def _grad_impl(self, wrt, keep):
        """The gradient callable for (wrt, keep), made once per Function (so `f.grad("x")` in
        a loop compiles once)."""
        idx, single = self._wrt(wrt)
        return self._callable((idx, single, keep), lambda: self._make_grad(idx, single, keep))

    def _callable(self, key, make):
        """The derived callable for `key` (grad, value_and_grad, hvp), made once per Function."""
        with self._lock:
            run = self._grads.get(key)
            if run is None:
                run = self._grads[key] = make()
        return run

    def _make_grad(self, idx, single, keep):
        purpose = ("adjoint", idx, keep)

        def slow(*args, **kwargs):
            arrays, dims = self._bind(args, kwargs)
            c = self.compiled(dims)
            self._scalar_check(c, "value_and_grad" if keep else "grad")
            fn = c.jax_fn(purpose, lambda: c.adjoint(idx, keep))
            res = fn(*arrays, _seed(c.canonical.outputs[0].type.dtype))
            grads = res[1:] if keep else res
            g = grads[0] if single else tuple(grads)
            return (res[0], g) if keep else g
        run = _fast_path(slow, self.check_finite)
        run.__name__ = run.__qualname__ = f"{'value_and_grad' if keep else 'grad'}_{self.name}"
        run.__signature__ = self.__signature__
        return run

    def grad(self, wrt=None):
        """A callable with f's signature returning gradients: one array for a single name,
        a tuple in order for a list, all inputs for None."""
        return self._grad_impl(wrt, keep=False)

    def value_and_grad(self, wrt=None):
        return self._grad_impl(wrt, keep=True)

    def hvp(self, wrt=None):
        """A callable ``(args, directions) -> H·direction`` for scalar f, derived by linearizing
        the adjoint program (forward over reverse); `directions` has the structure of `wrt`.
        Made once per `wrt`, like `grad`."""
        idx, single = self._wrt(wrt)
        return self._callable(("hvp", idx, single), lambda: self._make_hvp(idx, single))

    def _make_hvp(self, idx, single):
        def slow(args, directions):
            if not isinstance(args, (tuple, list)):
                raise InputError(f"hvp of `{self.name}` takes (args, directions): args is the tuple "
                                 f"of `{self.name}`'s arguments, got {type(args).__name__}")
            if not single and not isinstance(directions, (tuple, list)):
                raise InputError(f"hvp: the directions are a tuple, one per `wrt` input ({len(idx)})")
            arrays, dims = self._bind(tuple(args), {})
            c = self.compiled(dims)
            self._scalar_check(c, "hvp")
            dirs = (directions,) if single else tuple(directions)
            if len(dirs) != len(idx):
                raise InputError(f"hvp: {len(idx)} direction(s) expected (one per `wrt` input), got {len(dirs)}")
            vs = []
            for i, d in zip(idx, dirs):
                name, t = self.params[i]
                v = binding.convert(f"the direction for `{name}`", d, t)
                if v.ndim == 0 and arrays[i].ndim:          # a scalar seeds every entry, as in jvp
                    v = jnp.broadcast_to(v, arrays[i].shape)
                if tuple(v.shape) != tuple(arrays[i].shape):
                    raise InputError(f"the direction for `{name}` has shape {tuple(v.shape)}, not {tuple(arrays[i].shape)}")
                vs.append(v)
            fn = c.jax_fn(("hvp", idx), lambda: c.hvp(idx))
            res = fn(*arrays, _seed(c.canonical.outputs[0].type.dtype), *vs)
            return res[0] if single else tuple(res)
        run = _fast_path(slow, self.check_finite, _device_array_groups)
        run.__name__ = run.__qualname__ = f"hvp_{self.name}"
        return run

    def vjp(self, *args, **kwargs):
        """``(out, pullback)``; ``pullback(ct)`` gives the cotangents of all inputs. The pullback
        is a Python closure over the forward's residuals, so `vjp` is two jitted calls (the
        split forward and backward programs) rather than one jit; on device arrays whose shapes
        and dtypes a call has already bound, it skips binding (``_vjp_bound``)."""
        c, arrays = self._vjp_bound(args, kwargs)
        fwd, bwd = c.split()
        r = fwd(*arrays)
        outs, res = tuple(r[:c.n_out]), tuple(r[c.n_out:])

        def pullback(*cts):
            if len(cts) == 1 and c.n_out > 1 and isinstance(cts[0], (tuple, list)):
                cts = tuple(cts[0])
            if len(cts) != c.n_out:
                raise InputError(f"the pullback of `{self.name}` takes {c.n_out} cotangent(s), got {len(cts)}")
            return tuple(bwd(*res, *(binding.cotangent(f"the cotangent of output {k} of `{self.name}`", ct,
                                                       o.shape, o.dtype) for k, (ct, o) in enumerate(zip(cts, outs)))))
        return (outs[0] if c.n_out == 1 else outs), pullback

    def _vjp_bound(self, args, kwargs):
        """(Compiled, arrays) for a vjp call. Positional device arrays with the shapes and dtypes
        of an earlier call that binding passed through unchanged go straight to that call's
        Compiled: shapes fix the dimensions, so binding would check and return the same."""
        fast = not self.check_finite and _device_arrays(args, kwargs)
        key = tuple((a.shape, a.dtype) for a in args) if fast else None
        c = self._vjp_seen.get(key) if fast else None
        if c is not None:
            return c, args
        arrays, dims = self._bind(args, kwargs)
        c = self.compiled(dims)
        if fast and all(a is b for a, b in zip(arrays, args)):
            self._vjp_seen[key] = c
        return c, arrays

    def jvp(self, primals, tangents):
        """``(out, tangent_out)`` by the derived forward-mode (Fréchet) program."""
        return self._jvp(primals, tangents)

    def _jvp_slow(self, primals, tangents):
        if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
            raise InputError(f"jvp of `{self.name}` takes (primals, tangents), two tuples of "
                             f"{len(self.params)} value(s)")
        primals, tangents = tuple(primals), tuple(tangents)
        if len(primals) != len(tangents):
            raise InputError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
        arrays, dims = self._bind(primals, {})
        tarrays = [binding.convert(f"the tangent of `{n}`", t, ty) for (n, ty), t in zip(self.params, tangents)]
        for (n, _), a, t in zip(self.params, arrays, tarrays):
            if t.shape != a.shape:
                t = jnp.broadcast_to(t, a.shape) if t.ndim == 0 else t
                if t.shape != a.shape:
                    raise InputError(f"the tangent of `{n}` has shape {t.shape}, not {a.shape}")
        tarrays = [jnp.broadcast_to(t, a.shape) for t, a in zip(tarrays, arrays)]
        c = self.compiled(dims)
        idx = tuple(range(c.n_in))
        fn = c.jax_fn(("tangent", idx), lambda: c.tangent(idx))
        r = fn(*arrays, *tarrays)
        outs, touts = r[:c.n_out], r[c.n_out:]
        return (outs[0], touts[0]) if c.n_out == 1 else (tuple(outs), tuple(touts))

    def to_torch(self):
        """A function of torch tensors for PyTorch autograd whose backward is lagrad's derived
        adjoint; arrays pass by DLPack (see lagrad/runtime/torch_bridge.py)."""
        from .torch_bridge import to_torch
        return to_torch(self)

    # -- inspection -------------------------------------------------------------------------
    def _static(self) -> Compiled:
        try:
            return self.compiled({})
        except NeedDims as e:
            raise LagradError(f"`{self.name}` unrolls a loop over dimension(s) {', '.join(sorted(e.dims))}; "
                              f"print it for given sizes with `f.specialize({sorted(e.dims)[0]}=...)` "
                              f"(on the command line: `--dims {sorted(e.dims)[0]}=...`)") from None

    @property
    def program(self):
        """The primal program (as it runs: factorizations shared)."""
        return self._static().primal()

    def adjoint(self, wrt=None):
        """The derived adjoint program for the inputs `wrt` (all when None)."""
        idx, _ = self._wrt(wrt)
        return self._static().adjoint(idx)

    def tangent(self, wrt=None):
        """The derived forward-mode (Fréchet) program."""
        idx, _ = self._wrt(wrt)
        return self._static().tangent(idx)
