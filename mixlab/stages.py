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

import contextlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixlab.recipe import Recipe, recipe_hash, section_hash
from mixlab.workspace import Workspace, clean_stale, relative, write_json_atomic

if TYPE_CHECKING:
    from mixlab.tokenizer import TokenizerInfo

CURATE_VERSION = 3  # 3: readers strip control characters, drop binary; 2: whole-source dedup and decontamination
TOKENIZE_VERSION = 2  # 2: token shard sets (blocks per input file, per-document held-out split)
PACK_VERSION = 3  # 3: sharded phases, two-level (block, document) epoch order; 2: manifests carry TokenizerInfo
log = logging.getLogger("mixlab")


@dataclass
class RunState:
    """What a run produced so far; filled stage by stage."""

    recipe: Recipe
    ws: Workspace
    curated: dict[str, Path] = field(default_factory=dict)
    curate_keys: dict[str, str] = field(default_factory=dict)
    curation_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokenizer: TokenizerInfo | None = None
    shards: dict[str, Path] = field(default_factory=dict)
    token_keys: dict[str, str] = field(default_factory=dict)
    packed: dict[str, Path] = field(default_factory=dict)
    trained: dict[str, Path] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- curate


def _progress(items, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="source", disable=not enabled, leave=False)


def curate(state: RunState, executor: str = "local", tasks: int = 1, workers: int = 1, progress: bool = True,
           **executor_kwargs: Any) -> None:
    """Curate every source the recipe declares (all of them: shared tokenizer and held-out sets).

    datatrove logs every task to stderr at INFO; unless ``MIXLAB_VERBOSE`` is set that stream goes to
    ``curated/<source>-<key>/curate.log`` (the per-task logs are in ``logs/`` beside it either way).
    """
    from mixlab.curate.pipeline import run_curation

    r = state.recipe
    bar = _progress(list(r.sources.items()), "curate", progress)
    for name, src in bar:
        bar.set_postfix_str(name)
        path = r.resolve_path(name)  # "" for a generated source
        # tasks is part of the key: datatrove shards the input files over tasks, so the curated files (and a
        # per-task `limit`) depend on it; the executor does not (outputs are identical on local, Slurm and Ray).
        key = section_hash("curate", CURATE_VERSION, src.kind, _portable(path), src.filters_json(),
                           *([tasks] if tasks != 1 else []))
        out = state.ws.path("curated", f"{name}-{key}")
        stats_file = out / "stats.json"
        with state.ws.lock("curated", out.name):
            damage = curated_damage(out)
            if damage:  # finished once, since damaged: rebuilt from scratch (logs too, or tasks would be skipped)
                _needs_build(out, damage)
            if not stats_file.exists():  # new, or interrupted: datatrove's completion markers resume it
                log.info("curate %s (%s) from %s", name, src.kind, path or "generator")
                out.mkdir(parents=True, exist_ok=True)
                with open(out / "curate.log", "w") as sink, _quiet_stderr(sink):
                    stats = run_curation(  # the same call as pipelines/*.py --recipe R --source NAME
                        src.filters, path, str(out / "docs"), executor=executor, tasks=tasks,
                        workers=workers, logging_dir=str(out / "logs"), wait=True, **executor_kwargs,
                    )
                record = _jsonable(stats)
                for field_name in ("logging_dir", "output_folder"):  # workspace-relative: same bytes anywhere
                    if isinstance(record.get(field_name), str):
                        record[field_name] = relative(record[field_name], state.ws.root)
                record["files"] = digests_under(out / "docs")
                write_json_atomic(stats_file, record)
        state.curated[name] = out / "docs"
        state.curate_keys[name] = key
        state.curation_stats[name] = json.loads(stats_file.read_text())


def _portable(path: str) -> str:
    """A source path as it enters cache keys: the embedded sample as ``@sample/...``, so keys do not depend on
    where mixlab is installed."""
    from mixlab.recipe import SAMPLE_ROOT, sample_root

    root = str(sample_root())
    return SAMPLE_ROOT + path[len(root):] if path.startswith(root) else path


def digests_under(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and xxh64 of every file below ``folder``, keyed by POSIX path relative to it."""
    from mixlab.workspace import digest

    files = sorted(p for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).is_dir() else []
    return {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "xxh64": digest(p)} for p in files}


def curated_damage(out: Path) -> list[str]:
    """Why a finished curated output cannot be used (documents differing from their recorded digests, unreadable
    statistics); empty when it is fine or not finished yet."""
    from mixlab.workspace import verify

    stats_file = out / "stats.json"
    if not stats_file.exists():
        return []
    try:
        recorded = json.loads(stats_file.read_text()).get("files")
    except ValueError:
        return [f"{stats_file}: not valid JSON"]
    if recorded is None:
        return [f"{stats_file}: records no document digests (an older mixlab wrote it)"]
    return verify(out / "docs", recorded)


@contextlib.contextmanager
def _quiet_stderr(sink):
    if os.environ.get("MIXLAB_VERBOSE"):
        yield
        return
    # fd-level, so datatrove's worker processes (which inherit fd 2, not sys.stderr) are quiet too
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(sink.fileno(), 2)
    try:
        with contextlib.redirect_stderr(sink):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _jsonable(stats: Any) -> Any:
    return stats.model_dump(mode="json") if hasattr(stats, "model_dump") else stats


# --------------------------------------------------------------------------------------------- tokenize


def build_tokenizer(state: RunState) -> None:
    """The recipe's tokenizer: a named encoding, or a BPE trained on the curated sources (cached by key)."""
    from mixlab.tokenizer import TokenizerInfo, load_tokenizer, named_encoding, tokenizer_info

    spec = state.recipe.tokenizer
    if spec.kind == "tiktoken":
        state.tokenizer = tokenizer_info(named_encoding(spec.name), "tiktoken")
        return
    key = section_hash("bpe", spec.model_dump(mode="json"), sorted(state.curate_keys.items()))
    rel = f"tokenizer/{key}/tokenizer.tiktoken"
    ranks, info_file = state.ws.path(rel), state.ws.path("tokenizer", key, "info.json")
    with state.ws.lock("tokenizer", key):
        clean_stale(ranks)
        if info_file.exists():
            try:
                state.tokenizer = TokenizerInfo.model_validate_json(info_file.read_text())
                load_tokenizer(state.tokenizer, rank_file=ranks)  # checks the rank file's content hash
                return
            except (ValueError, OSError) as e:  # TokenizerMismatch is a ValueError
                log.warning("retraining the tokenizer in %s: %s", ranks.parent, str(e).splitlines()[0])
                info_file.unlink()
        _train_tokenizer(state, key, rel)


def _train_tokenizer(state: RunState, key: str, rel: str) -> None:
    from mixlab.shards import iter_documents
    from mixlab.tokenizer import save_ranks, tokenizer_info, train_bpe
    from mixlab.workspace import write_json_atomic

    spec = state.recipe.tokenizer
    per_source = spec.train_bytes // max(1, len(state.curated))
    texts: list[str] = []
    for name in sorted(state.curated):  # equal byte share per source: no mixture biases the vocabulary
        used = 0
        for doc in iter_documents(state.curated[name]):
            if used >= per_source:
                break
            texts.append(doc["text"][: per_source - used])
            used += len(texts[-1])
    log.info("train BPE vocab=%d on %.1f MB", spec.vocab_size, sum(map(len, texts)) / 1e6)
    enc = train_bpe(texts, spec.vocab_size, name=f"mixlab-bpe-{key[:8]}")
    save_ranks(enc, state.ws.path(rel))
    state.tokenizer = tokenizer_info(enc, "bpe", rank_file=rel)
    write_json_atomic(state.ws.path("tokenizer", key, "info.json"), state.tokenizer.model_dump_json(indent=2))


def encoding_ref(state: RunState):
    """The picklable handle tokenize workers load the recipe's encoding from."""
    from mixlab.shards import EncodingRef

    assert state.tokenizer is not None
    rank_file = str(state.ws.root / state.tokenizer.rank_file) if state.tokenizer.rank_file else None
    return EncodingRef(state.tokenizer, rank_file)


def _needs_build(out: Path, problems: list[str]) -> bool:
    """True when ``out`` must be (re)built: absent, or damaged (then it is removed, with a warning). Call under
    the output's lock; temporary folders of killed runs beside it are removed too."""
    clean_stale(out)
    if not problems:
        return False
    if out.exists():
        log.warning("rebuilding %s: %s", out, "; ".join(problems[:3]))
        shutil.rmtree(out, ignore_errors=True)
    return True


def heldout_fraction(heldout_docs: int, documents_kept: int) -> float:
    """The held-out fraction that holds out ``heldout_docs`` documents in expectation, at most half."""
    return min(0.5, heldout_docs / documents_kept) if documents_kept > 0 else 0.0


def tokenize(state: RunState, executor: str = "local", tasks: int | None = None, workers: int = 1,
             progress: bool = True, block_tokens: int | None = None, **executor_kwargs: Any) -> None:
    """Tokenize every curated source into a token shard set (:mod:`mixlab.shards`), as ``tasks`` datatrove tasks
    (default: ``workers``) on ``executor``; the set's bytes do not depend on tasks, workers or executor."""
    from mixlab.shards import TokenShardSet
    from mixlab.tokenize_steps import DEFAULT_BLOCK_TOKENS, tokenize_source

    if state.tokenizer is None:
        build_tokenizer(state)
    assert state.tokenizer is not None
    r = state.recipe
    block_tokens = block_tokens or DEFAULT_BLOCK_TOKENS
    bar = _progress(list(state.curated.items()), "tokenize", progress)
    for name, curated in bar:
        bar.set_postfix_str(name)
        key = section_hash("tokens", TOKENIZE_VERSION, state.curate_keys[name], state.tokenizer.hash, r.seed,
                           r.sources[name].heldout_docs, block_tokens)
        out = state.ws.path("tokens", f"{name}-{key}")
        with state.ws.lock("tokens", out.name):
            if _needs_build(out, TokenShardSet(out).problems()):
                log.info("tokenize %s", name)
                stats = state.curation_stats.get(name, {})
                kept = stats.get("docs_kept")
                if kept is None:  # statistics of an older mixlab: count the documents (streaming)
                    from mixlab.shards import iter_documents

                    kept = sum(1 for _ in iter_documents(curated))
                build = out.with_name(f".{out.name}.build")
                build.mkdir(parents=True, exist_ok=True)
                with open(build / "tokenize.log", "a") as sink, _quiet_stderr(sink):
                    tokenize_source(
                        curated, out, encoding_ref(state), source=name, seed=r.seed,
                        heldout_fraction=heldout_fraction(r.sources[name].heldout_docs, kept),
                        curation=stats, expected_documents=kept, executor=executor,
                        tasks=tasks or max(1, workers), workers=workers, block_tokens=block_tokens,
                        **executor_kwargs,
                    )
            shutil.rmtree(out.with_name(f".{out.name}.build"), ignore_errors=True)  # a run killed after the rename
        state.shards[name] = out
        state.token_keys[name] = key


# ------------------------------------------------------------------------------------------------- pack


def pack(state: RunState, executor: str = "local", tasks: int | None = None, workers: int = 1,
         shard_sequences: int | None = None, **executor_kwargs: Any) -> None:
    """Pack every phase in order, each source's ledger continuing across phases. A phase's shards are written by
    ``tasks`` ranks (default ``workers``) on ``executor``; its bytes do not depend on tasks, workers or executor,
    and a rerun after a failed task keeps the finished shards (:mod:`mixlab.pack.writer`)."""
    from mixlab.pack.manifest import read_manifest
    from mixlab.pack.plan import DEFAULT_SHARD_SEQUENCES

    engine = {"executor": executor, "tasks": tasks or workers, "workers": workers,
              "shard_sequences": shard_sequences or DEFAULT_SHARD_SEQUENCES, "executor_kwargs": executor_kwargs}

    r = state.recipe
    ledger: dict[str, int] = {}
    for index, (pname, phase) in enumerate(r.phases.items()):
        active = [s for s, w in phase.mixture.items() if w > 0]
        key = section_hash(
            "pack", PACK_VERSION, {s: state.token_keys[s] for s in active}, r.seq_len, r.train.batch_size, r.seed,
            phase.tokens, {s: phase.mixture[s] for s in active}, phase.max_repeat, {s: ledger.get(s, 0) for s in active},
        )
        out = state.ws.path("packed", f"{pname}-{key}")
        with state.ws.lock("packed", out.name):
            if _needs_build(out, phase_problems(out, key)):
                log.info("pack phase %s", pname)
                _pack_one(state, out, pname, index, key, ledger, **engine)
        manifest = read_manifest(out)
        for s, entry in manifest.sources.items():
            ledger[s] = entry.ledger_end
        state.packed[pname] = out


def _check_disk(root: Path, need: int, what: str) -> None:
    """Refuse to start a write that cannot fit (with 5% to spare) instead of failing half-way."""
    from mixlab.errors import MixlabError

    free = shutil.disk_usage(root).free
    if need * 1.05 > free:
        raise MixlabError(f"{what} needs {need / 1e9:.3g} GB but {root} has {free / 1e9:.3g} GB free; free space, "
                          f"use a --workdir on a larger disk, or lower the phase budget (`mixlab plan` shows sizes)")


def phase_problems(out: Path, key: str) -> list[str]:
    """Why the packed phase at ``out`` cannot be reused (missing, damaged, or written for another key)."""
    from mixlab.errors import MixlabError
    from mixlab.pack.dataset import open_phase

    if not (out / "manifest.json").exists():
        return [f"{out}: not packed yet"]
    try:
        phase = open_phase(out, verify=True)
    except MixlabError as e:
        return [str(e)]
    if phase.manifest.pack_key != key:
        return [f"{out}/manifest.json: pack_key {phase.manifest.pack_key} differs from the folder's {key}"]
    return []


def _pack_one(state: RunState, out: Path, pname: str, index: int, key: str, ledger: dict[str, int],
              **engine: Any) -> None:
    from mixlab.pack.writer import pack_phase
    from mixlab.shards import TokenShardSet

    r, phase = state.recipe, state.recipe.phases[pname]
    active = [s for s, w in phase.mixture.items() if w > 0]
    shards = {s: TokenShardSet(state.shards[s]).verified() for s in active}  # digests checked before reading
    pack_phase(
        out, phase=pname, phase_index=index, requested_tokens=phase.tokens, mixture=phase.mixture,
        max_repeat=phase.max_repeat, sources=shards,  # TokenShardSet is a pack TokenSource
        source_meta={s: sh.source_meta() for s, sh in shards.items()}, starts=ledger, seq_len=r.seq_len,
        batch_size=r.train.batch_size, seed=r.seed,
        header={"recipe_name": r.name, "recipe_hash": recipe_hash(r), "pack_key": key, "tokenizer": state.tokenizer},
        check_space=lambda need: _check_disk(state.ws.root, need, f"packing phase {pname!r}"), **engine,
    )


# ------------------------------------------------------------------------------------------------ train


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


def run(recipe: Recipe, workdir: Path, *, until: str = "eval", progress: bool = True, workers: int = 1,
        executor: str = "local", tasks: int | None = None, executor_options: dict[str, Any] | None = None) -> RunState:
    """Run the recipe through ``until`` (curate | tokenize | pack | train | eval).

    The data stages run as datatrove tasks on ``executor`` (local | slurm | ray): ``tasks`` ranks (curate: 1,
    tokenize: ``workers`` when None), ``workers`` at a time; ``executor_options`` go to the datatrove executor
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
