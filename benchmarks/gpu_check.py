"""One GPU check in one call: the GPU tests, the kernel benchmark and the trainer benchmark, one table.

    python benchmarks/gpu_check.py                 # on a CUDA GPU (H100 / H200: under 6 minutes)
    python benchmarks/gpu_check.py --out DIR       # also keep each part's log and JSON in DIR (default: $OUT)
    python benchmarks/gpu_check.py --dry-run       # CPU, TRITON_INTERPRET=1, tiny sizes: proves that the
                                                   # script and everything it imports run; numbers meaningless

Parts, each a subprocess with its own time limit inside an overall ``--budget`` (default 345 s):
1. tests: ``tests/test_kernels.py`` and ``tests/test_kernel_ops.py`` in full (on CUDA they run the compiled
   kernels, opcheck the custom ops and ``torch.compile`` the model with inductor and real Triton; less the
   CPU-side sm_90 cross-compilation test, redundant on a GPU), then
   ``pytest -m gpu`` on every other test file holding ``gpu``-marked tests. A file that cannot be imported
   on this machine (e.g. the trainer's tests need pydantic) is reported as a row, not hidden.
2. trainer: ``benchmarks/bench_trainer.py``: the 124m GPT step eager and compiled with the fused kernels,
   against plain torch compiled (tokens/s, MFU, peak memory).
3. kernels: ``benchmarks/bench_kernels.py``: each fused op against torch eager (and ``torch.compile`` when
   at least ``--kernel-compile-s`` seconds of the budget remain), GB/s, TFLOP/s, peak memory.
Exit status 0 only when every part ran and no test failed.

Imports only the standard library here; the parts need torch, triton, numpy and pytest (no pydantic,
datatrove, zstandard, orjson or polars).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KERNEL_TESTS = ["tests/test_kernels.py", "tests/test_kernel_ops.py"]


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, Triton interpreter, tiny sizes")
    ap.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None,
                    help="folder for each part's log and JSON (default: $OUT, else a temporary folder)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for all parts together (default 345; 900 with --dry-run)")
    ap.add_argument("--kernel-compile-s", type=float, default=110.0,
                    help="benchmark torch.compile in bench_kernels only if this many seconds remain")
    return ap.parse_args()


class Clock:
    def __init__(self, budget: float) -> None:
        self.end = time.monotonic() + budget

    def left(self) -> float:
        return self.end - time.monotonic()


def _run(name: str, cmd: list[str], timeout: float, out: Path, env: dict[str, str]) -> tuple[int | None, float]:
    """Run a part; its stdout+stderr go to out/<name>.log. Returns (exit status or None on timeout, seconds)."""
    t0 = time.monotonic()
    print(f"[gpu_check] {name}: {' '.join(cmd)} (limit {timeout:.0f} s)", file=sys.stderr, flush=True)
    with open(out / f"{name}.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the part and anything it started (compile workers)
            proc.wait()
            rc = None
    return rc, time.monotonic() - t0


def _tail(path: Path, n: int = 400) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return " ".join(text[-n:].split())


# ------------------------------------------------------------------------------------------------ tests


def _gpu_marked_files() -> list[str]:
    return sorted(
        str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
        if str(p.relative_to(REPO)) not in KERNEL_TESTS and "mark.gpu" in p.read_text(errors="replace")
    )


def _junit_rows(xml_path: Path, part: str) -> tuple[list[list[str]], dict[str, int]]:
    """Rows for failures, errors and gpu-relevant tests; counts per outcome."""
    rows: list[list[str]] = []
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0, "not run": 0}
    if not xml_path.exists():
        return rows, counts
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        outcome, detail = "passed", f"{float(case.get('time', 0)):.1f} s"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                text = " ".join(f"{child.get('message') or ''} {child.text or ''}".split())
                detail = " ".join((child.get("message") or child.text or "").split())[:160]
                missing = text.split("ModuleNotFoundError: ", 1)[-1][:80] if "ModuleNotFoundError" in text else ""
                if child.tag == "error" and missing:  # a test file needing what this machine lacks
                    outcome, detail = "not run", f"cannot import the file here: {missing}"
        counts[outcome] += 1
        if outcome != "passed" and outcome != "skipped" or any(w in name for w in ("gpu", "compile")):
            rows.append([part, name, outcome.upper() if outcome in ("failed", "error") else outcome, detail])
    return rows, counts


def run_tests(args: argparse.Namespace, clock: Clock, out: Path, env: dict[str, str]) -> tuple[list, bool]:
    rows, ok = [], True
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors"]
    # On a GPU every kernel is compiled for real, so the CPU-only sm_90 cross-compilation test is redundant there.
    aot = ["--deselect", "tests/test_kernels.py::test_kernels_compile_for_hopper_without_a_gpu"]
    groups = [("tests-kernels", KERNEL_TESTS, ["-k", "opcheck_swiglu or full_size"] if args.dry_run else aot)]
    others = _gpu_marked_files()
    if others:
        groups.append(("tests-gpu-marked", others, ["-m", "gpu"]))
    for i, (name, files, extra) in enumerate(groups):
        limit = min(clock.left() - 215, 130.0) if i == 0 else min(clock.left() - 200, 45.0)
        xml = out / f"{name}.xml"
        rc, secs = _run(name, [*base, f"--junitxml={xml}", *extra, *files], limit, out, env)
        part_rows, counts = _junit_rows(xml, name)
        rows += part_rows
        summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        clean = counts["failed"] == 0 and counts["error"] == 0
        status = "timed out" if rc is None else "ok" if rc in (0, 5) or (rc == 1 and clean) else f"exit {rc}"
        rows.append([name, f"{len(files)} file(s): {' '.join(Path(f).name for f in files)}", status,
                     f"{summary or 'nothing ran'}; {secs:.0f} s"
                     + ("" if status == "ok" else f"; log: {_tail(out / f'{name}.log', 200)}")])
        ok &= status == "ok"  # pytest exit 5: no test selected; 1 with only "not run" files: a collection error
    return rows, ok


# ------------------------------------------------------------------------------------------- benchmarks


def _fmt(v, spec: str, unit: str = "") -> str | None:
    return None if v is None else format(v, spec) + unit


def run_trainer(args: argparse.Namespace, clock: Clock, out: Path, env: dict[str, str]) -> tuple[list, bool]:
    js = out / "bench_trainer.json"
    cmd = [sys.executable, "benchmarks/bench_trainer.py", "--json", str(js)]
    cmd += ["--dry-run", "--threads", "1"] if args.dry_run else ["--steps", "10", "--no-trainer"]
    rc, secs = _run("bench_trainer", cmd, min(clock.left() - 60, 160.0), out, env)
    rows = []
    for r in json.loads(js.read_text()) if js.exists() else []:
        nums = [_fmt(r.get("tokens_per_s"), ",.0f", " tok/s"), _fmt(r.get("mfu"), ".1%", " MFU"),
                _fmt(r.get("peak_gib"), ".1f", " GiB peak"), _fmt(r.get("first_step_s"), ".0f", " s first step")]
        rows.append(["trainer", r["run"], "error" if r.get("note", "").startswith("error") else "ok",
                     ", ".join(n for n in nums if n) + (f" {r['note']}" if r.get("note") else "")])
    if rc != 0:
        rows.append(["trainer", "bench_trainer.py", "timed out" if rc is None else f"exit {rc}",
                     f"{secs:.0f} s; log: {_tail(out / 'bench_trainer.log')}"])
    return rows, rc == 0 and all(r[2] == "ok" for r in rows)


def run_kernels(args: argparse.Namespace, clock: Clock, out: Path, env: dict[str, str]) -> tuple[list, bool]:
    js = out / "bench_kernels.json"
    cmd = [sys.executable, "benchmarks/bench_kernels.py", "--json", str(js)]
    if args.dry_run:
        cmd += ["--cpu-check", "--no-compile"]
    elif clock.left() < args.kernel_compile_s:
        cmd += ["--no-compile"]
    rc, secs = _run("bench_kernels", cmd, clock.left() - 5, out, env)
    rows = []
    for r in json.loads(js.read_text()) if js.exists() else []:
        nums = [_fmt(r.get("fwd_bwd_ms"), ".3f", " ms fwd+bwd"), _fmt(r.get("gbps"), ",.0f", " GB/s"),
                _fmt(r.get("pct_peak_bw"), ".0f", "% peak BW"), _fmt(r.get("tflops"), ".0f", " TFLOP/s"),
                _fmt(r.get("peak_mib"), ",.0f", " MiB peak")]
        rows.append(["kernels", f"{r['op']} {r['shape']} / {r['impl']}", "error" if r.get("error") else "ok",
                     r.get("error") or ", ".join(n for n in nums if n)])
    if rc != 0:
        rows.append(["kernels", "bench_kernels.py", "timed out" if rc is None else f"exit {rc}",
                     f"{secs:.0f} s; log: {_tail(out / 'bench_kernels.log')}"])
    return rows, rc == 0 and all(r[2] == "ok" for r in rows)


# ------------------------------------------------------------------------------------------------- main


def _environment(env: dict[str, str]) -> str:
    code = ("import sys, torch\ntry:\n import triton; tv = triton.__version__\nexcept Exception as e:\n tv = repr(e)\n"
            "dev = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device'\n"
            "print(f'{dev}; torch {torch.__version__}; triton {tv}; python {sys.version.split()[0]}')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    return (res.stdout.strip() or res.stderr.strip()[-300:]) + f"; {platform.node()}"


def main() -> int:
    args = _parse()
    t0 = time.monotonic()
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if args.dry_run:
        env["TRITON_INTERPRET"] = "1"
    clock = Clock(args.budget or (900.0 if args.dry_run else 345.0))
    rows: list[list[str]] = [["env", "machine", "ok", _environment(env)]]
    ok = True
    for part in (run_tests, run_trainer, run_kernels):
        part_rows, part_ok = part(args, clock, out, env)
        rows += part_rows
        ok &= part_ok
    print(f"\n## GPU check{' (dry run: CPU, Triton interpreter, tiny sizes)' if args.dry_run else ''}: "
          f"{'OK' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s; logs in {out}\n")
    print("| part | item | result | numbers / detail |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
