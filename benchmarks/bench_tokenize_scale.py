"""Peak RSS and wall time of the tokenize stage against input size: memory must not grow with the corpus.

For each ``--factors`` F: ``python -m mixlab.builders.scale --factor F`` writes F varied copies of the embedded
SlimPajama sample (x10 is ~29 MB of text), converted here to a curated folder (one ``.jsonl.zst`` per input
shard, ``{"text", "id"}``), then :func:`mixlab.tokenize_steps.tokenize_source` (cl100k_base, fastest exact
backend) runs in a fresh child process; the child reports its peak RSS (``ru_maxrss``, which includes the
imports and the encoding: ``rss_ready`` is the RSS just before tokenizing) and the wall time. ``--baseline``
also runs the previous one-process implementation (``git show <rev>:mixlab/shards.py``) on the same input.
Generated data lives in ``--workdir`` (never committed). Results go to stdout as a Markdown table; with
``--record`` they are appended to ``benchmarks/RESULTS.md`` with the machine.

    python benchmarks/bench_tokenize_scale.py --factors 10 100 --baseline --record
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def curated_folder(work: Path, factor: int) -> tuple[Path, int, int]:
    """The scaled SlimPajama sample as a curated folder: (folder, documents, UTF-8 bytes of text)."""
    from mixlab.jsonl import read_jsonl

    raw, out = work / f"x{factor}", work / f"x{factor}-curated"
    if not raw.exists():
        subprocess.run([sys.executable, "-m", "mixlab.builders.scale", "--factor", str(factor), "--out", str(raw)],
                       check=True, stdout=subprocess.DEVNULL)
    done = out / "count.json"
    if not done.exists():
        shutil.rmtree(out, ignore_errors=True)
        (out / "docs").mkdir(parents=True)
        files = sorted(p for p in (raw / "slimpajama").rglob("*.jsonl.zst"))
        docs = nbytes = 0
        for i, path in enumerate(files):
            rel = path.relative_to(raw).as_posix()
            with open(out / "docs" / f"{i:05d}.jsonl.zst", "wb") as f, \
                    zstandard.ZstdCompressor(level=3).stream_writer(f) as w:
                for n, rec in enumerate(read_jsonl(path)):
                    w.write(json.dumps({"text": rec["text"], "id": f"{rel}:{n}"}).encode() + b"\n")
                    docs, nbytes = docs + 1, nbytes + len(rec["text"].encode("utf-8", "surrogatepass"))
        done.write_text(json.dumps({"documents": docs, "bytes": nbytes}))
    count = json.loads(done.read_text())
    return out / "docs", count["documents"], count["bytes"]


def child(args: argparse.Namespace) -> None:
    """Tokenize ``args.docs`` once in this process and print one JSON line of measurements."""
    from mixlab.shards import EncodingRef
    from mixlab.tokenizer import named_encoding, tokenizer_info

    ref = EncodingRef(tokenizer_info(named_encoding("cl100k_base"), "tiktoken"))
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.with_name(f".{out.name}.build"), ignore_errors=True)
    if args.impl == "baseline":
        import importlib.util

        spec = importlib.util.spec_from_file_location("old_shards", args.old_module)
        old = importlib.util.module_from_spec(spec)
        sys.modules["old_shards"] = old  # its dataclasses look their module up
        spec.loader.exec_module(old)  # type: ignore[union-attr]
        old._init_worker(old.EncodingRef(ref.info))  # load encoding + backend before measuring rss_ready
        ready = rss_mb()
        start = time.perf_counter()
        old.tokenize_source(Path(args.docs), out, old.EncodingRef(ref.info), heldout_docs=16, seed=0, workers=1)
        tokens = json.loads((out / "meta.json").read_text())["train_tokens"]
    else:
        from mixlab.tokenize_steps import _backend, tokenize_source

        _backend(ref)  # the task reuses it (workers=1 runs the task in this process)
        ready = rss_mb()
        start = time.perf_counter()
        s = tokenize_source(Path(args.docs), out, ref, source="text", seed=0, heldout_fraction=16 / args.documents,
                            tasks=args.tasks, workers=1, block_tokens=args.block_tokens)
        tokens = s.manifest.train_tokens + s.manifest.heldout_tokens
    wall = time.perf_counter() - start
    print(json.dumps({"wall_s": wall, "rss_ready_mb": ready, "peak_rss_mb": rss_mb(), "tokens": tokens}))
    shutil.rmtree(out, ignore_errors=True)


def measure(impl: str, docs: Path, documents: int, work: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--impl", impl, "--docs", str(docs), "--out", str(work / "tokens"),
           "--documents", str(documents), "--block-tokens", str(args.block_tokens), "--tasks", str(args.tasks),
           "--old-module", str(work / "old_shards.py")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{impl} child failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--factors", type=int, nargs="+", default=[10, 100])
    p.add_argument("--block-tokens", type=int, default=1 << 20)
    p.add_argument("--tasks", type=int, default=4, help="datatrove tasks (run one after the other: workers=1)")
    p.add_argument("--workdir", default="/tmp/mixlab-bench-tokenize")
    p.add_argument("--baseline", action="store_true", help="also run the one-process implementation of --rev")
    p.add_argument("--rev", default="93bea6a", help="a commit with the one-process mixlab/shards.py")
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    for hidden in ("--impl", "--docs", "--out", "--old-module"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    p.add_argument("--documents", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    impls = ["sets"]
    if args.baseline:
        old = subprocess.run(["git", "-C", str(ROOT), "show", f"{args.rev}:mixlab/shards.py"], capture_output=True,
                             text=True, check=True).stdout
        (work / "old_shards.py").write_text(old)
        impls.append("baseline")
    rows = []
    for factor in args.factors:
        docs, documents, nbytes = curated_folder(work, factor)
        for impl in impls:
            m = measure(impl, docs, documents, work, args)
            rows.append((impl, factor, nbytes, documents, m))
            print(f"{impl:8s} x{factor:<4d} {nbytes / 1e6:7.1f} MB {m['tokens'] / 1e6:6.1f} M tok  "
                  f"wall {m['wall_s']:6.1f} s  {nbytes / 1e6 / m['wall_s']:5.1f} MB/s  "
                  f"RSS ready {m['rss_ready_mb']:6.0f} MB  peak {m['peak_rss_mb']:6.0f} MB", flush=True)
    load = os.getloadavg()
    table = ["| implementation | input | text MB | documents | tokens (M) | wall s | MB/s | RSS ready MB | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    names = {"sets": f"token shard sets (block {args.block_tokens:,}, {args.tasks} tasks)",
             "baseline": f"one-process shard ({args.rev})"}
    for impl, factor, nbytes, documents, m in rows:
        table.append(f"| {names[impl]} | x{factor} | {nbytes / 1e6:.1f} | {documents:,} | {m['tokens'] / 1e6:.1f} | "
                     f"{m['wall_s']:.1f} | {nbytes / 1e6 / m['wall_s']:.1f} | {m['rss_ready_mb']:.0f} | "
                     f"{m['peak_rss_mb']:.0f} |")
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
               f"{platform.python_version()}; load average {load[0]:.1f} at the end")
    text = "\n".join(table)
    print(text)
    if args.record:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
            f.write(f"\n## Tokenize stage at scale: peak RSS and wall time (`python benchmarks/bench_tokenize_scale.py "
                    f"--factors {' '.join(map(str, args.factors))}{' --baseline' if args.baseline else ''}`, "
                    f"{time.strftime('%Y-%m-%d')})\n\nMachine: {machine}.\n\n{text}\n")


if __name__ == "__main__":
    main()
