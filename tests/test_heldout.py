"""Tests of the held-out loss the trainer reports (mixlab.train.heldout)."""

from __future__ import annotations

import math

import pytest
import torch

from mixlab.train.heldout import heldout_loss, perplexity
from mixlab.train.model import GPT, ModelConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(vocab_size=64, seq_len=16, n_layers=1, d_model=32, n_heads=2, n_kv_heads=1, ffn_hidden=64))


def test_heldout_loss_is_the_token_weighted_mean_per_source_and_restores_the_mode():
    """Per source, heldout_loss equals the mean of the model's own per-token losses over every row (any
    batch size: batching never changes which tokens count); an empty source is nan; the model's training mode
    is restored."""
    m = _model().train()
    seqs = {"code": torch.randint(0, 64, (5, 17)), "text": torch.randint(0, 64, (3, 17)),
            "empty": torch.zeros(0, 17, dtype=torch.long)}
    with torch.no_grad():
        expected = {k: float(m.token_losses(v[:, :-1], v[:, 1:]).double().mean()) for k, v in seqs.items() if len(v)}
    for batch_size in (1, 2, 8):
        got = heldout_loss(m, seqs, batch_size=batch_size)
        assert set(got) == {"code", "text", "empty"} and math.isnan(got["empty"])
        for k, v in expected.items():
            assert got[k] == pytest.approx(v, rel=1e-6)
    assert m.training
    assert perplexity(got["code"]) == pytest.approx(math.exp(got["code"]))


def test_heldout_rejects_sequences_without_targets():
    """Sequences must be [n, L+1] with L >= 1; anything else is an error naming the source."""
    with pytest.raises(ValueError, match="'text'"):
        heldout_loss(_model(), {"text": torch.zeros(4, 1, dtype=torch.long)})
