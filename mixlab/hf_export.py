"""Export a mixlab checkpoint as a Hugging Face ``LlamaForCausalLM`` folder (``config.json`` + ``model.safetensors``).

Contract of ``export_hf(checkpoint, out_dir, vocab_size=None, dtype=torch.float32)``:
- ``checkpoint`` is a ``.pt`` file or a phase folder holding ``final.pt`` (see
  :func:`mixlab.train.checkpoint.load_checkpoint_and_config` for where the model configuration comes from). Writes ``out_dir/config.json``, ``out_dir/model.safetensors``
  and ``out_dir/mixlab_export.json`` (provenance: checkpoint path, phase, step, the parameter-name map);
  returns ``out_dir``.
- The architecture maps one to one; no weight is re-initialised or dropped:

  ==================================== ==========================================================
  mixlab                               Hugging Face Llama
  ==================================== ==========================================================
  ``tok_emb.weight``                   ``model.embed_tokens.weight``
  ``blocks.i.attn_norm.weight``        ``model.layers.i.input_layernorm.weight``
  ``blocks.i.attn.wqkv.weight``        rows [q | k | v] -> ``self_attn.{q,k,v}_proj.weight``
  ``blocks.i.attn.wo.weight``          ``model.layers.i.self_attn.o_proj.weight``
  ``blocks.i.mlp_norm.weight``         ``model.layers.i.post_attention_layernorm.weight``
  ``blocks.i.mlp.gate_up.weight``      rows [gate | up] -> ``mlp.{gate,up}_proj.weight``
  ``blocks.i.mlp.down.weight``         ``model.layers.i.mlp.down_proj.weight``
  ``norm.weight``                      ``model.norm.weight``
  ``lm_head.weight``                   ``lm_head.weight`` (omitted when tied: ``tie_word_embeddings``)
  ==================================== ==========================================================

- Rotary: mixlab rotates the pairs (x[..., :d/2], x[..., d/2:]) with frequencies ``theta ** (-2j/d)`` (see
  :mod:`mixlab.kernels.reference`), which is exactly HF's ``rotate_half`` layout, so q/k rows are copied
  without the interleaved->half permutation that Meta-format conversions need. GQA: mixlab's
  ``repeat_interleave`` over kv heads equals HF's ``repeat_kv`` (query head h uses kv head h // (H/KV)).
  RMSNorm (fp32, ``x * rsqrt(mean(x^2) + eps) * w``), SwiGLU (``down(silu(gate) * up)``), no biases: the same in
  both. fp32 logits of the export match mixlab's to float rounding (``tests/test_export_hf.py``).
- ``config.json`` carries both spellings transformers has used: ``rope_theta`` and ``rope_parameters``
  (``{"rope_type": "default", "rope_theta"}``), ``torch_dtype`` and ``dtype``; ``max_position_embeddings`` is
  the training ``seq_len``; ``head_dim`` is explicit.
- ``vocab_size`` (default: the model's, i.e. the tokenizer's ``n_vocab``) may be larger, to pad the embedding
  and output rows with zeros for tools that want e.g. a multiple of 64. Padded ids then get logit 0, which
  enlarges the softmax normalizer: leave it at the default for scoring. Smaller than the model's is an error.
- ``model.safetensors`` is written by a small writer here (the format: u64 little-endian header length, a
  JSON header padded with spaces to 8 bytes, then the raw little-endian tensors in header order), so the export
  needs neither ``safetensors`` nor ``transformers`` installed; the test reads it back with both.
- ``export_tokenizer(encoding, out_dir)`` (or ``export_hf(..., encoding_spec=...)``) writes ``tokenizer.json``
  and ``tokenizer_config.json`` equivalent to a mixlab tiktoken encoding (``{"kind": "bpe", "path"}`` as trained
  by :func:`mixlab.tokenizer.train_bpe`, or ``{"kind": "tiktoken", "name": "cl100k_base" | "o200k_base"}``, or an
  ``Encoding``), built with the ``tokenizers`` library: a byte-level BPE whose vocabulary is the ranks mapped
  through GPT-2's byte<->unicode table (id = rank; special tokens keep their ids) and whose merges are every
  split of every token into two tokens, ordered by the rank of the merged token (then of its halves). That is
  tiktoken's own algorithm: both repeatedly join the adjacent pair whose concatenation has the lowest rank, and
  the pieces present are always tokens, so "the pair is a merge" <=> "the concatenation is a token";
  ``ignore_merges`` mirrors tiktoken's shortcut of emitting a whole pre-token that is itself a token. Pre-tokenizer
  ``Split(Regex(pat), isolated)`` (``pat`` rewritten where Oniguruma reads it differently: :func:`hf_split_pattern`) + ``ByteLevel(add_prefix_space=False, use_regex=False)``, decoder ``ByteLevel``.
  ``encode(text, add_special_tokens=False)`` equals ``enc.encode_ordinary(text)`` (``tests/test_export_hf.py``);
  two documented differences with :func:`mixlab.tokenizer.encode_document`: HF matches special-token text such
  as ``<|endoftext|>`` as the special id (tiktoken's ``encode_ordinary`` keeps it as text), and HF does not cut
  whitespace-free runs of ``MAX_RUN`` chars. With special tokens (the default) the end-of-text token is
  prepended (``bos_token`` = ``eos_token`` = ``<|endoftext|>``): mixlab's packed data separates documents with
  it, and :class:`mixlab.eval.lm.MixlabLM` scores with the same prefix, so lm-evaluation-harness's default
  encoding of a request equals mixlab's (``tests/test_lm_eval.py``).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import torch

from mixlab.eval.encoding import TokenizerSpec, checkpoint_tokenizer, resolve_encoding
from mixlab.train.checkpoint import load_checkpoint_and_config, resolve_checkpoint
from mixlab.train.model import ModelConfig

_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def hf_config(cfg: ModelConfig, vocab_size: int | None = None, dtype: torch.dtype = torch.float32,
              bos_token_id: int | None = None, eos_token_id: int | None = None) -> dict[str, Any]:
    """The ``config.json`` of a ``LlamaForCausalLM`` with mixlab's dimensions."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab_size or cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn_hidden,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "tie_word_embeddings": cfg.tie_embeddings,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
        "torch_dtype": _DTYPE_NAMES[dtype],
        "dtype": _DTYPE_NAMES[dtype],
    }


def hf_state_dict(state: dict[str, torch.Tensor], cfg: ModelConfig, vocab_size: int | None = None,
                  dtype: torch.dtype = torch.float32) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(HF Llama tensors, HF name -> mixlab source) from a mixlab ``GPT.state_dict()`` (module contract)."""
    state = {k.removeprefix("_orig_mod.").removeprefix("module."): v for k, v in state.items()}
    H, KV, hd, F = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.ffn_hidden
    vocab = vocab_size or cfg.vocab_size
    if vocab < cfg.vocab_size:
        raise ValueError(f"vocab_size {vocab} is smaller than the model's {cfg.vocab_size}")
    out: dict[str, torch.Tensor] = {}
    src: dict[str, str] = {}
    used: set[str] = set()

    def put(name: str, source: str, tensor: torch.Tensor | None = None) -> None:
        out[name] = (state[source] if tensor is None else tensor).detach().to("cpu", dtype).contiguous()
        src[name] = source
        used.add(source)

    def padded(t: torch.Tensor) -> torch.Tensor:
        return t if vocab == t.shape[0] else torch.cat([t, t.new_zeros(vocab - t.shape[0], t.shape[1])])

    put("model.embed_tokens.weight", "tok_emb.weight", padded(state["tok_emb.weight"]))
    for i in range(cfg.n_layers):
        p, b = f"model.layers.{i}.", f"blocks.{i}."
        wqkv = state[b + "attn.wqkv.weight"]
        q, k, v = wqkv.split([H * hd, KV * hd, KV * hd], dim=0)
        put(p + "self_attn.q_proj.weight", b + "attn.wqkv.weight", q)
        put(p + "self_attn.k_proj.weight", b + "attn.wqkv.weight", k)
        put(p + "self_attn.v_proj.weight", b + "attn.wqkv.weight", v)
        put(p + "self_attn.o_proj.weight", b + "attn.wo.weight")
        gate, up = state[b + "mlp.gate_up.weight"].split([F, F], dim=0)
        put(p + "mlp.gate_proj.weight", b + "mlp.gate_up.weight", gate)
        put(p + "mlp.up_proj.weight", b + "mlp.gate_up.weight", up)
        put(p + "mlp.down_proj.weight", b + "mlp.down.weight")
        put(p + "input_layernorm.weight", b + "attn_norm.weight")
        put(p + "post_attention_layernorm.weight", b + "mlp_norm.weight")
    put("model.norm.weight", "norm.weight")
    if cfg.tie_embeddings:
        used.add("lm_head.weight")
        if not torch.equal(state["lm_head.weight"], state["tok_emb.weight"]):
            raise ValueError("config says tie_embeddings but lm_head.weight differs from tok_emb.weight")
    else:
        put("lm_head.weight", "lm_head.weight", padded(state["lm_head.weight"]))
    left = sorted(set(state) - used)
    if left:
        raise ValueError(f"mixlab parameters with no Hugging Face counterpart: {left}")
    return out, src


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path | str, metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` in the safetensors format (module contract)."""
    header: dict[str, Any] = {"__metadata__": dict(metadata or {})} if metadata else {}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _ST_DTYPES:
            raise ValueError(f"{name}: dtype {t.dtype} not supported by this writer")
        blob = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)
    tmp.replace(path)


def hf_split_pattern(pat: str) -> str:
    """``pat`` for ``tokenizers``' Oniguruma: there ``X{n,m}+`` means ``(X{n,m})+``, not tiktoken's possessive
    ``{n,m}+`` (cl100k's ``\\p{N}{1,3}+`` would keep ``4096`` whole instead of ``409`` + ``6``). Where the quantifier
    ends a top-level alternative nothing after it can fail, so possessive and greedy match the same: the ``+`` is
    dropped there. Any other ``{n,m}+`` is refused."""
    out, depth, i, in_class = [], 0, 0, False
    quant = re.compile(r"\{\d+(?:,\d*)?\}\+")
    while i < len(pat):
        c = pat[i]
        if c == "\\":
            out.append(pat[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c in "()":
            depth += 1 if c == "(" else -1
        elif (m := quant.match(pat, i)) is not None:
            if depth or not (m.end() == len(pat) or pat[m.end()] == "|"):
                raise ValueError(f"split pattern {pat!r}: possessive {m.group()} Oniguruma would misread")
            out.append(m.group()[:-1])
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def tokenizer_json(enc: Any) -> str:
    """The ``tokenizer.json`` text of a ``tokenizers`` byte-level BPE equal to tiktoken encoding ``enc``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    from mixlab.tokenizer import EOT, _bytes_to_unicode

    ranks: dict[bytes, int] = enc._mergeable_ranks  # noqa: SLF001 - tiktoken exposes no getter
    specials: dict[str, int] = enc._special_tokens  # noqa: SLF001
    if EOT not in specials:
        raise ValueError(f"encoding {enc.name!r} has no {EOT} special token")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise ValueError(f"encoding {enc.name!r} lacks single-byte tokens {missing[:8]}: not a byte-level BPE")
    table = _bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(table[b] for b in token)

    vocab = {text(tok): rank for tok, rank in ranks.items()}
    vocab.update(specials)  # fixes their ids (cl100k leaves a hole before its specials); never reached by BPE
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for tok, rank in ranks.items():
        for i in range(1, len(tok)):
            left, right = ranks.get(tok[:i]), ranks.get(tok[i:])
            if left is not None and right is not None:
                merges.append((rank, left, right, tok[:i], tok[i:]))
    merges.sort()
    model = models.BPE(vocab=vocab, merges=[(text(a), text(b)) for *_, a, b in merges], ignore_merges=True)
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(hf_split_pattern(enc._pat_str)), behavior="isolated"),  # noqa: SLF001
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in sorted(specials, key=specials.get)])
    eot = specials[EOT]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{EOT} $A", pair=f"{EOT} $A {EOT} $B:1", special_tokens=[(EOT, eot)])
    return tok.to_str()


def export_tokenizer(encoding: TokenizerSpec | Any, out_dir: Path | str, model_max_length: int | None = None) -> Path:
    """Write ``tokenizer.json`` + ``tokenizer_config.json`` for a mixlab encoding spec or a tiktoken ``Encoding``
    (module contract); returns ``out_dir``."""
    from mixlab.tokenizer import EOT

    encoding = resolve_encoding(encoding)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(tokenizer_json(encoding))
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": EOT,
        "eos_token": EOT,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "mixlab_encoding": encoding.name,
    }
    if model_max_length is not None:
        config["model_max_length"] = model_max_length
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


def export_hf(
    checkpoint: Path | str,
    out_dir: Path | str,
    vocab_size: int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    model_config: ModelConfig | dict | None = None,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    encoding_spec: TokenizerSpec | None = None,
) -> Path:
    """Write a ``LlamaForCausalLM`` folder for ``checkpoint`` (module contract); returns ``out_dir``. With
    the tokenizer the checkpoint recorded (or ``encoding_spec``, which must match it) the tokenizer is exported too
    and bos/eos ids default to its end-of-text token."""
    if dtype not in _DTYPE_NAMES:
        raise ValueError(f"dtype {dtype} not supported; use one of {list(_DTYPE_NAMES)}")
    ckpt, cfg = load_checkpoint_and_config(checkpoint, model_config)
    tensors, sources = hf_state_dict(ckpt["model"], cfg, vocab_size, dtype)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    enc = None
    if encoding_spec is not None:
        enc = resolve_encoding(encoding_spec, checkpoint=checkpoint)
    elif checkpoint_tokenizer(checkpoint) is not None:  # the tokenizer the model was trained with
        enc = resolve_encoding(None, checkpoint=checkpoint)
    if enc is not None:
        if enc.n_vocab > cfg.vocab_size:
            raise ValueError(f"tokenizer has {enc.n_vocab} ids but the model only {cfg.vocab_size}")
        export_tokenizer(enc, out, model_max_length=cfg.seq_len)
        bos_token_id = enc.eot_token if bos_token_id is None else bos_token_id
        eos_token_id = enc.eot_token if eos_token_id is None else eos_token_id
    save_safetensors(tensors, out / "model.safetensors", {"format": "pt"})
    config = hf_config(cfg, vocab_size, dtype, bos_token_id, eos_token_id)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    provenance = {"checkpoint": str(resolve_checkpoint(checkpoint)), "phase": ckpt.get("phase"), "step": ckpt.get("step"),
                  "mixlab_config": cfg.to_dict(), "parameters": sources}
    (out / "mixlab_export.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return out
