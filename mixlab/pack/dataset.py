"""Reading packed phases: verified memory maps, a torch Dataset, and a resumable, rank-sharded batch loader.

Contract:
- ``open_phase(dir, recipe_hash=None, tokenizer_hash=None, verify=True)`` refuses a folder without manifest,
  with a file of the wrong size or checksum, or built by another recipe/tokenizer than the caller expects,
  each with an error that says what to do.
- ``SequenceLoader(phase, batch_size, rank, world_size)`` yields step s's global batch
  ``sequences[s*B : (s+1)*B]`` split into ``world_size`` contiguous slices, rank r taking slice r, as int64
  tensors [B/world, L+1]. Its state is ``{"phase", "step"}``: after ``load_state_dict`` of the state saved after
  k batches, it yields exactly the batches k, k+1, ... an uninterrupted run would (the order lives on disk).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mixlab.errors import MixlabError
from mixlab.pack.manifest import PhaseManifest, file_entry, read_manifest


class PackedDataError(MixlabError, RuntimeError):
    """A packed folder that must not be trained on."""


@dataclass
class PackedPhase:
    path: Path
    manifest: PhaseManifest
    tokens: np.ndarray  # [N, L+1] memmap
    seq_source: np.ndarray  # [N] uint8

    @property
    def source_names(self) -> list[str]:
        return sorted(self.manifest.sources, key=lambda s: self.manifest.sources[s].source_id)


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
    for name, entry in manifest.files.items():
        f = path / name
        if not f.exists() or f.stat().st_size != entry.bytes:
            have = f.stat().st_size if f.exists() else "missing"
            raise PackedDataError(f"{f}: expected {entry.bytes} bytes, found {have}; the folder is damaged, re-pack it")
        if verify and file_entry(f).xxh64 != entry.xxh64:
            raise PackedDataError(f"{f}: checksum mismatch (expected xxh64 {entry.xxh64}); the file is corrupt, re-pack it")
    tokens = np.load(path / "tokens.npy", mmap_mode="r")
    seq_source = np.load(path / "seq_source.npy", mmap_mode="r")
    if tokens.shape != (manifest.num_sequences, manifest.seq_len + 1):
        raise PackedDataError(f"{path}/tokens.npy has shape {tokens.shape}, manifest says "
                              f"({manifest.num_sequences}, {manifest.seq_len + 1}); re-pack it")
    return PackedPhase(path, manifest, tokens, seq_source)


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
        # One contiguous slice of the memmap: a single read, no per-row Python loop.
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
