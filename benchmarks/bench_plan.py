"""Plan a paper-scale phase without materializing it: time and peak memory (Markdown table on stdout).

    python benchmarks/bench_plan.py                     # 10^9 sequences over 8 sources (~10-30 s on 2 cores)
    python benchmarks/bench_plan.py --sequences 1e8     # quicker

Rows:
1. numba compile + first call of the streaming kernel (``mixlab.pack.order``), on a 1,000-sequence phase.
2. ``plan_phase``: N sequences over 8 sources with unequal weights (seq_len 512, batch 512, so the budget is
   N x 512 tokens), shards of 65,536 sequences: Hamilton counts, supply check, then one pass of Tijdeman's rule
   storing only the per-source counts at every shard boundary (``interleave_checkpoints``). Peak RSS of the
   process (``ru_maxrss``) is reported after each row, against the RSS after imports.
3. One shard task: ``interleave_chunk`` from the checkpoint of the middle shard (65,536 sequences); then
   the existing materializing ``interleave`` against ``interleave_checkpoints`` on 10^8 sequences of the same
   mix (CPU seconds, steadier than wall time on a shared machine).
4. One shard task's reads from one source: ``ledger_pieces`` for 2^27 ledger tokens (a 65,536-sequence shard
   at seq_len 2048) from the middle of an epoch of a source of 10^9 documents in 10^4 blocks of 10^5
   documents (lengths 1..2,000, ~10^8 tokens per block, so the range crosses a block boundary); each block's
   lengths come from a seeded generator, standing in for reading that shard's index.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np

from mixlab.pack.blockorder import BlockLayout, ledger_pieces
from mixlab.pack.interleave import interleave
from mixlab.pack.order import interleave_checkpoints, interleave_chunk, state_at
from mixlab.pack.plan import plan_phase

WEIGHTS = {f"s{k}": w for k, w in enumerate([0.31, 0.22, 0.14, 0.11, 0.09, 0.07, 0.04, 0.02])}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=float, default=1e9)
    ap.add_argument("--shard", type=int, default=65_536)
    args = ap.parse_args()
    n = int(args.sequences)
    seq_len, batch = 512, 512
    rows = [("RSS after imports", "", f"{rss_mb():.0f} MB")]

    t = time.perf_counter()
    interleave_checkpoints([300, 200, 500], [0, 1000])
    rows.append(("kernel compile/cache load + first call (1,000 sequences)", f"{time.perf_counter() - t:.2f} s",
                 f"peak {rss_mb():.0f} MB (numba/LLVM)"))

    t, c = time.perf_counter(), time.process_time()
    plan = plan_phase(
        phase="bench", requested_tokens=n * seq_len, seq_len=seq_len, batch_size=batch, mixture=WEIGHTS,
        supplies={s: 10**13 for s in WEIGHTS}, starts={}, max_repeat=4.0, shard_sequences=args.shard,
        vocab_size=100_277,
    )
    dt, dc = time.perf_counter() - t, time.process_time() - c
    rows.append((
        f"plan_phase: {plan.num_sequences:,} sequences, 8 sources, {plan.num_shards:,} shards of {args.shard:,}",
        f"{dt:.1f} s wall, {dc:.1f} CPU s ({plan.num_sequences / dc / 1e6:.0f} M seq per CPU s)", f"peak {rss_mb():.0f} MB",
    ))
    assert (plan.checkpoints[-1] == [p.sequences for p in plan.sources.values()]).all()

    j = plan.num_shards // 2
    a, b = int(plan.bounds[j]), int(plan.bounds[j + 1])
    t = time.perf_counter()
    _, after = interleave_chunk([p.sequences for p in plan.sources.values()], state_at(plan.checkpoints[j]), b - a)
    dt = time.perf_counter() - t
    assert after == state_at(plan.checkpoints[j + 1])
    rows.append((f"one shard task's order (shard {j}: {b - a:,} sequences)", f"{dt * 1e3:.1f} ms",
                 f"peak {rss_mb():.0f} MB"))

    blocks, per_block = 10_000, 100_000
    base = np.random.default_rng(7).integers(1, 2001, per_block)

    def lengths_of(block: int) -> np.ndarray:  # stands in for reading one shard's index
        return base[np.random.default_rng([7, block]).permutation(per_block)]

    layout = BlockLayout.from_counts(np.full(blocks, per_block), np.full(blocks, int(base.sum())))
    start = layout.num_tokens // 2 + 12_345

    t = time.perf_counter()
    pieces = ledger_pieces(layout, lengths_of, 0, "code", start, start + (1 << 27))
    dt = time.perf_counter() - t
    assert int(pieces.length.sum()) == 1 << 27
    rows.append((f"ledger_pieces for 2^27 tokens of a 10^9-document source ({len(pieces.doc):,} pieces)",
                 f"{dt * 1e3:.0f} ms", f"peak {rss_mb():.0f} MB"))

    small = [p.sequences * 10**8 // plan.num_sequences for p in plan.sources.values()]
    cpu = []
    for f in (lambda: interleave(small), lambda: interleave_checkpoints(small, [0, sum(small)])):
        interleave([2, 3])
        t = time.process_time()
        f()
        cpu.append(time.process_time() - t)
    rows.append((f"same mix, {sum(small):,} sequences: materializing `interleave` vs `interleave_checkpoints`",
                 f"{cpu[0]:.2f} vs {cpu[1]:.2f} CPU s", ""))

    rows.append(("layout of that source (cumulative docs + tokens per block)", "",
                 f"{(layout.doc_starts.nbytes + layout.token_starts.nbytes) / 1e3:.0f} kB"))
    print(f"Machine: {platform.processor() or platform.machine()}, {platform.system()}, numpy {np.__version__}\n")
    print("| step | time | memory |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
