"""The workspace: where stage outputs live, how they are written, verified and shared by concurrent runs.

Contract:
- ``Workspace(root).lock(*parts)`` is an exclusive ``flock`` on ``<root>/.locks/<parts>.lock``: a stage builds an
  output only while holding its lock, so two runs on one workspace never write the same output; the second waits
  (logging once that it waits) and then finds the output done and reuses it. The kernel drops the lock when a
  process dies, so a killed run never blocks the next.
- ``clean_stale(out)`` (call it under the output's lock) removes what killed runs left beside ``out``: temporary
  siblings ``.<name>.tmp-*``. Nothing else owns them while the lock is held.
- ``write_json_atomic`` / ``write_bytes_atomic`` write a temporary sibling, fsync, then rename: a reader sees the
  old file or the new one, never a torn one.
- ``digest(path)`` is the streaming xxh64 of a file; ``digests(folder, names)`` maps names to digests and
  ``verify(folder, recorded)`` returns the problems (missing, wrong size, wrong digest) of a folder against them.
- ``relative(path, root)`` is how paths are recorded in manifests and stats: relative to the workspace root
  (POSIX form), so identical data gives byte-identical JSON in any workdir.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import xxhash

from mixlab.errors import WorkspaceBusyError

log = logging.getLogger("mixlab")
TMP_MARK = ".tmp-"


def tmp_sibling(out: Path) -> Path:
    """The temporary folder/file a stage writes before renaming it to ``out`` (one per process)."""
    return out.with_name(f".{out.name}{TMP_MARK}{os.getpid()}")


class Workspace:
    """A folder of stage outputs (see the module contract)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def path(self, *parts: str) -> Path:
        """``root/parts``, its parent folder created."""
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @contextlib.contextmanager
    def lock(self, *parts: str, timeout: float | None = None) -> Iterator[None]:
        """Hold the exclusive lock of the output ``parts`` (module contract); ``timeout`` None waits forever."""
        name = "__".join(parts).replace(os.sep, "__")
        path = self.path(".locks", f"{name}.lock")
        with open(path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("waiting for another mixlab run that is building %s", "/".join(parts))
                deadline = None if timeout is None else time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if deadline is not None and time.monotonic() > deadline:
                            raise WorkspaceBusyError(
                                f"{'/'.join(parts)} is being built by another mixlab run on {self.root}; wait for "
                                f"it to finish, or use another --workdir"
                            ) from None
                        time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def clean_stale(out: Path) -> list[Path]:
    """Remove the temporary siblings killed runs left beside ``out``; returns what was removed."""
    removed = []
    if out.parent.is_dir():
        for p in out.parent.iterdir():
            if p.name.startswith(f".{out.name}{TMP_MARK}"):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(p)
    if removed:
        log.info("removed %d temporary file(s) of interrupted runs beside %s", len(removed), out)
    return removed


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, prefix=f".{path.name}{TMP_MARK}") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON (a str is written as is), atomically."""
    text = obj if isinstance(obj, str) else json.dumps(obj, indent=2, sort_keys=False)
    write_bytes_atomic(Path(path), text.encode())


def digest(path: Path, chunk: int = 1 << 24) -> str:
    """xxh64 hex digest of a file's bytes (streamed)."""
    h = xxhash.xxh64()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def digests(folder: Path, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """``{name: {"bytes", "xxh64"}}`` for ``names`` (default: every file directly in ``folder``)."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir() if p.is_file()) if names is None else names
    return {n: {"bytes": (folder / n).stat().st_size, "xxh64": digest(folder / n)} for n in names}


def verify(folder: Path, recorded: Mapping[str, Mapping[str, Any]], check_digest: bool = True) -> list[str]:
    """Problems of ``folder`` against recorded ``{name: {"bytes", "xxh64"}}`` (empty list: all good)."""
    problems = []
    for name, entry in recorded.items():
        f = Path(folder) / name
        if not f.is_file():
            problems.append(f"{f}: missing")
        elif f.stat().st_size != entry["bytes"]:
            problems.append(f"{f}: {f.stat().st_size} bytes, expected {entry['bytes']}")
        elif check_digest and digest(f) != entry["xxh64"]:
            problems.append(f"{f}: xxh64 differs from the recorded {entry['xxh64']}")
    return problems


def relative(path: Path | str, root: Path | str) -> str:
    """``path`` relative to ``root`` in POSIX form when inside it, else unchanged (a URL or outside path)."""
    p = str(path)
    if "://" in p:
        return p
    try:
        return Path(os.path.abspath(p)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return p
