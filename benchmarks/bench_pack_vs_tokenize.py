"""Pack against tokenize on the same input in one run: the pack stage must cost at most 5% of tokenizing.

    python benchmarks/bench_pack_vs_tokenize.py                          # x100 (68M tokens)
    python benchmarks/bench_pack_vs_tokenize.py --factors 10 100 1000    # x1000: 2.9 GB of text
    python benchmarks/bench_pack_vs_tokenize.py --root /path/to/previous/checkout   # the same, another mixlab

For each ``--factors`` F: ``python -m mixlab.builders.scale --factor F`` writes F varied copies of the embedded
SlimPajama sample, converted to a curated folder (``benchmarks/bench_tokenize_scale.py``'s ``curated_folder``)
whose input files are dealt to two sources, ``a`` (even files) and ``b`` (odd files). Then, each as a FRESH
Python process started the same way, one after the other:

1. tokenize: :func:`mixlab.tokenize_steps.tokenize_source` for ``a`` then ``b`` (cl100k_base, the default
   backend, the stage's defaults: one task, one worker, 2^26-token blocks, so uint32 ids in 2^26-token blocks);
2. pack: :func:`mixlab.pack.writer.pack_phase` of one phase over both :class:`mixlab.shards.TokenShardSet`s,
   mixture = their token shares, ``--seq-len`` (2048) x ``--batch`` (8), default shard size, ``max_repeat`` 1,
   budget 99% of their training tokens (so the phase reads about every token once).

Reported per stage: ``wall`` (and ``CPU``, the process's CPU time over the same span: less sensitive to other
load on a shared machine) = the stage call alone (the tokenize encoding is loaded before the clock starts,
as in bench_tokenize_scale; pack's clock includes numba's first-call start-up, since a fresh pack process pays
it), ``process`` = the child from spawn to exit (imports, encoding, everything), peak RSS (``ru_maxrss``),
``sync`` = an ``os.sync()`` right after the child exits (the write-back each stage leaves to the kernel: neither
fsyncs its data files). For pack also ``verify``: ``TokenShardSet.verified()`` (every block file re-hashed),
which the pack stage runs before ``pack_phase`` (reported, not in pack's wall), and ``floor``: writing the
same number of bytes as the packed phase to a new file from memory in a fresh process, 256 KiB a write (this machine's
page-cache cost for those bytes, which no packer avoids). Ratios are pack / tokenize for ``wall`` and
``process``. Inputs and outputs live in ``--workdir`` (never committed); the packed phase is deleted after.
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

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("a", "b")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def split_sources(docs: Path, work: Path) -> dict[str, Path]:
    """Deal the curated files to the two sources (hard links: no copy)."""
    out = {s: work / s for s in SOURCES}
    if not all((p / ".done").exists() for p in out.values()):
        for p in out.values():
            shutil.rmtree(p, ignore_errors=True)
            p.mkdir(parents=True)
        for i, f in enumerate(sorted(docs.glob("*.jsonl.zst"))):
            os.link(f, out[SOURCES[i % 2]] / f.name)
        for p in out.values():
            (p / ".done").touch()
    return out


def child_tokenize(args: argparse.Namespace) -> dict:
    from mixlab.shards import EncodingRef
    from mixlab.tokenize_steps import _backend, tokenize_source
    from mixlab.tokenizer import named_encoding, tokenizer_info

    ref = EncodingRef(tokenizer_info(named_encoding("cl100k_base"), "tiktoken"))
    _backend(ref)  # loaded before the clock, as bench_tokenize_scale does
    work = Path(args.work)
    start, cpu = time.perf_counter(), time.process_time()
    tokens = 0
    for s in SOURCES:
        out = work / f"tokens-{s}"
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(out.with_name(f".{out.name}.build"), ignore_errors=True)
        ts = tokenize_source(work / s, out, ref, source=s, seed=0, heldout_fraction=16 / args.documents)
        tokens += ts.manifest.train_tokens
    return {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu, "tokens": tokens}


def child_pack(args: argparse.Namespace) -> dict:
    from mixlab.pack.writer import pack_phase
    from mixlab.shards import TokenShardSet

    work = Path(args.work)
    t = time.perf_counter()
    sets = {s: TokenShardSet(work / f"tokens-{s}").verified() for s in SOURCES}
    verify = time.perf_counter() - t
    supply = {s: ts.manifest.train_tokens for s, ts in sets.items()}
    total = sum(supply.values())
    out = work / "packed"
    start, cpu = time.perf_counter(), time.process_time()
    m = pack_phase(
        out, phase="all", phase_index=0, requested_tokens=int(total * 0.99),
        mixture={s: supply[s] / total for s in SOURCES}, max_repeat=1.0, sources=sets,
        source_meta={s: ts.source_meta() for s, ts in sets.items()}, starts={}, seq_len=args.seq_len,
        batch_size=args.batch, seed=0,
        header={"recipe_name": "bench", "recipe_hash": "r" * 64, "pack_key": "k", "tokenizer": sets["a"].tokenizer},
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    nbytes = sum(f.bytes for f in m.files.values())
    return {"wall": wall, "cpu": cpu, "verify": verify, "tokens": m.planned_tokens, "bytes": nbytes, "shards": len(m.shards),
            "dtype": m.token_dtype}


def child_floor(args: argparse.Namespace) -> dict:
    """Write ``args.bytes`` bytes to a new file from a (pre-touched) 64 MiB buffer, 256 KiB a write as mixlab's
    writers do (``mixlab.workspace.WRITE_PIECE_BYTES``: larger writes cost this VM up to 10x more): the
    page-cache cost alone."""
    import numpy as np

    buf = np.ones(64 << 20, dtype=np.uint8)
    path = Path(args.work) / "floor.bin"
    start = time.perf_counter()
    with open(path, "wb") as f:
        left = int(args.bytes)
        while left > 0:
            n = min(left, 1 << 18)
            f.write(buf.data[:n])
            left -= n
    wall = time.perf_counter() - start
    path.unlink()
    return {"wall": wall}


def run_child(kind: str, work: Path, args: argparse.Namespace, **extra: object) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--work", str(work), "--seq-len", str(args.seq_len),
           "--batch", str(args.batch)] + [x for k, v in extra.items() for x in (f"--{k}", str(v))]
    env = {**os.environ, "PYTHONPATH": args.root}
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    process = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{res.stderr[-3000:]}")
    t = time.perf_counter()
    os.sync()
    sync = time.perf_counter() - t
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "process": process, "sync": sync}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--factors", type=int, nargs="+", default=[100])
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workdir", default="/tmp/mixlab-bench-tokenize", help="shared with bench_tokenize_scale")
    p.add_argument("--root", default=str(ROOT), help="checkout whose mixlab the children import (before/after)")
    p.add_argument("--keep", action="store_true", help="keep the token sets (to profile pack on them)")
    p.add_argument("--child", choices=["tokenize", "pack", "floor"], help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--bytes", help=argparse.SUPPRESS)
    p.add_argument("--documents", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        fn = {"tokenize": child_tokenize, "pack": child_pack, "floor": child_floor}[args.child]
        print(json.dumps({**fn(args), "peak_rss_mb": rss_mb()}))
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_tokenize_scale import curated_folder

    root = Path(args.workdir)
    rows = []
    for factor in args.factors:
        docs, documents, nbytes = curated_folder(root, factor)
        work = root / f"x{factor}-pack-vs-tokenize"
        split_sources(docs, work)
        tok = run_child("tokenize", work, args, documents=documents)
        pack = run_child("pack", work, args)
        floor = run_child("floor", work, args, bytes=pack["bytes"])
        shutil.rmtree(work / "packed", ignore_errors=True)
        if not args.keep:
            for s in SOURCES:
                shutil.rmtree(work / f"tokens-{s}", ignore_errors=True)
        rows.append((factor, nbytes, documents, tok, pack, floor))
        print(f"x{factor}: tokenize {tok['wall']:.2f} s ({tok['process']:.2f} s process), pack {pack['wall']:.3f} s "
              f"({pack['process']:.2f} s process): {100 * pack['wall'] / tok['wall']:.1f}% "
              f"(floor {floor['wall']:.3f} s, verify {pack['verify']:.2f} s)", file=sys.stderr, flush=True)
    load = os.getloadavg()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the end; "
          f"seq_len {args.seq_len}, batch {args.batch}; mixlab from {args.root}; each stage a fresh process\n")
    print("| input | text MB | train tokens (M) | tokenize wall s | pack wall s | **pack / tokenize** | CPU s (tok / pack) "
          "| CPU ratio | pack M tok/s | process s (tok / pack) | process ratio | pack bytes MB | write floor s | "
          "verify s | sync s (tok / pack) | peak RSS MB (tok / pack) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for factor, nbytes, _docs, tok, pack, floor in rows:
        print(f"| x{factor} | {nbytes / 1e6:.0f} | {tok['tokens'] / 1e6:.1f} | {tok['wall']:.2f} | {pack['wall']:.3f} | "
              f"**{100 * pack['wall'] / tok['wall']:.1f}%** | {tok['cpu']:.2f} / {pack['cpu']:.3f} | "
              f"{100 * pack['cpu'] / tok['cpu']:.1f}% | {pack['tokens'] / pack['wall'] / 1e6:.0f} | "
              f"{tok['process']:.2f} / {pack['process']:.2f} | {100 * pack['process'] / tok['process']:.1f}% | "
              f"{pack['bytes'] / 1e6:.0f} | {floor['wall']:.3f} | {pack['verify']:.2f} | "
              f"{tok['sync']:.2f} / {pack['sync']:.2f} | {tok['peak_rss_mb']:.0f} / {pack['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
