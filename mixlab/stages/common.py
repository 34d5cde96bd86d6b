"""Shared by the stages: the run state, stage versions (part of every key), and the build-or-reuse helpers.

Contract: ``needs_build(out, problems)`` (called under the output's lock) removes temporary leftovers of
killed runs beside ``out`` and says whether ``out`` must be (re)built; a damaged output is removed with a warning
and rebuilt, never skipped because a marker exists. ``check_disk`` refuses a write the disk cannot hold.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixlab.recipe import Recipe
from mixlab.workspace import Workspace, clean_stale

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


def progress_bar(items, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="source", disable=not enabled, leave=False)


def needs_build(out: Path, problems: list[str]) -> bool:
    """True when ``out`` must be (re)built: absent, or damaged (then it is removed, with a warning). Call under
    the output's lock; temporary folders of killed runs beside it are removed too."""
    clean_stale(out)
    if not problems:
        return False
    if out.exists():
        log.warning("rebuilding %s: %s", out, "; ".join(problems[:3]))
        shutil.rmtree(out, ignore_errors=True)
    return True


def check_disk(root: Path, need: int, what: str) -> None:
    """Refuse to start a write that cannot fit (with 5% to spare) instead of failing half-way."""
    from mixlab.errors import MixlabError

    free = shutil.disk_usage(root).free
    if need * 1.05 > free:
        raise MixlabError(f"{what} needs {need / 1e9:.3g} GB but {root} has {free / 1e9:.3g} GB free; free space, "
                          f"use a --workdir on a larger disk, or lower the phase budget (`mixlab plan` shows sizes)")


def jsonable(stats: Any) -> Any:
    return stats.model_dump(mode="json") if hasattr(stats, "model_dump") else stats
