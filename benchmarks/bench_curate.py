"""Read + filter throughput of the curation pipelines against bare read loops, on a scaled local sample.

Builds ``--factor`` varied copies of the embedded sample (:mod:`mixlab.builders.scale`) in a temporary folder,
then times, on the same files, in one process (one core):

- text: ``bare`` = :mod:`mixlab.jsonl`'s zstd line stream + ``orjson.loads`` per line, no filtering; the mixlab
  pipeline as ``build_pipeline("slimpajama", ...)`` makes it (SlimPajama reader -> set filter -> code-in-text
  filter -> exact dedup) without and with its writer, plus the reader + set filter alone (the code-in-text
  filter is the pipeline's one compute-heavy step, see ``bench_code_in_text.py``);
- code: ``bare`` = pyarrow ``iter_batches`` over ``content`` converted to Python strings; the pipeline
  (Stack reader -> language filter -> quality filter -> exact dedup) without and with its writer, plus the
  reader + language filter alone (the quality filter tokenizes every file: the heavy step);
- the content filters alone (code-in-text, code quality) on the texts of the same files, the Python rules and
  the compiled path in turn, with the bare loops in the same rotation, median CPU seconds of ``max(3, --repeat)``
  (rows "filter alone" and "bare, interleaved"): the ratio of a filter to its kind's interleaved bare loop (the
  same statistic over the same stretch of time) is the target of the curation-speed work (>= 0.5).

The pipelines run in-process (steps chained as datatrove's executors chain them, without the executor's
per-task logging). Section ``dedup`` times whole curations through ``run_curation`` (local executor, 2 tasks, one
worker: every stage runs in this process) with neither dedup nor decontamination, then adding decontamination,
whole-source exact dedup (3 stages) and MinHash (6 stages); overhead = CPU time / the first variant's. Rates are input MB (the records' raw bytes, as the readers count ``bytes_in``) and documents
per CPU second of this process (best of ``--repeat``; the machine's cores are shared, so wall time would count
other jobs' time); wall seconds are printed too. Ratio = pipeline rate / bare rate (target >= 0.5).

Run: ``python benchmarks/bench_curate.py [--factor 8] [--repeat 2] [--section all|filters|dedup] [--json OUT]``
(about two minutes at factor 8).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from mixlab.builders.scale import scale_sample  # noqa: E402
from mixlab.curate.pipeline import build_pipeline, run_curation  # noqa: E402
from mixlab.jsonl import MAX_LINE_BYTES, lines_of  # noqa: E402
from mixlab.recipe.sources import OPTIONS_BY_KIND  # noqa: E402


def bare_jsonl(files: list[Path]) -> tuple[int, int]:
    """:mod:`mixlab.jsonl`'s line stream (zstd streaming + split into lines) + orjson; (records, bytes of records)."""
    docs = nbytes = 0
    loads = orjson.loads
    for path in files:
        with open(path, "rb") as f:
            for line in lines_of(f, path.name, MAX_LINE_BYTES):
                rec = loads(line)  # type: ignore[arg-type] (a Skip would fail here: the scaled files are whole)
                docs += rec["text"] is not None
                nbytes += len(line)  # type: ignore[arg-type]
    return docs, nbytes


def bare_parquet(files: list[Path]) -> tuple[int, int]:
    """pyarrow iter_batches over ``content`` -> Python strings; returns (rows, bytes of content)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    docs = nbytes = 0
    for path in files:
        with pq.ParquetFile(path) as pf:
            for batch in pf.iter_batches(batch_size=512, columns=["content"]):
                col = batch.column(0)
                nbytes += pc.sum(pc.binary_length(col)).as_py() or 0
                for text in col.to_pylist():
                    docs += text is not None
    return docs, nbytes


def load_texts(kind: str, files: list[Path]) -> tuple[list[str], int]:
    """The documents' texts of ``files`` and the bytes the bare loop counts for them."""
    if kind == "text":
        texts, nbytes = [], 0
        for path in files:
            with open(path, "rb") as f:
                for line in lines_of(f, path.name, MAX_LINE_BYTES):
                    texts.append(orjson.loads(line)["text"])  # type: ignore[arg-type]
                    nbytes += len(line)  # type: ignore[arg-type]
        return texts, nbytes
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    texts, nbytes = [], 0
    for path in files:
        col = pq.read_table(path, columns=["content"]).column(0)
        nbytes += pc.sum(pc.binary_length(col)).as_py() or 0
        texts += [t for t in col.to_pylist() if t is not None]
    return texts, nbytes


def filter_variants(
    sp_files: list[Path], st_files: list[Path]
) -> dict[str, tuple[Callable[[], Any], int, int]]:
    """The content filters alone on the texts of the same files: the Python rules and the compiled path.

    Text: ``code_fraction_python`` (the per-line Python scorer, as before the compiled path) vs ``code_fractions``
    over batches of 64 (what ``CodeInTextFilter`` runs). Code: ``code_quality_reason`` with the Python counts
    (``reference_scan``: ``bytes.translate`` + the token regex, as before) vs the compiled ``scan``.
    """
    from mixlab.curate import code_quality as cq
    from mixlab.curate.code_in_text import code_fraction_python, code_fractions

    text, text_bytes = load_texts("text", sp_files)
    code, code_bytes = load_texts("code", st_files)
    compiled_scan = cq.scan

    def quality(reference: bool) -> Callable[[], None]:
        def go() -> None:
            cq.scan = cq.reference_scan if reference else compiled_scan
            try:
                for t in code:
                    cq.code_quality_reason(t)
            finally:
                cq.scan = compiled_scan

        return go

    code_fractions(text[:64])  # load the compiled kernels outside the timing
    return {  # the bare loops again, in the same rotation: the filters' ratios compare medians of the same runs
        "text bare, interleaved": (lambda: bare_jsonl(sp_files), len(text), text_bytes),
        "code bare, interleaved": (lambda: bare_parquet(st_files), len(code), code_bytes),
        "text filter alone, Python": (lambda: [code_fraction_python(t) for t in text], len(text), text_bytes),
        "text filter alone, compiled": (
            lambda: [code_fractions(text[i : i + 64]) for i in range(0, len(text), 64)],
            len(text),
            text_bytes,
        ),
        "code filter alone, Python": (quality(True), len(code), code_bytes),
        "code filter alone, compiled": (quality(False), len(code), code_bytes),
    }


def interleaved(variants: dict[str, tuple[Callable[[], Any], int, int]], repeat: int) -> dict[str, dict]:
    """Median CPU seconds of each variant, the variants run in turn ``repeat`` times (same load for each)."""
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, (fn, _docs, _nbytes) in variants.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    out = {}
    for name, (_fn, docs, nbytes) in variants.items():
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        out[name] = {"docs": docs, "mb": nbytes / 1e6, "cpu_s": c, "wall_s": w, "mb_s": nbytes / 1e6 / c,
                     "docs_s": docs / c}  # fmt: skip
    return out


def run_steps(steps: list[Any]) -> tuple[int, int]:
    """Chain datatrove steps in-process; returns (reader records_in, reader bytes_in)."""
    data = None
    for step in steps:
        data = step(data, rank=0, world_size=1)
    for _ in data or ():
        pass
    stats = steps[0].stats.stats
    return int(stats["records_in"].total), int(stats["bytes_in"].total)


def timed(fn: Callable[[], tuple[int, int]], repeat: int) -> dict[str, float]:
    best_cpu = best_wall = float("inf")
    docs = nbytes = 0
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        docs, nbytes = fn()
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return {
        "docs": docs,
        "mb": nbytes / 1e6,
        "cpu_s": best_cpu,
        "wall_s": best_wall,
        "mb_s": nbytes / 1e6 / best_cpu,
        "docs_s": docs / best_cpu,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--factor", type=int, default=8, help="copies of the embedded sample")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", type=Path, help="build the scaled sample here and keep it")
    ap.add_argument("--section", choices=("all", "filters", "dedup"), default="all")
    args = ap.parse_args(argv)
    try:
        from loguru import logger

        logger.remove()  # datatrove logs every step start through loguru
    except ImportError:
        pass

    root = args.keep or Path(tempfile.mkdtemp(prefix="mixlab-bench-curate-"))
    try:
        if not (root / "slimpajama").exists():
            scale_sample(args.factor, root)
        sp_files = sorted((root / "slimpajama/train").glob("chunk*/*.jsonl.zst"))
        st_files = sorted((root / "stack/data").glob("*/*.parquet"))
        out = root / "out"

        def pipeline(
            kind: str, path: Path, writer: bool, upto: int | None = None
        ) -> Callable[[], tuple[int, int]]:
            def go() -> tuple[int, int]:
                shutil.rmtree(out, ignore_errors=True)
                steps = build_pipeline(OPTIONS_BY_KIND[kind](), str(path), str(out))
                steps = steps if writer else steps[:-1]
                return run_steps(steps[:upto] if upto else steps)

            return go

        def curation(kind: str, path: Path, **options: Any) -> Callable[[], tuple[int, int]]:
            def go() -> tuple[int, int]:
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(f"{out}_logs", ignore_errors=True)
                opts = OPTIONS_BY_KIND[kind](**options)
                res = run_curation(opts, str(path), str(out), tasks=2, workers=1)
                return res["docs_in"], res["bytes_in"]

            return go

        sp, st = root / "slimpajama/train", root / "stack/data"
        variants = {
            "no dedup, no decontam": {"dedup": "none", "decontaminate": False},
            "+ decontaminate": {"dedup": "none"},
            "+ decontam + exact": {"dedup": "exact"},
            "+ decontam + minhash": {"dedup": "minhash"},
        }
        dedup_rows = (
            {
                f"{label} {name}": timed(curation(kind, path, **opts), args.repeat)
                for label, kind, path in (("text", "slimpajama", sp), ("code", "stack", st))
                for name, opts in variants.items()
            }
            if args.section in ("all", "dedup")
            else {}
        )
        rows = (
            {}
            if args.section == "dedup"
            else {
                "text bare (zstd + orjson)": timed(lambda: bare_jsonl(sp_files), args.repeat),
                "text reader + set filter": timed(pipeline("slimpajama", sp, False, 2), args.repeat),
                "text pipeline, no writer": timed(pipeline("slimpajama", sp, False), args.repeat),
                "text pipeline + writer": timed(pipeline("slimpajama", sp, True), args.repeat),
                "code bare (iter_batches)": timed(lambda: bare_parquet(st_files), args.repeat),
                "code reader + lang filter": timed(pipeline("stack", st, False, 2), args.repeat),
                "code pipeline, no writer": timed(pipeline("stack", st, False), args.repeat),
                "code pipeline + writer": timed(pipeline("stack", st, True), args.repeat),
            }
        )
        if args.section in ("all", "filters"):
            rows.update(interleaved(filter_variants(sp_files, st_files), max(3, args.repeat)))
        rows.update(dedup_rows)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    print(f"scaled sample x{args.factor}: {len(sp_files)} SlimPajama files, {len(st_files)} Stack files")
    print(
        f"{'run':<28} {'docs':>7} {'MB':>7} {'cpu s':>7} {'wall s':>7} {'MB/s':>8} {'docs/s':>8} {'ratio':>6}"
    )
    for name, r in rows.items():
        if name in dedup_rows:  # ratio: CPU time over the same kind's run without dedup and decontamination
            r["ratio"] = r["cpu_s"] / rows[f"{name[:4]} no dedup, no decontam"]["cpu_s"]
        else:
            kind = name[:4]
            interleaved_bare = rows.get(f"{kind} bare, interleaved")
            if "filter alone" in name and interleaved_bare is not None:  # the same statistic on both sides
                bare = interleaved_bare
            else:
                bare = rows["text bare (zstd + orjson)" if kind == "text" else "code bare (iter_batches)"]
            r["ratio"] = r["mb_s"] / bare["mb_s"]
        print(
            f"{name:<28} {r['docs']:>7} {r['mb']:>7.1f} {r['cpu_s']:>7.2f} {r['wall_s']:>7.2f} "
            f"{r['mb_s']:>8.1f} {r['docs_s']:>8.0f} {r['ratio']:>6.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"factor": args.factor, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
