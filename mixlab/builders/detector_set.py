"""Build the code-in-text detector's labeled set (:mod:`mixlab.curate.detector_eval` describes the records).

``python -m mixlab.builders.detector_set --out benchmarks/data/code_in_text_labeled.jsonl.zst`` fetches the
pinned packages (:mod:`mixlab.builders.fetch`: hash-checked, cached), unpacks them into a temporary folder (or
``--build-dir``), cuts every labeled :class:`~mixlab.builders.detector_sources.Piece` into documents at blank
lines and writes them, seeded, as zstd JSON Lines. Needs apt-get (after ``apt-get update``), dpkg and pip.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import xxhash
import zstandard

from mixlab.builders.detector_sources import (
    MAX_CHARS,
    SEED,
    Label,
    Piece,
    debian_reference,
    devil,
    fetch,
    news,
    nodejs_docs,
    pygments_files,
    python_docs,
    stack_rows,
    sweave_papers,
    wikipedia,
)
from mixlab.sample import DATA


def _ranges(flags: list[bool]) -> list[list[int]]:
    out: list[list[int]] = []
    for i, f in enumerate(flags):
        if f:
            if out and out[-1][1] == i:
                out[-1][1] = i + 1
            else:
                out.append([i, i + 1])
    return out


def _records(p: Piece, max_chars: int = MAX_CHARS, max_parts: int = 2) -> Iterator[dict[str, Any]]:
    """Cut a piece at blank lines into documents of <= max_chars (at most ``max_parts``) and label them."""
    start, size, parts = 0, 0, 0
    lines, labels = p.lines, p.labels
    n = len(lines)
    for i in range(n + 1):
        at_end = i == n
        if not at_end:
            size += len(lines[i]) + 1
        if at_end or (size > max_chars and not lines[i].strip() and i > start):
            chunk, labs = lines[start:i], labels[start:i]
            while chunk and not chunk[-1].strip():
                chunk, labs = chunk[:-1], labs[:-1]
            while chunk and not chunk[0].strip():
                chunk, labs = chunk[1:], labs[1:]
            if sum(len(c) for c in chunk) > 200:
                yield _record(p, chunk, labs, parts)
                parts += 1
            if parts >= max_parts:
                return
            start, size = i + 1, 0


def _record(p: Piece, lines: list[str], labels: list[Label], part: int) -> dict[str, Any]:
    code = [bool(ln.strip()) and lab == "code" for ln, lab in zip(lines, labels, strict=True)]
    ignore = [bool(ln.strip()) and lab == "ignore" for ln, lab in zip(lines, labels, strict=True)]
    prose = any(ln.strip() and lab == "prose" for ln, lab in zip(lines, labels, strict=True))
    label = "code" if p.source in ("stack", "pygments") else ("mixed" if any(code) and prose else "prose")
    if label == "prose" and any(code):
        label = "code"
    split = "dev" if xxhash.xxh64_intdigest(f"{SEED}:{p.group or p.origin}".encode()) % 2 == 0 else "test"
    return {
        "id": f"{p.origin}#{part}",
        "source": p.source,
        "origin": p.origin,
        "license": p.license,
        "split": split,
        "label": label,
        "text": "\n".join(lines) + "\n",
        "code": _ranges(code),
        "ignore": _ranges(ignore),
    }


# ------------------------------------------------------------------------------------------------ build


def build_records(build: Path, sample: Path) -> list[dict[str, Any]]:
    """Every labeled record (seeded draws: the same inputs give the same set)."""
    rng = random.Random(f"{SEED}:detector-eval")

    def take(pieces: Iterator[Piece], n: int, max_parts: int = 2) -> list[dict[str, Any]]:
        recs = [r for p in pieces for r in _records(p, max_parts=max_parts)]
        return sorted(rng.sample(recs, min(n, len(recs))), key=lambda r: r["id"])

    records = (
        take(news(build), 150)
        + take(wikipedia(build), 60, 1)
        + take(devil(build), 25)
        + take(stack_rows(sample), 200)
        + take(pygments_files(build), 150)
        + take(python_docs(build, rng, 220), 220)
        + take(nodejs_docs(build), 80)
        + take(debian_reference(build), 40, 8)
        + take(sweave_papers(build), 40, 6)
    )
    seen: set[str] = set()  # the same file can come from two packages (Pygments examples in the Stack sample)
    unique = []
    for r in records:
        if r["text"] not in seen:
            seen.add(r["text"])
            unique.append(r)
    return unique


def write_records(records: list[dict[str, Any]], out: Path) -> int:
    data = "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in records).encode("ascii")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(zstandard.ZstdCompressor(level=19).compress(data))
    return out.stat().st_size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/data/code_in_text_labeled.jsonl.zst"))
    ap.add_argument("--build-dir", type=Path, help="download folder to reuse (default: a temporary one)")
    ap.add_argument("--sample", type=Path, default=DATA, help="the embedded sample (its Stack rows are code)")
    args = ap.parse_args(argv)
    build = args.build_dir or Path(tempfile.mkdtemp(prefix="mixlab-detector-eval-"))
    try:
        fetch(build)
        records = build_records(build, args.sample)
    finally:
        if args.build_dir is None:
            shutil.rmtree(build, ignore_errors=True)
    size = write_records(records, args.out)
    counts: dict[str, int] = {}
    for r in records:
        key = f"{r['split']}/{r['label']}"
        counts[key] = counts.get(key, 0) + 1
    print(f"{len(records)} records, {size} bytes -> {args.out}")
    print(json.dumps(dict(sorted(counts.items()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
