"""mixlab's curation on real engines: the same pipeline on datatrove's local, Slurm and Ray executors.

These tests start real daemons (a one-node Slurm cluster through ``pipelines/engines/slurm.sh``, installing
``slurm-wlm``/``munge`` with apt-get when missing; an in-process Ray cluster), so they are marked ``engines`` and
skipped by the default suite: run them with ``python -m pytest -q -m engines tests/test_engines.py`` or with
``MIXLAB_ENGINES=1``. Slurm tests skip (with the reason) where the machine cannot host Slurm (not root, nothing
to install it with); Ray tests skip where ``ray`` is not installed (``pip install 'mixlab[ray]'``).

Reference: ``recipes/base.yaml``'s ``text`` (slimpajama) and ``code`` (stack) sources on the embedded sample,
2 tasks, run with the local executor. Every wait is bounded.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import zstandard

from mixlab.curate.pipeline import run_curation
from mixlab.curate.stats import curation_stats
from mixlab.recipe import load_recipe

pytestmark = pytest.mark.engines

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("text", "code")  # slimpajama and stack: a text and a code pipeline
TASKS = 2
WAIT_S = 300


def _curate(name: str, out: Path, executor: str, workers: int = 1, **kw: Any) -> dict[str, Any]:
    recipe = load_recipe(ROOT / "recipes" / "base.yaml")
    return run_curation(
        recipe.sources[name].filters,
        recipe.resolve_path(name),
        str(out / "docs"),
        executor=executor,
        tasks=TASKS,
        workers=workers,
        logging_dir=str(out / "logs"),
        **kw,
    )


def _kind(name: str) -> str:
    return load_recipe(ROOT / "recipes" / "base.yaml").sources[name].kind


def _documents(folder: Path) -> dict[str, bytes]:
    """Output file name -> its decompressed bytes (compressed bytes may differ only by zstd framing)."""
    dctx = zstandard.ZstdDecompressor()
    return {p.name: dctx.stream_reader(p.open("rb")).read() for p in sorted(folder.glob("*.jsonl.zst"))}


def _merged_stats(out: Path, name: str) -> dict[str, Any]:
    return curation_stats(str(out / "logs"), _kind(name), TASKS).check().model_dump()


def _assert_same_as_local(run: Path, local: Path, name: str) -> None:
    docs, ref = _documents(run / "docs"), _documents(local / "docs")
    assert sorted(docs) == sorted(ref) == [f"{r:05d}.jsonl.zst" for r in range(TASKS)]
    for file in ref:
        assert docs[file] == ref[file], f"{name}: {file} differs from the local executor's"
    assert sum(len(d) for d in ref.values()) > 0, (
        f"{name}: the reference kept nothing, the test proves nothing"
    )
    assert _merged_stats(run, name) == _merged_stats(local, name)


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The reference: each source curated by the local executor."""
    base = tmp_path_factory.mktemp("local")
    runs = {}
    for name in SOURCES:
        result = _curate(name, base / name, "local")
        assert result["complete"]
        runs[name] = base / name
    return runs


@pytest.fixture(scope="module")
def slurm() -> Any:
    """A running one-node Slurm cluster (started here, stopped after the module if it was not up before)."""
    from pipelines.engines.slurm_cluster import can_host_slurm, slurm_cluster

    why_not = can_host_slurm()
    if why_not:
        pytest.skip(why_not)
    with slurm_cluster() as state_dir:
        yield state_dir


@pytest.fixture(scope="module")
def ray_session() -> Any:
    """An in-process 2-CPU Ray cluster, shut down after the module."""
    pytest.importorskip("ray", reason="pip install 'mixlab[ray]'")
    from pipelines.engines.ray_cluster import ray_cluster

    with ray_cluster(num_cpus=2) as resources:
        yield resources


SLURM_KW = {"partition": "debug", "time": "00:10:00", "cpus_per_task": 1, "mem_per_cpu_gb": 1}


@pytest.mark.parametrize("name", SOURCES)
def test_slurm_output_identical_to_local(name: str, slurm: str, local_runs: dict[str, Path], tmp_path: Path):
    """Invariant: a Slurm array job (one job per task, run by slurmd) writes byte-identical documents, file by
    file, and the same merged statistics as the local executor. Fails if a task fails to launch (PATH/venv in
    the job), if sharding or output naming differs between executors, or if a rank never completes."""
    out = tmp_path / name
    # sbatch returns at once; wait=True then waits for every chained stage (whole-source dedup runs 3)
    done = _curate(name, out, "slurm", workers=-1, wait=True, **SLURM_KW)
    assert done["complete"]
    _assert_same_as_local(out, local_runs[name], name)


def test_slurm_failed_task_is_reported_not_awaited(slurm: str, tmp_path: Path):
    """Invariant: when Slurm tasks fail, the wait ends with an error naming the job and the log, instead of
    waiting forever, and datatrove's dependent stats-merge job does not stay pending (it needs
    ``DependencyParameters=kill_invalid_depend``). Fails if either hangs past the bounded wait."""
    from pipelines.engines.slurm_cluster import queued_jobs, wait_for_tasks

    out = tmp_path / "broken"
    _curate("code", out, "slurm", workers=-1, env_command="exit 3", **SLURM_KW)
    with pytest.raises(RuntimeError, match=r"0/2 ranks complete"):
        wait_for_tasks(str(out / "logs"), TASKS, timeout_s=WAIT_S)
    assert queued_jobs(str(out / "logs")) == []


def test_slurm_start_is_idempotent(slurm: str):
    """Invariant: ``slurm.sh start`` on a running cluster leaves it running and says so (scripts and tests may
    call it unconditionally). Fails if a second start restarts or breaks the daemons."""
    script = ROOT / "pipelines" / "engines" / "slurm.sh"
    again = subprocess.run(["bash", str(script), "start", slurm], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "already running" in again.stdout
    status = subprocess.run(
        ["bash", str(script), "status", slurm], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0 and "idle" in status.stdout


@pytest.mark.parametrize("name", SOURCES)
def test_ray_output_identical_to_local(
    name: str, ray_session: dict, local_runs: dict[str, Path], tmp_path: Path
):
    """Invariant: RayPipelineExecutor on a real (local) Ray cluster writes byte-identical documents and the same
    merged statistics as the local executor. Fails if Ray workers cannot import mixlab's steps, if a task is
    lost, or if the request cannot be placed (then it would hang: the request is checked first)."""
    from pipelines.engines.ray_cluster import check_request

    check_request(cpus_per_task=1, mem_per_cpu_gb=0.5)
    out = tmp_path / name
    result = _curate(name, out, "ray", workers=-1, cpus_per_task=1, mem_per_cpu_gb=0.5, time=WAIT_S)
    assert result["complete"]
    _assert_same_as_local(out, local_runs[name], name)


def test_ray_impossible_request_is_refused(ray_session: dict):
    """Invariant: a per-task request larger than the Ray cluster is refused with an error saying which option to
    lower, instead of RayPipelineExecutor waiting forever for a placement. Fails if the check lets it through."""
    from pipelines.engines.ray_cluster import check_request

    with pytest.raises(ValueError, match="mem_per_cpu_gb"):
        check_request(cpus_per_task=1, mem_per_cpu_gb=ray_session["memory"] / 1024**3 + 1)
    with pytest.raises(ValueError, match="cpus_per_task"):
        check_request(cpus_per_task=int(ray_session["CPU"]) + 1, mem_per_cpu_gb=0.01)


@pytest.fixture(scope="module")
def token_reference(local_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The text source's curated documents split in 3 files, tokenized by the local executor in one task."""
    from mixlab.tokenize_steps import tokenize_source

    docs = tmp_path_factory.mktemp("tok") / "docs"
    docs.mkdir()
    lines = _documents(local_runs["text"] / "docs")
    records = [line for f in sorted(lines) for line in lines[f].splitlines() if line.strip()]
    for i in range(3):
        (docs / f"{i:05d}.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(records[i::3])))
    ref = tokenize_source(docs, docs.parent / "local", _encoding_ref(), **TOKENIZE_KW)
    return docs, ref.path


def _encoding_ref() -> Any:
    from mixlab.shards import EncodingRef
    from mixlab.tokenizer import named_encoding, tokenizer_info

    return EncodingRef(tokenizer_info(named_encoding("cl100k_base"), "tiktoken"))


TOKENIZE_KW = {"source": "text", "seed": 0, "heldout_fraction": 0.1, "block_tokens": 4096}


@pytest.mark.parametrize("engine", ["slurm", "ray"])
def test_tokenize_on_engines_is_byte_identical_to_local(engine: str, request: pytest.FixtureRequest,
                                                        token_reference: tuple[Path, Path], tmp_path: Path):
    """Invariant: the tokenize pipeline run as 2 Slurm array tasks (waited for by ``run_pipeline``) or 2 Ray
    tasks writes the same token shard set, byte for byte, as one local task. Fails if blocks were named by rank,
    if Slurm's submit-and-return were not waited for, or if a task's output went missing."""
    from mixlab.tokenize_steps import tokenize_source

    request.getfixturevalue("slurm" if engine == "slurm" else "ray_session")
    docs, reference = token_reference
    kw = SLURM_KW if engine == "slurm" else {"cpus_per_task": 1, "mem_per_cpu_gb": 0.5, "time": WAIT_S}
    out = tokenize_source(docs, tmp_path / "set", _encoding_ref(), executor=engine, tasks=2, workers=-1,
                          timeout_s=WAIT_S, **TOKENIZE_KW, **kw)
    files = sorted(p.name for p in reference.iterdir())
    assert len(files) > 4 and sorted(p.name for p in out.path.iterdir()) == files
    for name in files:
        assert (out.path / name).read_bytes() == (reference / name).read_bytes(), name
