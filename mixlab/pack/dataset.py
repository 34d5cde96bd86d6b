"""Reading packed phases: verified memory maps over the shards, a torch Dataset, and a resumable, rank-sharded
batch loader.

Contract:
- ``open_phase(dir, recipe_hash=None, tokenizer_hash=None, verify=True)`` refuses a folder without manifest,
  with a shard file missing, of the wrong size or checksum (every file the manifest lists; checksums when
  ``verify``), of the wrong shape, or built by another recipe/tokenizer than the caller expects, each with an
  error that says what to do.
- :class:`PackedPhase` reads the shards as one phase: ``tokens`` [N, L+1], ``seq_source`` [N] and
  ``seq_position`` [N] are :class:`ShardedRows` (sequence i -> shard ``j`` with ``first_j <= i < last_j`` by
  binary search over the shard bounds, then that shard's memory map); a slice may straddle shards.
- ``SequenceLoader(phase, batch_size, rank, world_size)`` yields step s's global batch
  ``sequences[s*B : (s+1)*B]`` (which may straddle shards) split into ``world_size`` contiguous slices, rank r
  taking slice r, as int64 tensors [B/world, L+1]. Its state is ``{"phase", "step"}``: after ``load_state_dict``
  of the state saved after k batches, it yields exactly the batches k, k+1, ... an uninterrupted run would (the
  order lives on disk).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixlab.errors import MixlabError
from mixlab.pack.manifest import PhaseManifest, file_entry, read_manifest, shard_files


class PackedDataError(MixlabError, RuntimeError):
    """A packed folder that must not be trained on."""


class ShardedRows:
    """Arrays split along axis 0 (one per shard, ``bounds[j] .. bounds[j+1]``) read as one array.

    ``rows[i]``, ``rows[lo:hi]`` (contiguous; a view when inside one shard, else a copy), ``rows[idx]`` (integer
    arrays), ``rows[rows_key, cols]`` and ``np.asarray(rows)`` (the whole concatenation: small arrays only).
    """

    def __init__(self, parts: list[np.ndarray], bounds: np.ndarray) -> None:
        self.parts, self.bounds = parts, np.asarray(bounds, dtype=np.int64)
        self.shape = (int(self.bounds[-1]), *parts[0].shape[1:])
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def shard_of(self, i: int) -> int:
        return int(np.searchsorted(self.bounds, i, side="right")) - 1

    def _rows(self, key: Any) -> np.ndarray:
        n = self.shape[0]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (n if key < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"sequence {key} is outside [0, {n})")
            j = self.shard_of(i)
            return self.parts[j][i - self.bounds[j]]
        if isinstance(key, slice):
            lo, hi, step = key.indices(n)
            if step != 1:
                return self._rows(np.arange(lo, hi, step, dtype=np.int64))
            if hi <= lo:
                return self.parts[0][:0]
            j0, j1 = self.shard_of(lo), self.shard_of(hi - 1)
            if j0 == j1:
                return self.parts[j0][lo - self.bounds[j0] : hi - self.bounds[j0]]
            return np.concatenate([
                self.parts[j][max(lo, self.bounds[j]) - self.bounds[j] : min(hi, self.bounds[j + 1]) - self.bounds[j]]
                for j in range(j0, j1 + 1)
            ])
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = np.where(idx < 0, idx + n, idx).astype(np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"sequence indices outside [0, {n})")
        out = np.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        shard = np.searchsorted(self.bounds, idx, side="right") - 1
        for j in np.unique(shard):
            sel = shard == j
            out[sel] = self.parts[j][idx[sel] - self.bounds[j]]
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            rows = self._rows(key[0])
            return rows[key[1:]] if isinstance(key[0], (int, np.integer)) else rows[(slice(None), *key[1:])]
        return self._rows(key)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = np.concatenate([np.asarray(p) for p in self.parts])
        return whole if dtype is None else whole.astype(dtype)


@dataclass
class PackedPhase:
    path: Path
    manifest: PhaseManifest
    tokens: ShardedRows  # [N, L+1]
    seq_source: ShardedRows  # [N] uint8
    seq_position: ShardedRows  # [N] int64

    @property
    def source_names(self) -> list[str]:
        return sorted(self.manifest.sources, key=lambda s: self.manifest.sources[s].source_id)

    @property
    def bounds(self) -> np.ndarray:
        return self.tokens.bounds


def open_phase(
    path: Path | str, recipe_hash: str | None = None, tokenizer_hash: str | None = None, verify: bool = True
) -> PackedPhase:
    path = Path(path)
    try:
        manifest = read_manifest(path)
    except FileNotFoundError as e:
        raise PackedDataError(str(e)) from None
    if tokenizer_hash is not None and manifest.tokenizer_hash != tokenizer_hash:
        raise PackedDataError(
            f"{path}: packed with tokenizer {manifest.tokenizer_name} ({manifest.tokenizer_hash[:12]}), but the "
            f"caller uses {tokenizer_hash[:12]}; re-pack with the current tokenizer (`mixlab pack RECIPE`)"
        )
    if recipe_hash is not None and manifest.recipe_hash != recipe_hash:
        raise PackedDataError(
            f"{path}: packed for recipe hash {manifest.recipe_hash[:12]}, expected {recipe_hash[:12]}; the recipe "
            f"changed since packing: re-run `mixlab pack RECIPE`"
        )
    expected = {name for j in range(len(manifest.shards)) for name in shard_files(j).values()}
    if set(manifest.files) != expected:
        raise PackedDataError(f"{path}/manifest.json lists files {sorted(set(manifest.files) ^ expected)[:4]} "
                              f"that do not match its {len(manifest.shards)} shards; re-pack it")
    for name, entry in manifest.files.items():
        f = path / name
        if not f.exists() or f.stat().st_size != entry.bytes:
            have = f.stat().st_size if f.exists() else "missing"
            raise PackedDataError(f"{f}: expected {entry.bytes} bytes, found {have}; the folder is damaged, re-pack it")
        if verify and file_entry(f).xxh64 != entry.xxh64:
            raise PackedDataError(f"{f}: checksum mismatch (expected xxh64 {entry.xxh64}); the file is corrupt, re-pack it")
    arrays: dict[str, list[np.ndarray]] = {"tokens": [], "source": [], "position": []}
    for j, shard in enumerate(manifest.shards):
        n = shard.last - shard.first
        for kind, shape in (("tokens", (n, manifest.seq_len + 1)), ("source", (n,)), ("position", (n,))):
            arr = np.load(path / shard_files(j)[kind], mmap_mode="r")
            if arr.shape != shape:
                raise PackedDataError(f"{path / shard_files(j)[kind]} has shape {arr.shape}, manifest says {shape}; "
                                      f"re-pack it")
            arrays[kind].append(arr)
    bounds = np.array([0] + [s.last for s in manifest.shards], dtype=np.int64)
    if not manifest.shards or bounds[-1] != manifest.num_sequences:
        raise PackedDataError(f"{path}/manifest.json: its shards hold {bounds[-1]} sequences, not "
                              f"{manifest.num_sequences}; re-pack it")
    return PackedPhase(path, manifest, *(ShardedRows(arrays[k], bounds) for k in ("tokens", "source", "position")))


class PackedDataset(torch.utils.data.Dataset):
    """Random access to a phase's sequences as int64 tensors [L+1]."""

    def __init__(self, phase: PackedPhase | Path | str, **open_kwargs) -> None:
        self.phase = phase if isinstance(phase, PackedPhase) else open_phase(phase, **open_kwargs)

    def __len__(self) -> int:
        return self.phase.manifest.num_sequences

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.phase.tokens[i].astype(np.int64))

    def source_of(self, i: int) -> str:
        return self.phase.source_names[int(self.phase.seq_source[i])]


class SequenceLoader:
    """Step-indexed batches of one phase for one data-parallel rank (see module contract)."""

    def __init__(self, phase: PackedPhase, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by world_size {world_size}")
        self.phase, self.batch_size, self.rank, self.world_size = phase, batch_size, rank, world_size
        self.step = 0

    def __len__(self) -> int:
        return self.phase.manifest.num_sequences // self.batch_size

    def batch(self, step: int) -> torch.Tensor:
        per_rank = self.batch_size // self.world_size
        lo = step * self.batch_size + self.rank * per_rank
        # One contiguous slice of the memmaps (straddling a shard boundary when the batch does): no per-row loop.
        return torch.from_numpy(np.asarray(self.phase.tokens[lo : lo + per_rank], dtype=np.int64))

    def __iter__(self) -> Iterator[torch.Tensor]:
        while self.step < len(self):
            b = self.batch(self.step)
            self.step += 1
            yield b

    def state_dict(self) -> dict:
        return {"phase": self.phase.manifest.phase, "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        if state["phase"] != self.phase.manifest.phase:
            raise ValueError(f"loader state is for phase {state['phase']!r}, this loader reads {self.phase.manifest.phase!r}")
        self.step = int(state["step"])
