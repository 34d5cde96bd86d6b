"""A local, in-process Ray cluster for mixlab's datatrove pipelines (tests, benchmarks, one-machine runs).

Contracts:
- :func:`ray_cluster` starts Ray in this process (``ray.init(num_cpus=..., include_dashboard=False)``) with
  token auth disabled (``RAY_AUTH_MODE=disabled`` unless already set: Ray 2.5x turns it on by default and then
  ``ray status`` and unauthenticated clients fail), yields the cluster's resources, and calls ``ray.shutdown()``
  on exit, which ends the processes it started. It never runs ``ray stop`` (that would end every Ray process
  on the machine). If Ray is already initialized in this process it reuses it and leaves it running.
- :func:`check_request` raises ``ValueError`` when one task's request (``cpus_per_task``,
  ``mem_per_cpu_gb``) exceeds what the cluster has: RayPipelineExecutor would otherwise wait forever for a
  placement that can never happen. Size ``mem_per_cpu_gb`` to the host (e.g. 0.5 on a small machine).
- Needs the ``ray`` extra: ``pip install 'mixlab[ray]'``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

GIB = 1024**3


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ImportError("the Ray engine needs the ray package: pip install 'mixlab[ray]'") from e
    return ray


@contextmanager
def ray_cluster(
    num_cpus: int | None = None, object_store_mb: int = 256, log_to_driver: bool = False
) -> Iterator[dict[str, float]]:
    """Start (or reuse) an in-process Ray cluster; yield ``ray.cluster_resources()``; shut it down if started here.

    ``num_cpus`` defaults to ``os.cpu_count()``; ``object_store_mb`` is kept small because datatrove tasks
    pass only the pickled executor through the object store.
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            object_store_memory=object_store_mb * 1024**2,
            log_to_driver=log_to_driver,
            configure_logging=False,
        )
        started = True
    try:
        yield dict(ray.cluster_resources())
    finally:
        if started:
            ray.shutdown()


def check_request(cpus_per_task: int = 1, mem_per_cpu_gb: float = 2.0) -> None:
    """Raise ValueError if one datatrove task's request cannot be placed on the running Ray cluster."""
    ray = _import_ray()
    if not ray.is_initialized():
        raise RuntimeError("Ray is not running in this process: use `with ray_cluster(): ...` first")
    have = ray.cluster_resources()
    need_mem = mem_per_cpu_gb * cpus_per_task * GIB
    if cpus_per_task > have.get("CPU", 0):
        raise ValueError(
            f"a task asks for {cpus_per_task} CPUs but the Ray cluster has {have.get('CPU', 0):g}: "
            "lower cpus_per_task (--cpus-per-task)"
        )
    if need_mem > have.get("memory", 0):
        raise ValueError(
            f"a task asks for {need_mem / GIB:.2f} GiB ({mem_per_cpu_gb} GB x {cpus_per_task} CPUs) but the Ray "
            f"cluster has {have.get('memory', 0) / GIB:.2f} GiB: lower mem_per_cpu_gb (--mem-per-cpu-gb)"
        )
