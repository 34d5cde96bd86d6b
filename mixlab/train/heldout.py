"""Held-out loss per source (used by the trainer after each phase, and by anyone scoring a model on sequences).

Contract:
- ``heldout_loss(model, sequences, batch_size)``: ``sequences`` maps a source name to an int64 tensor [n, L+1]
  (inputs ``s[:, :-1]``, targets ``s[:, 1:]``); returns the mean per-token cross-entropy (nats) per source,
  every token weighted equally. Runs under ``torch.no_grad`` in eval mode and restores the model's mode.
- The model must provide ``token_losses(idx, targets) -> [B, T]`` (see :class:`mixlab.train.model.GPT`);
  DDP / ``torch.compile`` wrappers are unwrapped.
- Data parallel: with ``world_size > 1`` each rank scores rows ``rank::world_size`` and the (sum, count) pairs
  are all-reduced, so every rank returns the same numbers as a single process would (up to summation order).
- A source with no sequences is reported as ``nan``.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn as nn

from mixlab.train.checkpoint import unwrap


def heldout_sums(
    model: nn.Module, sequences: torch.Tensor, batch_size: int, device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[float, int]:
    """(sum of per-token CE, token count) over ``sequences`` [n, L+1]."""
    model = unwrap(model)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for lo in range(0, sequences.shape[0], batch_size):
        batch = sequences[lo : lo + batch_size].to(device, dtype=torch.long, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            losses = model.token_losses(batch[:, :-1], batch[:, 1:])  # [b, L] fp32
        total += losses.double().sum()
        count += losses.numel()
    return float(total), count


@torch.no_grad()
def heldout_loss(
    model: nn.Module,
    sequences: dict[str, torch.Tensor],
    batch_size: int = 8,
    rank: int = 0,
    world_size: int = 1,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Mean per-token cross-entropy per source (see module contract)."""
    base = unwrap(model)
    was_training = base.training
    base.eval()
    device = next(base.parameters()).device
    try:
        out: dict[str, float] = {}
        for name in sorted(sequences):
            seqs = sequences[name]
            if seqs.ndim != 2 or seqs.shape[1] < 2:
                raise ValueError(f"held-out sequences of {name!r} must be [n, L+1] with L >= 1, got {tuple(seqs.shape)}")
            s, n = heldout_sums(base, seqs[rank::world_size], batch_size, device, autocast_dtype)
            if world_size > 1 and dist.is_initialized():
                buf = torch.tensor([s, float(n)], dtype=torch.float64, device=device)
                dist.all_reduce(buf)
                s, n = float(buf[0]), int(buf[1])
            out[name] = s / n if n else math.nan
        return out
    finally:
        base.train(was_training)


def perplexity(loss: float) -> float:
    """exp(mean CE in nats); inf on overflow."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf
