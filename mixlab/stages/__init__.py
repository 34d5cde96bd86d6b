"""Run a recipe stage by stage, each output keyed by the hash of its inputs (re-running redoes only what changed).

Workspace layout (``Workspace(root)``)::

    curated/<source>-<key>/        kept documents (jsonl.zst) + logs/ (datatrove) + stats.json
    tokenizer/<key>/               trained BPE ranks (tiktoken format) + info.json
    tokens/<source>-<key>/         token shard (see mixlab.shards)
    packed/<phase>-<key>/          packed phase (see mixlab.pack.writer)
    train/<phase>-<key>/           checkpoints + metrics.jsonl
    runs/<recipe>/                 summary.json, report.md, loss.png

Keys: curate = (kind, resolved input, filters, stage version); tokenizer = (spec, curated keys); tokens =
(curated key, tokenizer content hash, seed, heldout_docs, block_tokens); pack = (tokens keys, seq_len, batch, seed, phase
budget, mixture, max_repeat, ledger positions at phase start); train = :func:`mixlab.train.keys.train_key` (pack
key, model, result-changing train settings, phase LR, init checkpoint's key), the same key the trainer checks its
checkpoints against. Two recipes that share a phase (the study's variants) share its packed data and training.
The tokenizer's identity (:class:`mixlab.tokenizer.TokenizerInfo`) is built once here and travels in token
shards, manifests, export sidecars and checkpoints.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mixlab.recipe import Recipe
from mixlab.stages.common import CURATE_VERSION, PACK_VERSION, TOKENIZE_VERSION, RunState
from mixlab.stages.data import build_tokenizer, curate, encoding_ref, tokenize
from mixlab.stages.packing import pack
from mixlab.stages.training import evaluate, heldout_sets, train
from mixlab.workspace import Workspace

__all__ = [
    "CURATE_VERSION", "PACK_VERSION", "TOKENIZE_VERSION", "RunState", "Workspace", "build_tokenizer", "curate",
    "encoding_ref", "evaluate", "heldout_sets", "pack", "run", "tokenize", "train",
]


def run(recipe: Recipe, workdir: Path, *, until: str = "eval", progress: bool = True, workers: int = 1,
        executor: str = "local", tasks: int | None = None, executor_options: dict[str, Any] | None = None) -> RunState:
    """Run the recipe through ``until`` (curate | tokenize | pack | train | eval).

    The data stages run as datatrove tasks on ``executor`` (local | slurm | ray): ``tasks`` ranks (curate: 1,
    tokenize and pack: ``workers`` when None), ``workers`` at a time (-1: no limit); ``executor_options`` go to the datatrove executor
    (Slurm: ``partition``, ``time``, ``cpus_per_task``, ``mem_per_cpu_gb``...; Ray: ``cpus_per_task``, ...)."""
    order = ["curate", "tokenize", "pack", "train", "eval"]
    if until not in order:
        raise ValueError(f"until must be one of {order}")
    stop = order.index(until)
    state = RunState(recipe, Workspace(workdir))
    engine: dict[str, Any] = {"executor": executor, **(executor_options or {})}
    steps = [
        ("curate", lambda: curate(state, tasks=tasks or 1, workers=workers, progress=progress, **engine)),
        ("tokenize", lambda: tokenize(state, tasks=tasks, workers=workers, progress=progress, **engine)),
        ("pack", lambda: pack(state, tasks=tasks, workers=workers, **engine)),
        ("train", lambda: train(state, progress=progress)),
        ("eval", lambda: evaluate(state)),
    ]
    data_steps, train_steps = steps[: min(stop, 2) + 1], steps[3 : stop + 1]
    if int(os.environ.get("RANK", 0)) != 0:
        train_steps = train_steps[:1]  # evaluation runs once, on rank 0
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and train_steps:  # under torchrun: rank 0 builds the data, the others then read the cache
        from mixlab.train.distributed import DistEnv

        env = DistEnv.from_env(recipe.train.device)
        env.init()
        if env.is_main:
            _timed(state, data_steps)
        env.barrier()
        if not env.is_main:
            _timed(state, data_steps)
    else:
        _timed(state, data_steps)
    _timed(state, train_steps)
    return state


def _timed(state: RunState, steps: list) -> None:
    for name, fn in steps:
        started = time.perf_counter()
        fn()
        state.timings[name] = time.perf_counter() - started
