"""One error path: every user-facing failure prints one message that names the problem and the fix, exits with
status 2, and shows no traceback (``-v`` shows it). Broken recipes are caught by ``validate`` before any data is
read where that is knowable; supply problems are caught before any large allocation."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from mixlab.cli import describe_failure, main
from tests.test_integrity import RECIPE

# (--set overrides, words the message must contain): each a class of broken recipe found by `validate`.
BROKEN = [
    (["phases.pretrain.tokens=10"], "less than one batch"),
    (["train.micro_batch_size=3"], "does not divide train.batch_size"),
    (["phases.pretrain.init_from=/no/such/checkpoint.pt"], "no such checkpoint file"),
    (["phases.pretrain.tokens=1e15"], "split it into several phases"),
    (["name=../escape"], "not a safe name"),
    (["phases.pretrain.mixture={text: 0.5, code: 0.6}"], "must sum to 1"),
    (["phases.pretrain.mixture={text: 1"], "not valid YAML"),
    (["sources.text.filters.code_treshold=0.3"], "sources.text.filters.code_treshold"),
    (["sources.text.kind=webtext"], "unknown source kind"),
    (["phases.pretrain.lr.min_lr=1"], "min_lr"),
    (["seq_len=0"], "seq_len"),
    (["=3"], "dotted field path"),
]


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE)
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _stage_argv(command: str, recipe: Path, overrides: list[str]) -> list[str]:
    """``mixlab <command> RECIPE --workdir <beside it> -q --set o ...``"""
    return [command, str(recipe), "--workdir", str(recipe.parent / "w"), "-q", *(a for o in overrides for a in ("--set", o))]


@pytest.mark.parametrize(("overrides", "expected"), BROKEN, ids=[o[0] for o, _ in BROKEN])
def test_broken_recipes_fail_validation_with_one_clean_message(
    recipe: Path, overrides: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mixlab run` on a broken recipe exits 2 before any stage runs, with the field and fix, no traceback."""
    code, err = _run(_stage_argv("run", recipe, overrides), capsys)
    assert code == 2, err
    assert expected in err and "Traceback" not in err
    assert not (recipe.parent / "w" / "curated").exists()  # nothing ran


def test_a_phase_named_with_dots_cannot_escape_the_workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A phase or source named '../x' is refused: names become folder names inside the workspace."""
    bad = RECIPE.replace("  pretrain:", "  ../pretrain:").replace("  text:\n", "  text:\n", 1)
    path = tmp_path / "r.yaml"
    path.write_text(bad)
    code, err = _run(["validate", str(path)], capsys)
    assert code != 0 and "not a safe name" in err


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["phases.pretrain.max_repeat=1", "phases.pretrain.tokens=2e6"], "max_repeat=1 allows"),
        # 1.2e9 sequences: only Hamilton's K counts exist when the supply check refuses it (no O(N) order array).
        (["phases.pretrain.tokens=4e10"], "Lower its weight or the phase budget"),
    ],
)
def test_supply_problems_are_one_message_before_any_large_allocation(
    recipe: Path, overrides: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A phase that needs more data than max_repeat allows fails at pack time naming source, need and supply."""
    code, err = _run(_stage_argv("pack", recipe, overrides), capsys)
    assert code == 2, err
    assert expected in err and "source 'text'" in err and "Traceback" not in err


def test_system_failures_become_one_message_with_the_fix() -> None:
    """A full disk, a read-only folder, memory exhaustion and an unexpected bug each map to one message; only
    the bug exits 1 and points at -v for the traceback."""
    code, msg = describe_failure(OSError(errno.ENOSPC, "No space left on device", "/w/packed/x/tokens.npy"))
    assert code == 2 and "disk full" in msg and "/w/packed/x/tokens.npy" in msg and "--workdir" in msg
    code, msg = describe_failure(PermissionError(errno.EACCES, "Permission denied", "/ro"))
    assert code == 2 and "writable --workdir" in msg
    code, msg = describe_failure(MemoryError())
    assert code == 2 and "out of memory" in msg
    code, msg = describe_failure(ZeroDivisionError("division by zero"))
    assert code == 1 and "-v" in msg and "ZeroDivisionError" in msg


def test_verbose_shows_the_traceback(recipe: Path) -> None:
    """With -v the original exception propagates (for bug reports) instead of the one-line message."""
    from mixlab.recipe import RecipeError

    with pytest.raises(RecipeError):
        main(["-v", "validate", str(recipe), "--set", "seq_len=0"]) if False else main(
            ["-v", "run", str(recipe), "--set", "seq_len=0", "--workdir", str(recipe.parent / "w")]
        )


def test_a_phase_the_disk_cannot_hold_is_refused_before_writing(
    recipe: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the packed phase needs more bytes than the workdir's disk has free, pack refuses up front with the
    sizes and the fix (instead of failing half-way through a write)."""
    import shutil

    free = shutil.disk_usage(recipe.parent).free
    tokens = int(2 * free / 75 * 32)  # 32-token sequences of 33 uint16 ids + 9 sidecar bytes: 75 bytes each
    if tokens // 32 > 3_000_000_000:
        pytest.skip(f"{free / 1e9:.0f} GB free: no orderable phase is larger than this disk")
    argv = ["pack", str(recipe), "--workdir", str(recipe.parent / "w"), "-q",
            "--set", f"phases.pretrain.tokens={tokens}", "--set", "phases.pretrain.max_repeat=1e12"]
    code, err = _run(argv, capsys)
    assert code == 2 and "GB free" in err and "--workdir" in err and "Traceback" not in err
    assert not list((recipe.parent / "w" / "packed").glob("*/*.tokens.npy"))


def test_demo_command_line_reaches_the_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mixlab demo` (which has no engine options) runs its stages: an input folder that does not exist ends in
    the curate stage's clean message, not in an internal error about a missing command-line option."""
    code, err = _run(["demo", "--out", str(tmp_path / "d"), "--set", f"data_root={tmp_path / 'none'}"], capsys)
    assert code == 2 and "no input files" in err and "internal error" not in err


@pytest.mark.parametrize("argv, workers", [
    ([], 1),                                                      # local: one task at a time unless asked
    (["--executor", "slurm", "--partition", "p"], -1),            # a cluster: no `%N` limit on the array
    (["--executor", "ray"], -1),
    (["--executor", "slurm", "--partition", "p", "--workers", "3"], 3),  # an explicit limit is kept
])
def test_cluster_runs_do_not_inherit_the_local_concurrency_limit(
    argv: list[str], workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mixlab curate|tokenize|pack --executor slurm|ray` without --workers lets the scheduler run every task at
    once (datatrove's -1); the local default of one task at a time would submit a Slurm array as `%1`."""
    import mixlab.stages

    seen: dict[str, object] = {}

    def fake_run(recipe: object, workdir: Path, **kw: object) -> object:
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(mixlab.stages, "run", fake_run)
    with pytest.raises(SystemExit):
        main(["curate", str(Path(__file__).parents[1] / "recipes" / "base.yaml"), *argv])
    assert seen["workers"] == workers



def test_engine_chatter_goes_to_the_run_logs_not_the_console(tmp_path: Path) -> None:
    """A stage run through datatrove (here 2 local worker processes, whose task loggers write INFO lines to the
    inherited fd 2, and a parent that logs its stats through loguru) leaves the console to mixlab's own output:
    datatrove's lines land in the run's launcher.log and task logs. Fails if run_pipeline stops redirecting."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from loguru import logger\n"
        "from mixlab.executors import run_pipeline\n"
        "logger.remove(); logger.add(sys.stderr, level='DEBUG')\n"  # as datatrove leaves it after a task
        "def step(data, rank=0, world_size=1):\n    return []\n"
        f"run_pipeline([step], executor='local', tasks=2, workers=2, logging_dir={str(tmp_path / 'logs')!r})\n"
        "print('mixlab output', file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MIXLAB_VERBOSE"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.strip() == "mixlab output", done.stderr[-2000:]
    logged = (tmp_path / "logs" / "launcher.log").read_text() + "".join(
        p.read_text() for p in (tmp_path / "logs" / "logs").glob("task_*.log"))
    assert "Launching pipeline for rank=" in logged and "Stats: All 2 tasks" in logged
