"""Run a datatrove pipeline to completion on the local, Slurm or Ray executor.

Contracts:
- :func:`make_executor` builds datatrove's executor by name (also re-exported by :mod:`mixlab.curate.pipeline`).
- :func:`run_pipeline` builds the executor with :func:`make_executor` and returns only
  when every one of the ``tasks`` ranks is marked complete in ``<logging_dir>/completions/`` (datatrove's
  markers, which also make a rerun with the same ``logging_dir`` and ``tasks`` skip finished ranks). The local
  and Ray executors block in ``run()``; Slurm's only submits, so :func:`wait_for_tasks` polls the markers.
  A run that ends with ranks missing raises :class:`PipelineIncomplete` (a :class:`~mixlab.errors.MixlabError`
  naming the log folder to read).
- On Slurm, :func:`run_pipeline` also returns only when none of the run's jobs is left in the queue: datatrove
  chains a stats-merge job (``afterok`` on the array) that would start after the ranks and write into
  ``logging_dir``, which run_pipeline's callers (tokenize, pack) delete as soon as it returns. mixlab reads its
  own outputs, never that merged file, so :func:`cancel_leftover_jobs` cancels it while it pends (else a writer
  racing the deletion, and a failed job in the cluster's records once its log folder is gone) and waits for the
  rest to leave.
- :func:`wait_for_tasks` never waits without a bound: it raises as soon as none of the run's Slurm jobs
  (:func:`queued_jobs`: those writing to ``<logging_dir>/slurm_logs``) is left in the queue while ranks are
  missing (a failed task; the message carries the tail of the newest Slurm log), and after ``timeout_s``.
- Submitting from inside a Slurm job is refused: datatrove's Slurm executor would act as a worker there.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from mixlab.errors import MixlabError

EXECUTORS = ("local", "slurm", "ray")


class PipelineIncomplete(MixlabError, RuntimeError):
    """A datatrove run that ended (or timed out) with some tasks not complete."""


def completed_ranks(logging_dir: str | Path) -> int:
    """How many ranks datatrove has marked complete in ``logging_dir``."""
    folder = Path(logging_dir, "completions")
    return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0


def queued_jobs(logging_dir: str | Path) -> list[str]:
    """``"<job id> <state>"`` of the queued/running jobs of the datatrove run in ``logging_dir`` (its tasks and
    its stats-merge job: recognized by their output path ``<logging_dir>/slurm_logs/...``)."""
    out = subprocess.run(
        ["squeue", "-h", "--Format=JobID:30,State:20,StdOut:4096"], capture_output=True, text=True, timeout=30
    )
    if out.returncode != 0:
        raise PipelineIncomplete(
            f"squeue failed ({out.stderr.strip()}): is Slurm up? pipelines/engines/slurm.sh status"
        )
    logs = os.path.join(os.path.abspath(logging_dir), "slurm_logs") + os.sep
    return [
        " ".join(f[:2])
        for f in (line.split() for line in out.stdout.splitlines())
        if len(f) == 3 and f[2].startswith(logs)
    ]


def _log_tail(logging_dir: str | Path, lines: int = 5) -> str:
    logs = sorted(Path(logging_dir, "slurm_logs").glob("*.out"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return "no Slurm log written"
    tail = logs[-1].read_text(errors="replace").strip().splitlines()[-lines:]
    return f"{logs[-1]}:\n" + "\n".join(tail)


def wait_for_tasks(logging_dir: str | Path, tasks: int, timeout_s: float = 600, poll_s: float = 0.25) -> float:
    """Block until ``tasks`` ranks are complete; returns the seconds waited. See the module contract."""
    start = time.monotonic()
    while True:
        if completed_ranks(logging_dir) >= tasks:
            return time.monotonic() - start
        if not queued_jobs(logging_dir) and completed_ranks(logging_dir) < tasks:
            raise PipelineIncomplete(
                f"the Slurm jobs of {logging_dir} left the queue with {completed_ranks(logging_dir)}/{tasks} ranks "
                f"complete; read the last log and re-run (finished ranks are skipped): {_log_tail(logging_dir)}"
            )
        if time.monotonic() - start > timeout_s:
            raise PipelineIncomplete(
                f"Slurm jobs of {logging_dir}: {completed_ranks(logging_dir)}/{tasks} ranks complete after "
                f"{timeout_s:.0f}s; queued: {queued_jobs(logging_dir)} (`squeue` shows why jobs pend; re-run to "
                "keep waiting, finished ranks are skipped)"
            )
        time.sleep(poll_s)


def cancel_leftover_jobs(logging_dir: str | Path, timeout_s: float = 300, poll_s: float = 0.25) -> list[str]:
    """Cancel the run's pending jobs and wait, at most ``timeout_s``, until none of its jobs is queued; returns the
    cancelled ones. Call it once every rank is complete: what is pending then is datatrove's stats-merge job (a
    running one, or a task still exiting, is left to finish). Still queued after ``timeout_s``: raises
    :class:`PipelineIncomplete`."""
    pending = [job for job in queued_jobs(logging_dir) if job.split()[1] == "PENDING"]
    if pending:
        subprocess.run(["scancel", *(job.split()[0] for job in pending)], capture_output=True, text=True, timeout=30)
    start = time.monotonic()
    while queued := queued_jobs(logging_dir):
        if time.monotonic() - start > timeout_s:
            raise PipelineIncomplete(f"Slurm jobs {queued} of {logging_dir} still queued {timeout_s:.0f}s after every "
                                     "rank completed; `squeue` shows why (finished ranks are skipped on a re-run)")
        time.sleep(poll_s)
    return pending


@contextlib.contextmanager
def quiet_stderr(sink: TextIO) -> Iterator[None]:
    """Send stderr, fd 2 included, to ``sink`` for the block (``MIXLAB_VERBOSE=1``: left alone)."""
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


def make_executor(
    executor: str,
    pipeline: list[Any],
    tasks: int = 1,
    workers: int = 1,
    logging_dir: str | None = None,
    job_name: str = "mixlab-curate",
    **executor_kwargs: Any,
) -> Any:
    """A datatrove executor: ``local`` (LocalPipelineExecutor), ``slurm`` (needs ``partition``; ``time``
    defaults to 24:00:00; ``mem_per_cpu_gb`` may be any positive number: whole GB go to sbatch as ``<n>G``, a
    fraction as ``<MB>M``, rounded up) or ``ray`` (needs the ``ray`` package); executors other than local are
    imported lazily.
    """
    if executor == "local":
        from datatrove.executor import LocalPipelineExecutor

        return LocalPipelineExecutor(
            pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir, **executor_kwargs
        )
    if executor == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        if not executor_kwargs.get("partition"):
            raise ValueError("the slurm executor needs a partition (--partition / partition=...)")
        executor_kwargs.setdefault("time", "24:00:00")
        executor_kwargs.setdefault("job_name", job_name)
        mem = executor_kwargs.get("mem_per_cpu_gb")
        if mem is not None and not float(mem).is_integer():  # sbatch refuses "0.5G": ask in MB
            executor_kwargs["sbatch_args"] = {"mem-per-cpu": f"{math.ceil(float(mem) * 1024)}M",
                                              **(executor_kwargs.get("sbatch_args") or {})}
        elif mem is not None:  # and "1.0G" (the CLI's --mem-per-cpu-gb is a float)
            executor_kwargs["mem_per_cpu_gb"] = int(mem)
        if not any(executor_kwargs.get(k) for k in ("venv_path", "env_command", "condaenv")):
            # jobs must find this interpreter's launch_pickled_pipeline even when its bin is not on PATH
            bin_dir = shlex.quote(os.path.dirname(sys.executable))
            executor_kwargs["env_command"] = f'export PATH={bin_dir}:"$PATH"'
        return SlurmPipelineExecutor(
            pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir, **executor_kwargs
        )
    if executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ImportError("executor='ray' needs the ray package: pip install 'ray[default]'")
        from datatrove.executor.ray import RayPipelineExecutor

        return RayPipelineExecutor(
            pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir, **executor_kwargs
        )
    raise ValueError(f"executor must be 'local', 'slurm' or 'ray', got {executor!r}")


def run_pipeline(
    pipeline: list[Any],
    *,
    executor: str = "local",
    tasks: int = 1,
    workers: int = 1,
    logging_dir: str | Path,
    job_name: str = "mixlab",
    timeout_s: float = 24 * 3600,
    **executor_kwargs: Any,
) -> None:
    """Run ``pipeline`` (datatrove steps) as ``tasks`` ranks on ``executor`` and wait until all are complete.

    ``executor_kwargs`` go to the datatrove executor (Slurm: ``partition`` required, ``time``, ``cpus_per_task``,
    ``mem_per_cpu_gb``, ``venv_path``...; Ray: ``cpus_per_task``, ``mem_per_cpu_gb``...)."""
    if executor not in EXECUTORS:
        raise PipelineIncomplete(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if executor == "slurm" and os.environ.get("SLURM_ARRAY_TASK_ID"):
        raise PipelineIncomplete("refusing to submit Slurm jobs from inside a Slurm array task; run mixlab from a "
                                 "login node (or use --executor local inside the job)")
    logging_dir = str(logging_dir)
    exe = make_executor(executor, pipeline, tasks, workers, logging_dir, job_name=job_name, **executor_kwargs)
    Path(logging_dir).mkdir(parents=True, exist_ok=True)
    # datatrove's loguru lines (job launches, task starts: it re-adds an INFO stderr handler after every in-process
    # task) go to the run's logs, not the console; -v (MIXLAB_VERBOSE) shows them
    with open(Path(logging_dir) / "launcher.log", "a") as sink, quiet_stderr(sink):
        exe.run()
        if executor == "slurm":
            wait_for_tasks(logging_dir, tasks, timeout_s=timeout_s)
            cancel_leftover_jobs(logging_dir)  # the stats-merge job: the caller deletes logging_dir (module contract)
    done = completed_ranks(logging_dir)
    if done < tasks:
        raise PipelineIncomplete(
            f"{job_name}: {done}/{tasks} tasks complete after the {executor} executor returned; read the task "
            f"logs in {logging_dir}/logs and re-run (finished tasks are skipped)"
        )
