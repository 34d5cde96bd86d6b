"""Escape attempts against mixlab.sandbox at the strict level: each one is an attack that must fail.

Each attack class comes from a real attempt on the previous sandbox (uid 0 kept, no mount namespace, a
verdict forgeable from the program's frames). The strict level needs bubblewrap (`apt-get install -y
bubblewrap`); without it these tests check that the sandbox refuses instead of running weaker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

import mixlab
from mixlab import _sandbox_jail as jail
from mixlab._sandbox_child import _dec, _enc
from mixlab.sandbox import SandboxUnavailable, isolation, run_python, run_tests

STRICT = jail.strict_problem(jail.interpreter()) is None
needs_strict = pytest.mark.skipif(not STRICT, reason="the strict level needs bubblewrap")
REPO = Path(mixlab.__file__).resolve().parent.parent


def _run(src: str, **kw):
    r = run_python(textwrap.dedent(src), **kw)
    assert r.passed, r
    return r


def test_refuses_without_strict_level_unless_opted_in():
    """With no bubblewrap on PATH a run raises SandboxUnavailable naming the fix and the opt-in; with
    MIXLAB_SANDBOX_LEVEL=weak the same run goes ahead (weak fallback)."""
    code = "from mixlab.sandbox import run_python\nprint(run_python('assert 1 + 1 == 2').status)\n"
    env = {k: v for k, v in os.environ.items() if k != "MIXLAB_SANDBOX_LEVEL"}
    env["PATH"] = "/nonexistent"
    refused = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "SandboxUnavailable" in refused.stderr
    assert "bubblewrap" in refused.stderr and "MIXLAB_SANDBOX_LEVEL=weak" in refused.stderr
    weak = subprocess.run([sys.executable, "-c", code], env={**env, "MIXLAB_SANDBOX_LEVEL": "weak"},
                          capture_output=True, text=True, timeout=60)
    assert weak.returncode == 0 and weak.stdout.strip() == "passed", weak.stderr
    if not STRICT:
        with pytest.raises(SandboxUnavailable):
            run_python("pass")


@needs_strict
def test_program_is_not_root_and_has_no_capabilities():
    """A root parent's program runs as nobody with no capabilities and no_new_privs: setuid(0) fails."""
    r = _run("""
        import os
        status = open('/proc/self/status').read()
        caps = {l.split(':')[0]: l.split()[1] for l in status.splitlines() if l.startswith('Cap')}
        print(os.getuid(), os.geteuid(), caps['CapEff'], caps['CapPrm'], 'NoNewPrivs:\\t1' in status)
        try:
            os.setuid(0)
        except PermissionError:
            print('setuid denied')
    """)
    uid, euid, eff, prm, nnp = r.stdout.split("\n")[0].split()
    assert int(uid) != 0 and int(euid) != 0 and int(eff, 16) == 0 and int(prm, 16) == 0 and nnp == "True"
    assert "setuid denied" in r.stdout


@needs_strict
def test_cannot_write_outside_its_folder():
    """Writes to the repository, the home folder, /, /tmp, the interpreter and root-owned files all fail,
    and nothing appears on the host; the work folder is the only writable place."""
    name = f"escape-{uuid.uuid4().hex}"
    targets = [REPO / name, Path.home() / name, Path("/") / name, Path("/tmp") / name,
               Path(sys.base_prefix) / name, Path("/etc/ld.so.cache"), Path(os.path.realpath(sys.executable))]
    r = _run(f"""
        import os
        for p in {[str(t) for t in targets]!r}:
            try:
                with open(p, 'ab') as f:
                    f.write(b'x')
                print('WROTE', p)
            except OSError:
                pass
        open('mine.txt', 'w').write('ok')
        print('own folder ok')
    """)
    assert "WROTE" not in r.stdout and "own folder ok" in r.stdout
    assert not any(t.exists() for t in targets[:5])


@needs_strict
def test_cannot_read_host_files():
    """/etc/shadow, /etc/passwd, the home folder and the repository do not exist in the jail."""
    r = _run(f"""
        import os
        for p in ['/etc/shadow', '/etc/passwd', {str(Path.home() / '.bashrc')!r}, {mixlab.__file__!r},
                  {str(REPO)!r}, '/work', '/home', '/var', '/run']:
            try:
                open(p).read(1) if not os.path.isdir(p) else os.listdir(p)
                print('READ', p)
            except OSError:
                pass
        print(sorted(os.listdir('/')))
    """)
    assert "READ" not in r.stdout, r.stdout


@needs_strict
def test_no_network_and_no_host_unix_socket(tmp_path):
    """Neither a host Unix socket (by path or abstract name) nor a host TCP port can be reached, even with
    the raw C socket type that bypasses the Python-level patch; the host listeners accept nothing."""
    path = str(tmp_path / "host.sock")
    abstract = f"\0mixlab-escape-{uuid.uuid4().hex}"
    listeners = []
    for family, addr in ((socket.AF_UNIX, path), (socket.AF_UNIX, abstract), (socket.AF_INET, ("127.0.0.1", 0))):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.bind(addr)
        s.listen(4)
        s.setblocking(False)
        listeners.append(s)
    port = listeners[2].getsockname()[1]
    r = _run(f"""
        import socket
        T = [c for c in socket.socket.__mro__ if c.__module__ == '_socket'][0]
        for fam, addr in ((socket.AF_UNIX, {path!r}), (socket.AF_UNIX, {abstract!r}),
                          (socket.AF_INET, ('127.0.0.1', {port})), (socket.AF_INET, ('1.1.1.1', 80))):
            try:
                s = T(fam, socket.SOCK_STREAM)
                s.settimeout(2)
                s.connect(addr)
                print('CONNECTED', addr)
            except OSError:
                pass
    """)
    assert "CONNECTED" not in r.stdout
    for s in listeners:
        with pytest.raises(BlockingIOError):
            s.accept()
        s.close()


@needs_strict
def test_host_processes_are_invisible():
    """/proc in the jail is fresh: no host process (this pytest, a marker process) is listed."""
    marker = f"{time.time():.6f}"
    host = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(30) # {marker}"])
    try:
        r = _run(f"""
            import os
            pids = [p for p in os.listdir('/proc') if p.isdigit()]
            seen = [open(f'/proc/{{p}}/cmdline', 'rb').read() for p in pids]
            print(len(pids), any({marker!r}.encode() in c or b'pytest' in c for c in seen))
        """)
    finally:
        host.kill()
        host.wait()
    count, found = r.stdout.split()
    assert found == "False" and int(count) <= 3


@needs_strict
def test_total_disk_is_capped():
    """Writing 1.5 GB as 100 files of 15 MB stops at the jail's tmpfs size (max_disk_mb), far below."""
    r = _run("""
        total = 0
        try:
            for i in range(100):
                with open(f'f{i}', 'wb') as f:
                    for _ in range(15):
                        f.write(b'x' * (1 << 20))
                        total += 1 << 20
        except OSError as e:
            print('stopped', e.errno)
        print(total)
    """, max_disk_mb=32, timeout_s=20)
    assert "stopped" in r.stdout and int(r.stdout.split()[-1]) <= 32 << 20


@needs_strict
def test_process_limit_holds():
    """500 os.fork() calls (subprocess patch off, so only the kernel limits) create at most max_processes
    processes, and none of them outlives the run."""
    marker = f"{time.time():.6f}"
    r = _run(f"""
        import os, sys
        made = 0
        for _ in range(500):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                os.execv(sys.executable, [sys.executable, '-S', '-c', 'import time; time.sleep(30)', {marker!r}])
            made += 1
        print(made)
    """, max_processes=16, block_subprocess=False, timeout_s=20)
    assert int(r.stdout) < 16
    time.sleep(0.3)
    leftovers = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline_has(p, marker)]
    assert leftovers == []


def _cmdline_has(pid: str, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@needs_strict
def test_killed_parent_leaves_nothing_running_and_next_run_cleans_up():
    """SIGKILL of the process that started a sandbox kills the jail (--die-with-parent); its cgroup is
    removed by the next run's stale cleanup."""
    marker = f"{time.time():.6f}"
    program = (f"import os, sys\nm = '{marker[:4]}' + '{marker[4:]}'\n"  # the marker is only in the exec'ed argv
               "os.execv(sys.executable, [sys.executable, '-S', '-c', 'import time; time.sleep(60)', m])\n")
    code = f"from mixlab.sandbox import run_python\nrun_python({program!r}, timeout_s=60)\n"
    parent = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 30
    while time.time() < deadline and not any(_cmdline_has(p, marker) for p in os.listdir("/proc") if p.isdigit()):
        time.sleep(0.1)
    assert time.time() < deadline, "the sandboxed program never started"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    time.sleep(0.5)
    assert not any(_cmdline_has(p, marker) for p in os.listdir("/proc") if p.isdigit())
    if jail.cgroup_kind() == "v1":
        stale = list((jail.CGROUP_V1 / "pids" / jail.CGROUP_DIR).glob(f"{parent.pid}-*"))
        assert stale, "the killed parent's cgroup should be left for the next run to clean"
        jail.clean_stale.cache_clear()
        jail.clean_stale()
        assert not any(p.exists() for p in stale)


# ---- the verdict -----------------------------------------------------------------------------------------
TESTS = "def check(candidate):\n    assert candidate(2) == 4\n    assert abs(candidate(3) - 9) < 1e-9\n"
WRONG = "def square(x):\n    return x + 1\n"
FORGERIES = {
    "exit 0 at load": WRONG + "import os\nos._exit(0)\n",
    "sys.exit(0) at load": WRONG + "import sys\nsys.exit(0)\n",
    "exit 0 when called": "def square(x):\n    import os\n    os._exit(0)\n",
    "write OK to every fd": WRONG + (
        "import os, gc, sys\nfor fd in range(3, 256):\n    for line in (b'OK -\\n', b'OK\\n'):\n"
        "        try:\n            os.write(fd, line)\n        except OSError:\n            pass\n"
        "secrets = [o for o in gc.get_objects() if isinstance(o, dict) and 'report' in o]\n"
        "f = sys._getframe()\nwhile f:\n    print(sorted(f.f_globals)[:5])\n    f = f.f_back\nos._exit(0)\n"),
    "replace AssertionError": WRONG + "import builtins\nbuiltins.AssertionError = type('A', (Exception,), {})\n",
    "define check": WRONG + "def check(candidate):\n    pass\n",
    "patch abs": WRONG + "import builtins\nbuiltins.abs = lambda x: 0\n",
    "trace away asserts": WRONG + "import sys\nsys.settrace(lambda *a: None)\n",
    "always-equal result": ("class E(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\n"
                            "    def __sub__(self, o):\n        return 0\n"
                            "def square(x):\n    return E(0)\n"),
    "read the tests": WRONG + "import os\nprint(os.listdir('.'), os.listdir('/tmp'), os.path.exists('tests.py'))\n",
}


@needs_strict
@pytest.mark.parametrize("attack", sorted(FORGERIES))
def test_verdict_cannot_be_forged(attack):
    """Candidate code that exits early with 0, writes a pass line to every descriptor, looks for a secret in
    its frames, or patches the assertion machinery / check / builtins / tracing, is never 'passed' when its
    answers are wrong: the tests run in the separate judge jail and only plain data comes back."""
    r = run_tests(FORGERIES[attack], TESTS, "square")
    assert r.status in ("failed", "error"), r


@needs_strict
def test_honest_candidate_passes_and_wrong_one_fails():
    """The judge design keeps the plain semantics: a right answer passes, a wrong one fails, an exception
    in the candidate is an error naming it; helpers from a trusted setup run on the judge's side."""
    assert run_tests("def square(x):\n    return x * x\n", TESTS, "square").status == "passed"
    assert run_tests(WRONG, TESTS, "square").status == "failed"
    r = run_tests("def square(x):\n    return 1 / 0\n", TESTS, "square")
    assert (r.status, r.detail) == ("error", "ZeroDivisionError")
    setup = "def helper(x):\n    return x * x\n"
    forged = "def helper(x):\n    return 0\ndef square(x):\n    return 0\n"  # redefining the helper changes nothing
    assert run_tests(forged, "assert square(3) == helper(3)\n", setup=setup).status == "failed"


def test_channel_encoding_is_plain_data_only():
    """Values cross the candidate channel as builtin types only: round trip is exact; objects, and malformed
    or truncated bytes, are rejected (never turned into something with custom behaviour)."""
    value = [1, (2, 3.5, None, True), {"a": {1, 2}}, frozenset([b"x"]), bytearray(b"y"), 1j, -10 ** 40, "é"]
    assert _dec(_enc(value)) == value and type(_dec(_enc(value))[1]) is tuple
    with pytest.raises(TypeError):
        _enc(object())

    class MyInt(int):
        pass

    with pytest.raises(TypeError):
        _enc(MyInt(3))
    data = _enc(value)
    for bad in (data[:-1], data + b"N", b"Q", b"l\xff\xff\xff\xff", b"S\x00\x00\x00\x01l\x00\x00\x00\x00"):
        with pytest.raises(ValueError):
            _dec(bad)


def test_isolation_reports_the_level():
    """isolation() states the level in effect: strict (file-system isolation, capped disk) where bubblewrap
    works, otherwise None (refused) unless the weak level is asked for."""
    info = isolation()
    assert info["level"] == ("strict" if STRICT else None)
    assert info["filesystem_isolation"] is STRICT and info["disk_capped"] is STRICT
