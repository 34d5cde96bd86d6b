"""Rebuild the evaluation subsets shipped in ``mixlab/eval/data`` from the packages they come from.

Usage (nothing here runs at import time or in tests; the files it writes are committed)::

    python -m mixlab.builders.eval_data [--out mixlab/eval/data] [--wheel EVALS.whl] [--sdist BIGBENCH.tar.gz]

Without ``--wheel`` / ``--sdist`` the pinned ``evals-3.0.1.post1-py3-none-any.whl`` and
``bigbench-1.0.0.tar.gz`` (a 358 MB sdist) are fetched by :mod:`mixlab.builders.fetch` (hash-checked, cached).

It writes ``quartz_100.jsonl`` (100 lines of the evals wheel's ``registry/data/quartz/samples.jsonl``, byte for
byte) and ``qa_wikidata_100.json`` (a BIG-bench ``task.json`` holding the original header, canary included,
and 100 of the 20,442 ``qa_wikidata`` examples). Items are drawn with ``random.Random(SEED).sample`` and kept
in their original order. Licenses and provenance: ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tarfile
import zipfile
from pathlib import Path

import mixlab.eval
from mixlab.builders import pins
from mixlab.builders.fetch import fetch

SEED = 20240820
N_ITEMS = 100
DATA = Path(mixlab.eval.__file__).resolve().parent / "data"
QUARTZ_MEMBER = "evals/registry/data/quartz/samples.jsonl"
QA_WIKIDATA_MEMBER = "bigbench/benchmark_tasks/qa_wikidata/task.json"


def build_quartz(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        lines = z.read(QUARTZ_MEMBER).decode("utf-8").splitlines()
    picked = sorted(random.Random(SEED).sample(range(len(lines)), N_ITEMS))
    return [lines[i] for i in picked]


def build_qa_wikidata(sdist: Path) -> dict:
    with tarfile.open(sdist) as t:
        member = next(m for m in t.getmembers() if m.name.endswith(QA_WIKIDATA_MEMBER))
        fileobj = t.extractfile(member)
        assert fileobj is not None
        task = json.load(fileobj)
    examples = task["examples"]
    picked = sorted(random.Random(SEED).sample(range(len(examples)), N_ITEMS))
    return {**{k: v for k, v in task.items() if k != "examples"}, "examples": [examples[i] for i in picked]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=DATA, help="output folder (default: mixlab/eval/data)")
    ap.add_argument("--wheel", type=Path, help="a local evals wheel (default: fetch the pinned one)")
    ap.add_argument("--sdist", type=Path, help="a local bigbench sdist (default: fetch the pinned one)")
    args = ap.parse_args(argv)
    wheel = args.wheel or fetch(pins.EVALS)
    sdist = args.sdist or fetch(pins.BIGBENCH)
    (args.out / "quartz_100.jsonl").write_text("\n".join(build_quartz(wheel)) + "\n", encoding="utf-8")
    task = build_qa_wikidata(sdist)
    text = json.dumps(task, ensure_ascii=False, indent=1) + "\n"
    (args.out / "qa_wikidata_100.json").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
