"""One ledger per source: which tokens a phase takes, with reshuffled epochs and a repetition cap.

A source's training stream is epoch 0, epoch 1, ... where epoch e is every training document of the source
(each already ending in EOS) concatenated in the order ``epoch_order(seed, source, e)``. A position in the
ledger is a global token offset into that stream. A phase that needs n sequences of L+1 tokens starting at
position p takes the windows ``[p + i*L, p + i*L + L + 1)`` (consecutive windows share one token: each
sequence's last target is the next one's first input) and ends at ``p + n*L``. The next phase starts there, so
it sees unseen documents first. Taking past ``max_repeat`` epochs raises :class:`MixtureError` naming the
source, what the phase needs and what is available.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xxhash

from mixlab.errors import MixlabError


class MixtureError(MixlabError, ValueError):
    """A mixture that cannot be packed (not enough data under the repetition cap)."""


def epoch_order(num_docs: int, seed: int, source: str, epoch: int) -> np.ndarray:
    """Deterministic permutation of a source's documents for one epoch (fresh each epoch)."""
    key = xxhash.xxh64_intdigest(source.encode(), seed=seed & 0xFFFFFFFFFFFFFFFF)
    return np.random.default_rng([key, epoch]).permutation(num_docs)


@dataclass(frozen=True)
class SourceTokens:
    """A source's training tokens: flat array plus cumulative document ends (``doc_ends[-1] == len(tokens)``)."""

    name: str
    tokens: np.ndarray
    doc_ends: np.ndarray

    @property
    def num_tokens(self) -> int:
        return int(self.doc_ends[-1]) if len(self.doc_ends) else 0

    def epoch_stream(self, seed: int, epoch: int) -> np.ndarray:
        """All tokens of one epoch in that epoch's document order (vectorized gather)."""
        order = epoch_order(len(self.doc_ends), seed, self.name, epoch)
        starts = np.concatenate([[0], self.doc_ends[:-1]])
        lengths = (self.doc_ends - starts)[order]
        shift = np.repeat(starts[order] - (np.cumsum(lengths) - lengths), lengths)
        return self.tokens[np.arange(self.num_tokens, dtype=np.int64) + shift]


@dataclass(frozen=True)
class Take:
    """What one phase took from one source."""

    sequences: np.ndarray  # [n, L+1]
    start: int  # ledger position before the phase
    end: int  # ledger position after (start + n*L)
    epochs_touched: tuple[int, ...]


def check_supply(src: SourceTokens, start: int, n: int, seq_len: int, max_repeat: float, phase: str) -> str | None:
    """None when ``n`` windows fit under the repetition cap, else the reason (names source, need, supply)."""
    total = src.num_tokens
    need_last = start + n * seq_len + 1
    if n == 0 or (total > 0 and need_last <= max_repeat * total):
        return None
    return (
        f"source {src.name!r}: phase {phase!r} needs {n * seq_len:,} tokens ({n:,} sequences), reaching "
        f"{need_last:,} tokens of its stream counting earlier phases, but max_repeat={max_repeat:g} allows "
        f"{int(max_repeat * total):,} ({total:,} tokens of training data). Lower its weight or the phase "
        f"budget, raise max_repeat, or add data to the source."
    )


def take(
    src: SourceTokens, start: int, n: int, seq_len: int, seed: int, max_repeat: float, phase: str = "?"
) -> Take:
    """Take ``n`` windows of ``seq_len + 1`` tokens from ``src`` starting at ledger position ``start``."""
    problem = check_supply(src, start, n, seq_len, max_repeat, phase)
    if problem:
        raise MixtureError(problem)
    total = src.num_tokens
    end = start + n * seq_len
    need_last = end + 1  # the final window reads one token past `end`
    if n == 0:
        return Take(np.zeros((0, seq_len + 1), dtype=src.tokens.dtype), start, start, ())
    first, last = start // total, (need_last - 1) // total
    stream = np.concatenate([src.epoch_stream(seed, e) for e in range(first, last + 1)])
    base = start - first * total
    idx = base + np.arange(n, dtype=np.int64)[:, None] * seq_len + np.arange(seq_len + 1, dtype=np.int64)
    return Take(stream[idx], start, end, tuple(range(first, last + 1)))


def locate(src: SourceTokens, seed: int, position: int) -> tuple[int, int]:
    """(epoch, document index in the source) of the token at ledger ``position``: provenance lookup."""
    epoch, offset = divmod(position, src.num_tokens)
    order = epoch_order(len(src.doc_ends), seed, src.name, epoch)
    starts = np.concatenate([[0], src.doc_ends[:-1]])
    ends_in_order = np.cumsum((src.doc_ends - starts)[order])
    return epoch, int(order[np.searchsorted(ends_in_order, offset, side="right")])
