"""Quality of the code-in-text detector: the held-out threshold and the classes the issue names.

The held-out set (``benchmarks/data/code_in_text_heldout.jsonl.zst``, :mod:`mixlab.builders.detector_heldout`)
comes from Debian, npm and PyPI packages the tuning set never used; its ``test`` packages were never looked at
while the rules were written. Unit cases: configuration/data files, one-line SQL and shell, a Ruby hash, C++ with
few braces must count as code; licences, poetry, tables, math and changelogs must not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mixlab.curate import code_fraction
from mixlab.curate.detector_eval import CUT, cut_scores, load_labeled

HELDOUT = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "code_in_text_heldout.jsonl.zst"

CODE = {
    "yaml": "name: CI\non:\n  push:\n    branches: [main]\njobs:\n  test:\n    runs-on: ubuntu-latest\n"
    "    steps:\n      - uses: actions/checkout@v4\n      - run: python -m pytest\n",
    "json": '{\n  "name": "commander",\n  "version": "12.1.0",\n  "main": "index.js",\n  "license": "MIT",\n'
    '  "engines": {\n    "node": ">=18"\n  }\n}\n',
    "ini": "[tox]\nenvlist = py311, lint\n\n[testenv]\ndeps = pytest\ncommands = pytest tests\n",
    "toml": '[project]\nname = "mixlab"\nversion = "0.1.0"\n\n[tool.ruff]\nline-length = 120\n',
    "sql": "SELECT name, count(*) FROM users WHERE active = 1 GROUP BY name;\n",
    "shell": "pip install --upgrade attrs\n",
    "ruby_hash": "MIME = {\n  'html' => 'text/html',\n  'css'  => 'text/css',\n  'js'   => 'application/javascript',\n"
    "  'png'  => 'image/png',\n}\n",
    "cpp_few_braces": "#include <vector>\n\ntemplate <typename T>\ninline T clamp(T v, T lo, T hi)\n"
    "  { return v < lo ? lo : hi < v ? hi : v; }\n\nstd::vector<int> make_range(int n);\n",
}
PROSE = {
    "licence": "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and\n"
    'associated documentation files (the "Software"), to deal in the Software without restriction,\n'
    "including without limitation the rights to use, copy, modify, merge, publish, distribute.\n",
    "poetry": "Tell me not, in mournful numbers,\nLife is but an empty dream!\nFor the soul is dead that slumbers,\n"
    "And things are not what they seem;\nLife is real! Life is earnest!\nAnd the grave is not its goal;\n",
    "table": "| Year | Team | Wins |\n|------|------|------|\n| 1998 | Reds | 12 |\n| 1999 | Blues | 9 |\n\n"
    "The table above lists the wins of each team in the two seasons that the league was played.\n",
    "math": "Let x be a real number with x > 0. Then the sum of 1/n^2 over all n equals pi^2/6, and for every\n"
    "epsilon > 0 there is an N such that |a_n - L| < epsilon whenever n >= N, which proves the claim.\n",
    "changelog": "4.21.2 / 2024-11-06\n==========\n\n  * deps: path-to-regexp@0.1.12\n    - Fix backtracking protection\n"
    "  * Improve the error message when the router is called twice.\n\n"
    "mixlab (0.2-1) unstable; urgency=medium\n\n  * New upstream release.\n\n"
    " -- Jane Doe <jane@example.org>  Mon, 04 Nov 2024 10:00:00 +0000\n",
}


@pytest.mark.parametrize("kind", sorted(CODE))
def test_code_classes_detected(kind: str):
    """Whole config/data files, one-line SQL and shell, a Ruby hash and C++ with few braces are code (> CUT)."""
    assert code_fraction(CODE[kind]) > CUT, kind


@pytest.mark.parametrize("kind", sorted(PROSE))
def test_prose_classes_not_flagged(kind: str):
    """Licences, poetry, tables, math and changelogs stay below the cut (never flagged as code)."""
    assert code_fraction(PROSE[kind]) <= CUT, kind


def test_heldout_f1_and_prose_flag_rate():
    """On the held-out packages (split ``test``): F1 >= 0.95 at the 0.10 cut and at most 1% of prose flagged."""
    records = [r for r in load_labeled(HELDOUT) if r["split"] == "test"]
    assert {r["label"] for r in records} == {"prose", "code", "mixed"}
    scores = cut_scores(records, [code_fraction(r["text"]) for r in records])
    assert scores["f1"] >= 0.95, scores
    assert scores["prose_flagged"] <= 0.01, scores
