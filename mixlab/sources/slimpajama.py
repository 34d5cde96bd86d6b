"""SlimPajama (and any ``{"text": ...}`` JSONL) reader: streaming zstd/gzip/plain JSONL -> datatrove Documents.

Record schema (SlimPajama): ``{"text": str, "meta": {"redpajama_set_name": "RedPajamaC4" | ...}}``, files
``train/chunkN/example_train_M.jsonl.zst``. The path is a parameter: a local folder, one file, or a glob such as
``hf://datasets/cerebras/SlimPajama-627B/train/chunk*/*.jsonl.zst`` (read through fsspec; nothing is downloaded
up front). Output documents: ``text``; ``id`` = ``<file>/<line>``; metadata ``redpajama_set_name`` (``"unknown"``
when absent) and ``source_kind``.

Bad input (each a counted ``dropped_<reason>`` of the reader, see :mod:`mixlab.sources.base`):
``corrupt_zstd`` / ``corrupt_gzip`` (unreadable stretch), ``malformed_json``, ``non_utf8``, ``not_an_object``,
``missing_text``, ``bad_text_type``, ``empty``, ``too_large``.

Speed: one ``zstandard`` decompress call per 64 KiB of input, a C-level ``split`` into lines, ``orjson.loads``
on bytes, counters flushed once per file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from mixlab.sources.base import AccountedReader, Skip, open_lines


def json_error_reason(line: bytes) -> str:
    """Why a line is not JSON: ``non_utf8`` if its bytes are not UTF-8, else ``malformed_json``."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return "non_utf8"
    return "malformed_json"


class JsonlRecordReader(AccountedReader):
    """Generic accounted JSONL reader; subclasses override :meth:`adapt` (record dict -> Document | Skip)."""

    name = "mixlab jsonl"
    suffixes = (".jsonl", ".jsonl.zst", ".jsonl.gz", ".json.zst", ".json.gz", ".jsonl.zstd")

    def adapt(self, rec: dict[str, Any], doc_id: str, nbytes: int) -> Any:
        """Record -> Document or Skip; default: ``text`` key, every other top-level key into metadata."""
        meta = {k: v for k, v in rec.items() if k != "text" and isinstance(v, (str, int, float, bool))}
        return self.make_doc(rec.get("text"), doc_id, meta, nbytes)

    def read_records(self, filepath: str) -> Iterator[Any]:
        """One Document or Skip per line (the hot loop: one generator, no per-line tuples)."""
        loads, adapt, drop = orjson.loads, self.adapt, self.drop
        prefix = f"{filepath}/"
        li = -1
        for line in open_lines(self.data_folder, filepath, self.max_doc_bytes):
            li += 1
            if line.__class__ is Skip:
                yield drop(line.reason, line.nbytes)
                continue
            try:
                rec = loads(line)
            except orjson.JSONDecodeError:
                yield drop(json_error_reason(line), len(line))
                continue
            if rec.__class__ is not dict:
                yield drop("not_an_object", len(line))
                continue
            yield adapt(rec, prefix + str(li), len(line))


class SlimPajamaReader(JsonlRecordReader):
    """SlimPajama reader: keeps ``meta.redpajama_set_name`` in the document metadata."""

    name = "mixlab SlimPajama"

    def __init__(
        self,
        input_path: str,
        max_doc_bytes: int = 16 << 20,
        limit: int = -1,
        source_kind: str = "slimpajama",
        **reader_options: Any,
    ):
        super().__init__(input_path, source_kind, max_doc_bytes, limit, **reader_options)

    def adapt(self, rec: dict[str, Any], doc_id: str, nbytes: int) -> Any:
        meta = rec.get("meta")
        set_name = meta.get("redpajama_set_name", "unknown") if isinstance(meta, dict) else "unknown"
        return self.make_doc(rec.get("text"), doc_id, {"redpajama_set_name": set_name}, nbytes)
