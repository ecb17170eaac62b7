"""Split an adjoint program into a forward part (primal inputs → outputs + residuals) and a
backward part (residuals + cotangents → gradients): what a vjp with saved residuals needs."""
from __future__ import annotations

import sympy

from .ir import Program, Var
from .passes import dce
from .types import TensorType, dim_names, solve_entry


def split_adjoint(adj: Program, n_primal_in: int, n_out: int):
    primal_inputs = adj.inputs[:n_primal_in]
    ct_inputs = adj.inputs[n_primal_in:]
    dep = {id(c) for c in ct_inputs}
    fwd, bwd = [], []
    for e in adj.eqns:
        if any(isinstance(a, Var) and id(a) in dep for a in e.inputs):
            bwd.append(e)
            dep.update(id(o) for o in e.outputs)
        else:
            fwd.append(e)
    outputs, grads = adj.outputs[:n_out], adj.outputs[n_out:]
    residuals, seen = [], set()
    for a in [a for e in bwd for a in e.inputs] + list(grads):
        if isinstance(a, Var) and id(a) not in dep and id(a) not in seen:
            seen.add(id(a))
            residuals.append(a)
    residuals += _dimension_carriers(bwd, residuals + list(ct_inputs), primal_inputs, seen)
    f = dce(adj.copy(inputs=list(primal_inputs), eqns=fwd, outputs=list(outputs) + residuals, kind="forward"))
    b = adj.copy(inputs=residuals + list(ct_inputs), eqns=bwd, outputs=list(grads), kind="backward")
    return f, b


def _alone(v) -> set:
    t = v.type
    return {d.name for d in t.shape if d.is_Symbol} if isinstance(t, TensorType) else set()


def _dims_of(v) -> set:
    return dim_names(v.type.shape) if isinstance(v.type, TensorType) else set()


def _dimension_carriers(bwd, inputs, primal_inputs, seen) -> list:
    """Primal inputs passed on to the backward part only so that it can bind a dimension its
    equations use but its residuals do not show alone (``k`` when every residual is n × n but a
    cotangent is padded to n × (n + k)); they are references, not copies."""
    needed = set()
    for e in bwd:
        for o in e.outputs:
            needed |= _dims_of(o)
        for _, val in e.params:
            needed |= dim_names(val)
    have = _bindable(inputs)
    out = []
    for d in sorted(needed - have):
        if d in have:                       # bound through a carrier added for another name
            continue
        carrier = next((v for v in primal_inputs if d in _alone(v)), None)
        if carrier is not None and id(carrier) not in seen:
            seen.add(id(carrier))
            out.append(carrier)
            have = _bindable(list(inputs) + out)
    return out


def _bindable(inputs) -> set:
    """The dimensions a program with these inputs can bind (as runtime/codegen.dim_bindings
    does): those standing alone in a shape, then those `solve_entry` gives once the others are
    bound (`k` from [n + k] and n). A name seen only inside a sum (`f64[n + m]`) is not."""
    have = set().union(*map(_alone, inputs)) if inputs else set()
    entries = [sympy.expand(d) for v in inputs if isinstance(v.type, TensorType) for d in v.type.shape]
    grown = True
    while grown:
        grown = False
        for d in entries:
            step = solve_entry(d, have)
            if step is not None:
                have.add(step[0].name)
                grown = True
    return have
