"""Train stages: phases in order (each folder named by its train key), then the task suite on the last one."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from mixlab.stages.common import RunState, log


def heldout_sets(state: RunState, max_sequences: int = 16) -> dict[str, Any]:
    import torch

    from mixlab.shards import TokenShardSet

    out = {}
    for name, path in state.shards.items():
        seqs = TokenShardSet(path).verified().heldout_sequences(state.recipe.seq_len, max_sequences)
        if len(seqs):
            out[name] = torch.from_numpy(seqs.astype("int64"))
    return out


def train(state: RunState, progress: bool = True) -> None:
    """Train the phases in order; each phase's folder is named by :func:`mixlab.train.keys.train_key`."""
    from mixlab.pack.dataset import SequenceLoader, open_phase
    from mixlab.train.keys import InitFrom, resolve_init, train_key
    from mixlab.train.trainer import train_phase

    assert state.tokenizer is not None
    r = state.recipe
    heldout = heldout_sets(state)
    trained: dict[str, InitFrom] = {}
    for pname in r.phases:
        packed = open_phase(state.packed[pname], tokenizer_hash=state.tokenizer.hash)
        init = resolve_init(r, pname, trained)
        key = train_key(r, pname, packed.manifest.pack_key, init.key if init else None)
        out = state.ws.path("train", f"{pname}-{key}")
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))  # set by torchrun
        loader = SequenceLoader(packed, r.train.batch_size, rank=rank, world_size=world)
        # Under torchrun every rank trains the same phase together: only a lone process takes the lock (two
        # concurrent `mixlab train` on one workspace then run one after the other; the second reuses final.pt).
        with state.ws.lock("train", out.name) if world == 1 else contextlib.nullcontext():
            result = train_phase(r, pname, loader, out, init, heldout, progress=progress)
        state.trained[pname] = out
        state.results[pname] = result
        trained[pname] = InitFrom(out / "final.pt", key)


def evaluate(state: RunState, suite: str = "default") -> None:
    """Task suite (the paper's three categories) on the last phase's final checkpoint, cached beside it."""

    last = list(state.trained)[-1]
    out = state.trained[last] / f"eval-{suite}"
    with state.ws.lock("eval", state.trained[last].name, suite):
        _evaluate_once(state, last, out, suite)
    state.results["evaluation"] = json.loads((out / "eval.json").read_text())


def _evaluate_once(state: RunState, last: str, out: Path, suite: str) -> None:
    from mixlab.eval.run import evaluate_checkpoint

    if not (out / "eval.json").exists():
        log.info("evaluate %s on suite %s", last, suite)
        evaluate_checkpoint(state.trained[last], None, suite, out_dir=out)  # its tokenizer: from the checkpoint
