"""Suite-wide settings: every compiler pass's output is type-checked (LAGRAD_CHECK_PASSES), so a
pass that breaks a program is named by the CompilerBug instead of surfacing later."""
import os

os.environ.setdefault("LAGRAD_CHECK_PASSES", "1")
