"""Tokenize and pack: mixlab against its peers on the same input, in one run (Markdown tables on stdout).

    python benchmarks/bench_pack.py            # ~24 MB of sample text + code (about 2 minutes on 2 cores)
    python benchmarks/bench_pack.py --mb 8     # quicker, noisier

Input: the embedded sample's SlimPajama documents (``mixlab/sample/data/slimpajama/**/*.jsonl.zst``, ``text``)
and Stack files (``stack/data/*/*.parquet``, ``content``), each list repeated until the two together hold
``--mb`` MB of UTF-8 (repeating is harmless: no tokenizer caches documents). MB = 10^6 bytes of UTF-8 input.

1. Tokenize, cl100k_base, 1 and 2 processes, every row from texts in memory to token ids in memory (encoding
   load and process start-up included). Wall seconds and CPU seconds (this process + the children it reaped):
   on a shared machine the CPU ratios are the steadier ones. mixlab and tiktoken rows: best of ``--repeat``,
   alternated so that load from other jobs hits all of them; datatrove rows: one run each.
   - ``mixlab encode_all``: :func:`mixlab.shards.encode_all` (ordered chunks of 64 documents, EOT appended,
     long whitespace-free runs split, ids as uint32 arrays; its cached encoding is dropped before each run).
   - ``tiktoken Pool``: the bare peer: encoding loaded in the parent, ``multiprocessing.Pool`` (default start
     method, fork), ``encode_ordinary_batch(chunk, num_threads=1)`` per chunk of 64 documents, lists returned;
     and the same Pool calling ``encode_ordinary`` per document (no thread pool inside the call: faster).
   - ``datatrove DocumentTokenizer``: datatrove's step (HF ``tokenizers``, ``encode_batch``, EOS post-processor,
     ``.ds`` + index written, ``shuffle_documents=False``) with one rank per process and
     ``TOKENIZERS_PARALLELISM=false``; plus its default of one process with the Rust thread pool on both cores.
     Its tokenizer is cl100k_base itself, converted offline from tiktoken's ranks to an HF BPE (vocab + merges
     recovered by rank-limited BPE, tiktoken's split regex, byte-level alphabet); the script checks that it
     gives tiktoken's ids on every distinct document before timing anything.
   - ``mixlab tokenize_source``: the whole stage (read jsonl.zst, held-out split, encode, write shard files).
2. Pack: :func:`mixlab.pack.writer.pack_phase` over the two token shards of step 1 (seq 1024, batch 8, 95% of
   the supply, best of 2), as a share of the tokenize stage's wall time and of one-process ``encode_all``.
3. Interleave: :func:`mixlab.pack.interleave.interleave` for 10 million sequences over 8 sources after JIT
   warm-up; numba's compile time (no cache) and the cached first call are reported apart.
4. Loader: :class:`mixlab.pack.dataset.SequenceLoader` over a packed uint16 phase (seq 1024, batch 16) against
   nanoGPT's ``get_batch`` (``np.memmap`` of the same tokens as a flat uint16 file, re-opened each call as
   nanoGPT does, ``torch.randint`` offsets, a list of ``torch.from_numpy(data[i:i+T+1].astype(np.int64))``
   stacked), both delivering the same number of [B, T+1] int64 batches; tokens/s counts B*T per batch.
"""

from __future__ import annotations

import argparse
import glob
import math
import multiprocessing as mp
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "mixlab" / "sample" / "data"
from mixlab.shards import EncodingRef  # noqa: E402
from mixlab.tokenizer import TokenizerInfo, named_encoding, tokenizer_info  # noqa: E402

SPEC = EncodingRef(tokenizer_info(named_encoding("cl100k_base"), "tiktoken"))
CHUNK = 64
EOT = "<|endoftext|>"


# ------------------------------------------------------------------------------------------------ input
def load_corpus(megabytes: float) -> dict[str, list[str]]:
    """SlimPajama texts and Stack files of the sample, each repeated so that both hold ``megabytes`` MB."""
    import pyarrow.parquet as pq

    from mixlab.jsonl import read_jsonl

    text: list[str] = []
    for path in sorted(glob.glob(str(SAMPLE / "slimpajama" / "**" / "*.jsonl.zst"), recursive=True)):
        text += [rec["text"] for rec in read_jsonl(path)]
    code: list[str] = []
    for path in sorted(glob.glob(str(SAMPLE / "stack" / "data" / "*" / "*.parquet"))):
        code += [c for c in pq.read_table(path, columns=["content"]).column("content").to_pylist() if c]
    base = sum(len(t.encode()) for t in text + code)
    times = max(1, math.ceil(megabytes * 1e6 / base))
    return {"text": text * times, "code": code * times, "distinct": text + code}


def utf8_mb(texts: list[str]) -> float:
    return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e6


# ------------------------------------------------------------------------------------------------ peers
_PEER: Any = None


def _peer_batch(texts: list[str]) -> list[list[int]]:
    return _PEER.encode_ordinary_batch(texts, num_threads=1)


def _peer_loop(texts: list[str]) -> list[list[int]]:
    return [_PEER.encode_ordinary(t) for t in texts]


def tiktoken_pool(texts: list[str], workers: int, per_doc: bool = False) -> list[list[int]]:
    """The bare peer: tiktoken loaded in the parent, a default (fork) Pool, encode_ordinary_batch per chunk
    (or, ``per_doc``, encode_ordinary per document: no thread pool inside the batch call)."""
    global _PEER
    from mixlab.tokenizer import named_encoding  # tiktoken's own Encoding, built from its offline rank file

    _PEER = named_encoding("cl100k_base")
    chunks = [texts[i : i + CHUNK] for i in range(0, len(texts), CHUNK)]
    fn = _peer_loop if per_doc else _peer_batch
    if workers <= 1:
        return [ids for c in chunks for ids in fn(c)]
    with mp.Pool(workers) as pool:
        return [ids for out in pool.imap(fn, chunks) for ids in out]


def _bpe_parts(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    parts = [bytes([b]) for b in token]
    while True:
        best: tuple[int, int] | None = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return parts
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]


def hf_cl100k(path: Path) -> Path:
    """cl100k_base as an HF ``tokenizers`` BPE: each token's merge is the last step of BPE limited to lower ranks."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    from mixlab.tokenizer import _bytes_to_unicode, named_encoding

    enc = named_encoding("cl100k_base")
    ranks: dict[bytes, int] = enc._mergeable_ranks  # noqa: SLF001 - tiktoken exposes no getter
    table = _bytes_to_unicode()

    def spell(b: bytes) -> str:
        return "".join(table[x] for x in b)

    vocab = {spell(tok): r for tok, r in ranks.items()}
    merges = []
    for tok, r in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) > 1:
            a, b = _bpe_parts(ranks, tok, r)
            merges.append((spell(a), spell(b)))
    vocab[EOT] = enc.eot_token
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    # Oniguruma reads `{1,3}+` as a repeated group, not a possessive count, and `$` as end of line; tiktoken's
    # regex means "1 to 3 digits" and "end of text" (the possessive adds nothing at the end of an alternative).
    pattern = enc._pat_str.replace("{1,3}+", "{1,3}").replace("$", r"\z")  # noqa: SLF001
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(EOT, special=True)])
    tok.save(str(path))
    return path


def _check_hf(args: tuple[str, list[str]]) -> int:
    """Documents on which the HF conversion disagrees with tiktoken (run in a child: no rayon in the parent)."""
    from tokenizers import Tokenizer

    from mixlab.tokenizer import named_encoding

    path, texts = args
    hf, enc = Tokenizer.from_file(path), named_encoding("cl100k_base")
    got = hf.encode_batch(texts, add_special_tokens=False)
    return sum(g.ids != enc.encode_ordinary(t) for g, t in zip(got, texts, strict=True))


def _datatrove_rank(args: tuple[list[str], int, int, str, str, str]) -> int:
    texts, rank, world, tok_path, out, parallel = args
    os.environ["TOKENIZERS_PARALLELISM"] = parallel
    from datatrove.data import Document
    from datatrove.pipeline.tokens.tokenizer import DocumentTokenizer

    step = DocumentTokenizer(output_folder=out, tokenizer_name_or_path=tok_path, eos_token=EOT,
                             shuffle_documents=False, save_filename=f"bench{rank}")
    step.run((Document(text=t, id=str(i)) for i, t in enumerate(texts[rank::world])), rank=rank, world_size=world)
    return int(step.stats["tokens"].total)


def datatrove_tokenize(texts: list[str], workers: int, tok_path: Path, out: Path, parallel: bool = False) -> int:
    """datatrove's DocumentTokenizer, one rank per process (what LocalPipelineExecutor(tasks=workers) runs)."""
    jobs = [(texts, r, workers, str(tok_path), str(out), "true" if parallel else "false") for r in range(workers)]
    with mp.get_context("fork").Pool(workers, maxtasksperchild=1) as pool:
        return sum(pool.map(_datatrove_rank, jobs, chunksize=1))


# ------------------------------------------------------------------------------------------------ helpers
def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds of this process and of the children it reaped meanwhile, and fn's result."""
    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    c, t = cpu(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t, cpu() - c, out


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def write_curated(folder: Path, name: str, texts: list[str]) -> Path:
    import orjson
    import zstandard

    folder.mkdir(parents=True, exist_ok=True)
    lines = b"".join(orjson.dumps({"text": t, "id": f"{name}-{i}", "metadata": {}}) + b"\n" for i, t in enumerate(texts))
    (folder / "00000.jsonl.zst").write_bytes(zstandard.ZstdCompressor(level=3).compress(lines))
    return folder


def table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


# ------------------------------------------------------------------------------------------------ sections
def bench_tokenize(corpus: dict[str, list[str]], repeat: int, tmp: Path) -> tuple[str, dict[str, float]]:
    from mixlab import shards
    from mixlab.shards import encode_all
    from mixlab.tokenizer import _LONG_RUN

    texts = corpus["text"] + corpus["code"]
    mb = utf8_mb(texts)
    tok_path = hf_cl100k(tmp / "cl100k-hf.json")
    with mp.get_context("fork").Pool(1) as pool:
        bad = pool.map(_check_hf, [(str(tok_path), corpus["distinct"])])[0]
    if bad:
        raise SystemExit(f"the HF conversion of cl100k_base disagrees with tiktoken on {bad} documents")

    Row = tuple[float, float, int]  # best wall s, best CPU s (parent + children), tokens without EOT/EOS
    results: dict[tuple[str, int], Row] = {}

    def keep(key: tuple[str, int], wall: float, cpu: float, n: int) -> None:
        old = results.get(key, (wall, cpu, n))
        results[key] = (min(wall, old[0]), min(cpu, old[1]), n)

    for workers in (1, 2):
        for _ in range(repeat):  # alternate mixlab and the peers so background load hits all of them
            shards._ENC = None  # noqa: SLF001 - load the encoding again, as the peers do on every call
            wall, cpu, arrays = timed(lambda w=workers: encode_all(texts, SPEC, w))
            keep(("mixlab encode_all", workers), wall, cpu, sum(len(a) - 1 for a in arrays))
            wall, cpu, lists = timed(lambda w=workers: tiktoken_pool(texts, w, per_doc=True))
            keep(("tiktoken Pool, encode_ordinary per doc", workers), wall, cpu, sum(map(len, lists)))
            wall, cpu, lists = timed(lambda w=workers: tiktoken_pool(texts, w))
            keep(("tiktoken Pool (bare peer)", workers), wall, cpu, sum(map(len, lists)))
        # same ids, except where mixlab cuts a whitespace-free run of >= MAX_RUN chars (tiktoken is superlinear)
        split = [_LONG_RUN.search(t) is not None for t in texts]
        if any(a[:-1].tolist() != x for a, x, s in zip(arrays, lists, split, strict=True) if not s):
            raise SystemExit("mixlab and tiktoken disagree on a document without long runs")
        del arrays, lists
        for parallel in ((False, True) if workers == 1 else (False,)):
            out = tmp / f"dt-{workers}-{parallel}"
            wall, cpu, n = timed(lambda w=workers, o=out, par=parallel: datatrove_tokenize(texts, w, tok_path, o, par))
            keep(("datatrove DocumentTokenizer" + (" (+2 rayon threads)" if parallel else ""), workers), wall, cpu,
                 n - len(texts))

    # the whole stage, 2 workers: curated jsonl.zst -> shard files
    from mixlab.shards import tokenize_source

    stage_wall = stage_cpu = 0.0
    for name in ("text", "code"):
        folder = write_curated(tmp / "curated" / name, name, corpus[name])
        wall, cpu, _ = timed(lambda f=folder, n=name: tokenize_source(f, tmp / "tokens" / n, SPEC, heldout_docs=10,
                                                                       seed=0, workers=2))
        stage_wall, stage_cpu = stage_wall + wall, stage_cpu + cpu
    keep(("mixlab tokenize_source (stage)", 2), stage_wall, stage_cpu, results[("mixlab encode_all", 2)][2])

    rows = []
    for (name, workers), (wall, cpu, n) in results.items():
        cores = 2 if "rayon" in name else workers  # compare against mixlab on as many cores
        ref_wall, ref_cpu, _ = results[("mixlab encode_all", cores)]
        ratio = "" if name.startswith("mixlab") else f"{wall / ref_wall:.2f}x / {cpu / ref_cpu:.2f}x"
        rows.append([name, str(workers), str(cores), f"{wall:.2f}", f"{cpu:.2f}", f"{mb / wall:.2f}",
                     f"{n / wall / 1e6:.2f}", ratio])
    summary = {"stage_seconds": stage_wall, "encode_1": results[("mixlab encode_all", 1)][0]}
    head = f"Tokenize {mb:.1f} MB ({len(texts):,} documents), cl100k_base; HF conversion agrees with tiktoken on all {len(corpus['distinct'])} distinct documents"
    return head + "\n\n" + table(rows, ["system", "procs", "cores", "wall s", "CPU s", "MB/s (wall)", "M tok/s (wall)",
                                        "mixlab encode_all speed-up, wall / CPU (same cores)"]), summary


def bench_pack(tmp: Path, stage_seconds: float, encode_1: float) -> str:
    from mixlab.pack.writer import pack_phase
    from mixlab.shards import TokenShardSet

    sources = {name: TokenShardSet(tmp / "tokens" / name) for name in ("text", "code")}  # pack's TokenSource
    supply = {n: int(s.train_block_counts()[1].sum()) for n, s in sources.items()}
    total = sum(supply.values())
    header = {"recipe_name": "bench", "recipe_hash": "0" * 64, "pack_key": "bench", "tokenizer": SPEC.info}
    times = []
    for i in range(2):
        t = time.perf_counter()
        m = pack_phase(tmp / f"packed-{i}", phase="bench", phase_index=0, requested_tokens=int(0.95 * total),
                       mixture={n: supply[n] / total for n in supply}, max_repeat=1.0, sources=sources,
                       source_meta={}, starts={}, seq_len=1024, batch_size=8, seed=0, header=header)
        times.append(time.perf_counter() - t)
    secs = min(times)
    rows = [["pack_phase (plan, shards: interleave, gather, write, xxh64; recount, manifest)", f"{m.num_sequences:,}",
             f"{m.planned_tokens / 1e6:.2f}", f"{secs:.3f}", f"{100 * secs / stage_seconds:.1f}%",
             f"{100 * secs / encode_1:.1f}%"]]
    return table(rows, ["step", "sequences", "M tokens", "s", "% of tokenize stage (2 procs, wall)",
                        "% of encode_all (1 proc)"])


def bench_interleave() -> str:
    import numba

    from mixlab.pack import interleave as il
    from mixlab.pack.apportion import apportion

    fresh = numba.njit(cache=False)(il._tijdeman.py_func)  # noqa: SLF001 - the kernel, compiled anew
    t = time.perf_counter()
    fresh(np.array([3, 2], dtype=np.int64))
    compile_s = time.perf_counter() - t
    probe = ("import time; t = time.perf_counter(); from mixlab.pack.interleave import interleave; "
             "interleave([3, 2]); print(time.perf_counter() - t)")
    first_s = float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                                   cwd=ROOT).stdout)
    weights = np.random.default_rng(0).dirichlet(np.ones(8))
    counts = list(apportion({f"s{k}": float(w) for k, w in enumerate(weights)}, 10_000_000).values())
    il.interleave(counts[:2])  # warm
    secs, order = best_of(lambda: il.interleave(counts), 3)
    assert np.bincount(order, minlength=8).tolist() == counts
    rows = [["interleave 10M sequences, 8 sources (compiled, warm)", f"{secs:.3f}", f"{10 / secs:.1f}"],
            ["numba compile of the kernel (no cache)", f"{compile_s:.2f}", ""],
            ["fresh process: import + first call (kernel from numba's on-disk cache)", f"{first_s:.2f}", ""]]
    return table(rows, ["step", "s", "M seq/s"])


def bench_loader(tmp: Path, repeat: int) -> str:
    import torch

    from mixlab.pack.dataset import SequenceLoader, open_phase
    from mixlab.pack.ledger import SourceTokens
    from mixlab.pack.writer import pack_phase

    seq, batch, vocab = 1024, 16, 50304
    rng = np.random.default_rng(0)
    sources = {}
    for name in ("a", "b"):
        lengths = rng.integers(200, 4000, size=5000)
        sources[name] = SourceTokens(name, rng.integers(0, vocab, lengths.sum()).astype(np.uint16), np.cumsum(lengths))
    header = {"recipe_name": "bench", "recipe_hash": "0" * 64, "pack_key": "bench",
              "tokenizer": TokenizerInfo(kind="bpe", name="toy", hash="0" * 64, vocab_size=vocab, eos_id=0)}
    pack_phase(tmp / "loader", phase="loader", phase_index=0, requested_tokens=16_000_000, mixture={"a": 0.5, "b": 0.5},
               max_repeat=1.0, sources=sources, source_meta={}, starts={}, seq_len=seq, batch_size=batch, seed=0,
               header=header)
    phase = open_phase(tmp / "loader")
    flat = tmp / "train.bin"
    np.asarray(phase.tokens).reshape(-1).tofile(flat)  # nanoGPT's train.bin: the same tokens, flat uint16
    steps = phase.manifest.num_sequences // batch

    def mixlab_pass() -> int:
        loader, n = SequenceLoader(phase, batch), 0
        for b in loader:
            x, y = b[:, :-1], b[:, 1:]
            n += x.numel() + 0 * y.shape[0]
        return n

    def nanogpt_pass() -> int:
        gen, n = torch.Generator().manual_seed(0), 0
        for _ in range(steps):
            data = np.memmap(flat, dtype=np.uint16, mode="r")  # nanoGPT re-opens the memmap every batch
            ix = torch.randint(len(data) - seq - 1, (batch,), generator=gen)
            w = torch.stack([torch.from_numpy(data[i : i + seq + 1].astype(np.int64)) for i in ix.tolist()])
            x, y = w[:, :-1], w[:, 1:]
            n += x.numel() + 0 * y.shape[0]
        return n

    mixlab_pass(), nanogpt_pass()  # page cache warm for both
    t_mix, n_mix = best_of(mixlab_pass, repeat)
    t_nano, n_nano = best_of(nanogpt_pass, repeat)
    assert n_mix == n_nano
    rows = [["mixlab SequenceLoader (contiguous memmap slice -> int64)", f"{n_mix / 1e6:.1f}", f"{t_mix:.3f}",
             f"{n_mix / t_mix / 1e6:.0f}", f"{t_nano / t_mix:.1f}x"],
            ["nanoGPT get_batch (memmap + randint + list of from_numpy + stack)", f"{n_nano / 1e6:.1f}",
             f"{t_nano:.3f}", f"{n_nano / t_nano / 1e6:.0f}", "1.0x"]]
    return table(rows, ["loader", "M tokens", "s", "M tok/s", "vs nanoGPT"]) + f"\n\nbatch {batch} x seq {seq}, {steps:,} batches"


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration, subprocess.CalledProcessError):
        model = platform.processor() or "unknown CPU"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, load average {load:.2f} at start"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=24.0, help="MB of UTF-8 input to tokenize (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=2, help="best of N for the tiktoken rows and the loader")
    args = ap.parse_args()
    start = time.perf_counter()
    print(f"# bench_pack: {time.strftime('%Y-%m-%d')}, {machine()}\n")
    with tempfile.TemporaryDirectory(prefix="bench-pack-") as name:
        tmp = Path(name)
        corpus = load_corpus(args.mb)
        tok_table, summary = bench_tokenize(corpus, args.repeat, tmp)
        print(tok_table + "\n")
        print(bench_pack(tmp, summary["stage_seconds"], summary["encode_1"]) + "\n")
        print(bench_interleave() + "\n")
        print(bench_loader(tmp, args.repeat) + "\n")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"total {time.perf_counter() - start:.0f} s; load average {load:.2f} at the end")


if __name__ == "__main__":
    main()
