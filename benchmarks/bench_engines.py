"""Wall time of one curation on datatrove's local, Slurm and Ray executors, on the same scaled input.

Builds ``--factor`` varied copies of the embedded sample (:mod:`mixlab.builders.scale`), then curates
``recipes/base.yaml``'s ``text`` (slimpajama) and ``code`` (stack) sources with ``--tasks`` tasks on:

- ``local``: LocalPipelineExecutor, ``workers`` = the machine's cores;
- ``slurm``: the one-node cluster of ``pipelines/engines/slurm.sh`` (started here if it is not up, stopped after),
  an array job of 1-CPU tasks; wall = ``sbatch`` until every rank's completion marker exists;
- ``ray``: an in-process Ray cluster (``pipelines/engines/ray_cluster.py``), 1-CPU tasks.

Every engine is started first (its start time on its own line), then the runs are interleaved (for each
repeat and source: local, slurm, ray), so that changes in the machine's load reach every engine alike; the
``load`` column is the 1-minute load average after the run. Wall seconds exclude starting the engine. Every run's decompressed
output files and merged statistics are compared with the local run's (``same`` column). On one machine this
measures each engine's overhead, not a speed-up: all three share the same cores.

Run: ``python benchmarks/bench_engines.py [--factor 8] [--tasks 4] [--repeat 1] [--engines local,slurm,ray]``
(needs root for Slurm and ``pip install 'mixlab[ray]'`` for Ray; an engine that cannot start is reported and
skipped).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import zstandard  # noqa: E402

from mixlab.curate.pipeline import run_curation  # noqa: E402
from mixlab.curate.stats import curation_stats  # noqa: E402
from mixlab.recipe import load_recipe  # noqa: E402

SOURCES = ("text", "code")
SCALE_MODULES = ("mixlab.builders.scale", "mixlab.sample.scale")  # the scaler may move to mixlab/builders


def scale_module() -> str:
    for name in SCALE_MODULES:
        try:
            importlib.import_module(name)
            return name
        except ImportError:
            continue
    raise SystemExit(f"no sample scaler found (tried {', '.join(SCALE_MODULES)})")


def documents(folder: Path) -> dict[str, bytes]:
    dctx = zstandard.ZstdDecompressor()
    return {p.name: dctx.stream_reader(p.open("rb")).read() for p in sorted(folder.glob("*.jsonl.zst"))}


def engine_context(engine: str) -> Callable[[], AbstractContextManager[Any]]:
    if engine == "slurm":
        from pipelines.engines.slurm_cluster import slurm_cluster

        return slurm_cluster
    if engine == "ray":
        from pipelines.engines.ray_cluster import ray_cluster

        return lambda: ray_cluster(num_cpus=os.cpu_count())
    return nullcontext


def curate(engine: str, recipe: Any, name: str, out: Path, tasks: int) -> tuple[float, dict[str, Any]]:
    """One run; returns (wall seconds, merged stats)."""
    src = recipe.sources[name]
    kw: dict[str, Any] = {}
    if engine == "local":
        kw["workers"] = os.cpu_count() or 1
    elif engine == "slurm":
        kw = {
            "workers": -1,
            "partition": "debug",
            "time": "00:30:00",
            "cpus_per_task": 1,
            "mem_per_cpu_gb": 1,
        }
    else:
        kw = {"workers": -1, "cpus_per_task": 1, "mem_per_cpu_gb": 0.5, "time": 1800}
    logs = out / "logs"
    start = time.perf_counter()
    stats = run_curation(  # wait=True: on Slurm, returns when every stage (dedup chains several) has finished
        src.filters,
        recipe.resolve_path(name),
        str(out / "docs"),
        executor=engine,
        tasks=tasks,
        logging_dir=str(logs),
        wait=True,
        **kw,
    )
    wall = time.perf_counter() - start
    if not stats["complete"]:
        raise RuntimeError(f"{engine}: curation of {name} did not complete; see {logs}")
    return wall, curation_stats(str(logs), src.kind, tasks).check().model_dump()


def bench(args: argparse.Namespace, work: Path) -> Iterator[dict[str, Any]]:
    data = work / "data"
    if not (data / "stack").exists():
        subprocess.run(
            [sys.executable, "-m", scale_module(), "--factor", str(args.factor), "--out", str(data)],
            check=True,
            timeout=1800,
        )
    recipe = load_recipe(ROOT / "recipes" / "base.yaml", [f"data_root={data}"])
    reference: dict[str, tuple[dict[str, bytes], dict[str, Any]]] = {}
    with ExitStack() as stack:
        engines = []
        for engine in args.engines.split(","):
            t0 = time.perf_counter()
            try:
                stack.enter_context(engine_context(engine)())
            except Exception as e:  # an engine that cannot start here is reported, the others still run
                print(f"{engine}: cannot start ({type(e).__name__}: {e}); skipped", file=sys.stderr)
                continue
            engines.append(engine)
            yield {"engine": engine, "source": "(start)", "wall_s": time.perf_counter() - t0}
        # engines interleaved per source and repeat, so that changes in the machine's load hit all of them
        for rep in range(args.repeat):
            for name in SOURCES:
                for engine in engines:
                    out = work / f"{engine}-{name}-{rep}"
                    shutil.rmtree(out, ignore_errors=True)
                    wall, stats = curate(engine, recipe, name, out, args.tasks)
                    docs = documents(out / "docs")
                    reference.setdefault(name, (docs, stats))
                    yield {
                        "engine": engine,
                        "source": name,
                        "rep": rep,
                        "tasks": args.tasks,
                        "wall_s": wall,
                        "mb_in": stats["bytes_in"] / 1e6,
                        "docs_in": stats["docs_in"],
                        "docs_kept": stats["docs_kept"],
                        "same_as_first": reference[name] == (docs, stats),
                        "load1": os.getloadavg()[0],
                    }
                    shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--factor", type=int, default=8, help="copies of the embedded sample")
    ap.add_argument("--tasks", type=int, default=4, help="datatrove tasks per run")
    ap.add_argument("--repeat", type=int, default=1, help="runs per engine and source")
    ap.add_argument(
        "--engines", default="local,slurm,ray", help="comma-separated, the first is the reference"
    )
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="mixlab-bench-engines-"))
    rows = []
    try:
        print(
            f"| engine | source | tasks | MB in | docs in -> kept | wall s | MB/s | same as {args.engines.split(',')[0]} | load |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for row in bench(args, work):
            rows.append(row)
            if "mb_in" in row:
                print(
                    f"| {row['engine']} | {row['source']} | {row['tasks']} | {row['mb_in']:.1f} | "
                    f"{row['docs_in']:,} -> {row['docs_kept']:,} | {row['wall_s']:.2f} | "
                    f"{row['mb_in'] / row['wall_s']:.1f} | {'yes' if row['same_as_first'] else 'NO'} | "
                    f"{row['load1']:.1f} |",
                    flush=True,
                )
            else:
                print(f"| {row['engine']} | {row['source']} | | | | {row['wall_s']:.2f} | | | |", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
