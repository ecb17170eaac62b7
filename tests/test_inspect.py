"""Inspection beyond the printed text: Graphviz rendering (and its message when `dot` is
missing), the Jupyter display, `lagrad check`'s input domains on the examples, and the
command line's remaining error paths."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lagrad
from lagrad.runtime.check import check_function, input_domains

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "implicit_solve.la"


def cli(*args, cwd=None, path=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "lagrad", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def fake_dot(tmp_path):
    """A stand-in for Graphviz's `dot`: answers `-Tsvg`/`-Tpng` with a marker and the DOT text."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "dot"
    exe.write_text(f"#!{sys.executable}\nimport sys\n"
                   "sys.stdout.write('<svg fake=\"' + sys.argv[1] + '\">' + sys.stdin.read() + '</svg>')\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(bindir)


def test_render_without_graphviz_says_how_to_install(tmp_path):
    r = cli("show", EXAMPLE, "--adjoint", "--render", "svg", cwd=tmp_path, path=str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "Graphviz" in r.stderr and "apt install graphviz" in r.stderr and "--format dot" in r.stderr
    assert not list(tmp_path.glob("*.svg"))


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_render_runs_dot_on_the_graph(tmp_path, fmt):
    path = fake_dot(tmp_path) + os.pathsep + os.environ.get("PATH", "")
    r = cli("show", EXAMPLE, "--adjoint", "--render", fmt, "-o", "adj." + fmt, cwd=tmp_path, path=path)
    assert r.returncode == 0, r.stderr
    out = (tmp_path / ("adj." + fmt)).read_text()
    assert out.startswith(f'<svg fake="-T{fmt}">digraph "adjoint implicit_solve"') and "lu_solve" in out
    r = cli("show", EXAMPLE, "--render", "svg", cwd=tmp_path, path=path)
    assert r.returncode == 0 and (tmp_path / "implicit_solve_primal.svg").exists()


def test_jupyter_display(tmp_path, monkeypatch):
    prog = lagrad.load(EXAMPLE).implicit_solve.adjoint()
    monkeypatch.setenv("PATH", str(tmp_path))                  # no Graphviz: highlighted text
    bundle = prog._repr_mimebundle_()
    assert bundle["text/plain"] == str(prog) and "image/svg+xml" not in bundle
    html = bundle["text/html"]
    assert html.startswith("<pre") and "theta_bar" in html and "<span" in html
    assert "# from implicit_solve.la:10 (solve)" in html
    monkeypatch.setenv("PATH", fake_dot(tmp_path))             # with Graphviz: the drawing
    bundle = prog._repr_mimebundle_()
    assert bundle["image/svg+xml"].startswith("<svg") and "text/html" not in bundle


def test_debug_flag_after_the_command(tmp_path):
    (tmp_path / "bad.la").write_text("model f(x: f64) -> f64 {\n  return slove(x) }")
    r = cli("show", "bad.la", "--debug", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" in r.stderr and "bad.la:2:10:" in r.stderr


DOMAIN_CASES = [  # (file, model, dims, {input: domain the sampler must respect})
    ("examples/matrix_free_solve.la", "matrix_free_solve", {}, {"theta": "wellcond"}),  # gmres on 2θ·v
    ("examples/matrix_free_solve.la", "spd_solve", {}, {"theta": "spd", "s": "positive"}),  # cg
    ("examples/kalman/kalman.la", "kalman_nll", {"T": 2}, {"F": "stable", "R": "spd", "dt": "positive"}),
    ("examples/woodbury_preconditioner.la", "solve", {}, {"A": "spd"}),
    ("examples/qr_backprop.la", "q_wide", {}, {}),
    ("tests/golden/stdlib_mix.la", "stdlib_mix", {}, {}),
]


@pytest.mark.parametrize("path,model,dims,want", DOMAIN_CASES, ids=[c[1] for c in DOMAIN_CASES])
def test_check_samples_each_domain_and_agrees(path, model, dims, want):
    f = lagrad.load(ROOT / path)[model]
    doms = input_domains(f.compiled({"n": 4, **dims}).canonical)
    for name, dom in want.items():
        assert doms.get(name) == dom, (name, doms)
    rows = check_function(f, dims)
    assert rows and all(r.ok for r in rows), [(r.input, r.adjoint_err, r.tangent_err) for r in rows]


def test_check_accepts_an_exact_zero_gradient():
    """A derivative that is exactly zero (the preconditioner does not change cg's answer) meets
    a finite difference that is rounding noise; check must call that agreement."""
    f = lagrad.load(ROOT / "examples/woodbury_preconditioner.la").solve
    rows = {r.input: r for r in check_function(f)}
    assert rows["W"].adjoint == 0.0 and rows["W"].ok and abs(rows["W"].fd) < 1e-8


def test_vjp_binds_a_dimension_only_a_cotangent_shows():
    """q_wide's backward part works on n × n residuals but pads a cotangent to n × (n + k): the
    split vjp must still learn k (it passes Y along as a reference)."""
    f = lagrad.load(ROOT / "examples/qr_backprop.la").q_wide
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((3, 3)) + 3 * np.eye(3), rng.standard_normal((3, 2))
    out, pullback = f.vjp(X, Y)
    gX, gY = pullback(1.0)
    wX, wY = f.grad()(X, Y)
    np.testing.assert_allclose(gX, wX, rtol=1e-12)
    np.testing.assert_allclose(gY, wY, rtol=1e-12)
    assert gY.shape == (3, 2)


@pytest.mark.parametrize("args,msg", [
    (("check", EXAMPLE, "--dims", "n=x"), "--dims takes name=value pairs"),
    (("bench", EXAMPLE, "--model", "nosuch"), "no model `nosuch`"),
    (("run", EXAMPLE, "--model", "implicit_solve", "--inputs", "missing.npz"), "cannot read the inputs"),
])
def test_more_user_errors_exit_2(tmp_path, args, msg):
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("arrays,grad,msg", [
    ({"theta": np.eye(3), "b": np.ones(4)}, None, "b"),                       # inconsistent n
    ({"theta": np.eye(3)}, None, "b"),                                         # missing argument
    ({"theta": np.eye(3), "b": np.ones(3), "c": np.ones(3)}, None, "c"),      # extra argument
    ({"theta": np.eye(3), "b": np.ones(3)}, "q", "no argument `q`"),           # unknown --grad name
])
def test_run_input_errors_exit_2(tmp_path, arrays, grad, msg):
    np.savez(tmp_path / "in.npz", **arrays)
    args = ["run", EXAMPLE, "--model", "implicit_solve", "--inputs", "in.npz"] + (["--grad", grad] if grad else [])
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_check_exits_1_on_a_wrong_rule(tmp_path):
    (tmp_path / "m.la").write_text("model f(x: f64[n]) -> f64 { return sum(bad_sin(x)) }\n")
    code = ("import sys, jax.numpy as jnp, lagrad\n"
            "lagrad.primitive('bad_sin', jnp.sin, frechet='frechet bad_sin(x) -> y { dy = -cos(x) * dx }')\n"
            "from lagrad.cli import main\nsys.exit(main(['check', 'm.la']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "MISMATCH: f.x" in r.stdout and " NO" in r.stdout


def test_bench_progress_line_only_on_a_terminal():
    import io
    from lagrad.cli import _Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True
    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        p = _Progress(stream)
        p.t0 -= 5.0                                  # a run that has gone on for 5 s
        p.show("timing: round 3/30")
        p.done()
    assert "\rtiming: round 3/30" in tty.getvalue().replace("\033[K", "") and pipe.getvalue() == ""


def test_bench_prints_compile_medians_ratio_and_machine():
    r = cli("bench", EXAMPLE, "--model", "implicit_solve", "--dims", "n=8", "--repeat", "3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("model implicit_solve  dims {'n': 8}  on ") and "logical CPUs" in lines[0]
    assert "first call (compile)" in lines[1] and "forward  median" in lines[1]
    assert lines[3].startswith("gradient/forward ") and r.stderr == ""


def test_every_printed_line_says_where_it_comes_from():
    """SPEC §4: each derived line says which source line it comes from; a cotangent that is zero
    (the output does not depend on that input) says so, and a model with nothing to return
    prints `return ()`."""
    import lagrad
    f = lagrad.loads("model f(x: f64, W: f64[n]) -> f64 { return x * x }", name="z.la").f
    lines = str(f.adjoint()).splitlines()[1:-1]
    assert lines and all("# from z.la:1" in l or "# zero: no dependence" in l for l in lines), lines
    assert any(l.strip().startswith("W_bar") and "# zero: no dependence" in l for l in lines)
    assert str(lagrad.loads("model m() -> f64 { return 1.0 }").m.adjoint()).endswith("return ()")


def test_to_python_of_elementwise_functions_runs_in_another_process(tmp_path):
    """The generated source registers the file's elementwise functions (and their derivatives)
    itself, so it runs where the module was never loaded; a user primitive is named in a note."""
    m = lagrad.loads("elementwise soft(x) = x / (1 + abs(x)) + celu(x) * sigmoid(x)\n"
                     "elementwise sq(x) = sqrt(x) ** 2\n"
                     "model f(x: f64[n]) -> f64 { return sum(soft(x) * sq(x)) }")
    x = np.array([0.5, -1.5, 2.0])
    cases = {"primal": (m.f.program, "(x,)", m.f(x)), "adjoint": (m.f.adjoint(), "(x, 1.0)", m.f.grad()(x)[0]),
             "tangent": (m.f.tangent(), "(x, np.ones(3))", m.f.jvp((x,), (np.ones(3),))[1])}
    for kind, (prog, args, want) in cases.items():
        (tmp_path / f"{kind}.py").write_text(prog.to_python())
        code = (f"import runpy, numpy as np\nns = runpy.run_path('{kind}.py')\nx = np.array({x.tolist()})\n"
                f"fn = [v for k, v in ns.items() if type(v).__name__ == 'function'][-1]\n"
                f"print(repr(np.asarray(fn(*{args})[-1]).tolist()))\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
        assert r.returncode == 0, r.stderr
        np.testing.assert_allclose(np.array(eval(r.stdout.replace("nan", "np.nan"))), np.asarray(want),
                                   rtol=1e-14, equal_nan=True)
    lagrad.primitive("note_me", lambda x: 2 * x)
    assert "# needs the user primitive `note_me` registered first" in \
        lagrad.loads("model g(x: f64[n]) -> f64[n] { return note_me(x) }").g.program.to_python()
