"""MB/s per core of each tokenizer backend (mixlab.tokenizer_backends) against bare tiktoken, on the sample.

Usage: ``python benchmarks/bench_tokenize_backends.py [--repeat 5] [--encodings cl100k_base,o200k_base,bpe,bpe-cl100k]``

Input: every document of the embedded sample read from its files (SlimPajama jsonl.zst ``text``, Stack parquet
``content``, commit jsonl.zst contents and messages, notebook files, StackExchange post bodies). Encodings:
cl100k_base, o200k_base, a BPE trained by ``mixlab.tokenizer.train_bpe`` on the sample (mixlab's own split
pattern) and the same ranks under cl100k_base's split pattern. One process, one thread: each backend encodes the
whole corpus in chunks of 64 documents (as mixlab's tokenize workers do), backends alternating round by round
so that load changes hit all of them alike; the median round is reported. "bare tiktoken" is
``enc.encode_ordinary`` per document without mixlab's long-run cut. Before timing, every backend's ids are
compared with ``mixlab.tokenizer.encode_document`` on every document; a backend that differs is marked and
``select_backend`` never chooses it.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import platform
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "mixlab" / "sample" / "data"
CHUNK = 64


def sample_texts() -> dict[str, list[str]]:
    """The sample's documents by source, read straight from the committed files."""
    import orjson
    import pyarrow.parquet as pq
    import zstandard

    def jsonl(pattern: str) -> list[dict]:
        rows = []
        for path in sorted(glob.glob(str(SAMPLE / pattern), recursive=True)):
            with open(path, "rb") as raw:
                rows += [orjson.loads(line) for line in io.BufferedReader(
                    zstandard.ZstdDecompressor().stream_reader(raw)) if line.strip()]
        return rows

    out = {"slimpajama": [r["text"] for r in jsonl("slimpajama/**/*.jsonl.zst")]}
    out["stack"] = [c for path in sorted(glob.glob(str(SAMPLE / "stack" / "data" / "*" / "*.parquet")))
                    for c in pq.read_table(path, columns=["content"]).column("content").to_pylist() if c]
    out["commits"] = [r[k] for r in jsonl("commits/*.jsonl.zst") for k in ("old_contents", "new_contents", "message")
                      if r.get(k)]
    out["notebooks"] = [Path(p).read_text(errors="surrogateescape")
                        for p in sorted(glob.glob(str(SAMPLE / "notebooks" / "*.ipynb")))]
    out["stackexchange"] = [row.get("Body", "") for path in sorted(glob.glob(str(SAMPLE / "stackexchange" / "*.xml")))
                            for row in ET.parse(path).getroot() if row.get("Body")]
    return out


def encodings(names: list[str], texts: list[str]) -> dict[str, object]:
    import tiktoken

    from mixlab.tokenizer import named_encoding, train_bpe
    from mixlab.tokenizer_backends import NAMED_PATTERNS

    out: dict[str, object] = {}
    for name in names:
        if name in NAMED_PATTERNS:
            out[name] = named_encoding(name)
        elif name in ("bpe", "bpe-cl100k"):
            bpe = train_bpe(texts[::3], 8192)
            out["bpe"] = bpe
            if name == "bpe-cl100k" or "bpe-cl100k" in names:
                out["bpe-cl100k"] = tiktoken.Encoding(
                    name="mixlab-bpe-cl100k-pattern", pat_str=NAMED_PATTERNS["cl100k_base"],
                    mergeable_ranks=bpe._mergeable_ranks, special_tokens=bpe._special_tokens)  # noqa: SLF001
        else:
            raise SystemExit(f"unknown encoding {name!r}: use cl100k_base, o200k_base, bpe or bpe-cl100k")
    return {k: out[k] for k in names}


def run_chunks(encode: Callable[[list[str]], list], texts: list[str]) -> None:
    for i in range(0, len(texts), CHUNK):
        encode(texts[i : i + CHUNK])


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration, subprocess.CalledProcessError):
        model = platform.processor() or "unknown CPU"
    return (f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.2f} at start")


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for pkg in ("tiktoken", "gigatoken", "quicktok-v1", "riptoken", "bpe-openai"):
        try:
            found.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            found.append(f"{pkg} (not installed)")
    return ", ".join(found)


def bench(enc: object, texts: list[str], repeat: int) -> list[list[str]]:
    from mixlab.tokenizer import encode_document
    from mixlab.tokenizer_backends import BACKENDS, BackendUnavailable, backend_status, build_backend

    mb = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e6
    want = [encode_document(enc, t) for t in texts]  # type: ignore[arg-type]
    status = backend_status(enc)  # type: ignore[arg-type]
    runners: dict[str, Callable[[list[str]], list]] = {
        "bare tiktoken": lambda chunk: [enc.encode_ordinary(t) for t in chunk],  # type: ignore[attr-defined]
    }
    notes = {"bare tiktoken": "no long-run cut"}
    for name in BACKENDS:
        if name == "reference":
            continue
        try:
            backend = build_backend(name, enc)  # type: ignore[arg-type]
        except BackendUnavailable as e:
            notes[name] = str(e).split(": ", 1)[-1]
            continue
        got = backend.encode_batch_ordinary(texts)
        bad = sum(list(g) != w for g, w in zip(got, want, strict=True))
        probe = "probe ok" if status[name] == "ok" else "probe: " + status[name].split(" (")[0]
        notes[name] = f"{probe}; differs on {bad}/{len(texts)} documents"
        runners[name] = backend.encode_batch_ordinary
    seconds: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(repeat):
        for name, fn in runners.items():
            t0 = time.perf_counter()
            run_chunks(fn, texts)
            seconds[name].append(time.perf_counter() - t0)
    base = statistics.median(seconds["bare tiktoken"])
    rows = []
    for name in list(runners) + [n for n in notes if n not in runners]:
        if name in runners:
            med = statistics.median(seconds[name])
            rows.append([name, f"{mb / med:.1f}", f"{base / med:.2f}x", notes.get(name, "")])
        else:
            rows.append([name, "", "", notes[name]])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--encodings", default="cl100k_base,o200k_base,bpe,bpe-cl100k")
    args = parser.parse_args()
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    by_source = sample_texts()
    texts = [t for docs in by_source.values() for t in docs]
    mb = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e6
    print(f"Machine: {machine()}\nPackages: {versions()}")
    print(f"Corpus: {len(texts):,} documents, {mb:.2f} MB (" + ", ".join(
        f"{k} {len(v)}" for k, v in by_source.items()) + f"); one process, chunks of {CHUNK}, "
        f"median of {args.repeat} alternating rounds\n")
    from mixlab.tokenizer_backends import select_backend

    for name, enc in encodings(args.encodings.split(","), texts).items():
        chosen = select_backend(enc).name  # type: ignore[arg-type]
        print(f"{name}: select_backend -> {chosen}\n")
        print("| backend | MB/s | vs bare tiktoken | exactness |\n|---|---|---|---|")
        for row in bench(enc, texts, args.repeat):
            print("| " + " | ".join(row) + " |")
        print()


if __name__ == "__main__":
    main()
