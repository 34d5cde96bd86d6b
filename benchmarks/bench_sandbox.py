"""Per-run cost of mixlab.sandbox: one program (run_python) and one judged program (run_tests, two jails).

Usage: ``python benchmarks/bench_sandbox.py [N]``; prints median and min wall ms over N runs, the isolation
in effect and the machine load (results go in benchmarks/RESULTS.md with the machine they came from).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from mixlab.sandbox import isolation, run_python, run_tests

CODE = "def f(x):\n    return x + 1\n"
TESTS = "def check(c):\n    assert c(1) == 2\n"


def main(n: int = 20) -> None:
    print("isolation:", isolation())
    cases = {"run_python": lambda: run_python(CODE + TESTS + "check(f)\n"),
             "run_tests": lambda: run_tests(CODE, TESTS, "f")}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for f in cases.values():
        f()
    for _ in range(n):
        for k, f in cases.items():
            t = time.perf_counter()
            assert f().passed
            times[k].append(time.perf_counter() - t)
    for k, v in times.items():
        print(f"{k}: median {1000 * statistics.median(v):.0f} ms, min {1000 * min(v):.0f} ms over {n}")
    print("load average:", os.getloadavg(), "cpus:", os.cpu_count())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
