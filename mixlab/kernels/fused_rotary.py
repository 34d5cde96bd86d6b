"""Fused rotary position embedding in Triton: kernel -> launcher -> custom op (:mod:`.ops`) -> module.

Contract (same as :func:`mixlab.kernels.reference.apply_rotary`): ``x`` is ``[batch, seq, heads, head_dim]``
(head_dim even), ``cos``/``sin`` are ``[seq_total, head_dim // 2]`` with ``seq_total >= seq`` (rows
``0..seq-1`` are used). With the "rotate half" (Llama / HF) layout, x1 = x[..., :d/2], x2 = x[..., d/2:]:
    out = cat(x1 * cos - x2 * sin, x2 * cos + x1 * sin)
computed in fp32 and returned in ``x.dtype``.

The rotation is orthogonal, so the backward is the same kernel rotating by the opposite angle:
    dx1 = dy1 * cos + dy2 * sin,  dx2 = dy2 * cos - dy1 * sin.
cos/sin are treated as constant tables: no gradient flows to them (the dispatcher in
``mixlab.kernels`` uses the reference when a table requires grad).

One program handles one (batch, position) row, all heads at once, so each cos/sin row is loaded once
and reused across heads. Any strides of x on batch/seq/heads are accepted (e.g. q/k views of a fused
qkv projection); the last dimension must be contiguous (it is copied otherwise).

Importing this module imports Triton; set ``TRITON_INTERPRET=1`` first to run it on the CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import nn

from mixlab.kernels import ops
from mixlab.kernels.reference import rotary_tables


@triton.jit
def _rotary_kernel(
    X, Y, COS, SIN,
    seq_len, n_heads, half,
    sx_b, sx_s, sx_h,
    sy_b, sy_s, sy_h,
    sc_s, ss_s,
    BACKWARD: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    b = (pid // seq_len).to(tl.int64)
    s = (pid % seq_len).to(tl.int64)
    h = tl.arange(0, BLOCK_H)[:, None]
    d = tl.arange(0, BLOCK_D)[None, :]
    dmask = d < half
    mask = (h < n_heads) & dmask
    c = tl.load(COS + s * sc_s + d, mask=dmask, other=0.0).to(tl.float32)
    sn = tl.load(SIN + s * ss_s + d, mask=dmask, other=0.0).to(tl.float32)
    if BACKWARD:
        sn = -sn
    x_row = X + b * sx_b + s * sx_s + h * sx_h + d
    x1 = tl.load(x_row, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_row + half, mask=mask, other=0.0).to(tl.float32)
    y1 = x1 * c - x2 * sn
    y2 = x2 * c + x1 * sn
    y_row = Y + b * sy_b + s * sy_s + h * sy_h + d
    tl.store(y_row, y1.to(Y.dtype.element_ty), mask=mask)
    tl.store(y_row + half, y2.to(Y.dtype.element_ty), mask=mask)


def rotary_launch(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, backward: bool = False) -> torch.Tensor:
    """Rotate ``x`` [B, S, H, D] by the tables (by minus the angle when ``backward``); new contiguous output."""
    if x.dim() != 4:
        raise ValueError(f"apply_rotary expects x of shape [batch, seq, heads, head_dim], got {tuple(x.shape)}")
    bsz, seq, n_heads, head_dim = x.shape
    if head_dim % 2:
        raise ValueError(f"head_dim must be even, got {head_dim}")
    half = head_dim // 2
    if cos.shape != sin.shape or cos.dim() != 2 or cos.shape[1] != half or cos.shape[0] < seq:
        raise ValueError(
            f"cos/sin must be [>= {seq}, {half}], got {tuple(cos.shape)} and {tuple(sin.shape)}"
        )
    if x.stride(-1) != 1:
        x = x.contiguous()
    if cos.stride(-1) != 1:
        cos = cos.contiguous()
    if sin.stride(-1) != 1:
        sin = sin.contiguous()
    y = torch.empty((bsz, seq, n_heads, head_dim), dtype=x.dtype, device=x.device)
    if y.numel() == 0:
        return y
    block_h = triton.next_power_of_2(n_heads)
    block_d = triton.next_power_of_2(half)
    num_warps = 4 if block_h * block_d <= 2048 else 8
    _rotary_kernel[(bsz * seq,)](
        x, y, cos, sin,
        seq, n_heads, half,
        x.stride(0), x.stride(1), x.stride(2),
        y.stride(0), y.stride(1), y.stride(2),
        cos.stride(0), sin.stride(0),
        BACKWARD=backward, BLOCK_H=block_h, BLOCK_D=block_d, num_warps=num_warps,
    )
    return y


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Fused rotary embedding (the registered op ``mixlab::apply_rotary``); same semantics as the reference
    (no grad to cos/sin)."""
    return ops.apply_rotary(x, cos, sin)


class FusedRotary(nn.Module):
    """Holds fp32 cos/sin tables for ``max_seq_len`` positions and rotates [B, S, H, head_dim] inputs."""

    def __init__(self, head_dim: int, max_seq_len: int, theta: float = 10000.0, device=None) -> None:
        super().__init__()
        cos, sin = rotary_tables(max_seq_len, head_dim, theta, device=device)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_rotary(x, self.cos, self.sin)
