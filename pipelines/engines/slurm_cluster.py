"""Python side of the one-node Slurm cluster of ``slurm.sh``: start/stop it, wait for a datatrove job.

Contracts:
- :func:`slurm_cluster` runs ``slurm.sh start DIR`` (installing Slurm with apt-get when missing), sets
  ``SLURM_CONF`` in this process so ``sbatch``/``squeue`` find the cluster, yields DIR, and on exit runs
  ``slurm.sh stop DIR`` only if the cluster was not already up when it entered. A failed start raises
  :class:`SlurmUnavailable` carrying the script's one-line diagnosis.
- :func:`wait_for_tasks`: datatrove's SlurmPipelineExecutor only submits (``run()`` returns at once). This
  polls ``<logging_dir>/completions/`` until ``tasks`` ranks are complete; it raises ``RuntimeError`` (with the
  tail of the newest Slurm log) as soon as none of the run's jobs (:func:`queued_jobs`: those writing to
  ``<logging_dir>/slurm_logs``) is left in the queue while ranks are missing (a failed task), and
  ``TimeoutError`` after ``timeout_s``. It never waits without a bound.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCRIPT = Path(__file__).with_name("slurm.sh")
DEFAULT_DIR = "/tmp/mixlab-slurm"


class SlurmUnavailable(RuntimeError):
    """Slurm could not be started here (the message says why and what to do)."""


def _script(command: str, state_dir: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), command, state_dir], capture_output=True, text=True, timeout=timeout_s
    )


def can_host_slurm() -> str | None:
    """None if this machine can run the one-node cluster, else why not (one line)."""
    if os.name != "posix" or os.geteuid() != 0:
        return "slurm.sh needs root to start munged, slurmctld and slurmd"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "Slurm is not installed and apt-get is missing to install it"
    return None


def is_up(state_dir: str = DEFAULT_DIR) -> bool:
    """True if ``slurm.sh status`` finds munged, slurmctld and slurmd running for ``state_dir``."""
    return _script("status", state_dir, 30).returncode == 0


@contextmanager
def slurm_cluster(state_dir: str | None = None, timeout_s: float = 900) -> Iterator[str]:
    """Start the one-node cluster (idempotent) for the duration of the block; yields its state folder."""
    state_dir = state_dir or os.environ.get("MIXLAB_SLURM_DIR", DEFAULT_DIR)
    was_up = is_up(state_dir)
    res = _script("start", state_dir, timeout_s)
    if res.returncode != 0:
        lines = (res.stderr or res.stdout).strip().splitlines()
        raise SlurmUnavailable(lines[-1] if lines else f"slurm.sh start exited with {res.returncode}")
    old_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = os.path.join(state_dir, "slurm.conf")
    try:
        yield state_dir
    finally:
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf
        if not was_up:
            _script("stop", state_dir, 120)


def queued_jobs(logging_dir: str) -> list[str]:
    """``"<job id> <state>"`` of the queued/running jobs of the datatrove run in ``logging_dir`` (its tasks and
    its stats-merge job: recognized by their output path ``<logging_dir>/slurm_logs/...``)."""
    out = subprocess.run(
        ["squeue", "-h", "--Format=JobID:30,State:20,StdOut:4096"], capture_output=True, text=True, timeout=30
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"squeue failed ({out.stderr.strip()}): is Slurm up? pipelines/engines/slurm.sh status"
        )
    logs = os.path.join(os.path.abspath(logging_dir), "slurm_logs") + os.sep
    return [
        " ".join(f[:2])
        for f in (line.split() for line in out.stdout.splitlines())
        if len(f) == 3 and f[2].startswith(logs)
    ]


def _log_tail(logging_dir: str, lines: int = 5) -> str:
    logs = sorted(Path(logging_dir, "slurm_logs").glob("*.out"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return "no Slurm log written"
    tail = logs[-1].read_text(errors="replace").strip().splitlines()[-lines:]
    return f"{logs[-1]}:\n" + "\n".join(tail)


def completed_ranks(logging_dir: str) -> int:
    """How many ranks datatrove has marked complete in ``logging_dir``."""
    folder = Path(logging_dir, "completions")
    return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0


def wait_for_tasks(logging_dir: str, tasks: int, timeout_s: float = 600, poll_s: float = 0.25) -> float:
    """Block until ``tasks`` ranks are complete; returns the seconds waited. See the module contract."""
    start = time.monotonic()
    while True:
        if completed_ranks(logging_dir) >= tasks:
            return time.monotonic() - start
        if not queued_jobs(logging_dir) and completed_ranks(logging_dir) < tasks:
            raise RuntimeError(
                f"the Slurm jobs of {logging_dir} left the queue with {completed_ranks(logging_dir)}/{tasks} ranks "
                f"complete; last log {_log_tail(logging_dir)}"
            )
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(
                f"Slurm jobs of {logging_dir}: {completed_ranks(logging_dir)}/{tasks} ranks complete after "
                f"{timeout_s:.0f}s; queued: {queued_jobs(logging_dir)} (`squeue` shows why jobs pend)"
            )
        time.sleep(poll_s)
