"""A source's epoch order without a full permutation: a two-level (block, then document) shuffle.

A source's training documents are stored in B blocks (a token-shard file, or a fixed number of documents),
block b holding documents ``doc_starts[b] .. doc_starts[b+1]-1`` (global document ids, storage order) and
tokens ``token_starts[b] .. token_starts[b+1]-1`` of the source's storage (blocks concatenated in order, each
document's tokens contiguous and ending in EOS, so every document has at least one token).

Contract:
- Epoch e of the ledger is the blocks in the order ``block_order(B, seed, source, e)`` (a permutation of
  ``range(B)``); inside each block, its documents in the order ``doc_order(n_b, seed, source, e, b)`` (a
  permutation of ``range(n_b)``); every document joined whole. Both are seeded by ``(seed, source, epoch)``
  (plus the block id for the second), independent of any task split: deterministic everywhere.
- Ledger position p is token ``p mod T`` of epoch ``p // T`` (T = the source's tokens), as in
  :mod:`mixlab.pack.ledger`. ``ledger_pieces(layout, lengths_of, seed, source, p, q)`` returns the pieces
  covering ``[p, q)`` in stream order: per piece the global document id, the offset inside the document, the
  length, and ``token`` = where those tokens start in storage. Gathering them (:func:`gather`) gives exactly
  the slice ``[p, q)`` of the materialized stream (``tests/test_pack_order.py`` builds it the simple way).
- ``block_pieces(...)`` is ``table_pieces(block_table(...), lo, hi)``: a reader that reads a block in several
  calls (the packed writer, shard after shard) keeps the :class:`BlockTable` (the block's documents in the epoch's
  order, O(its documents)) instead of re-drawing the permutation each time.
- Per call it needs the per-block metadata (``BlockLayout``: cumulative documents and tokens, O(B)) and the
  document lengths of the blocks that ``[p, q)`` touches (``lengths_of(b)``, e.g. read from that shard's
  index); memory O(B + touched blocks' documents), never O(documents of the source) or O(tokens of an epoch).

Quality trade-off: documents of one block stay together within an epoch (shuffled among themselves), as in
MosaicML streaming's shard-level shuffles: a stretch of one source's sequences draws from one block's
documents in random order, blocks come in random order, and each epoch reorders both levels. Larger blocks
keep more of the source's neighbouring documents together (a coarser shuffle across blocks); smaller blocks
shuffle more globally but cost more metadata (O(B) per task). Any block size gives a valid epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import xxhash
from numpy.random import default_rng  # imported here, not on first use: 6 ms of a 40 ms x10 pack


@dataclass(frozen=True)
class BlockLayout:
    """Per-block metadata: cumulative document counts and token counts, both int64 ``[B+1]`` from 0."""

    doc_starts: np.ndarray
    token_starts: np.ndarray

    def __post_init__(self) -> None:
        d, t = self.doc_starts, self.token_starts
        if d.ndim != 1 or d.shape != t.shape or len(d) < 2 or d[0] != 0 or t[0] != 0:
            raise ValueError("doc_starts and token_starts must be cumulative int64 arrays [B+1] starting at 0")
        nd, nt = np.diff(d), np.diff(t)
        if (nd < 0).any() or (nt < nd).any() or ((nd == 0) != (nt == 0)).any():
            raise ValueError(
                "block metadata is inconsistent: every block needs at least one token per document and "
                "documents for its tokens; rebuild the layout from the shard indexes"
            )

    @classmethod
    def from_counts(cls, docs: np.ndarray | list[int], tokens: np.ndarray | list[int]) -> BlockLayout:
        """From per-block document and token counts (e.g. one entry per token-shard file)."""
        z = np.zeros(1, dtype=np.int64)
        return cls(np.concatenate([z, np.cumsum(docs, dtype=np.int64)]),
                   np.concatenate([z, np.cumsum(tokens, dtype=np.int64)]))

    @classmethod
    def from_doc_ends(cls, doc_ends: np.ndarray, docs_per_block: int) -> BlockLayout:
        """Fixed-size blocks of ``docs_per_block`` documents over one flat store (``doc_ends`` cumulative)."""
        n = len(doc_ends)
        cuts = np.append(np.arange(0, n, docs_per_block, dtype=np.int64), n)
        ends = np.concatenate([np.zeros(1, dtype=np.int64), np.asarray(doc_ends, dtype=np.int64)])
        return cls(cuts, ends[cuts])

    @property
    def num_blocks(self) -> int:
        return len(self.doc_starts) - 1

    @property
    def num_docs(self) -> int:
        return int(self.doc_starts[-1])

    @property
    def num_tokens(self) -> int:
        return int(self.token_starts[-1])


class Pieces(NamedTuple):
    """Stream-ordered pieces of documents: int64 arrays of equal length."""

    doc: np.ndarray  # global document id (storage order)
    offset: np.ndarray  # first token of the piece inside its document
    length: np.ndarray  # tokens in the piece (>= 1)
    token: np.ndarray  # storage position of the piece's first token


def _key(seed: int, source: str) -> int:
    return xxhash.xxh64_intdigest(source.encode(), seed=seed & 0xFFFFFFFFFFFFFFFF)


def block_order(num_blocks: int, seed: int, source: str, epoch: int) -> np.ndarray:
    """Permutation of the source's blocks for one epoch."""
    return default_rng([_key(seed, source), 1, epoch]).permutation(num_blocks)


def doc_order(num_docs: int, seed: int, source: str, epoch: int, block: int) -> np.ndarray:
    """Permutation of one block's documents (local ids) for one epoch."""
    return default_rng([_key(seed, source), 2, epoch, block]).permutation(num_docs)


class BlockTable(NamedTuple):
    """One block as it reads in one epoch: its documents in shuffled order (block-relative positions)."""

    first_doc: int  # global id of the block's first document (storage order)
    token_start: int  # storage position of the block's first token
    perm: np.ndarray  # local document ids in stream order: doc_order(...)
    ends: np.ndarray  # stream end of each document in that order (cumulative lengths[perm])
    lengths: np.ndarray  # lengths[perm]
    stored: np.ndarray  # block-relative storage offset of each document in that order

    @property
    def num_tokens(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0


def block_table(
    layout: BlockLayout, lengths: np.ndarray, seed: int, source: str, epoch: int, block: int
) -> BlockTable:
    """``block`` as it reads in ``epoch`` (O(its documents)); checks ``lengths`` against the layout."""
    lengths = np.asarray(lengths, dtype=np.int64)
    first_doc = int(layout.doc_starts[block])
    n_docs = int(layout.doc_starts[block + 1]) - first_doc
    n_tokens = int(layout.token_starts[block + 1] - layout.token_starts[block])
    if len(lengths) != n_docs or int(lengths.sum()) != n_tokens or (lengths < 1).any():
        raise ValueError(
            f"source {source!r} block {block}: its document lengths ({len(lengths)} documents, "
            f"{int(lengths.sum())} tokens) do not match the layout ({n_docs} documents, {n_tokens} tokens, every "
            "document >= 1 token); the shard index and the layout come from different data: rebuild the layout"
        )
    perm = doc_order(n_docs, seed, source, epoch, block)
    stored_start = np.cumsum(lengths) - lengths  # storage offset of each local document inside the block
    shuffled = lengths[perm]
    return BlockTable(first_doc, int(layout.token_starts[block]), perm, np.cumsum(shuffled), shuffled,
                      stored_start[perm])


def table_pieces(table: BlockTable, lo: int, hi: int) -> Pieces:
    """Pieces of tokens ``[lo, hi)`` of the block ``table`` describes (block-relative, shuffled order)."""
    if not 0 <= lo <= hi <= table.num_tokens:
        raise ValueError(f"token range [{lo}, {hi}) is outside a block of {table.num_tokens} tokens")
    if lo == hi:
        e = np.zeros(0, dtype=np.int64)
        return Pieces(e, e, e, e)
    ends = table.ends
    i0 = int(np.searchsorted(ends, lo, side="right"))
    i1 = int(np.searchsorted(ends, hi, side="left")) + 1  # one past the last document touched
    starts = ends[i0:i1] - table.lengths[i0:i1]
    piece_lo = np.maximum(starts, lo)
    piece_hi = np.minimum(ends[i0:i1], hi)
    offset = piece_lo - starts
    return Pieces(
        doc=table.first_doc + table.perm[i0:i1], offset=offset, length=piece_hi - piece_lo,
        token=table.token_start + table.stored[i0:i1] + offset,
    )


def block_pieces(
    layout: BlockLayout, lengths: np.ndarray, seed: int, source: str, epoch: int, block: int, lo: int, hi: int
) -> Pieces:
    """Pieces of tokens ``[lo, hi)`` of ``block`` as it reads in ``epoch`` (block-relative, shuffled order)."""
    table = block_table(layout, lengths, seed, source, epoch, block)
    if not 0 <= lo <= hi <= table.num_tokens:
        raise ValueError(f"token range [{lo}, {hi}) is outside block {block} of {table.num_tokens} tokens")
    return table_pieces(table, lo, hi)


def ledger_spans(layout: BlockLayout, seed: int, source: str, p: int, q: int) -> list[tuple[int, int, int, int]]:
    """``(epoch, block, lo, hi)`` block-relative token ranges covering ledger ``[p, q)`` in stream order.

    Needs only the layout (O(B)); each span then maps to pieces with that block's document lengths.
    """
    total = layout.num_tokens
    if total == 0:
        raise ValueError(f"source {source!r} has no training tokens; it cannot be read")
    if not 0 <= p <= q:
        raise ValueError(f"ledger range [{p}, {q}) must satisfy 0 <= p <= q")
    spans: list[tuple[int, int, int, int]] = []
    pos = p
    while pos < q:
        epoch, at = divmod(pos, total)
        stop = min(q - epoch * total, total)  # end of this epoch's part, epoch-relative
        order = block_order(layout.num_blocks, seed, source, epoch)
        sizes = np.diff(layout.token_starts)[order]
        ends = np.cumsum(sizes)
        i = int(np.searchsorted(ends, at, side="right"))
        while at < stop:
            if sizes[i] == 0:  # an empty block holds no position
                i += 1
                continue
            b = int(order[i])
            b_start = int(ends[i] - sizes[i])
            hi = min(int(ends[i]), stop)
            spans.append((epoch, b, at - b_start, hi - b_start))
            at = hi
            i += 1
        pos = epoch * total + stop
    return spans


def ledger_pieces(
    layout: BlockLayout, lengths_of: Callable[[int], np.ndarray], seed: int, source: str, p: int, q: int
) -> Pieces:
    """Pieces covering ledger positions ``[p, q)`` (may span epochs); ``lengths_of(b)`` = block b's lengths."""
    parts = [
        block_pieces(layout, lengths_of(b), seed, source, e, b, lo, hi)
        for e, b, lo, hi in ledger_spans(layout, seed, source, p, q)
    ]
    if not parts:
        e = np.zeros(0, dtype=np.int64)
        return Pieces(e, e, e, e)
    return Pieces(*(np.concatenate(col) for col in zip(*parts, strict=True)))


def gather(storage: np.ndarray, pieces: Pieces) -> np.ndarray:
    """The tokens of ``pieces`` concatenated, read from a flat store (array or memmap of all blocks in order)."""
    length = pieces.length
    if len(length) == 0:
        return storage[:0].copy()
    shift = np.repeat(pieces.token - (np.cumsum(length) - length), length)
    return storage[np.arange(int(length.sum()), dtype=np.int64) + shift]


def window_span(ledger_start: int, seq_len: int, first: int, last: int) -> tuple[int, int]:
    """Ledger range read by a source's sequences ``[first, last)`` of a phase starting at ``ledger_start``.

    Sequence i is the window ``[s + i L, s + i L + L + 1)``; consecutive windows share one token.
    """
    if last <= first:
        return ledger_start + first * seq_len, ledger_start + first * seq_len
    return ledger_start + first * seq_len, ledger_start + last * seq_len + 1


def windows(stream: np.ndarray, seq_len: int) -> np.ndarray:
    """``[n, L+1]`` windows of a stream of ``n L + 1`` tokens read over :func:`window_span` (a copy)."""
    n = (len(stream) - 1) // seq_len if len(stream) else 0
    if len(stream) and n * seq_len + 1 != len(stream):
        raise ValueError(f"a stream of {len(stream)} tokens is not n * {seq_len} + 1 tokens")
    idx = np.arange(n, dtype=np.int64)[:, None] * seq_len + np.arange(seq_len + 1, dtype=np.int64)
    return stream[idx] if n else np.zeros((0, seq_len + 1), dtype=stream.dtype)
