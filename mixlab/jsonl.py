"""The one reader of JSON Lines files: plain, gzip or zstd, streaming in bounded memory, bad lines surfaced.

Contracts:
- :func:`iter_lines` splits decompressed chunks into non-empty lines (without ``\\n``) in constant memory
  besides the current line. A line longer than ``max_line_bytes`` is never held in memory and yields
  ``Skip("too_large", size)``.
- :func:`lines_of` streams the lines of an open binary file whose codec follows its name: ``.zst`` / ``.zstd``
  (a corrupt frame yields one ``Skip("corrupt_zstd")`` and decoding resumes at the next frame magic; a file
  that ends inside a frame yields one too), ``.gz`` (a corrupt stream yields one ``corrupt_gzip`` skip and ends
  the file), anything else read as is. :func:`open_lines` does the same for a file of a datatrove
  ``DataFolder`` (or any object with an fsspec-style ``open``).
- Readers that account for bad input (:mod:`mixlab.sources`) count the :class:`Skip` items as drops;
  :func:`read_jsonl` / :func:`parse_jsonl` are for files that must be whole (curated shards, labeled sets,
  task files): every non-blank line is parsed with ``orjson`` and a Skip or a line that is not JSON raises
  :class:`JsonlError` naming the file, the non-blank line's number and the reason; nothing is skipped silently.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
FEED_BYTES = 1 << 16  # compressed bytes per decompress call: bounds what one corrupt block can take with it
READ_BYTES = 1 << 20
MAX_LINE_BYTES = 1 << 30  # default bound of one line for read_jsonl (a record past it is an error, not a read)


@dataclass(frozen=True, slots=True)
class Skip:
    """A record (or an unreadable stretch of input) that is dropped: ``reason`` becomes ``dropped_<reason>``."""

    reason: str
    nbytes: int = 0


class JsonlError(ValueError):
    """A JSON Lines file that must be whole has an unreadable stretch or a line that is not JSON."""


def _zstd_chunks(raw: BinaryIO) -> Iterator[bytes | Skip]:
    """Decompressed chunks of a (multi-frame) zstd stream; corruption yields a Skip and resyncs on a frame magic."""
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    started = False  # the current frame has received bytes (so ending here means truncated)
    resync = False  # after a corrupt frame: drop compressed bytes until the next frame magic
    carry = b""
    while True:
        block = raw.read(READ_BYTES)
        if not block:
            break
        data = carry + block if carry else block
        carry = b""
        pos = 0
        while pos < len(data):
            if resync:
                idx = data.find(ZSTD_MAGIC, pos)
                if idx < 0:  # keep a possible partial magic at the block end
                    carry = data[max(pos, len(data) - 3) :]
                    pos = len(data)
                    break
                pos, resync = idx, False
                dobj = dctx.decompressobj()
            piece = data[pos : pos + FEED_BYTES]
            started = True
            try:
                out = dobj.decompress(piece)
            except zstandard.ZstdError:
                yield Skip("corrupt_zstd", len(piece))
                resync, started = True, False
                pos += 1  # never re-find the magic of the frame that just failed
                continue
            if out:
                yield out
            if dobj.eof:  # frame finished inside this piece: the rest belongs to the next frame
                pos += len(piece) - len(dobj.unused_data)
                dobj, started = dctx.decompressobj(), False
            else:
                pos += len(piece)
    if started and not dobj.eof:  # the file ends inside a frame: truncated
        yield Skip("corrupt_zstd")


def _plain_chunks(f: BinaryIO, codec: str) -> Iterator[bytes | Skip]:
    """Chunks of an already-decompressing file object; any decoding error ends the file with one Skip."""
    try:
        while block := f.read(READ_BYTES):
            yield block
    except (OSError, EOFError, zlib.error, ValueError):  # BadGzipFile is an OSError
        yield Skip(f"corrupt_{codec}")


def iter_lines(chunks: Iterable[bytes | Skip], max_line_bytes: int) -> Iterator[bytes | Skip]:
    """Split decompressed chunks into lines (without ``\\n``); pass Skips through.

    A Skip discards the partial line before it (that line is part of the unreadable stretch). A line over
    ``max_line_bytes`` is dropped while streaming (never joined) and reported as ``Skip("too_large", size)``.
    Empty lines are not yielded.
    """
    parts: list[bytes] = []
    size = 0
    oversized = False
    for chunk in chunks:
        if isinstance(chunk, Skip):
            parts, size, oversized = [], 0, False
            yield chunk
            continue
        if b"\n" not in chunk:
            size += len(chunk)
            if oversized:
                continue
            if size > max_line_bytes:
                parts, oversized = [], True
            else:
                parts.append(chunk)
            continue
        lines = chunk.split(b"\n")
        tail = lines.pop()
        first = lines[0]
        if oversized or size + len(first) > max_line_bytes:
            yield Skip("too_large", size + len(first))
            lines = lines[1:]
        elif parts:
            parts.append(first)
            lines[0] = b"".join(parts)
        parts, size, oversized = [], 0, False
        for line in lines:
            if len(line) > max_line_bytes:
                yield Skip("too_large", len(line))
            elif line.strip():
                yield line
        if tail:
            size = len(tail)
            if size > max_line_bytes:
                oversized = True
            else:
                parts.append(tail)
    if oversized:
        yield Skip("too_large", size)
    elif parts:
        last = b"".join(parts)
        if last.strip():
            yield last


def lines_of(raw: BinaryIO, name: str, max_line_bytes: int) -> Iterator[bytes | Skip]:
    """Lines of the open binary file ``raw``; the codec follows ``name``'s suffix (.zst/.zstd, .gz, none)."""
    if name.endswith((".zst", ".zstd")):
        yield from iter_lines(_zstd_chunks(raw), max_line_bytes)
    elif name.endswith(".gz"):
        with gzip.GzipFile(fileobj=raw) as f:
            yield from iter_lines(_plain_chunks(f, "gzip"), max_line_bytes)  # type: ignore[arg-type]
    else:
        yield from iter_lines(_plain_chunks(raw, "read"), max_line_bytes)


def open_lines(data_folder: Any, filepath: str, max_line_bytes: int) -> Iterator[bytes | Skip]:
    """Lines of ``filepath`` in ``data_folder`` (a datatrove DataFolder or an fsspec file system)."""
    with data_folder.open(filepath, "rb") as raw:
        yield from lines_of(raw, filepath, max_line_bytes)


def parse_jsonl(lines: Iterable[bytes | Skip], name: str) -> Iterator[Any]:
    """The JSON value of every line; a Skip or a line that is not JSON raises :class:`JsonlError`."""
    loads = orjson.loads
    for n, line in enumerate(lines, 1):
        if isinstance(line, Skip):
            raise JsonlError(
                f"{name}: non-blank line {n}: unreadable ({line.reason}, {line.nbytes} bytes); the file is damaged "
                "or truncated: rebuild it, or read it through a mixlab source reader, which counts bad records"
            )
        try:
            yield loads(line)
        except orjson.JSONDecodeError as e:
            if n == 1 and line.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark before the first record
                yield loads(line[3:])
                continue
            raise JsonlError(
                f"{name}: non-blank line {n} is not JSON ({e}): {line[:80]!r}; fix or remove that line"
            ) from None


def read_jsonl(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Any]:
    """Stream the records of a ``.jsonl``, ``.jsonl.gz`` or ``.jsonl.zst`` file (local path or fsspec URL).

    Raises :class:`JsonlError` at the first damaged stretch, line over ``max_line_bytes`` or non-JSON line.
    """
    s = str(path)
    if "://" in s:
        import fsspec

        opened = fsspec.open(s, "rb")
    else:
        opened = open(s, "rb")  # noqa: SIM115 (closed by the with below)
    with opened as raw:
        yield from parse_jsonl(lines_of(raw, s, max_line_bytes), s)


def parse_jsonl_bytes(data: bytes, name: str, max_line_bytes: int = MAX_LINE_BYTES) -> list[Any]:
    """The records of already-decompressed JSON Lines bytes (``name`` is used in errors)."""
    return list(parse_jsonl(iter_lines([data], max_line_bytes), name))
