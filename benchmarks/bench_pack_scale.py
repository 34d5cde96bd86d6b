"""Pack at scale: peak RSS and wall time of the sharded writer for phases of 4M, 40M and 400M tokens.

    python benchmarks/bench_pack_scale.py                       # 4M, 40M, 400M tokens (~2.5 GB of disk)
    python benchmarks/bench_pack_scale.py --tokens 4e6 4e7      # quicker
    python benchmarks/bench_pack_scale.py --repeat 3 --root /path/to/other/checkout   # before/after

Input: two synthetic token sets written once (``--supply`` tokens each, default 150M, uint16, documents of
50-2,000 tokens, blocks of ``--block-tokens``, default 1M) as per-block ``.npy`` files opened as
``mixlab.shards.TokenShardSet`` opens its blocks (its block reader where the checkout has it, else ``np.load``
with a memory map), one block at a time (the :class:`mixlab.pack.source.TokenSource` protocol). Each phase
(seq 1024, batch 8, mixture 0.5/0.5, max_repeat 4: the 400M phase reads 1.33 epochs of each source, so it
crosses an epoch and every block) is packed by :func:`mixlab.pack.writer.pack_phase` with one in-process task in
a fresh Python process (the mixlab of ``--root``, default this checkout); the table reports that process's peak
RSS (``ru_maxrss``: imports included) and the wall and CPU time of ``pack_phase`` alone (plan, shards written and
checksummed, recount, manifest, rename), the least of ``--repeat`` runs (this machine is shared: wall time
varies by 2x from run to run, CPU time less). Shards of ``--shard-sequences`` (default 2,048 = 4.2 MB of
tokens) so that every phase holds at least one full shard: the claim under test is memory bounded by one
shard plus one block of a source. At 400M tokens this layout makes 191 shards: 764 new files, each ~0.65 ms
to create on this machine's ext4 (0.5 s in all); the default shard size (65,536 sequences) makes 32x fewer.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ.get("MIXLAB_BENCH_ROOT", str(ROOT)))  # --root: the checkout a child packs with


@dataclass(frozen=True)
class NpyBlocks:
    """A synthetic token set: ``<i>.tokens.npy`` / ``<i>.lengths.npy`` per block, memory-mapped on use."""

    name: str
    path: Path
    digest: str = "synthetic"

    def train_block_counts(self) -> tuple[np.ndarray, np.ndarray]:
        meta = json.loads((self.path / "blocks.json").read_text())
        return np.array(meta["docs"], dtype=np.int64), np.array(meta["tokens"], dtype=np.int64)

    def train_block(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        try:  # the reader TokenShardSet.block uses (mixlab.shards), where this checkout has it
            from mixlab.shards import _open_block_file
        except ImportError:
            return (np.load(self.path / f"{i:05d}.tokens.npy", mmap_mode="r"),
                    np.load(self.path / f"{i:05d}.lengths.npy"))
        docs, tokens = self.counts
        return (_open_block_file(self.path / f"{i:05d}.tokens.npy", np.dtype(np.uint16), int(tokens[i]), mmap=True),
                _open_block_file(self.path / f"{i:05d}.lengths.npy", np.dtype(np.int64), int(docs[i]), mmap=False))

    @functools.cached_property
    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        return self.train_block_counts()


def write_set(path: Path, supply: int, block_tokens: int, seed: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    docs, tokens, left, i = [], [], supply, 0
    while left > 0:
        lengths = rng.integers(50, 2000, size=block_tokens // 500 + 8)
        lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), min(block_tokens, left))) + 1]
        lengths[-1] -= max(0, int(lengths.sum()) - min(block_tokens, left))
        lengths = lengths[lengths > 0]
        np.save(path / f"{i:05d}.tokens.npy", rng.integers(0, 50_000, int(lengths.sum()), dtype=np.uint16))
        np.save(path / f"{i:05d}.lengths.npy", lengths.astype(np.int64))
        docs.append(len(lengths))
        tokens.append(int(lengths.sum()))
        left -= int(lengths.sum())
        i += 1
    (path / "blocks.json").write_text(json.dumps({"docs": docs, "tokens": tokens}))


def child(args: argparse.Namespace) -> None:
    """Pack one phase in this (fresh) process; print wall seconds and peak RSS as JSON."""
    from mixlab.pack.writer import pack_phase
    from mixlab.tokenizer import TokenizerInfo

    sets = Path(args.sets)
    sources = {n: NpyBlocks(n, sets / n) for n in ("a", "b")}
    header = {"recipe_name": "bench", "recipe_hash": "r" * 64, "pack_key": "k",
              "tokenizer": TokenizerInfo(kind="bpe", name="synthetic", hash="h" * 64, vocab_size=50_257,
                                         eos_id=50_256)}
    out = Path(args.out)
    started, cpu = time.perf_counter(), time.process_time()
    m = pack_phase(out, phase="p", phase_index=0, requested_tokens=int(float(args.phase_tokens)),
                   mixture={"a": 0.5, "b": 0.5}, max_repeat=4.0, sources=sources, source_meta={}, starts={},
                   seq_len=1024, batch_size=8, seed=1, header=header, shard_sequences=args.shard_sequences)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "sequences": m.num_sequences, "shards": len(m.shards),
                      "epochs": max(e.epochs_through for e in m.sources.values())}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", nargs="+", default=["4e6", "4e7", "4e8"])
    ap.add_argument("--supply", type=float, default=1.5e8)
    ap.add_argument("--block-tokens", type=int, default=1_000_000)
    ap.add_argument("--shard-sequences", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=1, help="runs per phase; the table shows the least wall and CPU")
    ap.add_argument("--root", default=str(ROOT), help="checkout whose mixlab the pack processes import")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sets", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--phase-tokens", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-pack-scale-"))
    try:
        t = time.perf_counter()
        for seed, name in enumerate(("a", "b")):
            write_set(tmp / "sets" / name, int(args.supply), args.block_tokens, seed)
        print(f"token sets: 2 x {args.supply:.3g} tokens in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        rows = []
        for tokens in args.tokens:
            out = tmp / f"phase-{tokens}"
            runs = []
            for _ in range(args.repeat):
                res = subprocess.run([sys.executable, __file__, "--child", "--sets", str(tmp / "sets"), "--out", str(out),
                                      "--phase-tokens", tokens, "--shard-sequences", str(args.shard_sequences)],
                                     capture_output=True, text=True, check=True,
                                     env={**os.environ, "MIXLAB_BENCH_ROOT": args.root})
                runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
                shutil.rmtree(out)
            r = {**runs[0], "wall": min(x["wall"] for x in runs), "cpu": min(x["cpu"] for x in runs),
                 "rss_mb": max(x["rss_mb"] for x in runs)}
            rows.append((float(tokens), r))
            print(f"{tokens}: {r} (walls {[round(x['wall'], 2) for x in runs]})", file=sys.stderr)
        base_rss, base = rows[0][1]["rss_mb"], rows[0]
        load = os.getloadavg()
        print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}; load average {load[0]:.2f} at the end; mixlab from {args.root}; "
              f"shard_sequences {args.shard_sequences}, block {args.block_tokens:,} tokens, seq 1024, "
              f"least of {args.repeat} run(s)\n")
        print("| phase tokens | sequences | shards | epochs read | pack wall s | pack CPU s | M tokens/s (wall) | "
              "peak RSS MB | RSS / smallest |")
        print("|---|---|---|---|---|---|---|---|---|")
        for tokens, r in rows:
            print(f"| {tokens:.0e} | {r['sequences']:,} | {r['shards']} | {r['epochs']:.2f} | {r['wall']:.2f} | "
                  f"{r['cpu']:.2f} | {r['sequences'] * 1024 / r['wall'] / 1e6:.1f} | {r['rss_mb']:.0f} | "
                  f"{r['rss_mb'] / base_rss:.3f} |")
        del base
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
