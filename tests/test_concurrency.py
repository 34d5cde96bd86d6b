"""Two mixlab runs on one workspace at the same time wait for or reuse each other's work and never corrupt it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mixlab.pack.dataset import open_phase
from mixlab.shards import TokenShardSet
from tests.test_integrity import RECIPE


@pytest.mark.slow
def test_two_concurrent_runs_on_one_workspace(tmp_path: Path) -> None:
    """Two `mixlab pack` processes started together on an empty workspace both succeed; every output is
    built once (one folder per key, no temporary leftovers) and passes its digest checks."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    cmd = [sys.executable, "-m", "mixlab.cli", "pack", str(recipe), "--workdir", str(tmp_path / "w"), "-q"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    work = tmp_path / "w"
    assert len(list((work / "packed").iterdir())) == 1
    assert sorted(p.name.split("-")[0] for p in (work / "tokens").iterdir()) == ["code", "text"]
    assert not [p for p in work.rglob(".*tmp-*")]
    for shard in (work / "tokens").iterdir():
        assert TokenShardSet(shard).problems() == []
    open_phase(next((work / "packed").iterdir()), verify=True)


def test_atomic_writes_are_readable_by_other_users(tmp_path: Path) -> None:
    """Manifests and other atomic JSON get the mode ``open`` would give (0o666 less the umask), not a temp file's
    0o600: on a shared cluster other users must read a workspace's manifests as they read its shards. Also, no
    temporary sibling survives a write."""
    from mixlab.workspace import write_json_atomic

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
