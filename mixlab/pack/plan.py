"""The plan of a packed phase, and of a whole recipe, computed before any data is read or written.

Contract:
- ``plan_phase(...)`` takes the phase's budget, ``seq_len``, batch size, weights, per-source token supplies and
  ledger starts, ``max_repeat``, the shard size in sequences and the vocabulary size, and returns a
  :class:`PhasePlan`: N = budget // (L B) * B sequences, n_k = Hamilton(w_k, N) (sources with weight > 0, in
  mixture order = source ids), per source the ledger range ``[start, start + n_k L)`` (the last window reads
  one token further), the epochs it touches, and the shard layout: shard j holds sequences
  ``[bounds[j], bounds[j+1])`` and ``checkpoints[j]`` = per-source counts of ``[0, bounds[j])`` (Tijdeman's
  order, :func:`mixlab.pack.order.interleave_checkpoints`), so the task for shard j starts from
  ``state_at(checkpoints[j])`` and reads source k's ledger over
  ``window_span(start_k, L, checkpoints[j, k], checkpoints[j+1, k])``.
- The supply check (n_k L + 1 tokens past the start within ``max_repeat`` x supply, the same test and message
  as :func:`mixlab.pack.ledger.check_supply`) runs for every source before anything O(N) is computed: an
  impossible phase raises :class:`MixtureError` naming each failing source, its need and its supply.
- ``disk_bytes`` = the payload of the written arrays: tokens ``N x (L+1)`` (uint16 up to a 65,536-id
  vocabulary, else uint32) + ``seq_source`` (uint8) + ``seq_position`` (int64) per sequence; headers and
  manifests (a few KB per shard) are not counted.
- ``plan_recipe(recipe, supplies)`` chains the phases of a recipe through each source's ledger (a phase
  starts where the previous one ended) from assumed supplies in tokens, reading no data, and
  ``format_plan`` renders it (for ``mixlab plan RECIPE`` / ``validate --plan``).
Pure: no I/O, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mixlab.pack.apportion import apportion
from mixlab.pack.ledger import MixtureError
from mixlab.pack.order import interleave_checkpoints, shard_bounds
from mixlab.tokenizer import token_dtype

if TYPE_CHECKING:  # plan_recipe only reads a Recipe's fields; importing pack never loads the recipe models
    from mixlab.recipe import Recipe

DEFAULT_SHARD_SEQUENCES = 65_536  # 2^16 sequences: 256 MiB of uint16 tokens per shard at seq_len 2048
TIKTOKEN_VOCAB = {"cl100k_base": 100_277, "o200k_base": 200_019}  # n_vocab, checked in tests/test_pack_plan.py


@dataclass(frozen=True)
class SourcePlan:
    """What one phase takes from one source."""

    name: str
    source_id: int
    weight: float
    sequences: int
    tokens: int  # sequences * seq_len (training targets)
    supply: int  # the source's training tokens (one epoch)
    ledger_start: int
    ledger_end: int  # ledger_start + tokens; the last window reads the token at ledger_end
    epochs_touched: tuple[int, ...]

    @property
    def epochs_through(self) -> float:
        return self.ledger_end / max(self.supply, 1)


@dataclass(frozen=True)
class PhasePlan:
    """The layout of one packed phase; arrays are O(shards x sources)."""

    phase: str
    requested_tokens: int
    seq_len: int
    batch_size: int
    num_sequences: int
    sources: dict[str, SourcePlan]  # in source-id order
    shard_sequences: int
    bounds: np.ndarray  # int64 [S+1]: shard j = sequences [bounds[j], bounds[j+1])
    checkpoints: np.ndarray  # int64 [S+1, K]: per-source counts of sequences [0, bounds[j])
    token_dtype: str  # uint16 | uint32
    token_bytes: int
    sidecar_bytes: int

    @property
    def num_shards(self) -> int:
        return len(self.bounds) - 1

    @property
    def disk_bytes(self) -> int:
        return self.token_bytes + self.sidecar_bytes

    @property
    def planned_tokens(self) -> int:
        return self.num_sequences * self.seq_len

    def shard_counts(self) -> np.ndarray:
        """int64 ``[S, K]``: sequences of each source in each shard."""
        return np.diff(self.checkpoints, axis=0)

    def ledger_ends(self) -> dict[str, int]:
        return {s: p.ledger_end for s, p in self.sources.items()}


def supply_problem(
    name: str, supply: int, start: int, n: int, seq_len: int, max_repeat: float, phase: str
) -> str | None:
    """None when ``n`` windows from ``start`` fit under the cap, else the reason (source, need, supply)."""
    need_last = start + n * seq_len + 1
    if n == 0 or (supply > 0 and need_last <= max_repeat * supply):
        return None
    return (
        f"source {name!r}: phase {phase!r} needs {n * seq_len:,} tokens ({n:,} sequences), reaching "
        f"{need_last:,} tokens of its stream counting earlier phases, but max_repeat={max_repeat:g} allows "
        f"{int(max_repeat * supply):,} ({supply:,} tokens of training data). Lower its weight or the phase "
        f"budget, raise max_repeat, or add data to the source."
    )


def plan_phase(
    *,
    phase: str,
    requested_tokens: int,
    seq_len: int,
    batch_size: int,
    mixture: Mapping[str, float],
    supplies: Mapping[str, int],
    starts: Mapping[str, int],
    max_repeat: float,
    shard_sequences: int,
    vocab_size: int,
) -> PhasePlan:
    """Plan one phase (see the module contract); raises before any O(N) work when the mixture is impossible."""
    names = [s for s, w in mixture.items() if w > 0]
    missing = [s for s in names if s not in supplies]
    if missing:
        raise ValueError(f"phase {phase!r}: no token supply given for source(s) {missing}; pass one per source")
    num_seq = requested_tokens // (seq_len * batch_size) * batch_size
    if num_seq == 0:
        raise ValueError(
            f"phase {phase!r}: budget {requested_tokens:,} tokens is less than one batch "
            f"({batch_size} x {seq_len} = {batch_size * seq_len:,} tokens); raise `tokens`"
        )
    counts = apportion({s: mixture[s] for s in names}, num_seq)
    problems = [
        supply_problem(s, int(supplies[s]), int(starts.get(s, 0)), counts[s], seq_len, max_repeat, phase)
        for s in names
    ]
    if any(problems):
        raise MixtureError("impossible mixture:\n  " + "\n  ".join(p for p in problems if p))
    sources: dict[str, SourcePlan] = {}
    for sid, s in enumerate(names):
        supply, start, n = int(supplies[s]), int(starts.get(s, 0)), counts[s]
        end = start + n * seq_len
        epochs = tuple(range(start // supply, end // supply + 1)) if n else ()
        sources[s] = SourcePlan(s, sid, float(mixture[s]), n, n * seq_len, supply, start, end, epochs)
    bounds = shard_bounds(num_seq, shard_sequences)
    dtype = token_dtype(vocab_size)
    return PhasePlan(
        phase=phase, requested_tokens=requested_tokens, seq_len=seq_len, batch_size=batch_size,
        num_sequences=num_seq, sources=sources, shard_sequences=shard_sequences, bounds=bounds,
        checkpoints=interleave_checkpoints([counts[s] for s in names], bounds), token_dtype=dtype.name,
        token_bytes=num_seq * (seq_len + 1) * dtype.itemsize, sidecar_bytes=num_seq * (1 + 8),
    )


def recipe_vocab_size(recipe: Recipe) -> int:
    """The vocabulary size a recipe's tokenizer will have, without building it."""
    tok = recipe.tokenizer
    if tok.kind == "bpe":
        return tok.vocab_size
    if tok.name not in TIKTOKEN_VOCAB:
        raise ValueError(f"unknown tiktoken encoding {tok.name!r}; known: {sorted(TIKTOKEN_VOCAB)}")
    return TIKTOKEN_VOCAB[tok.name]


def plan_recipe(
    recipe: Recipe, supplies: Mapping[str, int], *, shard_sequences: int = DEFAULT_SHARD_SEQUENCES
) -> list[PhasePlan]:
    """Plan every phase of ``recipe`` from assumed training-token supplies per source (no data read)."""
    missing = [s for s in recipe.active_sources() if s not in supplies]
    if missing:
        raise ValueError(
            f"recipe {recipe.name!r}: give an assumed supply (training tokens) for source(s) {missing}, "
            "e.g. text=6e11"
        )
    vocab = recipe_vocab_size(recipe)
    ledger: dict[str, int] = {}
    plans = []
    for pname, spec in recipe.phases.items():
        plan = plan_phase(
            phase=pname, requested_tokens=spec.tokens, seq_len=recipe.seq_len, batch_size=recipe.train.batch_size,
            mixture=spec.mixture, supplies=supplies, starts=ledger, max_repeat=spec.max_repeat,
            shard_sequences=shard_sequences, vocab_size=vocab,
        )
        ledger.update(plan.ledger_ends())
        plans.append(plan)
    return plans


def _si(x: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:g}"


def format_plan(recipe: Recipe, plans: list[PhasePlan]) -> str:
    """A plain-text table of a recipe's plan: per phase the sequences, shards, disk, and per source the take."""
    lines = [
        f"recipe {recipe.name}: seq_len {recipe.seq_len}, batch {recipe.train.batch_size}, model "
        f"{recipe.model.preset}, tokenizer {recipe.tokenizer.kind} (vocab {recipe_vocab_size(recipe):,})"
    ]
    for p in plans:
        lines.append(
            f"phase {p.phase}: {p.requested_tokens:,} tokens requested -> {p.num_sequences // p.batch_size:,} steps x "
            f"{p.batch_size} = {p.num_sequences:,} sequences ({p.planned_tokens:,} tokens); {p.num_shards:,} shards of "
            f"<= {p.shard_sequences:,} sequences; disk {_si(p.disk_bytes)}B ({p.token_dtype} tokens)"
        )
        lines.append(f"  {'source':<14}{'weight':>8}{'sequences':>16}{'tokens':>10}{'supply':>10}"
                     f"{'ledger start -> end':>24}{'epochs':>10}")
        for s in p.sources.values():
            lines.append(
                f"  {s.name:<14}{s.weight:>8.4g}{s.sequences:>16,}{_si(s.tokens):>10}{_si(s.supply):>10}"
                f"{_si(s.ledger_start) + ' -> ' + _si(s.ledger_end):>24}{s.epochs_through:>10.3f}"
            )
    return "\n".join(lines)
