"""Shared machinery of the source readers: accounted reading, input listing, robust line streams.

Contracts:
- Every reader is a datatrove ``BaseDiskReader`` subclass (:class:`AccountedReader`). Every record it meets is
  counted in the ``records_in`` stat and ends either as a yielded ``Document`` or as a ``dropped_<reason>``
  stat of the reader; ``bytes_in`` sums the raw size of the records. Nothing bad is silent, nothing bad crashes.
- An input path is a folder, a single file or a glob, local or any fsspec URL (``hf://``, ``s3://``...);
  :func:`split_input_path` splits it into the folder datatrove shards and a glob relative to it.
  No matching file at all is a clear ``FileNotFoundError``; a task that gets no file of a non-empty input
  is fine (more tasks than files).
- Line streams (``iter_lines``, ``open_lines``, :class:`Skip`) come from :mod:`mixlab.jsonl`, the one reader of
  (compressed) JSON Lines: corrupt zstd frames, corrupt gzip streams and over-long lines become Skips.
- Control characters (every reader, in :meth:`AccountedReader.make_doc`): the characters of :data:`CONTROL_CHARS`
  (NUL and the other C0 controls except tab, line feed and carriage return; form feed too unless kept; DEL; the
  C1 controls U+0080-U+009F) are counted. A document where they and U+FFFD replacement characters make up more
  than ``max_binary_fraction`` of the characters is dropped as ``binary`` (binary data read as text: NUL padding,
  UTF-16 read as UTF-8, random bytes). Otherwise, with ``control_chars="strip"`` (the default) they are removed,
  counted in the ``control_chars_removed`` and ``docs_control_chars_stripped`` stats; ``"keep"`` leaves the text
  as read. A document left empty by stripping is dropped as ``empty``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from glob import has_magic
from typing import Any, Literal

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.readers.base import BaseDiskReader

from mixlab.jsonl import Skip, iter_lines, open_lines  # noqa: F401 (the line streams, re-exported for readers)


def split_input_path(path: str) -> tuple[str, str | None]:
    """Split ``path`` into (folder, glob relative to folder or None).

    ``hf://datasets/cerebras/SlimPajama-627B/train/chunk*/*.jsonl.zst`` ->
    (``hf://datasets/cerebras/SlimPajama-627B/train``, ``chunk*/*.jsonl.zst``). A path without glob characters
    is returned as (path, None); whether it is a file or a folder is decided when listing.
    """
    if not has_magic(path):
        return path.rstrip("/") or "/", None
    proto, sep, rest = path.partition("://")
    if not sep:
        proto, rest = "", path
    parts = rest.split("/")
    first = next(i for i, p in enumerate(parts) if has_magic(p))
    folder = "/".join(parts[:first]) or ("/" if rest.startswith("/") else ".")
    if proto:
        folder = f"{proto}://{folder}"
    return folder, "/".join(parts[first:])


# C0 controls but tab, LF, CR (form feed listed apart), DEL and the C1 controls: what strip mode removes.
_C0 = "".join(map(chr, (*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20))))
_DEL_C1 = "".join(map(chr, range(0x7F, 0xA0)))
CONTROL_CHARS = re.compile(f"[{re.escape(_C0 + _DEL_C1)}]")  # form feed kept
CONTROL_CHARS_AND_FF = re.compile(f"[{re.escape(_C0 + chr(0x0C) + _DEL_C1)}]")
REPLACEMENT_CHAR = "\ufffd"


def control_pattern(keep_form_feed: bool = True) -> re.Pattern[str]:
    """The control characters strip mode removes (form feed among them unless ``keep_form_feed``)."""
    return CONTROL_CHARS if keep_form_feed else CONTROL_CHARS_AND_FF


# The same characters as UTF-8 bytes: a C0 control or DEL is one byte < 0x80 (never part of a multi-byte
# character), a C1 control is \xc2 + 0x80..0x9f (\xc2 is always a lead byte).
_C0_DEL_BYTES = (_C0 + chr(0x7F)).encode("ascii")
_C0_DEL_FF_BYTES = _C0_DEL_BYTES + b"\x0c"
_C1_UTF8 = re.compile(rb"\xc2[\x80-\x9f]")


def has_controls_regex(text: str, keep_form_feed: bool = True) -> bool:
    """Whether ``text`` holds a character of :func:`control_pattern` or U+FFFD: the definition (one regex scan)."""
    return control_pattern(keep_form_feed).search(text) is not None or REPLACEMENT_CHAR in text


def has_controls(text: str, keep_form_feed: bool = True) -> bool:
    """:func:`has_controls_regex`, 3x faster: the text's bytes (ASCII, or UTF-8 with surrogates passed) lose no
    byte to ``bytes.translate(None, controls)``, and a non-ASCII text holds no C1 control (``\\xc2[\\x80-\\x9f]``)
    and no U+FFFD. CPU time on the SlimPajama x8 texts (24 MB): 25 ms against 71 ms; on the Stack x8 files
    (26 MB): 23 ms against 81 ms (``benchmarks/results/decontaminate_speed.md``)."""
    delete = _C0_DEL_BYTES if keep_form_feed else _C0_DEL_FF_BYTES
    if text.isascii():
        data = text.encode("ascii")
        return len(data.translate(None, delete)) != len(data)
    data = text.encode("utf-8", "surrogatepass")
    return (
        len(data.translate(None, delete)) != len(data)
        or _C1_UTF8.search(data) is not None
        or REPLACEMENT_CHAR in text
    )


def clean_controls(
    text: str,
    mode: Literal["strip", "keep"] = "strip",
    keep_form_feed: bool = True,
    max_binary_fraction: float = 0.1,
) -> tuple[str, int] | None:
    """Pure core of the control-character handling: ``None`` when ``text`` is binary (controls + U+FFFD exceed
    ``max_binary_fraction`` of its characters), else ``(text, removed)``: the text with the controls removed
    (``mode="strip"``) or as is (``"keep"``, removed = 0)."""
    if not has_controls(text, keep_form_feed):
        return text, 0  # the common case: one bytes pass (see has_controls)
    pattern = control_pattern(keep_form_feed)
    controls = len(pattern.findall(text))
    if controls + text.count(REPLACEMENT_CHAR) > max_binary_fraction * len(text):
        return None
    if mode == "keep" or not controls:
        return text, 0
    return pattern.sub("", text), controls


def text_nbytes(text: str) -> int:
    """UTF-8 size of ``text`` (O(1) for ASCII strings)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class AccountedReader(BaseDiskReader):
    """Base of mixlab readers: input listing with a clear error, per-record accounting, size/empty checks.

    Subclasses implement :meth:`read_records` yielding ``Document`` or :class:`Skip` per record; this class
    counts them (``records_in``, ``bytes_in``, ``dropped_<reason>``), flushing counters once per file.
    Subclasses set ``suffixes`` (file name endings to read when the input is a folder).
    """

    type = "📖 - READER"
    name = "mixlab reader"
    suffixes: tuple[str, ...] = ()

    def __init__(
        self,
        input_path: str,
        source_kind: str,
        max_doc_bytes: int = 16 << 20,
        limit: int = -1,
        control_chars: Literal["strip", "keep"] = "strip",
        keep_form_feed: bool = True,
        max_binary_fraction: float = 0.1,
    ):
        if control_chars not in ("strip", "keep"):
            raise ValueError(f"control_chars must be 'strip' or 'keep', got {control_chars!r}")
        folder, glob_pattern = split_input_path(input_path)
        super().__init__(folder, limit=limit, glob_pattern=glob_pattern, add_file_path=False)
        self.input_path = input_path
        self.source_kind = source_kind
        self.max_doc_bytes = max_doc_bytes
        self.control_chars = control_chars
        self.keep_form_feed = keep_form_feed
        self.max_binary_fraction = max_binary_fraction
        self._counts: Counter[str] = Counter()

    # ---- to implement -------------------------------------------------------------------------------
    def read_records(self, filepath: str) -> Iterator[Document | Skip]:
        """Yield one Document or Skip per record of ``filepath`` (sizes already checked or not)."""
        raise NotImplementedError

    def read_file(self, filepath: str) -> DocumentsPipeline:
        """datatrove's per-file hook: the Documents of ``filepath`` (Skips are counted, not yielded)."""
        for item in self.read_records(filepath):
            if not isinstance(item, Skip):
                yield item

    # ---- helpers for subclasses ---------------------------------------------------------------------
    def make_doc(self, text: Any, doc_id: str, metadata: dict[str, Any], nbytes: int) -> Document | Skip:
        """Document from ``text`` after the shared checks (missing / non-string / empty / too large / binary) and
        the control-character handling (see the module docstring)."""
        self._counts["bytes_in"] += nbytes
        if text is None:
            return Skip("missing_text")
        if not isinstance(text, str):
            return Skip("bad_text_type")
        if not text or text.isspace():
            return Skip("empty")
        if len(text) > self.max_doc_bytes or (
            len(text) * 4 > self.max_doc_bytes and text_nbytes(text) > self.max_doc_bytes
        ):
            return Skip("too_large")
        cleaned = clean_controls(text, self.control_chars, self.keep_form_feed, self.max_binary_fraction)
        if cleaned is None:
            return Skip("binary")
        if cleaned[1]:
            text = cleaned[0]
            self._counts["control_chars_removed"] += cleaned[1]
            self._counts["docs_control_chars_stripped"] += 1
            if not text or text.isspace():
                return Skip("empty")
        metadata["source_kind"] = self.source_kind
        return Document(text=text, id=doc_id, metadata=metadata)

    def drop(self, reason: str, nbytes: int = 0) -> Skip:
        """A Skip whose raw bytes are counted in ``bytes_in``."""
        self._counts["bytes_in"] += nbytes
        return Skip(reason)

    def parquet_batches(
        self, filepath: str, batch_size: int, decode: Callable[[Any], Any],
        columns: Callable[[set[str]], list[str] | None] | None = None,
    ) -> Iterator[tuple[int, Any] | Skip]:
        """``(first_row, decode(batch))`` per record batch of a parquet file. A file that cannot be opened,
        or a batch that cannot be read or decoded, yields one ``corrupt_parquet`` drop and ends the file (the rows
        read before it are kept). ``columns(schema_names)`` picks the columns to read (and may raise for a file
        without the ones the reader needs)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            f = self.data_folder.open(filepath, "rb")
            pqf = pq.ParquetFile(f)
        except (OSError, pa.ArrowException, ValueError):
            yield self.drop("corrupt_parquet")
            return
        with f, pqf:
            wanted = columns(set(pqf.schema_arrow.names)) if columns is not None else None
            row, batches = 0, pqf.iter_batches(batch_size=batch_size, columns=wanted)
            while True:
                try:
                    batch = next(batches)
                    decoded = decode(batch)
                except StopIteration:
                    return
                except (OSError, pa.ArrowException, ValueError):  # UnicodeDecodeError is a ValueError
                    yield self.drop("corrupt_parquet")
                    return
                yield row, decoded
                row += batch.num_rows

    # ---- datatrove plumbing -------------------------------------------------------------------------
    def list_input_files(self) -> list[str]:
        """All input files (relative to the data folder), sorted; raises when nothing matches."""
        files = self.data_folder.list_files(recursive=self.recursive, glob_pattern=self.glob_pattern)
        if self.glob_pattern is None and self.suffixes:
            files = [f for f in files if f.endswith(self.suffixes)]
        if not files:
            want = self.glob_pattern or ("*" + "|*".join(self.suffixes) if self.suffixes else "any file")
            raise FileNotFoundError(
                f"no input files for {self.source_kind!r}: nothing matches {want} in {self.input_path}"
            )
        return files

    def _shard(self, rank: int, world_size: int) -> list[str]:
        from datatrove.io import get_datafolder

        folder, glob_pattern = split_input_path(self.input_path)
        if glob_pattern is None:
            probe = get_datafolder(folder)
            if probe.fs.isfile(probe.path):  # a single file: its folder is the data folder
                parent, _, name = folder.rstrip("/").rpartition("/")
                self.data_folder = get_datafolder(parent or ".")
                return [name] if rank == 0 else []
            if not probe.fs.exists(probe.path):
                raise FileNotFoundError(
                    f"input path of {self.source_kind!r} does not exist: {self.input_path}"
                )
        return self.list_input_files()[rank::world_size]

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        """Read this rank's share of the input files (files ``rank::world_size`` of the sorted list)."""
        if data:
            yield from data
        produced = 0
        for filepath in self._shard(rank, world_size):
            self.stat_update("input_files")
            counts = self._counts
            try:
                for item in self.read_records(filepath):
                    counts["records_in"] += 1
                    if isinstance(item, Skip):
                        counts[f"dropped_{item.reason}"] += 1
                        continue
                    yield item
                    produced += 1
                    if 0 <= self.limit <= produced:
                        return
            finally:
                for label, value in counts.items():
                    self.stat_update(label, value=value)
                counts.clear()
