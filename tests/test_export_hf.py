"""Tests of the Hugging Face Llama export (mixlab.hf_export).

The loading tests need ``transformers`` (optional: ``pip install transformers``); they fail on any missing,
unexpected or mismatched key, because transformers silently random-initialises weights a checkpoint lacks.
Logits are compared in fp32 with atol 1e-4: both sides run the same fp32 operations (only matmul/SDPA kernel
choice and summation order can differ, ~1e-6 relative on logits of magnitude < 10), so 1e-4 leaves two orders
of margin while any mapping error (a swapped q/k half, a wrong GQA grouping, a missing norm) moves logits by
~1e-2 or more.
"""

from __future__ import annotations

import json
import struct

import pytest
import torch

from mixlab.hf_export import (
    export_hf,
    export_tokenizer,
    hf_split_pattern,
    hf_state_dict,
    save_safetensors,
)
from mixlab.tokenizer import save_ranks, train_bpe
from mixlab.train.checkpoint import save_checkpoint
from mixlab.train.model import GPT, ModelConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(tie: bool, n_kv_heads: int = 2, seed: int = 0) -> GPT:
    """A random GQA model with non-trivial norm weights (ones would hide a norm mapped to the wrong place)."""
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=97, seq_len=32, n_layers=2, d_model=64, n_heads=4, n_kv_heads=n_kv_heads,
                      ffn_hidden=96, tie_embeddings=tie, rope_theta=500.0, norm_eps=1e-6)
    model = GPT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.5 * torch.randn_like(p))
            else:
                p.mul_(5.0)  # larger weights: logits of order 1-10, so mapping errors cannot hide under atol
    return model.eval()


def _save(model: GPT, folder) -> object:
    path = folder / "final.pt"
    save_checkpoint(path, model, None, 7, "pretrain", {}, None,
                    {"complete": True, "result": {"model_config": model.cfg.to_dict()}})
    return folder


def _load_strict(out):
    transformers = pytest.importorskip("transformers")
    hf, info = transformers.LlamaForCausalLM.from_pretrained(out, output_loading_info=True, dtype=torch.float32)
    problems = {k: v for k, v in info.items() if v}
    assert not problems, f"export does not load cleanly: {problems}"
    return hf.eval()


@pytest.mark.parametrize("tie", [True, False])
def test_export_loads_without_missing_keys_and_matches_logits(tmp_path, tie):
    """The export loads as LlamaForCausalLM with no missing/unexpected/mismatched keys, and its fp32 logits on
    random tokens (full seq_len) equal mixlab's within atol 1e-4 (tied and untied embeddings, GQA 4 q / 2 kv)."""
    model = _model(tie)
    out = export_hf(_save(model, tmp_path / "phase"), tmp_path / "hf")
    hf = _load_strict(out)
    assert hf.config.tie_word_embeddings is tie
    tokens = torch.randint(0, model.cfg.vocab_size, (3, model.cfg.seq_len), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(tokens), hf(tokens).logits
    assert ours.abs().max() > 1.0
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)


def test_missing_key_is_detected(tmp_path):
    """The strictness check is real: an export with one tensor removed reports it as missing (transformers would
    otherwise load it with random weights)."""
    transformers = pytest.importorskip("transformers")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    out = export_hf(_save(_model(True), tmp_path / "phase"), tmp_path / "hf")
    tensors = safetensors_torch.load_file(out / "model.safetensors")
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_safetensors(tensors, out / "model.safetensors", {"format": "pt"})
    _, info = transformers.LlamaForCausalLM.from_pretrained(out, output_loading_info=True, dtype=torch.float32)
    assert "model.layers.1.mlp.up_proj.weight" in info["missing_keys"]


def test_config_fields(tmp_path):
    """config.json names the Llama architecture with mixlab's dims and both spellings of rope theta and dtype."""
    model = _model(False, n_kv_heads=1)
    out = export_hf(_save(model, tmp_path / "phase"), tmp_path / "hf", eos_token_id=96)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["model_type"] == "llama"
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]) == (64, 96, 2)
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]) == (4, 1, 16)
    assert cfg["rope_theta"] == 500.0 and cfg["rope_parameters"] == {"rope_type": "default", "rope_theta": 500.0}
    assert cfg["rms_norm_eps"] == 1e-6 and cfg["max_position_embeddings"] == 32 and cfg["vocab_size"] == 97
    assert cfg["torch_dtype"] == cfg["dtype"] == "float32" and cfg["tie_word_embeddings"] is False
    assert cfg["eos_token_id"] == 96
    meta = json.loads((out / "mixlab_export.json").read_text())
    assert meta["step"] == 7 and meta["parameters"]["model.layers.0.self_attn.k_proj.weight"] == "blocks.0.attn.wqkv.weight"


def test_state_dict_mapping_is_complete_and_exact():
    """Every mixlab parameter lands in exactly the HF tensors it should: q/k/v and gate/up are row splits,
    nothing is left over, and shapes follow (out_features, in_features)."""
    model = _model(False, n_kv_heads=2)
    sd = model.state_dict()
    out, src = hf_state_dict(sd, model.cfg)
    assert len(out) == 2 + 9 * 2 + 1
    wqkv = sd["blocks.1.attn.wqkv.weight"]
    assert torch.equal(out["model.layers.1.self_attn.q_proj.weight"], wqkv[:64])
    assert torch.equal(out["model.layers.1.self_attn.k_proj.weight"], wqkv[64:96])
    assert torch.equal(out["model.layers.1.self_attn.v_proj.weight"], wqkv[96:])
    assert torch.equal(out["model.layers.0.mlp.up_proj.weight"], sd["blocks.0.mlp.gate_up.weight"][96:])
    assert set(src.values()) == set(sd) - {"lm_head.weight"} | {"lm_head.weight"}
    with pytest.raises(ValueError, match="no Hugging Face counterpart"):
        hf_state_dict({**sd, "blocks.0.attn.extra": torch.zeros(1)}, model.cfg)
    with pytest.raises(ValueError, match="smaller"):
        hf_state_dict(sd, model.cfg, vocab_size=10)


def test_vocab_padding(tmp_path):
    """A larger vocab_size pads embedding/output rows with zeros: real-id logits are unchanged, padded ids get 0."""
    model = _model(True)
    out = export_hf(_save(model, tmp_path / "phase"), tmp_path / "hf", vocab_size=128)
    hf = _load_strict(out)
    tokens = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = hf(tokens).logits
    assert logits.shape[-1] == 128
    torch.testing.assert_close(logits[..., :97], model(tokens), atol=1e-4, rtol=0)
    assert torch.all(logits[..., 97:] == 0)


def test_safetensors_writer_format(tmp_path):
    """The writer's file has the safetensors layout (u64 header size, 8-aligned JSON header, contiguous
    offsets) and, where the safetensors package is installed, reads back bit-exactly in fp32/fp16/bf16."""
    tensors = {"b": torch.arange(6, dtype=torch.float32).view(2, 3), "a": torch.randn(5).to(torch.bfloat16),
               "c": torch.randn(2, 2).half()}
    path = tmp_path / "t.safetensors"
    save_safetensors(tensors, path, {"format": "pt"})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert n % 8 == 0 and header["__metadata__"] == {"format": "pt"}
    ends = sorted((v["data_offsets"] for k, v in header.items() if k != "__metadata__"))
    assert ends[0][0] == 0 and all(a[1] == b[0] for a, b in zip(ends, ends[1:], strict=False))
    assert 8 + n + ends[-1][1] == len(raw)
    safetensors_torch = pytest.importorskip("safetensors.torch")
    back = safetensors_torch.load_file(path)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v)


TOKENIZER_CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "def add(a, b):\n    return a + b\n\nprint(add(2, 40))\n",
    "Ünïcödé text — ça marche, 日本語のテキスト 1234567 ",
    "  leading   spaces\t\ttabs\n\n\nnewlines  don't we'll they've",
] * 4
TOKENIZER_TEXTS = TOKENIZER_CORPUS + [
    "", " ", "a", "\n\n  x ", "zebra xylophone qqq 98765 4096 ???!!! «»", "The quick brown foxes jumped over lazy dogs.",
    "🙂🙂 emoji\u00a0nbsp\u2028sep", "class Foo(Bar):\n\tpass  # comment", "日本",
]


def _bpe_spec(folder) -> dict:
    enc = train_bpe(TOKENIZER_CORPUS, vocab_size=500)
    folder.mkdir(parents=True, exist_ok=True)
    save_ranks(enc, folder / "bpe.tiktoken")
    return {"kind": "bpe", "path": str(folder / "bpe.tiktoken")}


@pytest.mark.parametrize("kind", ["bpe", "cl100k_base"])
def test_exported_tokenizer_matches_tiktoken(tmp_path, kind):
    """AutoTokenizer on the exported tokenizer.json gives exactly tiktoken's ``encode_ordinary`` ids on varied
    texts (bytes outside the corpus, unicode, digits, whitespace runs, contractions) and decodes them back; with
    special tokens (the default) it prepends ``<|endoftext|>``, which is both bos and eos. Holds for mixlab's
    trained BPE and for cl100k (whose possessive ``\\p{N}{1,3}+`` Oniguruma would misread: "4096")."""
    transformers = pytest.importorskip("transformers")
    from mixlab.eval.encoding import resolve_encoding

    spec = _bpe_spec(tmp_path / "tok") if kind == "bpe" else {"kind": "tiktoken", "name": kind}
    enc = resolve_encoding(spec)
    tok = transformers.AutoTokenizer.from_pretrained(export_tokenizer(spec, tmp_path / "hf"))
    assert tok.eos_token == tok.bos_token == "<|endoftext|>" and tok.eos_token_id == enc.eot_token
    assert max(tok.get_vocab().values()) + 1 == enc.n_vocab  # same ids, holes included (cl100k has one)
    for text in TOKENIZER_TEXTS:
        ids = enc.encode_ordinary(text)
        assert tok.encode(text, add_special_tokens=False) == ids, text
        assert tok(text)["input_ids"] == [enc.eot_token, *ids], text
        assert tok.decode(ids) == text


def test_hf_split_pattern():
    """Oniguruma rewrite: a possessive {n,m}+ ending a top-level alternative loses its (there inert) '+', the
    GPT-2 pattern is unchanged, and a {n,m}+ followed by anything that could still fail is refused."""
    from mixlab.tokenizer import BPE_PAT

    assert hf_split_pattern(BPE_PAT) == BPE_PAT
    assert hf_split_pattern(r"[{]\p{L}++|\p{N}{1,3}+|\s+") == r"[{]\p{L}++|\p{N}{1,3}|\s+"
    for bad in [r"(a{1,3}+)b", r"a{2}+b", r"(?:x|a{1,3}+)|c"]:
        with pytest.raises(ValueError, match="possessive"):
            hf_split_pattern(bad)


def test_export_hf_with_tokenizer(tmp_path):
    """export_hf(encoding_spec=...) writes the tokenizer next to the weights and sets bos/eos in config.json to the
    end-of-text id; a tokenizer larger than the model is refused."""
    spec = _bpe_spec(tmp_path / "tok")
    from mixlab.eval.encoding import resolve_encoding

    n = resolve_encoding(spec).n_vocab
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=n, seq_len=16, n_layers=1, d_model=32, n_heads=2, n_kv_heads=1, ffn_hidden=64))
    out = export_hf(_save(model, tmp_path / "phase"), tmp_path / "hf", encoding_spec=spec)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["eos_token_id"] == cfg["bos_token_id"] == n - 1
    assert (out / "tokenizer.json").is_file()
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 16
    small = GPT(ModelConfig(vocab_size=n - 1, seq_len=16, n_layers=1, d_model=32, n_heads=2, n_kv_heads=1,
                            ffn_hidden=64))
    with pytest.raises(ValueError, match="tokenizer has"):
        export_hf(_save(small, tmp_path / "phase2"), tmp_path / "hf2", encoding_spec=spec)
