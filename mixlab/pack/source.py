"""What packing needs from a tokenized source, and reading its ledger through the block epoch order.

Contract:
- :class:`TokenSource` is the whole interface pack uses: ``name``, ``digest``, ``train_block_counts()`` ->
  ``(docs int64[B], tokens int64[B])`` in block order, and ``train_block(i)`` -> ``(tokens 1-D, lengths
  int64[docs])`` (every document's length includes its EOS, so lengths sum to the block's tokens). The
  tokenize stage's ``mixlab.shards.TokenShardSet`` implements it, as do :class:`mixlab.pack.ledger.SourceTokens`
  (flat arrays, one block) and :class:`NpySource` (one flat ``.npy`` pair opened lazily, picklable by path).
- ``read_ledger(src, layout, seed, p, q)`` returns tokens ``[p, q)`` of the source's ledger (epoch e = the
  two-level order of :mod:`mixlab.pack.blockorder`), opening one block at a time: memory is the result plus
  one block, never an epoch. ``tests/test_pack_writer.py`` compares it with a materialized reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from mixlab.pack.blockorder import BlockLayout, block_pieces, ledger_spans


@runtime_checkable
class TokenSource(Protocol):
    """A tokenized source's training split, in blocks (see the module contract)."""

    @property
    def name(self) -> str: ...

    @property
    def digest(self) -> str: ...

    def train_block_counts(self) -> tuple[np.ndarray, np.ndarray]: ...

    def train_block(self, i: int) -> tuple[np.ndarray, np.ndarray]: ...


def layout_of(src: TokenSource) -> BlockLayout:
    """The source's per-block metadata (O(blocks))."""
    docs, tokens = src.train_block_counts()
    return BlockLayout.from_counts(np.asarray(docs, dtype=np.int64), np.asarray(tokens, dtype=np.int64))


def read_ledger(
    src: TokenSource, layout: BlockLayout, seed: int, p: int, q: int, dtype: np.dtype | None = None
) -> np.ndarray:
    """Tokens at ledger positions ``[p, q)`` of ``src`` (may span blocks and epochs), one block open at a time."""
    spans = ledger_spans(layout, seed, src.name, p, q)
    out: np.ndarray | None = None
    at = 0
    for epoch, b, lo, hi in spans:
        tokens, lengths = src.train_block(b)
        if out is None:
            out = np.empty(q - p, dtype=dtype or tokens.dtype)
        pieces = block_pieces(layout, lengths, seed, src.name, epoch, b, lo, hi)
        local = pieces.token - int(layout.token_starts[b])  # piece starts inside this block's tokens
        n = int(pieces.length.sum())
        shift = np.repeat(local - (np.cumsum(pieces.length) - pieces.length), pieces.length)
        out[at : at + n] = tokens[np.arange(n, dtype=np.int64) + shift]
        at += n
        del tokens, lengths  # drop the block's memory map before opening the next
    if out is None:
        return np.zeros(0, dtype=dtype or np.uint16)
    return out


@dataclass(frozen=True)
class NpySource:
    """One flat token file and its cumulative document ends (``.npy``), as one block; opened on use, so it
    pickles as paths (datatrove tasks on other processes or machines open it themselves)."""

    name: str
    tokens_path: Path
    doc_ends_path: Path
    digest: str = ""
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if "doc_ends" not in self._cache:
            self._cache["doc_ends"] = np.load(self.doc_ends_path).astype(np.int64)
        return np.load(self.tokens_path, mmap_mode="r"), self._cache["doc_ends"]

    def __getstate__(self) -> dict:
        return {"name": self.name, "tokens_path": self.tokens_path, "doc_ends_path": self.doc_ends_path,
                "digest": self.digest, "_cache": {}}

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)

    def train_block_counts(self) -> tuple[np.ndarray, np.ndarray]:
        _, ends = self._arrays()
        return np.array([len(ends)], dtype=np.int64), np.array([int(ends[-1]) if len(ends) else 0], dtype=np.int64)

    def train_block(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i != 0:
            raise IndexError(f"source {self.name!r} has one block, asked for block {i}")
        tokens, ends = self._arrays()
        return tokens, np.diff(ends, prepend=0)
