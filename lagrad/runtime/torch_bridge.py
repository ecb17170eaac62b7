"""The PyTorch bridge: ``f.to_torch()`` is a function of torch tensors for PyTorch autograd whose
backward is lagrad's derived adjoint (the split vjp: the forward saves the residuals the
backward part of the adjoint program needs, the backward runs that part on the incoming
gradients).

Second derivatives: the backward is itself differentiable (``create_graph=True``,
``torch.autograd.functional.hessian``, ``gradgradcheck``). Differentiating Jᵀ·ct again needs
J·v with respect to the cotangent (lagrad's ``f.jvp``, for any model) and ct·H·v with respect
to the inputs, which lagrad derives (``f.hvp``) only for a model returning one scalar. For any
other model a second derivative with respect to its inputs raises a ``RuleError`` that says so
(never a silent zero); one with respect to the cotangents only (the double-backward trick of
``torch.autograd.functional.jvp``) works for every model. A third derivative raises a
``RuleError``. The errors come from torch's backward call (``.backward()``,
``torch.autograd.grad``) as lagrad's exceptions.

Arrays cross by DLPack, so a contiguous tensor becomes a JAX array over the same memory and
a JAX result becomes a tensor over the same memory: no copies on either side where both
libraries can share the buffer (same device; JAX may copy an input whose memory it cannot
alias, e.g. a non-contiguous view, which is made contiguous first). Since lagrad's residuals
may share an input's memory, the forward saves its input tensors, and torch refuses a backward
after one of them was changed in place. torch is an optional dependency, imported only here.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..errors import InputError, RuleError
from .binding import collect


def _torch():
    try:
        import torch
    except ImportError:
        raise InputError("`to_torch()` needs PyTorch, which is not installed "
                         "(pip install torch, or lagrad's `torch` extra)") from None
    return torch


def tensor_to_jax(t):
    """A torch tensor as a JAX array over the same memory (DLPack); other values unchanged."""
    torch = _torch()
    if not isinstance(t, torch.Tensor):
        return t
    t = t.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    if t.dtype.is_complex or t.dtype == torch.bool:
        return t.cpu().numpy()            # refused (complex) or converted by lagrad's binding
    return jax.dlpack.from_dlpack(t)


def jax_to_tensor(a, device=None):
    """A JAX array as a torch tensor over the same memory (DLPack)."""
    torch = _torch()
    t = torch.from_dlpack(jnp.asarray(a))
    return t if device is None or t.device == device else t.to(device)


_THIRD = ("a third derivative through `{name}.to_torch()` is not available: lagrad's torch bridge "
          "is differentiable twice for a model returning one scalar (once otherwise); for "
          "Hessian-vector products use `f.hvp`")


class _State:
    """What the forward of one call leaves for its backward and its backward's backward."""

    def __init__(self, torch, pullback, values, out_shapes, device):
        self.pullback, self.device = pullback, device
        self.is_tensor = [isinstance(v, torch.Tensor) for v in values]
        self.float_in = [t and v.dtype.is_floating_point for t, v in zip(self.is_tensor, values)]
        self.float_pos = [i for i, k in enumerate(self.float_in) if k]
        self.others = [None if t else v for t, v in zip(self.is_tensor, values)]   # Python scalars, arrays
        self.out_shapes = out_shapes
        self.scalar = len(out_shapes) == 1 and out_shapes[0][0] == ()

    def inputs(self, tensors):
        """The call's arguments: the saved tensors (with their autograd history) in place."""
        it = iter(tensors)
        return [next(it) if t else v for t, v in zip(self.is_tensor, self.others)]


def _wanted(torch, x) -> bool:
    """Whether the running backward pass will use a gradient for tensor `x` (False, e.g., for
    ``torch.autograd.grad(g, ct)`` with respect to a cotangent only, as in the double-backward
    trick of ``torch.autograd.functional.jvp``). Asks torch's engine; True where it cannot."""
    try:
        node = torch.autograd.graph.get_gradient_edge(x).node
        return bool(torch._C._will_engine_execute_node(node))
    except Exception:
        return True


def _outputs_text(out_shapes):
    if len(out_shapes) == 1:
        return f"an output of shape {out_shapes[0][0]}"
    return f"{len(out_shapes)} outputs (of shapes {', '.join(str(s) for s, _ in out_shapes)})"


def to_torch(f):
    """``g(*tensors)`` computing ``f`` for PyTorch autograd; the backward is lagrad's adjoint."""
    torch = _torch()
    names = [n for n, _ in f.params]

    class LagradFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            device = next((t.device for t in tensors if isinstance(t, torch.Tensor)), None)
            arrays = [tensor_to_jax(t) for t in tensors]
            out, pullback = f.vjp(*arrays)
            outs = out if isinstance(out, tuple) else (out,)
            ctx.state = _State(torch, pullback, tensors, [(tuple(o.shape), o.dtype) for o in outs], device)
            # The inputs, for the backward's own graph (second derivatives). Saving them also
            # has torch refuse a backward after an in-place change of an input, whose memory
            # lagrad's residuals may share by DLPack.
            ctx.save_for_backward(*(t for t in tensors if isinstance(t, torch.Tensor)))
            res = tuple(jax_to_tensor(o, device) for o in outs)
            return res[0] if len(res) == 1 else res

        @staticmethod
        def backward(ctx, *grads):
            st = ctx.state
            if not st.float_pos:
                return (None,) * len(st.float_in)
            cts = [jax_to_tensor(jnp.zeros(s, d), st.device) if g is None else g
                   for g, (s, d) in zip(grads, st.out_shapes)]
            # Jᵀ·ct as an autograd.Function of (inputs, cotangents): under create_graph=True
            # torch records it, and its backward gives the second derivatives
            gs = _Pullback.apply(st, *st.inputs(ctx.saved_tensors), *cts)
            gs = iter(gs if isinstance(gs, tuple) else (gs,))
            return tuple(next(gs) if keep else None for keep in st.float_in)

    class _Pullback(torch.autograd.Function):
        """(inputs, cotangents) ↦ Jᵀ·ct for the floating-point tensor inputs."""

        @staticmethod
        def forward(ctx, st, *xs_cts):
            ctx.state = st
            ctx.save_for_backward(*(t for t in xs_cts if isinstance(t, torch.Tensor)))
            cts = xs_cts[len(st.float_in):]
            gs = st.pullback(*(tensor_to_jax(g) for g in cts))
            res = tuple(jax_to_tensor(gs[i], st.device) for i in st.float_pos)
            return res[0] if len(res) == 1 else res

        @staticmethod
        def backward(ctx, *vs):
            # vs: a cotangent for each Jᵀ·ct. Wanted: v·∂(Jᵀct)/∂ct = J·v (lagrad's jvp) and
            # v·∂(Jᵀct)/∂x = ct·H·v for one scalar output (lagrad's hvp; H is symmetric).
            st, n_in = ctx.state, len(ctx.state.float_in)
            saved = ctx.saved_tensors
            xs = st.inputs(saved[:sum(st.is_tensor)])
            cts = saved[sum(st.is_tensor):]
            need = ctx.needs_input_grad[1:]
            need_x = any(need[i] and _wanted(torch, xs[i]) for i in st.float_pos)
            need_ct = any(need[n_in:])
            if not (need_x or need_ct):
                return (None,) * len(ctx.needs_input_grad)
            if need_x and not st.scalar:
                raise RuleError(
                    f"`{f.name}.to_torch()` is differentiable once with respect to its inputs: "
                    f"lagrad's torch bridge gives a second derivative only for a model that returns "
                    f"one scalar (by `f.hvp`, which gives such a model's Hessian-vector products), "
                    f"and `{f.name}` returns {_outputs_text(st.out_shapes)}")
            vs = [torch.zeros_like(xs[i]) if v is None else v for i, v in zip(st.float_pos, vs)]
            res = _SecondOrder.apply(st, need_x, need_ct, *xs, *cts, *vs)
            res = iter(res if isinstance(res, tuple) else (res,))
            x_bar = {i: next(res) for i in st.float_pos} if need_x else {}
            ct_bar = [next(res) if need_ct else None for _ in st.out_shapes]
            return (None,) + tuple(x_bar.get(i) for i in range(n_in)) + tuple(ct_bar)

    class _SecondOrder(torch.autograd.Function):
        """(inputs, cotangents, v) ↦ (ct·H·v for one scalar output, J·v); not differentiable:
        its backward (a third derivative) raises."""

        @staticmethod
        def forward(ctx, st, need_x, need_ct, *args):
            n_in, n_out = len(st.float_in), len(st.out_shapes)
            xs = tuple(tensor_to_jax(x) for x in args[:n_in])
            cts, vs = args[n_in:n_in + n_out], args[n_in + n_out:]
            v = {i: tensor_to_jax(t) for i, t in zip(st.float_pos, vs)}
            res = []
            if need_x:
                hv = f.hvp([names[i] for i in st.float_pos])(xs, tuple(v[i] for i in st.float_pos))
                ct = tensor_to_jax(cts[0])
                res += [jax_to_tensor(ct * h, st.device) for h in hv]
            if need_ct:
                tangents = [v.get(i, 0.0) for i in range(n_in)]
                _, touts = f.jvp(xs, tuple(tangents))
                touts = touts if n_out > 1 else (touts,)
                res += [jax_to_tensor(t, st.device) for t in touts]
            return res[0] if len(res) == 1 else tuple(res)

        @staticmethod
        def backward(ctx, *grads):
            raise RuleError(_THIRD.format(name=f.name))

    def run(*args, **kwargs):
        if len(args) != len(names) and not kwargs:
            raise InputError(f"`{f.name}` takes {len(names)} argument(s) ({', '.join(names)}), got {len(args)}")
        return LagradFunction.apply(*collect(f.name, f.params, args, kwargs))

    run.__name__ = f"{f.name}_torch"
    run.__doc__ = f"lagrad model `{f.name}` for PyTorch autograd (backward: lagrad's derived adjoint)."
    return run
