"""Fused SwiGLU activation in Triton: kernels -> launchers -> custom op (:mod:`.ops`) -> module.

Contract (same as :func:`mixlab.kernels.reference.swiglu`):
    out = silu(gate) * up,  silu(g) = g * sigmoid(g)
elementwise over tensors of the same shape, computed in fp32 and returned in ``gate.dtype``.
Backward, with s = sigmoid(g), also in fp32:
    dup   = dout * silu(g)                       (returned in up.dtype)
    dgate = dout * up * s * (1 + g * (1 - s))    (returned in gate.dtype)

Memory: the forward saves only gate and up (which the MLP holds anyway); the backward recomputes the
sigmoid instead of keeping silu(gate) around, so the op adds no activation memory beyond its output.
Traffic: forward reads 2 and writes 1 tensor, backward reads 3 and writes 2 (eager torch moves about
twice that through its fp32 temporaries).

Importing this module imports Triton; set ``TRITON_INTERPRET=1`` first to run it on the CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import nn

from mixlab.kernels import ops

BLOCK = 1024


@triton.jit
def _swiglu_fwd_kernel(GATE, UP, OUT, n_elements, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_elements
    g = tl.load(GATE + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(UP + offs, mask=mask, other=0.0).to(tl.float32)
    out = g * tl.sigmoid(g) * u
    tl.store(OUT + offs, out.to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_bwd_kernel(DOUT, GATE, UP, DGATE, DUP, n_elements, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_elements
    dout = tl.load(DOUT + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(GATE + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(UP + offs, mask=mask, other=0.0).to(tl.float32)
    s = tl.sigmoid(g)
    silu = g * s
    dup = dout * silu
    dgate = dout * u * s * (1.0 + g * (1.0 - s))
    tl.store(DUP + offs, dup.to(DUP.dtype.element_ty), mask=mask)
    tl.store(DGATE + offs, dgate.to(DGATE.dtype.element_ty), mask=mask)


def _check(gate: torch.Tensor, up: torch.Tensor) -> None:
    if gate.shape != up.shape:
        raise ValueError(f"swiglu needs gate and up of the same shape, got {tuple(gate.shape)} and {tuple(up.shape)}")


def swiglu_fwd(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Launch the forward kernel; non-contiguous inputs (e.g. halves of a fused projection) are copied."""
    _check(gate, up)
    gate, up = gate.contiguous(), up.contiguous()
    out = torch.empty_like(gate)
    n = gate.numel()
    if n:
        _swiglu_fwd_kernel[(triton.cdiv(n, BLOCK),)](gate, up, out, n, BLOCK=BLOCK, num_warps=4)
    return out


def swiglu_bwd(dout: torch.Tensor, gate: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the backward kernel. Returns (dgate, dup)."""
    dout, gate, up = dout.contiguous(), gate.contiguous(), up.contiguous()
    dgate = torch.empty_like(gate)
    dup = torch.empty_like(up)
    n = gate.numel()
    if n:
        _swiglu_bwd_kernel[(triton.cdiv(n, BLOCK),)](dout, gate, up, dgate, dup, n, BLOCK=BLOCK, num_warps=4)
    return dgate, dup


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Fused ``silu(gate) * up`` (the registered op ``mixlab::swiglu``); same signature and semantics as the reference."""
    return ops.swiglu(gate, up)


class FusedSwiGLUMLP(nn.Module):
    """Llama MLP ``down(silu(gate(x)) * up(x))`` with the activation fused; projections have no bias."""

    def __init__(self, dim: int, hidden_dim: int, device: torch.device | None = None, dtype=None) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False, device=device, dtype=dtype)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False, device=device, dtype=dtype)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [..., dim] -> [..., dim]
        return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x)))
