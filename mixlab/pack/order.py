"""Tijdeman's interleave, streamed: the phase order chunk by chunk with carried state, and the shard plan.

Contract (same rule, same result as :func:`mixlab.pack.interleave.interleave`, which materializes it whole):
- The state before position ``t`` (0-based) of a phase with per-source ``counts`` is
  ``InterleaveState(position=t, taken=(c_0, ..., c_{K-1}))`` where ``c_k`` counts source k in ``order[:t]``.
  That is everything the rule needs: ``counts`` and their sum are fixed for the phase, and the rule's step
  number is ``position + 1`` (``position == sum(taken)`` is checked).
- ``interleave_chunk(counts, state, n)`` returns ``(order[t:t+n], state after)``; concatenating the chunks of
  any split of ``[0, N)`` gives ``interleave(counts)`` exactly (uint8 source ids).
- ``interleave_checkpoints(counts, bounds)`` runs the rule once without storing the order and returns the
  ``taken`` counts at each boundary, ``[len(bounds), K]`` int64: memory O(K x shards), never O(N). A task
  that writes shard ``[a_j, a_{j+1})`` starts from ``state_at(checkpoints[j])``.

The numba kernel is the rule of ``interleave`` with two quantities cached per source, each updated only when
that source is chosen (so one step costs K integer and float comparisons, no division):
- the release step ``r_k``: source k is eligible at step t iff ``counts_k t - taken_k N >= ceil(mu N - 1e-9 N)``
  (``interleave``'s float test, exact here because the left side is an integer of magnitude <= N), i.e.
  ``t >= r_k = ceil((taken_k N + ceil(mu N - 1e-9 N)) / counts_k)``;
- the deadline ``(taken_k + 1 - mu) N / counts_k``, computed with the same float operations as ``interleave``,
  so ties break identically (lowest id).
Integer products reach ``N^2``: phases are limited to ``MAX_SEQUENCES`` (3e9) sequences so they fit int64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mixlab.pack.interleave import njit

MAX_SEQUENCES = 3_000_000_000  # N^2 < 2^63: the rule's integer products cannot overflow int64


@dataclass(frozen=True)
class InterleaveState:
    """Where the rule stands before sequence ``position``: ``taken[k]`` = source k's count in ``[0, position)``."""

    position: int
    taken: tuple[int, ...]


@njit(cache=True)
def _ceil_div(a: int, b: int) -> int:  # pragma: no cover - compiled; b > 0, a of either sign
    return -((-a) // b)


@njit(cache=True)
def _run(
    counts: np.ndarray, taken: np.ndarray, n: int, out: np.ndarray, write: bool, bounds: np.ndarray,
    snaps: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Advance ``taken`` (in place) by ``n`` steps; write ids to ``out`` when ``write``; snapshot at ``bounds``."""
    k_count = counts.shape[0]
    total = 0
    t0 = 0
    for k in range(k_count):
        total += counts[k]
        t0 += taken[k]
    mu = 1.0 / (2 * k_count - 2) if k_count > 1 else 0.0
    thr = int(np.ceil(mu * total - 1e-9 * total))
    never = np.iinfo(np.int64).max
    release = np.empty(k_count, dtype=np.int64)
    deadline = np.empty(k_count, dtype=np.float64)
    for k in range(k_count):
        if counts[k] == 0 or taken[k] >= counts[k]:
            release[k] = never
            deadline[k] = np.inf
        else:
            release[k] = _ceil_div(taken[k] * total + thr, counts[k])
            deadline[k] = (taken[k] + 1 - mu) * total / counts[k]
    j = 0
    n_bounds = bounds.shape[0]
    while j < n_bounds and bounds[j] < t0:
        j += 1
    for i in range(n):
        pos = t0 + i
        while j < n_bounds and bounds[j] == pos:
            for k in range(k_count):
                snaps[j, k] = taken[k]
            j += 1
        t = pos + 1
        best = -1
        best_deadline = np.inf
        for k in range(k_count):
            if release[k] <= t and deadline[k] < best_deadline:
                best_deadline = deadline[k]
                best = k
        if best < 0:  # as in interleave: unreachable for a feasible instance (Tijdeman)
            best_def = -np.inf
            for k in range(k_count):
                d = counts[k] * t - taken[k] * total
                if taken[k] < counts[k] and d > best_def:
                    best_def = d
                    best = k
        if write:
            out[i] = best
        taken[best] += 1
        if taken[best] >= counts[best]:
            release[best] = never
            deadline[best] = np.inf
        else:
            release[best] = _ceil_div(taken[best] * total + thr, counts[best])
            deadline[best] = (taken[best] + 1 - mu) * total / counts[best]
    pos = t0 + n
    while j < n_bounds and bounds[j] == pos:
        for k in range(k_count):
            snaps[j, k] = taken[k]
        j += 1


def _counts(counts: Sequence[int]) -> np.ndarray:
    arr = np.asarray(counts, dtype=np.int64)
    if arr.ndim != 1 or len(arr) == 0 or len(arr) > 255 or (arr < 0).any():
        raise ValueError(f"counts must be 1..255 non-negative integers, got {counts!r}")
    if int(arr.sum()) > MAX_SEQUENCES:
        raise ValueError(
            f"a phase of {int(arr.sum()):,} sequences exceeds the interleave's limit of {MAX_SEQUENCES:,}; "
            "split the budget into several phases or raise seq_len"
        )
    return arr


def _taken(arr: np.ndarray, state: InterleaveState) -> np.ndarray:
    taken = np.asarray(state.taken, dtype=np.int64)
    if taken.shape != arr.shape or (taken < 0).any() or (taken > arr).any() or int(taken.sum()) != state.position:
        raise ValueError(
            f"state {state} does not fit counts {arr.tolist()}: taken needs one entry per source, each between "
            "0 and its count, summing to position (build it with interleave_start, interleave_chunk or state_at)"
        )
    return taken


def interleave_start(counts: Sequence[int]) -> InterleaveState:
    """The state before the first sequence of a phase with these counts."""
    return InterleaveState(0, (0,) * len(_counts(counts)))


def state_at(checkpoint: Sequence[int] | np.ndarray) -> InterleaveState:
    """The state whose ``taken`` is one row of :func:`interleave_checkpoints`."""
    taken = tuple(int(c) for c in checkpoint)
    return InterleaveState(sum(taken), taken)


def interleave_chunk(counts: Sequence[int], state: InterleaveState, n: int) -> tuple[np.ndarray, InterleaveState]:
    """Source ids (uint8) of sequences ``[state.position, state.position + n)`` and the state after them."""
    arr = _counts(counts)
    taken = _taken(arr, state)
    if n < 0 or state.position + n > int(arr.sum()):
        raise ValueError(f"cannot take {n} sequences at position {state.position} of a {int(arr.sum())}-sequence phase")
    out = np.empty(n, dtype=np.uint8)
    _run(arr, taken, n, out, True, np.zeros(0, dtype=np.int64), np.zeros((0, len(arr)), dtype=np.int64))
    return out, InterleaveState(state.position + n, tuple(int(c) for c in taken))


def interleave_checkpoints(counts: Sequence[int], bounds: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per-source counts of each prefix ``[0, bounds[j])``: int64 ``[len(bounds), K]`` (bounds strictly rising)."""
    arr = _counts(counts)
    b = np.asarray(bounds, dtype=np.int64)
    total = int(arr.sum())
    if b.ndim != 1 or (len(b) and (b[0] < 0 or b[-1] > total)) or (np.diff(b) <= 0).any():
        raise ValueError(f"bounds must rise strictly within [0, {total}], got {b[:8].tolist()}...")
    snaps = np.zeros((len(b), len(arr)), dtype=np.int64)
    last = int(b[-1]) if len(b) else 0
    _run(arr, np.zeros(len(arr), dtype=np.int64), last, np.zeros(0, dtype=np.uint8), False, b, snaps)
    return snaps


def shard_bounds(num_sequences: int, shard_sequences: int) -> np.ndarray:
    """``[0, s, 2s, ..., N]``: shard j holds sequences ``[bounds[j], bounds[j+1])`` (the last may be shorter)."""
    if shard_sequences <= 0:
        raise ValueError(f"shard_sequences must be positive, got {shard_sequences}")
    return np.unique(np.append(np.arange(0, num_sequences, shard_sequences, dtype=np.int64), num_sequences))
