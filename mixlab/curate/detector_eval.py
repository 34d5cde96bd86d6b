"""Labeled evaluation set of the code-in-text detector (real documents): record format, loader, line truth.

Record (one JSON line of ``benchmarks/data/code_in_text_labeled.jsonl.zst``)::

    {"id", "source", "origin", "license", "split": "dev" | "test", "label": "prose" | "code" | "mixed",
     "text", "code": [[start, end), ...], "ignore": [[start, end), ...]}

``code`` / ``ignore`` are line ranges (0-based, end exclusive, over ``text.split("\\n")``): lines in ``code``
are code, lines in ``ignore`` are neither prose nor code (tables, API signatures, Markdown link definitions,
``\\begin{Sinput}`` markers) and are not scored; every other non-blank line is prose. ``label`` is ``code`` for
whole source files, ``mixed`` for a document with prose and at least one code line, else ``prose``.

Ground truth comes from the sources themselves, never from the detector:

- prose: news articles (gensim ``lee_background.cor``), Wikipedia (gensim's enwiki excerpt, wikitext stripped),
  The Devil's Dictionary (dict-devil);
- code: the embedded sample's Stack parquet rows (code languages) and Pygments example files;
- mixed: Python docs (python3.11-doc ``_sources/**/*.rst.txt``: ``::`` literal blocks, code directives and
  ``>>>`` sessions are code), Node.js API docs (nodejs-doc ``api/*.md``: fenced blocks are code, the fence
  lines themselves removed), the Debian Reference (debian-reference-en HTML: ``<pre class="screen">`` is code)
  and R vignettes (Sweave ``.Rnw``, LaTeX: ``<<>>= ... @`` chunks are code, chunk markers removed).
  Code blocks are rendered without extra indentation, as a web-page text extractor would give them.

``split`` is drawn from a hash of the origin FILE, so the pieces of one page share a split: tune on ``dev``,
report ``test``. The held-out set ``benchmarks/data/code_in_text_heldout.jsonl.zst`` (same format, built by
``python -m mixlab.builders.detector_heldout`` from packages the tuning set never used) splits by package
instead. This module reads the set (:func:`load_labeled`) and its per-line truth; the builder is
``python -m mixlab.builders.detector_set --out benchmarks/data/code_in_text_labeled.jsonl.zst`` (needs apt-get
after ``apt-get update``, dpkg, pip and the registries; unpacks into a temporary folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixlab.jsonl import read_jsonl


def load_labeled(path: str | Path) -> list[dict[str, Any]]:
    """The records of a labeled set (``.jsonl.zst``, ``.jsonl.gz`` or ``.jsonl``; a damaged line raises)."""
    return list(read_jsonl(path))


def line_truth(record: dict[str, Any]) -> list[bool | None]:
    """Per line of ``record["text"].split("\\n")``: True code, False prose, None blank or ignored."""
    lines = record["text"].split("\n")
    truth: list[bool | None] = [False if ln.strip() else None for ln in lines]
    for key, value in (("code", True), ("ignore", None)):
        for start, end in record[key]:
            for i in range(start, end):
                truth[i] = value
    return truth


def true_code_fraction(record: dict[str, Any]) -> float:
    """Characters on code lines / characters on scored (non-blank, not ignored) lines."""
    total = code = 0
    for line, t in zip(record["text"].split("\n"), line_truth(record), strict=True):
        if t is not None:
            n = len(line.strip())
            total += n
            code += n if t else 0
    return code / total if total else 0.0


CUT = 0.10  # a document "has code" when its code fraction exceeds this (the measure)


def cut_scores(records: list[dict[str, Any]], fractions: list[float], cut: float = CUT) -> dict[str, float]:
    """Detection at ``cut``: a document with any code (label ``code`` or ``mixed``) is positive, one is flagged
    when its detected code fraction exceeds ``cut``. Precision, recall, F1 and the share of prose flagged."""
    tp = fp = fn = prose = 0
    for rec, frac in zip(records, fractions, strict=True):
        truth, pred = rec["label"] != "prose", frac > cut
        tp += truth and pred
        fp += pred and not truth
        fn += truth and not pred
        prose += not truth
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "prose_flagged": fp / prose if prose else 0.0,
        "docs": len(records),
    }
