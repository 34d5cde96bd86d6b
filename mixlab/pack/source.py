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
- ``read_windows(src, layout, seed, p, seq_len, out, rows)`` writes the same ledger, cut into the windows
  ``[p + i L, p + i L + L + 1)`` (i < ``len(rows)``), straight into rows ``rows[i]`` of ``out`` [n, L+1]:
  ``out[rows] == windows(read_ledger(src, layout, seed, p, p + len(rows) L + 1), L)`` exactly (cast to
  ``out.dtype`` as numpy's assignment casts), without the stream or int64 index arrays (8 bytes per token):
  each token is read once from the block's memory map and stored once (twice for the token two windows share),
  by a compiled loop (:func:`_scatter`, numba: ~0.8 ns per token here, memory-map faults included) or, where
  numba's start-up would cost more than it saves, by whole-array numpy copies (:func:`_scatter_np`, ~1.2 ns per
  token plus ~0.3 us per document piece). The gather it replaces (``read_ledger`` + a row scatter) took ~3.8 ns
  per token. ``tests/test_pack_writer.py`` checks both against ``read_ledger`` over blocks, epochs, dtypes and
  row orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from mixlab.pack.blockorder import (
    BlockLayout,
    BlockTable,
    block_pieces,
    block_table,
    ledger_spans,
    table_pieces,
)
from mixlab.pack.interleave import njit


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


@njit(cache=True, nogil=True)
def _scatter(
    block: np.ndarray, local: np.ndarray, length: np.ndarray, at: int, out: np.ndarray, rows: np.ndarray,
    seq_len: int,
) -> None:  # pragma: no cover - compiled
    """Store pieces of ``block`` (``local[i]``, ``length[i]``), which continue a window stream at offset ``at``,
    into their windows: stream token t goes to ``out[rows[t // L], t % L]`` and, when ``t % L == 0`` and
    ``t >= L``, also to ``out[rows[t // L - 1], L]`` (the token consecutive windows share)."""
    n_win = len(rows)
    s = at
    for i in range(len(local)):
        src = local[i]
        left = length[i]
        while left > 0:
            w = s // seq_len
            c = s - w * seq_len
            if c == 0 and w > 0:
                out[rows[w - 1], seq_len] = block[src]
            run = 1
            if w < n_win:
                run = min(left, seq_len - c)
                out[rows[w], c : c + run] = block[src : src + run]  # 0.34 ns/token; an element loop: 1.3
            s += run
            src += run
            left -= run


def _scatter_np(
    block: np.ndarray, local: np.ndarray, length: np.ndarray, at: int, out: np.ndarray, rows: np.ndarray,
    seq_len: int, chunk: int = 1 << 22,
) -> None:
    """``_scatter`` with numpy and no numba: the pieces are joined about ``chunk`` tokens at a time (one copy, by
    ``bytes.join`` over memoryview slices: ~150 ns a piece against ~320 for ``np.concatenate`` over array slices),
    and each join is stored into its windows by a few whole-array assignments."""
    n_win, L = len(rows), seq_len
    ends = np.cumsum(length)
    raw = memoryview(np.ascontiguousarray(block)).cast("B")
    size_of = block.dtype.itemsize
    first, last = local * size_of, (local + length) * size_of  # each piece's bytes in the block
    i = 0
    s0 = at
    while i < len(local):  # pieces [i, k): about `chunk` tokens, at least one piece
        k = max(i + 1, int(np.searchsorted(ends, (ends[i - 1] if i else 0) + chunk, side="right")))
        joined = b"".join([raw[a:b] for a, b in zip(first[i:k].tolist(), last[i:k].tolist(), strict=True)])
        part = np.frombuffer(joined, dtype=block.dtype)
        s1 = s0 + len(part)  # this join holds stream tokens [s0, s1)
        w_first, w_last = s0 // L, min((s1 - 1) // L, n_win - 1)  # windows whose columns [0, L) it touches
        full0, full1 = -(-s0 // L), min(s1 // L, n_win)  # windows it covers whole: [full0, full1)
        if full1 > full0:
            out[rows[full0:full1], :L] = part[full0 * L - s0 : full1 * L - s0].reshape(-1, L)
        for w in {w_first, w_last}:  # windows it covers in part (one or two)
            if w <= w_last and not full0 <= w < full1:
                c0, c1 = max(s0, w * L), min(s1, w * L + L)
                out[rows[w], c0 - w * L : c1 - w * L] = part[c0 - s0 : c1 - s0]
        shared = np.arange(max(1, full0), (s1 - 1) // L + 1, dtype=np.int64)  # tokens at w L, w >= 1
        shared = shared[shared <= n_win]
        out[rows[shared - 1], L] = part[shared * L - s0]
        s0, i = s1, k


def read_windows(
    src: TokenSource, layout: BlockLayout, seed: int, p: int, seq_len: int, out: np.ndarray, rows: np.ndarray,
    tables: dict[tuple[int, int], BlockTable] | None = None, jit: bool = True,
) -> None:
    """Windows ``[p + i L, p + i L + L + 1)`` of ``src``'s ledger into ``out[rows[i]]`` (module contract), one block
    open at a time; ``out`` is a C-contiguous ``[n, L+1]`` array, ``rows`` distinct int64 row indices.

    ``tables``, a dict the caller keeps for this source between calls, holds the last block's
    :class:`~mixlab.pack.blockorder.BlockTable` (its shuffled document order): the next shard, which continues in
    the same block, skips recomputing it. Memory: O(that block's documents). ``jit``: the compiled loop, or
    (False) :func:`_scatter_np`, for a phase too small to pay numba's start-up (:mod:`mixlab.pack.order`)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if out.ndim != 2 or out.shape[1] != seq_len + 1 or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"out must be a writable C-contiguous [n, {seq_len + 1}] array, got {out.shape}")
    if len(rows) == 0:
        return
    if rows.min() < 0 or rows.max() >= out.shape[0]:
        raise ValueError(f"rows must index the {out.shape[0]} rows of out")
    tables = {} if tables is None else tables
    scatter = _scatter if jit else _scatter_np
    at = 0
    for epoch, b, lo, hi in ledger_spans(layout, seed, src.name, p, p + len(rows) * seq_len + 1):
        tokens, lengths = src.train_block(b)
        size = int(layout.token_starts[b + 1] - layout.token_starts[b])
        if tokens.ndim != 1 or len(tokens) != size:  # the compiled loop does not check bounds: refuse here
            raise ValueError(f"source {src.name!r} block {b}: {tokens.shape} tokens where its layout says {size}; "
                             "the block files and the layout come from different data: rebuild the token set")
        table = tables.get((epoch, b))
        if table is None:
            tables.clear()  # one block's table at a time
            table = tables[(epoch, b)] = block_table(layout, lengths, seed, src.name, epoch, b)
        pieces = table_pieces(table, lo, hi)
        local = pieces.token - table.token_start  # piece starts inside this block's tokens
        scatter(np.asarray(tokens), local, pieces.length, at, out, rows, seq_len)
        at += hi - lo
        del tokens, lengths  # drop the block's memory map before opening the next


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
