"""Streaming interleave (mixlab.pack.order) and the two-level epoch order (mixlab.pack.blockorder)."""

from __future__ import annotations

import numpy as np
import pytest

from mixlab.pack.blockorder import (
    BlockLayout,
    block_order,
    doc_order,
    gather,
    ledger_pieces,
    ledger_spans,
    window_span,
    windows,
)
from mixlab.pack.interleave import interleave, interleave_reference
from mixlab.pack.order import (
    InterleaveState,
    interleave_checkpoints,
    interleave_chunk,
    interleave_start,
    shard_bounds,
    state_at,
)


def _random_counts(rng: np.random.Generator) -> list[int]:
    k = int(rng.integers(1, 9))
    scale = int(rng.choice([3, 40, 400]))
    counts = rng.integers(0, scale, k).tolist()
    if sum(counts) == 0:
        counts[int(rng.integers(k))] = 1
    return counts


# ------------------------------------------------------------------------------------------- interleave
def test_chunks_concatenate_to_interleave() -> None:
    """Any split of [0, N) into chunks, state carried, gives interleave(counts) and interleave_reference."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        counts = _random_counts(rng)
        whole = interleave(counts)
        if sum(counts) <= 400:
            assert np.array_equal(whole, interleave_reference(counts)), counts
        state, parts = interleave_start(counts), []
        while state.position < len(whole):
            n = min(int(rng.integers(0, 37)), len(whole) - state.position)
            got, state = interleave_chunk(counts, state, n)
            parts.append(got)
        assert np.array_equal(np.concatenate(parts), whole), counts
        assert state.taken == tuple(counts)


def test_skewed_and_edge_counts_match() -> None:
    """Extreme mixes (one source, zeros, 1-vs-many, 8 equal) stream to the same order as interleave."""
    for counts in ([1], [5], [0, 3], [1, 999], [999, 1, 0, 1], [7] * 8, [0, 0, 1, 0], [2, 3, 5, 7, 11, 13, 17, 19]):
        whole = interleave(counts)
        got, state = interleave_chunk(counts, interleave_start(counts), len(whole))
        assert np.array_equal(got, whole), counts
        assert np.array_equal(got, interleave_reference(counts)), counts


def test_millions_of_sequences_match() -> None:
    """At millions of sequences (deadlines large floats, near-ties) the streamed order still equals interleave."""
    rng = np.random.default_rng(13)
    for k in (2, 5, 8):
        counts = (rng.dirichlet(np.ones(k)) * 2_000_000).astype(np.int64).tolist()
        whole = interleave(counts)
        first, state = interleave_chunk(counts, interleave_start(counts), len(whole) // 3)
        rest, _ = interleave_chunk(counts, state, len(whole) - len(first))
        assert np.array_equal(np.concatenate([first, rest]), whole), counts


def test_checkpoints_are_prefix_counts() -> None:
    """The plan's row j is the per-source count of order[:a_j], for uneven and unit shard sizes."""
    rng = np.random.default_rng(11)
    for _ in range(60):
        counts = _random_counts(rng)
        whole = interleave(counts)
        for size in (1, int(rng.integers(1, 50)), len(whole) + 5):
            bounds = shard_bounds(len(whole), size)
            cp = interleave_checkpoints(counts, bounds)
            assert cp.shape == (len(bounds), len(counts))
            for j, a in enumerate(bounds):
                assert np.array_equal(cp[j], np.bincount(whole[:a], minlength=len(counts))), (counts, size, j)


def test_task_from_checkpoint_reproduces_its_shard() -> None:
    """A task for [a_j, a_{j+1}) started from state_at(checkpoint j) writes exactly that slice of the order."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        counts = _random_counts(rng)
        whole = interleave(counts)
        bounds = shard_bounds(len(whole), int(rng.integers(1, 30)))
        cp = interleave_checkpoints(counts, bounds)
        for j in rng.permutation(len(bounds) - 1):  # tasks in any order, independent of each other
            a, b = int(bounds[j]), int(bounds[j + 1])
            got, after = interleave_chunk(counts, state_at(cp[j]), b - a)
            assert np.array_equal(got, whole[a:b])
            assert after == state_at(cp[j + 1])


def test_bad_state_and_bounds_are_refused() -> None:
    """States that do not fit the counts, overruns and non-rising bounds raise with a reason."""
    with pytest.raises(ValueError, match="does not fit"):
        interleave_chunk([3, 4], InterleaveState(2, (1, 0)), 1)
    with pytest.raises(ValueError, match="does not fit"):
        interleave_chunk([3, 4], InterleaveState(4, (4, 0)), 1)
    with pytest.raises(ValueError, match="cannot take"):
        interleave_chunk([3, 4], interleave_start([3, 4]), 8)
    with pytest.raises(ValueError, match="rise strictly"):
        interleave_checkpoints([3, 4], [0, 5, 5])
    with pytest.raises(ValueError, match="limit"):
        interleave_start([2_000_000_000, 2_000_000_000])


# ------------------------------------------------------------------------------------------ epoch order
def _source(rng: np.random.Generator, n_blocks: int) -> tuple[BlockLayout, list[np.ndarray], np.ndarray]:
    """Random blocks (some empty) of documents with random lengths; tokens = (document id, position) coded."""
    docs = rng.integers(0, 9, n_blocks)
    docs[rng.integers(n_blocks)] += 1  # at least one document
    lengths = [rng.integers(1, 12, int(d)).astype(np.int64) for d in docs]
    layout = BlockLayout.from_counts(docs, [int(x.sum()) for x in lengths])
    all_lengths = np.concatenate(lengths)
    doc_id = np.repeat(np.arange(len(all_lengths)), all_lengths)
    within = np.arange(len(doc_id)) - np.repeat(np.cumsum(all_lengths) - all_lengths, all_lengths)
    storage = doc_id * 1000 + within  # every token names its document and its offset in it
    return layout, lengths, storage


def _reference_epoch(layout: BlockLayout, lengths: list[np.ndarray], storage: np.ndarray, seed: int, name: str,
                     epoch: int) -> np.ndarray:
    """The simple materialization: blocks in block_order, each block's documents in doc_order, concatenated."""
    out = []
    for b in block_order(layout.num_blocks, seed, name, epoch):
        base = int(layout.token_starts[b])
        starts = np.cumsum(lengths[b]) - lengths[b]
        for d in doc_order(len(lengths[b]), seed, name, epoch, int(b)):
            out.append(storage[base + starts[d]: base + starts[d] + lengths[b][d]])
    return np.concatenate(out)


def test_every_document_once_per_epoch() -> None:
    """The pieces of one whole epoch are every document exactly once, whole (offset 0, full length)."""
    rng = np.random.default_rng(5)
    for trial in range(30):
        layout, lengths, _ = _source(rng, int(rng.integers(1, 12)))
        all_lengths = np.concatenate(lengths)
        total = layout.num_tokens
        for epoch in (0, 1, 4):
            pc = ledger_pieces(layout, lengths.__getitem__, trial, "code", epoch * total, (epoch + 1) * total)
            assert np.array_equal(np.sort(pc.doc), np.arange(layout.num_docs))
            assert (pc.offset == 0).all()
            assert np.array_equal(pc.length, all_lengths[pc.doc])


def test_gathered_ranges_equal_materialized_stream() -> None:
    """gather(ledger_pieces([p, q))) equals the slice [p, q) of the epochs materialized by the reference,
    including ranges that cross blocks and epochs and empty ones."""
    rng = np.random.default_rng(9)
    for trial in range(30):
        layout, lengths, storage = _source(rng, int(rng.integers(1, 10)))
        total = layout.num_tokens
        stream = np.concatenate([_reference_epoch(layout, lengths, storage, trial, "text", e) for e in range(4)])
        for _ in range(25):
            p = int(rng.integers(0, 4 * total))
            q = int(rng.integers(p, 4 * total + 1))
            pieces = ledger_pieces(layout, lengths.__getitem__, trial, "text", p, q)
            assert (pieces.length >= 1).all()
            assert np.array_equal(gather(storage, pieces), stream[p:q]), (trial, p, q)
            assert np.array_equal(pieces.doc, gather(storage, pieces)[np.cumsum(pieces.length) - pieces.length]
                                  // 1000)


def test_phase_windows_by_task_equal_whole_take() -> None:
    """Windows of a source's sequences [a, b), read through window_span, equal rows a..b of the windows of
    all the phase's sequences: independent tasks reproduce the whole phase's take."""
    rng = np.random.default_rng(21)
    layout, lengths, storage = _source(rng, 7)
    seq_len, start, n = 5, 13, 3 * layout.num_tokens // 5  # about three epochs, starting mid-epoch
    span = window_span(start, seq_len, 0, n)
    whole = windows(gather(storage, ledger_pieces(layout, lengths.__getitem__, 0, "s", *span)), seq_len)
    assert whole.shape == (n, seq_len + 1)
    stream = np.concatenate([_reference_epoch(layout, lengths, storage, 0, "s", e) for e in range(5)])
    assert np.array_equal(whole[1], stream[start + seq_len: start + 2 * seq_len + 1])
    for a, b in [(0, 1), (4, 9), (n - 3, n), (6, 6)]:
        got = windows(gather(storage, ledger_pieces(layout, lengths.__getitem__, 0, "s",
                                                    *window_span(start, seq_len, a, b))), seq_len)
        assert np.array_equal(got, whole[a:b]), (a, b)


def test_epoch_order_is_deterministic_and_reshuffled() -> None:
    """Same (seed, source, epoch) -> same pieces; another epoch, seed or source -> another order."""
    layout = BlockLayout.from_doc_ends(np.cumsum(np.full(400, 3)), 50)
    lengths = lambda b: np.full(int(layout.doc_starts[b + 1] - layout.doc_starts[b]), 3)  # noqa: E731
    t = layout.num_tokens

    def docs(seed: int, name: str, epoch: int) -> np.ndarray:
        return ledger_pieces(layout, lengths, seed, name, epoch * t, (epoch + 1) * t).doc

    assert np.array_equal(docs(1, "a", 0), docs(1, "a", 0))
    assert not np.array_equal(docs(1, "a", 0), docs(1, "a", 1))
    assert not np.array_equal(docs(1, "a", 0), docs(2, "a", 0))
    assert not np.array_equal(docs(1, "a", 0), docs(1, "b", 0))


def test_spans_need_only_touched_blocks() -> None:
    """A short range asks lengths_of for only the blocks it touches, not for the whole source."""
    layout = BlockLayout.from_doc_ends(np.cumsum(np.full(1000, 4)), 100)
    asked: list[int] = []

    def lengths_of(b: int) -> np.ndarray:
        asked.append(b)
        return np.full(100, 4)

    ledger_pieces(layout, lengths_of, 0, "x", 390, 410)  # inside block-order slot 0 (400 tokens per block)
    spans = ledger_spans(layout, 0, "x", 390, 410)
    assert asked == [b for _, b, _, _ in spans] and len(asked) == 2


def test_stale_metadata_is_refused() -> None:
    """Document lengths that disagree with the layout (a stale index) raise, naming source and block."""
    layout = BlockLayout.from_counts([2, 2], [5, 6])
    with pytest.raises(ValueError, match="'src' block"):
        ledger_pieces(layout, lambda b: np.array([2, 2]), 0, "src", 0, 11)
    with pytest.raises(ValueError, match="inconsistent"):
        BlockLayout.from_counts([2, 0], [5, 3])
