"""The identity of a trained phase and where it starts from: one owner for each (no torch at import).

Contract:
- ``train_key(recipe, phase, data_key, init_key)`` is THE key of a trained phase: the stage runner names the
  phase's folder with it and the trainer accepts a ``final.pt`` / step checkpoint only when it carries it. It
  hashes everything that changes the weights: the data (``data_key``: the packed manifest's ``pack_key``, which
  covers tokens, tokenizer, seq_len, mixture and ledger), the model, the optimization settings except the
  result-neutral ones (:data:`RESULT_NEUTRAL_TRAIN_FIELDS`: micro-batch split, compile, device, parallelism,
  checkpoint cadence), the seed, the phase's LR schedule and optimizer reset, and the key of the checkpoint it
  starts from. ``--set train.parallelism=fsdp`` therefore reuses a phase trained with DDP.
- ``resolve_init(recipe, phase, trained)`` interprets ``init_from`` once: ``scratch`` (or ``previous`` on the
  first phase) -> None; ``previous`` / an earlier phase's name -> that phase's :class:`InitFrom` in ``trained``;
  anything else is a checkpoint path, which must exist, keyed by the key recorded in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mixlab.recipe import Recipe, section_hash

TRAIN_VERSION = 1
RESULT_NEUTRAL_TRAIN_FIELDS = frozenset({"micro_batch_size", "compile", "device", "parallelism", "checkpoint_every"})


@dataclass(frozen=True)
class InitFrom:
    """A checkpoint a phase starts from, and the train key it was written under."""

    path: Path
    key: str


def train_key(recipe: Recipe, phase_name: str, data_key: str, init_key: str | None) -> str:
    """The key of a trained phase (module contract)."""
    phase = recipe.phases[phase_name]
    return section_hash(
        "train", TRAIN_VERSION, data_key, recipe.model.model_dump(mode="json"),
        recipe.train.model_dump(mode="json", exclude=set(RESULT_NEUTRAL_TRAIN_FIELDS)), recipe.seed,
        phase.lr.model_dump(mode="json"), phase.reset_optimizer, init_key,
    )


def resolve_init(recipe: Recipe, phase_name: str, trained: Mapping[str, InitFrom]) -> InitFrom | None:
    """Where ``phase_name`` starts (module contract); ``trained`` maps earlier phases to their final checkpoint."""
    names = list(recipe.phases)
    index = names.index(phase_name)
    init_from = recipe.phases[phase_name].init_from
    if init_from == "scratch" or (init_from == "previous" and index == 0):
        return None
    parent = names[index - 1] if init_from == "previous" else init_from
    if parent in recipe.phases:
        if parent not in trained:
            raise ValueError(f"phases.{phase_name}.init_from={init_from!r}: phase {parent!r} has not been trained "
                             f"yet; train the phases in order")
        return trained[parent]
    path = Path(init_from).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"phases.{phase_name}.init_from={init_from!r}: no such checkpoint file; give an existing .pt file, "
            f"an earlier phase name, 'previous' or 'scratch'"
        )
    from mixlab.train.checkpoint import checkpoint_key

    return InitFrom(path, checkpoint_key(path))
