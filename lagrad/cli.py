"""The command line: ``lagrad show | check | run | bench``. Thin over the Python API; user
errors print as ``file:line:col: message`` with the line and a caret, exit code 2."""
from __future__ import annotations

import argparse
import sys
import time
import traceback

from .errors import LagradError


def _dims(text):
    out = {}
    if not text:
        return out
    for item in text.split(","):
        k, eq, v = item.partition("=")
        k, v = k.strip(), v.strip()
        # isdecimal, not isdigit: "²" is a digit that int() refuses
        if not eq or not k.isidentifier() or not (v.isascii() and v.isdecimal()) or int(v) < 1:
            raise LagradError(f"--dims takes name=value pairs with positive integer values, "
                              f"like `--dims n=8,m=3`; got `{item}`")
        if k in out and out[k] != int(v):
            raise LagradError(f"--dims gives `{k}` twice ({out[k]} and {int(v)})")
        out[k] = int(v)
    return out


def _load(path):
    """`lagrad.load`, with a file it cannot read or decode as a LagradError (exit 2)."""
    import lagrad
    try:
        return lagrad.load(path)
    except LagradError:
        raise
    except UnicodeDecodeError as e:
        raise LagradError(f"cannot read {path}: it is not UTF-8 text (byte 0x{e.object[e.start]:02x} "
                          f"at offset {e.start})") from None
    except (OSError, UnicodeError) as e:
        raise LagradError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None


def _models(mod, name):
    return [mod[name]] if name else [mod[n] for n in mod]     # not mod.names(): a model may be called `names`


def _own_dims(dims, f) -> dict:
    """The entries of `dims` (checked by `_known_dims`) that name a dimension of model `f`."""
    own = f.dim_names()
    return {n: v for n, v in dims.items() if n in own}


def _known_dims(dims, models, file):
    """The entries of `dims` (from --dims) that name a dimension of one of `models`. The others are
    ignored with a warning listing the models' dimensions: the SPEC's usage line `--dims n=8,m=3`
    also serves a file whose models have only n (with several models, a name any has is used)."""
    have = {f.name: f.dim_names() for f in models}
    every = set().union(*have.values()) if have else set()
    unknown = [k for k in dims if k not in every]
    if unknown:
        names = ", ".join(f"`{k}`" for k in unknown)
        if len(models) == 1:
            f = models[0]
            listed = ", ".join(sorted(have[f.name])) or "none"
            where = f"`{f.name}` has no dimension {names} (its dimensions: {listed})"
        else:
            listed = "; ".join(f"{n}: {', '.join(sorted(d)) or 'none'}" for n, d in have.items())
            where = f"no model in {file} has a dimension {names} (dimensions: {listed})"
        from .compiler.primitive import suggest
        hint = suggest(unknown[0], sorted(every)) if len(unknown) == 1 else ""
        print(f"lagrad: warning: --dims: {where}{hint}; ignored", file=sys.stderr)
    return {k: v for k, v in dims.items() if k in every}


def _write(path, data: bytes | None = None, save=None):
    """Write a file the user named (`data`, or `save(path)`); a LagradError when it cannot."""
    import os
    if os.path.isdir(path):             # numpy.savez would write PATH.npz beside it instead
        raise LagradError(f"cannot write {path}: it is a directory")
    try:
        if save is not None:
            save(path)
        else:
            with open(path, "wb") as fh:
                fh.write(data)
    except OSError as e:
        raise LagradError(f"cannot write {path}: {e.strerror or e}") from None


def cmd_show(a):
    if a.wrt is not None and not (a.adjoint or a.tangent):
        raise LagradError("--wrt chooses the inputs of the adjoint or tangent program: "
                          "add --adjoint or --tangent")
    mod = _load(a.file)
    models = _models(mod, a.model)
    dims = _known_dims(_dims(a.dims), models, a.file)
    for k, f in enumerate(models):
        if dims:
            f = f.specialize(**_own_dims(dims, f))
        wrt = [w.strip() for w in a.wrt.split(",")] if a.wrt is not None else None
        prog = f.adjoint(wrt) if a.adjoint else f.tangent(wrt) if a.tangent else f.program
        if a.render:
            from .compiler.graph import render
            out = a.output if a.output and not k else f"{prog.name}_{prog.kind}.{a.render}"
            data = render(prog, a.render)        # before opening: no empty file on failure
            _write(out, data)
            print(f"wrote {out}")
            continue
        text = {"text": str, "dot": lambda p: p.to_dot(), "python": lambda p: p.to_python()}[a.format](prog)
        if k:
            print()
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


def cmd_check(a):
    from .runtime.check import check_function, format_rows
    mod = _load(a.file)
    models = _models(mod, a.model)
    dims = _known_dims(_dims(a.dims), models, a.file)
    rows = []
    for f in models:
        rows += check_function(f, _own_dims(dims, f), seed=a.seed)
    print(format_rows(rows))
    bad = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} inputs agree with finite differences"
          + ("" if not bad else f"; MISMATCH: {', '.join(r.model + '.' + r.input for r in bad)}"))
    return 1 if bad else 0


def cmd_run(a):
    import zipfile
    import numpy as np
    mod = _load(a.file)
    f = mod[a.model]
    try:
        with open(a.inputs, "rb") as fh:
            magic = fh.read(6)
        if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
            raise ValueError("it is not an .npz file of named arrays (write one with "
                             "numpy.savez(path, x=..., y=...))")
        data = np.load(a.inputs, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds one array (.npy), not named arrays; write it with "
                             "numpy.savez(path, x=..., y=...)")
        with data:
            kwargs = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise LagradError(f"cannot read the inputs {a.inputs}: {why}") from None
    if a.grad is not None:
        names = [n.strip() for n in a.grad.split(",")]
        if not all(names):
            raise LagradError(f"--grad {a.grad!r}: give the input names to differentiate, "
                              f"separated by commas (--grad x,y)")
        f.grad(names)                          # unknown names fail here, before any work
    out = f(**kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    result = {f"out{k}" if len(outs) > 1 else "out": np.asarray(o) for k, o in enumerate(outs)}
    if a.grad is not None:
        g = f.grad(names)(**kwargs)
        result.update({f"grad_{n}": np.asarray(x) for n, x in zip(names, g)})
    if a.out:
        _write(a.out, save=lambda p: np.savez(p, **result))
    for k, v in result.items():
        print(f"{k}: shape {v.shape}\n{np.array2string(v, threshold=20)}")
    return 0


def cmd_bench(a):
    import jax
    import numpy as np
    from .runtime.check import concrete_shape, input_domains, sample
    if a.repeat < 1:
        raise LagradError(f"--repeat must be at least 1, got {a.repeat}")
    mod = _load(a.file)
    f = mod[a.model]
    dims = {**{k: 64 for k in f.dim_names()}, **_known_dims(_dims(a.dims), [f], a.file)}
    rng = np.random.default_rng(0)
    canon = f.compiled(dims).canonical
    doms = input_domains(canon)
    args = [sample(rng, concrete_shape(t, dims), doms.get(n, "any")) for n, t in f.params]
    outs = [o.type for o in canon.outputs]
    if len(outs) == 1 and not outs[0].shape:
        g = f.grad()
        runs = {"forward": lambda: f(*args), "gradient": lambda: g(*args)}
    else:                                   # several or non-scalar results: the reverse pass of a
        cts = [rng.standard_normal(concrete_shape(t, dims)) for t in outs]   # random cotangent
        runs = {"forward": lambda: f(*args), "gradient": lambda: f.vjp(*args)[1](*cts)}
        print("(several or non-scalar results: 'gradient' is the vjp with a random cotangent)")
    progress = _Progress(sys.stderr)
    first = {}
    for k, fn in runs.items():
        progress.show(f"compiling the {k} program")
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        first[k] = time.perf_counter() - t0
    times = {k: [] for k in runs}
    for i in range(a.repeat):
        for k, fn in runs.items():          # interleaved, so drifts in machine load hit both
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            times[k].append(time.perf_counter() - t0)
        progress.show(f"timing: round {i + 1}/{a.repeat}")
    progress.done()
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"model {f.name}  dims {dims}  on {_machine()}, {jax.devices()[0].device_kind} "
          f"({jax.devices()[0].platform}), jax {jax.__version__}")
    print(f"forward  median {med['forward'] * 1e3:.3f} ms   first call (compile) {first['forward']:.2f} s")
    print(f"gradient median {med['gradient'] * 1e3:.3f} ms   first call (compile) {first['gradient']:.2f} s")
    print(f"gradient/forward {med['gradient'] / med['forward']:.2f}   ({a.repeat} interleaved rounds, medians)")
    return 0


def _machine() -> str:
    """The CPU model and core count (Linux /proc/cpuinfo, else what `platform` knows)."""
    import os
    import platform
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            name = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


class _Progress:
    """One self-overwriting status line on a terminal, shown once a run takes over a second;
    silent when stderr is not a terminal (logs, pipes, tests)."""

    def __init__(self, stream):
        self.stream, self.t0, self.shown = stream, time.perf_counter(), False
        self.live = hasattr(stream, "isatty") and stream.isatty()

    def show(self, text):
        if self.live and time.perf_counter() - self.t0 > 1.0:
            print(f"\r\033[K{text}", end="", file=self.stream, flush=True)
            self.shown = True

    def done(self):
        if self.shown:
            print("\r\033[K", end="", file=self.stream, flush=True)


def parser():
    p = argparse.ArgumentParser(prog="lagrad", description="Compile .la models, show derived adjoints, check gradients.")
    common = argparse.ArgumentParser(add_help=False)      # --debug works before or after the command
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show Python tracebacks")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks")
    sub = p.add_subparsers(dest="cmd", required=True)

    def command(name, run, help):
        c = sub.add_parser(name, help=help, parents=[common])
        c.set_defaults(run=run)
        return c

    s = command("show", cmd_show, "print a model's program, tangent or adjoint")
    s.add_argument("file"); s.add_argument("--model")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--adjoint", action="store_true"); g.add_argument("--tangent", action="store_true")
    s.add_argument("--wrt"); s.add_argument("--dims")
    s.add_argument("--format", choices=["text", "dot", "python"], default="text")
    s.add_argument("--render", choices=["svg", "png"],
                   help="draw the graph with Graphviz's `dot` into a file (see --output)")
    s.add_argument("-o", "--output", help="the file --render writes (default MODEL_KIND.svg|png)")
    c = command("check", cmd_check, "compare derived gradients and tangents with finite differences")
    c.add_argument("file"); c.add_argument("--model"); c.add_argument("--dims")
    c.add_argument("--seed", type=int, default=0)
    r = command("run", cmd_run, "run a model on inputs from an .npz file")
    r.add_argument("file"); r.add_argument("--model", required=True); r.add_argument("--inputs", required=True)
    r.add_argument("--grad"); r.add_argument("--out")
    b = command("bench", cmd_bench, "time the forward and gradient programs")
    b.add_argument("file"); b.add_argument("--model", required=True); b.add_argument("--dims")
    b.add_argument("--repeat", type=int, default=30)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except LagradError as e:
        if args.debug:
            traceback.print_exc()
        print(str(e), file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
