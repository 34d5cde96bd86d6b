"""Write one packed phase in shards: plan, write each shard as an independent task, recount, manifest, rename.

Contract (see ``../shared/design/ARCHITECTURE.md``, "Exact proportions"):
- N = requested_tokens // (seq_len * batch_size) * batch_size sequences; n_k = Hamilton(w_k, N); sequence i
  comes from source ``order[i]`` (Tijdeman interleave), all planned by :func:`mixlab.pack.plan.plan_phase`,
  whose supply check (naming source, need and supply) runs before anything is allocated or written.
- Shard j holds sequences ``[bounds[j], bounds[j+1])`` (``shard_sequences`` each, the last fewer) in the files
  of :func:`mixlab.pack.manifest.shard_files`: tokens [n_j, L+1] (uint16, or uint32 past a 65,536-id
  vocabulary), source ids (uint8) and ledger positions of each sequence's first token (int64: with
  :func:`mixlab.pack.ledger.locate` every token maps back to its source document).
- Shard j is computed from the plan alone (:func:`write_shard`): its slice of the order from
  ``state_at(checkpoints[j])``, each source's windows read from that source's ledger over
  ``window_span(start_k, L, checkpoints[j, k], checkpoints[j+1, k])`` one block at a time. Memory: one shard
  plus one block of a source, never an epoch or the phase. The bytes do not depend on how shards are spread
  over tasks: ``tasks`` ranks (a datatrove :class:`PackShards` step, rank r writing shards r, r+W, ...) on the
  ``local``, ``slurm`` or ``ray`` executor (:func:`mixlab.executors.run_pipeline`; a local run with one worker
  calls the step in-process, without datatrove's logging) give identical files for any ``tasks``.
- Resumable and atomic: shards are written into ``.<phase>.partial/`` beside ``out_dir`` (each file to a
  temporary name, renamed, then a ``.<j>.done.json`` marker with its sizes, checksums and counts); a rerun of the
  same plan keeps finished shards and writes only the missing ones. When every shard is done, the counts are
  recounted from the shard files (per shard and in total), the manifest is written, and the folder is renamed
  to ``out_dir``: a killed pack leaves no folder a loader accepts.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
from datatrove.pipeline.base import PipelineStep

from mixlab.errors import MixlabError
from mixlab.pack.blockorder import window_span
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
from mixlab.pack.order import interleave_chunk, state_at
from mixlab.pack.plan import DEFAULT_SHARD_SEQUENCES, PhasePlan, plan_phase
from mixlab.pack.source import TokenSource, layout_of, read_ledger


class PackIncomplete(MixlabError):
    """The pack tasks ended with shards missing (a failed task); finished shards are kept for the rerun."""


@dataclass(frozen=True)
class ShardJob:
    """Everything a task needs to write any shard of one phase (picklable: sources open their files lazily)."""

    folder: Path
    sources: tuple[TokenSource, ...]  # in source-id order
    starts: tuple[int, ...]
    counts: tuple[int, ...]
    bounds: np.ndarray
    checkpoints: np.ndarray
    seq_len: int
    seed: int
    dtype: str

    @property
    def num_shards(self) -> int:
        return len(self.bounds) - 1


def _marker(folder: Path, j: int) -> Path:
    return folder / f".{j:05d}.done.json"


def shard_done(job: ShardJob, j: int) -> bool:
    """True when shard j's files are complete (its marker exists and every file has the recorded size)."""
    marker = _marker(job.folder, j)
    if not marker.exists():
        return False
    try:
        files = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError):
        return False
    return all((job.folder / n).is_file() and (job.folder / n).stat().st_size == e["bytes"] for n, e in files.items())


def build_shard(job: ShardJob, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tokens [n_j, L+1], source ids [n_j], ledger positions [n_j]) of shard j, from the plan alone."""
    lo, hi, L = int(job.bounds[j]), int(job.bounds[j + 1]), job.seq_len
    order, _ = interleave_chunk(job.counts, state_at(job.checkpoints[j]), hi - lo)
    tokens = np.empty((hi - lo, L + 1), dtype=np.dtype(job.dtype))
    positions = np.empty(hi - lo, dtype=np.int64)
    for sid, src in enumerate(job.sources):
        a, b = int(job.checkpoints[j, sid]), int(job.checkpoints[j + 1, sid])
        if a == b:
            continue
        p, q = window_span(job.starts[sid], L, a, b)
        stream = read_ledger(src, layout_of(src), job.seed, p, q, dtype=tokens.dtype)
        view = np.lib.stride_tricks.as_strided(stream, (b - a, L + 1), (L * stream.itemsize, stream.itemsize),
                                               writeable=False)
        rows = np.flatnonzero(order == sid)
        tokens[rows] = view
        positions[rows] = p + np.arange(b - a, dtype=np.int64) * L
        del stream, view
    return tokens, order, positions


def write_shard(job: ShardJob, j: int) -> None:
    """Write shard j's three files (each to a temporary name, fsynced, renamed), then its done marker."""
    arrays = dict(zip(("tokens", "source", "position"), build_shard(job, j), strict=True))
    names = shard_files(j)
    files = {}
    for kind, arr in arrays.items():
        final = job.folder / names[kind]
        tmp = job.folder / f".{names[kind]}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            np.save(f, arr)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        files[names[kind]] = file_entry(final).model_dump()  # checksum of the bytes on disk
    counts = np.bincount(arrays["source"], minlength=len(job.sources)).tolist()
    write_json_atomic(_marker(job.folder, j), json.dumps({"files": files, "sequences": counts}))


class PackShards(PipelineStep):
    """datatrove step: rank r of W writes shards r, r+W, r+2W, ... that are not already done."""

    name = "pack shards"
    type = "Packer"

    def __init__(self, job: ShardJob) -> None:
        super().__init__()
        self.job = job

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Any:
        for j in range(rank, self.job.num_shards, world_size):
            if shard_done(self.job, j):
                self.stat_update("shards_reused")
                continue
            write_shard(self.job, j)
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
    supplies = {s: int(np.asarray(sources[s].train_block_counts()[1], dtype=np.int64).sum()) for s in names}
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
        folder=staging, sources=tuple(sources[s] for s in names),
        starts=tuple(p.ledger_start for p in plan.sources.values()),
        counts=tuple(p.sequences for p in plan.sources.values()), bounds=plan.bounds,
        checkpoints=plan.checkpoints, seq_len=seq_len, seed=seed, dtype=plan.token_dtype,
    )
    run_shard_tasks(job, executor, tasks, workers, **(executor_kwargs or {}))
    manifest = _manifest(job, plan, names, mixture, source_meta, phase, phase_index, header, seed)
    for j in range(job.num_shards):
        _marker(staging, j).unlink()
    ident_file.unlink()
    shutil.rmtree(staging / ".logs", ignore_errors=True)
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
        docs = int(np.asarray(job.sources[sid].train_block_counts()[0], dtype=np.int64).sum())
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
