"""Invariants of the embedded sample corpus (``mixlab/sample/data``), checked on the committed files.

Other modules (readers, curation, demo) are written against this layout and these schemas; the tests here
fail when a rebuild of the corpus breaks the contract. They need neither network nor the shared folder beside the repository.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

import mixlab.sample
from mixlab.builders.commits import COMMIT_FIELDS
from mixlab.builders.convert import truncate_text
from mixlab.builders.stack import STACK_COLUMNS, git_blob_sha1, stack_folder
from mixlab.recipe.languages import TOP25_LANGUAGES
from mixlab.recipe.sources import REDPAJAMA_SETS

DATA = mixlab.sample.DATA
SET_NAMES = set(REDPAJAMA_SETS)
MARKUP = {"html": "HTML", "css": "CSS", "markdown": "Markdown"}
ARROW_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "list<string>": pa.list_(pa.string()),
}


def _zst_lines(path: Path) -> list[str]:
    with path.open("rb") as f:
        data = zstandard.ZstdDecompressor().stream_reader(f).read()
    return data.decode("utf-8").split("\n")[:-1]


def _stack_tables() -> dict[str, pa.Table]:
    return {p.parent.name: pq.read_table(p) for p in sorted((DATA / "stack/data").glob("*/*.parquet"))}


@pytest.fixture(scope="module")
def stack() -> dict[str, pa.Table]:
    return _stack_tables()


def test_slimpajama_records_and_set_names() -> None:
    """Every line of every SlimPajama shard is a JSON object with a non-empty string ``text`` and a known
    ``meta.redpajama_set_name``, and all seven RedPajama set names occur (mixing code needs each of them)."""
    files = sorted((DATA / "slimpajama/train/chunk1").glob("*.jsonl.zst"))
    assert [f.name for f in files] == [f"example_train_{k}.jsonl.zst" for k in range(3)]
    seen: set[str] = set()
    n = 0
    for f in files:
        for line in _zst_lines(f):
            rec = json.loads(line)
            assert isinstance(rec["text"], str) and rec["text"].strip()
            assert len(rec["text"]) <= 20_000
            assert rec["meta"]["redpajama_set_name"] in SET_NAMES
            seen.add(rec["meta"]["redpajama_set_name"])
            n += 1
    assert seen == SET_NAMES
    assert 600 <= n <= 1500


def test_slimpajama_has_prose_with_embedded_code() -> None:
    """Web-text sets (C4/CommonCrawl) hold documentation pages with code blocks, the positives of the
    code-in-text detector, next to pure prose."""
    with_code = 0
    for f in sorted((DATA / "slimpajama/train/chunk1").glob("*.jsonl.zst")):
        for line in _zst_lines(f):
            rec = json.loads(line)
            if (
                rec["meta"]["redpajama_set_name"] in ("RedPajamaC4", "RedPajamaCommonCrawl")
                and ">>> " in rec["text"]
            ):
                with_code += 1
    assert with_code >= 30


def test_stack_schema_and_layout(stack: dict[str, pa.Table]) -> None:
    """Each parquet has exactly The Stack's columns and types, lives in ``data/<folder>`` named after its
    ``lang`` values, and the sample covers >= 12 code languages (>= 3 outside the paper's top 25) plus the
    markup subset."""
    expected = pa.schema([(name, ARROW_TYPES[t]) for name, t in STACK_COLUMNS])
    langs: set[str] = set()
    for folder, table in stack.items():
        assert table.schema.remove_metadata().equals(expected), folder
        assert table.num_rows > 0, folder
        folder_langs = set(table.column("lang").to_pylist())
        assert {stack_folder(lang) for lang in folder_langs} == {folder}
        langs |= folder_langs
    code = langs - set(MARKUP.values())
    assert len(code) >= 12
    assert len(code - set(TOP25_LANGUAGES)) >= 3
    for folder, lang in MARKUP.items():
        assert set(stack[folder].column("lang").to_pylist()) == {lang}
        assert 20 <= stack[folder].num_rows <= 40


def test_stack_row_statistics(stack: dict[str, pa.Table]) -> None:
    """``hexsha`` is the git blob sha1 of ``content``; size, line-length and alphanumeric statistics are
    those of the content (computed as The Stack does), and no file exceeds 30,000 characters."""
    for folder, table in stack.items():
        for row in table.to_pylist():
            content = row["content"]
            data = content.encode("utf-8")
            assert row["hexsha"] == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(), folder
            assert row["size"] == len(data)
            lengths = [len(line) for line in content.splitlines()]
            assert row["max_line_length"] == max(lengths)
            assert row["avg_line_length"] == pytest.approx(sum(lengths) / len(lengths))
            assert row["alphanum_fraction"] == pytest.approx(sum(c.isalnum() for c in content) / len(content))
            assert len(content) <= 30_000
            assert row["licenses"] and row["max_stars_repo_name"] and row["max_stars_repo_path"]


def test_stack_has_files_quality_filters_must_drop(stack: dict[str, pa.Table]) -> None:
    """The sample keeps real minified JS/CSS, auto-generated and data-like files, so the code-quality
    filters are exercised on real positives."""
    rows = [r for t in stack.values() for r in t.to_pylist()]
    minified = {r["lang"] for r in rows if r["max_line_length"] > 1000}
    assert {"JavaScript", "CSS"} <= minified
    generated = [
        r
        for r in rows
        if re.search(
            r"DO NOT EDIT|generated AUTOMATICALLY|autogenerated|automatically generated",
            r["content"][:600],
            re.I,
        )
    ]
    assert {"Go", "Python", "C", "Java"} <= {r["lang"] for r in generated}
    low_alnum = [r for r in rows if r["alphanum_fraction"] < 0.45 and r["lang"] in {"Go", "Ruby"}]
    assert low_alnum  # numeric tables


def test_notebooks_are_nbformat4() -> None:
    """Every notebook except ``broken_truncated.ipynb`` is nbformat-4 JSON with typed cells; the broken one is
    a real notebook cut mid-JSON (the reader's bad-input case)."""
    paths = sorted((DATA / "notebooks").glob("*.ipynb"))
    good = [p for p in paths if p.name != "broken_truncated.ipynb"]
    assert 10 <= len(good) <= 20
    for p in good:
        nb = json.loads(p.read_text(encoding="utf-8"))
        assert nb["nbformat"] == 4 and isinstance(nb["cells"], list) and nb["cells"]
        for cell in nb["cells"]:
            assert cell["cell_type"] in {"code", "markdown", "raw"}
            assert isinstance(cell["source"], (str, list))
            if cell["cell_type"] == "code":
                assert isinstance(cell["outputs"], list)
    broken = (DATA / "notebooks/broken_truncated.ipynb").read_text(encoding="utf-8")
    assert broken.lstrip().startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)


def test_commits_have_commitpack_fields() -> None:
    """Each commit row has exactly CommitPack's fields, string-typed, with a 40-hex ``commit`` and a real
    change (old != new); several languages occur."""
    rows = [json.loads(line) for line in _zst_lines(DATA / "commits/commits.jsonl.zst")]
    assert 40 <= len(rows) <= 150
    for r in rows:
        assert tuple(r) == COMMIT_FIELDS
        assert all(isinstance(v, str) for v in r.values())
        assert re.fullmatch(r"[0-9a-f]{40}", r["commit"])
        assert r["old_contents"] != r["new_contents"]
        assert r["message"].strip() and r["subject"] == r["message"].split("\n", 1)[0]
    assert len({r["lang"] for r in rows}) >= 3


def test_posts_xml_threads() -> None:
    """``Posts.xml`` parses; questions carry Title/Tags; every answer's ParentId is a question and every
    AcceptedAnswerId is one of that question's answers."""
    root = ET.parse(DATA / "stackexchange/Posts.xml").getroot()
    assert root.tag == "posts"
    questions = {r.get("Id"): r for r in root if r.get("PostTypeId") == "1"}
    answers = [r for r in root if r.get("PostTypeId") == "2"]
    assert 100 <= len(questions) <= 250
    assert all(q.get("Title") and q.get("Tags", "").startswith("<") for q in questions.values())
    parent_of = {}
    for a in answers:
        assert a.get("ParentId") in questions
        assert a.get("Body")
        parent_of[a.get("Id")] = a.get("ParentId")
    for qid, q in questions.items():
        assert parent_of[q.get("AcceptedAnswerId")] == qid
        assert int(q.get("AnswerCount")) == sum(p == qid for p in parent_of.values())


def test_corpus_size_budget() -> None:
    """The whole sample stays within 4 MB on disk (it ships inside the package)."""
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total <= 4_000_000


def test_helpers() -> None:
    """Pure helpers of the builder: git blob ids and line-boundary truncation."""
    assert git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob
    assert truncate_text("ab\ncd\nef", 7) == "ab\ncd\n"
    assert truncate_text("x" * 10 + "\n" + "y" * 100, 50) == ("x" * 10 + "\n" + "y" * 100)[:50]
