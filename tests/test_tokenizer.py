"""Tokenizers offline (shipped tiktoken files, trained BPE) and per-source token shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zstandard

from mixlab.shards import EncodingRef, TokenShardSet, doc_key, heldout_threshold
from mixlab.tokenize_steps import tokenize_source
from mixlab.tokenizer import (
    MAX_RUN,
    encode_document,
    encoding_hash,
    load_ranks,
    named_encoding,
    save_ranks,
    tokenizer_info,
    train_bpe,
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "def add(a, b):\n    return a + b\n\nprint(add(2, 40))\n",
    "Über naïve café — 東京 1234567 tokens!",
    "for (int i = 0; i < n; ++i) { total += values[i]; }",
] * 20


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_named_encodings_offline(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cl100k/o200k load from the shipped files with no network (tiktoken checks their sha256) and give the
    published ids."""
    monkeypatch.setenv("MIXLAB_CACHE", str(tmp_path))
    enc = named_encoding(name)
    known = {"cl100k_base": [15339, 1917], "o200k_base": [24912, 2375]}[name]  # "hello world", published ids
    assert enc.encode("hello world") == known
    assert enc.decode(enc.encode(CORPUS[2])) == CORPUS[2]


def test_trained_bpe_matches_hf_and_round_trips(tmp_path: Path) -> None:
    """The trained BPE as a tiktoken Encoding gives HF tokenizers' ids, decodes losslessly, has EOT last (vocab_size is a ceiling), and
    survives a save/load through tiktoken's file format with the same hash."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    from mixlab.tokenizer import BPE_PAT

    enc = train_bpe(CORPUS, vocab_size=400)
    assert enc.n_vocab <= 400 and enc.eot_token == enc.n_vocab - 1  # a tiny corpus may run out of merges
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(BPE_PAT), behavior="isolated"),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    hf.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=399, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    for text in CORPUS[:4]:
        assert enc.encode_ordinary(text) == hf.encode(text).ids
        assert enc.decode(enc.encode_ordinary(text)) == text
    save_ranks(enc, tmp_path / "bpe.tiktoken")
    assert encoding_hash(load_ranks(tmp_path / "bpe.tiktoken")) == encoding_hash(enc)


def test_long_runs_are_split_but_decode_identically() -> None:
    """A whitespace-free run longer than MAX_RUN is encoded in pieces; decoding still gives the text back."""
    enc = named_encoding("cl100k_base")
    text = "start " + "x9" * (MAX_RUN * 2) + " end"
    ids = encode_document(enc, text)
    assert enc.decode(ids) == text
    assert encode_document(enc, "short text") == enc.encode_ordinary("short text")


def write_docs(folder: Path, n: int = 40) -> None:
    folder.mkdir(parents=True)
    lines = [json.dumps({"id": f"doc-{i}", "text": CORPUS[i % 4] + f" #{i}"}) for i in range(n)]
    (folder / "00000.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress("\n".join(lines).encode()))


def test_token_shard_split_boundaries_and_worker_invariance(tmp_path: Path) -> None:
    """Held-out docs are chosen by id hash; every document ends in EOS; 1 and 2 workers give identical bytes."""
    write_docs(tmp_path / "docs")
    spec = EncodingRef(tokenizer_info(named_encoding("cl100k_base"), "tiktoken"))
    kw = {"source": "text", "seed": 3, "heldout_fraction": 5 / 40}
    one = tokenize_source(tmp_path / "docs", tmp_path / "one", spec, workers=1, **kw)
    two = tokenize_source(tmp_path / "docs", tmp_path / "two", spec, tasks=2, workers=2, **kw)
    assert sorted(p.name for p in one.path.iterdir()) == sorted(p.name for p in two.path.iterdir())
    for f in one.path.iterdir():
        assert f.read_bytes() == (two.path / f.name).read_bytes(), f.name
    meta = one.manifest
    threshold = heldout_threshold(5 / 40)
    held = sum(doc_key(f"doc-{i}", 3) < threshold for i in range(40))
    assert meta.documents == 40 and meta.heldout_documents == held > 0
    eot = named_encoding("cl100k_base").eot_token
    docs, tokens = one.train_block_counts()
    for i in range(len(docs)):
        block, lengths = one.train_block(i)
        assert (np.asarray(block)[np.cumsum(lengths) - 1] == eot).all()
    assert int(tokens.sum()) == meta.train_tokens and int(docs.sum()) == 40 - held
    assert one.tokenizer == spec.info and one.tokenizer.eos_id == eot == 100257
    held_seqs = TokenShardSet(one.path).heldout_sequences(seq_len=8, max_sequences=3)
    assert held_seqs.shape == (3, 9)
