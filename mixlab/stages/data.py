"""Data stages: curate every source (datatrove), build the tokenizer, tokenize every source into a token set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mixlab.executors import quiet_stderr
from mixlab.recipe import section_hash
from mixlab.stages.common import (
    CURATE_VERSION,
    TOKENIZE_VERSION,
    RunState,
    jsonable,
    log,
    needs_build,
    progress_bar,
)
from mixlab.workspace import clean_stale, relative, write_json_atomic


def curate(state: RunState, executor: str = "local", tasks: int = 1, workers: int = 1, progress: bool = True,
           **executor_kwargs: Any) -> None:
    """Curate every source the recipe declares (all of them: shared tokenizer and held-out sets).

    datatrove logs every task to stderr at INFO; unless ``MIXLAB_VERBOSE`` is set that stream goes to
    ``curated/<source>-<key>/curate.log`` (the per-task logs are in ``logs/`` beside it either way).
    """
    from mixlab.curate.pipeline import run_curation

    r = state.recipe
    bar = progress_bar(list(r.sources.items()), "curate", progress)
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
                needs_build(out, damage)
            if not stats_file.exists():  # new, or interrupted: datatrove's completion markers resume it
                log.info("curate %s (%s) from %s", name, src.kind, path or "generator")
                out.mkdir(parents=True, exist_ok=True)
                with open(out / "curate.log", "w") as sink, quiet_stderr(sink):
                    stats = run_curation(  # the same call as pipelines/*.py --recipe R --source NAME
                        src.filters, path, str(out / "docs"), executor=executor, tasks=tasks,
                        workers=workers, logging_dir=str(out / "logs"), wait=True, **executor_kwargs,
                    )
                record = jsonable(stats)
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
    bar = progress_bar(list(state.curated.items()), "tokenize", progress)
    for name, curated in bar:
        bar.set_postfix_str(name)
        key = section_hash("tokens", TOKENIZE_VERSION, state.curate_keys[name], state.tokenizer.hash, r.seed,
                           r.sources[name].heldout_docs, block_tokens)
        out = state.ws.path("tokens", f"{name}-{key}")
        with state.ws.lock("tokens", out.name):
            if needs_build(out, TokenShardSet(out).problems()):
                log.info("tokenize %s", name)
                stats = state.curation_stats.get(name, {})
                kept = stats.get("docs_kept")
                if kept is None:  # statistics of an older mixlab: count the documents (streaming)
                    from mixlab.shards import iter_documents

                    kept = sum(1 for _ in iter_documents(curated))
                build = out.with_name(f".{out.name}.build")
                build.mkdir(parents=True, exist_ok=True)
                with open(build / "tokenize.log", "a") as sink, quiet_stderr(sink):
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
