"""Write one packed phase: apportion, interleave, take from each source's ledger, write, verify, manifest.

Contract (see ``../shared/design/ARCHITECTURE.md``, "Exact proportions"):
- N = requested_tokens // (seq_len * batch_size) * batch_size sequences (whole optimizer steps);
  n_k = Hamilton(w_k, N); sequence i comes from source ``order[i]`` (Tijdeman interleave).
- Files: ``tokens.npy`` [N, L+1] (uint16, or uint32 when the vocabulary exceeds 65,536), ``seq_source.npy``
  [N] uint8 (source id), ``seq_position.npy`` [N] int64 (ledger position of the sequence's first token: with
  :func:`mixlab.pack.ledger.locate` every token maps back to its source document), ``manifest.json``.
- Atomic: everything is written into a temporary sibling folder, checked (realized == planned recounted from
  disk), and renamed into place; a killed pack leaves no folder a loader accepts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.pack.apportion import apportion
from mixlab.pack.interleave import interleave, max_prefix_deviation
from mixlab.pack.ledger import MixtureError, SourceTokens, check_supply, take
from mixlab.pack.manifest import MANIFEST, PhaseManifest, SourceEntry, file_entry, write_json_atomic
from mixlab.tokenizer import token_dtype


def pack_phase(
    out_dir: Path,
    *,
    phase: str,
    phase_index: int,
    requested_tokens: int,
    mixture: dict[str, float],
    max_repeat: float,
    sources: dict[str, SourceTokens],
    source_meta: dict[str, dict[str, Any]],
    starts: dict[str, int],
    seq_len: int,
    batch_size: int,
    seed: int,
    header: dict[str, Any],
    check_space: Callable[[int], None] | None = None,
) -> PhaseManifest:
    """Pack one phase into ``out_dir``; ``header`` carries the manifest's identity fields: ``recipe_name``,
    ``recipe_hash``, ``pack_key`` and ``tokenizer`` (a :class:`~mixlab.tokenizer.TokenizerInfo`).
    ``check_space(bytes)`` runs after the supply check, before anything is allocated or written."""
    out_dir = Path(out_dir)
    names = [s for s, w in mixture.items() if w > 0]
    num_seq = requested_tokens // (seq_len * batch_size) * batch_size
    if num_seq == 0:
        raise MixtureError(
            f"phase {phase!r}: budget {requested_tokens:,} tokens is less than one batch "
            f"({batch_size} x {seq_len} = {batch_size * seq_len:,} tokens); raise `tokens`"
        )
    counts = apportion({s: mixture[s] for s in names}, num_seq)
    problems = [check_supply(sources[s], starts.get(s, 0), counts[s], seq_len, max_repeat, phase) for s in names]
    if any(problems):  # checked for every source before anything is allocated or written
        raise MixtureError("impossible mixture:\n  " + "\n  ".join(p for p in problems if p))
    dtype = token_dtype(header["tokenizer"].vocab_size)
    if check_space is not None:  # e.g. refuse a phase the disk cannot hold, before writing anything
        check_space(num_seq * ((seq_len + 1) * dtype.itemsize + 9))
    order = interleave([counts[s] for s in names])

    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tokens = np.lib.format.open_memmap(tmp / "tokens.npy", mode="w+", dtype=dtype, shape=(num_seq, seq_len + 1))
    positions = np.zeros(num_seq, dtype=np.int64)
    entries: dict[str, SourceEntry] = {}
    for sid, name in enumerate(names):
        src = sources[name]
        got = take(src, starts.get(name, 0), counts[name], seq_len, seed, max_repeat, phase)
        rows = np.flatnonzero(order == sid)
        tokens[rows] = got.sequences
        positions[rows] = got.start + np.arange(counts[name], dtype=np.int64) * seq_len
        meta = source_meta.get(name, {})
        entries[name] = SourceEntry(
            source_id=sid, weight=mixture[name], planned_sequences=counts[name],
            planned_tokens=counts[name] * seq_len, realized_tokens=-1, ledger_start=got.start,
            ledger_end=got.end, source_tokens=src.num_tokens, source_documents=len(src.doc_ends),
            epochs_touched=list(got.epochs_touched), epochs_through=got.end / max(src.num_tokens, 1),
            input_digest=str(meta.get("digest", "")), curation=meta.get("curation", {}),
        )
    tokens.flush()
    del tokens
    np.save(tmp / "seq_source.npy", order)
    np.save(tmp / "seq_position.npy", positions)

    # Recount from disk: realized tokens come from the file, not from the plan.
    on_disk = np.load(tmp / "seq_source.npy", mmap_mode="r")
    realized = np.bincount(on_disk, minlength=len(names)) * seq_len
    for sid, name in enumerate(names):
        entries[name].realized_tokens = int(realized[sid])
        if entries[name].realized_tokens != entries[name].planned_tokens:  # pragma: no cover - contract guard
            raise AssertionError(f"{name}: realized {realized[sid]} != planned {entries[name].planned_tokens}")

    manifest = PhaseManifest(
        **header, phase=phase, phase_index=phase_index, seq_len=seq_len, num_sequences=num_seq,
        requested_tokens=requested_tokens, planned_tokens=num_seq * seq_len, token_dtype=dtype.name, seed=seed,
        max_prefix_deviation=max_prefix_deviation(order, [counts[s] for s in names]), sources=entries,
        files={f: file_entry(tmp / f) for f in ("tokens.npy", "seq_source.npy", "seq_position.npy")},
    )
    manifest = manifest.seal()
    write_json_atomic(tmp / MANIFEST, manifest.model_dump_json(indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return manifest
