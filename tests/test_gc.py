"""``mixlab gc``: the staging that killed runs leave (``.<out>.partial``, ``.<out>.build``, ``.<name>.tmp-*``) is
removed when no run will use it, and never when a live run holds it or a re-run would resume it.

Staging folders here are real where it matters: a pack killed mid-way (a shard task that raises) leaves the
writer's own ``.partial`` folder; the others are laid out as the stages name them. Ages are set with ``os.utime``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixlab.cli import main
from mixlab.pack.dataset import open_phase
from mixlab.stages.packing import _report_other_keys
from mixlab.workspace import Workspace
from tests.test_pack_writer import BlockSource, block_source, pack

DAY = 86400.0
OLD = 3 * DAY  # older than gc's default threshold


def set_age(path: Path, seconds: float) -> None:
    """Set the modification time of ``path`` and everything in it to ``seconds`` ago."""
    stamp = time.time() - seconds
    for p in [*path.rglob("*"), path] if path.is_dir() else [path]:
        os.utime(p, (stamp, stamp), follow_symlinks=False)


def snapshot(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every path below ``root`` with (is folder, size, mtime in ns)."""
    return {p.relative_to(root).as_posix(): (p.is_dir(), p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in root.rglob("*")}


def killed_pack(packed: Path, name: str) -> Path:
    """A pack of phase ``name`` whose shard task died: the writer's ``.<name>.partial`` with finished shards."""
    sources = {"a": block_source("a", 6, 3, 100), "b": BlockSource("b", block_source("b", 4, 4, 300).blocks,
                                                                   fail_after=3)}
    with pytest.raises(OSError, match="simulated"):
        pack(packed, name, {"a": 0.5, "b": 0.5}, tokens=96 * 8, starts={}, sources=sources, shard_sequences=8,
             max_repeat=20.0, tasks=3)
    staging = packed / f".{name}.partial"
    assert staging.is_dir() and list(staging.glob(".*.done.json")) and not (packed / name).exists()
    return staging


def finished_pack(packed: Path, name: str) -> Path:
    sources = {"a": block_source("a", 6, 3, 100), "b": block_source("b", 4, 4, 300)}
    pack(packed, name, {"a": 0.5, "b": 0.5}, tokens=96 * 8, starts={}, sources=sources, shard_sequences=8,
         max_repeat=20.0)
    return packed / name


def abandoned_workspace(root: Path) -> dict[str, Path]:
    """A workspace after a recipe change: the old keys' staging of pack and tokenize, older than the finished
    outputs of the new keys, and temporary files of ended runs; everything older than a day."""
    packed = root / "packed"
    old_partial = killed_pack(packed, "pretrain-0a0a")
    new_phase = finished_pack(packed, "pretrain-1b1b")
    old_build = root / "tokens" / ".text-2c2c.build"
    (old_build / "blocks").mkdir(parents=True)
    (old_build / "blocks" / "00000.train.tokens.npy").write_bytes(b"\0" * 5000)
    (old_build / "plan.json").write_text("{}")
    new_tokens = root / "tokens" / "text-3d3d"
    new_tokens.mkdir()
    (new_tokens / "manifest.json").write_text("{}")
    tmp_dir = root / "curated" / ".code-4e4e.tmp-123"
    tmp_dir.mkdir(parents=True)
    (tmp_dir / "part").write_bytes(b"x" * 700)
    tmp_file = new_phase / ".manifest.json.tmp-abcd1234"
    tmp_file.write_bytes(b"y" * 300)
    for p in (old_partial, old_build, tmp_dir, tmp_file):
        set_age(p, OLD)
    for p in (new_phase, new_tokens):  # the new keys' outputs were finished after the old keys' staging
        set_age(p, OLD - 3600)
    return {"old_partial": old_partial, "new_phase": new_phase, "old_build": old_build, "new_tokens": new_tokens,
            "tmp_dir": tmp_dir, "tmp_file": tmp_file}


def test_gc_removes_abandoned_staging_and_nothing_else(tmp_path: Path) -> None:
    """Invariant: staging of superseded keys (a killed pack's ``.partial``, a tokenize ``.build``, older than a
    finished output of a newer key of the same phase or source) and temporary files of ended runs, unmodified
    for more than a day and held by no run, are removed, their bytes reported as freed; every finished output is
    left byte for byte (the packed phase still verifies). Fails if any abandoned entry survives, if a finished
    output is touched, or if the freed bytes are not the removed entries' sizes."""
    paths = abandoned_workspace(tmp_path)
    sizes = {k: sum(f.stat().st_size for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
             for k, p in paths.items()}
    finished = {p.name: snapshot(p) for p in (paths["new_phase"], paths["new_tokens"])}
    report = Workspace(tmp_path).gc()
    removed = {entry.path for entry, _ in report.removed}
    assert removed == {paths[k] for k in ("old_partial", "old_build", "tmp_dir", "tmp_file")}
    assert report.kept == []
    assert not any(paths[k].exists() for k in ("old_partial", "old_build", "tmp_dir", "tmp_file"))
    assert report.bytes_freed == sum(sizes[k] for k in ("old_partial", "old_build", "tmp_dir", "tmp_file")) > 5000
    assert {p.name: snapshot(p) for p in (paths["new_phase"], paths["new_tokens"])} == {
        **finished, paths["new_phase"].name: {k: v for k, v in finished[paths["new_phase"].name].items()
                                              if k != paths["tmp_file"].name}}
    open_phase(paths["new_phase"], verify=True)


def test_gc_keeps_staging_whose_lock_a_live_run_holds(tmp_path: Path) -> None:
    """Invariant: while another process holds an output's workspace lock (a live run building it), gc keeps that
    output's staging, however old and superseded, and says why; once the lock is released the same staging is
    removed. Fails if gc decides from names and ages alone, deleting the files of a running pack."""
    paths = abandoned_workspace(tmp_path)
    hold = ("import sys; from mixlab.workspace import Workspace; "
            "lock = Workspace(sys.argv[1]).lock('packed', 'pretrain-0a0a'); lock.__enter__(); "
            "print('locked', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        report = Workspace(tmp_path).gc()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)
    kept = {entry.path: why for entry, why in report.kept}
    assert kept == {paths["old_partial"]: "in use: a live run holds its lock"}
    assert paths["old_partial"].is_dir() and not paths["old_build"].exists()
    assert [entry.path for entry, _ in Workspace(tmp_path).gc().removed] == [paths["old_partial"]]


def test_gc_keeps_temporary_files_of_a_running_evaluation(tmp_path: Path) -> None:
    """Invariant: an entry is guarded by every lock that names its output, not only the stage's own: a temporary
    file below a trained phase is kept while that phase's evaluation lock is held (here by another descriptor of
    this process, which flock treats as another owner). Fails if gc checked only ``train__<phase>``."""
    ws = Workspace(tmp_path)
    tmp = tmp_path / "train" / "pretrain-5f5f" / "eval-default" / ".eval.json.tmp-42"
    tmp.parent.mkdir(parents=True)
    tmp.write_text("{}")
    set_age(tmp, OLD)
    with ws.lock("eval", "pretrain-5f5f", "default"):
        report = ws.gc()
        assert [entry.path for entry, _ in report.kept] == [tmp] and tmp.exists()
    assert [entry.path for entry, _ in ws.gc().removed] == [tmp]


def test_gc_keeps_the_current_keys_resumable_partial(tmp_path: Path) -> None:
    """Invariant: the resumable staging a re-run would resume (the latest ``.partial`` of its phase, no newer
    finished output of that phase) survives gc by default, untouched file for file, however old; so does any
    staging modified within ``--older-than`` (a task may still be writing). ``all_staging`` removes the
    former; the superseded older key beside it goes either way. Fails if a killed run's resumable shards (GBs at
    scale) were lost to a default gc."""
    packed = tmp_path / "packed"
    superseded = killed_pack(packed, "pretrain-6a6a")
    current = killed_pack(packed, "pretrain-7b7b")
    set_age(superseded, OLD + 3600)
    set_age(current, OLD)
    young = tmp_path / "tokens" / ".code-8c8c.build"  # superseded (a newer finished output) but just modified
    young.mkdir(parents=True)
    (tmp_path / "tokens" / "code-9d9d").mkdir()
    set_age(young, 60)
    before = snapshot(current)
    report = Workspace(tmp_path).gc()
    assert [entry.path for entry, _ in report.removed] == [superseded]
    kept = {entry.path: why for entry, why in report.kept}
    assert set(kept) == {current, young}
    assert kept[current].startswith("resumable") and kept[young].startswith("modified")
    assert snapshot(current) == before
    assert [entry.path for entry, _ in Workspace(tmp_path).gc(all_staging=True).removed] == [current]
    assert young.exists()
    assert [entry.path for entry, _ in Workspace(tmp_path).gc(older_than_s=0).removed] == [young]


def test_gc_dry_run_removes_nothing(tmp_path: Path) -> None:
    """Invariant: a dry run reports what a real run would remove (same entries, same bytes) and changes nothing
    in the workspace: every path, size and modification time is as before, and no lock file is created. Fails
    if the dry run deletes, touches, or reports differently from the real run."""
    abandoned_workspace(tmp_path)
    before = snapshot(tmp_path)
    dry = Workspace(tmp_path).gc(dry_run=True)
    assert snapshot(tmp_path) == before and not (tmp_path / ".locks").exists()
    assert dry.dry_run and len(dry.removed) == 4 and dry.bytes_freed > 5000
    real = Workspace(tmp_path).gc()
    assert [(e.path, e.bytes) for e, _ in real.removed] == [(e.path, e.bytes) for e, _ in dry.removed]


def test_cli_gc_prints_removed_entries_and_bytes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Invariant: ``mixlab gc`` prints one line per entry (removed or kept, its size, its path in the workspace,
    why) and the total freed; ``--dry-run`` says "would remove" and removes nothing; a missing workspace or an
    unreadable ``--older-than`` is one error line and exit status 2. Fails on a traceback, a silent no-op, or a
    dry run that deletes."""
    paths = abandoned_workspace(tmp_path / "w")
    assert main(["gc", "--workdir", str(tmp_path / "w"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove" in out and "packed/.pretrain-0a0a.partial" in out and "would be freed" in out
    assert paths["old_partial"].is_dir()
    assert main(["gc", "--workdir", str(tmp_path / "w"), "--older-than", "2d"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.startswith("removed") for line in lines)
    assert "tokens/.text-2c2c.build" in "\n".join(lines) and "removed 4 staging entries" in lines[-1]
    assert not paths["old_partial"].exists()
    for argv in (["gc", "--workdir", str(tmp_path / "nowhere")], ["gc", "--workdir", str(tmp_path / "w"),
                                                                  "--older-than", "soon"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_pack_stage_reports_other_keys_partials_without_removing_them(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Invariant: when a phase is packed, unfinished packs of the same phase under other keys are reported (count,
    size, how to remove them) and left in place: in a shared workspace they may be another recipe's resumable
    work. A phase whose name only starts the same (``pretrain-long``) is not counted. Fails if the stage deleted
    them or stayed silent about GBs of staging."""
    packed = tmp_path / "packed"
    other = killed_pack(packed, "pretrain-aa11")
    killed_pack(packed, "pretrain-long-bb22")
    before = snapshot(other)
    with caplog.at_level(logging.WARNING, logger="mixlab"):
        found = _report_other_keys(packed / "pretrain-cc33", "pretrain")
    assert found == [other] and snapshot(other) == before
    assert "1 unfinished pack(s) of other keys" in caplog.text and "mixlab gc" in caplog.text
