"""Regenerate the program output shown in docs/*.md, so the docs cannot go stale.

A generated block is a marker line followed by a fenced code block:

    <!-- gen: lagrad show examples/implicit_solve.la --adjoint -->
    ```text
    (replaced by the command's output)
    ```

The marker's command is one of
    lagrad ARGS...            the command line, run in this process; the block shows `$ lagrad ARGS`
                              and then what it printed (stdout and stderr)
    python FILE.py [ARGS...]  a snippet, run in this process with runpy; the block shows its output
    include FILE [FROM [TO]]  the file verbatim; with FROM (and TO), the lines from the first one
                              containing FROM through the next one containing TO
Flags go in parentheses after `gen`, separated by commas: `<!-- gen(exit=2): lagrad check x.la -->`
    exit=N         the command must exit with status N (default 0)
    illustrative   output that varies between runs (timings): the command must succeed, the text
                   is not compared and not rewritten (empty the block to refresh it)
    prompt         show `$ python ...` before a snippet's output too
    raw            the output is Markdown (a table): it replaces everything up to `<!-- /gen -->`
                   instead of a fenced block

Commands run in a scratch directory that links to the repository's top-level entries, so paths
read as from the repository root and files a command writes do not land in the repository.
Primitives a snippet registers are removed after it runs.
Numbers in the output are compared with a tolerance (rtol 1e-5, atol 1e-8; the rest of the text
exactly, up to spacing), so last-digit differences between machines do not count as stale.

    python tools/gen_docs.py           rewrite the stale blocks in place
    python tools/gen_docs.py --check   print a diff of every stale block; exit 1 if there is one
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import difflib
import io
import os
import re
import runpy
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!-- gen(?:\((?P<flags>[^)]*)\))?: (?P<cmd>.+?) -->\s*$")
RAW_END = "<!-- /gen -->"
FENCE = re.compile(r"^(`{3,})")
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
RTOL, ATOL = 1e-5, 1e-8


class DocError(Exception):
    """A malformed marker or a command that failed."""


@dataclass
class Block:
    path: Path
    line: int                    # 1-based line of the marker
    cmd: str
    flags: dict
    start: int                   # index of the first content line
    end: int                     # index one past the last content line
    old: str

    @property
    def where(self):
        return f"{shown(self.path)}:{self.line}"


def shown(path: Path) -> str:
    """A path as the messages show it: relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def parse_flags(text):
    flags = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        key, _, value = item.partition("=")
        flags[key] = value or True
    unknown = set(flags) - {"exit", "illustrative", "prompt", "raw"}
    if unknown:
        raise DocError(f"unknown flag(s) {sorted(unknown)}")
    return flags


def find_blocks(path: Path, lines: list) -> list:
    blocks = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if not m:
            fence = FENCE.match(lines[i])     # a code block of its own: markers in it are text
            if fence:
                i = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence[1]), len(lines))
            i += 1
            continue
        where = f"{shown(path)}:{i + 1}"
        try:
            flags = parse_flags(m["flags"])
        except DocError as e:
            raise DocError(f"{where}: {e}") from None
        if flags.get("raw"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == RAW_END), None)
            if end is None:
                raise DocError(f"{where}: a raw block needs a closing `{RAW_END}` line")
            start = i + 1
        else:
            fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
            if not fence:
                raise DocError(f"{where}: the marker must be followed by a fenced code block")
            start = i + 2
            end = next((j for j in range(start, len(lines)) if lines[j].strip() == fence[1]), None)
            if end is None:
                raise DocError(f"{where}: the fenced block is not closed")
        blocks.append(Block(path, i + 1, m["cmd"], flags, start, end, "".join(lines[start:end])))
        i = end + 1
    return blocks


# ---- running commands ---------------------------------------------------------------------
class Runner:
    """Runs the commands of the markers in this process (one JAX import for all), in a scratch
    directory, and remembers each command's (exit status, output)."""

    def __init__(self):
        self.cache = {}
        self.scratch = Path(tempfile.mkdtemp(prefix="lagrad-docs-"))
        atexit.register(shutil.rmtree, self.scratch, True)
        for entry in ROOT.iterdir():
            if not entry.name.startswith("."):
                (self.scratch / entry.name).symlink_to(entry)

    def run(self, cmd: str):
        if cmd not in self.cache:
            self.cache[cmd] = self._run(shlex.split(cmd))
        return self.cache[cmd]

    def _run(self, argv):
        if argv[0] == "include":
            return 0, include(self.scratch, *argv[1:])
        if argv[0] not in ("lagrad", "python"):
            raise DocError(f"unknown command `{argv[0]}` (lagrad, python or include)")
        out = io.StringIO()
        old_cwd, old_argv, old_path = os.getcwd(), sys.argv, list(sys.path)
        os.chdir(self.scratch)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                rc = self._lagrad(argv[1:]) if argv[0] == "lagrad" else self._python(argv[1:])
        finally:
            os.chdir(old_cwd)
            sys.argv, sys.path[:] = old_argv, old_path
        return rc, out.getvalue()

    @staticmethod
    def _lagrad(args):
        from lagrad.cli import main
        try:
            return main(args)
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else 1

    @staticmethod
    def _python(args):
        """Run a snippet as a script. The primitives it registers are removed afterwards, so
        one snippet's primitives do not show up in another's output."""
        if not args or not args[0].endswith(".py"):
            raise DocError("`python` takes a snippet file: python FILE.py [ARGS]")
        from lagrad.compiler.primitive import REGISTRY
        from lagrad.runtime import api
        saved = dict(REGISTRY)
        sys.argv = list(args)
        sys.path.insert(0, str(Path(args[0]).resolve().parent))
        try:
            runpy.run_path(args[0], run_name="__main__")
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            if REGISTRY != saved:
                REGISTRY.clear()
                REGISTRY.update(saved)
                api._REGISTRY_VERSION[0] += 1      # modules cached against the old registry go stale
        return 0


def include(base: Path, path, start=None, stop=None) -> str:
    lines = (base / path).read_text(encoding="utf-8").splitlines(keepends=True)
    if start is None:
        return "".join(lines)
    first = next((i for i, l in enumerate(lines) if start in l), None)
    if first is None:
        raise DocError(f"include: no line of {path} contains {start!r}")
    if stop is None:
        return "".join(lines[first:])
    last = next((i for i in range(first, len(lines)) if stop in lines[i]), None)
    if last is None:
        raise DocError(f"include: no line of {path} after {start!r} contains {stop!r}")
    return "".join(lines[first:last + 1])


def render(block: Block, runner: Runner) -> str:
    """The new text of a block (raises DocError when the command's exit status is wrong)."""
    rc, out = runner.run(block.cmd)
    want = int(block.flags.get("exit", 0))
    if rc != want:
        raise DocError(f"{block.where}: `{block.cmd}` exited with {rc}, expected {want}:\n{out}")
    if block.cmd.startswith("lagrad ") or (block.flags.get("prompt") and block.cmd.startswith("python ")):
        out = f"$ {block.cmd}\n{out}"
    out = "\n".join(l.rstrip() for l in out.rstrip("\n").split("\n"))
    if block.flags.get("raw"):                  # Markdown: set apart by blank lines
        return f"\n{out}\n\n"
    return out + "\n" if out else ""


# ---- comparing ----------------------------------------------------------------------------
def _split_numbers(text):
    words = " ".join(NUMBER.sub(" # ", text).split())
    return words, [float(x) for x in NUMBER.findall(text)]


def same(old: str, new: str) -> bool:
    """Equal text, up to spacing and up to a tolerance on numbers."""
    if old == new:
        return True
    (w1, n1), (w2, n2) = _split_numbers(old), _split_numbers(new)
    return w1 == w2 and len(n1) == len(n2) and all(
        abs(a - b) <= ATOL + RTOL * max(abs(a), abs(b)) for a, b in zip(n1, n2))


@dataclass
class Result:
    stale: list = field(default_factory=list)     # (block, new text)
    errors: list = field(default_factory=list)    # messages


def process(path: Path, runner: Runner, write: bool, result: Result):
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    try:
        blocks = find_blocks(path, lines)
    except DocError as e:
        result.errors.append(str(e))
        return
    stale = []
    for b in blocks:                        # in order: a command may use an earlier one's files
        try:
            new = render(b, runner)
        except DocError as e:
            result.errors.append(str(e))
            continue
        if b.flags.get("illustrative") and b.old.strip():
            continue
        if not same(b.old, new):
            stale.append((b, new))
    for b, new in reversed(stale):          # from the end, so earlier indices stay valid
        lines[b.start:b.end] = [new] if new else []
    result.stale += stale
    if write and any(b.path == path for b, _ in result.stale):
        path.write_text("".join(lines), encoding="utf-8")


def diff(block: Block, new: str) -> str:
    return "".join(difflib.unified_diff(block.old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"{block.where} (in the docs)", f"{block.where} (`{block.cmd}` now)"))


def doc_files(names=()):
    return [Path(n).resolve() for n in names] if names else sorted(DOCS.glob("*.md"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="do not write; exit 1 if a block is stale")
    p.add_argument("files", nargs="*", help="Markdown files (default: docs/*.md)")
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    runner, result = Runner(), Result()
    for path in doc_files(a.files):
        process(path, runner, not a.check, result)
    for b, new in result.stale:
        print(diff(b, new) if a.check else f"rewrote {b.where}: {b.cmd}")
    for msg in result.errors:
        print(f"error: {msg}", file=sys.stderr)
    if a.check and result.stale:
        print(f"{len(result.stale)} stale block(s); run `python tools/gen_docs.py` to regenerate")
    return 1 if result.errors or (a.check and result.stale) else 0


if __name__ == "__main__":
    sys.exit(main())
