"""The workspace: where stage outputs live, how they are written, verified and shared by concurrent runs.

Contract:
- ``Workspace(root).lock(*parts)`` is an exclusive ``flock`` on ``<root>/.locks/<parts>.lock``: a stage builds an
  output only while holding its lock, so two runs on one workspace never write the same output; the second waits
  (logging once that it waits) and then finds the output done and reuses it. The kernel drops the lock when a
  process dies, so a killed run never blocks the next.
- ``clean_stale(out)`` (call it under the output's lock) removes what killed runs left beside ``out``: temporary
  siblings ``.<name>.tmp-*``. Nothing else owns them while the lock is held.
- ``Workspace.gc(...)`` removes staging that killed runs left and no run will resume (see :meth:`Workspace.gc`):
  ``.<out>.partial/`` (pack), ``.<out>.build/`` (tokenize) and ``.<name>.tmp-*`` anywhere. It never removes an
  entry whose output lock a live run holds (it takes that lock, non-blocking, and keeps it while removing, so a
  run starting meanwhile waits and then rebuilds), nor one modified within ``older_than_s`` (default a day: a
  task of a killed submitter may still write), nor, unless ``all_staging``, the resumable staging a re-run would
  resume: the most recently touched staging of its phase or source (any key) when no finished output of that
  family is newer and its own output is not finished.
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
import stat
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import xxhash

from mixlab.errors import WorkspaceBusyError

log = logging.getLogger("mixlab")
TMP_MARK = ".tmp-"
STAGING_SUFFIXES = {".partial": "partial", ".build": "build"}  # resumable staging: pack writer, tokenize
GC_OLDER_THAN_S = 24 * 3600.0


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

    def lock_path(self, *parts: str) -> Path:
        """The file whose ``flock`` guards the output ``parts`` (not created here)."""
        return self.root / ".locks" / ("__".join(parts).replace(os.sep, "__") + ".lock")

    @contextlib.contextmanager
    def lock(self, *parts: str, timeout: float | None = None) -> Iterator[None]:
        """Hold the exclusive lock of the output ``parts`` (module contract); ``timeout`` None waits forever."""
        path = self.lock_path(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
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


    def staging(self) -> list[Staging]:
        """Every staging entry in the workspace (``.*.partial/``, ``.*.build/``, ``.*.tmp-*``), sorted by path; an
        entry's insides are not searched (they belong to it), ``.locks/`` and symbolic links are skipped."""
        found: list[Staging] = []

        def walk(folder: str) -> None:
            with os.scandir(folder) as it:
                for e in it:
                    if e.is_symlink() or (e.name == ".locks" and folder == str(self.root)):
                        continue
                    kind = _staging_kind(e.name, e.is_dir())
                    if kind:
                        found.append(self._staging_entry(Path(e.path), kind))
                    elif e.is_dir():
                        walk(e.path)

        if self.root.is_dir():
            walk(str(self.root))
        return sorted(found, key=lambda x: x.path)

    def gc(self, older_than_s: float = GC_OLDER_THAN_S, all_staging: bool = False, dry_run: bool = False,
           now: float | None = None) -> GcReport:
        """Remove the staging of killed runs that no run will resume; returns every entry found with what was done
        and why. An entry is removed only when (1) no live run holds its output's lock (taken non-blocking here
        and held while removing), (2) nothing in it changed for ``older_than_s`` seconds, and (3) it is not the
        resumable staging of the current key (:meth:`is_current`), unless ``all_staging``. ``dry_run``: decide,
        remove nothing, create no lock file."""
        now = time.time() if now is None else now
        entries = self.staging()
        report = GcReport(dry_run=dry_run)
        for entry in entries:
            with self._try_locks(entry, create=not dry_run) as free:
                age = now - entry.modified
                if not free:
                    report.kept.append((entry, "in use: a live run holds its lock"))
                elif age < older_than_s:
                    report.kept.append((entry, f"modified {_age(age)} ago, under --older-than {_age(older_than_s)}"))
                elif entry.kind != "tmp" and not all_staging and self.is_current(entry, entries):
                    report.kept.append((entry, f"resumable: the latest work on {entry.family!r} (a re-run of its "
                                               "recipe resumes it; --all-staging removes it)"))
                else:
                    why = "temporary file of a run that ended" if entry.kind == "tmp" else "superseded key"
                    if not dry_run:
                        try:
                            _remove(entry.path)
                        except OSError as e:
                            report.kept.append((entry, f"could not remove: {e}"))
                            continue
                    report.removed.append((entry, why))
        return report

    def is_current(self, entry: Staging, entries: list[Staging]) -> bool:
        """True when ``entry`` (a ``.partial``/``.build``) is what a re-run would resume: its own output is not
        finished and it is the most recently modified of its family (same folder, same phase or source name, any
        key) among the staging ``entries`` and the finished outputs there (a newer key's output supersedes it)."""
        parent = entry.path.parent
        if (parent / entry.output).exists():
            return False  # left over after its output was finished: nothing to resume
        rivals = [x.modified for x in entries
                  if x.kind != "tmp" and x.path.parent == parent and x.family == entry.family and x.path != entry.path]
        rivals += [p.stat().st_mtime for p in parent.iterdir()
                   if p.is_dir() and not p.name.startswith(".") and p.name.rsplit("-", 1)[0] == entry.family]
        return all(entry.modified >= r for r in rivals)

    def _staging_entry(self, path: Path, kind: str) -> Staging:
        rel = path.relative_to(self.root).parts
        stage, owner = (rel[0], rel[1]) if len(rel) > 1 else ("", rel[0])
        size, newest = 0, path.lstat().st_mtime
        if path.is_dir():
            for folder, dirs, files in os.walk(path):
                for name in dirs + files:
                    st = os.lstat(os.path.join(folder, name))
                    newest = max(newest, st.st_mtime)
                    size += st.st_size if name in files else 0
        else:
            size = path.lstat().st_size
        return Staging(path, kind, stage, _output_name(owner), size, newest)

    @contextlib.contextmanager
    def _try_locks(self, entry: Staging, create: bool) -> Iterator[bool]:
        """Take, non-blocking, the lock of ``entry``'s output and every lock naming that output (e.g. eval's, below
        a trained phase); yields False if any is held elsewhere. ``create`` False: only existing lock files."""
        paths = {self.lock_path(*([entry.stage] if entry.stage else []), entry.output)}
        if (self.root / ".locks").is_dir():
            paths |= {p for p in (self.root / ".locks").glob("*.lock") if entry.output in p.stem.split("__")}
        handles = []
        free = True
        try:
            for path in sorted(paths):
                if not create and not path.exists():
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                handles.append(open(path, "a+"))  # noqa: SIM115 (closed below: closing releases the flock)
                try:
                    fcntl.flock(handles[-1], fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    free = False
                    break
            yield free
        finally:
            for fh in handles:
                fh.close()


@dataclass(frozen=True)
class Staging:
    """A staging entry of a workspace: what a stage writes before renaming it to its output."""

    path: Path
    kind: str  # "partial" (pack), "build" (tokenize) or "tmp" (any atomic write)
    stage: str  # the workspace folder it is in ("packed", "tokens", ...); "" at the root
    output: str  # the output it belongs to: its lock is Workspace.lock(stage, output)
    bytes: int  # sizes of its files, summed
    modified: float  # newest modification time of it and everything in it (seconds since the epoch)

    @property
    def family(self) -> str:
        """The output's name without its key: the phase or source (``pretrain`` of ``pretrain-<key>``)."""
        return self.output.rsplit("-", 1)[0]


@dataclass
class GcReport:
    """What :meth:`Workspace.gc` removed (or, in a dry run, would remove) and kept, each with the reason."""

    dry_run: bool
    removed: list[tuple[Staging, str]] = field(default_factory=list)
    kept: list[tuple[Staging, str]] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(entry.bytes for entry, _ in self.removed)


def _staging_kind(name: str, is_dir: bool) -> str | None:
    if not name.startswith("."):
        return None
    if TMP_MARK in name:
        return "tmp"
    suffix = os.path.splitext(name)[1]
    return STAGING_SUFFIXES.get(suffix) if is_dir else None


def _output_name(component: str) -> str:
    """The output a top-level entry belongs to: ``.<out>.partial``, ``.<out>.build``, ``.<out>.tmp-*`` -> ``<out>``."""
    if component.startswith(".") and TMP_MARK in component:
        return component[1 : component.index(TMP_MARK)]
    suffix = os.path.splitext(component)[1]
    if component.startswith(".") and suffix in STAGING_SUFFIXES:
        return component[1 : -len(suffix)]
    return component


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{max(seconds, 0):.0f} s"


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


# Large buffers reach the page cache in pieces of this size. On this project's VM (ext4, Linux 6.18) a 1 GiB
# buffer written into a new file from memory took 2.4-2.5 s as one write() or 16 MiB writes, 1.04 s in 1 MiB
# writes, 0.63 s in 512 KiB, 0.22-0.23 s in 256 KiB, 0.24 s in 128 KiB, 0.27 s in 64 KiB and 1.06 s in 4 KiB
# (syscalls): large writes get large page-cache folios, which this host backs slowly (perf: the time is in
# copy_folio_from_iter_atomic, the copy itself). Same bytes, same file either way.
WRITE_PIECE_BYTES = 1 << 18


def write_in_pieces(f: BinaryIO, data: Any) -> None:
    """``f.write(data)`` for any buffer (bytes, a C-contiguous array), issued ``WRITE_PIECE_BYTES`` at a time."""
    view = memoryview(data).cast("B")
    for start in range(0, len(view), WRITE_PIECE_BYTES):
        f.write(view[start : start + WRITE_PIECE_BYTES])


# Two blocks of 8 MiB (one filled while a thread writes the other). Every byte of them is new memory for a fresh
# process, which this VM faults in at 0.7-1 ms/MB (2-2.7 once the host has taken memory back), so smaller blocks
# serve small files: x10's 27 MB pack 0.03-0.08 s with 16 MiB blocks. O_DIRECT, x1000's pack (2.7 GB): 8 MiB
# 1.75-2.21 s, 16 MiB 1.75-1.86 s (quiet machine); earlier, one write in flight: 4 MiB 3.63-3.74 s, 16 MiB
# 2.72-2.82 s, 32 MiB 2.89-3.21 s, 64 MiB 3.09 s (dd alone: 1.4-2.3 GB/s).
BLOCK_BYTES = 1 << 23
DIRECT_ALIGN = 4096  # buffer address, file offset and length of every O_DIRECT write (logical blocks: 512 here)


class BlockWriter:
    """A new file written front to back through two aligned ``BLOCK_BYTES`` blocks: one is filled (by
    :meth:`write`, or in place through :meth:`claim`) while a thread hashes (xxh64 of every byte written:
    :meth:`hexdigest`) and writes the other. Both release the GIL, so the caller's next block is built while the
    last one is hashed and written: x100's pack (269 MB) spent ~0.09 s of its 0.31 s in the hash and the page-cache
    writes, which now run beside it.

    ``direct``: full blocks go through ``O_DIRECT`` (the page cache bypassed; the last partial block through the
    page cache, as O_DIRECT needs whole aligned blocks), for outputs too large to be read back from memory. Where
    the filesystem refuses O_DIRECT (tmpfs before Linux 6.6, some network filesystems), and when ``direct`` is
    False, blocks go to the page cache ``WRITE_PIECE_BYTES`` a write (:func:`write_in_pieces`).

    Why direct (measured on this project's VM, ext4 on virtio, Linux 6.18): once the ~1 GiB of memory the guest
    holds cheaply is used, each new page-cache page costs ~9 us to fault back in from the host (2.2 s/GB: x1000's
    2.7 GB pack paid 5.9-6.3 s for it), while O_DIRECT wrote 3 GiB in 1.4-2.0 s, fsync included. It also leaves
    the page cache to the token shards the next phase reads. Same bytes either way (tests)."""

    def __init__(self, path: Path, direct: bool = True) -> None:
        self.path = path
        self.block_bytes = BLOCK_BYTES  # what claim() hands out at most
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        self.direct = direct and hasattr(os, "O_DIRECT")
        try:
            self.fd = os.open(path, flags | (os.O_DIRECT if self.direct else 0), 0o666)
        except OSError:  # EINVAL: no O_DIRECT on this filesystem
            self.direct = False
            self.fd = os.open(path, flags, 0o666)
        size = self.block_bytes + DIRECT_ALIGN  # room for a claimed region of block_bytes after a carried tail
        raw = self._raw = _take_blocks(2 * size + DIRECT_ALIGN)
        skip = -_address(raw) % DIRECT_ALIGN
        # two blocks: one filled here while a thread writes the other (os.write releases the GIL; x1000's pack
        # waited ~1.1 s of its 3.9 s on synchronous 4 MiB direct writes)
        self._blocks = [memoryview(raw)[skip + k * size : skip + (k + 1) * size] for k in (0, 1)]
        self._block = self._blocks[0]
        self._fill = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._claimed = 0  # address of the region claim() handed out, until write() takes it
        self._hash = xxhash.xxh64()
        self.size = 0  # bytes in the file
        self.direct_bytes = 0  # of which written through O_DIRECT

    def hexdigest(self) -> str:
        """xxh64 of the bytes written so far to the file (call after :meth:`close` for the whole file)."""
        self._wait()
        return self._hash.hexdigest()

    def claim(self, nbytes: int) -> memoryview | None:
        """The next ``nbytes`` of the file, to be filled in place and then passed to :meth:`write`, which takes
        them without a copy (the pack writer gathers token rows straight into it: x1000 copied 2.7 GB here,
        ~0.23 s); None when they cannot fit in one block."""
        if nbytes + DIRECT_ALIGN > len(self._block):
            return None
        if self._fill + nbytes > len(self._block):
            self._hand_off(self._fill // DIRECT_ALIGN * DIRECT_ALIGN)
        region = self._block[self._fill : self._fill + nbytes]
        self._claimed = _address(region)
        return region

    def write(self, data: Any) -> None:
        """Append the bytes of ``data`` (bytes, a C-contiguous array, or the region :meth:`claim` gave)."""
        view = memoryview(data).cast("B")
        if self._claimed and len(view) and _address(view) == self._claimed:  # already in place
            self._claimed = 0
            self._fill += len(view)
            if self._fill == len(self._block):
                self._hand_off(self._fill)
            return
        self._claimed = 0
        while len(view):
            n = min(len(view), len(self._block) - self._fill)
            self._block[self._fill : self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == len(self._block):
                self._hand_off(self._fill)

    def _hand_off(self, upto: int) -> None:
        """Write ``block[:upto]`` (whole ``DIRECT_ALIGN`` units) in the background; the bytes after it move to the
        start of the other block, which becomes the one filled (after its own write has finished)."""
        self._wait()  # the other block's write: the file is written in order, one block in flight
        other = self._blocks[1] if self._block is self._blocks[0] else self._blocks[0]
        tail = self._fill - upto
        other[:tail] = self._block[upto : self._fill]
        if upto:
            self._pool = self._pool or ThreadPoolExecutor(1, thread_name_prefix="mixlab-direct")
            self._pending = self._pool.submit(self._flush, self._block[:upto])
        self._block, self._fill = other, tail

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # re-raises the thread's error here

    def _flush(self, block: memoryview) -> None:
        self._hash.update(block)
        if not self.direct:
            self._write_all(block)
            return
        try:
            self._write_all(block)
            self.direct_bytes += len(block)
        except OSError:  # EINVAL on the first direct write: the filesystem accepted the flag, not the I/O
            if self.size:
                raise
            self._buffered()
            self._write_all(block)

    def _write_all(self, block: memoryview) -> None:
        piece = len(block) if self.direct else WRITE_PIECE_BYTES  # the page cache: see WRITE_PIECE_BYTES
        done = 0
        while done < len(block):
            done += os.write(self.fd, block[done : done + piece])
        self.size += len(block)

    def _buffered(self) -> None:
        import fcntl

        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        self.direct = False

    def close(self) -> None:
        """Write the last partial block through the page cache and close the file."""
        try:
            self._wait()
            if self._fill:
                if self.direct:
                    self._buffered()
                self._hash.update(self._block[: self._fill])
                self._write_all(self._block[: self._fill])
                self._fill = 0
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            os.close(self.fd)
            self._blocks, self._block = [], memoryview(b"")  # the memory goes back to the free list
            _give_back(self._raw)

    def __enter__(self) -> BlockWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The blocks of finished BlockWriters, reused by the next: a fresh 32 MiB buffer per shard file cost this VM ~34 ms
# to fault in (new anonymous memory: 1.06 s/GiB without huge pages).
_FREE_BLOCKS: list[Any] = []
_FREE_LOCK = threading.Lock()


def _take_blocks(nbytes: int) -> Any:
    """``nbytes`` of uninitialized memory (a uint8 array): new pages are faulted in as they are first written, so a
    file smaller than the blocks pays only for what it fills (``bytearray(n)`` zeroed all 32 MiB up front: +17 ms
    for x10's 27 MB pack). Faulting the second block in ahead, in the writer's thread, measured slower (x10 0.042
    -> 0.044 s, x100 0.22 -> 0.24 s, medians of 6): not done."""
    import numpy as np

    with _FREE_LOCK:
        for i, raw in enumerate(_FREE_BLOCKS):
            if len(raw) == nbytes:
                return _FREE_BLOCKS.pop(i)
    return np.empty(nbytes, dtype=np.uint8)


def _give_back(raw: Any) -> None:
    with _FREE_LOCK:
        if len(_FREE_BLOCKS) < 2:
            _FREE_BLOCKS.append(raw)


def _address(buffer: Any) -> int:
    """The address of a buffer's first byte (read-only ones included)."""
    import numpy as np

    return int(np.frombuffer(buffer, dtype=np.uint8).ctypes.data)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary sibling (mode 0o666 less the umask, like ``open``, so
    other users of a shared cluster read manifests as they read shards; ``NamedTemporaryFile`` would leave 0o600),
    fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON (a str is written as is), atomically."""
    text = obj if isinstance(obj, str) else json.dumps(obj, indent=2, sort_keys=False)
    write_bytes_atomic(Path(path), text.encode())


def digest(path: Path | str, chunk: int = 1 << 24) -> str:
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


def verify(folder: Path, recorded: Mapping[str, Any], check_digest: bool = True) -> list[str]:
    """Problems of ``folder`` against recorded ``{name: {"bytes", "xxh64"}}`` (empty list: all good); an entry is
    anything ``entry["bytes"]`` and ``entry["xxh64"]`` read (a dict, a :class:`~mixlab.sealed.FileEntry`)."""
    problems = []
    folder = os.fspath(folder)
    for name, entry in recorded.items():
        f = os.path.join(folder, name)  # a str, not a Path: Path interns every part (x1000: 9,048 names, ~1 MB)
        try:
            st = os.stat(f)
            size = st.st_size if stat.S_ISREG(st.st_mode) else -1  # one stat a file (x1000: 9,048)
        except OSError:
            size = -1
        if size < 0:
            problems.append(f"{f}: missing")
        elif size != entry["bytes"]:
            problems.append(f"{f}: {size} bytes, expected {entry['bytes']}")
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
