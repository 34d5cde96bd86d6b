"""Reading task files: local paths (plain or compressed) and fsspec URLs, JSON / JSON Lines, archives.

Contract:
- ``read_json(source)`` parses a ``.json`` / ``.jsonl`` source (a list of records for JSON Lines; a ``.json``
  file that is not one JSON document is read as JSON Lines). Compression is decided by extension: ``.gz``,
  ``.bz2``, ``.xz``, ``.zst`` / ``.zstd``; a ``://`` URL is read through fsspec (``compression="infer"``) when
  the network allows.
- ``read_records(source, member=None)`` returns the records of a JSON Lines file, a JSON array, or a JSON object
  holding the array under ``Data`` (TriviaQA), ``data`` or ``examples`` (BIG-bench); ``.whl`` / ``.zip``
  sources are read at ``member`` (an error naming the fix when it is missing). Anything else is a ValueError
  naming the source.
- ``read_bytes(source)`` returns (decompressed bytes, name without the compression suffix).
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from mixlab.jsonl import parse_jsonl_bytes


def read_bytes(source: str | Path) -> tuple[bytes, str]:
    """(decompressed bytes, name without the compression suffix) of a local path or an fsspec URL."""
    s = str(source)
    if "://" in s:
        import fsspec

        with fsspec.open(s, "rb", compression="infer") as f:
            data = f.read()
        name = s
        for suffix in (".gz", ".bz2", ".xz", ".zst", ".zstd"):
            name = name.removesuffix(suffix)
        return data, name
    path = Path(s)
    data = path.read_bytes()
    if path.suffix == ".gz":
        return gzip.decompress(data), str(path.with_suffix(""))
    if path.suffix in (".zst", ".zstd"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read(), str(path.with_suffix(""))
    if path.suffix == ".bz2":
        import bz2

        return bz2.decompress(data), str(path.with_suffix(""))
    if path.suffix == ".xz":
        import lzma

        return lzma.decompress(data), str(path.with_suffix(""))
    return data, s


def _parse_json_or_lines(data: bytes, name: str) -> Any:
    if name.endswith(".jsonl"):
        return parse_jsonl_bytes(data, name)
    try:
        return json.loads(data.decode("utf-8-sig"))
    except json.JSONDecodeError:
        return parse_jsonl_bytes(data, name)


def read_json(source: str | Path) -> Any:
    """The parsed content of a ``.json`` / ``.jsonl`` source (a list of records for JSON Lines)."""
    return _parse_json_or_lines(*read_bytes(source))


def read_records(source: str | Path, member: str | None = None) -> list[dict[str, Any]]:
    """Records of a JSON Lines file, a JSON array, or a JSON object holding the array under ``Data`` (TriviaQA),
    ``data`` or ``examples`` (BIG-bench). ``.whl`` / ``.zip`` sources are read at ``member``."""
    s = str(source)
    if s.endswith((".whl", ".zip")):
        if member is None:
            raise ValueError(f"{s}: name the file to read inside the archive (member=)")
        data, _ = read_bytes(source)
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            obj = _parse_json_or_lines(z.read(member), member)
    else:
        obj = read_json(source)
    if isinstance(obj, dict):
        for key in ("Data", "data", "examples"):
            if isinstance(obj.get(key), list):
                return obj[key]
        raise ValueError(f"{s}: a JSON object without a Data / data / examples list")
    if not isinstance(obj, list):
        raise ValueError(f"{s}: expected JSON records, got {type(obj).__name__}")
    return obj
