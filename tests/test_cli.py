"""The command line through subprocesses: show, check, run, bench and every error path."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "implicit_solve.la"


def lagrad(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "lagrad", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_show_program_adjoint_tangent():
    r = lagrad("show", EXAMPLE)
    assert r.returncode == 0 and r.stdout.startswith("primal implicit_solve(")
    r = lagrad("show", EXAMPLE, "--adjoint")
    assert r.returncode == 0 and r.stdout.count("lu_factor") == 1 and "trans=true" in r.stdout
    assert "theta_bar" in r.stdout and "b_bar" in r.stdout
    r = lagrad("show", EXAMPLE, "--adjoint", "--wrt", "b")
    assert r.returncode == 0 and "theta_bar" not in r.stdout
    r = lagrad("show", EXAMPLE, "--tangent")
    assert r.returncode == 0 and r.stdout.startswith("tangent")


def test_show_formats(tmp_path):
    r = lagrad("show", EXAMPLE, "--adjoint", "--format", "dot")
    assert r.returncode == 0 and r.stdout.startswith("digraph")
    r = lagrad("show", EXAMPLE, "--adjoint", "--format", "python")
    assert r.returncode == 0
    src = tmp_path / "adj.py"
    src.write_text(r.stdout)
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import jax; jax.config.update('jax_enable_x64', True)\n"
            "import numpy as np, adj\nth = np.eye(3) * 2 + 0.1; b = np.ones(3)\n"
            "print(adj.implicit_solve_adjoint(th, b, 1.0)[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert out.returncode == 0, out.stderr
    assert "[" in out.stdout


def test_check_passes_on_the_example():
    r = lagrad("check", EXAMPLE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 of 2 inputs agree" in r.stdout


def test_run_with_npz(tmp_path):
    rng = np.random.default_rng(0)
    theta, b = rng.standard_normal((4, 4)) + 4 * np.eye(4), rng.standard_normal(4)
    np.savez(tmp_path / "in.npz", theta=theta, b=b)
    r = lagrad("run", EXAMPLE, "--model", "implicit_solve", "--inputs", tmp_path / "in.npz", "--grad", "b",
               "--out", tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["out"], np.mean(np.linalg.solve(2 * theta, b)), rtol=1e-12)
    lam = np.linalg.solve((2 * theta).T, np.full(4, 0.25))
    np.testing.assert_allclose(out["grad_b"], lam, rtol=1e-10)


def test_bench_times_the_vjp_of_a_model_with_several_results(tmp_path):
    (tmp_path / "multi.la").write_text("model g(A: f64[n, n], b: f64[n]) -> (f64[n], f64) {\n"
                                       "    x = solve(A, b)\n    return x, sum(x)\n}\n")
    r = lagrad("bench", "multi.la", "--model", "g", "--dims", "n=8", "--repeat", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vjp with a random cotangent" in r.stdout and "gradient/forward" in r.stdout


def test_bench_reports_ratio():
    r = lagrad("bench", EXAMPLE, "--model", "implicit_solve", "--dims", "n=8", "--repeat", "3")
    assert r.returncode == 0, r.stderr
    assert "gradient/forward" in r.stdout


BAD = [
    ("model f(x: f64) -> f64 { return x @@ x }", "bad.la:1:35: ", "@@"),
    ("model f(x: f64) -> f64 {\n  return slove(x) }", "bad.la:2:10: ", "did you mean `solve`"),
    ("model f(x: f64[n], y: f64[m]) -> f64 {\n  return sum(x + y) }", "bad.la:2:14: ", "f64[n] and f64[m]"),
]


@pytest.mark.parametrize("src,where,msg", BAD)
def test_errors_exit_2_without_traceback(tmp_path, src, where, msg):
    (tmp_path / "bad.la").write_text(src)
    for cmd in ("show", "check"):
        r = lagrad(cmd, "bad.la", cwd=tmp_path)
        assert r.returncode == 2
        assert r.stderr.startswith(where) and msg in r.stderr
        assert "^" in r.stderr and "Traceback" not in r.stderr


def test_debug_shows_traceback(tmp_path):
    (tmp_path / "bad.la").write_text(BAD[1][0])
    r = lagrad("--debug", "show", "bad.la", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" in r.stderr


@pytest.mark.parametrize("args,msg", [
    (("show", "missing.la"), "cannot read"),
    (("show", EXAMPLE, "--model", "nosuch"), "no model `nosuch`"),
    (("show", EXAMPLE, "--adjoint", "--wrt", "q"), "no argument `q`"),
    (("show", EXAMPLE, "--wrt", "x"), "add --adjoint or --tangent"),
])
def test_other_user_errors_exit_2(args, msg):
    r = lagrad(*args)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr


def test_check_reports_a_wrong_rule():
    import lagrad as lg
    from lagrad.runtime.check import check_function
    lg.primitive("wrong_sin", lambda x: __import__("jax").numpy.sin(x),
                 frechet="frechet wrong_sin(x) -> y { dy = -cos(x) * dx }")
    f = lg.loads("model f(x: f64[n]) -> f64 { return sum(wrong_sin(x)) }").f
    rows = check_function(f)
    assert not rows[0].ok and rows[0].adjoint_err > 0.1


def test_check_holds_stop_gradient_and_blr_compress_fixed():
    """Their derivative is zero by definition: the differences keep their results fixed too (the
    check said NO on these correct models), and a wrong rule beside them is still caught."""
    import lagrad as lg
    from lagrad.runtime.check import check_function
    m = lg.loads("model sg(x: f64[n]) -> f64 { return sum(stop_gradient(x) * x) }\n"
                 "model bc(A: f64[n, n], x: f64[n]) -> f64 {\n D, U, V = blr_compress(A, block=2, rank=1)\n"
                 " return sum((blr(D, U, V) @ x) ** 2) }")
    rows = check_function(m.sg) + check_function(m.bc)
    assert all(r.ok for r in rows) and abs(rows[0].fd) > 1e-3 and abs(rows[2].fd) > 1e-3
    lg.primitive("wrong_sin2", lambda x: __import__("jax").numpy.sin(x),
                 frechet="frechet wrong_sin2(x) -> y { dy = -cos(x) * dx }")
    f = lg.loads("model f(x: f64[n]) -> f64 { return sum(wrong_sin2(x) * stop_gradient(x)) }").f
    assert not check_function(f)[0].ok


def test_check_samples_one_matrix_for_both_lyap_and_dlyap():
    """One A in lyap (needs stable) and dlyap (needs spectral radius < 1): sampled in both."""
    import lagrad as lg
    from lagrad.runtime.check import check_function
    f = lg.loads("model both(A: f64[n, n], Q: f64[n, n]) -> f64 { return sum(lyap(A, Q) * dlyap(A', Q)) }").both
    rows = check_function(f)
    assert rows[0].domain == "stable-contractive" and all(r.ok for r in rows), rows


def test_check_samples_sqrt_log_and_pow_arguments_positive():
    import lagrad as lg
    from lagrad.runtime.check import check_function
    f = lg.loads("model std(x: f64[n]) -> f64 { return sum(sqrt(x)) + sum(log(x)) + sum(x ** 1.5) }").std
    rows = check_function(f)
    assert rows[0].domain == "positive" and rows[0].ok, rows


# -- f32 models: check takes its differences in f64 (or, failing that, in f32 with an f32 step) --

F32 = """model g(A: f32[n,n], b: f32[n]) -> f32 { return dot(b, solve(A, b)) }
model h(A: f32[n,n], b: f32[n]) -> f32 { return sum(A @ b) + sum(b * b) }
"""


def test_check_passes_on_f32_models(tmp_path):
    (tmp_path / "f32.la").write_text(F32)
    r = lagrad("check", "f32.la", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 of 4 inputs agree" in r.stdout


def test_check_f32_with_f32_differences():
    import lagrad as lg
    from lagrad.runtime.check import check_function
    mod = lg.loads(F32)
    for name in ("g", "h"):
        for fd64 in (True, False):
            rows = check_function(mod[name], fd64=fd64)
            assert all(r.ok for r in rows), (name, fd64, rows)


def test_check_f64_unchanged_by_the_f32_path():
    import lagrad as lg
    from lagrad.runtime.check import check_function
    f = lg.loads(F32.replace("f32", "f64")).g
    rows = check_function(f)
    assert all(r.ok and r.adjoint_err < 1e-7 for r in rows)


def test_check_reports_a_wrong_rule_in_f32():
    import jax.numpy as jnp
    import lagrad as lg
    from lagrad.runtime.check import check_function
    lg.primitive("wrong_sin32", lambda x: jnp.sin(x),
                 frechet="frechet wrong_sin32(x) -> y { dy = -cos(x) * dx }")
    lg.primitive("right_sin32", lambda x: jnp.sin(x),
                 frechet="frechet right_sin32(x) -> y { dy = cos(x) * dx }")
    bad = lg.loads("model f(x: f32[n]) -> f32 { return sum(wrong_sin32(x)) }").f
    good = lg.loads("model f(x: f32[n]) -> f32 { return sum(right_sin32(x)) }").f
    for fd64 in (True, False):
        rows = check_function(bad, fd64=fd64)
        assert not rows[0].ok and rows[0].adjoint_err > 0.1
        assert check_function(good, fd64=fd64)[0].ok


def test_check_f32_primitive_that_stays_f32():
    """An implementation fixed to f32 cannot run in f64: the differences are taken in f32."""
    import jax.numpy as jnp
    import lagrad as lg
    from lagrad.runtime.check import check_function
    lg.primitive("sin_only32", lambda x: jnp.sin(x.astype(jnp.float32)),
                 frechet="frechet sin_only32(x) -> y { dy = cos(x) * dx }")
    lg.primitive("sin_only32_wrong", lambda x: jnp.sin(x.astype(jnp.float32)),
                 frechet="frechet sin_only32_wrong(x) -> y { dy = 2 * cos(x) * dx }")
    good = lg.loads("model f(x: f32[n]) -> f32 { return sum(sin_only32(x) * x) }").f
    bad = lg.loads("model f(x: f32[n]) -> f32 { return sum(sin_only32_wrong(x) * x) }").f
    assert check_function(good)[0].ok
    assert not check_function(bad)[0].ok


def test_check_wrong_f32_rule_exits_1(tmp_path):
    script = tmp_path / "wrong.py"
    script.write_text(
        "import sys, jax.numpy as jnp, lagrad\n"
        "from lagrad.cli import main\n"
        "lagrad.primitive('wrong_cos32', lambda x: jnp.cos(x), "
        "frechet='frechet wrong_cos32(x) -> y { dy = sin(x) * dx }')\n"
        "sys.exit(main(sys.argv[1:]))\n")
    (tmp_path / "w.la").write_text("model f(x: f32[n]) -> f32 { return sum(wrong_cos32(x)) }")
    r = subprocess.run([sys.executable, str(script), "check", "w.la"], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=tmp_path, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "MISMATCH: f.x" in r.stdout


# -- files the user names that cannot be read or written: a message and exit 2 --

def test_run_unwritable_out_exits_2(tmp_path):
    np.savez(tmp_path / "in.npz", theta=np.eye(4) * 3, b=np.ones(4))
    r = lagrad("run", EXAMPLE, "--model", "implicit_solve", "--inputs", tmp_path / "in.npz",
               "--out", tmp_path / "nonexistdir" / "x.npz")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "cannot write" in r.stderr and "nonexistdir" in r.stderr


def test_not_utf8_file_exits_2(tmp_path):
    (tmp_path / "bin.la").write_bytes(b"model m(x: f64) -> f64 { return x }\n\xff\xfe\n")
    for cmd in ("check", "show"):
        r = lagrad(cmd, "bin.la", cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "bin.la" in r.stderr and "UTF-8" in r.stderr


@pytest.mark.parametrize("exc", [
    UnicodeDecodeError("utf-8", b"\xff\xfe", 0, 1, "invalid start byte"),
    PermissionError(13, "Permission denied"),
])
def test_loader_errors_become_messages(monkeypatch, capsys, exc):
    """Whatever lagrad.load raises for an unreadable file ends as a message and exit 2."""
    import lagrad as lg
    from lagrad.cli import main

    def fail(path, **kw):
        raise exc
    monkeypatch.setattr(lg, "load", fail)
    for cmd in ("check", "show"):
        assert main([cmd, "x.la"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cannot read x.la")


# -- in-process user errors: main() returns 2 with a message (an exception would fail the test) --

def _main(capsys, *args):
    from lagrad.cli import main
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:            # argparse's usage errors
        rc = e.code
    return rc, capsys.readouterr()


TWO = "model a(x: f64[n]) -> f64 { return sum(x * x) }\nmodel b(y: f64[m], z: f64[m]) -> f64 { return dot(y, z) }\n"


def test_dims_naming_no_dimension_of_the_model_are_ignored_with_a_warning(capsys):
    # SPEC §5's usage line `--dims n=8,m=3` works for a model with only n: m is ignored, and the
    # warning says so (with the model's dimensions and a suggestion for a near miss)
    rc, out = _main(capsys, "check", EXAMPLE, "--dims", "n=5,m=3")
    assert rc == 0 and "warning: --dims: `implicit_solve` has no dimension `m` (its dimensions: n)" in out.err
    assert "ignored" in out.err and "2 of 2 inputs agree" in out.out
    rc, out = _main(capsys, "bench", EXAMPLE, "--model", "implicit_solve", "--dims", "N=8", "--repeat", "1")
    assert rc == 0 and "no dimension `N`" in out.err and "did you mean `n`" in out.err
    rc, out = _main(capsys, "show", EXAMPLE, "--dims", "q=3")
    assert rc == 0 and "no dimension `q`" in out.err and "primal implicit_solve" in out.out


def test_dims_of_another_model_of_the_file(tmp_path, capsys):
    (tmp_path / "two.la").write_text(TWO)
    rc, out = _main(capsys, "check", tmp_path / "two.la", "--dims", "m=3")
    assert rc == 0 and "3 of 3 inputs agree" in out.out and "warning" not in out.err
    rc, out = _main(capsys, "check", tmp_path / "two.la", "--dims", "m=3,q=2")
    assert rc == 0 and "no model" in out.err and "`q`" in out.err and "a: n; b: m" in out.err
    rc, out = _main(capsys, "check", tmp_path / "two.la", "--model", "a", "--dims", "m=3")
    assert rc == 0 and "`a` has no dimension `m`" in out.err


@pytest.mark.parametrize("dims", ["n=abc", "n=-1", "n=0", "n=1.5", "n=²", "n", "=3", "n=3,", "n=3,n=4"])
def test_bad_dims_exit_2(capsys, dims):
    for args in (("check", EXAMPLE), ("bench", EXAMPLE, "--model", "implicit_solve", "--repeat", "1"),
                 ("show", EXAMPLE)):
        rc, out = _main(capsys, *args, "--dims", dims)
        assert rc == 2 and "--dims" in out.err, (args, dims, out.err)


def test_run_input_errors_exit_2(tmp_path, capsys):
    np.savez(tmp_path / "in.npz", theta=np.eye(4) * 3, b=np.ones(4))
    np.savez(tmp_path / "missing.npz", theta=np.eye(4))
    np.savez(tmp_path / "shape.npz", theta=np.eye(4), b=np.ones(5))
    np.savez(tmp_path / "extra.npz", theta=np.eye(4), b=np.ones(4), c=np.ones(2))
    np.save(tmp_path / "one.npy", np.eye(4))
    (tmp_path / "text.npz").write_text("hello")
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "zip.npz").write_bytes(b"PK\x03\x04garbage")
    run = ("run", EXAMPLE, "--model", "implicit_solve", "--inputs")
    cases = [
        (("missing.npz",), "missing argument"),
        (("shape.npz",), "dimension `n`"),
        (("extra.npz",), "no argument `c`"),
        (("one.npy",), "cannot read the inputs"),
        (("text.npz",), "cannot read the inputs"),
        (("empty.npz",), "cannot read the inputs"),
        (("zip.npz",), "cannot read the inputs"),
        (("nosuch.npz",), "cannot read the inputs"),
        ((".",), "cannot read the inputs"),
        (("in.npz", "--grad", "q"), "no argument `q`"),
        (("in.npz", "--grad", ""), "give the input names to differentiate"),
        (("in.npz", "--out", "."), "cannot write"),
        (("in.npz", "--out", "nodir/x.npz"), "cannot write"),
    ]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for extra, msg in cases:
            rc, out = _main(capsys, *run, *extra)
            assert rc == 2 and msg in out.err, (extra, out.err)
        assert not list(tmp_path.glob("*.npz.npz")) and not (tmp_path.parent / f"{tmp_path.name}.npz").exists()
    finally:
        os.chdir(cwd)


def test_other_usage_errors_exit_2(capsys):
    rc, out = _main(capsys, "show", EXAMPLE, "--format", "foo")
    assert rc == 2 and "invalid choice" in out.err
    rc, out = _main(capsys, "bench", EXAMPLE, "--model", "implicit_solve", "--repeat", "0")
    assert rc == 2 and "--repeat" in out.err
    rc, out = _main(capsys, "check", EXAMPLE, "--model", "nosuch")
    assert rc == 2 and "no model `nosuch`" in out.err
