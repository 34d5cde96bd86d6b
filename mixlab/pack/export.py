"""Export a packed phase to the files other trainers read: Megatron, datatrove/nanotron, llm.c.

Contract: ``export_phase(phase_dir, out_prefix, fmt)`` opens the phase with :func:`open_phase` (sizes and
checksums of every shard verified), streams its shards in order (a few MB of rows at a time, never the phase)
into the export next to ``out_prefix`` atomically (each file goes to a temporary sibling and is renamed into
place; the index/metadata files are renamed last) and returns an :class:`Export` with the size and xxh64 of every
file written (also recorded, with the phase's identity and how to read the export, in
``<prefix>.<fmt>.export.json``). The phase holds N sequences of L+1 tokens (its shards concatenated); mixlab
trains on inputs ``seq[:L]`` and targets ``seq[1:]``. Megatron and datatrove get one file set per phase (their
indexes address any size; Megatron blends several phases by prefix); llm.c gets files of about 1e8 tokens, its
own convention. What each format preserves:

``megatron`` -> ``<prefix>.bin`` + ``<prefix>.idx`` (Megatron's ``MMIDIDX`` indexed dataset)
    ``.bin``: the N x (L+1) tokens, row after row, little-endian ``uint16`` (DType code 8), or ``int32``
    (code 4: Megatron's ``DType`` has no ``uint32``) when the vocabulary exceeds 65,536. ``.idx``:
    ``b"MMIDIDX\\x00\\x00"``, u64 version 1, u8 dtype code, u64 sequence count N, u64 document count N+1, int32
    lengths (all L+1), int64 byte pointers ``i*(L+1)*itemsize``, int64 document indices ``0, 1, ..., N`` (Megatron's
    builder starts them at 0: one document per sequence). ``IndexedDataset[i]`` is exactly mixlab's sequence i, in
    mixlab's order. A ``GPTDataset`` with ``sequence_length = L+1`` and ``add_extra_token_to_sequence = False``
    draws each packed sequence whole as one sample (tokens = the L+1 tokens, labels shifted by one with the last
    label padded and loss-masked: the same L predictions mixlab trains). GPTDataset however always permutes
    documents and samples with its ``random_seed``: mixlab's order, and so the prefix-exact proportions, hold
    only for a trainer that reads the IndexedDataset sequentially (a GPTDataset keeps per-phase totals exact).
    Checked against megatron-core 0.16.1's own IndexedDataset and GPTDataset (``tests/test_export.py`` runs that
    check wherever megatron-core is installed).

``datatrove`` -> ``<prefix>.ds`` + ``<prefix>.ds.index`` (+ ``<prefix>.ds.metadata``)
    ``.ds``: the same N x (L+1) little-endian tokens (``uint16``; ``uint32`` when the vocabulary exceeds
    65,536); ``.ds.index``: uint64 cumulative document ends ``(i+1)*(L+1)``, one document per sequence;
    ``.ds.metadata``: datatrove's three lines (``tokenizer|token_size``, token count, short count).
    ``DatatroveFileDataset(path, seq_len=L, token_size=2|4)`` reads non-overlapping windows of L+1 tokens, so
    its item i is exactly mixlab's sequence i, in order (nanotron trains ``input_ids[:-1] -> input_ids[1:]``).

``llmc`` -> ``<prefix>_000000.bin``, ``<prefix>_000001.bin``, ... (llm.c / modded-nanogpt token shards, read
    in name order with the glob ``<prefix>_*.bin``; nanoGPT's ``train.bin`` is one file's tokens without the
    header: ``np.memmap(path, dtype=np.uint16, mode="r", offset=1024)``). File f holds sequences
    ``[f*m, (f+1)*m)`` with m = the whole batches (manifest ``batch_size``) in ``file_tokens`` (default 1e8)
    tokens, at least one batch; each file is a stream of its own, as below, and llm.c reads each file
    independently (``(ntok - 1) // (B*T*processes)`` steps per file), so with global batch = the phase's
    batch every step of every file is exactly one of mixlab's steps.
    Each file: 256 int32 header (magic 20240520, version 1 for uint16 tokens; magic 20240801, version 7 for uint32 tokens;
    header[2] = token count), then the tokens, no trailing bytes. llm.c reads each file as a flat stream: window w is
    ``stream[w*T : w*T + T + 1]``, inputs its first T tokens, targets its last T (global windows are numbered
    ``(step * processes + rank) * B + row``, the same split as :class:`~mixlab.pack.dataset.SequenceLoader`
    with global batch ``processes * B``). A file's stream is therefore ``seq_a[:L], seq_{a+1}[:L], ...,
    seq_{b-1}[:L], seq_{b-1}[L]`` ((b-a)*L + 1 tokens) and llm.c must run with ``T = L``. Then for every i:
    window i's inputs == ``seq_i[:L]`` exactly; its targets == ``seq_i[1:]`` exactly except the last, which is
    ``seq_{i+1}[0]``, equal to mixlab's ``seq_i[L]`` whenever sequence i+1 continues sequence i's source stream
    (consecutive sequences of one source overlap by that token) and in general a token of the next sequence
    when the interleave switches source. So at most one target in L per sequence differs (``Export.seams``
    counts them, within each file; 0 for a one-source phase); every input, and so every attention context, is mixlab's. This is
    the most faithful flat layout: writing each sequence whole (L+1 tokens, T = L+1) keeps all L targets but adds
    an unmasked cross-sequence prediction to every sequence, since llm.c has no loss mask. header[2] is int32:
    ``file_tokens`` over 2**31 - 1 is refused. nanoGPT's ``get_batch`` reads the same file at random offsets and
    so ignores sequence boundaries altogether; read it sequentially with T = L instead.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from mixlab.pack.dataset import PackedPhase, ShardedRows, open_phase
from mixlab.pack.manifest import FileEntry, file_entry
from mixlab.workspace import write_in_pieces

Format = Literal["megatron", "datatrove", "llmc"]
FORMATS: tuple[str, ...] = ("megatron", "datatrove", "llmc")

MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}  # Megatron's DType enum values
LLMC_HEADER_INTS = 256
LLMC_MAGIC = {np.dtype(np.uint16): (20240520, 1), np.dtype(np.uint32): (20240801, 7)}
LLMC_FILE_TOKENS = 100_000_000  # llm.c's own shard size (its fineweb.py writes 1e8-token files)
_ROWS_PER_WRITE = 1 << 22  # tokens per chunk written (rows are grouped to about this many tokens)


@dataclass
class Export:
    """What :func:`export_phase` wrote."""

    fmt: str
    files: dict[str, FileEntry]  # path -> size + xxh64, in write order
    num_sequences: int
    seq_len: int
    dtype: str
    seams: int = 0  # llmc only: sequences whose last target is the next sequence's first token, not their own
    reader: str = ""  # how a trainer must read the export to see mixlab's sequences


def _row_chunks(tokens: Any) -> Iterator[tuple[int, int]]:
    step = max(1, _ROWS_PER_WRITE // tokens.shape[1])
    for lo in range(0, tokens.shape[0], step):
        yield lo, min(tokens.shape[0], lo + step)


def _write_tmp(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path``'s bytes to a temporary sibling (fsynced) and return that sibling."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _write_atomic(outputs: list[tuple[Path, Callable[[BinaryIO], None]]]) -> dict[str, FileEntry]:
    """Write every output to a temporary sibling, then rename them in order (data first, index last) and
    checksum the final files; on any error no temporary file is left and no final file is touched."""
    done: list[tuple[Path, Path]] = []
    try:
        for final, write in outputs:
            done.append((_write_tmp(final, write), final))
    except BaseException:
        for final, _ in outputs:
            final.with_name(f".{final.name}.tmp-{os.getpid()}").unlink(missing_ok=True)
        raise
    for tmp, final in done:
        os.replace(tmp, final)
    return {str(final): file_entry(final) for _, final in done}


def _write_rows(f: BinaryIO, tokens: Any, dtype: np.dtype, cols: int | None = None) -> None:
    for lo, hi in _row_chunks(tokens):
        block = tokens[lo:hi] if cols is None else tokens[lo:hi, :cols]
        write_in_pieces(f, np.ascontiguousarray(block, dtype=dtype.newbyteorder("<")))  # 256 KiB writes (workspace)


def _megatron(phase: PackedPhase, prefix: Path) -> Export:
    tokens = phase.tokens
    n, width = tokens.shape
    dtype = np.dtype(np.uint16) if tokens.dtype == np.uint16 else np.dtype(np.int32)

    def write_idx(f: BinaryIO) -> None:
        f.write(MEGATRON_MAGIC + struct.pack("<QB", 1, MEGATRON_DTYPE_CODES[dtype]) + struct.pack("<QQ", n, n + 1))
        f.write(np.full(n, width, dtype="<i4").tobytes())  # sequence lengths
        f.write((np.arange(n, dtype="<i8") * (width * dtype.itemsize)).tobytes())  # byte pointers into .bin
        f.write(np.arange(n + 1, dtype="<i8").tobytes())  # document i = sequences [i, i+1)

    files = _write_atomic([
        (_suffixed(prefix, ".bin"), lambda f: _write_rows(f, tokens, dtype)),
        (_suffixed(prefix, ".idx"), write_idx),
    ])
    reader = (f"Megatron IndexedDataset(prefix)[i] == sequence i; GPTDataset: sequence_length={width}, "
              f"add_extra_token_to_sequence=False (GPTDataset permutes the order with its random_seed)")
    return Export("megatron", files, n, width - 1, dtype.name, reader=reader)


def _datatrove(phase: PackedPhase, prefix: Path) -> Export:
    tokens = phase.tokens
    n, width = tokens.shape
    dtype = np.dtype(tokens.dtype)  # uint16, or uint32 when the vocabulary exceeds 65,536 (writer.token_dtype)
    ds = _suffixed(prefix, ".ds")
    count = n * width
    metadata = f"{phase.manifest.tokenizer_name}|{dtype.itemsize}\n{count}\n{count / 1e6:.2f}M".encode()
    files = _write_atomic([
        (ds, lambda f: _write_rows(f, tokens, dtype)),
        (_suffixed(prefix, ".ds.index"), lambda f: f.write((np.arange(1, n + 1, dtype="<u8") * width).tobytes())),
        (_suffixed(prefix, ".ds.metadata"), lambda f: f.write(metadata)),
    ])
    reader = (f"datatrove DatatroveFileDataset('{ds.name}', seq_len={width - 1}, token_size={dtype.itemsize})[i] "
              f"== sequence i")
    return Export("datatrove", files, n, width - 1, dtype.name, reader=reader)


def llmc_seams(tokens: np.ndarray | ShardedRows) -> int:
    """Sequences i < n-1 whose last token differs from sequence i+1's first (their llm.c last target differs)."""
    n = tokens.shape[0]
    if n < 2:
        return 0
    seams = 0
    for lo, hi in _row_chunks(tokens):
        rows = tokens[lo : min(hi + 1, n)]  # one row of overlap with the next chunk
        seams += int(np.count_nonzero(rows[:-1, -1] != rows[1:, 0]))
    return seams


def _llmc_files(phase: PackedPhase, file_tokens: int) -> list[tuple[int, int]]:
    """``[(first, last), ...]`` sequences per llm.c file: whole batches, about ``file_tokens`` tokens each."""
    n, seq_len, batch = phase.manifest.num_sequences, phase.manifest.seq_len, phase.manifest.batch_size
    per_file = max(batch, file_tokens // seq_len // batch * batch)
    return [(lo, min(n, lo + per_file)) for lo in range(0, n, per_file)]


def _llmc(phase: PackedPhase, prefix: Path, file_tokens: int = LLMC_FILE_TOKENS) -> Export:
    tokens = phase.tokens
    n, width = tokens.shape
    seq_len = width - 1
    dtype = np.dtype(tokens.dtype)
    if file_tokens > np.iinfo(np.int32).max:
        raise ValueError(f"file_tokens={file_tokens:,} exceeds llm.c's int32 token count of one file; lower it")
    magic, version = LLMC_MAGIC[dtype]
    outputs = []
    seams = 0
    for f, (lo, hi) in enumerate(_llmc_files(phase, file_tokens)):
        part = _Rows(tokens, lo, hi)
        seams += llmc_seams(part)

        def write(out: BinaryIO, part: _Rows = part) -> None:
            header = np.zeros(LLMC_HEADER_INTS, dtype="<i4")
            header[:3] = (magic, version, part.shape[0] * seq_len + 1)
            out.write(header.tobytes())
            _write_rows(out, part, dtype, cols=seq_len)  # seq_i[:L] for every i of the file ...
            out.write(np.asarray(part[part.shape[0] - 1, -1:], dtype=dtype.newbyteorder("<")).tobytes())  # + last[L]

        outputs.append((prefix.with_name(f"{prefix.name}_{f:06d}.bin"), write))
    files = _write_atomic(outputs)
    reader = (f"llm.c with T={seq_len} over {prefix.name}_*.bin ({len(outputs)} files) and global batch "
              f"{phase.manifest.batch_size} (processes x B): every input exact; {seams} of {n} sequences end on the "
              f"next sequence's first token instead of their own last token (source switches)")
    return Export("llmc", files, n, seq_len, dtype.name, seams=seams, reader=reader)


class _Rows:
    """Sequences ``[lo, hi)`` of a phase's rows, indexed from 0 (what one llm.c file holds)."""

    def __init__(self, rows: ShardedRows, lo: int, hi: int) -> None:
        self.rows, self.lo, self.hi = rows, lo, hi
        self.shape = (hi - lo, *rows.shape[1:])

    def __getitem__(self, key: Any) -> np.ndarray:
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(first, slice):
            a, b, _ = first.indices(self.shape[0])
            first = slice(self.lo + a, self.lo + b)
        else:
            first = self.lo + int(first)
        return self.rows[(first, *rest)] if rest else self.rows[first]


def _suffixed(prefix: Path, suffix: str) -> Path:
    return prefix.with_name(prefix.name + suffix)


_WRITERS: dict[str, Callable[[PackedPhase, Path], Export]] = {
    "megatron": _megatron, "datatrove": _datatrove, "llmc": _llmc,
}


def export_phase(
    phase_dir: Path | str, out_prefix: Path | str, fmt: Format, *, verify: bool = True,
    llmc_file_tokens: int = LLMC_FILE_TOKENS,
) -> Export:
    """Export the packed phase at ``phase_dir`` to ``out_prefix`` + the format's suffixes (module contract).

    Also writes ``<prefix>.<fmt>.export.json``: the source phase's identity, the layout, how to read it and
    the checksums of the files written.
    """
    if fmt not in _WRITERS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    phase = open_phase(phase_dir, verify=verify)
    prefix = Path(out_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    result = _llmc(phase, prefix, llmc_file_tokens) if fmt == "llmc" else _WRITERS[fmt](phase, prefix)
    m = phase.manifest
    record = {
        # phase_dir: relative to this sidecar's folder, so the record is the same wherever both are moved together
        "format": fmt, "phase": m.phase, "pack_key": m.pack_key,
        "phase_dir": os.path.relpath(Path(phase_dir).resolve(), prefix.parent.resolve()),
        "recipe_hash": m.recipe_hash, "tokenizer": m.tokenizer.model_dump(mode="json"),
        "seq_len": m.seq_len, "num_sequences": m.num_sequences,
        "manifest_digest": m.digest, "dtype": result.dtype, "seams": result.seams,
        "reader": result.reader, "files": {Path(p).name: e.model_dump() for p, e in result.files.items()},
    }
    _write_atomic([(_suffixed(prefix, f".{fmt}.export.json"), lambda f: f.write(json.dumps(record, indent=2).encode()))])
    return result
