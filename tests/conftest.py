"""Suite-wide settings: every compiler pass's output is type-checked (LAGRAD_CHECK_PASSES), so a
pass that breaks a program is named by the CompilerBug instead of surfacing later; NumPy's print
options are restored after each test (the examples' `main()` set them for their own output, and
the documentation test compares printed numbers)."""
import os

import numpy as np
import pytest

os.environ.setdefault("LAGRAD_CHECK_PASSES", "1")


@pytest.fixture(autouse=True)
def _restore_numpy_print_options():
    with np.printoptions():
        yield
