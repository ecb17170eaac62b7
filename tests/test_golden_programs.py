"""Golden tests of printed programs: the primal, tangent and adjoint text of several models is
compared with files in tests/golden/. After an intended change of the printer or of a rule,
regenerate them with ``LAGRAD_UPDATE_GOLDEN=1 python -m pytest tests/test_golden_programs.py``
and review the diff."""
import os
from pathlib import Path

import pytest

import lagrad

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = [  # (file, model, dims to specialize)
    ("examples/implicit_solve.la", "implicit_solve", {}),
    ("examples/frechet_inverse.la", "frechet_inverse", {}),
    ("examples/qr_backprop.la", "q_wide", {}),
    ("examples/matrix_free_solve.la", "spd_solve", {}),
    ("examples/woodbury_preconditioner.la", "apply_precond", {}),
    ("tests/golden/stdlib_mix.la", "stdlib_mix", {}),
    ("examples/kalman/kalman.la", "kalman_nll", {"T": 2}),
]
KINDS = {"primal": lambda f: f.program, "tangent": lambda f: f.tangent(), "adjoint": lambda f: f.adjoint()}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("path,model,dims", CASES, ids=[c[1] for c in CASES])
def test_printed_program_matches_golden(path, model, dims, kind):
    f = lagrad.load(ROOT / path)[model]
    if dims:
        f = f.specialize(**dims)
    text = str(KINDS[kind](f)) + "\n"
    golden = GOLDEN / f"{model}.{kind}.txt"
    if os.environ.get("LAGRAD_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"missing {golden}; run with LAGRAD_UPDATE_GOLDEN=1 to create it"
    assert text == golden.read_text(), f"{model} {kind} program changed; see the module docstring"


def test_golden_adjoints_share_factorizations():
    """What the golden files pin down, said in words: one lu_factor serves the forward solve and
    the adjoint's transposed solve; expm and lyap factors are values the adjoint reuses (lyap's
    made together with the forward solve)."""
    text = (GOLDEN / "stdlib_mix.adjoint.txt").read_text()
    assert text.count("lu_factor(") == 1 and "trans=true" in text
    assert text.count("expm_factor(") == 1 and "expm_frechet_apply" in text
    # one lyap factor, made with the forward solve in its loop (lyap_factor_solve)
    assert text.count("lyap_factor_solve(") == 1 and "lyap_factor(" not in text
    assert "X_bar" not in text.split("return")[-1]
    for name in ("A_bar", "Q_bar", "b_bar"):
        assert f"{name}:" in text


def test_hvp_of_the_stdlib_mix_matches_differences_of_the_gradient():
    """Forward over reverse through lyap, expm and solve (linearizing the adjoint re-enters the
    Fréchet rules, including lyap's text rule on lyap(Aᵀ, Ḡ))."""
    import numpy as np
    f = lagrad.load(GOLDEN / "stdlib_mix.la").stdlib_mix
    rng = np.random.default_rng(0)
    A, Q, b = 0.3 * rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), rng.standard_normal(3)
    D = rng.standard_normal((3, 3))
    hv = np.asarray(f.hvp("A")((A, Q, b), D))
    g = f.grad("A")
    h = 1e-5
    fd = (np.asarray(g(A + h * D, Q, b)) - np.asarray(g(A - h * D, Q, b))) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)
