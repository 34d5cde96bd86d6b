"""Tokenize once per source: curated documents -> token shard (train + held-out split, document boundaries).

Contract:
- Input: a folder of curated documents, ``*.jsonl``, ``*.jsonl.gz`` or ``*.jsonl.zst`` (datatrove's JsonlWriter
  output: ``{"text", "id", "metadata"}``), read in sorted file order.
- Held-out split: the ``heldout_docs`` documents with the smallest ``xxh64(id, seed)`` are held out; the choice
  depends only on ids and seed, never on file order or worker count.
- Output folder (written to a temporary sibling, then renamed): ``train_tokens.npy`` / ``heldout_tokens.npy``
  (flat, every document followed by EOS), ``train_doc_ends.npy`` / ``heldout_doc_ends.npy`` (int64 cumulative
  ends), ``docs.parquet`` (id, split, tokens, bytes per document) and ``meta.json`` (counts, the
  :class:`~mixlab.tokenizer.TokenizerInfo`, and the size and xxh64 of every file: ``TokenShard.verified()``
  checks them before the shard is read).
- Encoding runs in ``workers`` processes over ordered chunks (``imap``): identical bytes for any worker count.
  tiktoken releases little to threads (2 threads: 6.1 MB/s vs 10.4 MB/s with 2 processes, ANCHORS.md). The
  parent loads the encoding and picks its fastest exact backend once (:func:`mixlab.tokenizer_backends.
  select_backend`: gigatoken for cl100k_base / o200k_base, 4.8-12x tiktoken per core, ids checked equal to
  :func:`mixlab.tokenizer.encode_document` on probe texts before it is chosen; tiktoken otherwise) and, on Linux,
  forks the workers, which inherit both; elsewhere they are spawned and load them themselves. Workers return each
  chunk as one ``array.array`` plus lengths (compact to pickle).
"""

from __future__ import annotations

import array
import json
import multiprocessing as mp
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from mixlab.errors import CorruptOutputError
from mixlab.jsonl import read_jsonl
from mixlab.tokenizer import TokenizerInfo, load_tokenizer, token_dtype
from mixlab.workspace import digests, verify

DOC_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst")
SHARD_FILES = frozenset({"train_tokens.npy", "train_doc_ends.npy", "heldout_tokens.npy", "heldout_doc_ends.npy",
                         "docs.parquet"})


def iter_documents(folder: Path) -> Iterator[dict[str, Any]]:
    """Documents of a curated folder in sorted file order (each a dict with ``text`` and ``id``)."""
    files = sorted(p for p in Path(folder).rglob("*") if p.name.endswith(DOC_SUFFIXES))
    for path in files:
        yield from read_jsonl(path)  # a damaged file or a non-JSON line raises, naming the file and line


# ------------------------------------------------------------------------------ worker-side encoding
_ENC: Any = None
_BACKEND: Any = None  # mixlab.tokenizer_backends.Backend chosen for _ENC (ids equal to encode_document)
_ENC_KEY: tuple | None = None
_TYPECODE = {np.dtype(np.uint16): "H", np.dtype(np.uint32): next(c for c in "IL" if array.array(c).itemsize == 4)}
_FORK = sys.platform.startswith("linux")  # fork is unsafe on macOS and absent on Windows


@dataclass(frozen=True)
class EncodingRef:
    """A picklable handle on the encoding workers use: its identity and, for a trained BPE, its rank file."""

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


def _init_worker(ref: EncodingRef) -> None:
    """Make ``ref``'s encoding this process's; reused while the identity (a content hash) is the same."""
    global _ENC, _BACKEND, _ENC_KEY
    key = (ref.info.hash,)
    if _ENC is None or key != _ENC_KEY:
        from mixlab.tokenizer_backends import select_backend

        enc = ref.load()
        _ENC, _BACKEND, _ENC_KEY = enc, select_backend(enc), key


def _encode_chunk(texts: list[str]) -> tuple[array.array, list[int]]:
    """The ids of every text followed by EOT, concatenated, and each text's length in tokens."""
    enc = _ENC
    eot = enc.eot_token
    out = array.array(_TYPECODE[token_dtype(enc.n_vocab)])
    lengths = []
    for ids in _BACKEND.encode_batch_ordinary(texts):
        ids = list(ids)
        ids.append(eot)
        out.fromlist(ids)
        lengths.append(len(ids))
    return out, lengths


def _split(chunks: Iterable[tuple[array.array, list[int]]]) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for buf, lengths in chunks:
        out += np.split(np.frombuffer(buf, dtype=buf.typecode), np.cumsum(lengths)[:-1])
    return out


def encode_all(texts: list[str], ref: EncodingRef, workers: int, chunk_docs: int = 64) -> list[np.ndarray]:
    """Token ids of each text followed by EOT (uint16/uint32 as ``token_dtype``), the same for any ``workers``."""
    chunks = [texts[i : i + chunk_docs] for i in range(0, len(texts), chunk_docs)]
    _init_worker(ref)  # forked workers inherit it
    if workers <= 1 or len(chunks) <= 1:
        return _split(map(_encode_chunk, chunks))
    if _FORK:
        pool = mp.get_context("fork").Pool(workers)
    else:
        pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(ref,))
    with pool:
        return _split(pool.imap(_encode_chunk, chunks))


@dataclass(frozen=True)
class TokenShard:
    """A tokenized source on disk."""

    path: Path

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / "meta.json").read_text())

    @property
    def tokenizer(self) -> TokenizerInfo:
        return TokenizerInfo.model_validate(self.meta["tokenizer"])

    def problems(self) -> list[str]:
        """Why this shard must not be read (missing meta, files differing from their recorded digests)."""
        if not (self.path / "meta.json").is_file():
            return [f"{self.path}: no meta.json (never finished)"]
        try:
            recorded = self.meta.get("files")
        except ValueError:
            return [f"{self.path}/meta.json: not valid JSON"]
        if not recorded or set(recorded) != SHARD_FILES:
            return [f"{self.path}/meta.json: records no digests of {sorted(SHARD_FILES)} (an older mixlab wrote it)"]
        return verify(self.path, recorded)

    def verified(self) -> TokenShard:
        """This shard after checking every file against its recorded digest (module contract)."""
        problems = self.problems()
        if problems:
            raise CorruptOutputError(
                "token shard damaged: " + "; ".join(problems) + ". Re-run the recipe: the tokenize stage rebuilds it"
            )
        return self

    def train_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(flat training tokens as a memory map, cumulative document ends)."""
        return np.load(self.path / "train_tokens.npy", mmap_mode="r"), np.load(self.path / "train_doc_ends.npy")

    def heldout_sequences(self, seq_len: int, max_sequences: int) -> np.ndarray:
        """Held-out documents cut into consecutive [L+1] windows (at most ``max_sequences``)."""
        toks = np.load(self.path / "heldout_tokens.npy")
        n = min(max_sequences, max(0, (len(toks) - 1) // seq_len))
        idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)
        return toks[idx] if n else np.zeros((0, seq_len + 1), dtype=toks.dtype)


def tokenize_source(
    curated: Path, out_dir: Path, ref: EncodingRef, *, heldout_docs: int, seed: int, workers: int = 1,
    extra_meta: dict[str, Any] | None = None,
) -> TokenShard:
    """Tokenize every curated document of one source into a :class:`TokenShard` at ``out_dir``."""
    docs = [(str(d.get("id", i)), d["text"]) for i, d in enumerate(iter_documents(curated))]
    if not docs:
        raise ValueError(f"{curated}: no curated documents; check the source's path and its curation statistics")
    keys = np.array([xxhash.xxh64_intdigest(doc_id.encode(), seed=seed) for doc_id, _ in docs], dtype=np.uint64)
    n_held = min(heldout_docs, len(docs) // 2)
    held = np.zeros(len(docs), dtype=bool)
    held[np.argsort(keys, kind="stable")[:n_held]] = True
    encoded = encode_all([t for _, t in docs], ref, workers)

    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    dtype = encoded[0].dtype
    for split, mask in (("train", ~held), ("heldout", held)):
        parts = [a for a, m in zip(encoded, mask, strict=True) if m]
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
        np.save(tmp / f"{split}_tokens.npy", flat)
        np.save(tmp / f"{split}_doc_ends.npy", np.cumsum([len(a) for a in parts], dtype=np.int64))
    doc_bytes = [len(t.encode("utf-8", "surrogatepass")) for _, t in docs]
    pq.write_table(
        pa.table({
            "id": [d for d, _ in docs],
            "split": ["heldout" if h else "train" for h in held],
            "tokens": [len(a) for a in encoded],
            "bytes": doc_bytes,
        }),
        tmp / "docs.parquet",
    )
    train_tokens = int(sum(len(a) for a, h in zip(encoded, held, strict=True) if not h))
    meta = {
        "documents": len(docs), "heldout_documents": int(held.sum()), "train_tokens": train_tokens,
        "heldout_tokens": int(sum(len(a) for a, h in zip(encoded, held, strict=True) if h)),
        "bytes": sum(doc_bytes), "dtype": dtype.name,
        "digest": xxhash.xxh64(np.load(tmp / "train_tokens.npy", mmap_mode="r")).hexdigest(),  # no copy
        "tokenizer": ref.info.model_dump(mode="json"),
        **(extra_meta or {}),
        "files": digests(tmp, sorted(SHARD_FILES)),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return TokenShard(out_dir)
