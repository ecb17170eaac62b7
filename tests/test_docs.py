"""The docs cannot go stale: every generated block in docs/*.md matches what its command prints
now (what `python tools/gen_docs.py --check` checks), every Python snippet in docs/snippets/
runs, and every .la snippet loads (those in docs/snippets/errors/ fail with a LagradError).

Everything runs in this process, with one JAX import; the primitives the snippets register are
removed again at the end."""
import importlib.util
import sys
from pathlib import Path

import pytest

import lagrad
from lagrad.compiler import primitive as prim_mod
from lagrad.runtime import api

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = ROOT / "docs" / "snippets"
PAGES = sorted((ROOT / "docs").glob("*.md"))
PY_SNIPPETS = sorted(SNIPPETS.rglob("*.py"))
LA_SNIPPETS = sorted(SNIPPETS.rglob("*.la"))


def _load_gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_docs", mod)
    spec.loader.exec_module(mod)
    return mod


gen_docs = _load_gen_docs()


def rel(path):
    return path.relative_to(ROOT).as_posix()


@pytest.fixture(scope="module")
def runner():
    """One runner for the module (each command runs once); the registry is restored after."""
    saved = dict(prim_mod.REGISTRY)
    try:
        yield gen_docs.Runner()
    finally:
        prim_mod.REGISTRY.clear()
        prim_mod.REGISTRY.update(saved)
        api._REGISTRY_VERSION[0] += 1          # modules compiled against the snippets' primitives go stale


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_generated_blocks_are_current(page, runner):
    result = gen_docs.Result()
    gen_docs.process(page, runner, write=False, result=result)
    assert not result.errors, "\n".join(result.errors)
    diffs = "".join(gen_docs.diff(b, new) for b, new in result.stale)
    assert not result.stale, f"stale blocks; run `python tools/gen_docs.py`:\n{diffs}"


@pytest.mark.parametrize("snippet", PY_SNIPPETS, ids=[rel(p) for p in PY_SNIPPETS])
def test_python_snippet_runs(snippet, runner):
    rc, out = runner.run(f"python {rel(snippet)}")
    assert rc == 0, out


@pytest.mark.parametrize("snippet", LA_SNIPPETS, ids=[rel(p) for p in LA_SNIPPETS])
def test_la_snippet_loads(snippet):
    if snippet.parent.name == "errors":
        with pytest.raises(lagrad.LagradError) as info:
            lagrad.load(snippet)
        assert f"{snippet.name}:" in str(info.value) and "^" in str(info.value)
    else:
        assert lagrad.load(snippet).names()


def test_every_snippet_is_shown_in_some_page():
    pages = "".join(p.read_text(encoding="utf-8") for p in PAGES)
    unused = [rel(s) for s in PY_SNIPPETS + LA_SNIPPETS if rel(s) not in pages]
    assert not unused, f"snippets no page shows: {unused}"


# ---- the generator itself -------------------------------------------------------------------
def test_check_finds_a_stale_block_and_write_mode_fixes_it(tmp_path, runner):
    source = tmp_path / "shown.la"
    source.write_text("model f(x: f64) -> f64 { return x }\n")
    page = tmp_path / "page.md"
    page.write_text(f"Intro.\n\n<!-- gen: include {source} -->\n```la\nold text\n```\n\nAfter.\n")
    result = gen_docs.Result()
    gen_docs.process(page, runner, write=False, result=result)
    assert len(result.stale) == 1 and "-old text" in gen_docs.diff(*result.stale[0])
    gen_docs.process(page, runner, write=True, result=gen_docs.Result())
    assert page.read_text() == (f"Intro.\n\n<!-- gen: include {source} -->\n```la\n"
                                "model f(x: f64) -> f64 { return x }\n```\n\nAfter.\n")
    result = gen_docs.Result()
    gen_docs.process(page, runner, write=False, result=result)
    assert not result.stale and not result.errors


def test_numbers_compare_with_a_tolerance_and_words_exactly():
    assert gen_docs.same("err 4.4e-09  value -1.2562310e-04", "err 4.6e-09  value -1.2562311e-04")
    assert not gen_docs.same("value 1.25", "value 1.26")
    assert not gen_docs.same("adj err 1e-10", "tan err 1e-10")
    assert gen_docs.same("a  b\n", "a b\n")


def test_a_wrong_exit_status_is_an_error(tmp_path, runner):
    page = tmp_path / "page.md"
    page.write_text("<!-- gen: lagrad check docs/snippets/errors/typo.la -->\n```text\n```\n")
    result = gen_docs.Result()
    gen_docs.process(page, runner, write=False, result=result)
    assert result.errors and "exited with 2, expected 0" in result.errors[0]
