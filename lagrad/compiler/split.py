"""Split an adjoint program into a forward part (primal inputs → outputs + residuals) and a
backward part (residuals + cotangents → gradients): what a vjp with saved residuals needs."""
from __future__ import annotations

from .ir import Program, Var
from .passes import dce


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
    f = dce(adj.copy(inputs=list(primal_inputs), eqns=fwd, outputs=list(outputs) + residuals, kind="forward"))
    b = adj.copy(inputs=residuals + list(ct_inputs), eqns=bwd, outputs=list(grads), kind="backward")
    return f, b
