"""Invariants of the phase trainer (mixlab.train.trainer): learning, phase chaining, resume, reuse, DDP, FSDP."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from mixlab.recipe import Recipe
from mixlab.train.checkpoint import latest_checkpoint, load_checkpoint
from mixlab.train.metrics import read_metrics, step_losses
from mixlab.train.model import GPT, ModelConfig
from mixlab.train.trainer import train_phase

V, L, B = 256, 32, 8


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run as fast on one thread; leave the shared cores to others (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ToyLoader:
    """The loader contract over an in-memory array [N, L+1]: step s yields rows [s*B, (s+1)*B) split into
    ``world_size`` contiguous slices (rank r takes slice r); state = number of batches consumed."""

    def __init__(self, data: np.ndarray, batch_size: int = B, rank: int = 0, world_size: int = 1) -> None:
        self.data, self.batch_size, self.rank, self.world_size = data, batch_size, rank, world_size
        self.step = 0

    def __len__(self) -> int:
        return len(self.data) // self.batch_size

    def __iter__(self):
        per = self.batch_size // self.world_size
        while self.step < len(self):
            lo = self.step * self.batch_size + self.rank * per
            self.step += 1
            yield torch.from_numpy(self.data[lo : lo + per].astype(np.int64))

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


class ExplodingLoader(ToyLoader):
    def __iter__(self):
        raise AssertionError("a reused phase must not read its data")


def toy_data(steps: int, seed: int = 0, batch_size: int = B) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, V, size=(steps * batch_size, L + 1), dtype=np.int64)


def make_recipe(train: dict | None = None, pre_lr: dict | None = None, cool: dict | None = None) -> Recipe:
    return Recipe.model_validate({
        "name": "toy", "seed": 1, "seq_len": L,
        "sources": {"a": {"kind": "synthetic", "filters": {"generate": 10}}},
        "model": {"preset": "custom", "n_layers": 2, "d_model": 64, "n_heads": 4, "n_kv_heads": 2, "ffn_hidden": 128},
        "train": {"batch_size": B, "device": "cpu", **(train or {})},
        "phases": {
            "pre": {"tokens": 10_000, "mixture": {"a": 1.0},
                    "lr": {"kind": "cosine", "peak_lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 2, **(pre_lr or {})}},
            "cool": {"tokens": 2_000, "mixture": {"a": 1.0}, "init_from": "previous",
                     "lr": {"kind": "linear", "peak_lr": 1e-3, "min_lr": 0.0, "warmup_steps": 0}, **(cool or {})},
        },
    })


def run(recipe: Recipe, out: Path, data: np.ndarray, phase: str = "pre", **kw):
    return train_phase(recipe, phase, ToyLoader(data), out, vocab_size=V, progress=False, **kw)


def test_loss_decreases_on_a_repeated_batch(tmp_path):
    """Training works: 25 steps on one repeated batch drive the loss far below its ln(V) start."""
    batch = toy_data(1)
    res = run(make_recipe(pre_lr={"kind": "constant"}), tmp_path, np.tile(batch, (25, 1)))
    losses = step_losses(tmp_path / "metrics.jsonl")
    assert len(losses) == res.steps == 25
    assert abs(losses[0] - math.log(V)) < 0.1
    assert losses[-1] < losses[0] - 1.5
    assert res.tokens == 25 * B * L and res.final_loss == losses[-1]
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert rows[-1]["event"] == "end" and {"step", "loss", "lr", "tokens", "tokens_per_s", "phase"} <= set(rows[0])


def test_next_phase_starts_from_previous_weights(tmp_path):
    """init_from='previous' with init=<pre>/final.pt: the cooldown's first loss is the pre-trained model's loss
    on that batch (weights carried exactly), not the ~ln(V) of a fresh model."""
    recipe = make_recipe()
    counting = (toy_data(13)[:, :1] + np.arange(L + 1)) % V  # learnable: next token = this token + 1
    pre = run(recipe, tmp_path / "pre", counting[: 10 * B])
    cool_data = counting[10 * B :]
    seen: list[float] = []
    run(recipe, tmp_path / "cool", cool_data, "cool", init=pre.checkpoint, on_step=lambda s, x: seen.append(x))
    m = GPT(ModelConfig(**pre.model_config))
    m.load_state_dict(load_checkpoint(pre.checkpoint)["model"])
    first = torch.from_numpy(cool_data[:B])
    with torch.no_grad():
        expected = m(first[:, :-1], first[:, 1:]).item()
    assert seen[0] == pytest.approx(expected, rel=1e-6)
    assert seen[0] < math.log(V) - 0.5


def test_previous_without_init_is_an_error(tmp_path):
    """A later phase with init_from='previous' never silently starts from scratch."""
    with pytest.raises(ValueError, match="init="):
        run(make_recipe(), tmp_path, toy_data(2), "cool")


@pytest.mark.parametrize("reset", [False, True])
def test_reset_optimizer(tmp_path, reset):
    """AdamW state carries across phases (step counters continue) unless reset_optimizer starts it fresh."""
    recipe = make_recipe(cool={"reset_optimizer": reset})
    pre = run(recipe, tmp_path / "pre", toy_data(4))
    cool = run(recipe, tmp_path / "cool", toy_data(3, seed=3), "cool", init=pre.checkpoint)
    opt = load_checkpoint(cool.checkpoint)["optimizer"]
    steps = {float(s["step"]) for s in opt["state"].values()}
    assert steps == ({3.0} if reset else {7.0})


def test_resume_after_kill_is_bit_identical(tmp_path):
    """A run killed after step 7 (checkpoint at 5) and resumed yields exactly the per-step losses and final
    weights of an uninterrupted run: model, AdamW, step, loader and RNG state are all restored."""
    recipe = make_recipe(train={"checkpoint_every": 5})
    data = toy_data(12)
    full = run(recipe, tmp_path / "full", data)
    ref = step_losses(tmp_path / "full" / "metrics.jsonl")

    class Kill(Exception):
        pass

    def kill_after_7(step: int, loss: float) -> None:
        if step == 7:
            raise Kill

    out = tmp_path / "killed"
    with pytest.raises(Kill):
        run(recipe, out, data, on_step=kill_after_7)
    assert latest_checkpoint(out) == out / "step_000005.pt" and not (out / "final.pt").exists()
    assert step_losses(out / "metrics.jsonl") == ref[:7]

    resumed = run(recipe, out, data)
    assert resumed.resumed_from == 5 and not resumed.reused
    assert step_losses(out / "metrics.jsonl") == ref  # exact float equality, each step exactly once
    assert resumed.final_loss == full.final_loss
    a, b = load_checkpoint(full.checkpoint)["model"], load_checkpoint(resumed.checkpoint)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert latest_checkpoint(out) is None  # step checkpoints are removed once final.pt exists


def test_kill_after_final_leaves_no_stale_step_checkpoint(tmp_path):
    """A run killed between writing final.pt and deleting its step checkpoints leaves a step file behind; the
    next run reuses final.pt and removes it (with its digest sidecar)."""
    recipe = make_recipe(train={"checkpoint_every": 2})
    first = run(recipe, tmp_path, toy_data(5))
    stale = tmp_path / "step_000004.pt"
    shutil.copy(first.checkpoint, stale)
    shutil.copy(tmp_path / "final.pt.xxh64", tmp_path / "step_000004.pt.xxh64")
    again = train_phase(recipe, "pre", ExplodingLoader(toy_data(5)), tmp_path, vocab_size=V, progress=False)
    assert again.reused
    assert sorted(p.name for p in tmp_path.glob("step_*")) == []


def test_a_damaged_final_checkpoint_is_retrained_not_reused(tmp_path):
    """final.pt with flipped bytes fails its recorded digest: the phase is trained again (never loaded as
    valid), and on the CPU the retrained weights equal the original ones bit for bit."""
    recipe = make_recipe()
    data = toy_data(3)
    first = run(recipe, tmp_path, data)
    original = load_checkpoint(first.checkpoint)["model"]
    raw = bytearray((tmp_path / "final.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "final.pt").write_bytes(bytes(raw))
    again = run(recipe, tmp_path, data)
    assert not again.reused and again.final_loss == first.final_loss
    retrained = load_checkpoint(again.checkpoint)["model"]
    assert all(torch.equal(original[k], retrained[k]) for k in original)


def test_final_checkpoint_is_reused_and_guarded(tmp_path):
    """A phase whose final.pt exists is not retrained (data not even read) and returns the same result; a
    changed recipe pointed at that folder is refused instead of silently reusing stale weights."""
    recipe = make_recipe()
    heldout = {"a": torch.from_numpy(toy_data(1, seed=9)[:4]), "b": torch.from_numpy(toy_data(1, seed=10)[:3])}
    first = run(recipe, tmp_path, toy_data(3), heldout=heldout)
    assert set(first.heldout) == {"a", "b"} and all(math.isfinite(x) for x in first.heldout.values())
    again = train_phase(recipe, "pre", ExplodingLoader(toy_data(3)), tmp_path, vocab_size=V, progress=False)
    assert again.reused and {**again.to_dict(), "reused": False} == first.to_dict()
    with pytest.raises(RuntimeError, match="recipe changed"):
        run(make_recipe(pre_lr={"peak_lr": 1e-2}), tmp_path, toy_data(3))


def test_gradient_accumulation_matches_full_batch(tmp_path):
    """micro_batch_size=2 (4 accumulated slices) follows the same trajectory as one full batch of 8 (up to
    fp32 summation order: the mean of per-slice means equals the full mean for equal-length sequences)."""
    data = toy_data(4)
    run(make_recipe(), tmp_path / "full", data)
    run(make_recipe(train={"micro_batch_size": 2}), tmp_path / "micro", data)
    np.testing.assert_allclose(step_losses(tmp_path / "micro" / "metrics.jsonl"),
                               step_losses(tmp_path / "full" / "metrics.jsonl"), rtol=0, atol=1e-5)


def _ddp_worker(rank: int, world: int, port: int, out: str, data: np.ndarray, heldout: dict) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from mixlab.train.distributed import shutdown

    try:
        recipe = make_recipe(train={"micro_batch_size": 2})  # 2 slices per rank: exercises DDP's no_sync
        train_phase(recipe, "pre", ToyLoader(data, rank=rank, world_size=world), out, heldout=heldout,
                    vocab_size=V, progress=False)
    finally:
        shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_match_one_process(tmp_path):
    """2 data-parallel ranks (gloo), each taking half of every global batch of 8 (as 2 accumulated micro-batches
    of 2), follow the single-process trajectory: DDP averages the two half-batch gradients, which equals the full-batch mean gradient because
    both halves hold the same number of tokens. Only the fp32 summation order differs (~1e-7 relative per
    reduction); over 4 AdamW steps on O(5) losses the measured gap is 9.5e-7 (2 ulp), 10x under the 1e-5 used. Held-out
    loss is all-reduced over the ranks' shards and equals the single-process value."""
    data = toy_data(4)
    heldout = {"a": torch.from_numpy(toy_data(1, seed=5)[:5])}  # odd count: ranks score 3 and 2 rows
    single = run(make_recipe(), tmp_path / "single", data, heldout=heldout)
    out = tmp_path / "ddp"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out), data, heldout), nprocs=2, join=True)
    ddp_losses, ref = step_losses(out / "metrics.jsonl"), step_losses(tmp_path / "single" / "metrics.jsonl")
    assert len(ddp_losses) == len(ref) == 4
    np.testing.assert_allclose(ddp_losses, ref, rtol=0, atol=1e-5)
    end = read_metrics(out / "metrics.jsonl")[-1]
    assert end["heldout"]["a"] == pytest.approx(single.heldout["a"], abs=1e-5)
    a, b = load_checkpoint(single.checkpoint)["model"], load_checkpoint(out / "final.pt")["model"]
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


class Kill(Exception):
    pass


def _fsdp_worker(rank: int, world: int, port: int, out: str, data: np.ndarray, heldout: dict, cool_data: np.ndarray,
                 init: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from mixlab.train.distributed import shutdown

    def kill_after_3(step: int, loss: float) -> None:
        if step == 3:
            raise Kill

    def go(phase: str, folder: str, rows: np.ndarray, **kw) -> None:
        train_phase(recipe, phase, ToyLoader(rows, rank=rank, world_size=world), f"{out}/{folder}", vocab_size=V,
                    progress=False, **kw)

    try:  # 2 micro-batches per rank (exercises set_requires_gradient_sync), a checkpoint every 2 steps
        recipe = make_recipe(train={"micro_batch_size": 2, "parallelism": "fsdp", "checkpoint_every": 2,
                                    "grad_clip": 0.5})  # grad norms are ~0.82: the clip of DTensor grads acts
        go("pre", "full", data, heldout=heldout)
        with contextlib.suppress(Kill):
            go("pre", "killed", data, on_step=kill_after_3)
        go("pre", "killed", data)  # resumes from step_000002.pt
        go("cool", "cool", cool_data, init=init)  # weights + AdamW state from a single-process final.pt
    finally:
        shutdown()


def test_two_gloo_fsdp_ranks_match_one_process(tmp_path):
    """parallelism=fsdp on 2 gloo ranks (FSDP2: every parameter, the tied embedding included, a DTensor sharded
    in two; AdamW over the shards) follows the single-process trajectory within the DDP test's 1e-5. The maths is
    DDP's: the reduce-scatter averages the two half-batch gradients (fp32 summation order only), the clip uses the
    global norm of the sharded gradients (sum of per-shard squares: another summation order, ~1 ulp), and AdamW is
    elementwise, so a shard updates exactly as its slice of the full tensor would. Measured (grad_clip 0.5, so the
    clip acts): loss gap 4.8e-7 (1 ulp of the O(5) losses), weights 7.3e-7, i.e. 20x under 1e-5. Checkpoints are full and single-process shaped: a single-process final.pt (with its index-keyed
    AdamW state) initialises an fsdp phase and vice versa with matching losses, and a killed fsdp run resumed from
    its step checkpoint reproduces the uninterrupted fsdp run exactly."""
    data, cool_data = toy_data(4), toy_data(2, seed=3)
    heldout = {"a": torch.from_numpy(toy_data(1, seed=5)[:5])}
    recipe = make_recipe(train={"grad_clip": 0.5})
    single = run(recipe, tmp_path / "single", data, heldout=heldout)
    run(recipe, tmp_path / "single_cool", cool_data, "cool", init=single.checkpoint)
    out = tmp_path / "fsdp"
    mp.spawn(_fsdp_worker, args=(2, _free_port(), str(out), data, heldout, cool_data, single.checkpoint), nprocs=2,
             join=True)

    ref = step_losses(tmp_path / "single" / "metrics.jsonl")
    fsdp = step_losses(out / "full" / "metrics.jsonl")
    assert len(fsdp) == len(ref) == 4
    np.testing.assert_allclose(fsdp, ref, rtol=0, atol=1e-5)
    end = read_metrics(out / "full" / "metrics.jsonl")[-1]
    assert end["heldout"]["a"] == pytest.approx(single.heldout["a"], abs=1e-5)
    a, b = load_checkpoint(single.checkpoint), load_checkpoint(out / "full" / "final.pt")  # weights_only=True
    assert a["model"].keys() == b["model"].keys()  # both names of the tied matrix, as a plain GPT saves them
    assert max((a["model"][k] - b["model"][k]).abs().max().item() for k in a["model"]) < 1e-4
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(sa[i][k].shape == sb[i][k].shape for i in sa for k in sa[i])
    assert {float(x["step"]) for x in sb.values()} == {4.0}
    m = GPT(ModelConfig(**single.model_config))
    m.load_state_dict(b["model"])  # strict: loads into an unsharded model
    assert m.lm_head.weight is m.tok_emb.weight

    assert step_losses(out / "killed" / "metrics.jsonl") == fsdp  # exact: resume restores the sharded state
    c = load_checkpoint(out / "killed" / "final.pt")
    assert all(torch.equal(b["model"][k], c["model"][k]) for k in b["model"])

    np.testing.assert_allclose(step_losses(out / "cool" / "metrics.jsonl"),
                               step_losses(tmp_path / "single_cool" / "metrics.jsonl"), rtol=0, atol=1e-5)
    run(recipe, tmp_path / "cool_from_fsdp", cool_data, "cool", init=out / "full" / "final.pt")
    np.testing.assert_allclose(step_losses(tmp_path / "cool_from_fsdp" / "metrics.jsonl"),
                               step_losses(tmp_path / "single_cool" / "metrics.jsonl"), rtol=0, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_training_learns(tmp_path):
    """On CUDA (bf16 autocast, fused AdamW, accumulation) the trainer learns a repeated batch and scores
    held-out data; nothing in the step depends on the CPU path."""
    recipe = make_recipe(train={"device": "cuda", "micro_batch_size": 4}, pre_lr={"kind": "constant"})
    heldout = {"a": torch.from_numpy(toy_data(1, seed=5)[:4])}
    res = run(recipe, tmp_path, np.tile(toy_data(1), (25, 1)), heldout=heldout)
    losses = step_losses(tmp_path / "metrics.jsonl")
    assert losses[-1] < losses[0] - 1.5 and math.isfinite(res.heldout["a"])
