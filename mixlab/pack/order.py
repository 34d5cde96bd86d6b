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

Runners of that kernel, with identical results (``tests/test_pack_writer.py`` compares them over random counts,
chunks and bounds): the numba-compiled ``_run`` (~20 ns a step); ``_run_py``, the same statements over Python
ints and floats (~0.45 us a step at K=2; its floats are the compiled kernel's: the same operations on the same
doubles, every integer converted below 2^53; only the fallback branch, which Tijdeman's bound makes unreachable,
compares integers that numba rounds to doubles, which could matter past ~9.5e7 sequences); and ``_run_np``, the
runner without numba: whole stretches in the deadline order (:func:`_sorted_steps`, numpy, ~40 ns a step at K=2),
checked step by step to be the rule's choice, with ``_run_py`` where that order stops.
A fresh process pays ~0.8 s here to start numba the first time it calls a compiled function, even from the
on-disk cache (its entry points: awkward's numba extension, 0.26 s; its CPU target's registries, which import
scipy.linalg to find BLAS, 0.24 s; then the cached machine code), so ``jit=None`` (the default) runs ``n``
steps compiled only when numba is already started in this process or when ``n >= JIT_MIN_STEPS``, and with
``_run_np`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mixlab.pack.interleave import njit

MAX_SEQUENCES = 3_000_000_000  # N^2 < 2^63: the rule's integer products cannot overflow int64
# Phases below 2^19 sequences run without numba: the Python interleave (two passes, ~0.45 us a step) and the numpy
# gather (pack.source) cost ~1-1.5 ns per token more than the compiled kernels, less than the ~0.8 s numba takes
# to start in a fresh process up to ~0.5-0.8B tokens (measured: 400M tokens at seq_len 1024 = 390k sequences,
# 1.1-1.8 s of CPU either way; 1.2B tokens, 1.17M sequences: 3.4 s compiled, 4.5 s without).
JIT_MIN_STEPS = 1 << 19


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


def _run_py(
    counts: np.ndarray, taken: np.ndarray, n: int, out: np.ndarray, write: bool, bounds: np.ndarray,
    snaps: np.ndarray,
) -> None:
    """``_run`` statement for statement over Python ints and floats (module contract: identical results)."""
    cnt = [int(c) for c in counts]
    tk = [int(c) for c in taken]
    k_count = len(cnt)
    total = sum(cnt)
    t0 = sum(tk)
    mu = 1.0 / (2 * k_count - 2) if k_count > 1 else 0.0
    thr = math.ceil(mu * total - 1e-9 * total)
    never = (1 << 63) - 1
    inf = math.inf
    release = [never] * k_count
    deadline = [inf] * k_count
    for k in range(k_count):
        if cnt[k] != 0 and tk[k] < cnt[k]:
            release[k] = -((-(tk[k] * total + thr)) // cnt[k])
            deadline[k] = (tk[k] + 1 - mu) * total / cnt[k]
    ids = bytearray(n if write else 0)
    bnd = [int(b) for b in bounds]
    j = 0
    n_bounds = len(bnd)
    while j < n_bounds and bnd[j] < t0:
        j += 1
    sources = range(k_count)
    for i in range(n):
        pos = t0 + i
        while j < n_bounds and bnd[j] == pos:
            snaps[j] = tk
            j += 1
        t = pos + 1
        best = -1
        best_deadline = inf
        for k in sources:
            if release[k] <= t and deadline[k] < best_deadline:
                best_deadline = deadline[k]
                best = k
        if best < 0:  # as in interleave: unreachable for a feasible instance (Tijdeman)
            best_def = -inf
            for k in sources:
                d = cnt[k] * t - tk[k] * total
                if tk[k] < cnt[k] and d > best_def:
                    best_def = d
                    best = k
        if write:
            ids[i] = best
        tk[best] += 1
        if tk[best] >= cnt[best]:
            release[best] = never
            deadline[best] = inf
        else:
            release[best] = -((-(tk[best] * total + thr)) // cnt[best])
            deadline[best] = (tk[best] + 1 - mu) * total / cnt[best]
    pos = t0 + n
    while j < n_bounds and bnd[j] == pos:
        snaps[j] = tk
        j += 1
    taken[:] = tk
    if write:
        out[:] = np.frombuffer(bytes(ids), dtype=np.uint8)


# Steps of the deadline-order runner per attempt, at most: its candidates take ~K x 40 bytes each (K x 160 KiB; 1 << 16
# added 5 MB to the peak RSS of x1000's pack, 1 << 14 1.2 MB, for no measurable speed: 330k steps in 22 ms either way).
SORTED_WINDOW = 1 << 12


def _sorted_steps(
    cnt: np.ndarray, taken: np.ndarray, n: int, total: int, mu: float, thr: int, pos: int
) -> np.ndarray:
    """The longest prefix (at most ``n`` steps from ``pos``) of the rule's choices that the deadline order gives.

    Every source's jobs are its remaining picks, job ``j`` (its ``j``-th, 0-based) with the rule's release
    ``ceil((j N + thr) / c)`` and deadline ``(j + 1 - mu) N / c`` (the same integer and float operations as
    ``_run``); per source both rise with ``j``. Merge the first ``n`` jobs of each source by (deadline, source id)
    and take them in that order while each one's release is at most its step: at such a step the rule's choice is
    that job (the released job of least deadline, lowest id on ties: every other remaining job comes after it in
    the merge). The first job not yet released ends the prefix; the rule itself goes on from there."""
    jobs, ids = [], []
    for k in range(len(cnt)):
        j = np.arange(taken[k], min(int(cnt[k]), int(taken[k]) + n), dtype=np.int64)
        jobs.append(j)
        ids.append(np.full(len(j), k, dtype=np.uint8))
    job, sid = np.concatenate(jobs), np.concatenate(ids)
    c = cnt[sid]
    deadline = ((job + 1).astype(np.float64) - mu) * float(total) / c.astype(np.float64)
    merged = np.argsort(deadline, kind="stable")[:n]  # stable: ties keep the lower source id first
    release = -((-(job[merged] * total + thr)) // c[merged])
    late = np.flatnonzero(release > np.arange(pos + 1, pos + 1 + len(merged)))
    return sid[merged[: late[0] if len(late) else len(merged)]]


def _run_np(
    counts: np.ndarray, taken: np.ndarray, n: int, out: np.ndarray, write: bool, bounds: np.ndarray,
    snaps: np.ndarray,
) -> None:
    """``_run``'s results without numba: stretches the deadline order gives (:func:`_sorted_steps`, whole-array
    numpy) and, where it stops, ``_run_py`` for a stretch that doubles while the deadline order keeps stopping
    early (some 3+-source phases). Two sources (measured: every case of 30 random and the shipped mixtures) never
    stop: x100's 33k steps take ~2 ms here against 28 ms for ``_run_py``."""
    cnt = np.asarray(counts, dtype=np.int64)
    k_count, total = len(cnt), int(cnt.sum())
    mu = 1.0 / (2 * k_count - 2) if k_count > 1 else 0.0
    thr = math.ceil(mu * total - 1e-9 * total)
    t0 = int(taken.sum())
    bnd = np.asarray(bounds, dtype=np.int64)
    done, window, stretch = 0, 512, 1024
    while done < n:
        want = min(n - done, window)
        ids = _sorted_steps(cnt, taken, want, total, mu, thr, t0 + done)
        lo, hi = t0 + done, t0 + done + len(ids)
        for j in np.flatnonzero((bnd >= lo) & (bnd < hi)):  # bound hi is snapshotted by the next stretch
            snaps[j] = taken + np.bincount(ids[: bnd[j] - lo], minlength=k_count)
        if write:
            out[done : done + len(ids)] = ids
        taken += np.bincount(ids, minlength=k_count)[:k_count]
        done += len(ids)
        if len(ids) == want:  # the whole window: try a longer one
            window, stretch = min(2 * window, SORTED_WINDOW), 1024
            continue
        m = min(n - done, stretch)  # the deadline order stopped: the rule itself, for a stretch
        lo = t0 + done
        inside = (bnd >= lo) & (bnd < lo + m)
        sub_snaps = np.zeros((int(inside.sum()), k_count), dtype=np.int64)
        _run_py(cnt, taken, m, out[done : done + m] if write else out, write, bnd[inside], sub_snaps)
        snaps[inside] = sub_snaps
        done += m
        if len(ids) < want // 2:  # it keeps stopping early: longer stretches, shorter windows between them
            window, stretch = 512, 2 * stretch
    end = bnd == t0 + n
    snaps[end] = taken


def jit_started() -> bool:
    """Whether this process has loaded the compiled interleave (so numba's start-up is already paid)."""
    return bool(getattr(_run, "signatures", None))


def _runner(n: int, jit: bool | None):
    """``_run`` or ``_run_py`` for ``n`` steps (module contract)."""
    if jit is None:
        jit = n >= JIT_MIN_STEPS or jit_started()
    return _run if jit else _run_np


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


def interleave_chunk(
    counts: Sequence[int], state: InterleaveState, n: int, jit: bool | None = None
) -> tuple[np.ndarray, InterleaveState]:
    """Source ids (uint8) of sequences ``[state.position, state.position + n)`` and the state after them
    (``jit``: see the module contract)."""
    arr = _counts(counts)
    taken = _taken(arr, state)
    if n < 0 or state.position + n > int(arr.sum()):
        raise ValueError(f"cannot take {n} sequences at position {state.position} of a {int(arr.sum())}-sequence phase")
    cached = None if jit else _cached_order(arr, taken, state.position)  # jit=True: run the compiled rule
    if cached is not None:  # the order was stored by interleave_checkpoints in this process: slice it
        out = cached[state.position : state.position + n].copy()
        after = [int(c) + int(np.count_nonzero(out == k)) for k, c in enumerate(taken)]  # no int64 copy of out
        return out, InterleaveState(state.position + n, tuple(after))
    out = np.empty(n, dtype=np.uint8)
    _runner(n, jit)(arr, taken, n, out, True, np.zeros(0, dtype=np.int64), np.zeros((0, len(arr)), dtype=np.int64))
    return out, InterleaveState(state.position + n, tuple(int(c) for c in taken))


# The whole order of the last phase small enough for the Python runner, kept by interleave_checkpoints so that the
# shards of a phase written in the same process (the local executor's in-process task) slice it instead of
# running the rule a second time: x100's 33k sequences took 2 x 24 ms. At most JIT_MIN_STEPS bytes, with the
# counts taken before each of its bounds (what a shard's state is checked against).
_LAST_ORDER: list[tuple[tuple[int, ...], np.ndarray, dict[int, tuple[int, ...]]]] = []


def _cached_order(arr: np.ndarray, taken: np.ndarray, position: int) -> np.ndarray | None:
    """The stored order of these counts, if any and if ``position`` is one of its bounds with ``taken`` its prefix's
    count (else None: recompute). Checked against the stored counts, not recounted: a recount (``np.bincount`` of
    the prefix, int64) added up to 2.6 MB to the peak RSS of x1000's last shard."""
    if not _LAST_ORDER or _LAST_ORDER[0][0] != tuple(arr.tolist()):
        return None
    _, order, prefix_counts = _LAST_ORDER[0]
    return order if prefix_counts.get(position) == tuple(int(c) for c in taken) else None


def interleave_checkpoints(
    counts: Sequence[int], bounds: Sequence[int] | np.ndarray, jit: bool | None = None
) -> np.ndarray:
    """Per-source counts of each prefix ``[0, bounds[j])``: int64 ``[len(bounds), K]`` (bounds strictly rising;
    ``jit``: see the module contract)."""
    arr = _counts(counts)
    b = np.asarray(bounds, dtype=np.int64)
    total = int(arr.sum())
    if b.ndim != 1 or (len(b) and (b[0] < 0 or b[-1] > total)) or (np.diff(b) <= 0).any():
        raise ValueError(f"bounds must rise strictly within [0, {total}], got {b[:8].tolist()}...")
    snaps = np.zeros((len(b), len(arr)), dtype=np.int64)
    last = int(b[-1]) if len(b) else 0
    runner = _runner(last, jit)
    keep = runner is _run_np and last == total  # a small phase: store its order for interleave_chunk
    order = np.empty(last if keep else 0, dtype=np.uint8)
    runner(arr, np.zeros(len(arr), dtype=np.int64), last, order, keep, b, snaps)
    if keep:
        at_bounds = {int(p): tuple(int(c) for c in s) for p, s in zip(b.tolist(), snaps, strict=True)}
        _LAST_ORDER[:] = [(tuple(arr.tolist()), order, at_bounds)]
    return snaps


def shard_bounds(num_sequences: int, shard_sequences: int) -> np.ndarray:
    """``[0, s, 2s, ..., N]``: shard j holds sequences ``[bounds[j], bounds[j+1])`` (the last may be shorter)."""
    if shard_sequences <= 0:
        raise ValueError(f"shard_sequences must be positive, got {shard_sequences}")
    starts = np.arange(0, num_sequences, shard_sequences, dtype=np.int64)  # all below num_sequences: no np.unique
    return np.append(starts, np.int64(num_sequences)) if num_sequences > 0 else np.zeros(1, dtype=np.int64)
