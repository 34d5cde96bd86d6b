"""Exports for other trainers (Megatron .bin/.idx, datatrove .ds, llm.c .bin), each read back byte by byte.

The readers below are written from the published formats (Megatron's ``MMIDIDX`` index, datatrove's ``.ds`` +
``.ds.index``, llm.c's 256-int32 header), independently of ``mixlab.pack.export``; datatrove's export is also
read with datatrove's own dataset class.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import xxhash

from mixlab.cli import main
from mixlab.pack.dataset import PackedDataError, SequenceLoader, open_phase
from mixlab.pack.export import export_phase
from mixlab.pack.ledger import SourceTokens
from mixlab.pack.writer import pack_phase
from mixlab.tokenizer import TokenizerInfo

L, B = 16, 4


def make_phase(tmp: Path, vocab: int, mixture: dict[str, float], tokens: int = 2000) -> Path:
    """A packed phase over synthetic sources whose token values span the top of the vocabulary."""
    rng = np.random.default_rng(7)
    dtype = np.uint16 if vocab <= 1 << 16 else np.uint32
    sources = {}
    for name in ("text", "code", "math"):
        lengths = rng.integers(5, 60, size=40)
        sources[name] = SourceTokens(name, rng.integers(vocab // 2, vocab, lengths.sum()).astype(dtype),
                                     np.cumsum(lengths))
    header = {"recipe_name": "t", "recipe_hash": "r" * 64, "pack_key": "k",
              "tokenizer": TokenizerInfo(kind="bpe", name="toy", hash="h" * 64, vocab_size=vocab, eos_id=vocab - 1)}
    out = tmp / f"phase-{vocab}"
    pack_phase(out, phase="p", phase_index=0, requested_tokens=tokens, mixture=mixture, max_repeat=4.0,
               sources=sources, source_meta={}, starts={}, seq_len=L, batch_size=B, seed=3, header=header,
               shard_sequences=13)  # several shards, boundaries inside batches
    return out


MIX = {"text": 0.5, "code": 0.3, "math": 0.2}


@pytest.fixture(params=[1000, 100_000], ids=["uint16", "uint32"])
def phase_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return make_phase(tmp_path, request.param, MIX)


def packed(phase_dir: Path) -> np.ndarray:
    """The phase's sequences: its shard files concatenated (read with np.load, not mixlab's reader)."""
    shards = sorted(phase_dir.glob("*.tokens.npy"))
    assert len(shards) > 1
    return np.concatenate([np.load(p) for p in shards]).astype(np.int64)


def token_size(phase_dir: Path) -> int:
    return np.load(phase_dir / "00000.tokens.npy", mmap_mode="r").dtype.itemsize


# ------------------------------------------------------------------ readers from the published formats
def read_megatron(prefix: Path) -> dict:
    """Parse ``.idx`` field by field (Megatron's MMIDIDX layout) and slice ``.bin`` through its pointers."""
    raw = prefix.with_name(prefix.name + ".idx").read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    version, code = struct.unpack_from("<QB", raw, 9)
    n_seq, n_doc = struct.unpack_from("<QQ", raw, 18)
    off = 34
    lengths = np.frombuffer(raw, "<i4", n_seq, off)
    pointers = np.frombuffer(raw, "<i8", n_seq, off + 4 * n_seq)
    docs = np.frombuffer(raw, "<i8", n_doc, off + 12 * n_seq)
    assert len(raw) == off + 12 * n_seq + 8 * n_doc, "no bytes may follow the document indices"
    dtype = {8: np.dtype("<u2"), 4: np.dtype("<i4")}[code]
    data = prefix.with_name(prefix.name + ".bin").read_bytes()
    seqs = [np.frombuffer(data, dtype, int(n), int(p)).astype(np.int64) for n, p in zip(lengths, pointers, strict=True)]
    return {"version": version, "code": code, "lengths": lengths, "pointers": pointers, "docs": docs,
            "bin_bytes": len(data), "itemsize": dtype.itemsize, "seqs": seqs}


def read_datatrove(prefix: Path, token_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``.ds``: raw little-endian tokens; ``.ds.index``: uint64 cumulative document ends."""
    tokens = np.frombuffer(prefix.with_name(prefix.name + ".ds").read_bytes(), "<u2" if token_size == 2 else "<u4")
    ends = np.frombuffer(prefix.with_name(prefix.name + ".ds.index").read_bytes(), "<u8")
    return tokens.astype(np.int64), ends.astype(np.int64)


def read_llmc(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """256 little-endian int32 header, then ``header[2]`` tokens (uint16 for version 1, uint32 for version 7)."""
    raw = path.read_bytes()
    header = np.frombuffer(raw, "<i4", 256)
    dtype = {(20240520, 1): np.dtype("<u2"), (20240801, 7): np.dtype("<u4")}[(int(header[0]), int(header[1]))]
    assert len(raw) == 1024 + int(header[2]) * dtype.itemsize, "file size must be header + count tokens exactly"
    return header, np.frombuffer(raw, dtype, int(header[2]), 1024).astype(np.int64)


# ------------------------------------------------------------------ tests
def test_megatron_index_fields_pointers_and_tokens(phase_dir: Path, tmp_path: Path) -> None:
    """The .idx header is exactly MMIDIDX / version 1 / Megatron's dtype code (uint16=8, int32=4) / N sequences /
    N+1 document indices 0..N; every pointer is the running byte sum of the lengths before it and the last
    sequence ends at the .bin's last byte (Megatron checks neither); sequence i read through its pointer is
    mixlab's packed sequence i."""
    want = packed(phase_dir)
    n = len(want)
    res = export_phase(phase_dir, tmp_path / "out" / "mega", "megatron")
    got = read_megatron(tmp_path / "out" / "mega")
    assert got["version"] == 1
    assert got["code"] == (8 if token_size(phase_dir) == 2 else 4)
    assert (got["lengths"] == L + 1).all() and len(got["lengths"]) == n
    assert (got["pointers"] == np.concatenate([[0], np.cumsum(got["lengths"][:-1] * got["itemsize"])])).all()
    assert int(got["pointers"][-1]) + (L + 1) * got["itemsize"] == got["bin_bytes"] == n * (L + 1) * got["itemsize"]
    assert (got["docs"] == np.arange(n + 1)).all()
    for i in range(n):
        assert (got["seqs"][i] == want[i]).all(), f"sequence {i}"
    assert res.dtype in ("uint16", "int32") and res.num_sequences == n


def test_datatrove_export_read_by_datatrove(phase_dir: Path, tmp_path: Path) -> None:
    """The .ds holds the packed tokens row after row, the .ds.index the document ends (i+1)(L+1); datatrove's
    DatatroveFileDataset with seq_len=L returns mixlab's sequence i as item i, with positions 0..L from the index
    (each sequence is one whole document), and DatatroveFolderDataset over the folder agrees."""
    from datatrove.utils.dataset import DatatroveFileDataset, DatatroveFolderDataset

    want = packed(phase_dir)
    n = len(want)
    size = token_size(phase_dir)
    export_phase(phase_dir, tmp_path / "dt" / "phase", "datatrove")
    flat, ends = read_datatrove(tmp_path / "dt" / "phase", size)
    assert (flat == want.reshape(-1)).all()
    assert (ends == np.arange(1, n + 1) * (L + 1)).all()
    meta = (tmp_path / "dt" / "phase.ds.metadata").read_text().splitlines()
    assert meta[:2] == [f"toy|{size}", str(n * (L + 1))]

    ds = DatatroveFileDataset(str(tmp_path / "dt" / "phase.ds"), seq_len=L, token_size=size, return_positions=True)
    assert len(ds) == n
    for i in range(n):
        item = ds[i]
        assert item["input_ids"].tolist() == want[i].tolist(), f"sequence {i}"
        assert item["positions"].tolist() == list(range(L + 1))
    folder = DatatroveFolderDataset(str(tmp_path / "dt"), seq_len=L, token_size=size)
    assert len(folder) == n and folder[n - 1]["input_ids"].tolist() == want[-1].tolist()


def test_llmc_header_size_and_windows(phase_dir: Path, tmp_path: Path) -> None:
    """llm.c header: magic 20240520 v1 (uint16) or 20240801 v7 (uint32), count N*L+1, file size exact. With T=L,
    window i (tokens [iL, iL+L+1)) has inputs == seq_i[:L] for every i and targets == seq_i[1:] except the last,
    which is seq_{i+1}[0]: equal to seq_i[L] exactly where sequence i+1 continues sequence i's stream; the
    export's ``seams`` counts the others and the final window is whole."""
    want = packed(phase_dir)
    n = len(want)
    res = export_phase(phase_dir, tmp_path / "llmc", "llmc")
    header, stream = read_llmc(tmp_path / "llmc_000000.bin")
    uint16 = token_size(phase_dir) == 2
    assert tuple(header[:3]) == ((20240520, 1) if uint16 else (20240801, 7)) + (n * L + 1,)
    assert not header[3:].any()
    seams = 0
    for i in range(n):
        window = stream[i * L : i * L + L + 1]
        assert (window[:L] == want[i, :L]).all(), f"inputs of sequence {i}"
        assert (window[1:L] == want[i, 1:L]).all(), f"targets of sequence {i}"
        if i + 1 < n:
            assert window[L] == want[i + 1, 0]
        seams += int(window[L] != want[i, L])
    assert (stream[-(L + 1) :] == want[-1]).all()
    assert res.seams == seams > 0  # a three-source interleave switches source, so some last targets differ


def test_llmc_one_source_phase_is_exact(tmp_path: Path) -> None:
    """In a one-source phase consecutive sequences overlap by one token, so every llm.c window of T+1 = L+1
    tokens IS mixlab's sequence: no seams."""
    phase = make_phase(tmp_path, 1000, {"text": 1.0})
    want = packed(phase)
    res = export_phase(phase, tmp_path / "one", "llmc")
    _, stream = read_llmc(tmp_path / "one_000000.bin")
    windows = np.lib.stride_tricks.sliding_window_view(stream, L + 1)[::L]
    assert res.seams == 0 and windows.shape == want.shape and (windows == want).all()


def test_llmc_ranks_see_the_sequence_loaders_batches(tmp_path: Path) -> None:
    """llm.c's process p at step s reads windows (s*P + p)*B .. +B (B rows of T+1 tokens, stride T): their inputs
    are exactly SequenceLoader(global batch P*B, rank p, world P).batch(s)'s inputs."""
    phase = make_phase(tmp_path, 1000, MIX, tokens=4000)
    export_phase(phase, tmp_path / "r", "llmc")
    _, stream = read_llmc(tmp_path / "r_000000.bin")
    procs, rows = 2, B // 2
    loaders = [SequenceLoader(open_phase(phase), procs * rows, rank=p, world_size=procs) for p in range(procs)]
    for s in range(len(loaders[0])):
        for p in range(procs):
            start = (s * procs + p) * rows * L
            chunk = stream[start : start + rows * L + 1]
            inputs = chunk[:-1].reshape(rows, L)
            assert (inputs == loaders[p].batch(s)[:, :L].numpy()).all(), f"step {s} rank {p}"


def test_llmc_files_of_whole_batches_read_as_llmc_does(tmp_path: Path) -> None:
    """With a small ``llmc_file_tokens`` the export is several files, each of whole batches (its own header and
    stream); reading them in name order the way llm.c's dataloader does (per file ``(ntok - 1) // (P*B*T)``
    steps, process p at offset ``(step*P + p)*B*T``) gives, step after step, exactly the inputs of
    SequenceLoader's batches for every rank, and every file's final window is its last sequence whole."""
    phase = make_phase(tmp_path, 1000, MIX, tokens=4000)
    want = packed(phase)
    res = export_phase(phase, tmp_path / "f" / "train", "llmc", llmc_file_tokens=3 * B * L)
    files = sorted((tmp_path / "f").glob("train_*.bin"))
    assert len(files) == len(res.files) > 2 and [Path(p).name for p in res.files] == [f.name for f in files]
    procs, rows = 2, B // 2
    loaders = [SequenceLoader(open_phase(phase), procs * rows, rank=p, world_size=procs) for p in range(procs)]
    step, first = 0, 0
    for f in files:
        header, stream = read_llmc(f)
        n_seq = (len(stream) - 1) // L
        assert n_seq % B == 0 and (stream[-(L + 1) :] == want[first + n_seq - 1]).all()
        for s in range((len(stream) - 1) // (procs * rows * L)):
            for p in range(procs):
                start = (s * procs + p) * rows * L
                inputs = stream[start : start + rows * L].reshape(rows, L)
                assert (inputs == loaders[p].batch(step)[:, :L].numpy()).all(), f"{f.name} step {s} rank {p}"
            step += 1
        first += n_seq
    assert step == len(loaders[0]) and first == len(want)


def test_outputs_atomic_and_sidecar_checksums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed export leaves the previous files untouched and no temporary file; a finished one records the
    xxh64 of every file in its sidecar, equal to the files' bytes."""
    import mixlab.pack.export as export

    phase = make_phase(tmp_path, 1000, MIX)
    res = export_phase(phase, tmp_path / "o" / "x", "megatron")
    before = {p: Path(p).read_bytes() for p in res.files}
    sidecar = json.loads((tmp_path / "o" / "x.megatron.export.json").read_text())
    for p, entry in res.files.items():
        assert xxhash.xxh64(before[p]).hexdigest() == entry.xxh64 == sidecar["files"][Path(p).name]["xxh64"]
    assert sidecar["seq_len"] == L and sidecar["pack_key"] == "k"

    def boom(f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(export, "_write_rows", boom)
    with pytest.raises(OSError, match="disk full"):
        export_phase(phase, tmp_path / "o" / "x", "megatron")
    assert {p: Path(p).read_bytes() for p in res.files} == before
    assert sorted(f.name for f in (tmp_path / "o").iterdir()) == ["x.bin", "x.idx", "x.megatron.export.json"]


def test_cli_export_prints_checksums_and_refuses_damaged_phase(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``mixlab export`` prints every file with its xxh64 (equal to the bytes written) and refuses a phase whose
    files fail their manifest checksum, writing nothing."""
    phase = make_phase(tmp_path, 1000, MIX)
    assert main(["export", str(phase), "--format", "datatrove", "--out", str(tmp_path / "cli" / "d")]) == 0
    out = capsys.readouterr().out
    for name in ("d.ds", "d.ds.index", "d.ds.metadata"):
        assert f"xxh64 {xxhash.xxh64((tmp_path / 'cli' / name).read_bytes()).hexdigest()}" in out
    raw = bytearray((phase / "00001.tokens.npy").read_bytes())
    raw[-1] ^= 0xFF
    (phase / "00001.tokens.npy").write_bytes(bytes(raw))
    with pytest.raises(PackedDataError, match="checksum"):
        export_phase(phase, tmp_path / "bad" / "x", "llmc")
    assert main(["export", str(phase), "--format", "llmc", "--out", str(tmp_path / "bad" / "x")]) == 2
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_megatron_core_reads_the_export(tmp_path: Path) -> None:
    """Where megatron-core is installed (not a mixlab dependency; checked with 0.16.1): its IndexedDataset item i
    is mixlab's sequence i, and a GPTDataset with sequence_length=L+1 and add_extra_token_to_sequence=False draws
    every packed sequence whole exactly once (in its own shuffled order), the last label loss-masked."""
    pytest.importorskip("megatron.core.datasets.helpers_cpp")
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.datasets.utils import Split

    phase = make_phase(tmp_path, 1000, MIX)
    want = packed(phase)
    export_phase(phase, tmp_path / "m", "megatron")
    ds = IndexedDataset(str(tmp_path / "m"), multimodal=False, mmap=True)
    assert [ds[i].tolist() for i in range(len(ds))] == want.tolist()

    class Tokenizer:
        eod, pad, vocab_size, unique_identifiers = 999, -1, 1000, {"class": "toy"}

    cfg = GPTDatasetConfig(random_seed=1, sequence_length=L + 1, blend=None, blend_per_split=None, split="1,0,0",
                           tokenizer=Tokenizer(), reset_position_ids=False, reset_attention_mask=False,
                           eod_mask_loss=False, add_extra_token_to_sequence=False, path_to_cache=str(tmp_path / "c"))
    gpt = GPTDataset(ds, str(tmp_path / "m"), np.arange(len(ds), dtype=np.int32), None, Split.train, cfg)
    samples = [gpt[j] for j in range(len(gpt))]
    assert sorted(s["tokens"].tolist() for s in samples) == sorted(want.tolist())
    assert all(s["loss_mask"][:-1].all() and s["loss_mask"][-1] == 0 for s in samples)
