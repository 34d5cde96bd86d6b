"""The one JSON Lines reader (:mod:`mixlab.jsonl`) and the builders' registry fetcher (:mod:`mixlab.builders.fetch`).

Invariants: every codec gives the same records; a damaged stretch, an over-long line or a non-JSON line of a
file that must be whole raises an error naming the file and the line, never a silent skip; a line break inside
a JSON string (U+2028) never splits a record; the fetcher returns a cached file only when its SHA-256 is the
pinned one and refuses unpinned non-Debian files.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil

import orjson
import pytest
import zstandard

from mixlab.builders.fetch import FetchError, Package, fetch
from mixlab.jsonl import JsonlError, parse_jsonl_bytes, read_jsonl
from mixlab.shards import iter_documents

RECORDS = [{"text": f"doc {i} \u2028 caf\u00e9", "id": str(i)} for i in range(50)] + [{"text": "", "id": "x"}]
BODY = b"".join(orjson.dumps(r) + b"\n" for r in RECORDS)


def _write_all(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(BODY.replace(b"\n", b"\n\n", 3))  # blank lines are not records
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(BODY))
    half = len(BODY) // 2
    cut = BODY.index(b"\n", half) + 1
    frames = zstandard.ZstdCompressor().compress(BODY[:cut]) + zstandard.ZstdCompressor().compress(BODY[cut:])
    (tmp_path / "c.jsonl.zst").write_bytes(frames)  # two frames, split between records
    return [tmp_path / n for n in ("a.jsonl", "b.jsonl.gz", "c.jsonl.zst")]


def test_every_codec_gives_the_same_records(tmp_path):
    """Plain, gzip and multi-frame zstd files stream to the records written; U+2028 inside a string survives."""
    for path in _write_all(tmp_path):
        assert list(read_jsonl(path)) == RECORDS, path.name
    assert list(iter_documents(tmp_path)) == RECORDS * 3  # the tokenize stage reads through the same reader


def test_bad_line_raises_naming_file_and_line(tmp_path):
    """A non-JSON line is an error that names the file and the non-blank line number, not a skipped record."""
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "a"}\n\n{"text": "b"}\n{"text": oops}\n{"text": "c"}\n')
    with pytest.raises(JsonlError, match=r"bad\.jsonl: non-blank line 3 is not JSON"):
        list(read_jsonl(path))


def test_truncated_zstd_and_long_line_raise(tmp_path):
    """A zstd file cut inside a frame and a line over the bound are errors naming the reason."""
    path = tmp_path / "cut.jsonl.zst"
    data = zstandard.ZstdCompressor().compress(BODY)
    path.write_bytes(data[: len(data) - 7])
    with pytest.raises(JsonlError, match=r"cut\.jsonl\.zst: .*corrupt_zstd"):
        list(read_jsonl(path))
    plain = tmp_path / "long.jsonl"
    plain.write_bytes(BODY)
    with pytest.raises(JsonlError, match="too_large"):
        list(read_jsonl(plain, max_line_bytes=20))


def test_parse_bytes_accepts_a_byte_order_mark():
    """A UTF-8 BOM before the first record (files saved by some editors) is not part of the record."""
    assert parse_jsonl_bytes(b"\xef\xbb\xbf" + BODY, "bom.jsonl") == RECORDS


def test_fetch_uses_a_cached_file_only_when_its_hash_is_pinned(tmp_path):
    """A cached file with the pinned SHA-256 is returned without any download; one with another hash is not
    returned (the fetcher downloads again; an unknown package then fails with the registry's message)."""
    content = b"pinned package bytes"
    good = Package("debian", "mixlab-no-such-package", "1.0", hashlib.sha256(content).hexdigest())
    folder = tmp_path / "debian" / good.name / good.version
    folder.mkdir(parents=True)
    (folder / "mixlab-no-such-package_1.0_all.deb").write_bytes(content)
    assert fetch(good, tmp_path).read_bytes() == content
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not installed: the re-download path needs it")
    bad = Package("debian", good.name, good.version, hashlib.sha256(b"other").hexdigest())
    with pytest.raises(FetchError, match="apt-get download mixlab-no-such-package=1.0 failed"):
        fetch(bad, tmp_path)
    assert (folder / "mixlab-no-such-package_1.0_all.deb").read_bytes() == content  # nothing replaced it


def test_only_debian_may_be_unpinned():
    """PyPI and npm files must carry a SHA-256 (only apt checks downloads against a signed index itself)."""
    with pytest.raises(ValueError, match="pin the sha256"):
        Package("pypi", "click", "8.1.7", None, "sdist")
    with pytest.raises(ValueError, match="kind='sdist' or kind='wheel'"):
        Package("pypi", "click", "8.1.7", "0" * 64)
