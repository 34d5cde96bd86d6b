"""A larger local sample: N varied copies of the embedded sample's SlimPajama shards and Stack parquet files.

``python -m mixlab.builders.scale --factor N --out DIR`` (or :func:`scale_sample`) writes, in the real layouts:

- ``DIR/slimpajama/train/chunk<c>/example_train_<i>.jsonl.zst`` for copies c = 1..N of every embedded shard;
- ``DIR/stack/data/<lang>/train-<c-1:05d>-of-<N:05d>.parquet`` for copies c = 1..N of every language file
  (The Stack's schema; statistics and ``hexsha`` recomputed from the new content by
  :func:`mixlab.builders.stack.stack_row`).

Copy 1 is the embedded sample unchanged. Copy c > 1 varies every text so that exact dedup does not collapse
the copies: the paragraphs (blocks separated by a blank line) after the first :data:`FIXED_LINES` lines are
shuffled with a seeded draw, and a suffix line marks the copy: ``[copy c]`` (SlimPajama) or a comment such as
``// copy c`` in the file's language (Stack; ``[copy c]`` where no comment syntax is known). Metadata is
copied; record ids differ (file/line, new ``hexsha``). The variation keeps metadata-based decisions (set
selection, language selection) exact; content filters (code-in-text, quality thresholds) see slightly changed
texts, so a few borderline documents can be decided differently in a copy (measured on the embedded sample,
factor 3: see tests/test_curate_scale.py).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

import orjson
import zstandard

from mixlab.jsonl import read_jsonl
from mixlab.sample import DATA as SAMPLE

FIXED_LINES = (
    10  # leading lines never moved: licence and "generated" headers (StackOptions checks 5) stay put
)
LINE_COMMENT = {  # Stack ``lang`` -> line comment marker, for the per-copy suffix of one-paragraph files
    **dict.fromkeys(
        (
            "C",
            "C++",
            "C#",
            "Java",
            "JavaScript",
            "TypeScript",
            "Go",
            "Rust",
            "PHP",
            "Kotlin",
            "Swift",
            "Dart",
            "Scala",
            "CSS",
        ),
        "//",
    ),
    **dict.fromkeys(("Python", "Ruby", "Shell", "Perl", "R", "Julia", "Elixir", "Tcl", "Makefile"), "#"),
    **dict.fromkeys(("Lua", "SQL", "Haskell", "Ada", "VHDL"), "--"),
    **dict.fromkeys(("Erlang", "Prolog"), "%"),
    "FORTRAN": "!",
}


def vary_text(text: str, copy: int, suffix: str | None = None, fixed_lines: int = FIXED_LINES) -> str:
    """``text`` for copy ``copy`` (1 = unchanged): the paragraphs after the first ``fixed_lines`` lines shuffled
    (seeded by the copy and the text), then the suffix line (default ``[copy <copy>]``) appended."""
    if copy <= 1:
        return text
    end = len(text) - len(text.rstrip("\n"))
    body, tail = text[: len(text) - end], text[len(text) - end :]
    paras = body.split("\n\n")
    head, lines = 0, 0
    while head < len(paras) and lines < fixed_lines:
        lines += paras[head].count("\n") + 2
        head += 1
    rest = paras[head:]
    random.Random(f"{copy}:{len(text)}:{text[:64]}").shuffle(rest)
    mark = suffix if suffix is not None else f"[copy {copy}]"
    return "\n\n".join([*paras[:head], *rest, mark]) + (tail or "\n")


def scale_slimpajama(factor: int, out: Path, sample: Path = SAMPLE) -> int:
    """Write ``factor`` copies of every SlimPajama shard; returns the number of records written."""
    n = 0
    shards = sorted((sample / "slimpajama/train").glob("chunk*/*.jsonl.zst"))
    for copy in range(1, factor + 1):
        for shard in shards:
            lines = []
            for rec in read_jsonl(shard):
                if isinstance(rec.get("text"), str):
                    rec["text"] = vary_text(rec["text"], copy)
                lines.append(orjson.dumps(rec))
                n += 1
            path = out / "slimpajama/train" / f"chunk{copy}" / shard.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(zstandard.ZstdCompressor(level=3).compress(b"\n".join(lines) + b"\n"))
    return n


def scale_stack(factor: int, out: Path, sample: Path = SAMPLE) -> int:
    """Write ``factor`` copies of every Stack parquet file (one file per copy); returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mixlab.builders.stack import stack_row

    n = 0
    for path in sorted((sample / "stack/data").glob("*/*.parquet")):
        table = pq.read_table(path)
        rows: list[dict[str, Any]] = table.to_pylist()
        for copy in range(1, factor + 1):
            new_rows = []
            for r in rows:
                marker = LINE_COMMENT.get(r["lang"])
                suffix = f"{marker} copy {copy}" if marker else None
                content = vary_text(r["content"], copy, suffix)
                if copy == 1:
                    new_rows.append(r)
                    continue
                new = stack_row(
                    content, r["lang"], r["max_stars_repo_path"], r["max_stars_repo_name"], r["licenses"]
                )
                new_rows.append({k: new.get(k, r[k]) for k in r})
            dest = out / "stack/data" / path.parent.name / f"train-{copy - 1:05d}-of-{factor:05d}.parquet"
            dest.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(new_rows, schema=table.schema), dest, compression="zstd")
            n += len(new_rows)
    return n


def scale_sample(factor: int, out: Path, sample: Path = SAMPLE) -> dict[str, int]:
    """Both families; returns ``{"slimpajama": records, "stack": rows}``."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    return {"slimpajama": scale_slimpajama(factor, out, sample), "stack": scale_stack(factor, out, sample)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--factor", type=int, required=True, help="number of copies (1 = the sample itself)")
    ap.add_argument("--out", type=Path, required=True, help="output folder (slimpajama/ and stack/ inside)")
    ap.add_argument(
        "--sample", type=Path, default=SAMPLE, help="the sample to scale (default: the embedded one)"
    )
    args = ap.parse_args(argv)
    counts = scale_sample(args.factor, args.out, args.sample)
    print(f"wrote {counts['slimpajama']} SlimPajama records and {counts['stack']} Stack rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
