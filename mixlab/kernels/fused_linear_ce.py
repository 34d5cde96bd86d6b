"""Fused, chunked linear + cross-entropy: the LM head and its loss without the [tokens, vocab] logits.

Contract (same as :func:`mixlab.kernels.reference.linear_cross_entropy`):
    loss = mean over rows with targets != ignore_index of  logsumexp(z) - z[target],  z = hidden @ weight.T
``hidden`` is ``[..., H]``, ``weight`` ``[V, H]`` (same dtype as hidden, or both are cast to the autocast
dtype when autocast is on, as the reference's matmul would be), ``targets`` ``[...]`` integer.
The loss is a 0-dim fp32 tensor; like ``F.cross_entropy`` it is NaN when every target is ignored (the
gradients are then zero). Targets outside ``[0, V)`` other than ``ignore_index`` are undefined behaviour
(the reference raises); a debug build of the kernel asserts on them.

How (Liger-style): rows (tokens) are processed in chunks of ``chunk_rows``. For each chunk
    z = h_c @ weight.T                    [c, V], torch matmul, in the input dtype (as the reference)
    Triton kernel, one program per row:   loss_r = lse(z_r) - z_r[t_r] in fp32, and z_r is overwritten
                                          IN PLACE by dL/dz_r = (softmax(z_r) - onehot(t_r)) / n_valid
    grad_hidden[c] = dz @ weight          [c, H]
    grad_weight   += dz.T @ h_c           [V, H], accumulated in fp32 across chunks (bf16 inputs)
so the loss and both gradients are ready at the end of the forward pass; the backward only scales them
(in place) by the incoming scalar gradient, so a second backward through the same graph
(``retain_graph=True``) is refused. The op, its fake implementation and its backward are registered in
:mod:`mixlab.kernels.ops` (``torch.ops.mixlab.linear_cross_entropy``), so torch.compile keeps it opaque.
At most ``chunk_rows x V`` logits exist at any time (one chunk), and they never exist in fp32. When no
gradient is needed (evaluation) the kernel only computes the loss.

Memory, bf16, N tokens, hidden H, vocab V, chunk c (bytes, beyond the inputs): unfused holds
~N*V*(2 + 4 + 4) in the forward (bf16 logits, their fp32 copy, the fp32 log-softmax kept for backward)
and about as much again in the backward. Fused holds c*V*2 (one chunk) + N*H*2 (d hidden) + V*H*4 (fp32
d weight accumulator; with a single chunk, or fp32 inputs, the accumulator is the output itself) and
briefly V*H*2 for the final cast. Estimate at N=16384, H=2048, V=100k: ~16-20 GB unfused vs ~1.4 GB fused.
The fused/unfused ratio grows as N/H shrinks: at N=4096, H=4096 the fp32 accumulator alone is ~40% of
the unfused peak. ``benchmarks/bench_kernels.py`` measures both on a GPU.

Importing this module imports Triton; set ``TRITON_INTERPRET=1`` first to run it on the CPU.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from torch import nn

from mixlab.kernels import ops


@triton.jit
def _ce_loss_grad_kernel(
    LOGITS, stride_row,
    TARGETS, LOSS, INV_N,
    n_cols, ignore_index,
    COMPUTE_GRAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # One program per row of the chunk's logits; two passes over the row in BLOCK-wide tiles.
    row = tl.program_id(0).to(tl.int64)
    row_ptr = LOGITS + row * stride_row
    target = tl.load(TARGETS + row).to(tl.int64)
    if target == ignore_index:
        tl.store(LOSS + row, 0.0)
        if COMPUTE_GRAD:
            for start in range(0, n_cols, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                tl.store(row_ptr + cols, tl.zeros((BLOCK,), dtype=LOGITS.dtype.element_ty), mask=cols < n_cols)
    else:
        tl.device_assert((target >= 0) & (target < n_cols), "linear_cross_entropy: target out of range")
        # Pass 1: online logsumexp in fp32 (running max m, running sum of exp(z - m)).
        m = float("-inf")
        acc = 0.0
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            z = tl.load(row_ptr + cols, mask=cols < n_cols, other=float("-inf")).to(tl.float32)
            m_new = tl.maximum(m, tl.max(z, axis=0))  # finite: every tile holds >= 1 real column
            acc = acc * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new), axis=0)
            m = m_new
        lse = m + tl.log(acc)
        z_target = tl.load(row_ptr + target).to(tl.float32)
        tl.store(LOSS + row, lse - z_target)
        if COMPUTE_GRAD:
            # Pass 2: overwrite the logits with d(mean loss)/dz = (softmax - onehot) / n_valid.
            inv_n = tl.load(INV_N)
            for start in range(0, n_cols, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                mask = cols < n_cols
                z = tl.load(row_ptr + cols, mask=mask, other=0.0).to(tl.float32)
                p = tl.exp(z - lse)
                g = tl.where(cols == target, p - 1.0, p) * inv_n
                tl.store(row_ptr + cols, g.to(LOGITS.dtype.element_ty), mask=mask)


def default_chunk_rows(n_rows: int, hidden: int, vocab: int) -> int:
    """Rows per chunk: the chunk's logits are 1-2x the size of the hidden input, 128..4096 rows.

    At N=16384, H=2048, V=100k this gives 512 rows (102 MB of bf16 logits per chunk, vs 3.3 GB whole).
    The 128-row floor keeps the matmuls big enough to run near peak; small inputs become one chunk.
    """
    rows = triton.next_power_of_2(max(1, triton.cdiv(n_rows * hidden, vocab)))
    return max(1, min(n_rows, max(128, min(4096, rows))))


def _ce_launch_config(vocab: int) -> tuple[int, int]:
    block = min(16384, triton.next_power_of_2(vocab))
    return block, 16 if block >= 8192 else 8 if block >= 2048 else 4


def linear_cross_entropy_fwd(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -100,
    chunk_rows: int | None = None,
    need_grad_hidden: bool = True,
    need_grad_weight: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Chunked loss and gradients. Returns (loss fp32 0-dim, d loss/d hidden or None, d loss/d weight or None)."""
    if weight.dim() != 2 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(f"hidden [..., {hidden.shape[-1]}] does not match weight {tuple(weight.shape)}")
    if hidden.dtype != weight.dtype:
        raise ValueError(f"hidden ({hidden.dtype}) and weight ({weight.dtype}) must share a dtype")
    h2 = hidden.reshape(-1, hidden.shape[-1])
    t = targets.reshape(-1).contiguous()
    if t.shape[0] != h2.shape[0]:
        raise ValueError(f"{h2.shape[0]} hidden rows but {t.shape[0]} targets")
    n_rows, n_hidden = h2.shape
    vocab = weight.shape[0]
    chunk = chunk_rows if chunk_rows is not None else default_chunk_rows(n_rows, n_hidden, vocab)
    if chunk < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk}")

    # n_valid stays on the device: no host sync anywhere in the forward.
    n_valid = (t != ignore_index).sum().to(torch.float32)
    inv_n = 1.0 / n_valid.clamp(min=1.0)
    loss_rows = torch.empty(n_rows, dtype=torch.float32, device=h2.device)
    grad_h = torch.empty((n_rows, n_hidden), dtype=h2.dtype, device=h2.device) if need_grad_hidden else None
    single_chunk = chunk >= n_rows
    grad_w = grad_w32 = None
    if need_grad_weight:
        if single_chunk or weight.dtype == torch.float32:
            grad_w = torch.zeros_like(weight, memory_format=torch.contiguous_format)
        else:  # fp32 accumulator: a bf16 one would round at every chunk
            grad_w32 = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
    compute_grad = need_grad_hidden or need_grad_weight
    block, num_warps = _ce_launch_config(vocab)

    with torch.autocast(h2.device.type, enabled=False):  # dtypes are settled by the caller
        for start in range(0, n_rows, chunk):
            end = min(start + chunk, n_rows)
            h_c = h2[start:end]
            logits = torch.mm(h_c, weight.t())  # [c, V], the only vocab-sized activation
            _ce_loss_grad_kernel[(end - start,)](
                logits, logits.stride(0), t[start:end], loss_rows[start:end], inv_n,
                vocab, ignore_index, COMPUTE_GRAD=compute_grad, BLOCK=block, num_warps=num_warps,
            )
            if grad_h is not None:
                torch.mm(logits, weight, out=grad_h[start:end])
            if grad_w is not None:
                grad_w.addmm_(logits.t(), h_c)
            elif grad_w32 is not None:
                _accumulate_fp32(grad_w32, logits.t(), h_c)
            del logits

    loss = loss_rows.sum() / n_valid  # 0/0 = NaN when all targets are ignored, as F.cross_entropy
    if grad_w32 is not None:
        grad_w = grad_w32.to(weight.dtype)
        del grad_w32
    return loss, (grad_h.reshape(hidden.shape) if grad_h is not None else None), grad_w


_SLAB_ROWS = 8192


@functools.cache
def _addmm_out_dtype_works(device: torch.device) -> bool:
    """Whether ``torch.addmm(..., out_dtype=torch.float32)`` (bf16/fp16 GEMM accumulating into an fp32
    output; CUDA only, recent torch) runs and is right on this device. Probed once per device."""
    if device.type != "cuda":
        return False
    try:
        a = torch.ones(4, 8, dtype=torch.bfloat16, device=device)
        acc = torch.ones(4, 4, dtype=torch.float32, device=device)
        torch.addmm(acc, a, a.t(), out_dtype=torch.float32, out=acc)
        return bool((acc == 9).all())
    except (TypeError, RuntimeError, NotImplementedError):
        return False


def _accumulate_fp32(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """``acc += a @ b`` with acc fp32 and a, b low precision, without an [V, H] low-precision temporary.

    Where torch can, the GEMM writes fp32 straight into acc; otherwise the product is formed in slabs of
    ``_SLAB_ROWS`` rows (bf16, then added in fp32), so the temporary stays at _SLAB_ROWS x H.
    """
    if _addmm_out_dtype_works(acc.device):
        torch.addmm(acc, a, b, out_dtype=torch.float32, out=acc)
        return
    for r0 in range(0, a.shape[0], _SLAB_ROWS):
        acc[r0 : r0 + _SLAB_ROWS] += torch.mm(a[r0 : r0 + _SLAB_ROWS], b)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -100,
    *,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """Fused ``F.cross_entropy(hidden @ weight.T, targets, ignore_index)`` (mean), chunked over rows (the
    registered op ``mixlab::linear_cross_entropy``; autocast casts both operands to its dtype first)."""
    return ops.linear_cross_entropy(hidden, weight, targets, ignore_index, chunk_rows=chunk_rows)


class FusedLinearCrossEntropy(nn.Module):
    """Loss module: ``forward(hidden, weight, targets)`` -> mean CE, never materialising all logits."""

    def __init__(self, ignore_index: int = -100, chunk_rows: int | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.chunk_rows = chunk_rows

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return linear_cross_entropy(hidden, weight, targets, self.ignore_index, chunk_rows=self.chunk_rows)
