"""What lagrad says when a user primitive's rules are missing or wrong."""
import numpy as np

import lagrad

x = np.arange(1.0, 4.0)

# A linear primitive without a transpose rule: forward mode works, reverse mode cannot.
lagrad.primitive("triple", lambda x: 3 * x, linear_in=(0,),
                 frechet=lambda b, primals, tangents, outs, params: b.emit("triple", tangents[0]))
f = lagrad.loads("model f(x: f64[n]) -> f64 { return sum(triple(x)) }", name="triple.la").f
print("jvp:", float(f.jvp((x,), (np.ones(3),))[1]))
try:
    f.grad("x")(x)
except lagrad.RuleError as e:
    print(f"RuleError: {e}\n")

# A Fréchet rule that is not linear in the tangent.
lagrad.primitive("square", lambda x: x * x, frechet="frechet square(x) -> y { dy = dx * dx }")
g = lagrad.loads("model g(x: f64[n]) -> f64 { return sum(square(x)) }", name="square.la").g
try:
    g.grad("x")(x)
except lagrad.RuleError as e:
    print(f"RuleError: {e}\n")

# A primitive with no Fréchet rule at all.
lagrad.primitive("mystery", lambda x: x * x)
h = lagrad.loads("model h(x: f64[n]) -> f64 { return sum(mystery(x)) }", name="mystery.la").h
print("value:", float(h(x)))
try:
    h.grad("x")(x)
except lagrad.RuleError as e:
    print(f"RuleError: {e}")
