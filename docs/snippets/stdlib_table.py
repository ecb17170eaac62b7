"""Print the standard library as Markdown tables, from the primitive registry (what
docs/language.md shows): every public primitive with its math comment, the inputs it is
linear in, its rules and the file that defines it; then the calls expanded at compile time."""
from collections import Counter

import lagrad  # noqa: F401  (registers the standard library)
from lagrad.compiler.operators import MACROS
from lagrad.compiler.primitive import ALL, REGISTRY


def home(p):
    """The stdlib file that defines p: the one most of its rule functions come from."""
    mods = [getattr(f, "__module__", "") or "" for f in
            (p.shape, p.frechet, p.transpose, p.impl, p.codegen, p.lower, p.elaborate) if callable(f)]
    mods = [m for m in mods if m.startswith("lagrad.stdlib.") and m != "lagrad.stdlib.shapes"]
    return Counter(mods).most_common(1)[0][0].rsplit(".", 1)[1] + ".py" if mods else "?"


ORDINAL = ["1st", "2nd", "3rd", "4th", "5th"]


def kw_text(v):
    return "true" if v is True else "false" if v is False else f'"{v}"' if isinstance(v, str) else repr(v)


def call(p):
    if p.infix:
        return f"`a {p.infix} b`" if p.name not in ("neg",) else f"`{p.infix}a`"
    return f"`{p.name}`"


def keywords(p):
    return ", ".join(f"`{k}={kw_text(v)}`" if v is not None else f"`{k}`" for k, v in p.kwargs.items()) or "—"


def linear(p):
    """The arguments p is linear in, counted as a user writes the call (a solver's operator
    argument K comes first, so its primitive's inputs shift by one)."""
    if p.linear_in == ALL:
        return "all"
    shift = 1 if p.elaborate is not None else 0
    names = [ORDINAL[i + shift] for i in p.linear_in]
    return ", ".join(names) + (" (jointly)" if p.joint and len(names) > 1 else "") or "—"


def rules(p):
    out = []
    if p.zero_tangent:
        out.append("zero derivative")
    elif isinstance(p.frechet, str):
        out.append("Fréchet (text)")
    elif p.frechet is not None:
        out.append("Fréchet")
    if p.transpose is not None:
        out.append("transpose")
    return ", ".join(out) or "—"


def cell(text):
    return str(text).replace("|", "\\|")


print("| call | math | keywords | linear in | rules | file |")
print("| --- | --- | --- | --- | --- | --- |")
for p in REGISTRY.values():
    if not p.internal and not p.user:
        print(f"| {call(p)} | {cell(p.math)} | {keywords(p)} | {linear(p)} | {rules(p)} | {home(p)} |")
print()
print("Expanded at compile time into the primitives above (their derivatives come from those):")
print()
print("| call | file |")
print("| --- | --- |")
for name, m in MACROS.items():
    print(f"| `{name}` | {type(m).__module__.rsplit('.', 1)[1]}.py |")
