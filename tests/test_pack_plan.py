"""The phase plan (mixlab.pack.plan): counts, shard layout, ledger ranges, supply check, recipe plans."""

from __future__ import annotations

import numpy as np
import pytest

from mixlab.pack.apportion import apportion
from mixlab.pack.interleave import interleave
from mixlab.pack.ledger import MixtureError, SourceTokens, check_supply, take
from mixlab.pack.order import MAX_SEQUENCES
from mixlab.pack.plan import TIKTOKEN_VOCAB, format_plan, plan_phase, plan_recipe, supply_problem
from mixlab.recipe import load_recipe

MIX = {"text": 0.5, "code": 0.3, "synth": 0.2, "unused": 0.0}


def _plan(**kw):  # type: ignore[no-untyped-def]
    args = dict(phase="p", requested_tokens=100_000, seq_len=8, batch_size=4, mixture=MIX,
                supplies={"text": 50_000, "code": 40_000, "synth": 9_000}, starts={"code": 1234},
                max_repeat=4.0, shard_sequences=97, vocab_size=1000)
    args.update(kw)
    return plan_phase(**args)


def test_counts_and_shards_follow_the_contract() -> None:
    """N = budget // (L B) * B; n_k = Hamilton; shard j's checkpoint = counts of interleave(n)[:a_j]; shard
    counts add up to the shard sizes and to n_k; source ids follow the mixture order (weight 0 dropped)."""
    plan = _plan()
    assert plan.num_sequences == 100_000 // 32 * 4
    counts = apportion({s: w for s, w in MIX.items() if w > 0}, plan.num_sequences)
    assert {s: p.sequences for s, p in plan.sources.items()} == counts
    assert [p.source_id for p in plan.sources.values()] == [0, 1, 2]
    order = interleave(list(counts.values()))
    assert plan.bounds[0] == 0 and plan.bounds[-1] == plan.num_sequences
    for j, a in enumerate(plan.bounds):
        assert np.array_equal(plan.checkpoints[j], np.bincount(order[:a], minlength=3))
    shard = plan.shard_counts()
    assert np.array_equal(shard.sum(axis=1), np.diff(plan.bounds))
    assert np.array_equal(shard.sum(axis=0), list(counts.values()))
    assert plan.num_shards == -(-plan.num_sequences // 97)


def test_ledger_ranges_match_take() -> None:
    """Ledger start, end and epochs touched equal what ledger.take reports for the same source and start."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 60, 300)
    src = SourceTokens("code", rng.integers(0, 1000, int(lengths.sum())).astype(np.uint16), np.cumsum(lengths))
    for start in (0, 1234, src.num_tokens - 3, 2 * src.num_tokens + 17):
        plan = _plan(supplies={"text": 10**6, "code": src.num_tokens, "synth": 10**6}, starts={"code": start},
                     max_repeat=8.0)
        p = plan.sources["code"]
        got = take(src, start, p.sequences, plan.seq_len, seed=3, max_repeat=8.0)
        assert (p.ledger_start, p.ledger_end, p.epochs_touched) == (got.start, got.end, got.epochs_touched)


def test_supply_check_names_source_need_and_supply() -> None:
    """An impossible source raises MixtureError naming it, its need and its supply, with ledger.check_supply's
    message; sources that fit are not named."""
    with pytest.raises(MixtureError) as err:
        _plan(supplies={"text": 50_000, "code": 40_000, "synth": 1_000})
    msg = str(err.value)
    n = apportion({s: w for s, w in MIX.items() if w > 0}, 100_000 // 32 * 4)["synth"]
    assert "'synth'" in msg and f"{n * 8:,} tokens" in msg and "1,000 tokens of training data" in msg
    assert "'text'" not in msg and "'code'" not in msg
    src = SourceTokens("synth", np.zeros(1000, dtype=np.uint16), np.array([1000]))
    assert supply_problem("synth", 1000, 0, n, 8, 4.0, "p") == check_supply(src, 0, n, 8, 4.0, "p")


def test_supply_check_runs_before_the_order_pass() -> None:
    """The check comes before any O(N) work: a phase far past the interleave's size limit with an impossible
    source reports the supply, not the size (the order pass would raise the size error)."""
    with pytest.raises(MixtureError, match="'code'"):
        _plan(requested_tokens=(MAX_SEQUENCES + 1) * 10 * 8 * 4, supplies={"text": 10**15, "code": 5, "synth": 10**15})


def test_disk_bytes_follow_token_dtype() -> None:
    """Token bytes are N x (L+1) x 2 up to a 65,536-id vocabulary and x 4 beyond; sidecars 9 bytes per sequence."""
    small, large = _plan(vocab_size=1 << 16), _plan(vocab_size=(1 << 16) + 1)
    n = small.num_sequences
    assert (small.token_dtype, large.token_dtype) == ("uint16", "uint32")
    assert small.token_bytes == np.empty((n, 9), dtype=np.uint16).nbytes
    assert large.token_bytes == np.empty((n, 9), dtype=np.uint32).nbytes
    assert small.disk_bytes == small.token_bytes + n * (np.dtype(np.uint8).itemsize + np.dtype(np.int64).itemsize)


def test_budget_below_one_batch_is_refused() -> None:
    """A budget smaller than one batch says so and how to fix it."""
    with pytest.raises(ValueError, match="less than one batch"):
        _plan(requested_tokens=31)


PAPER_SUPPLY = {"text": 2e12, "text-hq": 1e11, "code": 3e11, "synthetic": 1e9, "markup": 5e10,
                "stackexchange": 2e10, "notebooks": 5e9, "commits": 2e10, "issues": 1e10}


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["470m", "2.8b"])
def test_recipe_plan_at_paper_scale(preset: str) -> None:
    """A 3-phase recipe at 400B / 200B / 40B tokens plans without data: phases chain each source's ledger
    (a phase starts where the previous one ended) and the printed plan names every phase and source."""
    recipe = load_recipe("recipes/cooldown-code.yaml", [
        f"model.preset={preset}", "seq_len=2048", "train.batch_size=1024", "tokenizer.kind=tiktoken",
        "phases.pretrain.tokens=400e9", "phases.continue.tokens=200e9", "phases.cooldown.tokens=40e9",
    ])
    plans = plan_recipe(recipe, PAPER_SUPPLY, shard_sequences=1 << 16)
    assert [p.phase for p in plans] == ["pretrain", "continue", "cooldown"]
    ends: dict[str, int] = {}
    for plan, spec in zip(plans, recipe.phases.values(), strict=True):
        assert plan.num_sequences == spec.tokens // (2048 * 1024) * 1024
        assert plan.token_dtype == "uint32"
        for s, p in plan.sources.items():
            assert p.ledger_start == ends.get(s, 0)
        ends.update(plan.ledger_ends())
    text = format_plan(recipe, plans)
    assert preset in text and all(f"phase {n}:" in text for n in recipe.phases)
    assert all(s in text for s in plans[-1].sources)


def test_recipe_plan_needs_every_supply() -> None:
    """A recipe source without an assumed supply is named in the error."""
    recipe = load_recipe("recipes/balanced.yaml")
    with pytest.raises(ValueError, match="'code'"):
        plan_recipe(recipe, {"text": 1e9})


def test_recipe_plan_reports_repeat_overflow() -> None:
    """A later phase that pushes a source past max_repeat fails naming that phase and source."""
    recipe = load_recipe("recipes/cooldown-code.yaml", [
        "seq_len=2048", "train.batch_size=1024", "phases.pretrain.tokens=4e9", "phases.continue.tokens=4e9",
        "phases.cooldown.tokens=40e9",
    ])
    with pytest.raises(MixtureError, match="source 'synthetic': phase 'cooldown'"):
        plan_recipe(recipe, {**PAPER_SUPPLY, "synthetic": 1e8})


@pytest.mark.parametrize("name", sorted(TIKTOKEN_VOCAB))
def test_tiktoken_vocab_sizes_match_the_encodings(name: str) -> None:
    """The vocabulary sizes the plan assumes for named encodings are those of the encodings themselves."""
    from mixlab.tokenizer import named_encoding

    assert named_encoding(name).n_vocab == TIKTOKEN_VOCAB[name]
