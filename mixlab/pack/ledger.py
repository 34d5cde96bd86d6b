"""One ledger per source: which tokens a phase takes, with reshuffled epochs and a repetition cap.

A source's training stream is epoch 0, epoch 1, ... where epoch e is every training document of the source
(each already ending in EOS) in the two-level order of :mod:`mixlab.pack.blockorder` (blocks permuted, then the
documents of each block; a source of one block is simply its documents permuted by ``epoch_order``). A position
in the ledger is a global token offset into that stream. A phase that needs n sequences of L+1 tokens starting at
position p takes the windows ``[p + i*L, p + i*L + L + 1)`` (consecutive windows share one token: each
sequence's last target is the next one's first input) and ends at ``p + n*L``. The next phase starts there, so
it sees unseen documents first. Taking past ``max_repeat`` epochs raises :class:`MixtureError` naming the
source, what the phase needs and what is available.

``take`` and ``epoch_stream`` materialize what they return (tests, small sources); the sharded writer reads
only each shard's slice of the ledger (:func:`mixlab.pack.source.read_ledger`). ``locate`` maps a ledger
position back to its document through the same block order (provenance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xxhash

from mixlab.errors import MixlabError
from mixlab.pack.blockorder import block_pieces, doc_order, ledger_spans, windows
from mixlab.pack.source import TokenSource, layout_of, read_ledger


class MixtureError(MixlabError, ValueError):
    """A mixture that cannot be packed (not enough data under the repetition cap)."""


def epoch_order(num_docs: int, seed: int, source: str, epoch: int) -> np.ndarray:
    """Document order of one epoch of a one-block source (fresh each epoch): block 0's ``doc_order``."""
    return doc_order(num_docs, seed, source, epoch, 0)


@dataclass(frozen=True)
class SourceTokens:
    """A source's training tokens as flat arrays (one block): ``doc_ends`` cumulative, ``doc_ends[-1] ==
    len(tokens)``. Implements :class:`~mixlab.pack.source.TokenSource`."""

    name: str
    tokens: np.ndarray
    doc_ends: np.ndarray

    @property
    def num_tokens(self) -> int:
        return int(self.doc_ends[-1]) if len(self.doc_ends) else 0

    @property
    def digest(self) -> str:
        return xxhash.xxh64(np.ascontiguousarray(self.tokens)).hexdigest()

    def train_block_counts(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([len(self.doc_ends)], dtype=np.int64), np.array([self.num_tokens], dtype=np.int64)

    def train_block(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i != 0:
            raise IndexError(f"source {self.name!r} has one block, asked for block {i}")
        return self.tokens, np.diff(np.asarray(self.doc_ends, dtype=np.int64), prepend=0)

    def epoch_stream(self, seed: int, epoch: int) -> np.ndarray:
        """All tokens of one epoch in that epoch's document order (vectorized gather)."""
        return read_ledger(self, layout_of(self), seed, epoch * self.num_tokens, (epoch + 1) * self.num_tokens)


@dataclass(frozen=True)
class Take:
    """What one phase took from one source."""

    sequences: np.ndarray  # [n, L+1]
    start: int  # ledger position before the phase
    end: int  # ledger position after (start + n*L)
    epochs_touched: tuple[int, ...]


def _supply(src: TokenSource) -> int:
    return int(np.asarray(src.train_block_counts()[1], dtype=np.int64).sum())


def check_supply(src: TokenSource, start: int, n: int, seq_len: int, max_repeat: float, phase: str) -> str | None:
    """None when ``n`` windows fit under the repetition cap, else the reason (names source, need, supply)."""
    from mixlab.pack.plan import supply_problem

    return supply_problem(src.name, _supply(src), start, n, seq_len, max_repeat, phase)


def take(
    src: TokenSource, start: int, n: int, seq_len: int, seed: int, max_repeat: float, phase: str = "?"
) -> Take:
    """Take ``n`` windows of ``seq_len + 1`` tokens from ``src`` starting at ledger position ``start``."""
    problem = check_supply(src, start, n, seq_len, max_repeat, phase)
    if problem:
        raise MixtureError(problem)
    total = _supply(src)
    end = start + n * seq_len
    if n == 0:
        return Take(np.zeros((0, seq_len + 1), dtype=src.train_block(0)[0].dtype), start, start, ())
    stream = read_ledger(src, layout_of(src), seed, start, end + 1)
    return Take(windows(stream, seq_len), start, end, tuple(range(start // total, end // total + 1)))


def locate(src: TokenSource, seed: int, position: int) -> tuple[int, int]:
    """(epoch, global document index in the source's storage order) of the token at ledger ``position``."""
    layout = layout_of(src)
    (epoch, b, lo, hi), = ledger_spans(layout, seed, src.name, position, position + 1)
    pieces = block_pieces(layout, src.train_block(b)[1], seed, src.name, epoch, b, lo, hi)
    return epoch, int(pieces.doc[0])
