"""Source readers: formats, adapters and the bad-input policy (every record kept or counted, never a crash).

All inputs are generated in tmp_path; nothing is downloaded and nothing outside the repository is read.
"""

from __future__ import annotations

import random
import xml.sax.saxutils as su
from pathlib import Path

import orjson
import pytest
import zstandard

from mixlab.sources.base import Skip, iter_lines, split_input_path
from mixlab.sources.commits import CommitReader, commit_to_text
from mixlab.sources.notebooks import NotebookReader, notebook_to_text
from mixlab.sources.slimpajama import SlimPajamaReader
from mixlab.sources.stack import StackReader
from mixlab.sources.stackexchange import StackExchangeReader, html_to_text, parse_tags

SETS = ["RedPajamaC4", "RedPajamaWikipedia", "RedPajamaGithub"]


def sp_line(i: int, set_name: str = "RedPajamaC4") -> bytes:
    text = f"document {i}: " + " ".join(f"word{(i * 7 + k) % 97}" for k in range(40))
    return orjson.dumps({"text": text, "meta": {"redpajama_set_name": set_name}}) + b"\n"


def write_zst(path: Path, *frames: bytes) -> Path:
    """Each argument becomes one zstd frame (with checksum), concatenated like a multi-frame .zst file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
    path.write_bytes(b"".join(cctx.compress(f) for f in frames))
    return path


def read_all(reader) -> tuple[list, dict[str, int]]:
    docs = list(reader.run())
    stats = {k: int(v.total) for k, v in reader.stats.stats.items()}
    return docs, stats


def dropped(stats: dict[str, int]) -> dict[str, int]:
    return {k[len("dropped_") :]: v for k, v in stats.items() if k.startswith("dropped_")}


def assert_accounted(docs: list, stats: dict[str, int]) -> None:
    assert stats["records_in"] == len(docs) + sum(dropped(stats).values())


# ---------------------------------------------------------------- paths and line streams


def test_split_input_path():
    """A glob path splits into the folder datatrove shards and the pattern below it; plain paths stay whole."""
    assert split_input_path("hf://datasets/cerebras/SlimPajama-627B/train/chunk*/*.jsonl.zst") == (
        "hf://datasets/cerebras/SlimPajama-627B/train",
        "chunk*/*.jsonl.zst",
    )
    assert split_input_path("/data/sp/train/") == ("/data/sp/train", None)
    assert split_input_path("/data/stack/*/train-*.parquet") == ("/data/stack", "*/train-*.parquet")
    assert split_input_path("rel/*.ipynb") == ("rel", "*.ipynb")


def test_iter_lines_is_independent_of_chunking():
    """Lines are the same whatever the chunk boundaries; an over-long line is skipped, never joined."""
    rng = random.Random(0)
    lines = [bytes(rng.choice(b"abc xyz") for _ in range(rng.randint(1, 50))) for _ in range(200)]
    lines[57] = b"L" * 5000
    data = b"\n".join(lines) + b"\n"
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(data)), 40))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        out = list(iter_lines(chunks, max_line_bytes=1000))
        assert out[57] == Skip("too_large", 5000)
        assert [x for x in out if not isinstance(x, Skip)] == [x for x in lines if x != lines[57] and x]


# ---------------------------------------------------------------- SlimPajama / JSONL


def test_slimpajama_reader_keeps_set_name_and_ids(tmp_path):
    """Every record of every file becomes one Document with its redpajama_set_name and a stable id."""
    for k in range(3):
        write_zst(
            tmp_path / "chunk1" / f"example_train_{k}.jsonl.zst",
            b"".join(sp_line(i, SETS[i % 3]) for i in range(10)),
        )
    docs, stats = read_all(SlimPajamaReader(str(tmp_path)))
    assert len(docs) == 30 and stats["records_in"] == 30 and stats["input_files"] == 3
    assert {d.metadata["redpajama_set_name"] for d in docs} == set(SETS)
    assert all(d.metadata["source_kind"] == "slimpajama" for d in docs)
    assert len({d.id for d in docs}) == 30
    glob_docs, _ = read_all(SlimPajamaReader(str(tmp_path) + "/chunk*/*_1.jsonl.zst"))
    assert len(glob_docs) == 10


def test_corrupt_zstd_frame_in_the_middle(tmp_path):
    """A corrupt frame mid-file: lines before it are kept, the damage is counted, reading resumes at the next frame."""
    f1 = b"".join(sp_line(i) for i in range(50))
    f2 = b"".join(sp_line(i) for i in range(50, 100))
    f3 = b"".join(sp_line(i) for i in range(100, 150))
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
    bad = bytearray(cctx.compress(f2))
    bad[20:60] = b"\xab" * 40  # garble the first block of the middle frame
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(cctx.compress(f1) + bytes(bad) + cctx.compress(f3))
    docs, stats = read_all(SlimPajamaReader(str(path)))
    texts = {d.text for d in docs}
    assert all(orjson.loads(sp_line(i))["text"] in texts for i in range(50))  # good lines before: kept
    assert all(orjson.loads(sp_line(i))["text"] in texts for i in range(100, 150))  # resynced after
    assert dropped(stats).get("corrupt_zstd", 0) >= 1
    assert_accounted(docs, stats)


def test_truncated_zstd_file_is_counted(tmp_path):
    """A file cut inside its last frame keeps what decodes and counts the truncation; no exception."""
    rng = random.Random(1)
    lines = [
        orjson.dumps({"text": " ".join(str(rng.random()) for _ in range(50))}) + b"\n" for _ in range(2000)
    ]
    data = zstandard.ZstdCompressor(level=3).compress(b"".join(lines))  # ~2 MB: many 128 KB blocks
    path = tmp_path / "t.jsonl.zst"
    path.write_bytes(data[: len(data) // 2])
    docs, stats = read_all(SlimPajamaReader(str(path)))
    assert 0 < len(docs) < 2000
    assert dropped(stats)["corrupt_zstd"] == 1
    assert_accounted(docs, stats)


def test_bad_jsonl_records_are_counted_by_reason(tmp_path):
    """Malformed JSON, non-UTF-8 bytes, missing/empty/non-string text and non-objects: each its own reason."""
    lines = [
        sp_line(0),
        b'{"text": "unterminated\n',
        b'{"text": "caf\xe9 latin-1", "meta": {}}\n',
        b'{"meta": {"redpajama_set_name": "RedPajamaC4"}}\n',
        b'{"text": "   \\n  ", "meta": {}}\n',
        b'{"text": 42}\n',
        b"[1, 2, 3]\n",
        b"\n",
        sp_line(1),
    ]
    docs, stats = read_all(SlimPajamaReader(str(write_zst(tmp_path / "b.jsonl.zst", b"".join(lines)))))
    assert len(docs) == 2
    assert dropped(stats) == {
        "malformed_json": 1,
        "non_utf8": 1,
        "missing_text": 1,
        "empty": 1,
        "bad_text_type": 1,
        "not_an_object": 1,
    }
    assert_accounted(docs, stats)


def test_huge_document_is_skipped_without_parsing(tmp_path):
    """A 50 MB record is dropped as too_large; its neighbours are kept."""
    huge = b'{"text": "' + b"x" * (50 << 20) + b'"}\n'
    path = write_zst(tmp_path / "h.jsonl.zst", sp_line(0) + huge + sp_line(1))
    docs, stats = read_all(SlimPajamaReader(str(path), max_doc_bytes=16 << 20))
    assert len(docs) == 2 and dropped(stats) == {"too_large": 1}
    assert_accounted(docs, stats)


def test_plain_and_gzip_jsonl(tmp_path):
    """Plain and gzip JSONL go through the same accounting; a truncated gzip is counted, not raised."""
    import gzip

    (tmp_path / "a.jsonl").write_bytes(sp_line(0) + sp_line(1))
    gz = gzip.compress(b"".join(sp_line(i) for i in range(300)))
    (tmp_path / "b.jsonl.gz").write_bytes(gz[: len(gz) // 2])
    docs, stats = read_all(SlimPajamaReader(str(tmp_path)))
    assert len(docs) >= 2 and dropped(stats).get("corrupt_gzip") == 1
    assert_accounted(docs, stats)


def test_no_matching_files_is_a_clear_error(tmp_path):
    """An input that matches nothing raises FileNotFoundError naming the path, instead of silently reading 0 docs."""
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(FileNotFoundError, match="no input files"):
        list(SlimPajamaReader(str(tmp_path)).run())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(SlimPajamaReader(str(tmp_path / "missing")).run())


# ---------------------------------------------------------------- The Stack parquet


def write_stack(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    contents = pa.array([r.get("content") for r in rows], type=pa.binary()).view(pa.string())
    table = pa.table(
        {
            "content": contents,
            "lang": [r.get("lang", "Python") for r in rows],
            "ext": [r.get("ext", "py") for r in rows],
            "hexsha": [f"{i:040x}" for i in range(len(rows))],
            "max_stars_repo_name": ["org/repo"] * len(rows),
            "max_stars_repo_path": [f"src/f{i}.py" for i in range(len(rows))],
            "licenses": [["MIT"]] * len(rows),
        }
    )
    pq.write_table(table, path)
    return path


def test_stack_reader_metadata_and_bad_rows(tmp_path):
    """Stack rows keep lang/ext/repo/path/hexsha; None, empty and non-UTF-8 contents are counted per row."""
    rows = [
        {"content": b"def f():\n    return 1\n"},
        {"content": None},
        {"content": b""},
        {"content": b"\xff\xfe broken"},
        {"content": b"package main\n", "lang": "Go", "ext": "go"},
    ]
    write_stack(tmp_path / "data" / "python" / "train-00000-of-00001.parquet", rows)
    (tmp_path / "data" / "go").mkdir()
    (tmp_path / "data" / "go" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 not really parquet")
    docs, stats = read_all(StackReader(str(tmp_path / "data")))
    assert [d.metadata["lang"] for d in docs] == ["Python", "Go"]
    meta = docs[0].metadata
    assert meta["repo"] == "org/repo" and meta["path"] == "src/f0.py" and meta["hexsha"] == docs[0].id
    assert meta["licenses"] == ["MIT"] and meta["ext"] == "py" and meta["source_kind"] == "stack"
    assert dropped(stats) == {"missing_text": 1, "empty": 1, "non_utf8": 1, "corrupt_parquet": 1}
    assert_accounted(docs, stats)


# ---------------------------------------------------------------- notebooks

NB = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
    "cells": [
        {"cell_type": "markdown", "source": ["# Title\n", "Some *text*."], "metadata": {}},
        {
            "cell_type": "code",
            "source": "x = 1\nprint(x)",
            "outputs": [{"output_type": "stream", "text": ["SECRET OUTPUT\n"]}],
            "metadata": {},
        },
        {"cell_type": "code", "source": [], "outputs": [], "metadata": {}},
    ],
}


def test_notebook_to_text_fenced_and_plain():
    """Markdown stays text, code is fenced (or plain), outputs never reach the text."""
    fenced = notebook_to_text(NB)
    assert fenced == "# Title\nSome *text*.\n\n```python\nx = 1\nprint(x)\n```\n"
    plain = notebook_to_text(NB, code_format="plain")
    assert "```" not in plain and "x = 1" in plain and "SECRET" not in plain + fenced
    v3 = {
        "nbformat": 3,
        "worksheets": [{"cells": [{"cell_type": "code", "input": "y = 2", "language": "python"}]}],
    }
    assert "y = 2" in notebook_to_text(v3)


def test_notebook_reader_counts_broken_and_empty(tmp_path):
    """A truncated notebook and an empty one are counted skips; the good notebook is one document."""
    (tmp_path / "good.ipynb").write_bytes(orjson.dumps(NB))
    (tmp_path / "broken_truncated.ipynb").write_bytes(orjson.dumps(NB)[:90])
    (tmp_path / "empty.ipynb").write_bytes(orjson.dumps({**NB, "cells": []}))
    (tmp_path / "latin1.ipynb").write_bytes(b'{"cells": [\xff]}')
    docs, stats = read_all(NotebookReader(str(tmp_path)))
    assert len(docs) == 1 and docs[0].metadata["lang"] == "python" and docs[0].metadata["n_code_cells"] == 2
    assert dropped(stats) == {"broken_notebook": 1, "empty": 1, "non_utf8": 1}
    assert_accounted(docs, stats)


# ---------------------------------------------------------------- commits

COMMIT = {
    "commit": "0123abcd",
    "old_file": "src/A.java",
    "new_file": "src/A.java",
    "old_contents": "class A {\n  int x = 1;\n}\n",
    "new_contents": "class A {\n  int x = 2;\n}",
    "subject": "Bump x",
    "message": "Bump x\n\nBecause two is better.\n",
    "lang": "Java",
    "license": "mit",
    "repos": "org/repo",
}


def test_commit_to_text_is_message_plus_unified_diff():
    """The training text is the message, then a git-style unified diff computed from old/new contents."""
    text = commit_to_text(COMMIT)
    assert text.startswith("Bump x\n\nBecause two is better.\n\ndiff --git a/src/A.java b/src/A.java\n")
    assert "--- a/src/A.java\n+++ b/src/A.java\n" in text
    assert "\n-  int x = 1;\n" in text and "\n+  int x = 2;\n" in text
    assert "\\ No newline at end of file\n" in text
    assert commit_to_text({**COMMIT, "new_contents": COMMIT["old_contents"]}) == Skip("empty_diff")
    assert commit_to_text({**COMMIT, "old_contents": None}) == Skip("missing_field")


def test_commit_reader_accounting(tmp_path):
    """Commit rows become documents with lang metadata; unusable rows are counted by reason."""
    lines = [orjson.dumps(COMMIT), orjson.dumps({**COMMIT, "new_contents": COMMIT["old_contents"]}), b"{oops"]
    path = write_zst(tmp_path / "commits.jsonl.zst", b"\n".join(lines) + b"\n")
    docs, stats = read_all(CommitReader(str(path)))
    assert len(docs) == 1 and docs[0].metadata["lang"] == "Java" and docs[0].id == "0123abcd:src/A.java"
    assert dropped(stats) == {"empty_diff": 1, "malformed_json": 1}
    assert_accounted(docs, stats)


# ---------------------------------------------------------------- StackExchange


def posts_xml(rows: list[dict[str, str]]) -> str:
    body = "\n".join(
        "  <row " + " ".join(f"{k}={su.quoteattr(v)}" for k, v in r.items()) + " />" for r in rows
    )
    return f'<?xml version="1.0" encoding="utf-8"?>\n<posts>\n{body}\n</posts>\n'


SE_ROWS = [
    {
        "Id": "1",
        "PostTypeId": "1",
        "AcceptedAnswerId": "3",
        "Score": "5",
        "Title": "How to sort a list?",
        "Body": "<p>I have <code>xs</code>:</p><pre><code>xs = [3, 1, 2]\n</code></pre>",
        "Tags": "<python><list>",
    },
    {
        "Id": "2",
        "PostTypeId": "2",
        "ParentId": "1",
        "Score": "10",
        "Body": "<p>Use <code>sorted(xs)</code>.</p>",
    },
    {
        "Id": "3",
        "PostTypeId": "2",
        "ParentId": "1",
        "Score": "2",
        "Body": "<p>Or <code>xs.sort()</code> &amp; done.</p>",
    },
    {"Id": "4", "PostTypeId": "2", "ParentId": "1", "Score": "-3", "Body": "<p>Bad answer</p>"},
    {"Id": "5", "PostTypeId": "1", "Score": "0", "Title": "Unanswered?", "Body": "<p>Nobody knows.</p>"},
    {"Id": "6", "PostTypeId": "2", "ParentId": "99", "Score": "1", "Body": "<p>orphan</p>"},
    {"Id": "7", "PostTypeId": "4", "Body": "tag wiki excerpt"},
    {"Id": "8", "PostTypeId": "1"},
]


def test_html_to_text_and_tags():
    """Post HTML becomes text: code blocks fenced, inline code in backticks, entities unescaped."""
    assert (
        html_to_text("<p>a &amp; <code>b</code></p><pre><code>x = 1\n</code></pre>")
        == "a & `b`\n\n```\nx = 1\n```"
    )
    assert parse_tags("<python><list>") == ["python", "list"] and parse_tags("|a|b|") == ["a", "b"]


def test_stackexchange_reader(tmp_path):
    """One document per answered question, answers by score desc; every other row is a counted skip."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "Posts.xml").write_text(posts_xml(SE_ROWS))
    docs, stats = read_all(StackExchangeReader(str(tmp_path / "site" / "Posts.xml")))
    assert len(docs) == 1
    text = docs[0].text
    assert text.startswith("How to sort a list?\n\nI have `xs`:\n\n```\nxs = [3, 1, 2]\n```")
    assert text.index("sorted(xs)") < text.index("xs.sort()") and "Bad answer" not in text
    assert docs[0].metadata["tags"] == ["python", "list"] and docs[0].metadata["site"] == "site"
    assert dropped(stats) == {"no_answers": 1, "orphan_answer": 1, "other_post_type": 1, "malformed_row": 1}
    assert stats["answers_merged"] == 3
    assert_accounted(docs, stats)


def test_stackexchange_broken_xml_keeps_earlier_questions(tmp_path):
    """XML cut mid-file: the questions read before the break are emitted and the break is counted."""
    xml = posts_xml(SE_ROWS[:3])
    (tmp_path / "Posts.xml").write_text(xml[: xml.index("</posts>")] + '  <row Id="9" PostTy')
    docs, stats = read_all(StackExchangeReader(str(tmp_path)))
    assert len(docs) == 1 and dropped(stats) == {"corrupt_xml": 1}
    assert_accounted(docs, stats)


# ---------------------------------------------------------------- control characters (every reader)

ANSI_LOG = b"\x1b[1;31mERROR\x1b[0m build failed at step 3\r\n\tretrying\x07 in 5s\x0c\n"  # a terminal log line


def test_clean_controls_strips_counts_and_detects_binary():
    """Strip removes C0 (but tab/LF/CR, and form feed unless asked), DEL and C1 controls and counts them; text
    whose controls + U+FFFD exceed the binary fraction is None (binary); keep mode returns the text as read."""
    from mixlab.sources.base import clean_controls

    log = ANSI_LOG.decode()
    assert clean_controls(log) == (log.replace("\x1b", "").replace("\x07", ""), 3)
    assert clean_controls(log, keep_form_feed=False)[1] == 4
    assert clean_controls("x\u0085y\x7fz\x9f" + "w" * 40) == ("xyz" + "w" * 40, 3)
    assert clean_controls(log, mode="keep") == (log, 0)
    assert clean_controls("plain\ttext\r\nwith é and 中文") == ("plain\ttext\r\nwith é and 中文", 0)
    utf16 = "a real sentence in UTF-16".encode("utf-16-le").decode("utf-8")  # every other char a NUL
    assert clean_controls(utf16) is None and clean_controls(utf16, mode="keep") is None
    assert clean_controls(utf16, max_binary_fraction=0.6) == ("a real sentence in UTF-16", 25)
    sample = Path(__file__).resolve().parents[1] / "mixlab/sample/data/commits/commits.jsonl.zst"
    assert clean_controls(sample.read_bytes()[:4096].decode("utf-8", "replace")) is None  # compressed bytes


def test_control_chars_in_jsonl_and_parquet_readers(tmp_path):
    """NUL and other controls (JSON \\u escapes in JSONL, raw bytes in parquet) are removed and counted in
    control_chars_removed; binary documents are dropped as binary; keep mode leaves the text as read."""
    lines = [
        orjson.dumps({"text": ANSI_LOG.decode(), "meta": {"redpajama_set_name": "RedPajamaC4"}}),
        orjson.dumps({"text": "null\u0000byte in the middle of a sentence"}),
        orjson.dumps({"text": "x".encode("utf-16-le").decode() * 50}),
        orjson.dumps({"text": "\u0000\u0001\u0002"}),
    ]
    write_zst(tmp_path / "sp" / "a.jsonl.zst", b"\n".join(lines) + b"\n")
    docs, stats = read_all(SlimPajamaReader(str(tmp_path / "sp")))
    assert [d.text for d in docs] == [
        "[1;31mERROR[0m build failed at step 3\r\n\tretrying in 5s\x0c\n",
        "nullbyte in the middle of a sentence",
    ]
    assert stats["control_chars_removed"] == 4 and stats["docs_control_chars_stripped"] == 2
    assert dropped(stats) == {"binary": 2}
    assert_accounted(docs, stats)
    kept, kept_stats = read_all(SlimPajamaReader(str(tmp_path / "sp"), control_chars="keep"))
    assert kept[1].text == "null\u0000byte in the middle of a sentence" and "control_chars_removed" not in kept_stats

    png_like = bytes(range(256)) * 4  # every byte value: what a binary file committed to a repository holds
    write_stack(tmp_path / "stack" / "train.parquet", [
        {"content": b"int main(void) {\x00\n  return 0;\x0c\n}\n", "lang": "C", "ext": "c"},
        {"content": png_like.decode("latin-1").encode()},
        {"content": png_like.decode("utf-8", "replace").encode()},
    ])  # fmt: skip
    docs, stats = read_all(StackReader(str(tmp_path / "stack")))
    assert [d.text for d in docs] == ["int main(void) {\n  return 0;\x0c\n}\n"]
    assert stats["control_chars_removed"] == 1 and dropped(stats) == {"binary": 2}
    docs, _ = read_all(StackReader(str(tmp_path / "stack"), keep_form_feed=False))
    assert docs[0].text == "int main(void) {\n  return 0;\n}\n"


# ---------------------------------------------------------------- GitHub issues

ISSUES_SAMPLE = Path(__file__).resolve().parents[1] / "mixlab/sample/data/issues"


def issue_row(events: list[dict], **extra) -> dict:
    return {"repo": "octo/cat", "org": "octo", "issue_id": 7, "issue_number": 3, "pull_request": None,
            "events": events, **extra}  # fmt: skip


def ev(author: str, text: str, action: str = "created", **extra) -> dict:
    return {"action": action, "author": author, "text": text, **extra}


def test_thread_text_is_title_then_each_post_with_author():
    """A thread renders as its title, then 'author: text' per post in order; events without text (closed,
    labeled) are not posts; the raw dump's comment/description fields are read when text is absent."""
    from mixlab.sources.issues import thread_posts, thread_title, thread_to_text

    row = issue_row([
        {"action": "opened", "author": "alice", "title": "Crash on empty input", "description": "It crashes.\n"},
        ev("bob", "  Can you share the traceback?  "),
        ev("alice", "", action="closed"),
        {"action": "created", "author": "alice", "comment": "Fixed in #4, thanks."},
    ])  # fmt: skip
    posts, bots = thread_posts(row)
    assert bots == 0
    assert thread_to_text(thread_title(row, row["events"]), posts) == (
        "Crash on empty input\n\nalice: It crashes.\n\nbob: Can you share the traceback?\n\n"
        "alice: Fixed in #4, thanks."
    )


def test_bot_posts_removed_and_empty_threads_dropped_with_reasons():
    """Bot posts (known accounts, [bot] names, -ci/bot suffixes, extra names) are removed and counted; a thread of
    bots only is bot_only, one without any text is empty_thread, a row without events is missing_field."""
    from mixlab.sources.issues import is_bot, thread_posts

    assert all(map(is_bot, ["dependabot[bot]", "codecov-io", "pylint-bot", "travis-ci", "my-org-ci"]))
    assert not any(map(is_bot, ["sigmavirus24", "bboe", "robotics-fan"]))
    row = issue_row([ev("alice", "Bug.", "opened"), ev("codecov-io", "Coverage 91%"), ev("carol", "Same here")])
    assert thread_posts(row) == ([("alice", "Bug."), ("carol", "Same here")], 1)
    assert thread_posts(row, drop_bots=False)[1] == 0
    assert thread_posts(row, bot_authors=["carol"]) == ([("alice", "Bug.")], 2)
    assert thread_posts(issue_row([ev("stale[bot]", "Closing.", "opened")])) == Skip("bot_only")
    assert thread_posts(issue_row([ev("alice", "", "opened", title="Title only")])) == Skip("empty_thread")
    assert thread_posts({"repo": "a/b"}) == Skip("missing_field")


def test_issue_reader_on_the_embedded_sample():
    """The embedded threads (github3.py's recorded API responses) are all accounted for: 204 kept, 18 title-only
    threads dropped as empty_thread, 2 threads of a bot account as bot_only; documents are id'd repo#number."""
    from mixlab.sources.issues import IssueReader

    docs, stats = read_all(IssueReader(str(ISSUES_SAMPLE)))
    assert_accounted(docs, stats)
    assert stats["records_in"] == 224 and dropped(stats) == {"empty_thread": 18, "bot_only": 2}
    assert stats["bot_events_removed"] == 2
    by_id = {d.id: d for d in docs}
    thread = by_id["sigmavirus24/github3.py#187"]
    assert thread.metadata["n_events"] == 4 and thread.metadata["issue_number"] == 187
    posts = thread.text.split("\n\n")
    assert posts[0] == "Document two factor auth" and posts[1].startswith("sigmavirus24: https://twitter.com/")
    assert posts[3].startswith("esacteksab: Note to self")
    assert sum(d.metadata["pull_request"] for d in docs) > 0
    assert all(d.metadata["source_kind"] == "issues" for d in docs)


def test_issue_reader_parquet_equals_jsonl_and_masks_usernames(tmp_path):
    """The Hub's parquet layout gives the same documents as JSONL; mask_usernames replaces authors and their
    mentions by username_<i>; include_pull_requests=False drops pull requests as pull_request."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mixlab.sources.issues import IssueReader

    rows = [
        issue_row([ev("alice", "Bug in parser.", "opened", title="Parser bug"), ev("bob", "@alice which version?")]),
        issue_row([ev("carol", "Adds a test.", "opened", title="Add test")], issue_number=4,
                  pull_request={"number": 4, "repo": "octo/cat", "user_login": "carol"}),
    ]  # fmt: skip
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "a.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    (tmp_path / "p").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p" / "a.parquet")
    from_jsonl, _ = read_all(IssueReader(str(tmp_path / "j")))
    from_parquet, stats = read_all(IssueReader(str(tmp_path / "p")))
    assert [(d.id, d.text, d.metadata) for d in from_jsonl] == [(d.id, d.text, d.metadata) for d in from_parquet]
    assert_accounted(from_parquet, stats)
    masked, _ = read_all(IssueReader(str(tmp_path / "j"), mask_usernames=True))
    assert masked[0].text == "Parser bug\n\nusername_0: Bug in parser.\n\nusername_1: @username_0 which version?"
    no_pr, stats = read_all(IssueReader(str(tmp_path / "j"), include_pull_requests=False))
    assert len(no_pr) == 1 and dropped(stats) == {"pull_request": 1}


def test_issues_curation_pipeline_accounts_for_every_thread(tmp_path):
    """run_curation with IssueOptions (the recipe kind `issues`) keeps the sample's threads of >= 200 characters
    and accounts for every record; bot posts removed appear among the notes."""
    from mixlab.curate.pipeline import run_curation
    from mixlab.recipe.sources import IssueOptions

    stats = run_curation(IssueOptions(), str(ISSUES_SAMPLE), str(tmp_path / "out"))
    assert stats["complete"] and stats["docs_in"] == 224
    assert stats["docs_in"] == stats["docs_kept"] + sum(stats["dropped_by_reason"].values())
    assert {"empty_thread", "bot_only", "too_short"} <= set(stats["dropped_by_reason"])
    assert stats["notes"]["bot_events_removed"] == 2
