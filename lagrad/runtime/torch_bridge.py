"""The PyTorch bridge: ``f.to_torch()`` is a function of torch tensors for PyTorch autograd whose
backward is lagrad's derived adjoint (the split vjp: the forward saves the residuals the
backward part of the adjoint program needs, the backward runs that part on the incoming
gradients).

Arrays cross by DLPack, so a contiguous tensor becomes a JAX array over the same memory and
a JAX result becomes a tensor over the same memory: no copies on either side where both
libraries can share the buffer (same device; JAX may copy an input whose memory it cannot
alias, e.g. a non-contiguous view, which is made contiguous first). torch is an optional
dependency, imported only here.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..errors import InputError
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
            ctx.pullback, ctx.device, ctx.n_out = pullback, device, len(outs)
            ctx.float_inputs = [isinstance(t, torch.Tensor) and t.dtype.is_floating_point for t in tensors]
            ctx.out_shapes = [(tuple(o.shape), o.dtype) for o in outs]
            res = tuple(jax_to_tensor(o, device) for o in outs)
            return res[0] if len(res) == 1 else res

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, *grads):
            cts = [jnp.zeros(s, d) if g is None else tensor_to_jax(g)
                   for g, (s, d) in zip(grads, ctx.out_shapes)]
            gs = ctx.pullback(*cts)
            return tuple(jax_to_tensor(g, ctx.device) if keep else None
                         for g, keep in zip(gs, ctx.float_inputs))

    def run(*args, **kwargs):
        if len(args) != len(names) and not kwargs:
            raise InputError(f"`{f.name}` takes {len(names)} argument(s) ({', '.join(names)}), got {len(args)}")
        return LagradFunction.apply(*collect(f.name, f.params, args, kwargs))

    run.__name__ = f"{f.name}_torch"
    run.__doc__ = f"lagrad model `{f.name}` for PyTorch autograd (backward: lagrad's derived adjoint)."
    return run
