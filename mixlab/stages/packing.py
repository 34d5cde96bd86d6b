"""The pack stage: every phase in order, each source's ledger continuing across phases (:mod:`mixlab.pack`).

Staging of other keys: a killed pack leaves ``packed/.<phase>-<key>.partial/`` (GBs at scale). When a phase is
built, the ``.partial`` folders of the same phase under other keys are reported (a warning with their size), not
removed: a workspace is shared by recipes (``mixlab study``, variants that differ in a later phase or in a
weight), so another key of the same phase name is as likely the resumable work of another recipe as the leftover
of an edited one, and an unlocked folder only says that no run holds it now. ``mixlab gc`` removes the abandoned
ones by its rules (no live lock, unmodified for a day, not the latest staging of the phase).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixlab.recipe import recipe_hash, section_hash
from mixlab.stages.common import PACK_VERSION, RunState, check_disk, log, needs_build


def pack(state: RunState, executor: str = "local", tasks: int | None = None, workers: int = 1,
         shard_sequences: int | None = None, **executor_kwargs: Any) -> None:
    """Pack every phase in order, each source's ledger continuing across phases. A phase's shards are written by
    ``tasks`` ranks (default ``workers``, at least 1) on ``executor``; its bytes do not depend on tasks, workers or executor,
    and a rerun after a failed task keeps the finished shards (:mod:`mixlab.pack.writer`)."""
    from mixlab.pack.manifest import read_manifest
    from mixlab.pack.plan import DEFAULT_SHARD_SEQUENCES

    engine = {"executor": executor, "tasks": tasks or max(1, workers), "workers": workers,
              "shard_sequences": shard_sequences or DEFAULT_SHARD_SEQUENCES, "executor_kwargs": executor_kwargs}

    r = state.recipe
    ledger: dict[str, int] = {}
    for index, (pname, phase) in enumerate(r.phases.items()):
        active = [s for s, w in phase.mixture.items() if w > 0]
        key = section_hash(
            "pack", PACK_VERSION, {s: state.token_keys[s] for s in active}, r.seq_len, r.train.batch_size, r.seed,
            phase.tokens, {s: phase.mixture[s] for s in active}, phase.max_repeat, {s: ledger.get(s, 0) for s in active},
            *([engine["shard_sequences"]] if shard_sequences else []),  # the shard layout is part of the bytes
        )
        out = state.ws.path("packed", f"{pname}-{key}")
        with state.ws.lock("packed", out.name):
            if needs_build(out, phase_problems(out, key)):
                log.info("pack phase %s", pname)
                _report_other_keys(out, pname)
                _pack_one(state, out, pname, index, key, ledger, **engine)
        manifest = read_manifest(out)
        for s, entry in manifest.sources.items():
            ledger[s] = entry.ledger_end
        state.packed[pname] = out


def _report_other_keys(out: Path, pname: str) -> list[Path]:
    """Warn about the ``.partial`` staging of phase ``pname`` under other keys beside ``out``; returns them."""
    own = f".{out.name}.partial"
    others = sorted(p for p in out.parent.iterdir()
                    if p.name.startswith(f".{pname}-") and p.name.endswith(".partial") and p.name != own
                    and p.name[len(pname) + 2 : -len(".partial")].isalnum())  # ".<phase>-<key>.partial" only
    if others:
        size = sum(f.stat().st_size for p in others for f in p.rglob("*") if f.is_file())
        log.warning("phase %s: %d unfinished pack(s) of other keys beside %s hold %.3g GB (%s); kept, as a run of "
                    "their recipe resumes them: `mixlab gc --workdir %s --dry-run` lists the abandoned ones", pname,
                    len(others), out.name, size / 1e9, ", ".join(p.name for p in others[:3]), out.parent.parent)
    return others


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
        check_space=lambda need: check_disk(state.ws.root, need, f"packing phase {pname!r}"), **engine,
    )
