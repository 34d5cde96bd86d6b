"""The packed phase's manifest: the pydantic JSON that proves a phase's composition, shard by shard.

Contract: a phase folder is valid only when ``manifest.json`` exists (it is written last, atomically, into a
folder that is then renamed into place) and every file it lists has the recorded size and xxh64 checksum.
A phase of N sequences is ``shards``: shard j holds sequences ``[first, last)`` in three files (:func:`shard_files`:
``<j:05d>.tokens.npy`` [n_j, L+1], ``<j:05d>.source.npy`` uint8 source ids, ``<j:05d>.position.npy`` int64
ledger positions). For every shard and every source, ``sequences`` is recounted from the shard's source file
and equals the plan; each source's ``realized_tokens`` is the sum over shards times ``seq_len`` and equals its
``planned_tokens``. ``max_prefix_deviation`` is recounted over the concatenated stream (:class:`PrefixDeviation`,
streamed shard by shard).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xxhash
from pydantic import BaseModel, ConfigDict, Field

from mixlab.errors import CorruptOutputError
from mixlab.sealed import FileEntry, Sealed, read_sealed
from mixlab.tokenizer import TokenizerInfo
from mixlab.workspace import write_json_atomic  # noqa: F401 - the writer's atomic JSON (one copy, workspace's)

MANIFEST = "manifest.json"
FORMAT_VERSION = 3  # 3: sharded phases (shards, batch_size); 2: one `tokenizer` (TokenizerInfo)
SHARD_KINDS = ("tokens", "source", "position")


class SourceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_id: int = Field(description="Value of this source in the shards' source files.")
    weight: float = Field(description="Recipe weight of the source in this phase.")
    planned_sequences: int = Field(description="Sequences apportioned by Hamilton's method.")
    planned_tokens: int = Field(description="planned_sequences * seq_len.")
    realized_tokens: int = Field(description="Recounted from the shards' source files after writing.")
    ledger_start: int = Field(description="Source stream position before this phase (tokens).")
    ledger_end: int = Field(description="Source stream position after this phase (tokens).")
    source_tokens: int = Field(description="Training tokens available in the source (one epoch).")
    source_documents: int = Field(description="Training documents in the source.")
    epochs_touched: list[int] = Field(description="Epoch indices this phase read from.")
    epochs_through: float = Field(description="ledger_end / source_tokens: passes over the source so far.")
    input_digest: str = Field(description="Digest of the tokenized source shard this phase read.")
    curation: dict[str, Any] = Field(default_factory=dict, description="Curation statistics of the source.")


class ShardEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first: int = Field(description="First sequence of the shard (global index).")
    last: int = Field(description="One past the shard's last sequence.")
    sequences: dict[str, int] = Field(description="Sequences per source, recounted from the shard's source file.")


class PhaseManifest(Sealed):
    format_version: int = FORMAT_VERSION
    recipe_name: str
    recipe_hash: str
    phase: str
    phase_index: int
    pack_key: str = Field(description="Hash of everything this phase's bytes depend on.")
    seq_len: int
    batch_size: int = Field(description="Sequences per optimizer step; num_sequences is a multiple of it.")
    num_sequences: int
    requested_tokens: int = Field(description="The phase's token budget in the recipe.")
    planned_tokens: int = Field(description="num_sequences * seq_len (budget rounded down to whole batches).")
    token_dtype: str
    tokenizer: TokenizerInfo = Field(description="The tokenizer the tokens were made with (its one identity).")
    seed: int
    max_prefix_deviation: float = Field(description="Worst |count_k(prefix) - w_k i| over prefixes, in sequences.")
    sources: dict[str, SourceEntry]
    shard_sequences: int = Field(description="Sequences per shard (the last shard may hold fewer).")
    shards: list[ShardEntry] = Field(description="Shard j = files shard_files(j), sequences [first, last).")
    files: dict[str, FileEntry] = Field(description="Size and xxh64 of every shard file, by file name.")

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_id

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name

    @property
    def tokenizer_hash(self) -> str:
        return self.tokenizer.hash


def shard_files(j: int) -> dict[str, str]:
    """File names of shard ``j``: ``{"tokens": "00000.tokens.npy", "source": ..., "position": ...}``."""
    return {kind: f"{j:05d}.{kind}.npy" for kind in SHARD_KINDS}


class PrefixDeviation:
    """Worst ``|count_k(prefix) - w_k i|`` over every prefix of a stream fed in chunks (``w_k = counts_k / N``);
    equals :func:`mixlab.pack.interleave.max_prefix_deviation` of the concatenation, in O(chunk) memory."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = [int(c) for c in counts]
        self.total = max(sum(self.counts), 1)
        self.taken = np.zeros(len(self.counts), dtype=np.int64)
        self.position = 0
        self.worst = 0.0

    def update(self, chunk: np.ndarray) -> None:
        i = np.arange(self.position + 1, self.position + len(chunk) + 1, dtype=np.float64)
        for k, n_k in enumerate(self.counts):
            running = self.taken[k] + np.cumsum(chunk == k, dtype=np.int64)
            self.worst = max(self.worst, float(np.abs(running - i * (n_k / self.total)).max(initial=0.0)))
            self.taken[k] = running[-1] if len(running) else self.taken[k]
        self.position += len(chunk)


def file_entry(path: Path, chunk: int = 1 << 24) -> FileEntry:
    h = xxhash.xxh64()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return FileEntry(bytes=path.stat().st_size, xxh64=h.hexdigest())


def read_manifest(phase_dir: Path) -> PhaseManifest:
    path = Path(phase_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(
            f"{phase_dir} has no {MANIFEST}: the phase was never packed or its packing was interrupted; "
            f"run `mixlab pack RECIPE` again"
        )
    return read_sealed(PhaseManifest, path, "re-run `mixlab pack RECIPE`, which rebuilds the phase")


def recount_shards(folder: Path, num_shards: int, num_sources: int) -> tuple[np.ndarray, float]:
    """Per-shard per-source sequence counts ``[S, K]`` and the worst prefix deviation of the whole stream,
    recounted from the shards' source files (two streamed passes, one shard in memory at a time)."""
    per = np.zeros((num_shards, num_sources), dtype=np.int64)
    for j in range(num_shards):
        path = Path(folder) / shard_files(j)["source"]
        ids = np.load(path, mmap_mode="r")
        counts = np.bincount(ids, minlength=num_sources)
        if len(counts) > num_sources:
            raise CorruptOutputError(f"{path}: holds source ids up to {len(counts) - 1}, but the phase has "
                                     f"{num_sources} sources; re-run `mixlab pack RECIPE`, which rebuilds the phase")
        per[j] = counts
    dev = PrefixDeviation(per.sum(axis=0).tolist())
    for j in range(num_shards):
        dev.update(np.asarray(np.load(Path(folder) / shard_files(j)["source"], mmap_mode="r")))
    return per, dev.worst
