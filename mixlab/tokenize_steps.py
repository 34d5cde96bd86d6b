"""Tokenize one source as a datatrove pipeline: curated documents -> token shard set (see :mod:`mixlab.shards`).

Contracts:
- Pipeline: :class:`CuratedReader` (task ``r`` of ``n`` reads input files ``r, r+n, ...`` of the sorted list,
  through :func:`mixlab.jsonl.read_jsonl`, tagging each document with its file index) -> :class:`TokenizeBlocks`
  (encodes batches of ``batch_docs`` documents with the fastest exact backend,
  :func:`mixlab.tokenizer_backends.select_backend`, appends ``eos_id`` to every document, splits train/held-out
  per document and writes a block file once ``block_tokens`` tokens are buffered). Memory is one buffer per
  split (about ``block_tokens`` tokens) plus one batch, whatever the size of the source.
- Output bytes depend only on the input files, the encoding, ``seed``, the held-out fraction and
  ``block_tokens``: block names come from file index + chunk counter, never from the task rank, so 1 or N
  tasks, 1 or N workers, local, Slurm or Ray executor all give the same files.
- :func:`tokenize_source` runs the tasks with :func:`mixlab.executors.run_pipeline` in a build folder beside the
  output (``.<name>.build/``: ``blocks/``, ``index/`` (one JSON per block: counts and file digests, computed by
  the task that wrote it) and ``logs/`` (datatrove's, with its completion markers)). A killed run re-run with
  the same ``tasks`` skips the tasks marked complete; a task that did not finish rewrites its blocks (each file
  is written to a temporary name and renamed). Changing ``tasks`` or ``block_tokens`` restarts the build. When
  every task is complete the block index (``blocks.npy``, one row per block, from the per-block records read one
  at a time) and the manifest are written, ``blocks/`` is renamed to the output and the build folder is removed.
"""

from __future__ import annotations

import array
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from mixlab.errors import CorruptOutputError, MixlabError
from mixlab.jsonl import read_jsonl
from mixlab.shards import (
    BLOCK_KINDS,
    INDEX,
    INDEX_DTYPE,
    MANIFEST,
    SPLITS,
    EncodingRef,
    FileEntry,
    TokenSetManifest,
    TokenShardSet,
    block_file,
    block_stem,
    doc_key,
    heldout_threshold,
    index_row,
    list_document_files,
)
from mixlab.sources.base import text_nbytes
from mixlab.tokenizer import token_dtype
from mixlab.workspace import digest, write_json_atomic

DEFAULT_BLOCK_TOKENS = 1 << 26
BATCH_DOCS = 256
_TYPECODE = {np.dtype(np.uint16): "H", np.dtype(np.uint32): next(c for c in "IL" if array.array(c).itemsize == 4)}
_BACKENDS: dict[str, tuple[Any, Any]] = {}  # encoding hash -> (encoding, backend), one per process


def _backend(ref: EncodingRef) -> tuple[Any, Any]:
    if ref.info.hash not in _BACKENDS:
        from mixlab.tokenizer_backends import select_backend

        enc = ref.load()
        _BACKENDS[ref.info.hash] = (enc, select_backend(enc))
    return _BACKENDS[ref.info.hash]


class CuratedReader(PipelineStep):
    """Documents of the curated files this task owns (file indices ``rank::world_size``), in file order."""

    type = "📖 - READER"
    name = "mixlab curated reader"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        files = list_document_files(self.folder)
        for index in range(rank, len(files), world_size):
            path = Path(self.folder) / files[index]
            for n, record in enumerate(read_jsonl(path)):
                self.stat_update("documents")
                doc_id = record.get("id")
                yield Document(text=record["text"], id=str(doc_id) if doc_id is not None else f"{files[index]}:{n}",
                               metadata={"file_index": index})


class _Buffer:
    """One split's pending block of one input file: documents until ``block_tokens`` tokens, then a flush."""

    def __init__(self, step: TokenizeBlocks, split: str, file_index: int):
        self.step, self.split, self.file_index, self.chunk = step, split, file_index, 0
        self._reset()

    def _reset(self) -> None:
        self.parts: list[np.ndarray] = []
        self.ids: list[str] = []
        self.nbytes: list[int] = []
        self.tokens = 0

    def add(self, doc_id: str, ids: np.ndarray, nbytes: int) -> None:
        self.parts.append(ids)
        self.ids.append(doc_id)
        self.nbytes.append(nbytes)
        self.tokens += len(ids)
        if self.tokens >= self.step.block_tokens:  # decided per document: independent of batch boundaries
            self.flush()

    def flush(self) -> None:
        if not self.ids:
            return
        stem = block_stem(self.file_index, self.chunk)
        out = Path(self.step.output_folder)
        lengths = np.fromiter((len(p) for p in self.parts), dtype=np.int64, count=len(self.parts))
        names = {kind: block_file(stem, self.split, kind) for kind in BLOCK_KINDS}
        tmp = {kind: out / f".{name}.tmp-{os.getpid()}" for kind, name in names.items()}
        with open(tmp["tokens.npy"], "wb") as f:  # the .npy header, then the documents: no concatenated copy
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(self.step.dtype),
                                                     "fortran_order": False, "shape": (self.tokens,)})
            for part in self.parts:
                f.write(part.tobytes())
        with open(tmp["lengths.npy"], "wb") as f:  # a file object: np.save would append ".npy" to the name
            np.save(f, lengths)
        table = pa.table({"id": pa.array(self.ids, pa.string()), "tokens": pa.array(lengths, pa.int64()),
                          "bytes": pa.array(self.nbytes, pa.int64())})
        pq.write_table(table, tmp["docs.parquet"])
        files = {}
        for kind, name in names.items():
            files[name] = {"bytes": tmp[kind].stat().st_size, "xxh64": digest(tmp[kind])}
            os.replace(tmp[kind], out / name)
        record = {"split": self.split, "name": stem, "documents": len(self.ids), "tokens": self.tokens,
                  "bytes": sum(self.nbytes), "files": files}
        index = Path(self.step.index_folder) / f"{stem}.{self.split}.json"  # renamed into place, not fsynced:
        index.with_name(f".{index.name}.tmp").write_text(json.dumps(record))  # a killed task leaves no half file
        os.replace(index.with_name(f".{index.name}.tmp"), index)
        self.step.stat_update(f"{self.split}_blocks")
        self.chunk += 1
        self._reset()


class TokenizeBlocks(PipelineStep):
    """Encode documents (EOS appended), split train/held-out per document, write block files (module contract)."""

    type = "🔢 - TOKENIZER"
    name = "mixlab token blocks"

    def __init__(self, output_folder: str, index_folder: str, ref: EncodingRef, *, seed: int,
                 heldout_fraction: float, block_tokens: int = DEFAULT_BLOCK_TOKENS, batch_docs: int = BATCH_DOCS):
        super().__init__()
        if block_tokens < 1:
            raise ValueError(f"block_tokens must be positive, got {block_tokens}")
        self.output_folder, self.index_folder, self.ref = output_folder, index_folder, ref
        self.seed, self.threshold = seed, heldout_threshold(heldout_fraction)
        self.block_tokens, self.batch_docs = block_tokens, batch_docs
        self.dtype = token_dtype(ref.info.vocab_size)

    def _encode(self, batch: list[Document], buffers: dict[str, _Buffer]) -> None:
        _, backend = _backend(self.ref)
        eos = self.ref.info.eos_id
        with self.track_time(unit="batch"):
            flat = array.array(_TYPECODE[self.dtype])
            lengths = []
            for ids in backend.encode_batch_ordinary([d.text for d in batch]):
                if isinstance(ids, list):
                    flat.fromlist(ids)
                else:
                    flat.extend(ids)
                flat.append(eos)
                lengths.append(len(ids) + 1)
            tokens = np.frombuffer(flat, dtype=self.dtype)  # documents are views of this batch buffer
            counts = {split: [0, 0] for split in SPLITS}
            end = 0
            for doc, n in zip(batch, lengths, strict=True):
                split = "heldout" if doc_key(doc.id, self.seed) < self.threshold else "train"
                buffers[split].add(doc.id, tokens[end : end + n], text_nbytes(doc.text))
                counts[split][0] += 1
                counts[split][1] += n
                end += n
            for split, (docs, ntok) in counts.items():
                self.stat_update(f"{split}_documents", value=docs)
                self.stat_update(f"{split}_tokens", value=ntok)
        batch.clear()

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        for folder in (self.output_folder, self.index_folder):
            Path(folder).mkdir(parents=True, exist_ok=True)
        batch: list[Document] = []
        buffers: dict[str, _Buffer] = {}
        current = None
        for doc in data or ():
            index = doc.metadata["file_index"]
            if index != current:  # a new input file: finish the previous one's blocks
                if batch:
                    self._encode(batch, buffers)
                for b in buffers.values():
                    b.flush()
                buffers, current = {s: _Buffer(self, s, index) for s in SPLITS}, index
            batch.append(doc)
            if len(batch) >= self.batch_docs:
                self._encode(batch, buffers)
        if batch:
            self._encode(batch, buffers)
        for b in buffers.values():
            b.flush()
        yield from ()


def _assemble(build: Path, manifest_fields: dict[str, Any]) -> TokenSetManifest:
    """Write the block index of the finished blocks in ``build`` (leftover temporary files removed) and return the
    sealed manifest. Reads the per-block records one at a time: memory is one index row per block."""
    rows: list[tuple] = []
    total_bytes = 0
    for path in (build / "index").glob("*.json"):
        rec = json.loads(path.read_text())
        file_index, chunk = (int(part) for part in rec["name"].split("-"))
        rows.append(index_row(rec["split"], file_index, chunk, rec["documents"], rec["tokens"], rec["files"]))
        total_bytes += rec["bytes"]
    index = np.array(rows, dtype=INDEX_DTYPE)
    del rows
    index = index[np.lexsort((index["chunk"], index["file"], index["split"]))]  # train, then held-out; (file, chunk)
    blocks = build / "blocks"
    indexed = {(SPLITS[int(r["split"])], block_stem(int(r["file"]), int(r["chunk"]))) for r in index}
    for p in blocks.iterdir():
        stem, _, rest = p.name.partition(".")
        split, _, kind = rest.partition(".")
        if (split, stem) not in indexed or kind not in BLOCK_KINDS:  # temporary or unrecorded files of killed tasks
            p.unlink()
    del indexed
    tmp = blocks / f".{INDEX}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to the name
        np.save(f, index, allow_pickle=False)
    entry = FileEntry(bytes=tmp.stat().st_size, xxh64=digest(tmp))
    os.replace(tmp, blocks / INDEX)
    train, held = index[index["split"] == 0], index[index["split"] == 1]
    return TokenSetManifest(
        **manifest_fields, documents=int(index["documents"].sum()), train_documents=int(train["documents"].sum()),
        heldout_documents=int(held["documents"].sum()), train_tokens=int(train["tokens"].sum()),
        heldout_tokens=int(held["tokens"].sum()), bytes=total_bytes, train_blocks=len(train),
        heldout_blocks=len(held), index=entry,
    ).seal()


def tokenize_source(
    curated: Path, out_dir: Path, ref: EncodingRef, *, source: str, seed: int, heldout_fraction: float,
    curation: dict[str, Any] | None = None, expected_documents: int | None = None, executor: str = "local",
    tasks: int = 1, workers: int = 1, block_tokens: int = DEFAULT_BLOCK_TOKENS, batch_docs: int = BATCH_DOCS,
    **executor_kwargs: Any,
) -> TokenShardSet:
    """Tokenize the curated documents of one source into a :class:`~mixlab.shards.TokenShardSet` at ``out_dir``.

    ``expected_documents`` (the curation's ``docs_kept``), when given, must equal the documents read."""
    curated, out_dir = Path(curated), Path(out_dir)
    inputs = list_document_files(curated)
    if not inputs:
        raise MixlabError(f"{curated}: no curated documents; check the source's path and its curation statistics")
    tasks = max(1, min(tasks, len(inputs)))  # a task without input files would only cost a launch
    build = out_dir.with_name(f".{out_dir.name}.build")
    plan = {"inputs": inputs, "tasks": tasks, "block_tokens": block_tokens, "seed": seed,
            "heldout_fraction": heldout_fraction, "tokenizer": ref.info.hash}
    plan_file = build / "plan.json"
    if build.exists() and (not plan_file.is_file() or json.loads(plan_file.read_text()) != plan):
        for stale in ("blocks", "index", "logs"):  # another layout: other tasks' markers would mean other files
            shutil.rmtree(build / stale, ignore_errors=True)
    build.mkdir(parents=True, exist_ok=True)
    write_json_atomic(plan_file, plan)
    steps = [
        CuratedReader(str(curated)),
        TokenizeBlocks(str(build / "blocks"), str(build / "index"), ref, seed=seed,
                       heldout_fraction=heldout_fraction, block_tokens=block_tokens, batch_docs=batch_docs),
    ]
    from mixlab.executors import run_pipeline

    run_pipeline(steps, executor=executor, tasks=tasks, workers=workers, logging_dir=build / "logs",
                 job_name=f"mixlab-tokenize-{source}", **executor_kwargs)
    (build / "blocks").mkdir(exist_ok=True)
    (build / "index").mkdir(exist_ok=True)
    manifest = _assemble(build, {"source": source, "tokenizer": ref.info, "seed": seed, "block_tokens": block_tokens,
                                 "heldout_fraction": heldout_fraction, "curation": curation or {}})
    if manifest.documents == 0:
        raise MixlabError(f"{curated}: no curated documents; check the source's path and its curation statistics")
    if expected_documents is not None and manifest.documents != expected_documents:
        shutil.rmtree(build, ignore_errors=True)
        raise CorruptOutputError(
            f"{curated}: {manifest.documents} documents read but its curation statistics record "
            f"{expected_documents} kept; the curated folder changed after curation: re-run the recipe's curate stage"
        )
    write_json_atomic(build / "blocks" / MANIFEST, manifest.model_dump_json(indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(build / "blocks", out_dir)
    shutil.rmtree(build, ignore_errors=True)
    return TokenShardSet(out_dir)
