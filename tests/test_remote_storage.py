"""Curation on ``s3://`` paths against a real S3 API served on localhost (moto's server, over HTTP).

Invariant: where the documents live does not change what curation does. The embedded sample's SlimPajama files,
uploaded to a bucket, curate to the same documents (text, id, metadata) and the same statistics as from local
files, whether the input is given as a folder or a glob, and whether the output (and its logs) go to a local
folder or to the bucket. The endpoint reaches s3fs the standard way (``AWS_ENDPOINT_URL``, dummy credentials),
so nothing in mixlab is special-cased for the test.

Needs ``s3fs`` (the ``s3`` extra) and ``moto[server]``; both are in the ``dev`` extra. Skipped, saying so,
where either is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard

s3fs = pytest.importorskip("s3fs", reason="s3:// paths need s3fs: pip install -e '.[dev]' (or 'mixlab[s3]')")
moto_server = pytest.importorskip(
    "moto.server", reason="the local S3 API needs moto's server: pip install -e '.[dev]' (or 'moto[server]')"
)

from mixlab.curate.pipeline import run_curation  # noqa: E402
from mixlab.recipe.sources import SlimPajamaOptions  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "mixlab" / "sample" / "data" / "slimpajama"
BUCKET = "mixlab-remote-test"
STAT_KEYS = ("kind", "tasks", "docs_in", "docs_kept", "dropped_by_reason", "bytes_in", "bytes_kept", "notes")


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on a free localhost port; AWS_* variables point botocore/s3fs at it for the module."""
    mp = pytest.MonkeyPatch()
    empty = tmp_path_factory.mktemp("aws")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(empty / "config"),  # never read a developer's real AWS profile
        "AWS_SHARED_CREDENTIALS_FILE": str(empty / "credentials"),
    }.items():
        mp.setenv(name, value)
    mp.delenv("AWS_PROFILE", raising=False)
    mp.delenv("AWS_SESSION_TOKEN", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()  # a cached filesystem could hold another endpoint
    try:
        yield endpoint
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()
        mp.undo()


@pytest.fixture(scope="module")
def s3_sample(s3_endpoint: str) -> str:
    """The embedded SlimPajama sample uploaded to ``s3://<bucket>/slimpajama/``; returns that URL."""
    fs = s3fs.S3FileSystem()
    fs.mkdir(BUCKET)
    files = sorted(SAMPLE.rglob("*.jsonl.zst"))
    assert files, f"the embedded sample is committed but {SAMPLE} holds no .jsonl.zst files"
    for path in files:
        fs.put_file(str(path), f"{BUCKET}/slimpajama/{path.relative_to(SAMPLE).as_posix()}")
    assert len(fs.find(f"{BUCKET}/slimpajama")) == len(files)
    return f"s3://{BUCKET}/slimpajama"


@pytest.fixture(scope="module")
def local_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Curation of the local sample files (the reference): stats and documents."""
    out = tmp_path_factory.mktemp("local") / "out"
    res = run_curation(SlimPajamaOptions(), str(SAMPLE / "train"), str(out), tasks=2)
    assert res["complete"] and res["docs_kept"] > 0
    return res, read_documents(str(out))


def read_documents(folder: str) -> list[dict[str, Any]]:
    """Every record of the curated ``*.jsonl.zst`` files in ``folder`` (local path or URL), in file order."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(folder)
    docs = []
    for name in sorted(fs.glob(f"{path.rstrip('/')}/*.jsonl.zst")):
        with fs.open(name, "rb") as f:
            data = zstandard.ZstdDecompressor().stream_reader(f).read()
        docs += [orjson.loads(line) for line in data.splitlines() if line]
    return docs


def stats_of(res: dict[str, Any]) -> dict[str, Any]:
    return {k: res[k] for k in STAT_KEYS}


@pytest.mark.parametrize("form", ["folder", "glob"])
def test_s3_input_curates_like_local_files(form, s3_sample, local_result, tmp_path):
    """An s3:// input (folder or glob) yields the very documents and statistics of the same files read locally."""
    url = f"{s3_sample}/train" if form == "folder" else f"{s3_sample}/train/chunk*/*.jsonl.zst"
    res = run_curation(SlimPajamaOptions(), url, str(tmp_path / "out"), tasks=2)
    ref_stats, ref_docs = local_result
    assert res["complete"]
    assert stats_of(res) == stats_of(ref_stats)
    assert read_documents(str(tmp_path / "out")) == ref_docs


def test_s3_output_and_logs_match_local(s3_sample, local_result):
    """With input, output and logs all on s3, the files written to the bucket hold the local run's documents and
    the statistics (read back from the bucket's logging dir) equal the local run's."""
    out = f"s3://{BUCKET}/curated/text"
    res = run_curation(SlimPajamaOptions(), f"{s3_sample}/train", out, tasks=2)
    ref_stats, ref_docs = local_result
    assert res["complete"] and res["logging_dir"] == f"{out}_logs"
    assert stats_of(res) == stats_of(ref_stats)
    fs = s3fs.S3FileSystem()
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{BUCKET}/curated/text")) == [
        "00000.jsonl.zst",
        "00001.jsonl.zst",
    ]
    assert fs.exists(f"{BUCKET}/curated/text_logs/completions/00001")
    assert read_documents(out) == ref_docs
