"""The recipe models: phases, learning-rate schedules, model, tokenizer, training and the Recipe itself.

Contract: pydantic models only (no torch, datatrove or ``mixlab.curate`` import); every model forbids unknown
fields and describes every field; ``Recipe`` checks what spans sections (mixture sources exist, ``init_from`` names an
earlier phase). Sources and their typed options are in :mod:`mixlab.recipe.sources`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mixlab.recipe.base import SAMPLE_ROOT, Strict, sample_root
from mixlab.recipe.sources import SourceSpec


class LRSchedule(Strict):
    kind: Literal["cosine", "constant", "wsd", "linear"] = Field(
        "cosine",
        description="cosine: warmup then cosine to min_lr; constant: warmup then flat; wsd: warmup-stable-decay "
        "(linear decay over the last decay_fraction); linear: warmup then linear to min_lr (cooldown annealing).",
    )
    peak_lr: float = Field(3e-3, gt=0, description="Learning rate after warmup.")
    min_lr: float = Field(3e-4, ge=0, description="Final learning rate (0 anneals to zero).")
    warmup_steps: int = Field(10, ge=0, description="Linear warmup steps from 0 to peak_lr.")
    decay_fraction: float = Field(0.2, gt=0, le=1, description="wsd only: fraction of steps spent decaying.")

    @model_validator(mode="after")
    def _min_below_peak(self) -> LRSchedule:
        if self.min_lr > self.peak_lr:
            raise ValueError(f"min_lr ({self.min_lr}) exceeds peak_lr ({self.peak_lr}); lower min_lr")
        return self


class PhaseSpec(Strict):
    tokens: int = Field(gt=0, description="Token budget of the phase (training tokens, excluding held-out).")
    mixture: dict[str, float] = Field(description="Source name -> weight in tokens; weights sum to 1.")
    lr: LRSchedule = Field(default_factory=LRSchedule, description="Learning-rate schedule of the phase.")
    init_from: str = Field(
        "previous",
        description="'previous' (the phase before, or scratch for the first), 'scratch', or a checkpoint path.",
    )
    reset_optimizer: bool = Field(False, description="Start the phase with fresh AdamW state.")
    max_repeat: float = Field(
        4.0, ge=1.0, description="Most times any document of a source may be seen, counting earlier phases."
    )

    @field_validator("mixture")
    @classmethod
    def _weights(cls, mixture: dict[str, float]) -> dict[str, float]:
        if not mixture:
            raise ValueError("mixture is empty; give at least one `source: weight`")
        negative = {k: w for k, w in mixture.items() if w < 0 or not math.isfinite(w)}
        if negative:
            raise ValueError(f"weights must be finite and >= 0, got {negative}")
        total = sum(mixture.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"weights sum to {total:.6g}, they must sum to 1; e.g. "
                + ", ".join(f"{k}: {w / total:.4g}" for k, w in mixture.items())
                if total > 0
                else "weights sum to 0; give at least one positive weight"
            )
        return mixture


class ModelSpec(Strict):
    preset: Literal["tiny", "small", "124m", "470m", "2.8b", "custom"] = Field(
        "tiny", description="Size preset; 'custom' uses the explicit dims below (others fill them in)."
    )
    n_layers: int | None = Field(None, gt=0, description="Decoder blocks.")
    d_model: int | None = Field(None, gt=0, description="Residual width.")
    n_heads: int | None = Field(None, gt=0, description="Attention heads.")
    n_kv_heads: int | None = Field(None, gt=0, description="Key/value heads (grouped-query attention).")
    ffn_hidden: int | None = Field(None, gt=0, description="SwiGLU hidden width.")
    tie_embeddings: bool = Field(True, description="Share input embedding and output projection.")
    rope_theta: float = Field(10000.0, gt=0, description="Rotary embedding base.")


class TokenizerSpec(Strict):
    kind: Literal["tiktoken", "bpe"] = Field(
        "bpe", description="tiktoken: a named encoding from shipped files; bpe: a BPE trained on the recipe's sources."
    )
    name: str = Field("cl100k_base", description="tiktoken encoding name (cl100k_base, o200k_base).")
    vocab_size: int = Field(4096, ge=260, le=1 << 20, description="bpe only: vocabulary size incl. specials.")
    train_bytes: int = Field(4_000_000, gt=0, description="bpe only: bytes of training text sampled over sources.")


class TrainSpec(Strict):
    batch_size: int = Field(8, gt=0, description="Sequences per optimizer step (global, across ranks).")
    micro_batch_size: int | None = Field(None, gt=0, description="Sequences per forward; accumulation fills the rest.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay (matrices only).")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas.")
    grad_clip: float = Field(1.0, ge=0, description="Global gradient-norm clip (0 disables).")
    checkpoint_every: int = Field(0, ge=0, description="Steps between checkpoints inside a phase (0: phase ends only).")
    compile: bool = Field(False, description="Wrap the model in torch.compile.")
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu' or 'cuda'.")
    parallelism: Literal["ddp", "fsdp"] = Field(
        "ddp", description="With WORLD_SIZE > 1 (torchrun): 'ddp' replicates the model on every rank, 'fsdp' shards "
        "weights, gradients and AdamW state across ranks (FSDP2), for models that do not fit one GPU.")


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_PHASE_SEQUENCES = 3_000_000_000  # mixlab.pack.order.MAX_SEQUENCES: the interleave's int64 products stay exact


class Recipe(Strict):
    name: str = Field(description="Short identifier used in output folders.")
    description: str = Field("", description="What the recipe tests.")
    seed: int = Field(0, description="Seed for shuffles, held-out splits and model init.")
    seq_len: int = Field(256, gt=1, description="Training sequence length L (each sequence stores L+1 tokens).")
    data_root: str = Field(SAMPLE_ROOT, description="Root for relative source paths; '@sample' = embedded sample.")
    sources: dict[str, SourceSpec] = Field(description="Named sources the phases mix.")
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec, description="Tokenizer.")
    model: ModelSpec = Field(default_factory=ModelSpec, description="Model architecture.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="Optimization settings shared by phases.")
    phases: dict[str, PhaseSpec] = Field(description="Phases in training order (YAML mapping order).")

    @model_validator(mode="after")
    def _cross_checks(self) -> Recipe:
        if not self.phases:
            raise ValueError("phases is empty; define at least one phase")
        for what, name in [("name", self.name), *(("phases", p) for p in self.phases),
                           *(("sources", s) for s in self.sources)]:
            if not SAFE_NAME.fullmatch(name) or ".." in name:
                raise ValueError(f"{what} {name!r} is not a safe name (it names folders in the workspace): use "
                                 f"letters, digits, '_', '-' and '.', starting with a letter or digit, at most 64")
        batch_tokens = self.train.batch_size * self.seq_len
        micro = self.train.micro_batch_size
        if micro is not None and self.train.batch_size % micro:
            raise ValueError(f"train.micro_batch_size {micro} does not divide train.batch_size "
                             f"{self.train.batch_size}; pick a divisor such as "
                             f"{max(d for d in range(1, micro + 1) if self.train.batch_size % d == 0)}")
        names = list(self.phases)
        for i, (pname, phase) in enumerate(self.phases.items()):
            if phase.tokens < batch_tokens:
                raise ValueError(f"phases.{pname}.tokens={phase.tokens:,} is less than one batch (train.batch_size "
                                 f"{self.train.batch_size} x seq_len {self.seq_len} = {batch_tokens:,} tokens); raise "
                                 f"tokens or lower batch_size / seq_len")
            if phase.tokens // self.seq_len > MAX_PHASE_SEQUENCES:
                raise ValueError(f"phases.{pname}.tokens={phase.tokens:.3g} makes {phase.tokens // self.seq_len:.3g} "
                                 f"sequences, more than one phase can order ({MAX_PHASE_SEQUENCES:.0e}); split it into "
                                 f"several phases or raise seq_len")
            if phase.init_from not in ("previous", "scratch", *names) and not Path(phase.init_from).expanduser().is_file():
                raise ValueError(f"phases.{pname}.init_from={phase.init_from!r}: no such checkpoint file; give an "
                                 f"existing .pt file, an earlier phase name, 'previous' or 'scratch'")
            unknown = sorted(set(phase.mixture) - set(self.sources))
            if unknown:
                raise ValueError(
                    f"phases.{pname}.mixture names unknown source(s) {unknown}; known sources: "
                    f"{sorted(self.sources)} (add them under `sources:` or fix the name)"
                )
            if phase.init_from == "previous" and i == 0:
                continue
            if phase.init_from in names[i:]:
                raise ValueError(f"phases.{pname}.init_from={phase.init_from!r} is not an earlier phase")
        return self

    def packed_bytes(self, phase: str) -> int:
        """Disk a packed phase takes: its N x (L+1) tokens (2 bytes per id up to a 65,536-id vocabulary, else
        4; the shipped tiktoken encodings need 4) plus 9 bytes per sequence of source/position sidecars."""
        n = self.phases[phase].tokens // (self.seq_len * self.train.batch_size) * self.train.batch_size
        itemsize = 2 if self.tokenizer.kind == "bpe" and self.tokenizer.vocab_size <= 1 << 16 else 4
        return n * ((self.seq_len + 1) * itemsize + 9)

    def active_sources(self) -> list[str]:
        """Sources with a positive weight in some phase, in declaration order."""
        used = {s for p in self.phases.values() for s, w in p.mixture.items() if w > 0}
        return [s for s in self.sources if s in used]

    def resolve_path(self, source: str) -> str:
        """Absolute path or URL of a source's input; ``""`` for a source without a path (generated)."""
        path = self.sources[source].path or ""
        if not path or "://" in path or Path(path).is_absolute():
            return path
        root = sample_root() if self.data_root == SAMPLE_ROOT else Path(self.data_root)
        return str(root / path)
