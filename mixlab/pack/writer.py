"""Write one packed phase in shards: plan, write each shard as an independent task, recount, manifest, rename.

Contract (see ``../shared/design/ARCHITECTURE.md``, "Exact proportions"):
- N = requested_tokens // (seq_len * batch_size) * batch_size sequences; n_k = Hamilton(w_k, N); sequence i
  comes from source ``order[i]`` (Tijdeman interleave), all planned by :func:`mixlab.pack.plan.plan_phase`,
  whose supply check (naming source, need and supply) runs before anything is allocated or written.
- Shard j holds sequences ``[bounds[j], bounds[j+1])`` (``shard_sequences`` each, the last fewer) in the files
  of :func:`mixlab.pack.manifest.shard_files`: tokens [n_j, L+1] (uint16, or uint32 past a 65,536-id
  vocabulary), source ids (uint8) and ledger positions of each sequence's first token (int64: with
  :func:`mixlab.pack.ledger.locate` every token maps back to its source document). Each file holds exactly the
  bytes ``np.save`` writes for that array (:func:`npy_header` + the C-order data).
- Shard j is computed from the plan alone (:func:`write_shard`): its slice of the order from
  ``state_at(checkpoints[j])``, each source's windows read from that source's ledger over
  ``window_span(start_k, L, checkpoints[j, k], checkpoints[j+1, k])`` one block at a time, straight into the
  shard's rows (:func:`mixlab.pack.source.read_windows`). Memory: one shard (reused from shard to shard by a
  task) plus one block of a source, never an epoch or the phase. The bytes do not depend on how shards are
  spread over tasks: ``tasks`` ranks (a datatrove :class:`PackShards` step, rank r writing shards r, r+W, ...)
  on the ``local``, ``slurm`` or ``ray`` executor (:func:`mixlab.executors.run_pipeline`; a local run with one
  worker calls the step in-process, without datatrove's logging) give identical files for any ``tasks``, and
  the compiled kernels or their Python counterparts (``ShardJob.jit``, see :mod:`mixlab.pack.order`) give
  identical files too.
- Resumable and atomic: shards are written into ``.<phase>.partial/`` beside ``out_dir`` (each file to a
  temporary name, renamed, then a ``.<j>.done.json`` marker with its sizes, checksums and counts); a rerun of the
  same plan keeps finished shards whose files still have their recorded sizes and xxh64 and writes the others.
  When every shard is done, the counts are recounted from the shard files (per shard and in total), the manifest
  is written (fsynced), and the folder is renamed to ``out_dir``: a killed pack leaves no folder a loader accepts.
- Checksums are taken from the bytes in memory as they are written (by the token file's writer thread, block by
  block), not by reading the files back. Token files are written through O_DIRECT (:class:`BlockWriter`; the
  last partial block and the small sidecars through the page cache) and no file is fsynced, like the tokenize
  stage's blocks: a killed process loses nothing it wrote, and after an OS crash a file whose bytes never reached
  the disk no longer matches the size or xxh64 that its marker and the manifest record, which a resumed pack and
  ``open_phase`` (``verify=True``, the default, and the pack stage's reuse check) refuse.

Measured (2-core shared VM, ``benchmarks/results/pack_speed.md``): 400M uint16 tokens in 1.1 s with default
shards, 2.0 s in 191 shards of 2,048 sequences (was 3.7 s and 4.5-12.6 s); the pack of x10 / x100 / x1000 of the
sample (6.8M / 68M / 679M cl100k tokens, uint32) in 0.03 / 0.21 / 1.7-2.4 s, 3-5% of tokenizing them (see
``benchmarks/bench_pack_vs_tokenize.py``; x1000 was 12.4 s, mostly this VM putting 2.7 GB into the page cache).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
from datatrove.pipeline.base import PipelineStep

from mixlab.errors import MixlabError
from mixlab.pack.blockorder import BlockLayout, BlockTable, window_span
from mixlab.pack.ledger import MixtureError
from mixlab.pack.manifest import (
    MANIFEST,
    FileEntry,
    PhaseManifest,
    ShardEntry,
    SourceEntry,
    file_entry,
    recount_shards,
    shard_files,
    write_json_atomic,
)
from mixlab.pack.order import JIT_MIN_STEPS, interleave_chunk, jit_started, state_at
from mixlab.pack.plan import DEFAULT_SHARD_SEQUENCES, PhasePlan, plan_phase
from mixlab.pack.source import TokenSource, layout_of, read_windows
from mixlab.workspace import BlockWriter, write_in_pieces


class PackIncomplete(MixlabError):
    """The pack tasks ended with shards missing (a failed task); finished shards are kept for the rerun."""


@dataclass(frozen=True)
class ShardJob:
    """Everything a task needs to write any shard of one phase (picklable: sources open their files lazily)."""

    folder: Path
    sources: tuple[TokenSource, ...]  # in source-id order
    layouts: tuple[BlockLayout, ...]  # each source's block layout, read once by pack_phase
    starts: tuple[int, ...]
    counts: tuple[int, ...]
    bounds: np.ndarray
    checkpoints: np.ndarray
    seq_len: int
    seed: int
    dtype: str
    jit: bool = True  # compiled kernels, or their Python statements for a phase too small to start numba

    @property
    def num_shards(self) -> int:
        return len(self.bounds) - 1


def _marker(folder: Path, j: int) -> Path:
    return folder / f".{j:05d}.done.json"


def shard_done(job: ShardJob, j: int, verify: bool = False) -> bool:
    """True when shard j's files are complete: its marker exists and every file has the recorded size (and, with
    ``verify``, the recorded xxh64: a resumed pack checks the bytes, which were not fsynced)."""
    marker = _marker(job.folder, j)
    if not marker.exists():
        return False
    try:
        files = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError):
        return False
    for name, entry in files.items():
        path = job.folder / name
        if not path.is_file() or path.stat().st_size != entry["bytes"]:
            return False
        if verify and file_entry(path).xxh64 != entry["xxh64"]:
            return False
    return True


CHUNK_BYTES = 1 << 24  # rows built at a time outside a BlockWriter (build_shard): 16 MiB, ~2,000 rows of 2,049 uint32


class ShardBuffer:
    """What one task reuses from shard to shard: per source, the table of the block its last window came from (the
    next chunk or shard continues in it), and the memory chunks of token rows are built in (``CHUNK_BYTES``).

    Rows are built and written a chunk at a time rather than a whole shard (537 MB of uint32 tokens at the default
    65,536 sequences of 2,049): memory this VM hands out fresh costs ~0.2-1 s/GB to fault in, ~2-2.7 s/GB once it
    has taken it back, so a shard-sized buffer cost a fresh pack process up to ~1.4 s. Token files are written
    through a :class:`BlockWriter`, whose ``claim`` hands out the file's next bytes in its blocks: rows are built in
    place there, and ``_mem`` serves only :func:`build_shard` and rows larger than a block. Peak RSS at x1000: 996 MB
    with shard buffers, 99 MB now."""

    def __init__(self) -> None:
        self._mem = np.empty(0, dtype=np.uint8)
        self.tables: dict[int, dict[tuple[int, int], BlockTable]] = {}
        self.claim: Callable[[int], memoryview | None] | None = None  # a BlockWriter's, while it writes tokens
        self.chunk_bytes = 0  # the size of that writer's blocks (rows are built a block at a time), else CHUNK_BYTES

    def tokens(self, rows: int, width: int, dtype: np.dtype) -> np.ndarray:
        """An uninitialized C-contiguous ``[rows, width]`` array of ``dtype``: the file's next bytes in the
        BlockWriter's block while ``claim`` is set (no copy when written), else over the reused memory."""
        need = rows * width * dtype.itemsize
        region = self.claim(need) if self.claim is not None else None
        if region is not None:
            return np.frombuffer(region, dtype=dtype).reshape(rows, width)
        if self._mem.nbytes < need:
            self._mem = np.empty(0, dtype=np.uint8)  # free the old memory before taking the larger one
            self._mem = np.empty(need, dtype=np.uint8)
        return self._mem[:need].view(dtype).reshape(rows, width)


@dataclass(frozen=True)
class _ShardLayout:
    """Shard j's sidecars and, per source with sequences in it, its first ledger position and rows (rising)."""

    order: np.ndarray  # uint8 [n_j]
    positions: np.ndarray  # int64 [n_j]
    reads: tuple[tuple[int, int, np.ndarray], ...]  # (source id, ledger position of its first window, rows)


def _shard_layout(job: ShardJob, j: int) -> _ShardLayout:
    lo, hi, L = int(job.bounds[j]), int(job.bounds[j + 1]), job.seq_len
    order, _ = interleave_chunk(job.counts, state_at(job.checkpoints[j]), hi - lo, jit=job.jit)
    positions = np.empty(hi - lo, dtype=np.int64)
    reads = []
    for sid in range(len(job.sources)):
        a, b = int(job.checkpoints[j, sid]), int(job.checkpoints[j + 1, sid])
        if a == b:
            continue
        p, _ = window_span(job.starts[sid], L, a, b)
        rows = np.flatnonzero(order == sid)  # b - a rows: the order holds source sid exactly that often
        positions[rows] = p + np.arange(b - a, dtype=np.int64) * L
        reads.append((sid, p, rows))
    return _ShardLayout(order, positions, tuple(reads))


def _token_chunks(job: ShardJob, layout: _ShardLayout, buffer: ShardBuffer) -> Iterator[np.ndarray]:
    """Shard rows ``[r0, r1)`` chunk after chunk (views into ``buffer``, valid until the next one): in each,
    every source's windows whose rows fall there, read from its ledger by :func:`read_windows`."""
    n, L, dtype = len(layout.order), job.seq_len, np.dtype(job.dtype)
    step = max(1, (buffer.chunk_bytes or CHUNK_BYTES) // ((L + 1) * dtype.itemsize))
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        out = buffer.tokens(r1 - r0, L + 1, dtype)
        for sid, p, rows in layout.reads:
            i0, i1 = (int(i) for i in np.searchsorted(rows, (r0, r1)))
            if i0 < i1:  # windows i0..i1-1 of this source: ledger from p + i0 L
                read_windows(job.sources[sid], job.layouts[sid], job.seed, p + i0 * L, L, out, rows[i0:i1] - r0,
                             buffer.tables.setdefault(sid, {}), jit=job.jit)
        yield out


def build_shard(job: ShardJob, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tokens [n_j, L+1], source ids [n_j], ledger positions [n_j]) of shard j, from the plan alone, in memory
    (:func:`write_shard` writes the same tokens a chunk at a time)."""
    layout = _shard_layout(job, j)
    return np.concatenate([c.copy() for c in _token_chunks(job, layout, ShardBuffer())]), layout.order, layout.positions


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The header ``np.save`` writes before a C-order array of ``shape`` and ``dtype`` (format 1.0)."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)})
    return f.getvalue()


def _write_npy(final: Path, shape: tuple[int, ...], dtype: np.dtype, chunks: Iterable[np.ndarray],
               buffer: ShardBuffer | None = None) -> dict[str, Any]:
    """Write the C-order bytes of an array of ``shape`` given as ``chunks`` (consecutive rows) exactly as ``np.save``
    would, to a temporary name renamed to ``final``; return its size and the xxh64 of the bytes written (hashed
    from memory: the file is not read back). With ``buffer`` (the token files), through O_DIRECT by a
    :class:`BlockWriter` whose blocks the buffer's chunks are built in, hashed and written by its thread while the
    next chunk is built; else (the small sidecars) hashed here and written to the page cache 256 KiB a write.

    Token files bypass the page cache at every size: x100's pack (269 MB) took 0.20-0.25 CPU s against 0.31-0.32
    through the page cache (the kernel's copy into it, 0.06-0.07 s; wall 0.18-0.22 against 0.22-0.23), and past
    ~1 GiB new page cache costs this VM 2.2 s/GB. The trainer then reads them from disk (1.4-2.3 GB/s here)."""
    header = npy_header(shape, dtype)
    expected = len(header) + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if buffer is not None:
        with BlockWriter(tmp) as w:
            buffer.claim, buffer.chunk_bytes = w.claim, w.block_bytes
            try:
                w.write(header)
                for chunk in chunks:
                    w.write(np.ascontiguousarray(chunk, dtype=dtype))
            finally:
                buffer.claim, buffer.chunk_bytes = None, 0
        digest = w.hexdigest()
    else:
        h = xxhash.xxh64(header)
        with open(tmp, "wb") as f:
            write_in_pieces(f, header)
            for chunk in chunks:
                chunk = np.ascontiguousarray(chunk, dtype=dtype)
                h.update(chunk)
                write_in_pieces(f, chunk)
        digest = h.hexdigest()
    size = tmp.stat().st_size
    if size != expected:  # pragma: no cover - contract guard: the chunks must tile the array
        raise AssertionError(f"{tmp}: wrote {size} bytes, an array of {shape} {dtype} takes {expected}")
    os.replace(tmp, final)
    return {"bytes": size, "xxh64": digest}


def write_shard(job: ShardJob, j: int, buffer: ShardBuffer | None = None) -> None:
    """Write shard j's three files (each to a temporary name, renamed), then its done marker."""
    buffer = buffer or ShardBuffer()
    layout = _shard_layout(job, j)
    n, names = len(layout.order), shard_files(j)
    files = {
        names["tokens"]: _write_npy(job.folder / names["tokens"], (n, job.seq_len + 1), np.dtype(job.dtype),
                                    _token_chunks(job, layout, buffer), buffer),
        names["source"]: _write_npy(job.folder / names["source"], (n,), layout.order.dtype, [layout.order]),
        names["position"]: _write_npy(job.folder / names["position"], (n,), layout.positions.dtype,
                                      [layout.positions]),
    }
    counts = np.bincount(layout.order, minlength=len(job.sources)).tolist()
    marker = _marker(job.folder, j)
    tmp = marker.with_name(f"{marker.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"files": files, "sequences": counts}))
    os.replace(tmp, marker)  # renamed after the shard's files: a marker never names a file not yet in place


class PackShards(PipelineStep):
    """datatrove step: rank r of W writes shards r, r+W, r+2W, ... that are not already done."""

    name = "pack shards"
    type = "Packer"

    def __init__(self, job: ShardJob) -> None:
        super().__init__()
        self.job = job

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Any:
        buffer = ShardBuffer()
        for j in range(rank, self.job.num_shards, world_size):
            if shard_done(self.job, j, verify=True):
                self.stat_update("shards_reused")
                continue
            write_shard(self.job, j, buffer)
            self.stat_update("shards_written")
            self.stat_update("sequences", value=int(self.job.bounds[j + 1] - self.job.bounds[j]))
        return data


def run_shard_tasks(
    job: ShardJob, executor: str = "local", tasks: int = 1, workers: int = 1, **executor_kwargs: Any
) -> None:
    """Write every shard that is not done, as ``tasks`` ranks on ``executor`` (module contract)."""
    step = PackShards(job)
    if executor == "local" and workers == 1 and not executor_kwargs:
        for rank in range(tasks):  # in-process: the same ranks, without datatrove's task logging
            step.run(None, rank, tasks)
        return
    from mixlab.executors import run_pipeline

    # completions are per task count: a rerun with other `tasks` relies on the shard markers alone
    run_pipeline([step], executor=executor, tasks=tasks, workers=workers, job_name="mixlab-pack",
                 logging_dir=job.folder / ".logs" / f"tasks-{tasks}", **executor_kwargs)


def _plan_identity(plan: PhasePlan, header: Mapping[str, Any], sources: Mapping[str, TokenSource],
                   seed: int) -> str:
    body = {
        "pack_key": header.get("pack_key"), "tokenizer": header["tokenizer"].hash, "seed": seed,
        "seq_len": plan.seq_len, "dtype": plan.token_dtype, "bounds": plan.bounds.tolist(),
        "sources": {s: [p.ledger_start, p.sequences, sources[s].digest] for s, p in plan.sources.items()},
    }
    return xxhash.xxh64(json.dumps(body, sort_keys=True).encode()).hexdigest()


def pack_phase(
    out_dir: Path,
    *,
    phase: str,
    phase_index: int,
    requested_tokens: int,
    mixture: dict[str, float],
    max_repeat: float,
    sources: Mapping[str, TokenSource],
    source_meta: dict[str, dict[str, Any]],
    starts: dict[str, int],
    seq_len: int,
    batch_size: int,
    seed: int,
    header: dict[str, Any],
    check_space: Callable[[int], None] | None = None,
    shard_sequences: int = DEFAULT_SHARD_SEQUENCES,
    executor: str = "local",
    tasks: int = 1,
    workers: int = 1,
    executor_kwargs: dict[str, Any] | None = None,
) -> PhaseManifest:
    """Pack one phase into ``out_dir`` (module contract); ``header`` carries the manifest's identity fields:
    ``recipe_name``, ``recipe_hash``, ``pack_key`` and ``tokenizer`` (a :class:`~mixlab.tokenizer.TokenizerInfo`).
    ``check_space(bytes)`` runs after the supply check, before anything is allocated or written."""
    out_dir = Path(out_dir)
    names = [s for s, w in mixture.items() if w > 0]
    if requested_tokens // (seq_len * batch_size) == 0:
        raise MixtureError(
            f"phase {phase!r}: budget {requested_tokens:,} tokens is less than one batch "
            f"({batch_size} x {seq_len} = {batch_size * seq_len:,} tokens); raise `tokens`"
        )
    layouts = {s: layout_of(sources[s]) for s in names}
    supplies = {s: layouts[s].num_tokens for s in names}
    plan = plan_phase(
        phase=phase, requested_tokens=requested_tokens, seq_len=seq_len, batch_size=batch_size, mixture=mixture,
        supplies=supplies, starts=starts, max_repeat=max_repeat, shard_sequences=shard_sequences,
        vocab_size=header["tokenizer"].vocab_size,
    )
    if check_space is not None:  # e.g. refuse a phase the disk cannot hold, before writing anything
        check_space(plan.disk_bytes)

    staging = out_dir.with_name(f".{out_dir.name}.partial")
    identity = _plan_identity(plan, header, sources, seed)
    ident_file = staging / ".plan"
    if staging.exists() and (not ident_file.exists() or ident_file.read_text() != identity):
        shutil.rmtree(staging)  # written for another plan: nothing in it can be reused
    staging.mkdir(parents=True, exist_ok=True)
    ident_file.write_text(identity)
    job = ShardJob(
        folder=staging, sources=tuple(sources[s] for s in names), layouts=tuple(layouts[s] for s in names),
        starts=tuple(p.ledger_start for p in plan.sources.values()),
        counts=tuple(p.sequences for p in plan.sources.values()), bounds=plan.bounds,
        checkpoints=plan.checkpoints, seq_len=seq_len, seed=seed, dtype=plan.token_dtype,
        jit=plan.num_sequences >= JIT_MIN_STEPS or jit_started(),  # as plan_phase chose for its interleave
    )
    run_shard_tasks(job, executor, tasks, workers, **(executor_kwargs or {}))
    manifest = _manifest(job, plan, names, mixture, source_meta, phase, phase_index, header, seed)
    for j in range(job.num_shards):
        _marker(staging, j).unlink()
    ident_file.unlink()
    shutil.rmtree(staging / ".logs", ignore_errors=True)
    for tmp in staging.glob(".*.tmp-*"):  # half-written files of a killed task: never part of the phase
        tmp.unlink(missing_ok=True)
    write_json_atomic(staging / MANIFEST, manifest.model_dump_json(indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
    return manifest


def _manifest(job: ShardJob, plan: PhasePlan, names: list[str], mixture: dict[str, float],
              source_meta: dict[str, dict[str, Any]], phase: str, phase_index: int, header: dict[str, Any],
              seed: int) -> PhaseManifest:
    """Recount every shard from its files, check it against the plan, and build the sealed manifest."""
    missing = [j for j in range(job.num_shards) if not shard_done(job, j)]
    if missing:
        raise PackIncomplete(f"phase {phase!r}: shards {missing[:8]} were not written by the pack tasks; "
                           f"read their logs in {job.folder}/.logs and re-run (finished shards are kept)")
    per_shard, deviation = recount_shards(job.folder, job.num_shards, len(names))
    planned = plan.shard_counts()
    if not np.array_equal(per_shard, planned):  # pragma: no cover - contract guard
        bad = int(np.flatnonzero((per_shard != planned).any(axis=1))[0])
        raise AssertionError(f"shard {bad}: realized {per_shard[bad].tolist()} != planned {planned[bad].tolist()}")
    files: dict[str, FileEntry] = {}
    for j in range(job.num_shards):
        for name, entry in json.loads(_marker(job.folder, j).read_text())["files"].items():
            files[name] = FileEntry(**entry)
    realized = per_shard.sum(axis=0) * plan.seq_len
    entries: dict[str, SourceEntry] = {}
    for sid, name in enumerate(names):
        p, meta = plan.sources[name], source_meta.get(name, {})
        if int(realized[sid]) != p.tokens:  # pragma: no cover - contract guard
            raise AssertionError(f"{name}: realized {int(realized[sid])} != planned {p.tokens}")
        docs = job.layouts[sid].num_docs
        entries[name] = SourceEntry(
            source_id=sid, weight=mixture[name], planned_sequences=p.sequences, planned_tokens=p.tokens,
            realized_tokens=int(realized[sid]), ledger_start=p.ledger_start, ledger_end=p.ledger_end,
            source_tokens=p.supply, source_documents=docs, epochs_touched=list(p.epochs_touched),
            epochs_through=p.epochs_through, input_digest=str(meta.get("digest", job.sources[sid].digest)),
            curation=meta.get("curation", {}),
        )
    shards = [
        ShardEntry(first=int(job.bounds[j]), last=int(job.bounds[j + 1]),
                   sequences={s: int(per_shard[j, sid]) for sid, s in enumerate(names)})
        for j in range(job.num_shards)
    ]
    manifest = PhaseManifest(
        **header, phase=phase, phase_index=phase_index, seq_len=plan.seq_len, batch_size=plan.batch_size,
        num_sequences=plan.num_sequences, requested_tokens=plan.requested_tokens, planned_tokens=plan.planned_tokens,
        token_dtype=plan.token_dtype, seed=seed, max_prefix_deviation=deviation, sources=entries,
        shard_sequences=plan.shard_sequences, shards=shards, files=files,
    )
    return manifest.seal()
