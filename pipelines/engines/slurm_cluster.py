"""Python side of the one-node Slurm cluster of ``slurm.sh``: start/stop it, wait for a datatrove job.

Contracts:
- :func:`slurm_cluster` runs ``slurm.sh start DIR`` (installing Slurm with apt-get when missing), sets
  ``SLURM_CONF`` in this process so ``sbatch``/``squeue`` find the cluster, yields DIR, and on exit runs
  ``slurm.sh stop DIR`` only if the cluster was not already up when it entered. A failed start raises
  :class:`SlurmUnavailable` carrying the script's one-line diagnosis.
- :func:`wait_for_tasks`, :func:`queued_jobs`, :func:`completed_ranks` live in :mod:`mixlab.executors` (re-exported
  here): a bounded wait for a submitted datatrove job, raising a ``RuntimeError`` when tasks failed or time ran out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mixlab.executors import completed_ranks, queued_jobs, wait_for_tasks  # noqa: F401 (re-exported)

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
