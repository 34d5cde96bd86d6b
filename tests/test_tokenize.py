"""Tokenize as a datatrove pipeline: token shard sets that are identical for any task/worker count, resumable,
bounded in memory by block size, split train/held-out per document, and verified by digest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import zstandard

from mixlab.errors import CorruptOutputError
from mixlab.jsonl import JsonlError
from mixlab.shards import EncodingRef, TokenShardSet, block_file, doc_key, heldout_threshold
from mixlab.tokenize_steps import tokenize_source
from mixlab.tokenizer import encode_document, named_encoding, tokenizer_info

TEXTS = [
    "The quick brown fox jumps over the lazy dog. ",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 40))\n",
    "Über naïve café — 東京 1234567 tokens! ",
    "for (int i = 0; i < n; ++i) { total += values[i]; }\n",
]
REF = EncodingRef(tokenizer_info(named_encoding("cl100k_base"), "tiktoken"))
BLOCK = 300  # tokens: several blocks per input file


def doc(f: int, i: int) -> dict[str, str]:
    return {"id": f"f{f}-d{i}", "text": TEXTS[(f + i) % 4] * (1 + (i * 7) % 5) + f"#{f}.{i}"}


def write_file(folder: Path, f: int, docs: list[dict[str, str]], tail: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = "\n".join(json.dumps(d) for d in docs) + tail
    (folder / f"{f:05d}.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(body.encode()))


def write_corpus(folder: Path, files: int = 5, per_file: int = 30) -> list[dict[str, str]]:
    out = []
    for f in range(files):
        docs = [doc(f, i) for i in range(per_file)]
        write_file(folder, f, docs)
        out += docs
    return out


def tokenize(docs: Path, out: Path, **kw) -> TokenShardSet:
    kw = {"source": "text", "seed": 3, "heldout_fraction": 0.2, "block_tokens": BLOCK, **kw}
    return tokenize_source(docs, out, REF, **kw)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def block_ids(s: TokenShardSet, split: str) -> list[str]:
    return [i for b in s.blocks(split) for i in pq.read_table(s.path / block_file(b.name, split, "docs.parquet"))
            .column("id").to_pylist()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]], TokenShardSet]:
    root = tmp_path_factory.mktemp("tokenize")
    docs = write_corpus(root / "docs")
    return root, docs, tokenize(root / "docs", root / "one", tasks=1, workers=1)


def test_same_bytes_for_any_task_and_worker_count(corpus) -> None:
    """1 task, 3 tasks on 1 worker and 3 tasks on 2 worker processes write identical files, byte for byte
    (blocks are named by input file and chunk, never by task rank), including the sealed manifest."""
    root, _, one = corpus
    reference = folder_bytes(one.path)
    assert one.manifest.train_blocks > 5  # several blocks, so the layout is really exercised
    for name, tasks, workers in (("three", 3, 1), ("three-w2", 3, 2)):
        other = tokenize(root / "docs", root / name, tasks=tasks, workers=workers)
        assert folder_bytes(other.path) == reference, name
    assert not list(root.glob(".*.build"))  # build folders are removed once the set is in place


def test_blocks_roll_over_at_block_tokens_and_hold_every_document_with_eos(corpus) -> None:
    """Memory is bounded by the block buffer: a block is closed by the first document that brings it to
    ``block_tokens`` (so no block but a file's last is below it, and none exceeds it by more than that one
    document); concatenated in block order, the blocks hold every document of every file, in file order, as
    ``encode_document`` ids followed by EOS = TokenizerInfo.eos_id = 100257 for cl100k_base."""
    _, docs, one = corpus
    enc = named_encoding("cl100k_base")
    assert one.tokenizer.eos_id == enc.eot_token == 100257
    by_id = {d["id"]: d["text"] for d in docs}
    for split in ("train", "heldout"):
        blocks = one.blocks(split)
        for i, b in enumerate(blocks):
            tokens, lengths = one.block(split, i)
            assert tokens.dtype == np.uint32 and lengths.dtype == np.int64
            assert (len(tokens), len(lengths), int(lengths.sum())) == (b.tokens, b.documents, b.tokens)
            assert (tokens[np.cumsum(lengths) - 1] == 100257).all()
            last_of_file = i + 1 == len(blocks) or blocks[i + 1].name[:5] != b.name[:5]
            assert b.tokens - lengths[-1] < BLOCK
            assert last_of_file or b.tokens >= BLOCK
            ids = pq.read_table(one.path / block_file(b.name, split, "docs.parquet")).column("id").to_pylist()
            expected = [encode_document(enc, by_id[d]) + [100257] for d in ids]
            assert tokens.tolist() == [t for e in expected for t in e]
    ids = block_ids(one, "train") + block_ids(one, "heldout")
    assert sorted(ids) == sorted(by_id) and len(ids) == one.manifest.documents == len(docs)
    order = {d["id"]: n for n, d in enumerate(docs)}
    train = [order[i] for i in block_ids(one, "train")]
    assert train == sorted(train)  # file order kept across a file's chunks and across files


def test_heldout_is_decided_per_document(corpus, tmp_path: Path) -> None:
    """A document is held out iff xxh64(id, seed) < fraction * 2**64: adding a file of new documents changes
    no other document's split, and the held-out documents sit in the heldout blocks only."""
    root, docs, one = corpus
    threshold = heldout_threshold(0.2)
    held = set(block_ids(one, "heldout"))
    assert held == {d["id"] for d in docs if doc_key(d["id"], 3) < threshold}
    assert 0 < len(held) < len(docs) and one.manifest.heldout_documents == len(held)
    bigger = tmp_path / "docs"
    write_corpus(bigger)
    write_file(bigger, 5, [doc(5, i) for i in range(40)])
    grown = tokenize(bigger, tmp_path / "grown")
    assert set(block_ids(grown, "heldout")) & {d["id"] for d in docs} == held
    assert grown.manifest.documents == len(docs) + 40


def test_killed_task_is_resumed_without_redoing_finished_tasks(tmp_path: Path) -> None:
    """A task that dies mid-way (here: its second file ends in a damaged line after some blocks were written)
    fails the run; the rerun skips the task datatrove marked complete (its block files untouched), redoes the
    rest, drops the dead task's temporary files and any block file no record names, and gives the same bytes as a run that never failed."""
    docs = tmp_path / "docs"
    write_corpus(docs)
    write_file(docs, 4, [doc(4, i) for i in range(30)], tail="\n{not json")  # rank 1 of 3: files 1 and 4
    with pytest.raises(JsonlError, match="00004.jsonl.zst"):
        tokenize(docs, tmp_path / "out", tasks=3, workers=1)
    build = tmp_path / ".out.build"
    assert sorted(os.listdir(build / "logs" / "completions")) == ["00000"]
    assert list((build / "index").glob("00001-*")) and not list((build / "index").glob("00002-*"))
    rank0 = {p: p.stat().st_mtime_ns for p in (build / "blocks").iterdir() if p.name[:5] in ("00000", "00003")}
    assert rank0
    (build / "blocks" / ".00004-0000.train.tokens.npy.tmp-99").write_bytes(b"partial")  # a killed write
    (build / "blocks" / "00099-0000.train.tokens.npy").write_bytes(b"no record")  # renamed, then killed
    write_file(docs, 4, [doc(4, i) for i in range(30)])  # the cause of the failure is gone
    resumed = tokenize(docs, tmp_path / "out", tasks=3, workers=1)
    assert {p.name: m for p, m in rank0.items()} == {
        p.name: p.stat().st_mtime_ns for p in resumed.path.iterdir() if p.name[:5] in ("00000", "00003")}
    clean = tokenize(docs, tmp_path / "clean", tasks=1)
    assert folder_bytes(resumed.path) == folder_bytes(clean.path)
    assert resumed.problems() == [] and not build.exists()


def test_digests_are_verified(corpus, tmp_path: Path) -> None:
    """Every file is recorded with its size and xxh64 in a self-sealed manifest: a flipped byte in a block is
    named by ``problems()`` and refused by ``verified()``; an edited manifest field is refused on read."""
    root, _, one = corpus
    assert one.problems() == [] and one.verified() is one
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, data in folder_bytes(one.path).items():
        (copy / name).write_bytes(data)
    victim = copy / block_file(one.blocks("train")[1].name, "train", "tokens.npy")
    data = bytearray(victim.read_bytes())
    data[-3] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert any(victim.name in p for p in TokenShardSet(copy).problems())
    with pytest.raises(CorruptOutputError, match=victim.name):
        TokenShardSet(copy).verified()
    edited = json.loads((one.path / "manifest.json").read_text())
    edited["train_tokens"] += 1
    (copy / "manifest.json").write_text(json.dumps(edited))
    with pytest.raises(CorruptOutputError, match="differs from its recorded digest"):
        _ = TokenShardSet(copy).manifest


def test_block_index_is_checked_and_the_manifest_does_not_grow_with_blocks(corpus, tmp_path: Path) -> None:
    """The blocks and every file's digest live in ``blocks.npy``, so ``manifest.json`` has the same size for 5 or
    20+ blocks; the index is refused when damaged, when its rows leave (file, chunk) order even with a consistent
    seal, and a manifest of the previous format (blocks listed in the JSON) is refused with the fix."""
    from mixlab.sealed import FileEntry
    from mixlab.shards import INDEX, read_index
    from mixlab.workspace import digest

    root, _, one = corpus
    coarse = tokenize(root / "docs", tmp_path / "coarse", block_tokens=10**6)  # one block per input file
    assert coarse.manifest.train_blocks == 5 and one.manifest.train_blocks >= 4 * coarse.manifest.train_blocks
    sizes = {len((s.path / "manifest.json").read_text()) for s in (one, coarse)}
    assert max(sizes) - min(sizes) <= 8, sizes  # only digits of the totals differ
    rows = one.index
    assert [b.name for b in one.blocks("train")] == sorted(b.name for b in one.blocks("train"))
    assert int(rows["tokens_file"]["bytes"].sum()) + int(rows["lengths_file"]["bytes"].sum()) + int(
        rows["docs_file"]["bytes"].sum()) == sum(p.stat().st_size for p in one.path.iterdir()
                                                 if p.name not in ("manifest.json", INDEX))

    def copy_of(name: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for file, data in folder_bytes(one.path).items():
            (folder / file).write_bytes(data)
        return folder

    flipped = copy_of("flipped")
    data = bytearray((flipped / INDEX).read_bytes())
    data[-5] ^= 0xFF
    (flipped / INDEX).write_bytes(bytes(data))
    assert any(INDEX in p for p in TokenShardSet(flipped).problems())

    swapped = copy_of("swapped")  # two training rows exchanged, the index and the manifest resealed
    index = np.load(swapped / INDEX)
    index[[0, 1]] = index[[1, 0]]
    np.save(swapped / INDEX, index)
    m = one.manifest.model_copy(update={"index": FileEntry(bytes=(swapped / INDEX).stat().st_size,
                                                           xxh64=digest(swapped / INDEX))}).seal()
    (swapped / "manifest.json").write_text(m.model_dump_json(indent=2))
    with pytest.raises(CorruptOutputError, match="train rows disagree"):
        read_index(swapped, m)
    assert TokenShardSet(swapped).problems() and "re-run" in TokenShardSet(swapped).problems()[0]

    older = copy_of("older")
    (older / "manifest.json").write_text(
        json.dumps({**json.loads((one.path / "manifest.json").read_text()), "format_version": 1}))
    with pytest.raises(CorruptOutputError, match="re-run the recipe"):
        TokenShardSet(older).verified()


def test_block_counts_and_bounded_heldout_sequences(corpus) -> None:
    """``train_block_counts`` lists (documents, tokens) per training block in block order, summing to the
    manifest's totals; ``heldout_sequences`` returns consecutive [L+1] windows (stride L) of the held-out
    stream, at most ``max_sequences``, reading only what it returns."""
    _, _, one = corpus
    docs, tokens = one.train_block_counts()
    m = one.manifest
    assert docs.dtype == tokens.dtype == np.int64
    assert (int(docs.sum()), int(tokens.sum())) == (m.train_documents, m.train_tokens)
    held = np.concatenate([np.asarray(one.block("heldout", i)[0]) for i in range(m.heldout_blocks)])
    seqs = one.heldout_sequences(seq_len=16, max_sequences=3)
    assert seqs.shape == (3, 17)
    for i in range(3):
        assert seqs[i].tolist() == held[i * 16 : i * 16 + 17].tolist()
    everything = one.heldout_sequences(seq_len=16, max_sequences=10**6)
    assert len(everything) == (len(held) - 1) // 16


def test_block_files_open_directly_or_through_np_load(tmp_path: Path) -> None:
    """A block file with exactly the header and size its manifest entry implies is memory-mapped (tokens) or read
    (lengths) directly, with ``np.load``'s values; any other ``.npy`` goes to ``np.load``: a big-endian copy reads
    as the same values, a truncated file is refused, a zero-length block is empty."""
    from mixlab.shards import _open_block_file

    values = np.arange(1000, dtype=np.uint32) * 7
    np.save(tmp_path / "plain.npy", values)
    np.save(tmp_path / "swapped.npy", values.astype(">u4"))
    np.save(tmp_path / "empty.npy", values[:0])
    (tmp_path / "short.npy").write_bytes((tmp_path / "plain.npy").read_bytes()[:-4])
    for mmap in (True, False):
        plain = _open_block_file(tmp_path / "plain.npy", np.dtype(np.uint32), 1000, mmap)
        assert plain.flags.writeable != mmap and np.array_equal(plain, values)  # a read-only map, or read
        assert np.array_equal(_open_block_file(tmp_path / "swapped.npy", np.dtype(np.uint32), 1000, mmap), values)
        assert len(_open_block_file(tmp_path / "empty.npy", np.dtype(np.uint32), 0, mmap)) == 0
        with pytest.raises(ValueError):
            _open_block_file(tmp_path / "short.npy", np.dtype(np.uint32), 1000, mmap)
