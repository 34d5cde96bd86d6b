"""Packed phase files: exact composition recounted from disk, ledger across phases, atomicity, verified loading,
resumable and rank-sharded batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mixlab.pack.dataset import PackedDataError, PackedDataset, SequenceLoader, open_phase
from mixlab.pack.ledger import SourceTokens, locate
from mixlab.pack.writer import pack_phase
from mixlab.tokenizer import TokenizerInfo

L, B = 8, 4
HEADER = {"recipe_name": "t", "recipe_hash": "r" * 64, "pack_key": "k",
          "tokenizer": TokenizerInfo(kind="bpe", name="toy", hash="h" * 64, vocab_size=1000, eos_id=999)}


def toy_sources() -> dict[str, SourceTokens]:
    rng = np.random.default_rng(0)
    out = {}
    for i, (name, docs) in enumerate([("text", 60), ("code", 40), ("synth", 10)]):
        lengths = rng.integers(3, 30, size=docs)
        # token value encodes the source (hundreds digit) so provenance can be checked from content alone
        out[name] = SourceTokens(name, (100 * (i + 1) + rng.integers(0, 100, lengths.sum())).astype(np.uint16),
                                 np.cumsum(lengths))
    return out


def pack(tmp: Path, name: str, mixture: dict[str, float], tokens: int, starts: dict[str, int], index: int = 0):
    return pack_phase(tmp / name, phase=name, phase_index=index, requested_tokens=tokens, mixture=mixture,
                      max_repeat=4.0, sources=toy_sources(), source_meta={}, starts=starts, seq_len=L,
                      batch_size=B, seed=11, header=HEADER)


def test_planned_equals_realized_recounted_from_disk(tmp_path: Path) -> None:
    """Every source's realized tokens (from seq_source.npy on disk) equal its Hamilton plan, and the budget is
    rounded down to whole batches."""
    m = pack(tmp_path, "p", {"text": 0.5, "code": 0.3, "synth": 0.2}, tokens=1000, starts={})
    assert m.num_sequences == 1000 // (L * B) * B == 124
    on_disk = np.load(tmp_path / "p" / "seq_source.npy")
    for e in m.sources.values():
        assert int((on_disk == e.source_id).sum()) * L == e.realized_tokens == e.planned_tokens
    assert sum(e.planned_tokens for e in m.sources.values()) == m.planned_tokens
    assert m.max_prefix_deviation < 1.0


def test_each_sequence_holds_tokens_of_its_source_only(tmp_path: Path) -> None:
    """A sequence never mixes sources: all L+1 tokens come from the source its sidecar names, at the ledger
    position it records."""
    pack(tmp_path, "p", {"text": 0.5, "code": 0.5}, tokens=800, starts={})
    phase = open_phase(tmp_path / "p")
    srcs = toy_sources()
    positions = np.load(tmp_path / "p" / "seq_position.npy")
    for i in range(phase.manifest.num_sequences):
        name = phase.source_names[phase.seq_source[i]]
        expected = 100 * (["text", "code", "synth"].index(name) + 1)
        assert ((phase.tokens[i] // 100) * 100 == expected).all()
        epoch, doc = locate(srcs[name], 11, int(positions[i]))
        stream = srcs[name].epoch_stream(11, epoch)
        assert phase.tokens[i][0] == stream[positions[i] - epoch * srcs[name].num_tokens]
        assert 0 <= doc < len(srcs[name].doc_ends)


def test_second_phase_continues_the_ledger(tmp_path: Path) -> None:
    """A later phase starts each source where the earlier one ended: no document is repeated before the
    source's first epoch is used up."""
    m1 = pack(tmp_path, "a", {"text": 0.5, "code": 0.5}, tokens=640, starts={})
    starts = {s: e.ledger_end for s, e in m1.sources.items()}
    m2 = pack(tmp_path, "b", {"text": 1.0}, tokens=320, starts=starts, index=1)
    assert m2.sources["text"].ledger_start == m1.sources["text"].ledger_end
    first = np.load(tmp_path / "a" / "seq_position.npy")[np.load(tmp_path / "a" / "seq_source.npy") == 0]
    second = np.load(tmp_path / "b" / "seq_position.npy")
    assert second.min() == first.max() + L


def test_impossible_mix_fails_before_writing(tmp_path: Path) -> None:
    """Asking a tiny source for more than max_repeat epochs raises and leaves no phase folder behind."""
    from mixlab.pack.ledger import MixtureError

    with pytest.raises(MixtureError, match="synth"):
        pack(tmp_path, "p", {"text": 0.5, "synth": 0.5}, tokens=3000, starts={})
    assert not (tmp_path / "p").exists()


def test_loader_refuses_damaged_or_mismatched_folders(tmp_path: Path) -> None:
    """No manifest, a truncated or corrupted file, or a different tokenizer: each refused with a clear error."""
    pack(tmp_path, "p", {"text": 1.0}, tokens=320, starts={})
    with pytest.raises(PackedDataError, match="tokenizer"):
        open_phase(tmp_path / "p", tokenizer_hash="x" * 64)
    tokens = tmp_path / "p" / "tokens.npy"
    raw = bytearray(tokens.read_bytes())
    raw[-1] ^= 0xFF
    tokens.write_bytes(bytes(raw))
    with pytest.raises(PackedDataError, match="checksum"):
        open_phase(tmp_path / "p")
    tokens.write_bytes(bytes(raw[:-2]))
    with pytest.raises(PackedDataError, match="expected"):
        open_phase(tmp_path / "p")
    (tmp_path / "p" / "manifest.json").unlink()
    with pytest.raises(PackedDataError, match="no manifest.json"):
        open_phase(tmp_path / "p")


def test_loader_resume_and_rank_shards(tmp_path: Path) -> None:
    """Resuming from a saved state yields exactly the remaining batches; the ranks' slices of a step
    concatenate to that step's global batch."""
    pack(tmp_path, "p", {"text": 0.6, "code": 0.4}, tokens=2000, starts={})
    phase = open_phase(tmp_path / "p")
    full = list(SequenceLoader(phase, B))
    assert len(full) == phase.manifest.num_sequences // B
    loader = SequenceLoader(phase, B)
    it = iter(loader)
    for _ in range(5):
        next(it)
    state = loader.state_dict()
    resumed = SequenceLoader(phase, B)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(full) - 5 and all((a == b).all() for a, b in zip(rest, full[5:], strict=True))
    shards = [list(SequenceLoader(phase, B, rank=r, world_size=2)) for r in range(2)]
    for step, batch in enumerate(full):
        assert (np.concatenate([shards[0][step], shards[1][step]]) == batch.numpy()).all()
    ds = PackedDataset(phase)
    assert (ds[3].numpy() == phase.tokens[3]).all() and ds.source_of(3) in ("text", "code")


def test_same_inputs_same_bytes(tmp_path: Path) -> None:
    """Packing is deterministic: the same inputs give byte-identical files."""
    a = pack(tmp_path, "a", {"text": 0.5, "code": 0.3, "synth": 0.2}, tokens=900, starts={})
    b = pack(tmp_path, "b", {"text": 0.5, "code": 0.3, "synth": 0.2}, tokens=900, starts={})
    assert {k: v.xxh64 for k, v in a.files.items()} == {k: v.xxh64 for k, v in b.files.items()}
