"""Decontamination filter and control-character screen alone, against the bare reading loops, on a scaled sample.

Builds ``--factor`` varied copies of the embedded sample (:mod:`mixlab.builders.scale`, as ``bench_curate.py``
does) and times, on the texts of the same files, in one process (one core), each variant in turn ``--repeat``
times (median CPU seconds: the machine's cores are shared):

- ``bare``: the reading loop of ``bench_curate.py`` (text: zstd lines + orjson; code: pyarrow ``iter_batches``
  over ``content`` to Python strings);
- ``decontam, Python``: :meth:`NgramIndex.reference_matches` per text (the tuple-of-words check, as before the
  compiled pre-screen); ``decontam, compiled``: :meth:`NgramIndex.matches` (the pre-screen, the reference on its
  hits) with the shipped index at n = 13 (what ``DecontaminationFilter.filter`` runs per document);
- ``controls, regex`` / ``controls, bytes``: :func:`mixlab.sources.base.has_controls_regex` (as before) and
  :func:`~mixlab.sources.base.has_controls` (the screen ``clean_controls`` runs on every document read).

The decisions of each pair are compared (they must be identical). Ratio = variant MB/s / bare MB/s (target of
issue 15: >= 0.5). Run: ``python benchmarks/bench_decontaminate.py [--factor 8] [--repeat 5] [--keep DIR]``
(about a minute at factor 8).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_curate import bare_jsonl, bare_parquet, interleaved, load_texts  # noqa: E402

from mixlab.builders.scale import scale_sample  # noqa: E402
from mixlab.curate.decontaminate import shipped_index  # noqa: E402
from mixlab.sources.base import has_controls, has_controls_regex  # noqa: E402


def variants(sp_files: list[Path], st_files: list[Path]) -> dict[str, tuple[Callable[[], Any], int, int]]:
    """name -> (function, documents, bytes), text rows then code rows; checks that each pair decides alike."""
    index = shipped_index(13)
    out: dict[str, tuple[Callable[[], Any], int, int]] = {}
    for kind, files, bare in (("text", sp_files, bare_jsonl), ("code", st_files, bare_parquet)):
        texts, nbytes = load_texts(kind, files)
        python = [index.reference_matches(t) for t in texts]
        compiled = [index.matches(t) for t in texts]  # also builds the hash table, loads the kernels
        if python != compiled:
            raise AssertionError(f"{kind}: the compiled decontamination decides differently")
        if [has_controls_regex(t) for t in texts] != [has_controls(t) for t in texts]:
            raise AssertionError(f"{kind}: the control-character screens differ")
        hits = sum(index.table().may_match(t) for t in texts)
        print(f"{kind}: {len(texts)} documents, {sum(map(bool, python))} contaminated, {hits} pre-screen hits, "
              f"{sum(not t.isascii() for t in texts)} non-ASCII")  # fmt: skip
        n, label = len(texts), f"{kind} bare" + (" (zstd + orjson)" if kind == "text" else " (iter_batches)")
        out[label] = (lambda files=files, bare=bare: bare(files), n, nbytes)
        out[f"{kind} decontam, Python"] = (lambda t=texts: [index.reference_matches(x) for x in t], n, nbytes)
        out[f"{kind} decontam, compiled"] = (lambda t=texts: [index.matches(x) for x in t], n, nbytes)
        out[f"{kind} controls, regex"] = (lambda t=texts: [has_controls_regex(x) for x in t], n, nbytes)
        out[f"{kind} controls, bytes"] = (lambda t=texts: [has_controls(x) for x in t], n, nbytes)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--factor", type=int, default=8, help="copies of the embedded sample")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="build the scaled sample here (or reuse it) and keep it")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="mixlab-bench-decontam-"))
    try:
        if not (root / "slimpajama").exists():
            scale_sample(args.factor, root)
        sp_files = sorted((root / "slimpajama/train").glob("chunk*/*.jsonl.zst"))
        st_files = sorted((root / "stack/data").glob("*/*.parquet"))
        rows = interleaved(variants(sp_files, st_files), args.repeat)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"scaled sample x{args.factor}: {len(sp_files)} SlimPajama files, {len(st_files)} Stack files; "
          f"load average {os.getloadavg()[0]:.2f}; median CPU of {args.repeat}")  # fmt: skip
    print(f"{'run':<28} {'docs':>7} {'MB':>7} {'cpu s':>7} {'wall s':>7} {'MB/s':>8} {'ratio':>6}")
    for name, r in rows.items():
        bare = rows["text bare (zstd + orjson)" if name.startswith("text") else "code bare (iter_batches)"]
        r["ratio"] = r["mb_s"] / bare["mb_s"]
        print(f"{name:<28} {r['docs']:>7} {r['mb']:>7.1f} {r['cpu_s']:>7.3f} {r['wall_s']:>7.3f} "
              f"{r['mb_s']:>8.1f} {r['ratio']:>6.2f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"factor": args.factor, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
