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


@pytest.mark.parametrize("gb, sbatch", [(1.0, "1G"), (2, "2G"), (0.5, "512M"), (1.25, "1280M")])
def test_slurm_memory_request_in_whole_units(gb: float, sbatch: str, tmp_path: Path):
    """Invariant: any positive ``mem_per_cpu_gb`` (the CLI's ``--mem-per-cpu-gb`` is a float) reaches sbatch in
    the whole units it accepts: ``1.0`` as ``1G``, a fraction in MB rounded up. Fails if ``1.0G`` or ``0.5G``
    (refused by sbatch: "Invalid --mem-per-cpu specification") is written into the job script."""
    from mixlab.executors import make_executor

    exe = make_executor("slurm", [], tasks=2, logging_dir=str(tmp_path / "logs"), partition="debug",
                        mem_per_cpu_gb=gb)
    assert exe.get_sbatch_args()["mem-per-cpu"] == sbatch


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
    tasks writes the same token shard set, byte for byte, as one local task, and leaves neither its build folder
    nor (Slurm) a job of the run in the queue. Fails if blocks were named by rank, if Slurm's submit-and-return
    were not waited for, if a task's output went missing, or if datatrove's stats-merge job were left to write
    into the removed build folder."""
    from mixlab.executors import queued_jobs
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    if engine == "slurm":
        assert queued_jobs(tmp_path / ".set.build" / "logs") == []


PACK_RECIPE = """
seed: 7
seq_len: 64
sources:
  text: {kind: slimpajama, path: slimpajama/train/chunk*/*.jsonl.zst}
  code: {kind: stack, path: stack/data}
tokenizer: {kind: tiktoken, name: cl100k_base}
model: {preset: tiny}
train: {batch_size: 8}
phases:
  pretrain: {tokens: 262144, mixture: {text: 0.6, code: 0.4}}
  cooldown: {tokens: 65536, mixture: {text: 0.3, code: 0.7}}
"""
PACK_TASKS = 3
SHARD_SEQUENCES = 512  # pretrain: 4,096 sequences in 8 shards; cooldown: 1,024 in 2 (one rank writes none)


def _pack_state(recipe_file: Path, workdir: Path, token_sets: dict[str, Path]) -> Any:
    """A run state at the pack stage: the recipe, its tokenizer and the two token sets (keys named after them)."""
    from mixlab.stages import RunState, Workspace
    from mixlab.tokenizer import named_encoding, tokenizer_info

    state = RunState(load_recipe(recipe_file), Workspace(workdir))
    state.tokenizer = tokenizer_info(named_encoding("cl100k_base"), "tiktoken")
    state.shards = dict(token_sets)
    state.token_keys = {name: f"{name}-set" for name in token_sets}
    return state


@pytest.fixture(scope="module")
def pack_reference(local_runs: dict[str, Path], token_reference: tuple[Path, Path],
                   tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], dict[str, Path]]:
    """(recipe file, token sets, packed phases): a two-phase recipe over the text token set and the code source
    tokenized locally, packed by the local executor (3 ranks in-process) through the pack stage."""
    from mixlab.stages import pack
    from mixlab.tokenize_steps import tokenize_source

    base = tmp_path_factory.mktemp("pack")
    recipe_file = base / "recipe.yaml"
    recipe_file.write_text(PACK_RECIPE)
    code = tokenize_source(local_runs["code"] / "docs", base / "code-set", _encoding_ref(),
                           **{**TOKENIZE_KW, "source": "code"})
    token_sets = {"text": token_reference[1], "code": code.path}
    state = _pack_state(recipe_file, base / "local", token_sets)
    pack(state, executor="local", tasks=PACK_TASKS, shard_sequences=SHARD_SEQUENCES)
    return recipe_file, token_sets, dict(state.packed)


@pytest.mark.parametrize("engine", ["slurm", "ray"])
def test_pack_on_engines_is_byte_identical_to_local(engine: str, request: pytest.FixtureRequest,
                                                   pack_reference: tuple[Path, dict[str, Path], dict[str, Path]],
                                                   tmp_path: Path):
    """Invariant: the pack stage run as 3 Slurm array tasks or 3 Ray tasks writes every phase (two phases, the
    ledger continuing from one to the next) byte for byte as the local executor does: the same folder names
    (keys), the same shard files, the same manifest, whose recorded digests match the files; and it leaves
    nothing behind: no staging folder beside the phases and (Slurm) no job of the run in the queue. Fails if a
    rank's shards were not waited for or went missing, if shard contents depended on the rank or the executor,
    or if a job still queued could write into the staging folder once the phase is renamed."""
    from mixlab.executors import queued_jobs
    from mixlab.pack.dataset import open_phase
    from mixlab.stages import pack
    from mixlab.workspace import digests

    request.getfixturevalue("slurm" if engine == "slurm" else "ray_session")
    recipe_file, token_sets, reference = pack_reference
    # a fractional float, as the CLI's --mem-per-cpu-gb gives: sbatch must be asked in whole units
    kw = {**SLURM_KW, "mem_per_cpu_gb": 0.5} if engine == "slurm" else {"cpus_per_task": 1, "mem_per_cpu_gb": 0.5,
                                                                         "time": WAIT_S}
    state = _pack_state(recipe_file, tmp_path / "ws", token_sets)
    pack(state, executor=engine, tasks=PACK_TASKS, workers=-1, shard_sequences=SHARD_SEQUENCES, timeout_s=WAIT_S,
         **kw)
    assert sorted(state.packed) == sorted(reference)
    for phase, ref in reference.items():
        out = state.packed[phase]
        assert out.name == ref.name, f"{phase}: the key depends on the executor"
        files = sorted(p.name for p in ref.iterdir())
        assert len(files) > 6 and sorted(p.name for p in out.iterdir()) == files
        for name in files:
            assert (out / name).read_bytes() == (ref / name).read_bytes(), f"{phase}/{name} differs from local"
        manifest = open_phase(out, verify=True).manifest
        assert {n: e.model_dump() for n, e in manifest.files.items()} == digests(out, sorted(manifest.files))
    packed = tmp_path / "ws" / "packed"
    assert sorted(p.name for p in packed.iterdir()) == sorted(p.name for p in reference.values())
    if engine == "slurm":
        for ref in reference.values():
            assert queued_jobs(packed / f".{ref.name}.partial" / ".logs" / f"tasks-{PACK_TASKS}") == []
