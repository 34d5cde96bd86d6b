"""Invariants of the Llama-style decoder in mixlab.train.model."""

from __future__ import annotations

import math

import pytest
import torch

from mixlab.recipe import ModelSpec
from mixlab.train.model import GPT, PRESETS, ModelConfig

V, T = 512, 32


def small_cfg(**kw) -> ModelConfig:
    base = {"vocab_size": V, "seq_len": T, "n_layers": 2, "d_model": 64, "n_heads": 4, "n_kv_heads": 2,
            "ffn_hidden": 96}
    return ModelConfig(**{**base, **kw})


def make(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(small_cfg(**kw))


def test_shapes_of_logits_loss_and_token_losses():
    """forward without targets gives logits [B,T,V]; with targets a scalar; token_losses [B,T]."""
    m = make()
    idx = torch.randint(0, V, (3, T))
    assert m(idx).shape == (3, T, V)
    assert m(idx, idx).shape == ()
    assert m.token_losses(idx, idx).shape == (3, T)
    assert m(idx[:, :7]).shape == (3, 7, V)  # shorter than seq_len is fine


def test_longer_than_seq_len_is_refused():
    """A sequence longer than the rotary tables is an error, never silently truncated."""
    with pytest.raises(ValueError, match="seq_len"):
        make()(torch.zeros(1, T + 1, dtype=torch.long))


def test_tied_embedding_is_one_parameter():
    """With tie_embeddings the output projection IS the embedding (shared storage, counted once)."""
    tied, untied = make(tie_embeddings=True), make(tie_embeddings=False)
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert untied.lm_head.weight is not untied.tok_emb.weight
    assert untied.num_params() - tied.num_params() == V * 64
    # the tied model's flops count the shared matrix once, as the output matmul; untied skips the lookup
    assert tied.flops_per_token() == untied.flops_per_token()


def test_causal_future_tokens_never_change_earlier_logits():
    """Changing token t leaves the logits at every position < t bit-for-bit unchanged (causal mask)."""
    m = make().eval()
    idx = torch.randint(0, V, (2, T))
    with torch.no_grad():
        ref = m(idx)
        for t in (1, T // 2, T - 1):
            changed = idx.clone()
            changed[:, t] = (changed[:, t] + 1) % V
            out = m(changed)
            assert torch.equal(out[:, :t], ref[:, :t])
            assert not torch.allclose(out[:, t], ref[:, t])


def test_initial_loss_is_log_vocab():
    """At init the predictions are near uniform: mean CE on random tokens is ln(V) within 0.1."""
    m = make()
    idx = torch.randint(0, V, (8, T + 1))
    with torch.no_grad():
        loss = m(idx[:, :-1], idx[:, 1:]).item()
    assert abs(loss - math.log(V)) < 0.1


def test_token_losses_mean_equals_forward_loss():
    """token_losses (evaluation path, chunked logits) averages to the training loss (fused CE path)."""
    m = make()
    idx = torch.randint(0, V, (4, T + 1))
    with torch.no_grad():
        loss = m(idx[:, :-1], idx[:, 1:])
        per_tok = m.token_losses(idx[:, :-1], idx[:, 1:], chunk=37)  # odd chunk: exercise the tail
    assert per_tok.dtype == torch.float32
    torch.testing.assert_close(per_tok.mean(), loss, rtol=1e-6, atol=1e-6)


def test_init_scales():
    """Matrices start at std 0.02; residual output projections at 0.02/sqrt(2*n_layers); norms at 1."""
    m = make(d_model=128, ffn_hidden=512, n_layers=2)
    assert m.blocks[0].attn.wqkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert m.blocks[0].mlp.down.weight.std().item() == pytest.approx(0.02 / 2, rel=0.05)
    assert m.blocks[1].attn.wo.weight.std().item() == pytest.approx(0.02 / 2, rel=0.05)
    assert torch.equal(m.norm.weight, torch.ones(128))
    assert all(not hasattr(mod, "bias") or mod.bias is None for mod in m.modules() if isinstance(mod, torch.nn.Linear))


def test_gqa_matches_explicitly_repeated_kv_heads():
    """GQA with KV heads equals full MHA whose K/V projections are the KV heads repeated per query group."""
    gqa = make(n_kv_heads=2)
    mha = make(n_kv_heads=4)
    hd, H, KV = 16, 4, 2
    with torch.no_grad():
        mha.load_state_dict({k: v for k, v in gqa.state_dict().items() if "wqkv" not in k}, strict=False)
        for bg, bm in zip(gqa.blocks, mha.blocks, strict=True):
            q, k, v = bg.attn.wqkv.weight.split([H * hd, KV * hd, KV * hd])
            rep = lambda w: w.view(KV, hd, -1).repeat_interleave(H // KV, 0).reshape(H * hd, -1)  # noqa: E731
            bm.attn.wqkv.weight.copy_(torch.cat([q, rep(k), rep(v)]))
    idx = torch.randint(0, V, (2, T))
    with torch.no_grad():
        torch.testing.assert_close(gqa(idx), mha(idx), rtol=1e-5, atol=1e-5)


def test_from_spec_presets_and_overrides():
    """Presets fill the dims, explicit recipe fields override them, custom needs its dims."""
    cfg = ModelConfig.from_spec(ModelSpec(preset="124m"), vocab_size=50304, seq_len=1024)
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads) == (12, 768, 12)
    cfg = ModelConfig.from_spec(ModelSpec(preset="tiny", n_kv_heads=2), vocab_size=4096, seq_len=256)
    assert cfg.n_kv_heads == 2 and cfg.d_model == PRESETS["tiny"][1]
    cfg = ModelConfig.from_spec(ModelSpec(preset="custom", n_layers=2, d_model=96, n_heads=3), 100, 16)
    assert cfg.n_kv_heads == 3 and cfg.ffn_hidden == 256 and cfg.ffn_hidden % 128 == 0
    with pytest.raises(ValueError, match="custom"):
        ModelConfig.from_spec(ModelSpec(preset="custom", d_model=96), 100, 16)
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig.from_spec(ModelSpec(preset="custom", n_layers=1, d_model=96, n_heads=5), 100, 16)


def test_preset_parameter_counts():
    """Preset sizes match their names at vocab 50,304 (the counts quoted in model.py's docstring)."""
    expected = {"tiny": 7_242_880, "small": 29_938_560, "124m": 123_587_328, "470m": 477_291_520,
                "2.8b": 2_792_327_680}
    for name, count in expected.items():
        cfg = ModelConfig.from_spec(ModelSpec(preset=name), vocab_size=50304, seq_len=16)
        with torch.device("meta"):
            m = GPT(cfg)
        assert m.num_params() == count, name
    cfg = ModelConfig.from_spec(ModelSpec(preset="tiny"), vocab_size=4096, seq_len=256)
    with torch.device("meta"):
        assert 1e6 <= GPT(cfg).num_params() <= 3e6


def test_one_step_of_sgd_lowers_the_loss_on_the_batch():
    """Gradients flow through every parameter and point downhill (a basic backward sanity check)."""
    m = make()
    idx = torch.randint(0, V, (4, T + 1))
    loss = m(idx[:, :-1], idx[:, 1:])
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    with torch.no_grad():
        for p in m.parameters():
            p -= 0.5 * p.grad
        assert m(idx[:, :-1], idx[:, 1:]) < loss


def _sharpen(m: GPT) -> GPT:
    """Weights with std 0.5 instead of 0.02: logits spread widely, so greedy picks are far from float ties."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.5 if name == "tok_emb.weight" else 0.15)
    return m.eval()


def test_cached_prefill_and_steps_equal_the_full_forward():
    """Prefilling part of a sequence into a KVCache and feeding the rest in chunks (3 tokens, then 1 at a time)
    gives the full forward's hidden states at every position (one formula: same blocks, same rotary tables)."""
    from mixlab.train.model import KVCache

    m = make(n_kv_heads=2).eval()
    idx = torch.randint(0, V, (2, T))
    with torch.no_grad():
        full = m.hidden(idx)
        cache = KVCache()
        parts = [m.hidden(idx[:, :10], cache=cache), m.hidden(idx[:, 10:13], cache=cache)]
        parts += [m.hidden(idx[:, t : t + 1], cache=cache) for t in range(13, T)]
    assert len(cache) == T and len(cache.keys) == 2 and cache.keys[0].shape == (2, 2, T, 16)
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)


def test_left_padded_cached_greedy_decoding_equals_uncached_token_for_token():
    """Rows of different lengths, left-padded into one batch (padding marked by valid=) and decoded greedily
    with the cache, produce exactly the tokens of decoding each row alone by re-running the full forward pass
    on its whole sequence; rows dropped mid-way (KVCache.select) leave the others unchanged."""
    from mixlab.train.model import KVCache

    m = _sharpen(make(n_kv_heads=2))
    prompts = [torch.randint(0, V, (n,)).tolist() for n in (3, 11, 7)]
    steps = T - 11
    expected = []
    with torch.no_grad():
        for p in prompts:
            seq = list(p)
            for _ in range(steps):
                seq.append(int(m(torch.tensor([seq]))[0, -1].argmax()))
            expected.append(seq[len(p):])
        width = max(map(len, prompts))
        idx = torch.zeros(3, width, dtype=torch.long)
        valid = torch.zeros(3, width, dtype=torch.bool)
        for b, p in enumerate(prompts):
            idx[b, width - len(p):], valid[b, width - len(p):] = torch.tensor(p), True
        cache = KVCache()
        last = m.hidden(idx, cache=cache, valid=valid)[:, -1]
        got: list[list[int]] = [[], [], []]
        rows = [0, 1, 2]
        for step in range(steps):
            tok = m.lm_head(last).argmax(-1)
            for b, r in enumerate(rows):
                got[r].append(int(tok[b]))
            if step == 4:  # row 1 stops early: the batch continues without it
                keep = torch.tensor([0, 2])
                cache.select(keep)
                tok, rows = tok[keep], [0, 2]
            if step < steps - 1:
                last = m.hidden(tok[:, None], cache=cache)[:, -1]
    assert got[0] == expected[0] and got[2] == expected[2]
    assert got[1] == expected[1][:5]


def test_cache_bounds_and_valid_without_cache_are_errors():
    """A cache cannot grow past seq_len (the rotary tables), and valid= without a cache is refused: both name
    what to do instead."""
    from mixlab.train.model import KVCache

    m = make().eval()
    cache = KVCache()
    with torch.no_grad():
        m.hidden(torch.zeros(1, T, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="new cache"):
            m.hidden(torch.zeros(1, 1, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="cache="):
            m.hidden(torch.zeros(1, 4, dtype=torch.long), valid=torch.ones(1, 4, dtype=torch.bool))
