"""Quality and speed of the code-in-text detector on the labeled set (benchmarks/data/code_in_text_labeled.jsonl.zst).

Reports, per split (``dev`` = what the detector was tuned on, ``test`` = held out):

(a) documents: precision / recall / F1 of the drop decision (``code_fraction > threshold``) against the truth
    "code-heavy" (true code fraction > 0.5: all source files, and mixed documents that are mostly code), at the
    configured threshold (``SlimPajamaOptions().code_threshold``) and a sweep; the drop rate per label.
(b) lines of mixed documents (what strip mode acts on): precision / recall of ``classify_lines`` (code lines),
    and of the lines that ``strip_code`` removes (blocks of >= ``strip_min_lines`` code lines; the default).
    Blank lines and lines the labels mark as neither prose nor code (tables, signatures) are not scored.
(c) speed on one core: ``code_fraction`` (drop mode; compiled, one document a call), ``code_fractions`` (batches
    of 64, what the filter runs), ``code_fraction_python`` (the Python scorer) and ``strip_code`` over every
    document, docs/s and MB/s per CPU second of the process (median of 5, the variants in turn; on shared cores
    wall time would count other jobs' time).

Run: ``python benchmarks/bench_code_in_text.py [--data PATH] [--json OUT]`` (a few seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mixlab.curate.code_in_text import (  # noqa: E402
    classify_lines,
    code_blocks,
    code_fraction,
    code_fraction_python,
    code_fractions,
    strip_code,
)
from mixlab.curate.detector_eval import line_truth, load_labeled, true_code_fraction  # noqa: E402
from mixlab.recipe.sources import SlimPajamaOptions  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "code_in_text_labeled.jsonl.zst"
SWEEP = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
HEAVY = 0.5  # a document is "code-heavy" (should be dropped) when its true code fraction exceeds this


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def doc_metrics(records: list[dict[str, Any]], fractions: list[float], threshold: float) -> dict[str, Any]:
    tp = fp = fn = 0
    dropped: Counter[str] = Counter()
    for rec, frac in zip(records, fractions, strict=True):
        truth, pred = true_code_fraction(rec) > HEAVY, frac > threshold
        tp += truth and pred
        fp += pred and not truth
        fn += truth and not pred
        dropped[rec["label"]] += pred
    totals = Counter(r["label"] for r in records)
    out = prf(tp, fp, fn)
    out["drop_rate"] = {k: dropped[k] / totals[k] for k in sorted(totals)}
    return out


def line_metrics(records: list[dict[str, Any]], min_lines: int) -> dict[str, Any]:
    """Line-level precision/recall on mixed documents: classifier labels and strip-mode removal."""
    c = Counter()
    for rec in records:
        if rec["label"] != "mixed":
            continue
        lines = rec["text"].split("\n")
        labels = classify_lines(lines)
        removed = [False] * len(lines)
        for start, end in code_blocks(lines, labels, min_lines):
            removed[start:end] = [True] * (end - start)
        for truth, lab, rem in zip(line_truth(rec), labels, removed, strict=True):
            if truth is None:
                continue
            for name, pred in (("classify", bool(lab)), ("strip", rem)):
                c[f"{name}_tp"] += truth and pred
                c[f"{name}_fp"] += pred and not truth
                c[f"{name}_fn"] += truth and not pred
    return {name: prf(c[f"{name}_tp"], c[f"{name}_fp"], c[f"{name}_fn"]) for name in ("classify", "strip")}


def speed(records: list[dict[str, Any]], repeat: int = 5) -> dict[str, float]:
    """docs/s and MB/s per CPU second, median of ``repeat`` runs, the variants in turn (same load for each)."""
    texts = [r["text"] for r in records]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    out: dict[str, float] = {"docs": len(texts), "mb": mb}
    variants = {
        "code_fraction": lambda: [code_fraction(t) for t in texts],
        "code_fractions_batch64": lambda: [
            code_fractions(texts[i : i + 64]) for i in range(0, len(texts), 64)
        ],
        "code_fraction_python": lambda: [code_fraction_python(t) for t in texts],
        "strip_code": lambda: [strip_code(t) for t in texts],
    }
    code_fractions(texts[:64])  # load the compiled kernels outside the timing
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, fn in variants.items():
            t0 = time.process_time()  # CPU seconds of this process: the cores are shared
            fn()
            cpu[name].append(time.process_time() - t0)
    for name in variants:
        best = statistics.median(cpu[name])
        out[f"{name}_docs_s"] = len(texts) / best
        out[f"{name}_mb_s"] = mb / best
    return out


def evaluate(records: list[dict[str, Any]], threshold: float, min_lines: int) -> dict[str, Any]:
    fractions = [code_fraction(r["text"]) for r in records]
    return {
        "docs": len(records),
        "labels": dict(sorted(Counter(r["label"] for r in records).items())),
        "at_threshold": doc_metrics(records, fractions, threshold),
        "sweep": {str(t): doc_metrics(records, fractions, t) for t in SWEEP},
        "lines": line_metrics(records, min_lines),
        "by_source_drop_rate": {
            src: sum(f > threshold for r, f in zip(records, fractions, strict=True) if r["source"] == src)
            / sum(r["source"] == src for r in records)
            for src in sorted({r["source"] for r in records})
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", type=Path, help="also write the full results here")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument(
        "--split", choices=("dev", "test", "both"), default="both", help="dev while tuning, both to report"
    )
    args = ap.parse_args(argv)
    opts = SlimPajamaOptions()
    records = load_labeled(args.data)
    results: dict[str, Any] = {"threshold": opts.code_threshold, "strip_min_lines": opts.strip_min_lines}
    splits = ("dev", "test") if args.split == "both" else (args.split,)
    for split in splits:
        results[split] = evaluate(
            [r for r in records if r["split"] == split], opts.code_threshold, opts.strip_min_lines
        )
    if not args.no_speed:
        results["speed"] = speed(records)

    print(
        f"labeled set: {args.data.name}, threshold {opts.code_threshold}, strip_min_lines {opts.strip_min_lines}"
    )
    print(
        f"{'split':<5} {'docs':>5} | {'drop P':>6} {'R':>5} {'F1':>5} | {'line P':>6} {'R':>5} | "
        f"{'strip P':>7} {'R':>5} | drop rate prose / mixed / code"
    )
    for split in splits:
        res = results[split]
        d, ln = res["at_threshold"], res["lines"]
        rates = " / ".join(f"{d['drop_rate'].get(k, 0):.3f}" for k in ("prose", "mixed", "code"))
        print(
            f"{split:<5} {res['docs']:>5} | {d['precision']:>6.3f} {d['recall']:>5.3f} {d['f1']:>5.3f} | "
            f"{ln['classify']['precision']:>6.3f} {ln['classify']['recall']:>5.3f} | "
            f"{ln['strip']['precision']:>7.3f} {ln['strip']['recall']:>5.3f} | {rates}"
        )
    last = splits[-1]
    print(
        f"threshold sweep ({last}): "
        + ", ".join(
            f"{t}: P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f}"
            for t, m in results[last]["sweep"].items()
        )
    )
    print(
        f"drop rate by source ({last}): "
        + ", ".join(f"{s} {v:.2f}" for s, v in results[last]["by_source_drop_rate"].items())
    )
    if "speed" in results:
        s = results["speed"]
        print(
            f"speed (1 core, {s['docs']} docs, {s['mb']:.2f} MB, median CPU s): "
            + "; ".join(
                f"{name} {s[name + '_docs_s']:.0f} docs/s {s[name + '_mb_s']:.2f} MB/s"
                for name in ("code_fraction", "code_fractions_batch64", "code_fraction_python", "strip_code")
            )
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
