"""Train one phase of a recipe: init or resume, optimize over the phase's batches, checkpoint, score held-out data.

Contract of ``train_phase(recipe, phase_name, loader, out_dir, init, heldout)``:
- ``loader`` (see :class:`BatchLoader`) yields this rank's int64 batches [batch_size / world_size, seq_len + 1]
  (inputs ``b[:, :-1]``, targets ``b[:, 1:]``); ``len(loader)`` is the phase's optimizer steps; its
  ``state_dict()`` after k batches, once loaded, makes it yield batches k, k+1, ... exactly.
- Data identity: with a :class:`~mixlab.pack.dataset.SequenceLoader` the sequence length, vocabulary, tokenizer
  and ``pack_key`` come from the packed manifest it reads (``vocab_size`` / ``seq_len`` need not be given); any
  other loader passes ``vocab_size`` (and ``seq_len``, default the recipe's). The phase's key is
  :func:`mixlab.train.keys.train_key` of that data and the init checkpoint's key: the same function names the
  phase's folder in :mod:`mixlab.stages`. Checkpoints record the key, the tokenizer and the ``pack_key``.
- Start, in order of precedence:
  1. ``out_dir/final.pt`` exists (complete, same configuration): nothing is trained, its result is returned.
  2. ``out_dir`` holds ``step_XXXXXX.pt`` (a killed run): model, optimizer, step, loader state and RNG state
     are restored; on the CPU the per-step losses are bit-identical to an uninterrupted run.
  3. ``init`` (resolved once by :func:`mixlab.train.keys.resolve_init`; a bare path is accepted too): weights
     (and AdamW state unless ``reset_optimizer``) come from it; None builds a fresh model seeded by
     ``recipe.seed``. A phase whose ``init_from`` names a parent but gets no ``init`` is an error.
  A ``final.pt``/step checkpoint of a different configuration (another key) is an error, never reused.
- Step s (0-based) uses ``lr_at(s, len(loader), phase.lr)``; AdamW (decay on matrices only, fused on CUDA),
  gradient accumulation over ``micro_batch_size`` slices, global-norm clipping, bf16 autocast on CUDA, optional
  ``torch.compile``; with ``WORLD_SIZE > 1`` gradients are averaged over ranks and the logged loss is the mean
  over ranks.
- Parallelism (``train.parallelism``, used only when ``WORLD_SIZE > 1``; one process ignores it):
  ``'ddp'`` replicates the model and all-reduces gradients (``no_sync`` on non-final micro-batches);
  ``'fsdp'`` shards it with FSDP2 (:mod:`mixlab.train.fsdp`: ``fully_shard`` per block, then the root;
  bf16 all-gather / fp32 reduce-scatter on CUDA), builds AdamW over the sharded DTensor parameters, reduce-
  scatters gradients only on the last micro-batch (``set_requires_gradient_sync``) and clips the global norm
  of the DTensor gradients. The model is initialised unsharded on each rank's device (same weights as DDP and
  one process), then sharded: its fp32 weights must fit one device, its gradients and AdamW state need not.
  Checkpoints hold the full (unsharded) state, gathered to rank 0 on the CPU, in the layout of a single-process
  run: final.pt / step checkpoints / ``init`` files are interchangeable between ddp, fsdp and one process, and
  resuming an fsdp run reproduces its losses exactly. Held-out data is scored in full by every rank (FSDP
  forwards are collectives, so ranks cannot take uneven shares). ``parallelism`` is not part of the key.
  Launch: ``torchrun --standalone --nproc_per_node N -m mixlab.cli train RECIPE --set train.parallelism=fsdp``
  (multi-node: ``--nnodes``, ``--node_rank``, ``--rdzv_endpoint`` and an ``out_dir`` on a shared filesystem).
- Writes (rank 0 only): ``metrics.jsonl`` (one line per step, one at the end with held-out loss per source),
  ``step_XXXXXX.pt`` every ``checkpoint_every`` steps (only the latest is kept) and ``final.pt`` at the end
  (step checkpoints are then deleted). A non-finite loss stops the phase with an error naming the step.
- Size: ~420 lines, 60 of them this contract; setup, resume, step and finish stay in one module because their
  DDP / FSDP / resume interplay is easiest to check read together.
- Structure: :func:`train_phase` = ``_setup`` (device, model, optimizer) -> ``_resume`` (step checkpoint or init
  weights) -> ``_step`` per batch (-> ``_maybe_checkpoint``) -> ``_finish`` (held-out loss, ``final.pt``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import pickle
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from mixlab.errors import CorruptOutputError
from mixlab.recipe import Recipe, TrainSpec
from mixlab.tokenizer import TokenizerInfo
from mixlab.train.checkpoint import (
    capture_rng_state,
    checkpoint_key,
    digest_path,
    latest_checkpoint,
    load_checkpoint,
    remove_step_checkpoints,
    restore_rng_state,
    save_checkpoint,
    step_path,
)
from mixlab.train.distributed import DistEnv
from mixlab.train.fsdp import full_state, load_full_state, local_value, shard_model
from mixlab.train.heldout import heldout_loss
from mixlab.train.keys import InitFrom, train_key
from mixlab.train.metrics import MetricsLog
from mixlab.train.model import GPT, ModelConfig
from mixlab.train.schedule import lr_at

log = logging.getLogger("mixlab")


class BatchLoader(Protocol):
    def __iter__(self) -> Iterator[torch.Tensor]: ...
    def __len__(self) -> int: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class PhaseResult:
    phase: str
    steps: int
    tokens: int
    final_loss: float
    heldout: dict[str, float]
    checkpoint: str
    tokens_per_s: float
    wall_s: float
    reused: bool = False
    resumed_from: int | None = None
    model_config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhaseResult:
        return cls(**d)


@dataclass(frozen=True)
class PhaseData:
    """What the trainer needs to know of its data: from the packed manifest, or given for other loaders."""

    seq_len: int
    vocab_size: int
    key: str  # the manifest's pack_key, or a description of unpacked data
    tokenizer: TokenizerInfo | None = None

    @classmethod
    def of(cls, loader: BatchLoader, recipe: Recipe, vocab_size: int | None, seq_len: int | None) -> PhaseData:
        manifest = getattr(getattr(loader, "phase", None), "manifest", None)
        if manifest is not None:
            return cls(manifest.seq_len, manifest.vocab_size, manifest.pack_key, manifest.tokenizer)
        if vocab_size is None:
            raise ValueError("train_phase: pass vocab_size= for a loader that does not read a packed phase")
        seq_len = seq_len or recipe.seq_len
        return cls(seq_len, vocab_size, f"unpacked:vocab={vocab_size}:seq_len={seq_len}")


def build_optimizer(model: nn.Module, spec: TrainSpec, lr: float, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (dim >= 2) only; group 0 decays, group 1 does not."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": spec.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=spec.betas, fused=fused or None)


def _as_init(recipe: Recipe, phase_name: str, init: InitFrom | Path | str | None) -> InitFrom | None:
    if init is None:
        names = list(recipe.phases)
        if recipe.phases[phase_name].init_from != "scratch" and names.index(phase_name) > 0:
            raise ValueError(f"phases.{phase_name}.init_from is {recipe.phases[phase_name].init_from!r}: pass "
                             f"init=<that phase>/final.pt (see mixlab.train.keys.resolve_init)")
        return None
    if isinstance(init, InitFrom):
        return init
    return InitFrom(Path(init), checkpoint_key(init))


def _readable(path: Path) -> dict | None:
    """The checkpoint at ``path`` (memory-mapped), or None when absent; a damaged one (digest mismatch or a torn
    file) is removed with a warning so that the phase is trained or resumed again instead of failing forever."""
    if not path.exists():
        return None
    try:
        return load_checkpoint(path, mmap=True)
    except (CorruptOutputError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        log.warning("removing damaged checkpoint %s (%s); it will be rebuilt", path, e)
        path.unlink(missing_ok=True)
        digest_path(path).unlink(missing_ok=True)
        return None


def _checked(ckpt: dict, path: Path, phase_name: str, key: str) -> dict:
    extra = ckpt.get("extra", {})
    if ckpt.get("phase") != phase_name or extra.get("key") != key:
        raise RuntimeError(
            f"{path} belongs to phase {ckpt.get('phase')!r} with configuration {str(extra.get('key'))[:12]}, "
            f"not phase {phase_name!r} / {key[:12]}: the recipe changed since it was written; delete "
            f"{path.parent} or train into another out_dir"
        )
    return ckpt


@dataclass
class _Run:
    """Everything one phase's training loop touches (built by :func:`_setup`)."""

    recipe: Recipe
    phase_name: str
    loader: BatchLoader
    out_dir: Path
    data: PhaseData
    key: str
    env: DistEnv
    cfg: ModelConfig
    model: nn.Module
    run_model: nn.Module
    optimizer: torch.optim.AdamW
    total: int
    local_bs: int
    micro: int
    fsdp: bool
    start: int = 0
    resumed_from: int | None = None

    @property
    def spec(self) -> TrainSpec:
        return self.recipe.train

    @property
    def device(self) -> torch.device:
        return self.env.device

    @property
    def cuda(self) -> bool:
        return self.env.device.type == "cuda"

    def extra(self, **more: Any) -> dict[str, Any]:
        """What every checkpoint of this phase records beside the weights."""
        tok = self.data.tokenizer.model_dump(mode="json") if self.data.tokenizer else None
        return {"key": self.key, "pack_key": self.data.key, "tokenizer": tok, **more}


def _setup(recipe: Recipe, phase_name: str, loader: BatchLoader, out_dir: Path, data: PhaseData, key: str,
           env: DistEnv) -> _Run:
    """Check the batch geometry, build the model (sharded with FSDP) and its optimizer."""
    spec = recipe.train
    total = len(loader)
    if total <= 0:
        raise ValueError(f"phase {phase_name!r}: the loader has no full batch of {spec.batch_size} sequences")
    if spec.batch_size % env.world_size:
        raise ValueError(f"train.batch_size {spec.batch_size} is not divisible by WORLD_SIZE {env.world_size}")
    local_bs = spec.batch_size // env.world_size
    micro = min(spec.micro_batch_size or local_bs, local_bs)
    if local_bs % micro:
        raise ValueError(f"per-rank batch {local_bs} is not a multiple of train.micro_batch_size {micro}")
    if env.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg = ModelConfig.from_spec(recipe.model, data.vocab_size, data.seq_len)
    torch.manual_seed(recipe.seed)  # seeds CUDA too; DDP broadcasts rank 0's weights, FSDP relies on the seed
    with torch.device(env.device):  # initialise in place: a 2.8B model never round-trips through host memory
        model = GPT(cfg)
    fsdp = env.distributed and spec.parallelism == "fsdp"
    if fsdp:  # same initial weights as DDP / one process, then each rank keeps 1/world of them
        shard_model(model, mixed_precision=env.device.type == "cuda")
    optimizer = build_optimizer(model, spec, lr_at(0, total, recipe.phases[phase_name].lr),
                                fused=env.device.type == "cuda")
    return _Run(recipe, phase_name, loader, out_dir, data, key, env, cfg, model, model, optimizer, total, local_bs,
                micro, fsdp)


def _resume(run: _Run, init: InitFrom | None, init_ckpt: dict | None) -> None:
    """Restore a killed run's latest step checkpoint, else load the init weights (and AdamW state); then wrap
    the model for compile / DDP."""
    phase, spec = run.recipe.phases[run.phase_name], run.spec
    resume_path = latest_checkpoint(run.out_dir)
    if resume_path is not None and _readable(resume_path) is None:
        resume_path = None  # damaged (and removed): start again from the init weights
    if resume_path is not None:  # FSDP: every rank maps the full file on the CPU and keeps its shards
        ckpt = _checked(load_checkpoint(resume_path, map_location="cpu" if run.fsdp else run.device, mmap=run.fsdp),
                        resume_path, run.phase_name, run.key)
        load_full_state(run.model, ckpt["model"], run.optimizer, ckpt["optimizer"])
        run.loader.load_state_dict(ckpt["data_state"])
        restore_rng_state(ckpt["rng"])
        run.start = run.resumed_from = ckpt["step"]
    elif init_ckpt is not None:
        assert init is not None
        try:
            load_full_state(run.model, init_ckpt["model"])
        except RuntimeError as e:
            raise RuntimeError(f"{init.path}: weights do not fit model {run.cfg}: {e}") from None
        if not phase.reset_optimizer and init_ckpt.get("optimizer") is not None:
            load_full_state(run.model, None, run.optimizer, init_ckpt["optimizer"])
            for group, wd in zip(run.optimizer.param_groups, (spec.weight_decay, 0.0), strict=True):
                group.update(weight_decay=wd, betas=spec.betas)  # this recipe's settings, not the saved ones
    run.run_model = torch.compile(run.model) if spec.compile else run.model
    if run.env.distributed and not run.fsdp:
        run.run_model = nn.parallel.DistributedDataParallel(
            run.run_model, device_ids=[run.device.index] if run.cuda else None)


def _step(run: _Run, step: int, batch: torch.Tensor) -> tuple[float, float, float | None]:
    """One optimizer step on this rank's batch: (mean loss over ranks, lr, gradient norm before clipping)."""
    if tuple(batch.shape) != (run.local_bs, run.data.seq_len + 1):
        raise ValueError(f"batch {step} has shape {tuple(batch.shape)}, expected [{run.local_bs}, "
                         f"{run.data.seq_len + 1}] (batch_size / world_size, seq_len + 1)")
    lr = lr_at(step, run.total, run.recipe.phases[run.phase_name].lr)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    batch = batch.to(run.device, dtype=torch.long, non_blocking=True)
    accum = run.local_bs // run.micro
    loss_sum = torch.zeros((), device=run.device)
    for i in range(accum):
        mb = batch[i * run.micro : (i + 1) * run.micro]  # [micro, L+1]
        sync = not run.env.distributed or i == accum - 1
        if run.fsdp:  # FSDP2 keeps unsharded grads locally, reduce-scatters on the last micro-batch
            run.model.set_requires_gradient_sync(sync)
        ddp_skip = run.env.distributed and not run.fsdp and not sync
        with run.run_model.no_sync() if ddp_skip else contextlib.nullcontext():  # DDP all-reduces on the last
            with torch.autocast("cuda", dtype=torch.bfloat16) if run.cuda else contextlib.nullcontext():
                loss = run.run_model(mb[:, :-1], mb[:, 1:]) / accum  # mean CE of the micro-batch / accum
            loss.backward()
        loss_sum += loss.detach()
    # With FSDP the grads are DTensor shards: clip_grad_norm_ reduces their norms over ranks (a DTensor).
    grad_norm = (local_value(nn.utils.clip_grad_norm_(run.model.parameters(), run.spec.grad_clip))
                 if run.spec.grad_clip > 0 else None)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    loss_val = run.env.mean(loss_sum).item()
    if not math.isfinite(loss_val):
        raise FloatingPointError(f"phase {run.phase_name!r}: loss is {loss_val} at step {step + 1}; lower the LR "
                                 f"({lr:.3g}) or check the data")
    return loss_val, lr, float(grad_norm) if grad_norm is not None else None


def _maybe_checkpoint(run: _Run, done_steps: int) -> None:
    every = run.spec.checkpoint_every
    if not every or done_steps % every or done_steps >= run.total:
        return
    model_state, optim_state = full_state(run.model, run.optimizer)  # FSDP: a gather every rank joins
    if run.env.is_main:
        path = save_checkpoint(step_path(run.out_dir, done_steps), model_state, optim_state, done_steps,
                               run.phase_name, run.loader.state_dict(), capture_rng_state(), run.extra())
        remove_step_checkpoints(run.out_dir, keep=path)


def _finish(run: _Run, loss_val: float, wall: float, heldout: dict[str, torch.Tensor] | None,
            eval_batch_size: int | None, metrics: MetricsLog) -> PhaseResult:
    """Score held-out data, write the end metrics and ``final.pt`` (rank 0), drop step checkpoints."""
    held: dict[str, float] = {}
    if heldout:
        # FSDP all-gathers in every forward, so all ranks must run the same forwards: each scores every row
        # (held-out sets are small) instead of its uneven rank::world share.
        rank, world = (0, 1) if run.fsdp else (run.env.rank, run.env.world_size)
        held = heldout_loss(run.model, heldout, eval_batch_size or run.micro, rank, world,
                            torch.bfloat16 if run.cuda else None)
    tokens_per_step = run.spec.batch_size * run.data.seq_len
    final_path = run.out_dir / "final.pt"
    result = PhaseResult(
        phase=run.phase_name, steps=run.total, tokens=run.total * tokens_per_step, final_loss=loss_val,
        heldout=held, checkpoint=str(final_path), wall_s=wall,
        tokens_per_s=(run.total - run.start) * tokens_per_step / max(wall, 1e-9),
        resumed_from=run.resumed_from, model_config=run.cfg.to_dict(),
    )
    metrics.write({"event": "end", "phase": run.phase_name, "step": run.total, "tokens": result.tokens,
                   "final_loss": loss_val, "heldout": held, "tokens_per_s": result.tokens_per_s})
    metrics.close()
    model_state, optim_state = full_state(run.model, run.optimizer)
    if run.env.is_main:
        save_checkpoint(final_path, model_state, optim_state, run.total, run.phase_name, run.loader.state_dict(),
                        capture_rng_state(), run.extra(complete=True, result=result.to_dict()))
        remove_step_checkpoints(run.out_dir)
    run.env.barrier()
    return result


def train_phase(
    recipe: Recipe,
    phase_name: str,
    loader: BatchLoader,
    out_dir: Path | str,
    init: InitFrom | Path | str | None = None,
    heldout: dict[str, torch.Tensor] | None = None,
    *,
    vocab_size: int | None = None,
    seq_len: int | None = None,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    eval_batch_size: int | None = None,
) -> PhaseResult:
    """Train (or reuse, or resume) one phase; see the module contract. ``on_step(step, loss)`` runs after each
    optimizer step (1-based) and its checkpoint; an exception raised there aborts the phase like a kill."""
    if phase_name not in recipe.phases:
        raise KeyError(f"unknown phase {phase_name!r}; the recipe has {list(recipe.phases)}")
    out_dir = Path(out_dir)
    data = PhaseData.of(loader, recipe, vocab_size, seq_len)
    init_from = _as_init(recipe, phase_name, init)
    key = train_key(recipe, phase_name, data.key, init_from.key if init_from else None)
    final_path = out_dir / "final.pt"
    done = _readable(final_path)
    if done is not None:
        _checked(done, final_path, phase_name, key)
        if done["extra"].get("complete"):
            remove_step_checkpoints(out_dir)  # a run killed right after final.pt left them
            return PhaseResult.from_dict({**done["extra"]["result"], "reused": True, "checkpoint": str(final_path)})

    env = DistEnv.from_env(recipe.train.device)
    env.init()
    run = _setup(recipe, phase_name, loader, out_dir, data, key, env)
    init_ckpt = load_checkpoint(init_from.path, mmap=True) if init_from is not None else None
    _resume(run, init_from, init_ckpt)
    del init_ckpt

    metrics = MetricsLog(out_dir / "metrics.jsonl", resume_step=run.start, enabled=env.is_main)
    bar = tqdm(total=run.total, initial=run.start, desc=f"{recipe.name}/{phase_name}", unit="step",
               dynamic_ncols=True, disable=not (progress and env.is_main and sys.stderr.isatty()))
    tokens_per_step = recipe.train.batch_size * data.seq_len
    run.model.train()
    batches = iter(loader)
    loss_val, t_loop = math.nan, time.perf_counter()
    for step in range(run.start, run.total):
        t0 = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            raise RuntimeError(f"loader stopped after {step} batches but len(loader) is {run.total}") from None
        loss_val, lr, grad_norm = _step(run, step, batch)
        done_steps = step + 1
        metrics.write({
            "event": "step", "phase": phase_name, "step": done_steps, "loss": loss_val, "lr": lr,
            "tokens": done_steps * tokens_per_step, "tokens_per_s": tokens_per_step / (time.perf_counter() - t0),
            "grad_norm": grad_norm,
        })
        bar.update(1)
        bar.set_postfix(loss=f"{loss_val:.4f}", lr=f"{lr:.2e}", refresh=False)
        _maybe_checkpoint(run, done_steps)
        if on_step is not None:
            on_step(done_steps, loss_val)
    wall = time.perf_counter() - t_loop
    bar.close()
    return _finish(run, loss_val, wall, heldout, eval_batch_size, metrics)
