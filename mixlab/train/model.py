"""A Llama-style decoder in one readable file (nanoGPT style).

Contract:
- ``ModelConfig.from_spec(spec, vocab_size, seq_len)`` turns a recipe's :class:`~mixlab.recipe.ModelSpec` into
  dims: a preset fills n_layers/d_model/n_heads/n_kv_heads/ffn_hidden, and any field the recipe sets explicitly
  overrides the preset; ``custom`` requires n_layers, d_model and n_heads (n_kv_heads defaults to n_heads,
  ffn_hidden to the Llama rule ``multiple_of_128(8/3 * d_model)``).
- ``GPT.forward(idx [B,T], targets [B,T] | None)`` returns the mean cross-entropy over all positions (computed by
  :func:`mixlab.kernels.linear_cross_entropy`, so training never materialises [B,T,V] logits) when targets are
  given, else the logits [B,T,V].
- ``GPT.token_losses(idx, targets) -> [B,T]``: per-token cross-entropy (fp32) for evaluation; its mean equals
  ``forward``'s loss up to float rounding.
- Incremental decoding: ``GPT.hidden(idx, cache=KVCache(), valid=mask)`` runs the same blocks, appending each
  layer's keys/values to the cache; the next call continues at rotary position ``len(cache)`` (cache columns,
  padding included) and attends to every cached column that ``valid`` marked a real token, plus causally to
  itself. Rotary attention depends only on query-key distances, so a left-padded row scores as it would alone
  from position 0 (up to float rounding), with the rotary tables of the uncached path (one formula).
  ``len(cache) + T`` must stay within ``seq_len``.
- Architecture: token embedding -> n_layers x [x + Attn(RMSNorm(x)); x + SwiGLU(RMSNorm(x))] -> RMSNorm ->
  output projection (tied to the embedding when ``tie_embeddings``). Rotary position embeddings ("rotate half"
  layout), grouped-query attention (n_kv_heads), causal SDPA, no biases, no dropout (so training on a given
  batch is deterministic on the CPU).
- Init: every matrix ~ N(0, 0.02); the two residual output projections (attention ``wo``, MLP ``down``) use
  0.02 / sqrt(2 * n_layers); norm weights 1.
- All fused ops come from :mod:`mixlab.kernels` (Triton on CUDA, the pure-torch reference elsewhere).

Parameter counts, from ``python -m mixlab.train.model`` (tied embeddings; vocab 4,096 / 50,304):
    tiny  1.33M / 7.24M     small 12.2M / 29.9M     124m 88.1M / 123.6M
    470m  430.0M / 477.3M   2.8b  2.674B / 2.792B
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from mixlab.kernels import apply_rotary, linear_cross_entropy, rms_norm, rotary_tables, swiglu

if TYPE_CHECKING:  # the model imports without pydantic (a GPU box may have only torch and triton)
    from mixlab.recipe import ModelSpec

# name -> (n_layers, d_model, n_heads, n_kv_heads, ffn_hidden). Counts above are computed by num_params().
PRESETS: dict[str, tuple[int, int, int, int, int]] = {
    # CPU demo. Measured (benchmarks/bench_trainer.py, 2-core AMD EPYC dev box, 2 threads, shared): one step of
    # batch 8 x seq 256 at vocab 4096 takes 0.26-0.29 s (7.1-7.8k tok/s; 1 thread: 0.46 s). ~0.10 s of it is the
    # vocab-4096 cross-entropy alone (2048 x 4096 logits fwd+bwd), so no model size reaches 0.1 s there:
    # d_model 64 still takes 0.21 s. These dims keep a model that visibly learns in a CPU demo.
    "tiny": (4, 128, 4, 4, 352),
    "small": (6, 384, 6, 6, 1024),
    # GPT-2 small dims; SwiGLU hidden 2048 = 8/3 * 768 keeps the MLP at GPT-2's 4.7M parameters per block.
    "124m": (12, 768, 12, 12, 2048),
    # Paper-scale (arXiv 2408.10914 trains 470M and 2.8B decoders). Llama-style: head_dim 64 / 128; the SwiGLU
    # hidden (3.5x / 2.9x d_model, multiples of 128) is sized so the total at vocab 50,304 lands on the name.
    "470m": (28, 1024, 16, 16, 3584),
    "2.8b": (32, 2560, 20, 20, 7424),
}


def llama_ffn_hidden(d_model: int, multiple_of: int = 128) -> int:
    """8/3 * d_model rounded up to a multiple (SwiGLU with the parameter count of a 4x GELU MLP)."""
    return multiple_of * math.ceil(8 * d_model / 3 / multiple_of)


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    seq_len: int
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    ffn_hidden: int
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not divisible by n_kv_heads {self.n_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_spec(cls, spec: ModelSpec, vocab_size: int, seq_len: int) -> ModelConfig:
        explicit = {
            "n_layers": spec.n_layers, "d_model": spec.d_model, "n_heads": spec.n_heads,
            "n_kv_heads": spec.n_kv_heads, "ffn_hidden": spec.ffn_hidden,
        }
        if spec.preset == "custom":
            missing = [k for k in ("n_layers", "d_model", "n_heads") if explicit[k] is None]
            if missing:
                raise ValueError(f"model.preset 'custom' needs {missing}; set them or pick a preset")
            dims = dict(explicit)
            dims["n_kv_heads"] = dims["n_kv_heads"] or dims["n_heads"]
            dims["ffn_hidden"] = dims["ffn_hidden"] or llama_ffn_hidden(dims["d_model"])
        else:
            preset = dict(zip(("n_layers", "d_model", "n_heads", "n_kv_heads", "ffn_hidden"), PRESETS[spec.preset], strict=True))
            dims = {k: explicit[k] if explicit[k] is not None else preset[k] for k in preset}
        return cls(vocab_size=vocab_size, seq_len=seq_len, tie_embeddings=spec.tie_embeddings,
                   rope_theta=spec.rope_theta, **dims)

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        # q, k, v in one matmul: output columns are [q (H*hd) | k (KV*hd) | v (KV*hd)].
        self.wqkv = nn.Linear(cfg.d_model, (cfg.n_heads + 2 * cfg.n_kv_heads) * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, _ = x.shape
        H, KV, hd = self.n_heads, self.n_kv_heads, self.head_dim
        q, k, v = self.wqkv(x).split([H * hd, KV * hd, KV * hd], dim=-1)
        q = apply_rotary(q.view(B, T, H, hd), cos, sin)  # [B,T,H,hd]
        k = apply_rotary(k.view(B, T, KV, hd), cos, sin)  # [B,T,KV,hd]
        v = v.view(B, T, KV, hd)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B,heads,T,hd]
        if cache is not None:
            k, v = cache.append(layer, k, v)  # [B,KV,Tc+T,hd]
        if KV != H:  # grouped-query attention: each kv head serves H/KV query heads
            k = k.repeat_interleave(H // KV, dim=1)  # [B,H,Tk,hd] (Tk = T, or Tc+T with a cache)
            v = v.repeat_interleave(H // KV, dim=1)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B,H,T,hd]
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=cache.mask)  # [B,H,T,hd]
        return self.wo(y.transpose(1, 2).reshape(B, T, H * hd))  # [B,T,d]


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.ffn_hidden, bias=False)  # columns [gate | up]
        self.down = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # [B,T,F] each
        return self.down(swiglu(gate, up))  # [B,T,d]


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, layer)
        return x + self.mlp(self.mlp_norm(x))


class KVCache:
    """Keys and values of every layer for a batch decoded together (module contract, "Incremental decoding").

    ``keys[i]`` / ``values[i]``: [B,KV,Tc,hd] of layer i, rotated at positions 0..Tc-1; ``valid`` [B,Tc]: False at
    padding columns; ``mask`` [B,1,T,Tc+T]: what the T queries of the running call may attend to.
    """

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.valid: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.valid is None else self.valid.shape[1]

    def start(self, valid: torch.Tensor) -> int:
        """Open a call on ``valid`` [B,T] new columns; returns the rotary position of the first."""
        start, n_new = len(self), valid.shape[1]
        self.valid = valid if self.valid is None else torch.cat([self.valid, valid], dim=1)  # [B,Tc+T]
        q_pos = torch.arange(start, start + n_new, device=valid.device)[:, None]  # [T,1]
        k_pos = torch.arange(start + n_new, device=valid.device)[None, :]  # [1,Tc+T]
        # a position always sees itself, so the rows of padding queries stay finite
        self.mask = ((self.valid[:, None, :] & (k_pos <= q_pos)) | (k_pos == q_pos))[:, None]  # [B,1,T,Tc+T]
        return start

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add layer ``layer``'s new keys/values [B,KV,T,hd]; returns all of them [B,KV,Tc+T,hd]."""
        if layer < len(self.keys):
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        else:
            self.keys.append(k)
            self.values.append(v)
        return self.keys[layer], self.values[layer]

    def select(self, rows: torch.Tensor) -> None:
        """Keep only the batch rows ``rows`` (int64 indices), e.g. after some rows finished decoding."""
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]
        if self.valid is not None:
            self.valid = self.valid.index_select(0, rows)
        self.mask = None


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        cos, sin = rotary_tables(cfg.seq_len, cfg.head_dim, cfg.rope_theta)  # [T, hd/2] each, fp32
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        residual_std = 0.02 / math.sqrt(2 * cfg.n_layers)
        for block in self.blocks:
            nn.init.normal_(block.attn.wo.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.down.weight, mean=0.0, std=residual_std)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight  # [V,d], initialised as the embedding

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def hidden(self, idx: torch.Tensor, *, cache: KVCache | None = None,
               valid: torch.Tensor | None = None) -> torch.Tensor:
        """Final-norm hidden states [B,T,d] of token ids [B,T]; with ``cache``, continuing the cached tokens
        (``valid`` [B,T] bool marks real tokens, default all; see the module contract)."""
        n_tok = idx.shape[1]
        start = 0
        if cache is not None:
            if valid is None:
                valid = torch.ones(idx.shape, dtype=torch.bool, device=idx.device)
            if len(cache) + n_tok > self.cfg.seq_len:
                raise ValueError(f"{len(cache)} cached + {n_tok} new tokens exceed the model's seq_len "
                                 f"{self.cfg.seq_len}; start a new cache from the last tokens")
            start = cache.start(valid)
        elif valid is not None:
            raise ValueError("valid= marks padding for cached decoding; pass cache= too (or right-pad instead)")
        if n_tok > self.cfg.seq_len:
            raise ValueError(f"sequence of {n_tok} tokens exceeds the model's seq_len {self.cfg.seq_len}")
        x = self.tok_emb(idx)  # [B,T,d]
        cos, sin = self.rope_cos[start : start + n_tok], self.rope_sin[start : start + n_tok]  # [T, hd/2]
        for layer, block in enumerate(self.blocks):
            x = block(x, cos, sin, cache, layer)
        return self.norm(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                cache: KVCache | None = None) -> torch.Tensor:
        h = self.hidden(idx, cache=cache)  # [B,T,d]
        if targets is None:
            return self.lm_head(h)  # [B,T,V]
        return linear_cross_entropy(h, self.lm_head.weight, targets)  # scalar: mean CE over B*T

    @torch.no_grad()
    def token_losses(self, idx: torch.Tensor, targets: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """Per-token cross-entropy [B,T] in fp32; logits are built ``chunk`` positions at a time."""
        h = self.hidden(idx).flatten(0, 1)  # [B*T,d]
        flat = targets.flatten()
        out = torch.empty(flat.shape, dtype=torch.float32, device=h.device)
        for lo in range(0, h.shape[0], chunk):
            logits = self.lm_head(h[lo : lo + chunk]).float()  # [chunk,V]
            out[lo : lo + chunk] = F.cross_entropy(logits, flat[lo : lo + chunk], reduction="none")
        return out.view_as(targets)

    def num_params(self) -> int:
        """Trainable parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> int:
        """Training FLOPs per token: 6 x (matmul parameters) + 12 x n_layers x d_model x seq_len (attention).

        The input embedding is a lookup, not a matmul: it is excluded when untied (when tied, the shared matrix
        is the output projection and counts once), as in PaLM's MFU accounting.
        """
        cfg = self.cfg
        n = self.num_params() - (0 if cfg.tie_embeddings else cfg.vocab_size * cfg.d_model)
        return 6 * n + 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim * cfg.seq_len


def _param_table() -> str:  # pragma: no cover - documentation helper
    rows = ["| preset | layers | d_model | heads | kv | ffn | params (V=4096) | params (V=50304) |", "|---" * 8 + "|"]
    for name, (nl, d, h, kv, f) in PRESETS.items():
        counts = []
        for vocab in (4096, 50304):
            cfg = ModelConfig(vocab_size=vocab, seq_len=8, n_layers=nl, d_model=d, n_heads=h, n_kv_heads=kv,
                              ffn_hidden=f)
            with torch.device("meta"):
                counts.append(GPT(cfg).num_params())
        rows.append(f"| {name} | {nl} | {d} | {h} | {kv} | {f} | {counts[0]:,} | {counts[1]:,} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    print(_param_table())
