"""The networkx view of a Program (a DiGraph of values and operations) and its DOT text."""
from __future__ import annotations

import shutil
import subprocess

import networkx as nx

from .ir import Program, Var
from .printer import rhs_text


def to_networkx(prog: Program) -> nx.DiGraph:
    """Nodes: ``("var", name)`` for values, ``("eqn", k)`` for operations; edges follow data."""
    g = nx.DiGraph(name=prog.name, kind=prog.kind)
    for v in prog.inputs:
        g.add_node(("var", v.name), kind="input", type=str(v.type), label=v.name)
    for k, e in enumerate(prog.eqns):
        node = ("eqn", k)
        g.add_node(node, kind="op", prim=e.prim, label=rhs_text(e), name=_display(e.prim),
                   line=getattr(e.span, "line", None), origin=e.origin)
        for a in e.inputs:
            if isinstance(a, Var):
                g.add_edge(("var", a.name), node)
        for o in e.outputs:
            g.add_node(("var", o.name), kind="value", type=str(o.type), label=o.name)
            g.add_edge(node, ("var", o.name))
    for o in prog.outputs:
        if isinstance(o, Var):
            g.nodes[("var", o.name)]["output"] = True
    return g


def _display(prim: str) -> str:
    from .primitive import REGISTRY
    p = REGISTRY.get(prim)
    return (p.display or p.name) if p is not None else prim


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(prog: Program) -> str:
    g = to_networkx(prog)
    lines = [f"digraph {_q(prog.kind + ' ' + prog.name)} {{", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10];']
    ids = {n: f"n{i}" for i, n in enumerate(g.nodes)}
    for n, d in g.nodes(data=True):
        if n[0] == "eqn":
            lines.append(f"  {ids[n]} [shape=box, style=rounded, label={_q(d['name'])}];")
        else:
            shape = "doubleoctagon" if d.get("output") else ("invhouse" if d["kind"] == "input" else "ellipse")
            lines.append(f"  {ids[n]} [shape={shape}, label={_q(d['label'] + chr(10) + d['type'])}];")
    for u, v in g.edges:
        lines.append(f"  {ids[u]} -> {ids[v]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


GRAPHVIZ_MISSING = ("drawing a program needs Graphviz's `dot` program on PATH, and it is not installed "
                    "(Debian/Ubuntu: `apt install graphviz`; macOS: `brew install graphviz`; conda: "
                    "`conda install graphviz`); `--format dot` prints the graph's DOT text without it")


def render(prog: Program, fmt: str = "svg") -> bytes:
    """The program's graph drawn by Graphviz's `dot` as SVG or PNG bytes; a LagradError saying
    how to install Graphviz when `dot` is missing."""
    from ..errors import LagradError
    exe = shutil.which("dot")
    if exe is None:
        raise LagradError(GRAPHVIZ_MISSING)
    r = subprocess.run([exe, f"-T{fmt}"], input=to_dot(prog).encode(), capture_output=True, timeout=120)
    if r.returncode != 0:
        raise LagradError(f"Graphviz's `dot -T{fmt}` failed: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def render_svg(prog: Program):
    """SVG text through Graphviz's `dot` when installed, else None (Jupyter then shows text)."""
    from ..errors import LagradError
    try:
        return render(prog, "svg").decode()
    except LagradError:
        return None
