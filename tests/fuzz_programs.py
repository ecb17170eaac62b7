"""Random well-typed `.la` programs and their reference semantics, for tests/test_fuzz.py.

`programs()` is a hypothesis strategy for a pipeline over the standard library: a few statements
`t0 = EXPR`, `t1 = EXPR`, ... (each may use the arguments and the earlier statements), then
`return SCALAR_EXPR`. Every expression is drawn with a type — a scalar, an n-vector, an
m-vector, an n×n or an n×m matrix — so the program type-checks by construction, and comes
with its meaning as a `jax.numpy` function of the argument values: a small reference
interpreter, written independently of lagrad, whose `jax.grad` is the reference gradient.

Inputs that a primitive needs well-conditioned are built in the program: solves, inverses,
Cholesky factors and log-determinants take `tanh(G) @ tanh(G)' + 3 * eye(n)` (symmetric,
eigenvalues in [3, 3 + n]), so every drawn program is well-defined and smooth at any input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp
import jax.scipy.linalg as jsl
from hypothesis import strategies as st

S, V, W, M, R = "S", "V", "W", "M", "R"       # f64, f64[n], f64[m], f64[n, n], f64[n, m]
TYPES = (S, V, W, M, R)
LA_TYPE = {S: "f64", V: "f64[n]", W: "f64[m]", M: "f64[n, n]", R: "f64[n, m]"}
PARAMS = (("s", S), ("x", V), ("y", W), ("A", M), ("B", R))


@dataclass(frozen=True)
class E:
    """An expression: its source text and its meaning, a function of the environment."""
    text: str
    ref: Callable


def _leaf(name):
    return E(name, lambda env: env[name])


def _un(fmt, f):
    return lambda a: E(fmt.format(a.text), lambda env: f(a.ref(env)))


def _bin(fmt, f):
    return lambda a, b: E(fmt.format(a.text, b.text), lambda env: f(a.ref(env), b.ref(env)))


def _spd(g: E) -> E:
    """A symmetric positive definite n×n matrix from any n×n expression."""
    return E(f"(tanh({g.text}) @ tanh({g.text})' + 3 * eye(n))",
             lambda env: (lambda t: t @ t.T + 3 * jnp.eye(t.shape[0]))(jnp.tanh(g.ref(env))))


def _sigmoid(a):
    return 1 / (1 + jnp.exp(-a))


# Productions: result type -> [(argument types, builder)]. Builders take the argument Es.
PRODUCTIONS = {
    S: [
        ((V,), _un("sum({})", jnp.sum)), ((M,), _un("mean({})", jnp.mean)),
        ((V, V), _bin("dot({}, {})", jnp.dot)), ((M,), _un("trace({})", jnp.trace)),
        ((W,), _un("norm({} + 2)", lambda a: jnp.linalg.norm(a + 2))),
        ((V,), _un("{}[0]", lambda a: a[0])), ((M,), _un("{}[-1, -1]", lambda a: a[-1, -1])),
        ((S, S), _bin("({} * {})", jnp.multiply)), ((S, S), _bin("({} - {})", jnp.subtract)),
        ((S,), _un("tanh({})", jnp.tanh)), ((R,), _un("sum({})", jnp.sum)),
        ((M,), lambda g: E(f"logdet({_spd(g).text})", lambda env: jnp.linalg.slogdet(_spd(g).ref(env))[1])),
        ((M, V), lambda g, b: E(f"dot({b.text}, solve({_spd(g).text}, {b.text}, assume=\"pos\"))",
                                lambda env: jnp.dot(b.ref(env), jnp.linalg.solve(_spd(g).ref(env), b.ref(env))))),
    ],
    V: [
        ((M, V), _bin("({} @ {})", jnp.matmul)), ((R, W), _bin("({} @ {})", jnp.matmul)),
        ((V,), _un("tanh({})", jnp.tanh)), ((V, V), _bin("({} + {})", jnp.add)),
        ((V, V), _bin("({} - {})", jnp.subtract)), ((V, V), _bin("({} * {})", jnp.multiply)),
        ((S, V), _bin("({} * {})", jnp.multiply)), ((V,), _un("-{}", jnp.negative)),
        ((V,), _un("exp(tanh({}))", lambda a: jnp.exp(jnp.tanh(a)))), ((V,), _un("sigmoid({})", _sigmoid)),
        ((M,), _un("{}[:, 0]", lambda a: a[:, 0])), ((M,), _un("{}[-1, :]", lambda a: a[-1, :])),
        ((M,), _un("diag({})", jnp.diag)),
        ((M, V), lambda g, b: E(f"solve({_spd(g).text}, {b.text})",
                                lambda env: jnp.linalg.solve(_spd(g).ref(env), b.ref(env)))),
        ((M, V), lambda g, b: E(f"solve_triangular(cholesky({_spd(g).text}), {b.text})",
                                lambda env: jsl.solve_triangular(jnp.linalg.cholesky(_spd(g).ref(env)),
                                                                 b.ref(env), lower=True))),
    ],
    W: [
        ((R, V), _bin("({}' @ {})", lambda a, b: a.T @ b)), ((W,), _un("tanh({})", jnp.tanh)),
        ((W, W), _bin("({} + {})", jnp.add)), ((S, W), _bin("({} * {})", jnp.multiply)),
        ((R,), _un("{}[0, :]", lambda a: a[0, :])), ((W,), _un("sin({})", jnp.sin)),
    ],
    M: [
        ((M, M), _bin("tanh({} @ {})", lambda a, b: jnp.tanh(a @ b))), ((M, M), _bin("({} + {})", jnp.add)),
        ((M,), _un("{}'", lambda a: a.T)), ((M,), _un("transpose({})", lambda a: a.T)),
        ((S, M), _bin("({} * {})", jnp.multiply)), ((M,), _un("tril({})", jnp.tril)),
        ((M,), _un("triu({}, k=1)", lambda a: jnp.triu(a, 1))), ((V,), _un("diag({})", jnp.diag)),
        ((V, V), _bin("outer({}, {})", jnp.outer)), ((R, R), _bin("({} @ {}')", lambda a, b: a @ b.T)),
        ((M,), _un("exp(tanh({}))", lambda a: jnp.exp(jnp.tanh(a)))), ((M,), _un("cos({})", jnp.cos)),
        ((M,), lambda g: E(f"inv({_spd(g).text})", lambda env: jnp.linalg.inv(_spd(g).ref(env)))),
        ((M,), lambda g: E(f"cholesky({_spd(g).text})", lambda env: jnp.linalg.cholesky(_spd(g).ref(env)))),
        ((M, M), lambda g, b: E(f"solve({_spd(g).text}, {b.text})",
                                lambda env: jnp.linalg.solve(_spd(g).ref(env), b.ref(env)))),
    ],
    R: [
        ((M, R), _bin("({} @ {})", jnp.matmul)), ((R,), _un("tanh({})", jnp.tanh)),
        ((R, R), _bin("({} - {})", jnp.subtract)), ((V, W), _bin("outer({}, {})", jnp.outer)),
        ((S, R), _bin("({} * {})", jnp.multiply)),
    ],
}


def expressions(ty, env_names, depth):
    """A strategy for expressions of type `ty` over the names in `env_names` (name -> type)."""
    leaves = [_leaf(n) for n, t in env_names.items() if t == ty]
    if ty == S:
        leaves.append(E("0.5", lambda env: 0.5))
    leaf = st.sampled_from(leaves)
    if depth <= 0:
        return leaf

    @st.composite
    def node(draw):
        arg_types, build = draw(st.sampled_from(PRODUCTIONS[ty]))
        return build(*(draw(expressions(t, env_names, depth - 1)) for t in arg_types))
    return st.one_of(leaf, node())


@dataclass(frozen=True)
class Program:
    text: str
    stmts: tuple          # (name, E)
    ret: E

    def reference(self, s, x, y, A, B):
        """The program's value, computed from the expressions' meanings (jax.numpy)."""
        env = {"s": s, "x": x, "y": y, "A": A, "B": B}
        for name, e in self.stmts:
            env[name] = e.ref(env)
        return self.ret.ref(env)


@st.composite
def programs(draw, max_stmts=3, depth=2):
    env = dict(PARAMS)
    stmts = []
    for k in range(draw(st.integers(0, max_stmts))):
        ty = draw(st.sampled_from(TYPES))
        stmts.append((f"t{k}", draw(expressions(ty, env, depth))))
        env[f"t{k}"] = ty
    ret = draw(expressions(S, env, depth))
    params = ", ".join(f"{n}: {LA_TYPE[t]}" for n, t in PARAMS)
    body = "".join(f"    {n} = {e.text}\n" for n, e in stmts)
    text = f"model fz({params}) -> f64 {{\n{body}    return {ret.text}\n}}\n"
    return Program(text, tuple(stmts), ret)


# ---- mutation ---------------------------------------------------------------------------------
TOKENS = ["(", ")", "[", "]", "{", "}", ",", ";", "=", "+", "-", "*", "/", "@", "**", "'", ":",
          ".T", "\n", "#", "\"", "model", "fn", "op", "for", "in", "range", "return", "f64", "f32",
          "x", "A", "n", "m", "1", "0.5", "1e-3", "true", "solve", "inv", "cg", "exp", "é", "\t",
          "->", "assume=", "k=1", "zeros(n)", "eye(3)"]


@st.composite
def mutations(draw, text: str):
    """`text` with a few random edits: characters or tokens deleted, inserted, swapped."""
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "swap", "duplicate", "truncate"]))
        i = draw(st.integers(0, max(len(text) - 1, 0)))
        j = min(len(text), i + draw(st.integers(1, 6)))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
        elif kind == "swap":
            k = draw(st.integers(0, max(len(text) - 1, 0)))
            a, b = sorted((i, k))
            text = text[:a] + text[b:b + 1] + text[a + 1:b] + text[a:a + 1] + text[b + 1:] if a < b else text
        elif kind == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:j]
    return text
