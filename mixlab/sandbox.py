"""Run untrusted Python (model completions, synthetic solutions) in a jail, and judge it against trusted tests.

Size: ~430 lines, kept whole on purpose: the isolation argument (what the jail exposes, how the verdict is
reached) should be read in one file; the jail command and the in-jail child live in `_sandbox_jail.py` and
`_sandbox_child.py`.

Two entry points:

- :func:`run_tests` (``code``, ``tests``, ``entry_point``): the verdict on *untrusted code under trusted tests*.
  The code and the tests run in **two separate jails**. The candidate jail executes ``code`` and then only
  answers calls; the judge jail executes the trusted ``setup`` and ``tests`` with every top-level name of the
  candidate bound to a proxy that sends ``(name, args, kwargs)`` over a pipe and returns the reply. Replies
  are a tagged binary encoding decoded into builtin types only (str, int, float, bool, None, list, tuple, set, frozenset,
  dict, bytes, bytearray, complex), so no candidate object, ``__eq__`` or code reaches the judge; exceptions
  come back as a type name, rebuilt as the builtin exception of that name or ``CandidateError``. Only the judge
  holds the report descriptor, and it cannot be reached from the candidate jail (other pid, mount and
  network namespaces; the candidate never sees the tests, nor any secret). So the candidate cannot forge a
  pass: not by exiting early (``SystemExit`` is a failure; a dead or silent candidate makes the judge's call
  fail), not by reading a secret (there is none on its side), not by patching the tests, ``check`` or the
  assertion machinery (they live in another process). Costs of the design: arguments and results must be
  plain data, and a test that relies on the candidate mutating its arguments sees copies.
- :func:`run_python` (one program): ``passed`` means the program ran to its last line without an exception
  (an early ``exit()``/``os._exit(0)`` is ``failed``). The program reports on its own, so this verdict is
  only as trustworthy as the program (it can find its own report descriptor): use it for code you would
  believe anyway, and :func:`run_tests` to judge untrusted code.

``status`` is exactly one of ``"passed"``, ``"failed"`` (an ``AssertionError``, an early exit, or a
candidate that died or went silent with status 0), ``"timeout"`` (wall clock, or the CPU backstop
``int(timeout_s) + 2`` s), ``"memory"`` (``MemoryError``, or SIGKILL by the cgroup/kernel OOM killer) and
``"error"`` (any other exception, a fatal signal such as SIGXFSZ, or a jail that could not start).

Levels. ``strict`` (the default) runs each side in a bubblewrap jail (:mod:`mixlab._sandbox_jail`): the jail
sees only the interpreter, its standard library and the shared libraries it loads, read-only (never ``/``,
``/etc``, a home or the repository; site-packages is masked unless ``allow_site_packages``), a fresh
``/proc`` (its own pid namespace: no host process is visible), a read-only minimal ``/dev``, and one
private tmpfs capped at ``max_disk_mb`` as its only writable place (``/`` is remounted read-only). It has no
network of any family: a new network namespace (abstract Unix sockets are per namespace) and no host path
at which a Unix socket could be reached. A root parent's child switches to ``nobody`` inside the jail (a user
namespace would keep host uid 0), with no capabilities and ``no_new_privs``. Limits: RLIMIT_AS/CPU/FSIZE/
NOFILE/NPROC/CORE set as hard limits before the program runs; plus, where cgroups are writable (v1
``pids``+``memory`` or delegated v2), a per-jail cgroup whose ``pids.max`` and memory limit hold even for
uid 0 (every jail process starts inside it: the launcher waits until it has been moved). ``--die-with-parent``
kills the jail with its parent; the next run removes cgroups and temporary folders of dead parents.
``weak`` is the fallback when bubblewrap is missing or cannot start: ``unshare`` network/pid namespaces,
``setpriv`` capability drop, the same limits, a host temporary folder, **no file-system isolation**. A machine
that cannot give ``strict`` makes every run raise :class:`SandboxUnavailable` saying why, unless the caller
opts in with ``level="weak"`` or ``MIXLAB_SANDBOX_LEVEL=weak`` (then a warning is logged once).
Both levels also patch sockets and process creation out of Python (``block_network``/``block_subprocess``):
defence in depth only. Imports only the standard library.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import secrets
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from mixlab import _sandbox_jail as jail

Status = Literal["passed", "failed", "timeout", "memory", "error"]
Level = Literal["strict", "weak"]
LEVEL_ENV = "MIXLAB_SANDBOX_LEVEL"
PROGRAM_FILE = "program.py"
UNSHARE_LOST_SIGNAL = "unshare: sigprocmask unblock failed"  # printed (exit 1) when its child got SIGKILL
_CHILD = (Path(__file__).with_name("_sandbox_child.py")).read_text()
log = logging.getLogger(__name__)


class SandboxUnavailable(RuntimeError):
    """This machine cannot give the requested isolation level (the message says what is missing)."""


@dataclass(frozen=True)
class TestedProgram:
    """Untrusted ``code`` judged by trusted ``tests`` (and ``check(entry_point)`` when set); ``setup`` is
    trusted code run before the tests on the judge's side (e.g. a prompt's helper functions)."""

    code: str
    tests: str
    entry_point: str | None = None
    setup: str = ""


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one sandboxed run; ``passed`` is ``status == "passed"``; ``workdir`` no longer exists."""

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    detail: str = ""
    workdir: str = ""
    cpu_s: float | None = None  # user + system CPU time of the child and its descendants
    max_rss_mb: float | None = None  # peak resident memory of the largest process

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        """JSON-ready dict including ``passed``."""
        return {**asdict(self), "passed": self.passed}


_warned: set[str] = set()


def resolve_level(level: str | None = None, python: str | None = None) -> Level:
    """The level runs get: ``level``, else ``$MIXLAB_SANDBOX_LEVEL``, else strict; raises
    :class:`SandboxUnavailable` when strict is asked for and this machine cannot give it."""
    level = level or os.environ.get(LEVEL_ENV) or "strict"
    if level not in ("strict", "weak"):
        raise ValueError(f"unknown sandbox level {level!r}: use 'strict' or 'weak' ({LEVEL_ENV})")
    python = jail.interpreter(python)
    problem = jail.strict_problem(python)
    if level == "strict" and problem:
        raise SandboxUnavailable(
            f"the strict sandbox is not available on this machine: {problem}. Untrusted code is refused. "
            f"To accept a sandbox without file-system isolation, set {LEVEL_ENV}=weak (or pass level='weak').")
    if level == "weak" and "weak" not in _warned:
        _warned.add("weak")
        log.warning("mixlab sandbox: running untrusted code at the WEAK level (no file-system isolation)%s",
                    f": {problem}" if problem else "")
    return "strict" if level == "strict" else "weak"


def isolation(python: str | None = None, level: str | None = None) -> dict[str, object]:
    """What a run gets on this machine (see the module docstring); ``level`` is None when refused."""
    python = jail.interpreter(python)
    try:
        lv: str | None = resolve_level(level, python)
    except SandboxUnavailable:
        lv = None
    strict = lv == "strict"
    return {
        "level": lv,
        "strict_problem": jail.strict_problem(python),
        "filesystem_isolation": strict,
        "namespaces": "mount pid net ipc uts" if strict else (" ".join(jail.weak_prefix()[0][1:-1]) or None),
        "cgroup": jail.cgroup_kind(),
        "run_as": "nobody" if os.geteuid() == 0 and (strict or jail.weak_prefix()[1] >= 0) else "caller",
        "rlimits": ["AS", "CPU", "FSIZE", "NOFILE", "NPROC", "CORE"],
        "disk_capped": strict,
        "parent_is_root": os.geteuid() == 0,
    }


@dataclass
class _Side:
    proc: subprocess.Popen | None
    out: object
    err: object
    cgroup: jail.Cgroup | None
    hostdir: str | None
    start_error: str = ""


def _launch(mode: str, program: str, extra: dict, fds: tuple[int, ...], lv: Level, python: str, limits: dict,
            opts: dict, workdir: str) -> _Side:
    """Start one jail running ``_sandbox_child`` in ``mode``; never raises (a failure is ``start_error``)."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 (closed by _finish)
    side = _Side(None, out, err, None, None)
    site = ("-I",) if opts["allow_site_packages"] else ("-I", "-S")
    if lv == "strict":
        cmd = [*jail.bwrap_argv(shutil.which("bwrap") or "bwrap", python, workdir, opts["max_disk_mb"] << 20,
                                opts["allow_site_packages"]), python, *site, "-c", _CHILD]
        uid, cwd = jail.jail_uid(), "/"
    else:
        prefix, uid = jail.weak_prefix()
        side.hostdir = cwd = tempfile.mkdtemp(prefix=f"mixlab-sandbox-{os.getpid()}-", dir=opts["tmp_root"])
        if uid >= 0:
            os.chown(cwd, uid, uid)
        cmd = [*prefix, python, *site, "-c", _CHILD]
        workdir = cwd
    if jail.cgroup_kind():
        try:
            side.cgroup = jail.Cgroup.create(limits["NPROC"] + 3, (opts["memory_mb"] + opts["max_disk_mb"] + 64) << 20)
        except OSError as e:
            side.start_error = f"cannot create the run's cgroup: {e}"
            return side
        cmd = [*jail.LAUNCHER, *cmd]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "HOME": workdir, "TMPDIR": workdir}
    job = {"mode": mode, "program": program, "rlimits": limits, "uid": uid,
           "block_network": opts["block_network"], "block_subprocess": opts["block_subprocess"], **extra}
    try:
        side.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=cwd, env=env,
                                     start_new_session=True, close_fds=True, pass_fds=fds)
        assert side.proc.stdin is not None
        if side.cgroup is not None:
            side.cgroup.add(side.proc.pid)
            side.proc.stdin.write(b"\n")
        with contextlib.suppress(OSError):
            side.proc.stdin.write(marshal.dumps(job))
    except OSError as e:
        side.start_error = f"cannot start: {e}"
    finally:
        if side.proc is not None and side.proc.stdin is not None:
            with contextlib.suppress(OSError):
                side.proc.stdin.close()
    return side


def _wait(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait until ``proc`` exits (left unreaped); False on timeout."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout_s * 1000))))
    finally:
        os.close(pidfd)


def _finish(side: _Side, lv: Level, tail_bytes: int) -> tuple[int | None, str, str, float | None, float | None]:
    """Kill what is left of ``side``, reap it, release its cgroup and folder: (rc, stdout, stderr, cpu, rss)."""
    cpu = rss = None
    rc = None
    if side.proc is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(side.proc.pid, signal.SIGKILL)
        if side.proc.returncode is None:
            _, wstatus, usage = os.wait4(side.proc.pid, 0)
            side.proc.returncode = os.waitstatus_to_exitcode(wstatus)
            cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
        rc = side.proc.returncode
    if side.cgroup is not None:
        side.cgroup.remove()
    if side.hostdir is not None:
        _rmtree(side.hostdir)
    stdout, stderr = _tail(side.out, tail_bytes), _tail(side.err, tail_bytes)
    side.out.close()
    side.err.close()
    if rc is not None and lv == "strict" and rc > 128:  # bubblewrap exits 128 + signal for a killed child
        rc = -(rc - 128)
    if rc == 1 and UNSHARE_LOST_SIGNAL in stderr:  # util-linux 2.38 cannot re-raise SIGKILL
        rc = -signal.SIGKILL
    return rc, stdout, side.start_error + stderr, cpu, rss


def _options(timeout_s: float, memory_mb: int, kw: dict) -> tuple[dict, dict]:
    opts = {"memory_mb": memory_mb, "max_output_mb": 16, "max_disk_mb": 64, "max_open_files": 64,
            "max_processes": 64, "block_network": True, "block_subprocess": True, "allow_site_packages": False,
            "tail_bytes": 4096, "python": None, "tmp_root": None, "level": None}
    unknown = set(kw) - set(opts)
    if unknown:
        raise TypeError(f"unknown sandbox option(s) {sorted(unknown)}; known: {sorted(opts)}")
    opts.update(kw)
    limits = {"AS": memory_mb << 20, "CPU": int(timeout_s) + 2, "FSIZE": opts["max_output_mb"] << 20,
              "NOFILE": opts["max_open_files"], "NPROC": opts["max_processes"], "CORE": 0}
    return opts, limits


def run_python(program: str, timeout_s: float = 5.0, memory_mb: int = 512, **kwargs) -> SandboxResult:
    """Run one program (module docstring: its verdict is the program's own). Options (keywords): max_output_mb
    (16: stdout, stderr, each file), max_disk_mb (64: the jail's tmpfs), max_open_files (64), max_processes
    (64), block_network, block_subprocess (True), allow_site_packages (False), tail_bytes (4096), python,
    tmp_root (weak level's folder root), level ('strict' | 'weak'; default ``$MIXLAB_SANDBOX_LEVEL`` or strict)."""
    opts, limits = _options(timeout_s, memory_mb, kwargs)
    python = jail.interpreter(opts["python"])
    lv = resolve_level(opts["level"], python)
    jail.clean_stale()
    workdir = f"/tmp/mixlab-sandbox-{secrets.token_hex(8)}"
    start = time.perf_counter()
    with tempfile.TemporaryFile() as rep:
        side = _launch("run", program, {"report": rep.fileno()}, (rep.fileno(),), lv, python, limits, opts, workdir)
        timed_out = side.proc is not None and not _wait(side.proc, timeout_s)
        rc, out, err, cpu, rss = _finish(side, lv, opts["tail_bytes"])
        workdir = side.hostdir or workdir
        if side.proc is None:
            return SandboxResult("error", None, "", err, time.perf_counter() - start, side.start_error, workdir)
        cpu_out = cpu is not None and cpu >= limits["CPU"] - 0.5
        status, detail = _classify(rc, _read_report(rep), timed_out, cpu_out)
        if status == "error" and rc == 1 and _read_report(rep) is None and "bwrap: " in err:
            detail = "the jail could not start"
        return SandboxResult(status, rc, out, err, time.perf_counter() - start, detail, workdir, cpu, rss)


def run_tests(code: str, tests: str, entry_point: str | None = None, timeout_s: float = 5.0,
              memory_mb: int = 512, *, setup: str = "", **kwargs) -> SandboxResult:
    """Judge untrusted ``code`` by trusted ``tests`` in two jails (module docstring); options as
    :func:`run_python`, applied to each jail. ``stdout`` is the candidate's; ``stderr`` both sides'."""
    opts, limits = _options(timeout_s, memory_mb, kwargs)
    python = jail.interpreter(opts["python"])
    lv = resolve_level(opts["level"], python)
    jail.clean_stale()
    to_c, from_c = os.pipe(), os.pipe()  # (read, write) each: judge -> candidate, candidate -> judge
    start = time.perf_counter()
    with tempfile.TemporaryFile() as rep:
        try:
            cand = _launch("serve", code, {"rx": to_c[0], "tx": from_c[1]}, (to_c[0], from_c[1]), lv, python,
                           limits, opts, f"/tmp/mixlab-sandbox-{secrets.token_hex(8)}")
            judge = _launch("judge", tests, {"rx": from_c[0], "tx": to_c[1], "report": rep.fileno(),
                                             "setup": setup, "entry_point": entry_point or ""},
                            (from_c[0], to_c[1], rep.fileno()), lv, python, limits, opts,
                            f"/tmp/mixlab-sandbox-{secrets.token_hex(8)}")
        finally:
            for fd in (*to_c, *from_c):
                os.close(fd)
        timed_out = False
        if judge.proc is not None:
            timed_out = not _wait(judge.proc, timeout_s)
            if not timed_out and cand.proc is not None:  # a candidate that just died: let its status arrive
                _wait(cand.proc, min(0.5, max(0.0, timeout_s - (time.perf_counter() - start))))
        c_rc = cand.proc.poll() if cand.proc is not None else None
        c = _finish(cand, lv, opts["tail_bytes"])
        j = _finish(judge, lv, opts["tail_bytes"])
        c_rc = c[0] if c_rc is not None else None
        err = (c[2] + j[2])[-opts["tail_bytes"]:]
        wall = time.perf_counter() - start
        if judge.proc is None or cand.proc is None:
            return SandboxResult("error", None, "", err, wall, cand.start_error or judge.start_error)
        c_cpu = c[3] is not None and c[3] >= limits["CPU"] - 0.5
        j_cpu = j[3] is not None and j[3] >= limits["CPU"] - 0.5
        report = _read_report(rep)
        if report is not None and report[0] == "GONE" and not timed_out:
            status, detail = _candidate_gone(c_rc, c_cpu)
        else:
            status, detail = _classify(j[0], report, timed_out, j_cpu)
        cpu = None if c[3] is None or j[3] is None else c[3] + j[3]
        return SandboxResult(status, j[0], c[1], err, wall, detail, "", cpu, max(c[4] or 0, j[4] or 0) or None)


def _candidate_gone(rc: int | None, cpu_out: bool) -> tuple[Status, str]:
    """Status when the candidate process stopped answering the judge (pure)."""
    if rc is None:
        return "failed", "the candidate closed its channel before the tests ended"
    if rc == -signal.SIGXCPU or (rc == -signal.SIGKILL and cpu_out):
        return "timeout", "CPU-time limit"
    if rc == -signal.SIGKILL:
        return "memory", "candidate killed by SIGKILL (out of memory)"
    if rc < 0:
        return "error", f"candidate killed by signal {signal.Signals(-rc).name}"
    return "failed", f"the candidate exited (status {rc}) before the tests ended"


def _tail(f, nbytes: int) -> str:
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - nbytes))
    return f.read().decode("utf-8", "replace")


def _rmtree(path: str) -> None:
    """Remove ``path`` even when the program left read-only or unsearchable directories behind."""

    def fix(func, p, _exc):
        os.chmod(os.path.dirname(p), stat.S_IRWXU)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, stat.S_IRWXU)
        func(p)

    shutil.rmtree(path, onerror=fix)


def _read_report(rep) -> tuple[str, str] | None:
    """(kind, detail) of the last report line; None when nothing was reported."""
    rep.seek(0)
    found = None
    for line in rep.read(1 << 16).decode("ascii", "replace").splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2:
            found = (parts[0], parts[1])
    return found


def _classify(
    returncode: int | None, report: tuple[str, str] | None, timed_out: bool, cpu_out: bool = False
) -> tuple[Status, str]:
    """Status and detail from how the child ended (pure; see the module docstring for the rules).
    ``cpu_out``: the child used up its CPU-time limit (then a SIGKILL is the kernel's hard CPU limit)."""
    if timed_out:
        return "timeout", "wall-clock limit"
    if returncode == -signal.SIGXCPU or (returncode == -signal.SIGKILL and cpu_out):
        return "timeout", "CPU-time limit"
    if report is not None:
        kind, detail = report
        if kind == "OK":
            return ("passed", "") if returncode == 0 else ("failed", f"exit status {returncode} after the end")
        if kind == "MEM":
            return "memory", "MemoryError"
        if kind == "CPU":
            return "timeout", "CPU-time limit"
        if kind == "FAIL":
            return "failed", detail
        if kind == "EXIT":
            return "failed", f"SystemExit({detail}) before the end of the program"
        return "error", detail
    if returncode == -signal.SIGKILL:
        return "memory", "killed by SIGKILL (out of memory)"
    if returncode == -signal.SIGXFSZ:
        return "error", "output or file size limit exceeded"
    if returncode is not None and returncode < 0:
        return "error", f"killed by signal {signal.Signals(-returncode).name}"
    return "failed", f"exited with status {returncode} before the end of the program"


def run_many(
    programs: Sequence[str | TestedProgram], workers: int | None = None, timeout_s: float = 5.0,
    memory_mb: int = 512, **kwargs,
) -> list[SandboxResult]:
    """:func:`run_python` on each ``str``, :func:`run_tests` on each :class:`TestedProgram`, ``workers`` at a
    time (default: CPU count); results in input order. Refuses up front (SandboxUnavailable) like they do."""
    resolve_level(kwargs.get("level"), kwargs.get("python"))

    def one(p: str | TestedProgram) -> SandboxResult:
        if isinstance(p, TestedProgram):
            return run_tests(p.code, p.tests, p.entry_point, timeout_s, memory_mb, setup=p.setup, **kwargs)
        return run_python(p, timeout_s, memory_mb, **kwargs)

    workers = max(1, workers or os.cpu_count() or 1)
    if workers == 1 or len(programs) <= 1:
        return [one(p) for p in programs]
    with ThreadPoolExecutor(max_workers=min(workers, len(programs)), thread_name_prefix="sandbox") as pool:
        return list(pool.map(one, programs))
