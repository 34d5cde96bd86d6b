"""Packed phase files: exact composition recounted from the shard files (per shard and in total), ledger across
phases, atomicity and resumption, byte-identical output for any task count, verified loading, resumable and
rank-sharded batches that straddle shards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from mixlab.inspect import audit_phase
from mixlab.pack.blockorder import block_order, doc_order
from mixlab.pack.dataset import PackedDataError, PackedDataset, SequenceLoader, open_phase
from mixlab.pack.ledger import MixtureError, SourceTokens, locate
from mixlab.pack.manifest import MANIFEST, PhaseManifest, file_entry, shard_files
from mixlab.pack.source import TokenSource
from mixlab.pack.writer import PackIncomplete, pack_phase
from mixlab.tokenizer import TokenizerInfo

L, B = 8, 4
HEADER = {"recipe_name": "t", "recipe_hash": "r" * 64, "pack_key": "k",
          "tokenizer": TokenizerInfo(kind="bpe", name="toy", hash="h" * 64, vocab_size=1000, eos_id=999)}
MIX3 = {"text": 0.5, "code": 0.3, "synth": 0.2}


def toy_sources() -> dict[str, SourceTokens]:
    rng = np.random.default_rng(0)
    out = {}
    for i, (name, docs) in enumerate([("text", 60), ("code", 40), ("synth", 10)]):
        lengths = rng.integers(3, 30, size=docs)
        # token value encodes the source (hundreds digit) so provenance can be checked from content alone
        out[name] = SourceTokens(name, (100 * (i + 1) + rng.integers(0, 100, lengths.sum())).astype(np.uint16),
                                 np.cumsum(lengths))
    return out


@dataclass
class BlockSource:
    """A token shard set in memory: blocks of documents (the TokenSource protocol, as TokenShardSet has it)."""

    name: str
    blocks: list[tuple[np.ndarray, np.ndarray]]  # (tokens, lengths) per block
    digest: str = "d"
    fail_after: int | None = None  # raise on this many train_block calls (a task that dies)
    calls: list[int] = field(default_factory=list)

    def train_block_counts(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([len(n) for _, n in self.blocks], dtype=np.int64),
                np.array([len(t) for t, _ in self.blocks], dtype=np.int64))

    def train_block(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(i)
        if self.fail_after is not None and len(self.calls) > self.fail_after:
            raise OSError("simulated task failure")
        return self.blocks[i]


def block_source(name: str, blocks: int, seed: int, base: int = 0) -> BlockSource:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(blocks):
        lengths = rng.integers(2, 25, size=int(rng.integers(1, 9))).astype(np.int64)
        out.append(((base + rng.integers(0, 100, int(lengths.sum()))).astype(np.uint16), lengths))
    return BlockSource(name, out)


def reference_stream(src: BlockSource, seed: int, epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """The ledger materialized the simple way: per epoch, blocks in block_order, documents in doc_order; with
    the global document id (storage order) of every token."""
    parts, docs = [], []
    first_doc = np.cumsum([0] + [len(n) for _, n in src.blocks])
    for e in range(epochs):
        for b in block_order(len(src.blocks), seed, src.name, e):
            tokens, lengths = src.blocks[b]
            starts = np.cumsum(lengths) - lengths
            for d in doc_order(len(lengths), seed, src.name, e, b):
                parts.append(tokens[starts[d] : starts[d] + lengths[d]])
                docs.append(np.full(lengths[d], first_doc[b] + d))
    return np.concatenate(parts), np.concatenate(docs)


def pack(tmp: Path, name: str, mixture: dict[str, float], tokens: int, starts: dict[str, int], index: int = 0,
         sources: dict[str, TokenSource] | None = None, **kw):
    return pack_phase(tmp / name, phase=name, phase_index=index, requested_tokens=tokens, mixture=mixture,
                      max_repeat=kw.pop("max_repeat", 4.0), sources=sources or toy_sources(), source_meta={},
                      starts=starts, seq_len=L, batch_size=B, seed=11, header=HEADER, **kw)


def concatenated(folder: Path, kind: str) -> np.ndarray:
    """A phase's stream read straight from its shard files (np.load, no mixlab reader)."""
    m = json.loads((folder / MANIFEST).read_text())
    return np.concatenate([np.load(folder / shard_files(j)[kind]) for j in range(len(m["shards"]))])


def test_planned_equals_realized_recounted_from_disk(tmp_path: Path) -> None:
    """Every source's realized tokens (from the shards' source files on disk) equal its Hamilton plan, and the
    budget is rounded down to whole batches."""
    m = pack(tmp_path, "p", MIX3, tokens=1000, starts={}, shard_sequences=16)
    assert m.num_sequences == 1000 // (L * B) * B == 124
    on_disk = concatenated(tmp_path / "p", "source")
    for e in m.sources.values():
        assert int((on_disk == e.source_id).sum()) * L == e.realized_tokens == e.planned_tokens
    assert sum(e.planned_tokens for e in m.sources.values()) == m.planned_tokens
    assert m.max_prefix_deviation < 1.0


def test_shard_files_recounted_per_shard_and_in_total(tmp_path: Path) -> None:
    """Each shard's manifest entry holds [first, last) and per-source counts equal to a bincount of that shard's
    source file; shards tile [0, N); the audit recounts the same and flags a shard whose file was rewritten
    (with a re-sealed manifest whose checksums match the new bytes)."""
    m = pack(tmp_path, "p", MIX3, tokens=1000, starts={}, shard_sequences=16)
    folder = tmp_path / "p"
    assert [s.first for s in m.shards] == list(range(0, 124, 16))
    assert m.shards[-1].last == 124 and all(a.last == b.first for a, b in zip(m.shards[:-1], m.shards[1:], strict=True))
    totals = dict.fromkeys(m.sources, 0)
    for j, shard in enumerate(m.shards):
        ids = np.load(folder / shard_files(j)["source"])
        assert len(ids) == shard.last - shard.first == np.load(folder / shard_files(j)["tokens"]).shape[0]
        for s, e in m.sources.items():
            assert shard.sequences[s] == int((ids == e.source_id).sum())
            totals[s] += shard.sequences[s]
    assert {s: n * L for s, n in totals.items()} == {s: e.realized_tokens for s, e in m.sources.items()}
    assert audit_phase(folder)["ok"]

    path = folder / shard_files(2)["source"]
    ids = np.load(path)
    ids[[0, 1]] = ids[[1, 0]] if ids[0] != ids[1] else ids[[0, 2]]  # two sequences of shard 2 relabelled
    ids[0] = (ids[0] + 1) % 3
    np.save(path, ids)
    edited = m.model_copy(update={"files": {**m.files, path.name: file_entry(path)}}).seal()
    (folder / MANIFEST).write_text(edited.model_dump_json(indent=2))
    audit = audit_phase(folder)
    assert not audit["ok"] and audit["bad_shards"] == [2]


def test_same_bytes_for_one_and_three_tasks(tmp_path: Path) -> None:
    """The shard files and manifest do not depend on the task count: 1 task in-process and 3 datatrove tasks
    on the local executor (2 worker processes) write byte-identical files."""
    a = pack(tmp_path, "a", MIX3, tokens=1000, starts={}, shard_sequences=10)
    b = pack(tmp_path, "b", MIX3, tokens=1000, starts={}, shard_sequences=10, tasks=3, workers=2)
    assert len(a.shards) == 13 and a.files == b.files
    assert a.model_dump(exclude={"phase", "digest"}) == b.model_dump(exclude={"phase", "digest"})
    for name in a.files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted([*a.files, MANIFEST])
    assert not list(tmp_path.glob(".*"))  # no staging folder, no datatrove logs left behind


def test_phase_spanning_epochs_and_blocks_equals_materialized_reference(tmp_path: Path) -> None:
    """Multi-block sources read over several epochs and two phases: every sequence equals the window of the
    simply materialized ledger (blocks in block_order, documents in doc_order, epoch after epoch) at the
    position it records, and locate() names the document holding that token."""
    sources = {"a": block_source("a", 5, 1, 100), "b": block_source("b", 3, 2, 300)}
    supply = {s: int(src.train_block_counts()[1].sum()) for s, src in sources.items()}
    m1 = pack(tmp_path, "one", {"a": 0.6, "b": 0.4}, tokens=64 * L, starts={}, sources=sources,
              shard_sequences=7, max_repeat=20.0)
    starts = {s: e.ledger_end for s, e in m1.sources.items()}
    m2 = pack(tmp_path, "two", {"a": 0.3, "b": 0.7}, tokens=96 * L, starts=starts, index=1, sources=sources,
              shard_sequences=7, max_repeat=20.0)
    assert max(len(e.epochs_touched) for e in m2.sources.values()) >= 2
    for m, folder in ((m1, tmp_path / "one"), (m2, tmp_path / "two")):
        phase = open_phase(folder)
        for s, e in m.sources.items():
            ref, ref_docs = reference_stream(sources[s], 11, e.ledger_end // supply[s] + 2)
            rows = np.flatnonzero(np.asarray(phase.seq_source) == e.source_id)
            positions = phase.seq_position[rows]
            assert positions[0] == e.ledger_start and (np.diff(positions) == L).all()
            for i, p in zip(rows, positions, strict=True):
                assert (phase.tokens[i] == ref[p : p + L + 1]).all()
            for p in positions[:: max(1, len(positions) // 8)]:
                assert locate(sources[s], 11, int(p)) == (p // supply[s], ref_docs[p])


def test_each_sequence_holds_tokens_of_its_source_only(tmp_path: Path) -> None:
    """A sequence never mixes sources: all L+1 tokens come from the source its sidecar names, at the ledger
    position it records."""
    pack(tmp_path, "p", {"text": 0.5, "code": 0.5}, tokens=800, starts={}, shard_sequences=9)
    phase = open_phase(tmp_path / "p")
    srcs = toy_sources()
    for i in range(phase.manifest.num_sequences):
        name = phase.source_names[phase.seq_source[i]]
        expected = 100 * (["text", "code", "synth"].index(name) + 1)
        assert ((phase.tokens[i] // 100) * 100 == expected).all()
        pos = int(phase.seq_position[i])
        epoch, doc = locate(srcs[name], 11, pos)
        stream = srcs[name].epoch_stream(11, epoch)
        assert phase.tokens[i][0] == stream[pos - epoch * srcs[name].num_tokens]
        assert 0 <= doc < len(srcs[name].doc_ends)


def test_second_phase_continues_the_ledger(tmp_path: Path) -> None:
    """A later phase starts each source where the earlier one ended: no document is repeated before the
    source's first epoch is used up."""
    m1 = pack(tmp_path, "a", {"text": 0.5, "code": 0.5}, tokens=640, starts={})
    starts = {s: e.ledger_end for s, e in m1.sources.items()}
    m2 = pack(tmp_path, "b", {"text": 1.0}, tokens=320, starts=starts, index=1)
    assert m2.sources["text"].ledger_start == m1.sources["text"].ledger_end
    first = concatenated(tmp_path / "a", "position")[concatenated(tmp_path / "a", "source") == 0]
    second = concatenated(tmp_path / "b", "position")
    assert second.min() == first.max() + L


def test_impossible_mix_fails_before_writing(tmp_path: Path) -> None:
    """Asking a tiny source for more than max_repeat epochs raises and leaves no phase or staging folder."""
    with pytest.raises(MixtureError, match="synth"):
        pack(tmp_path, "p", {"text": 0.5, "synth": 0.5}, tokens=3000, starts={})
    assert not list(tmp_path.iterdir())


def killed_pack(tmp_path: Path, tasks: int) -> tuple[dict[str, TokenSource], PhaseManifest, Path]:
    """(sources, a clean pack of phase "clean", the staging of phase "p" whose pack died when source b's
    fourth block was read)."""
    sources = {"a": block_source("a", 6, 3, 100), "b": block_source("b", 4, 4, 300)}
    clean = pack(tmp_path, "clean", {"a": 0.5, "b": 0.5}, tokens=96 * L, starts={}, sources=sources,
                 shard_sequences=8, max_repeat=20.0)
    flaky = {"a": sources["a"], "b": BlockSource("b", sources["b"].blocks, fail_after=3)}
    with pytest.raises(OSError, match="simulated"):
        pack(tmp_path, "p", {"a": 0.5, "b": 0.5}, tokens=96 * L, starts={}, sources=flaky, shard_sequences=8,
             max_repeat=20.0, tasks=tasks)
    return sources, clean, tmp_path / ".p.partial"


def test_killed_pack_resumes_without_redoing_finished_shards(tmp_path: Path) -> None:
    """A shard task that dies leaves no phase folder (the loader refuses it) but keeps the shards finished
    before it; the rerun writes only the missing shards (finished files untouched: same inode and mtime) and
    gives the same bytes as an uninterrupted pack; a half-written temporary file of the killed task is not carried
    into the finished phase."""
    sources, clean, staging = killed_pack(tmp_path, tasks=3)
    assert not (tmp_path / "p").exists() and staging.is_dir()
    done = sorted(int(p.name[1:6]) for p in staging.glob(".*.done.json"))
    assert 0 < len(done) < len(clean.shards)
    before = {j: os.stat(staging / shard_files(j)["tokens"]) for j in done}
    (staging / f".{shard_files(len(clean.shards) - 1)['tokens']}.tmp-99999").write_bytes(b"half")  # a killed write
    resumed = pack(tmp_path, "p", {"a": 0.5, "b": 0.5}, tokens=96 * L, starts={}, sources=sources,
                   shard_sequences=8, max_repeat=20.0, tasks=3)
    for j, st in before.items():
        after = os.stat(tmp_path / "p" / shard_files(j)["tokens"])
        assert (after.st_ino, after.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert resumed.files == clean.files and not staging.exists()
    assert not list((tmp_path / "p").glob(".*.tmp-*")), "a killed task's half-written file reached the phase"


def test_failed_task_is_reported_by_the_executor(tmp_path: Path) -> None:
    """On datatrove's executor a failing shard task surfaces as an error and no phase folder appears."""
    sources = {"a": BlockSource("a", block_source("a", 4, 5).blocks, fail_after=0)}
    with pytest.raises((OSError, PackIncomplete)):
        pack(tmp_path, "p", {"a": 1.0}, tokens=32 * L, starts={}, sources=sources, shard_sequences=8,
             max_repeat=20.0, tasks=2, workers=2)
    assert not (tmp_path / "p").exists()


def test_loader_refuses_damaged_or_mismatched_folders(tmp_path: Path) -> None:
    """No manifest, a truncated or corrupted shard file, or a different tokenizer: each refused clearly."""
    pack(tmp_path, "p", {"text": 1.0}, tokens=320, starts={}, shard_sequences=4)
    with pytest.raises(PackedDataError, match="tokenizer"):
        open_phase(tmp_path / "p", tokenizer_hash="x" * 64)
    tokens = tmp_path / "p" / shard_files(1)["tokens"]
    raw = bytearray(tokens.read_bytes())
    raw[-1] ^= 0xFF
    tokens.write_bytes(bytes(raw))
    with pytest.raises(PackedDataError, match="checksum"):
        open_phase(tmp_path / "p")
    tokens.write_bytes(bytes(raw[:-2]))
    with pytest.raises(PackedDataError, match="expected"):
        open_phase(tmp_path / "p")
    tokens.unlink()
    with pytest.raises(PackedDataError, match="missing"):
        open_phase(tmp_path / "p")
    (tmp_path / "p" / "manifest.json").unlink()
    with pytest.raises(PackedDataError, match="no manifest.json"):
        open_phase(tmp_path / "p")


def test_loader_resume_and_rank_shards(tmp_path: Path) -> None:
    """Resuming from a saved state yields exactly the remaining batches; the ranks' slices of a step
    concatenate to that step's global batch."""
    pack(tmp_path, "p", {"text": 0.6, "code": 0.4}, tokens=2000, starts={}, shard_sequences=6)
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


def test_loader_straddling_shards_equals_the_concatenated_stream(tmp_path: Path) -> None:
    """With shards of 7 sequences and batches of 4, batches straddle shard boundaries; every batch, every rank
    slice, single rows, strided and fancy indexing equal the concatenation of the shard files."""
    pack(tmp_path, "p", MIX3, tokens=1200, starts={}, shard_sequences=7)
    phase = open_phase(tmp_path / "p")
    want = concatenated(tmp_path / "p", "tokens").astype(np.int64)
    batches = list(SequenceLoader(phase, B))
    assert any((s * B) // 7 != (s * B + B - 1) // 7 for s in range(len(batches)))  # some batch straddles
    assert (np.concatenate([b.numpy() for b in batches]) == want[: len(batches) * B]).all()
    for r in range(2):
        for s, b in enumerate(SequenceLoader(phase, B, rank=r, world_size=2)):
            assert (b.numpy() == want[s * B + r * 2 : s * B + r * 2 + 2]).all()
    idx = np.array([0, 6, 7, 20, 13, len(want) - 1])
    assert (phase.tokens[idx] == want[idx]).all() and (phase.tokens[5:30:3] == want[5:30:3]).all()
    assert (phase.tokens[3:19, :2] == want[3:19, :2]).all() and (phase.tokens[-1] == want[-1]).all()
    assert (np.asarray(phase.seq_source) == concatenated(tmp_path / "p", "source")).all()


def test_same_inputs_same_bytes(tmp_path: Path) -> None:
    """Packing is deterministic: the same inputs give byte-identical files."""
    a = pack(tmp_path, "a", MIX3, tokens=900, starts={})
    b = pack(tmp_path, "b", MIX3, tokens=900, starts={})
    assert {k: v.xxh64 for k, v in a.files.items()} == {k: v.xxh64 for k, v in b.files.items()}


# ------------------------------------------------------------------------------- fast paths (issue 13: pack speed)


def test_read_windows_equals_windows_of_read_ledger() -> None:
    """read_windows, compiled or numpy, writes into the given rows exactly the windows of the ledger stream that
    read_ledger materializes, for random block sources, starts crossing blocks and epochs, seq_len down to 1,
    both dtype casts, scattered rows, and a block table carried from one call to the next."""
    from mixlab.pack.blockorder import windows
    from mixlab.pack.source import layout_of, read_ledger, read_windows

    rng = np.random.default_rng(7)
    for trial in range(60):
        src = block_source("s", int(rng.integers(1, 6)), trial, base=int(rng.integers(0, 60_000)))
        layout = layout_of(src)
        seq_len = int(rng.integers(1, 30))
        n = int(rng.integers(1, 25))
        p = int(rng.integers(0, 3 * layout.num_tokens))
        dtype = (np.uint16, np.uint32)[trial % 2]
        want = windows(read_ledger(src, layout, 5, p, p + n * seq_len + 1), seq_len).astype(dtype)
        rows = rng.permutation(n + 7)[:n].astype(np.int64)
        for jit in (True, False):
            out = np.zeros((n + 7, seq_len + 1), dtype=dtype)
            tables: dict = {}
            half = n // 2  # two calls, the second continuing where the first stopped, sharing the table
            read_windows(src, layout, 5, p, seq_len, out, rows[:half], tables, jit=jit)
            read_windows(src, layout, 5, p + half * seq_len, seq_len, out, rows[half:], tables, jit=jit)
            assert np.array_equal(out[rows], want), (trial, jit)
            untouched = np.setdiff1d(np.arange(n + 7), rows)
            assert not out[untouched].any(), (trial, jit)


def test_numpy_gather_equals_compiled_gather_for_any_join_size() -> None:
    """_scatter_np joins pieces a chunk at a time; for every chunk size (down to one token, so that joins end
    inside windows, on window edges and on the shared last token) it stores what the compiled _scatter stores."""
    from mixlab.pack.source import _scatter, _scatter_np

    rng = np.random.default_rng(3)
    for trial in range(300):
        seq_len, n_win = int(rng.integers(1, 20)), int(rng.integers(1, 12))
        at = int(rng.integers(0, n_win * seq_len + 1))
        lengths, left = [], n_win * seq_len + 1 - at
        while left > 0:
            lengths.append(int(min(left, rng.integers(1, 3 * seq_len + 2))))
            left -= lengths[-1]
        length = np.array(lengths, dtype=np.int64)
        block = rng.integers(0, 70_000, int(length.sum()) + 50).astype(np.uint32)
        local = rng.integers(0, 50, len(length)).astype(np.int64)
        rows = rng.permutation(n_win + 3)[:n_win].astype(np.int64)
        a = np.zeros((n_win + 3, seq_len + 1), dtype=np.uint16)
        b = a.copy()
        _scatter(block, local, length, at, a, rows, seq_len)
        _scatter_np(block, local, length, at, b, rows, seq_len, chunk=int(rng.integers(1, 40)))
        assert np.array_equal(a, b), trial


def test_python_and_compiled_interleave_agree() -> None:
    """The interleave's Python runner (small phases, no numba start-up) gives the compiled runner's checkpoints
    and chunks, and both give interleave(counts), for random counts (1-8 sources, zeros, skew) and shard sizes."""
    import mixlab.pack.order as order_module
    from mixlab.pack.interleave import interleave
    from mixlab.pack.order import interleave_checkpoints, interleave_chunk, shard_bounds, state_at

    rng = np.random.default_rng(11)
    for trial in range(150):
        counts = [int(c) for c in rng.integers(0, 400, int(rng.integers(1, 9)))]
        counts[0] += 1 + (4000 if trial % 5 == 0 else 0)
        full = interleave(counts)
        bounds = shard_bounds(sum(counts), int(rng.integers(1, 300)))
        fast, slow = (interleave_checkpoints(counts, bounds, jit=jit) for jit in (True, False))
        assert np.array_equal(fast, slow), trial
        order_module._LAST_ORDER.clear()  # the Python runner itself, not the order it stored, gives the chunks
        for j in range(len(bounds) - 1):
            size = int(bounds[j + 1] - bounds[j])
            (o1, s1), (o2, s2) = (interleave_chunk(counts, state_at(fast[j]), size, jit=jit) for jit in (True, False))
            assert np.array_equal(o1, full[bounds[j] : bounds[j + 1]]) and np.array_equal(o1, o2), (trial, j)
            assert s1 == s2 == state_at(fast[j + 1])


def test_deadline_order_runner_is_the_rule() -> None:
    """The numpy runner (the deadline order where it holds, the rule's Python statements where it stops) gives the
    compiled rule's ids, final counts and snapshots for phases it runs whole in the deadline order (two sources,
    equal counts: ties broken by source id), ones where it stops early (3-8 skewed sources), counts with zeros and
    one source, started mid-phase and with bounds on every side of its windows."""
    import mixlab.pack.order as order_module

    rng = np.random.default_rng(21)
    cases = [[16900, 16300], [3000] * 8, [7, 0, 7], [1], [2, 1], [20000, 9000, 4000], [5000, 1]]
    cases += [[int(c) for c in rng.integers(0, 3000, int(rng.integers(2, 9)))] for _ in range(30)]
    cases += [[int(c) + 1 for c in rng.integers(0, 30000, 2)] for _ in range(10)]
    stopped = whole = 0
    for trial, counts in enumerate(cases):
        counts[0] += 1
        cnt, k = np.array(counts, dtype=np.int64), len(counts)
        total = int(cnt.sum())
        start = int(rng.integers(0, total))  # a mid-phase state: the rule's counts before `start`
        prefix = np.zeros(k, dtype=np.int64)
        order_module._run(cnt, prefix, start, np.empty(0, np.uint8), False, np.zeros(0, np.int64),
                          np.zeros((0, k), np.int64))
        n = total - start
        bounds = np.unique(np.concatenate([rng.integers(start, total + 1, 12), [start, start + 512, start + 513,
                                                                                   start + 1536, total]]))
        runs = {}
        for name in ("_run", "_run_np", "_run_py"):
            taken, out = prefix.copy(), np.empty(n, np.uint8)
            snaps = np.full((len(bounds), k), -1, dtype=np.int64)
            getattr(order_module, name)(cnt, taken, n, out, True, bounds, snaps)
            runs[name] = (out, taken, snaps)
        for name in ("_run_np", "_run_py"):
            assert all(np.array_equal(a, b) for a, b in zip(runs[name], runs["_run"], strict=True)), (trial, name)
        taken, snaps = prefix.copy(), np.full((len(bounds), k), -1, dtype=np.int64)  # checkpoints only
        order_module._run_np(cnt, taken, n, np.empty(0, np.uint8), False, bounds, snaps)
        assert np.array_equal(snaps, runs["_run"][2]) and np.array_equal(taken, runs["_run"][1]), trial
        mu = 1.0 / (2 * k - 2) if k > 1 else 0.0
        steps = order_module._sorted_steps(cnt, prefix.copy(), n, total, mu, int(np.ceil(mu * total - 1e-9 * total)),
                                           start)
        whole += len(steps) == n
        stopped += len(steps) < n
    assert whole >= 10 and stopped >= 10, (whole, stopped)  # both paths of the runner were exercised


def test_compiled_and_numpy_phases_are_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A phase packed with the compiled kernels, one packed without numba (the small-phase path), and both again
    with token rows written a few rows at a time (chunks ending mid-shard, 1 to 4 rows) are the same files, byte
    for byte, and every shard file is exactly what np.save writes for the array it holds."""
    import io

    import mixlab.pack.writer as writer
    import mixlab.workspace as workspace

    sources = {"a": block_source("a", 5, 21, 100), "b": block_source("b", 3, 22, 300)}
    phases = {}
    claimed: list[int] = []  # the sizes of the regions rows were built in
    real_claim = workspace.BlockWriter.claim
    monkeypatch.setattr(workspace.BlockWriter, "claim", lambda self, n: claimed.append(n) or real_claim(self, n))
    for name, jit, rows in (("compiled", True, 0), ("numpy", False, 0), ("compiled-rows", True, 3),
                            ("numpy-rows", False, 4), ("numpy-row", False, 1)):
        monkeypatch.setattr(writer, "JIT_MIN_STEPS", 0 if jit else 1 << 62)
        monkeypatch.setattr(writer, "jit_started", lambda: False)
        # rows are built a writer block at a time, in place: blocks of a few rows end chunks mid-shard
        monkeypatch.setattr(workspace, "BLOCK_BYTES", rows * (L + 1) * 2 or 1 << 23)
        claimed.clear()
        phases[name] = pack(tmp_path, name, {"a": 0.55, "b": 0.45}, tokens=120 * L, starts={"b": 3},
                            sources=sources, shard_sequences=9, max_repeat=30.0)
        assert claimed and (not rows or max(claimed) <= rows * (L + 1) * 2), (name, claimed[:4])
    assert all(m.files == phases["compiled"].files for m in phases.values())
    for f in phases["compiled"].files:
        data = (tmp_path / "compiled" / f).read_bytes()
        assert all((tmp_path / name / f).read_bytes() == data for name in phases)
        buf = io.BytesIO()
        np.save(buf, np.load(tmp_path / "compiled" / f))
        assert buf.getvalue() == data, f
    for shape, dtype in (((0, 9), np.uint16), ((3,), np.uint8), ((3001, 2049), np.uint16), ((12, 5), np.uint32)):
        arr = np.zeros(shape, dtype=dtype)
        buf = io.BytesIO()
        np.save(buf, arr)
        header = writer.npy_header(arr.shape, arr.dtype)
        assert buf.getvalue() == header + arr.tobytes(), (shape, dtype)


def test_resumed_pack_rewrites_a_finished_shard_whose_bytes_changed(tmp_path: Path) -> None:
    """Shard files are not fsynced, so a resumed pack re-hashes the shards it would keep: one whose tokens were
    damaged after its marker was written (same size) is written again, and the phase equals a clean pack."""
    sources, clean, staging = killed_pack(tmp_path, tasks=1)
    done = sorted(int(p.name[1:6]) for p in staging.glob(".*.done.json"))
    assert done
    damaged = staging / shard_files(done[0])["tokens"]
    raw = bytearray(damaged.read_bytes())
    raw[-1] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    resumed = pack(tmp_path, "p", {"a": 0.5, "b": 0.5}, tokens=96 * L, starts={}, sources=sources,
                   shard_sequences=8, max_repeat=20.0)
    assert resumed.files == clean.files
    assert (tmp_path / "p" / damaged.name).read_bytes() == (tmp_path / "clean" / damaged.name).read_bytes()


def test_token_set_block_files_open_as_np_load_reads_them(tmp_path: Path) -> None:
    """mixlab.shards opens a block's .npy files from the header the manifest implies: the arrays equal np.load's
    (tokens read-only); a file with another header (format 2.0, or another byte order) is read by np.load; a short
    file is refused."""
    from mixlab.shards import _open_block_file

    tokens = np.arange(1000, dtype=np.uint32) * 97
    lengths = np.array([3, 997], dtype=np.int64)
    np.save(tmp_path / "t.npy", tokens)
    np.save(tmp_path / "l.npy", lengths)
    got = _open_block_file(tmp_path / "t.npy", np.dtype(np.uint32), 1000, mmap=True)
    assert np.array_equal(got, tokens) and got.dtype == np.uint32 and not got.flags.writeable
    got = _open_block_file(tmp_path / "l.npy", np.dtype(np.int64), 2, mmap=False)
    assert np.array_equal(got, lengths) and got.dtype == np.int64
    with open(tmp_path / "v2.npy", "wb") as f:
        np.lib.format.write_array(f, tokens, version=(2, 0))
    assert np.array_equal(_open_block_file(tmp_path / "v2.npy", np.dtype(np.uint32), 1000, mmap=True), tokens)
    np.save(tmp_path / "be.npy", tokens.astype(">u4"))  # same header length and size, other byte order
    got = _open_block_file(tmp_path / "be.npy", np.dtype(np.uint32), 1000, mmap=True)
    assert np.array_equal(got, tokens) and got.dtype == np.dtype(">u4")
    (tmp_path / "short.npy").write_bytes((tmp_path / "t.npy").read_bytes()[:-4])
    with pytest.raises(ValueError):
        _open_block_file(tmp_path / "short.npy", np.dtype(np.uint32), 1000, mmap=True)


def test_pack_imports_without_numba_and_compiles_on_first_use() -> None:
    """Importing the pack stack does not import numba (a small phase never pays its ~0.3 s import); a compiled
    runner compiles on its first call, rebinds its module's kernels so they can call one another, and returns
    what the Python statement of the same rule returns."""
    code = (
        "import sys\n"
        "import mixlab.pack.writer, mixlab.pack.order as order\n"
        "assert 'numba' not in sys.modules, 'pack imported numba'\n"
        "assert not order.jit_started()\n"
        "from mixlab.pack.order import interleave_checkpoints, shard_bounds\n"
        "bounds = shard_bounds(700, 64)\n"
        "fast = interleave_checkpoints([300, 400], bounds, jit=True)\n"
        "assert 'numba' in sys.modules and order.jit_started()\n"
        "assert type(order._run).__name__ != '_LazyJit', 'kernel not rebound after compiling'\n"
        "slow = interleave_checkpoints([300, 400], bounds, jit=False)\n"
        "assert (fast == slow).all()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_writes_in_pieces_are_the_buffers_bytes() -> None:
    """``write_in_pieces`` (large buffers issued 256 KiB at a time) writes exactly the buffer's bytes, for sizes
    on, around and far from the piece boundary and for arrays of any dtype and byte order."""
    import io

    from mixlab.workspace import WRITE_PIECE_BYTES, write_in_pieces

    rng = np.random.default_rng(5)
    for n_bytes in (0, 1, WRITE_PIECE_BYTES - 4, WRITE_PIECE_BYTES, WRITE_PIECE_BYTES + 4, 3 * WRITE_PIECE_BYTES + 8):
        for dtype in ("<u4", ">u4", "<u2", "u1"):
            arr = rng.integers(0, 60000, n_bytes // np.dtype(dtype).itemsize).astype(dtype)
            f = io.BytesIO()
            write_in_pieces(f, arr)
            assert f.getvalue() == arr.tobytes(), (n_bytes, dtype)
        f = io.BytesIO()
        write_in_pieces(f, bytes(range(256)) * (n_bytes // 256))
        assert f.getvalue() == bytes(range(256)) * (n_bytes // 256)


def test_chunks_sliced_from_the_stored_order_equal_the_rule_run_again() -> None:
    """A small phase's order, stored by interleave_checkpoints, gives every shard's chunk and the state after it
    exactly as running the rule from that shard's checkpoint does; a state that is not on the order's path (a
    valid count that no prefix has) is not answered from the stored order."""
    import mixlab.pack.order as order_module
    from mixlab.pack.order import (
        InterleaveState,
        interleave_checkpoints,
        interleave_chunk,
        shard_bounds,
        state_at,
    )

    rng = np.random.default_rng(3)
    for trial in range(40):
        counts = [int(c) + 1 for c in rng.integers(0, 300, int(rng.integers(1, 6)))]
        bounds = shard_bounds(sum(counts), int(rng.integers(1, 200)))
        checkpoints = interleave_checkpoints(counts, bounds, jit=False)
        assert order_module._LAST_ORDER and order_module._LAST_ORDER[0][0] == tuple(counts), trial
        for j in range(len(bounds) - 1):
            size = int(bounds[j + 1] - bounds[j])
            sliced = interleave_chunk(counts, state_at(checkpoints[j]), size, jit=False)
            rerun = interleave_chunk(counts, state_at(checkpoints[j]), size, jit=True)
            assert np.array_equal(sliced[0], rerun[0]) and sliced[1] == rerun[1], (trial, j)
    counts = [5, 5]
    interleave_checkpoints(counts, shard_bounds(10, 4), jit=False)
    off_path = InterleaveState(2, (2, 0))  # the rule alternates: no prefix of length 2 holds two of source 0
    assert order_module._cached_order(np.array(counts), np.array([2, 0]), 2) is None
    assert order_module._cached_order(np.array(counts), np.array([4, 0]), 4) is None  # a bound, off the path
    assert order_module._cached_order(np.array(counts), np.array([2, 2]), 4) is not None  # the path's own counts
    order, after = interleave_chunk(counts, off_path, 3, jit=False)
    order_module._LAST_ORDER.clear()
    assert np.array_equal(order, interleave_chunk(counts, off_path, 3, jit=False)[0])
    assert after == interleave_chunk(counts, off_path, 3, jit=False)[1]


def test_slicing_the_stored_order_takes_memory_of_the_chunk_not_of_its_position() -> None:
    """Invariant (bounded memory at every shard): answering a shard from the order interleave_checkpoints stored
    allocates O(shard), never O(position): the last shard of a long phase must not recount the whole prefix (a
    bincount of it, int64, once added 2.6 MB to the peak RSS of x1000's last shard)."""
    import tracemalloc

    import mixlab.pack.order as order_module
    from mixlab.pack.order import interleave_checkpoints, interleave_chunk, state_at

    counts = [250_000, 150_000]
    bounds = np.array([0, 200_000, 399_000, 400_000], dtype=np.int64)  # a last shard of 1,000 at 399,000
    checkpoints = interleave_checkpoints(counts, bounds, jit=False)
    assert order_module._LAST_ORDER, "the order of a phase below JIT_MIN_STEPS is stored"
    tracemalloc.start()
    try:
        order, after = interleave_chunk(counts, state_at(checkpoints[2]), 1_000, jit=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    order_module._LAST_ORDER.clear()
    assert after.taken == tuple(int(c) for c in checkpoints[3])
    assert np.array_equal(order, interleave_chunk(counts, state_at(checkpoints[2]), 1_000, jit=False)[0])
    assert peak < 64 * 1024, f"{peak:,} bytes traced to slice 1,000 ids at position 399,000"


@pytest.mark.parametrize("block", [8192, 1 << 22])
def test_direct_writer_writes_the_same_bytes(tmp_path: Path, block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """BlockWriter (O_DIRECT in aligned blocks, the partial last block through the page cache) leaves exactly
    the bytes written, and its xxh64 is theirs, for pieces of any size crossing block boundaries, on a filesystem
    that takes O_DIRECT, falling back to the page cache on one that does not (tmpfs), and asked for the page cache;
    a phase packed with it equals one without."""
    import xxhash

    import mixlab.workspace as workspace

    monkeypatch.setattr(workspace, "BLOCK_BYTES", block)
    rng = np.random.default_rng(block)
    pieces = [rng.integers(0, 256, int(n), dtype=np.uint8) for n in (128, 1, 8191, 8192, 8193, 3 * block + 5, 0, 77)]
    expected = b"".join(p.tobytes() for p in pieces)
    real_open = os.open

    def refuse_direct(path: str, flags: int, mode: int = 0o777) -> int:  # a filesystem without O_DIRECT
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(22, "Invalid argument")
        return real_open(path, flags, mode)

    for mode in ("direct", "refused", "cached"):
        if mode == "refused":
            monkeypatch.setattr(workspace.os, "open", refuse_direct)
        path = tmp_path / f"direct-{mode}.bin"
        # later files (their writers reuse the first one's blocks) hold other bytes: nothing stale may leak
        order = pieces if mode == "direct" else [p[::-1].copy() for p in reversed(pieces)]
        if mode == "cached":
            order = [p ^ 0x5A for p in order]
        with workspace.BlockWriter(path, direct=mode != "cached") as w:
            for p in order:
                w.write(p)
        monkeypatch.setattr(workspace.os, "open", real_open)
        data = path.read_bytes()
        assert data == b"".join(p.tobytes() for p in order) and w.size == len(expected), mode
        assert w.hexdigest() == xxhash.xxh64(data).hexdigest(), mode
        # whole aligned blocks direct where the filesystem takes O_DIRECT (ext4, tmpfs since Linux 6.6), less than
        # a block left to the page cache; nothing direct where refused or not asked for
        unit, left = workspace.DIRECT_ALIGN, len(expected) - w.direct_bytes
        assert w.direct_bytes == 0 if mode != "direct" else (w.direct_bytes % unit == 0 and left < block + unit
                                                              or w.direct_bytes == 0), mode

    # regions claimed and filled in place, between copied writes, across blocks: the bytes in the order given
    path, written = tmp_path / "claimed.bin", []
    with workspace.BlockWriter(path) as w:
        for n in (128, 5000, 3000, block, 7, block + 1, 4093, 2 * block, 1):
            region = w.claim(n)
            data = rng.integers(0, 256, n, dtype=np.uint8)
            if region is None:  # larger than a block can take after a carried tail: written by copy
                assert n + workspace.DIRECT_ALIGN > block + workspace.DIRECT_ALIGN
                w.write(data)
            else:
                filled = np.frombuffer(region, dtype=np.uint8)
                filled[:] = data
                w.write(filled)
            written.append(data.tobytes())
            w.write(bytes([n % 251]))  # a copied byte between claims: claims start at unaligned offsets
            written.append(bytes([n % 251]))
    assert path.read_bytes() == b"".join(written) and w.hexdigest() == xxhash.xxh64(b"".join(written)).hexdigest()

    sources = {"a": block_source("a", 5, 21, 100), "b": block_source("b", 3, 22, 300)}
    phases = {}
    for name in ("direct", "cached"):  # token files through O_DIRECT, and where a filesystem refuses it
        if name == "cached":
            monkeypatch.setattr(workspace.os, "open", refuse_direct)
        phases[name] = pack(tmp_path, name, {"a": 0.55, "b": 0.45}, tokens=700 * L, starts={"b": 3},
                            sources=sources, shard_sequences=600, max_repeat=30.0)  # shard 0: 10.8 KB of tokens
        monkeypatch.setattr(workspace.os, "open", real_open)
    assert phases["direct"].files == phases["cached"].files
    for f in phases["direct"].files:
        assert (tmp_path / "direct" / f).read_bytes() == (tmp_path / "cached" / f).read_bytes(), f
