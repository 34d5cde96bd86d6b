"""The jail around one sandboxed interpreter: bubblewrap command, per-run cgroup, stale-state cleanup.

Used by :mod:`mixlab.sandbox` (read its docstring for the security argument). Contract:

- :func:`strict_problem` is ``None`` when this machine gives the *strict* level (bubblewrap works, and a
  kernel-enforced process limit exists for the jailed uid), otherwise the reason, worded for the user;
- :func:`bwrap_argv` builds a jail that sees only the interpreter, its standard library and the shared
  libraries it loads (read-only), a fresh ``/proc``, a minimal ``/dev`` and one private, size-capped tmpfs;
  new pid, network, IPC, UTS (and cgroup) namespaces, ``--die-with-parent``, ``--new-session``;
- :class:`Cgroup` holds ``pids.max`` and the memory limit for uid 0 (cgroup v1 ``pids``+``memory``, or v2 where
  the controllers are delegated); every jail process is inside it from its first instruction (the launcher
  waits on stdin until it has been moved);
- :func:`weak_prefix` is the pre-bubblewrap fallback (``unshare`` network/pid namespaces and ``setpriv``), used
  only on explicit opt-in since it leaves the file system visible.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import uuid
from pathlib import Path

NOBODY = 65534
CGROUP_V1 = Path("/sys/fs/cgroup")
CGROUP_DIR = "mixlab-sandbox"
# Waits for the parent to move it into the run's cgroup (one line on stdin), then becomes the jail.
LAUNCHER = ("/bin/sh", "-c", 'read -r _ && exec "$@"', "mixlab-sandbox")


def _run_ok(cmd: list[str], timeout: float = 20, stdin: str | None = None) -> tuple[bool, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, env={"PATH": os.defpath}, input=stdin,
                           text=True)
    except (OSError, subprocess.SubprocessError) as e:
        return False, str(e)
    return p.returncode == 0, (p.stderr or p.stdout)[-500:]


def interpreter(python: str | None = None) -> str:
    """The real path of the interpreter the jail runs (a venv's ``python`` resolves to its base binary)."""
    return os.path.realpath(python or sys.executable)


@functools.cache
def _shared_libraries(python: str) -> tuple[tuple[str, str], ...]:
    """(host path, jail path) of the shared libraries the interpreter and its extension modules load."""
    stdlib = sysconfig.get_path("platstdlib", vars={"installed_base": sys.base_prefix,
                                                    "platbase": sys.base_prefix, "base": sys.base_prefix})
    objects = [python, *glob.glob(os.path.join(stdlib, "lib-dynload", "*.so"))]
    ldd = shutil.which("ldd")
    found: set[str] = set()
    if ldd:
        for i in range(0, len(objects), 64):
            try:
                out = subprocess.run([ldd, *objects[i : i + 64]], capture_output=True, text=True, timeout=60).stdout
            except (OSError, subprocess.SubprocessError):
                out = ""
            for line in out.splitlines():
                for tok in line.split():
                    if tok.startswith("/") and not tok.endswith(":") and os.path.exists(tok):
                        found.add(tok)
    if not found:  # no ldd (or a static build): the system library folders, read-only
        return tuple((d, d) for d in ("/lib", "/lib64", "/usr/lib", "/usr/lib64") if os.path.isdir(d))
    # A file under the interpreter's prefix is bound alone; otherwise its folder (a system library folder:
    # one bind instead of dozens, which costs ~60 ms per jail start).
    prefix = os.path.realpath(sys.base_prefix) + os.sep
    pairs = {(os.path.realpath(p), p) if os.path.realpath(p).startswith(prefix)
             else (os.path.realpath(os.path.dirname(p)), os.path.dirname(p)) for p in found}
    return tuple(sorted(pairs))


@functools.cache
def interpreter_binds(python: str, allow_site_packages: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(read-only binds as (src, dest) pairs flattened per pair, folders to mask with an empty read-only tmpfs)."""
    base = sys.base_prefix
    vars_ = {"installed_base": base, "platbase": base, "base": base, "installed_platbase": base}
    paths = sysconfig.get_paths(vars=vars_)
    keep = {paths["stdlib"], paths["platstdlib"]}
    site = {paths["purelib"], paths["platlib"]}
    binds: list[tuple[str, str]] = [(python, python), *_shared_libraries(python)]
    for d in sorted(keep | (site if allow_site_packages else set())):
        if os.path.isdir(d):
            binds.append((os.path.realpath(d), d))
    if os.path.exists("/etc/ld.so.cache"):
        binds.append(("/etc/ld.so.cache", "/etc/ld.so.cache"))
    masks = () if allow_site_packages else tuple(sorted(d for d in site if os.path.isdir(d)))
    seen, flat = set(), []
    for src, dest in binds:
        if dest not in seen:
            seen.add(dest)
            flat.append((src, dest))
    return tuple(x for pair in flat for x in pair), masks


def bwrap_argv(bwrap: str, python: str, workdir: str, disk_bytes: int, allow_site_packages: bool) -> list[str]:
    """The bubblewrap command line of one jail (see the module contract); the command follows it."""
    binds, masks = interpreter_binds(python, allow_site_packages)
    argv = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if os.geteuid() == 0:  # real root: the child switches to nobody itself; a user namespace would keep uid 0
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user"]
    dests = set(binds[1::2])
    parents = {str(q) for d in dests for q in Path(d).parents if str(q) != "/"} - dests
    for d in sorted(parents, key=lambda q: q.count("/")):  # bwrap would copy host modes (a 0700 home)
        argv += ["--perms", "0755", "--dir", d]
    for i in range(0, len(binds), 2):
        argv += ["--ro-bind", binds[i], binds[i + 1]]
    for m in masks:
        argv += ["--size", "4096", "--tmpfs", m, "--remount-ro", m]
    argv += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
             "--size", str(disk_bytes), "--perms", "1777", "--tmpfs", workdir,
             "--remount-ro", "/", "--chdir", workdir, "--"]
    return argv


def jail_uid() -> int:
    """The uid the program runs as inside a bubblewrap jail: nobody when the parent is root, else -1 (own)."""
    return NOBODY if os.geteuid() == 0 else -1


# ---- cgroups -------------------------------------------------------------------------------------------------
@functools.cache
def cgroup_kind() -> str | None:
    """'v1' (pids and memory hierarchies writable), 'v2' (delegated pids+memory) or None."""
    if all(os.access(CGROUP_V1 / c, os.W_OK) and (CGROUP_V1 / c / "cgroup.procs").exists()
           for c in ("pids", "memory")):
        return "v1"
    if (CGROUP_V1 / "cgroup.controllers").exists():
        try:
            cg = Cgroup.create(8, 64 << 20, kind="v2")
        except OSError:
            return None
        cg.remove()
        return "v2"
    return None


def _v2_base() -> Path:
    with open("/proc/self/cgroup") as f:
        rel = next(line.split(":", 2)[2].strip() for line in f if line.startswith("0::"))
    return CGROUP_V1 / rel.lstrip("/")


class Cgroup:
    """One run's cgroup(s): process count and memory (RAM + tmpfs pages) limits, kill-all, removal."""

    def __init__(self, dirs: list[Path]):
        self.dirs = dirs

    @classmethod
    def create(cls, max_pids: int, memory_bytes: int, kind: str | None = None) -> Cgroup:
        kind = kind or cgroup_kind()
        name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        made: list[Path] = []
        try:
            if kind == "v1":
                for ctrl in ("pids", "memory"):
                    d = CGROUP_V1 / ctrl / CGROUP_DIR / name
                    d.mkdir(parents=True)
                    made.append(d)
                (made[0] / "pids.max").write_text(str(max_pids))
                (made[1] / "memory.limit_in_bytes").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):  # only where swap accounting exists
                    (made[1] / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
            elif kind == "v2":
                parent = _v2_base().parent / CGROUP_DIR
                if not parent.exists():
                    parent.mkdir()
                    (parent / "cgroup.subtree_control").write_text("+pids +memory")
                d = parent / name
                d.mkdir()
                made.append(d)
                (d / "pids.max").write_text(str(max_pids))
                (d / "memory.max").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):
                    (d / "memory.swap.max").write_text("0")
            else:
                raise OSError("no usable cgroup hierarchy")
        except OSError:
            cls(made).remove()
            raise
        return cls(made)

    def add(self, pid: int) -> None:
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid))

    def pids(self) -> set[int]:
        out: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                out |= {int(x) for x in (d / "cgroup.procs").read_text().split()}
        return out

    def remove(self) -> None:
        """SIGKILL whatever is still inside, then remove the directories (best effort, bounded wait)."""
        for attempt in range(200):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005 * min(attempt + 1, 10))
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()


@functools.cache
def clean_stale() -> int:
    """Remove cgroups and temporary folders left by sandbox parents that died (once per process)."""
    removed = 0
    roots = [CGROUP_V1 / c / CGROUP_DIR for c in ("pids", "memory")]
    with contextlib.suppress(OSError, StopIteration):
        roots.append(_v2_base().parent / CGROUP_DIR)
    for root in roots:
        with contextlib.suppress(OSError):
            for d in root.iterdir():
                owner = d.name.split("-", 1)[0]
                if d.is_dir() and owner.isdigit() and not _alive(int(owner)):
                    Cgroup([d]).remove()
                    removed += not d.exists()
    import tempfile

    for d in glob.glob(os.path.join(tempfile.gettempdir(), "mixlab-sandbox-*")):
        owner = os.path.basename(d).split("-")[2]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---- levels ----------------------------------------------------------------------------------------------
@functools.cache
def strict_problem(python: str) -> str | None:
    """None when the strict level works here, else what is missing and how to get it."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return ("bubblewrap is not installed (install it: `apt-get install -y bubblewrap`, `dnf install "
                "bubblewrap`, ...)")
    workdir = "/tmp/mixlab-probe"
    argv = bwrap_argv(bwrap, python, workdir, 1 << 20, False)
    probe = (f"import os\nif os.getuid() == 0 and {jail_uid()} >= 0:\n"
             f"    os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n"
             "import json, traceback, subprocess, math, _struct, select\n")
    ok, err = _run_ok([*argv, python, "-I", "-S", "-c", probe])
    if not ok:
        return f"bubblewrap is installed but cannot start a jail here ({err.strip()})"
    return None


def weak_prefix() -> tuple[tuple[str, ...], int]:
    """(command prefix, uid to switch to or -1) of the weak level: unshare net/pid namespaces, setpriv."""
    return _namespace_prefix() + _privilege_prefix(interpreter())[0], _privilege_prefix(interpreter())[1]


@functools.cache
def _namespace_prefix() -> tuple[str, ...]:
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    pid = ("-p", "-f", "--kill-child")
    options = [("-n", *pid), ("-n",)]
    options = options + [("-r", *o) for o in options] if os.geteuid() == 0 else [("-r", *o) for o in options]
    for flags in options:
        if _run_ok([unshare, *flags, "--", "true"], timeout=10)[0]:
            return (unshare, *flags, "--")
    return ()


@functools.cache
def _privilege_prefix(python: str) -> tuple[tuple[str, ...], int]:
    setpriv = shutil.which("setpriv")
    prefix: tuple[str, ...] = ()
    if setpriv and _run_ok([setpriv, "--pdeathsig", "KILL", "--", "true"], timeout=10)[0]:
        prefix = (setpriv, "--pdeathsig", "KILL")
    if os.geteuid() != 0:
        return ((*prefix, "--") if prefix else ()), -1
    drop = f"import os; os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY}); import json, traceback"
    if _run_ok([python, "-I", "-S", "-c", drop], timeout=10)[0]:
        return ((*prefix, "--") if prefix else ()), NOBODY
    caps = ("--bounding-set=-all", "--inh-caps=-all", "--no-new-privs")
    if setpriv and _run_ok([setpriv, *caps, "--", "true"], timeout=10)[0]:
        return (*prefix, *caps, "--"), -1
    return ((*prefix, "--") if prefix else ()), -1
