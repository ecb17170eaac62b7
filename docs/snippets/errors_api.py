"""Errors seen from Python: a file error's fields, and call-time argument checks."""
import numpy as np

import lagrad

try:
    lagrad.loads("model f(x: f64) -> f64 {\n    return x @ x\n}", name="scalar.la")
except lagrad.LaTypeError as e:
    print(f"{type(e).__name__} at {e.path}:{e.line}:{e.column}: {e.message}")
    print(e)                              # the message with the source line and the caret
    print()

f = lagrad.load("examples/implicit_solve.la").implicit_solve
calls = {
    "sizes disagree": lambda: f(np.eye(3), np.ones(4)),
    "missing argument": lambda: f(np.eye(3)),
    "unknown keyword": lambda: f(theta=np.eye(3), c=np.ones(3)),
    "complex input": lambda: f(np.eye(3) * 1j, np.ones(3)),
    "misspelled wrt": lambda: f.grad("thetaa"),
}
for what, call in calls.items():
    try:
        call()
    except lagrad.LagradError as e:
        print(f"{what:17} {type(e).__name__}: {e}")
