"""Fused RMSNorm in Triton: forward and backward kernels -> launchers -> custom op (:mod:`.ops`) -> module.

Contract (same as :func:`mixlab.kernels.reference.rms_norm`):
    y = x * rsqrt(mean(x**2, -1) + eps) * weight
computed in fp32 whatever the input dtype and rounded once to ``x.dtype``. ``x`` is ``[..., dim]``,
``weight`` is ``[dim]`` (its dtype may differ from x's, e.g. fp32 weights with bf16 activations).
The backward returns ``dx`` (in x.dtype) and ``dweight`` (in weight.dtype), both from fp32 math:

    xhat = x * rstd,  g = dy * weight
    dx   = rstd * (g - xhat * mean(g * xhat, -1))
    dw   = sum over rows of dy * xhat

Memory: the forward saves x and one fp32 ``rstd`` per row (4 bytes/row) instead of the normalised
activations. The backward writes one fp32 partial ``dw`` row per program and sums those with torch, so
no atomics and a deterministic result.

Importing this module imports Triton. Set ``TRITON_INTERPRET=1`` before that import to run the kernels
on the CPU (tests do this in ``tests/conftest.py``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import nn

from mixlab.kernels import ops


@triton.jit
def _rms_norm_fwd_kernel(
    X, Y, W, RSTD,
    stride_x, stride_y,
    n_cols, eps,
    BLOCK: tl.constexpr,
):
    # One program per row; the whole row lives in registers (BLOCK >= n_cols).
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = tl.rsqrt(tl.sum(x * x, axis=0) / n_cols + eps)
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    y = (x * rstd) * w
    tl.store(Y + row * stride_y + cols, y.to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + row, rstd)


@triton.jit
def _rms_norm_bwd_kernel(
    DY, X, W, RSTD, DX, DW_PARTIAL,
    stride_dy, stride_x, stride_dx,
    n_rows, n_cols, rows_per_program,
    BLOCK: tl.constexpr,
):
    # Each program walks `rows_per_program` consecutive rows, writes dx per row and accumulates its
    # share of dw in fp32 registers; the per-program partials are summed by the launcher.
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    dw_acc = tl.zeros((BLOCK,), dtype=tl.float32)
    row_start = pid * rows_per_program
    n_here = tl.minimum(rows_per_program, n_rows - row_start)
    row_base = row_start.to(tl.int64)
    for i in range(0, n_here):
        row64 = row_base + i
        dy = tl.load(DY + row64 * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
        x = tl.load(X + row64 * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + row64)
        xhat = x * rstd
        g = dy * w
        c = tl.sum(g * xhat, axis=0) / n_cols
        dx = rstd * (g - xhat * c)
        tl.store(DX + row64 * stride_dx + cols, dx.to(DX.dtype.element_ty), mask=mask)
        dw_acc += dy * xhat
    tl.store(DW_PARTIAL + pid * n_cols + cols, dw_acc, mask=mask)


def _launch_config(n_cols: int) -> tuple[int, int]:
    """(BLOCK, num_warps) for a row of ``n_cols`` elements held in one program.

    Rows up to 64k elements fit; wider rows would need a looped kernel, which no Llama-size model needs.
    """
    block = triton.next_power_of_2(n_cols)
    if block > 65536:
        raise ValueError(f"fused rms_norm supports rows of at most 65536 elements, got {n_cols}")
    num_warps = 4 if block < 2048 else 8 if block < 8192 else 16
    return block, num_warps


def _num_programs(device: torch.device, n_rows: int) -> int:
    """Programs for the backward: a few per SM on a GPU (enough to hide latency, few dw partials)."""
    if device.type == "cuda":
        return max(1, min(n_rows, 4 * torch.cuda.get_device_properties(device).multi_processor_count))
    return max(1, min(n_rows, 4))  # the CPU interpreter runs programs one after another


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    t2 = t.reshape(-1, t.shape[-1])
    return t2 if t2.stride(-1) == 1 else t2.contiguous()


def rms_norm_fwd(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward kernel. Returns (y shaped like x, rstd [rows] fp32)."""
    if weight.shape != (x.shape[-1],):
        raise ValueError(f"weight shape {tuple(weight.shape)} does not match x's last dim {x.shape[-1]}")
    x2 = _as_rows(x)
    n_rows, n_cols = x2.shape
    y = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    rstd = torch.empty(n_rows, dtype=torch.float32, device=x.device)
    if n_rows == 0:
        return y.reshape(x.shape), rstd
    block, num_warps = _launch_config(n_cols)
    _rms_norm_fwd_kernel[(n_rows,)](
        x2, y, weight.contiguous(), rstd, x2.stride(0), y.stride(0), n_cols, eps, BLOCK=block, num_warps=num_warps
    )
    return y.reshape(x.shape), rstd


def rms_norm_bwd(
    dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the backward kernel. Returns (dx shaped like x in x.dtype, dweight in weight.dtype)."""
    x2 = _as_rows(x)
    dy2 = _as_rows(dy)
    n_rows, n_cols = x2.shape
    dx = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    if n_rows == 0:
        return dx.reshape(x.shape), weight.new_zeros(weight.shape)
    n_prog = _num_programs(x.device, n_rows)
    rows_per_program = triton.cdiv(n_rows, n_prog)
    n_prog = triton.cdiv(n_rows, rows_per_program)
    dw_partial = torch.empty((n_prog, n_cols), dtype=torch.float32, device=x.device)
    block, num_warps = _launch_config(n_cols)
    _rms_norm_bwd_kernel[(n_prog,)](
        dy2, x2, weight.contiguous(), rstd, dx, dw_partial,
        dy2.stride(0), x2.stride(0), dx.stride(0),
        n_rows, n_cols, rows_per_program,
        BLOCK=block, num_warps=num_warps,
    )
    return dx.reshape(x.shape), dw_partial.sum(0).to(weight.dtype)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Fused RMSNorm (the registered op ``mixlab::rms_norm``); same signature and semantics as the reference."""
    return ops.rms_norm(x, weight, eps)


class FusedRMSNorm(nn.Module):
    """RMSNorm over the last dimension with a learned scale (initialised to ones), using the fused kernels."""

    def __init__(self, dim: int, eps: float = 1e-6, device: torch.device | None = None, dtype=None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
