"""The fused Triton kernels as registered torch custom ops, so ``torch.compile`` keeps each one opaque.

Every fused op is a ``torch.library.custom_op`` in the ``mixlab`` namespace with a fake (meta)
implementation giving its outputs' shapes, dtypes and strides, and (for the forward ops) a
``register_autograd`` formula whose backward is itself one of these ops. ``torch.compile(model,
fullgraph=True)`` therefore puts one node per op in the graph (forward and backward) instead of
tracing into the Python launchers; the real implementations run the launchers of the ``fused_*``
modules, which import Triton on first call (importing this module imports neither Triton nor the
kernel modules).

Ops (``torch.ops.mixlab.<name>``; all tensors in and out are new, none aliases an input):
- ``rms_norm(x, weight, eps) -> (y, rstd)``: y like x, rstd fp32 ``[rows]`` (saved for the backward;
  not differentiable). Backward: ``rms_norm_backward(dy, x, weight, rstd) -> (dx, dweight)``.
- ``swiglu(gate, up) -> out``. Backward: ``swiglu_backward(dout, gate, up) -> (dgate, dup)``.
- ``apply_rotary(x, cos, sin, inverse=False) -> y``: contiguous ``[B, S, H, D]``. The backward is the
  same op with ``inverse`` flipped (a rotation's adjoint is its inverse), so it is twice differentiable;
  no gradient flows to cos/sin.
- ``linear_cross_entropy(hidden, weight, targets, ignore_index, chunk_rows, need_grad_hidden,
  need_grad_weight) -> (loss, grad_hidden, grad_weight)``: the loss (fp32, 0-dim) and both gradients of
  the mean loss, computed in the forward (a gradient not asked for is an empty tensor). The gradients
  are not differentiable outputs; the backward hands them out scaled by the incoming gradient: in eager
  mode IN PLACE, with ``linear_cross_entropy_backward_(grad_loss, grad_hidden!, grad_weight!)``, so no
  second ``[V, H]`` buffer exists at peak memory and a second backward through the same graph is
  refused; when traced (torch.compile) with the functional ``linear_cross_entropy_backward(grad_loss,
  grad_hidden, grad_weight) -> (grad_hidden', grad_weight')`` (AOTAutograd cannot mutate a forward
  output in the backward; the compiler may re-inplace it).

The public functions below (``rms_norm``, ``swiglu``, ``apply_rotary``, ``linear_cross_entropy``) take
the reference's signatures and are what ``mixlab.kernels`` dispatches to on the Triton path.
"""

from __future__ import annotations

import torch
from torch.library import custom_op

# ------------------------------------------------------------------------------------------------ RMSNorm


@custom_op("mixlab::rms_norm", mutates_args=())
def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    from mixlab.kernels import fused_rmsnorm

    return fused_rmsnorm.rms_norm_fwd(x, weight, eps)


@_rms_norm.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    torch._check(
        weight.dim() == 1 and weight.shape[0] == x.shape[-1],
        lambda: f"weight shape {tuple(weight.shape)} does not match x's last dim {x.shape[-1]}",
    )
    return x.new_empty(x.shape), x.new_empty(x.shape[:-1].numel(), dtype=torch.float32)


@custom_op("mixlab::rms_norm_backward", mutates_args=())
def _rms_norm_backward(
    dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    from mixlab.kernels import fused_rmsnorm

    return fused_rmsnorm.rms_norm_bwd(dy, x, weight, rstd)


@_rms_norm_backward.register_fake
def _(
    dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    return x.new_empty(x.shape), weight.new_empty(weight.shape)


def _rms_norm_setup(ctx, inputs: tuple, output: tuple) -> None:
    x, weight, _ = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(x, weight, output[1])


def _rms_norm_bwd_formula(ctx, dy: torch.Tensor | None, _drstd: torch.Tensor | None):
    x, weight, rstd = ctx.saved_tensors
    if dy is None:
        return None, None, None
    dx, dw = torch.ops.mixlab.rms_norm_backward(dy, x, weight, rstd)
    return (dx if ctx.needs_input_grad[0] else None), (dw if ctx.needs_input_grad[1] else None), None


_rms_norm.register_autograd(_rms_norm_bwd_formula, setup_context=_rms_norm_setup)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Fused RMSNorm (one opaque op); same signature and semantics as the reference."""
    return torch.ops.mixlab.rms_norm(x, weight, eps)[0]


# ------------------------------------------------------------------------------------------------ SwiGLU


def _check_swiglu(gate: torch.Tensor, up: torch.Tensor) -> None:
    torch._check(
        gate.shape == up.shape,
        lambda: f"swiglu needs gate and up of the same shape, got {tuple(gate.shape)} and {tuple(up.shape)}",
    )


@custom_op("mixlab::swiglu", mutates_args=())
def _swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    from mixlab.kernels import fused_swiglu

    return fused_swiglu.swiglu_fwd(gate, up)


@_swiglu.register_fake
def _(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    _check_swiglu(gate, up)
    return gate.new_empty(gate.shape)


@custom_op("mixlab::swiglu_backward", mutates_args=())
def _swiglu_backward(
    dout: torch.Tensor, gate: torch.Tensor, up: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    from mixlab.kernels import fused_swiglu

    return fused_swiglu.swiglu_bwd(dout, gate, up)


@_swiglu_backward.register_fake
def _(dout: torch.Tensor, gate: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return gate.new_empty(gate.shape), up.new_empty(up.shape)


def _swiglu_setup(ctx, inputs: tuple, output: torch.Tensor) -> None:
    ctx.save_for_backward(*inputs)


def _swiglu_bwd_formula(ctx, dout: torch.Tensor):
    gate, up = ctx.saved_tensors
    dgate, dup = torch.ops.mixlab.swiglu_backward(dout, gate, up)
    return (dgate if ctx.needs_input_grad[0] else None), (dup if ctx.needs_input_grad[1] else None)


_swiglu.register_autograd(_swiglu_bwd_formula, setup_context=_swiglu_setup)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Fused ``silu(gate) * up`` (one opaque op); same signature and semantics as the reference."""
    return torch.ops.mixlab.swiglu(gate, up)


# ------------------------------------------------------------------------------------------------ Rotary


def _check_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    torch._check(
        x.dim() == 4, lambda: f"apply_rotary expects x of shape [batch, seq, heads, head_dim], got {tuple(x.shape)}"
    )
    seq, head_dim = x.shape[1], x.shape[3]
    torch._check(head_dim % 2 == 0, lambda: f"head_dim must be even, got {head_dim}")
    torch._check(
        cos.shape == sin.shape and cos.dim() == 2 and cos.shape[1] == head_dim // 2 and cos.shape[0] >= seq,
        lambda: f"cos/sin must be [>= {seq}, {head_dim // 2}], got {tuple(cos.shape)} and {tuple(sin.shape)}",
    )


@custom_op("mixlab::apply_rotary", mutates_args=())
def _apply_rotary(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, inverse: bool = False
) -> torch.Tensor:
    from mixlab.kernels import fused_rotary

    return fused_rotary.rotary_launch(x, cos, sin, backward=inverse)


@_apply_rotary.register_fake
def _(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    _check_rotary(x, cos, sin)
    return x.new_empty(x.shape)


def _rotary_setup(ctx, inputs: tuple, output: torch.Tensor) -> None:
    _, cos, sin, inverse = inputs
    ctx.save_for_backward(cos, sin)
    ctx.inverse = inverse


def _rotary_bwd_formula(ctx, dy: torch.Tensor):
    cos, sin = ctx.saved_tensors
    return torch.ops.mixlab.apply_rotary(dy, cos, sin, not ctx.inverse), None, None, None


_apply_rotary.register_autograd(_rotary_bwd_formula, setup_context=_rotary_setup)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Fused rotary embedding (one opaque op); same semantics as the reference, no gradient to cos/sin."""
    return torch.ops.mixlab.apply_rotary(x, cos, sin)


# ------------------------------------------------------------------------------- linear + cross-entropy


@custom_op("mixlab::linear_cross_entropy", mutates_args=())
def _linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int,
    chunk_rows: int | None,
    need_grad_hidden: bool,
    need_grad_weight: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from mixlab.kernels import fused_linear_ce

    loss, grad_h, grad_w = fused_linear_ce.linear_cross_entropy_fwd(
        hidden, weight, targets, ignore_index, chunk_rows, need_grad_hidden, need_grad_weight
    )
    grad_h = hidden.new_empty(0) if grad_h is None else grad_h  # an op returns tensors, never None
    grad_w = weight.new_empty(0) if grad_w is None else grad_w
    return loss, grad_h, grad_w


@_linear_cross_entropy.register_fake
def _(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int,
    chunk_rows: int | None,
    need_grad_hidden: bool,
    need_grad_weight: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch._check(
        weight.dim() == 2 and hidden.shape[-1] == weight.shape[1],
        lambda: f"hidden [..., {hidden.shape[-1]}] does not match weight {tuple(weight.shape)}",
    )
    torch._check(
        hidden.dtype == weight.dtype,
        lambda: f"hidden ({hidden.dtype}) and weight ({weight.dtype}) must share a dtype",
    )
    torch._check(
        targets.numel() == hidden.shape[:-1].numel(),
        lambda: f"{hidden.shape[:-1].numel()} hidden rows but {targets.numel()} targets",
    )
    loss = hidden.new_empty((), dtype=torch.float32)
    grad_h = hidden.new_empty(hidden.shape if need_grad_hidden else (0,))
    grad_w = weight.new_empty(weight.shape if need_grad_weight else (0,))
    return loss, grad_h, grad_w


@custom_op("mixlab::linear_cross_entropy_backward", mutates_args=())
def _linear_cross_entropy_backward(
    grad_loss: torch.Tensor, grad_hidden: torch.Tensor, grad_weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both gradients times the incoming 0-dim gradient of the loss (new tensors)."""
    return grad_hidden * grad_loss.to(grad_hidden.dtype), grad_weight * grad_loss.to(grad_weight.dtype)


@_linear_cross_entropy_backward.register_fake
def _(
    grad_loss: torch.Tensor, grad_hidden: torch.Tensor, grad_weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    return grad_hidden.new_empty(grad_hidden.shape), grad_weight.new_empty(grad_weight.shape)


@custom_op("mixlab::linear_cross_entropy_backward_", mutates_args=("grad_hidden", "grad_weight"))
def _linear_cross_entropy_backward_(
    grad_loss: torch.Tensor, grad_hidden: torch.Tensor, grad_weight: torch.Tensor
) -> None:
    """In place: both gradients times the incoming 0-dim gradient of the loss."""
    grad_hidden.mul_(grad_loss.to(grad_hidden.dtype))
    grad_weight.mul_(grad_loss.to(grad_weight.dtype))


@_linear_cross_entropy_backward_.register_fake
def _(grad_loss: torch.Tensor, grad_hidden: torch.Tensor, grad_weight: torch.Tensor) -> None:
    return None


def _lce_setup(ctx, inputs: tuple, output: tuple) -> None:
    _, grad_h, grad_w = output
    ctx.mark_non_differentiable(grad_h, grad_w)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(grad_h, grad_w)
    ctx.need = (inputs[5], inputs[6])
    ctx.consumed = False


def _lce_bwd_formula(
    ctx, grad_loss: torch.Tensor | None, _dgh: torch.Tensor | None, _dgw: torch.Tensor | None
):
    if ctx.consumed:
        raise RuntimeError(
            "fused linear_cross_entropy: backward ran twice; its gradients are computed in the forward "
            "and consumed (scaled in place) by the first backward, so retain_graph is not supported"
        )
    ctx.consumed = True
    if grad_loss is None:
        return (None,) * 7
    grad_h, grad_w = ctx.saved_tensors
    if all(type(t) is torch.Tensor for t in (grad_loss, grad_h, grad_w)):
        # Eager: scale in place (no second [V, H] buffer at peak memory).
        torch.ops.mixlab.linear_cross_entropy_backward_(grad_loss, grad_h, grad_w)
    else:
        # Traced (torch.compile: functional/fake tensor subclasses) or other subclasses: the functional op,
        # which AOTAutograd needs since the scaled tensors are outputs of the forward; the compiler may
        # re-inplace it.
        grad_h, grad_w = torch.ops.mixlab.linear_cross_entropy_backward(grad_loss, grad_h, grad_w)
    need_h, need_w = ctx.need
    return (grad_h if need_h else None), (grad_w if need_w else None), None, None, None, None, None


_linear_cross_entropy.register_autograd(_lce_bwd_formula, setup_context=_lce_setup)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -100,
    *,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """Fused ``F.cross_entropy(hidden @ weight.T, targets, ignore_index)`` (mean), chunked over rows.

    Under autocast both operands are cast to the autocast dtype first (as autocast would run the
    reference's matmul); the casts sit outside the op, so gradients flow back to fp32 master weights.
    """
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
    grad_on = torch.is_grad_enabled()
    loss, _, _ = torch.ops.mixlab.linear_cross_entropy(
        hidden, weight, targets, ignore_index, chunk_rows,
        grad_on and hidden.requires_grad, grad_on and weight.requires_grad,
    )
    return loss
