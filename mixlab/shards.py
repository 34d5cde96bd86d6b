"""The token shard set of one source: block files, a block index and a sealed manifest (written by
:mod:`mixlab.tokenize_steps`).

Contract (the pack stage reads exactly this; it must not change without a ``FORMAT_VERSION`` bump):
- Folder ``tokens/<source>-<key>/`` holding ``manifest.json`` (:class:`TokenSetManifest`), ``blocks.npy`` (the
  block index) and the blocks. A block is named by a stem ``<file index:05d>-<chunk:04d>``: the index of the
  curated input file it comes from in the sorted list of input files, and a chunk counter within that file (never
  a task rank, so the bytes are the same for any number of tasks or workers). Each block of split ``s``
  (``train`` or ``heldout``) is three files: ``<stem>.<s>.tokens.npy`` (flat ids, dtype
  :func:`mixlab.tokenizer.token_dtype`, every document followed by ``TokenizerInfo.eos_id``),
  ``<stem>.<s>.lengths.npy`` (int64 tokens per document, EOS included) and ``<stem>.<s>.docs.parquet`` (``id``,
  ``tokens``, ``bytes`` per document). The documents of one input file keep their file order across its chunks.
- ``blocks.npy``: one row per block (:data:`INDEX_DTYPE`: split, file index, chunk, documents, tokens, and the
  size and xxh64 of each of its three files), the training blocks first, then the held-out ones, each in (file,
  chunk) order. A fixed-size binary row, not JSON: a source of 60,000 input files (SlimPajama's size) made a
  24 MB JSON manifest whose parse took +204 MB of peak RSS and kept 45 MB in every pack task; its index is
  4.4 MB, read as one array.
- ``manifest.json`` holds the totals, the block counts and the size and xxh64 of ``blocks.npy``;
  ``manifest.digest`` is the xxh64 of its canonical JSON without that field. Reading the manifest refuses a
  digest that differs; reading the index refuses one that differs from the manifest's record;
  :meth:`TokenShardSet.verified` also checks every block file (:class:`~mixlab.errors.CorruptOutputError`).
- Held-out split, per document: ``d`` is held out iff ``xxh64(d.id, seed) < heldout_threshold(fraction)``
  (``floor(fraction * 2**64)``), so a document's split never depends on the other documents, the file order or
  the task count.
- Readers are bounded: :meth:`TokenShardSet.train_block` memory-maps one block, :meth:`heldout_sequences` reads
  only the held-out tokens it returns, verification streams over the index. A block opens in ~25 us (its
  ``.npy`` headers are predicted from the index and compared, not parsed; a file that differs goes through
  ``np.load``).
"""

from __future__ import annotations

import functools
import io
import mmap as mmap_module
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xxhash
from pydantic import Field

from mixlab.errors import CorruptOutputError
from mixlab.jsonl import read_jsonl
from mixlab.sealed import FileEntry, Sealed, read_sealed
from mixlab.tokenizer import TokenizerInfo, load_tokenizer
from mixlab.workspace import verify

FORMAT_VERSION = 2  # 2: blocks and file digests in blocks.npy (1: both listed in manifest.json)
MANIFEST = "manifest.json"
INDEX = "blocks.npy"
DOC_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst")
SPLITS = ("train", "heldout")
Split = Literal["train", "heldout"]
BLOCK_KINDS = ("tokens.npy", "lengths.npy", "docs.parquet")
_FILE = np.dtype([("bytes", "<i8"), ("xxh64", "<u8")])
_KIND_FIELD = {"tokens.npy": "tokens_file", "lengths.npy": "lengths_file", "docs.parquet": "docs_file"}
INDEX_DTYPE = np.dtype([
    ("split", "u1"), ("file", "<u4"), ("chunk", "<u4"), ("documents", "<i8"), ("tokens", "<i8"),
    *((_KIND_FIELD[kind], _FILE) for kind in BLOCK_KINDS),
])  # split: SPLITS.index(split); 73 bytes a block
REBUILD = "re-run the recipe: the tokenize stage rebuilds it"  # the fix every refusal of a set ends with
VERIFY_ROWS = 256  # index rows checked at a time (their names and entries only: memory bounded whatever the set)


def list_document_files(folder: Path | str) -> list[str]:
    """The curated document files below ``folder`` as sorted POSIX paths relative to it (the file indices)."""
    root = Path(folder)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.name.endswith(DOC_SUFFIXES))


def iter_documents(folder: Path) -> Iterator[dict[str, Any]]:
    """Documents of a curated folder in sorted file order (each a dict with ``text`` and ``id``)."""
    for rel in list_document_files(folder):
        yield from read_jsonl(Path(folder) / rel)  # a damaged file or a non-JSON line raises, naming file and line


def heldout_threshold(fraction: float) -> int:
    """``floor(fraction * 2**64)``: a document whose ``xxh64(id, seed)`` is below it is held out."""
    if not 0.0 <= fraction <= 0.5:
        raise ValueError(f"heldout fraction must be in [0, 0.5], got {fraction}")
    return int(fraction * 2.0**64)


def doc_key(doc_id: str, seed: int) -> int:
    """The document's split key ``xxh64(id, seed)``."""
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8", "surrogatepass"), seed=seed & 0xFFFFFFFFFFFFFFFF)


def block_file(stem: str, split: str, kind: str) -> str:
    """``<stem>.<split>.<kind>``, kind one of ``tokens.npy``, ``lengths.npy``, ``docs.parquet``."""
    return f"{stem}.{split}.{kind}"


def block_stem(file_index: int, chunk: int) -> str:
    """``<file index:05d>-<chunk:04d>``: the name of chunk ``chunk`` of input file ``file_index``."""
    return f"{file_index:05d}-{chunk:04d}"


def index_row(split: str, file_index: int, chunk: int, documents: int, tokens: int,
              files: dict[str, dict[str, Any]]) -> tuple:
    """One ``blocks.npy`` row; ``files`` maps each of the block's file names to ``{"bytes", "xxh64"}``."""
    stem = block_stem(file_index, chunk)
    entries = [files[block_file(stem, split, kind)] for kind in BLOCK_KINDS]
    return (SPLITS.index(split), file_index, chunk, documents, tokens,
            *((int(e["bytes"]), int(e["xxh64"], 16)) for e in entries))


# ----------------------------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class BlockEntry:
    """One block as :meth:`TokenShardSet.blocks` lists it (built from its index row on demand)."""

    name: str
    documents: int
    tokens: int


class TokenSetManifest(Sealed):
    """What a token shard set holds, sealed by its own digest; its blocks are in ``blocks.npy`` (module contract)."""

    format_version: int = Field(FORMAT_VERSION, description="Layout version of the set (module contract).")
    source: str = Field(description="Recipe source name.")
    tokenizer: TokenizerInfo = Field(description="Who tokenized the data (eos_id ends every document).")
    seed: int = Field(description="Seed of the held-out split key xxh64(id, seed).")
    heldout_fraction: float = Field(description="Documents with xxh64(id, seed) < fraction * 2**64 are held out.")
    block_tokens: int = Field(description="A block is closed once it holds at least this many tokens.")
    documents: int = Field(description="Documents read from the curated folder (train + held-out).")
    train_documents: int = Field(description="Training documents.")
    heldout_documents: int = Field(description="Held-out documents.")
    train_tokens: int = Field(description="Training tokens (EOS included).")
    heldout_tokens: int = Field(description="Held-out tokens (EOS included).")
    bytes: int = Field(description="UTF-8 bytes of every document's text.")
    train_blocks: int = Field(description="Training blocks: the first rows of blocks.npy.")
    heldout_blocks: int = Field(description="Held-out blocks: the rows after them.")
    index: FileEntry = Field(description="Size and xxh64 of blocks.npy, which records every block file's.")
    curation: dict[str, Any] = Field(default_factory=dict, description="The source's curation statistics.")


def read_set_manifest(folder: Path) -> TokenSetManifest:
    """The manifest of the set at ``folder``; missing, invalid or edited raises CorruptOutputError."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise CorruptOutputError(f"{folder}: no {MANIFEST} (never finished); re-run the recipe's tokenize stage")
    return read_sealed(TokenSetManifest, path, REBUILD)


def read_index(folder: Path | str, manifest: TokenSetManifest) -> np.ndarray:
    """``blocks.npy`` of the set at ``folder`` (module contract), refused (CorruptOutputError) unless its size and
    xxh64 are the manifest's and its rows are the manifest's blocks: splits in order, (file, chunk) rising within
    each, documents and tokens summing to the manifest's totals."""
    path = os.path.join(os.fspath(folder), INDEX)
    problems = verify(folder, {INDEX: manifest.index})
    if problems:
        raise CorruptOutputError(f"{problems[0]}; {REBUILD}")
    try:
        index = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise CorruptOutputError(f"{path}: not a block index ({e}); {REBUILD}") from None
    n_train = manifest.train_blocks
    if index.dtype != INDEX_DTYPE or index.ndim != 1 or len(index) != n_train + manifest.heldout_blocks:
        raise CorruptOutputError(f"{path}: {index.shape} rows of {index.dtype}, the manifest has {n_train} + "
                                 f"{manifest.heldout_blocks} blocks; {REBUILD}")
    for split, rows, documents, tokens in (("train", index[:n_train], manifest.train_documents,
                                            manifest.train_tokens),
                                           ("heldout", index[n_train:], manifest.heldout_documents,
                                            manifest.heldout_tokens)):
        key = rows["file"].astype(np.uint64) << np.uint64(32) | rows["chunk"]  # (file, chunk) order
        if ((rows["split"] != SPLITS.index(split)).any() or (key[1:] <= key[:-1]).any()
                or int(rows["documents"].sum()) != documents or int(rows["tokens"].sum()) != tokens):
            raise CorruptOutputError(f"{path}: its {split} rows disagree with the manifest; {REBUILD}")
    return index


# ------------------------------------------------------------------------------------------------- reader


class TokenShardSet:
    """A tokenized source on disk (module contract). Cheap to construct; the manifest and the block index are read
    on first use."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"TokenShardSet({str(self.path)!r})"

    @functools.cached_property
    def manifest(self) -> TokenSetManifest:
        return read_set_manifest(self.path)

    @functools.cached_property
    def index(self) -> np.ndarray:
        """``blocks.npy`` (:data:`INDEX_DTYPE` rows; checked against the manifest by :func:`read_index`)."""
        return read_index(self.path, self.manifest)

    @property
    def name(self) -> str:
        """The recipe source this set tokenizes."""
        return self.manifest.source

    @property
    def digest(self) -> str:
        """The manifest's digest (it covers the index's xxh64, which covers every file's): the set's identity."""
        return self.manifest.digest

    @property
    def tokenizer(self) -> TokenizerInfo:
        return self.manifest.tokenizer

    def problems(self) -> list[str]:
        """Why this set must not be read (no, edited or older manifest or index, files differing from their
        digests). Streams over the index ``VERIFY_ROWS`` rows at a time."""
        try:
            m = read_set_manifest(self.path)
        except CorruptOutputError as e:
            return [str(e)]
        if m.format_version != FORMAT_VERSION:
            return [f"{self.path}: format_version {m.format_version}, this mixlab reads {FORMAT_VERSION}; {REBUILD}"]
        try:
            index = read_index(self.path, m)
        except CorruptOutputError as e:
            return [str(e)]
        self.__dict__.update(manifest=m, index=index)  # what `manifest` and `index` read from now on
        problems: list[str] = []
        for lo in range(0, len(index), VERIFY_ROWS):
            problems += verify(self.path, dict(_row_files(index[lo : lo + VERIFY_ROWS])))
        return problems

    def verified(self) -> TokenShardSet:
        """This set after checking every file against its recorded digest (module contract)."""
        problems = self.problems()
        if problems:
            raise CorruptOutputError(
                "token shard set damaged: " + "; ".join(problems[:5])
                + f". {REBUILD[0].upper()}{REBUILD[1:]}"
            )
        return self

    def _rows(self, split: Split) -> np.ndarray:
        n_train = self.manifest.train_blocks
        return self.index[:n_train] if split == "train" else self.index[n_train:]

    def blocks(self, split: Split) -> list[BlockEntry]:
        """The blocks of ``split`` in index order (a list built from the index on each call)."""
        return [BlockEntry(block_stem(int(r["file"]), int(r["chunk"])), int(r["documents"]), int(r["tokens"]))
                for r in self._rows(split)]

    def train_block_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(documents int64[B], tokens int64[B]) of the training blocks, in block order."""
        rows = self._rows("train")
        return rows["documents"].astype(np.int64), rows["tokens"].astype(np.int64)

    def block(self, split: Split, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(flat tokens as a read-only memory map, int64 document lengths) of block ``i`` of ``split``: the values
        and dtypes ``np.load`` gives (``mmap_mode="r"`` for the tokens), both opened in ~30 us instead of ~160 us
        (:func:`_open_block_file`)."""
        rows = self._rows(split)
        if not 0 <= i < len(rows):
            raise IndexError(f"{self.path}: no {split} block {i} ({len(rows)} blocks)")
        row, folder = rows[i], os.fspath(self.path)  # str paths: a Path interns every name
        stem = block_stem(int(row["file"]), int(row["chunk"]))
        tokens = _open_block_file(os.path.join(folder, block_file(stem, split, "tokens.npy")),
                                  self.tokenizer.dtype, int(row["tokens"]), mmap=True)
        lengths = _open_block_file(os.path.join(folder, block_file(stem, split, "lengths.npy")),
                                   np.dtype(np.int64), int(row["documents"]), mmap=False)
        return tokens, lengths

    def train_block(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens memmap, lengths int64) of training block ``i``."""
        return self.block("train", i)

    def heldout_sequences(self, seq_len: int, max_sequences: int) -> np.ndarray:
        """Held-out documents (block order) cut into consecutive ``[L+1]`` windows of stride L, at most
        ``max_sequences``; reads only the first ``max_sequences * L + 1`` held-out tokens."""
        need = max(0, max_sequences) * seq_len + 1
        parts: list[np.ndarray] = []
        have = 0
        for i in range(self.manifest.heldout_blocks):
            if have >= need:
                break
            tokens, _ = self.block("heldout", i)
            parts.append(np.array(tokens[: need - have]))
            have += len(parts[-1])
        toks = np.concatenate(parts) if parts else np.zeros(0, dtype=self.tokenizer.dtype)
        n = min(max_sequences, max(0, (len(toks) - 1) // seq_len))
        if n == 0:
            return np.zeros((0, seq_len + 1), dtype=self.tokenizer.dtype)
        return toks[np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)]

    def source_meta(self) -> dict[str, Any]:
        """What a packed phase records about its input: the set's digest and curation statistics."""
        return {"digest": self.manifest.digest, "curation": self.manifest.curation}


def _row_files(rows: np.ndarray) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, ``{"bytes", "xxh64"}``) of every block file of these index rows."""
    for row in rows:
        split, stem = SPLITS[int(row["split"])], block_stem(int(row["file"]), int(row["chunk"]))
        for kind in BLOCK_KINDS:
            entry = row[_KIND_FIELD[kind]]
            yield block_file(stem, split, kind), {"bytes": int(entry["bytes"]), "xxh64": f"{int(entry['xxh64']):016x}"}


@functools.lru_cache(maxsize=256)
def _npy_header(descr: str, count: int) -> bytes:
    """The header tokenize writes before a 1-D array of ``count`` items of ``descr`` (``.npy`` format 1.0)."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": (count,)})
    return f.getvalue()


def _open_block_file(path: Path | str, dtype: np.dtype, count: int, mmap: bool) -> np.ndarray:
    """A block's 1-D ``.npy`` file whose dtype and length the manifest gives: when the file starts with exactly the
    header those imply and has exactly their size, its data is memory-mapped read-only (``mmap``) or read, skipping
    ``np.load``'s header parsing and second open; any other file goes to ``np.load``, which reads (or refuses) it.
    Plain descriptor calls (no Python file object): ~15 us a file here against ~36 through ``open``."""
    header = _npy_header(np.lib.format.dtype_to_descr(dtype), count)
    nbytes = count * dtype.itemsize
    fd = os.open(path, os.O_RDONLY)
    try:
        if os.fstat(fd).st_size == len(header) + nbytes and os.pread(fd, len(header), 0) == header:
            if count == 0:
                return np.zeros(0, dtype=dtype)
            if mmap:
                return np.frombuffer(mmap_module.mmap(fd, 0, access=mmap_module.ACCESS_READ), dtype=dtype,
                                     count=count, offset=len(header))
            out = np.empty(count, dtype=dtype)
            if os.preadv(fd, [memoryview(out).cast("B")], len(header)) == nbytes:
                return out
    finally:
        os.close(fd)
    return np.load(path, mmap_mode="r" if mmap else None)


# ------------------------------------------------------------------------------------------ encoding handle


@dataclass(frozen=True)
class EncodingRef:
    """A picklable handle on the encoding tokenize tasks use: its identity and, for a trained BPE, its rank file."""

    info: TokenizerInfo
    rank_file: str | None = None

    def load(self):
        return load_tokenizer(self.info, rank_file=self.rank_file)


def load_encoding(spec: dict[str, str]):  # TODO(lead): removed once eval/export take TokenizerInfo
    """Transitional: an encoding from the old ``{"kind", "name"|"path"}`` dict."""
    from mixlab.tokenizer import load_ranks, named_encoding

    if spec["kind"] == "tiktoken":
        return named_encoding(spec["name"])
    return load_ranks(Path(spec["path"]), spec.get("name", "mixlab-bpe"))
