"""The public entry points: ``load``, ``loads``, ``Module`` and ``primitive``."""
from __future__ import annotations

import threading

from ..compiler import primitive as prim_mod
from ..compiler.gc_pause import paused_gc
from ..compiler.module import ModuleContext
from ..compiler.primitive import suggest
from ..dsl import parse
from ..errors import LaNameError, LagradError, LaSyntaxError
from .function import Function

_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()
_REGISTRY_VERSION = [0]


class UnknownModel(LaNameError, AttributeError, KeyError):
    def __str__(self):
        return LaNameError.__str__(self)


class Module:
    """The models of one .la file, as attributes and by ``module["name"]``."""

    def __init__(self, ctx: ModuleContext, check_finite: bool = False):
        self._ctx = ctx
        self._functions = {name: Function(ctx, name, check_finite=check_finite) for name in ctx.models}

    @property
    def path(self):
        return self._ctx.path

    def names(self):
        return list(self._functions)

    def __getitem__(self, name) -> Function:
        if not isinstance(name, str):
            raise TypeError(f"a Module is indexed by model name (a str), got {name!r}")
        try:
            return self._functions[name]
        except KeyError:
            raise UnknownModel(f"no model `{name}` in {self._ctx.path}" + suggest(name, self._functions)) from None

    def __getattribute__(self, name):
        """A model wins over a Module member of the same name (`model path(...)` is `mod.path`;
        the member stays reachable as ``Module.path.fget(mod)``)."""
        if not name.startswith("_"):
            fns = object.__getattribute__(self, "_functions")
            if name in fns:
                return fns[name]
        return object.__getattribute__(self, name)

    def __getattr__(self, name) -> Function:
        if name.startswith("_"):            # `model _p(...)` is mod._p; Python's own probes are not models
            try:
                return object.__getattribute__(self, "_functions")[name]
            except (AttributeError, KeyError):
                raise AttributeError(name) from None
        return self[name]

    def __contains__(self, name):
        return name in self._functions

    def __iter__(self):
        return iter(self._functions)

    def __len__(self):
        return len(self._functions)

    def __dir__(self):
        return list(super().__dir__()) + list(self._functions)

    def __repr__(self):
        return f"<lagrad.Module {self._ctx.path}: {', '.join(self._functions)}>"


def loads(text: str, name: str = "<string>", *, check_finite: bool = False) -> Module:
    """Parse and check every model in `text`. Loading the same text twice costs nothing: the
    module, and everything compiled from it, is cached (keyed by text, name, options and the
    registry). `check_finite=True`: calls refuse arguments holding NaN or inf (InputError)."""
    if not isinstance(text, str):
        raise TypeError(f"lagrad.loads takes the text of a .la file as a str, got {type(text).__name__}"
                        + (" (decode the bytes first, or use lagrad.load(path))" if isinstance(text, bytes) else ""))
    check_finite = bool(check_finite)
    key = (text, str(name), check_finite, _REGISTRY_VERSION[0])
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    with paused_gc():
        ctx = ModuleContext(parse(text, path=str(name)))
        mod = Module(ctx, check_finite=check_finite)
        for f in mod._functions.values():      # type-check every model now
            f.params
            _check_model(f)
    with _CACHE_LOCK:
        return _CACHE.setdefault(key, mod)


LOOP_SAMPLE = 3      # the size a load-time check gives a dimension that counts a loop


def _check_model(f: Function):
    """Type-check a model now. One whose loop counts are dimensions (known at call time) is
    elaborated with each such dimension set to LOOP_SAMPLE, so a misspelled name or a shape
    error in the loop body is reported at load like anywhere else; what depends on the sample
    itself (a negative count, an index out of range) waits for the call's sizes."""
    from ..compiler.elaborate import NeedDims, SampleDependent
    try:
        f.compiled({})
        return
    except NeedDims as e:
        sample = {d: LOOP_SAMPLE for d in e.dims}
    for _ in range(8):                      # a count that needs another dimension: add it and go on
        try:
            f._ctx.elaborate(f.name, {**sample, **f._fixed}, sampling=True)
            return
        except NeedDims as e:
            sample.update({d: LOOP_SAMPLE for d in e.dims})
        except SampleDependent:
            return


def load(path, *, check_finite: bool = False) -> Module:
    path = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise LagradError(f"cannot read {path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        line = data[:start].decode("utf-8", "replace")
        raise LaSyntaxError(f"this file is not UTF-8 text (byte 0x{data[e.start]:02x})", path=path,
                            line=line.count("\n") + 1, column=len(data[start:e.start].decode("utf-8", "replace")) + 1,
                            source_line=data[start:].split(b"\n", 1)[0].decode("utf-8", "replace")) from None
    return loads(text, name=path, check_finite=check_finite)


def primitive(name, impl, *, frechet=None, transpose=None, linear_in=(), shape=None, nout=1, kwargs=None,
              domains=None):
    """Register a primitive for .la files loaded afterwards (SPEC §4). `domains` (an extension)
    maps argument positions to what `lagrad check` must sample there: "spd", "wellcond",
    "fullrank", "stable", "contractive" or "positive"."""
    from .user_primitive import make_user_primitive
    p = make_user_primitive(name, impl, frechet=frechet, transpose=transpose, linear_in=linear_in,
                            shape=shape, nout=nout, kwargs=kwargs, domains=domains)
    prim_mod.register_user(p)
    _REGISTRY_VERSION[0] += 1
    return p
