"""The compiled token counts of the code quality filter equal the regex specification on every tested text.

:func:`mixlab.curate._code_tokens.scan` (numba: alphanumerics and token counts in one pass) must return exactly
what :func:`~mixlab.curate.code_quality.reference_scan` (``bytes.translate`` and the ``_TOKEN.findall`` +
``Counter`` rules) returns, hence the same ``code_quality_reason`` on every file: checked
on the embedded Stack sample, the detector's labeled sets and fuzzed texts with quotes, escapes, newlines,
digits after non-ASCII letters, KELVIN SIGN and non-ASCII digits.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from mixlab.curate import code_quality as cq
from mixlab.curate._code_tokens import pack_keywords
from mixlab.jsonl import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "mixlab" / "sample" / "data"
LABELED = [ROOT / "benchmarks" / "data" / f"code_in_text_{n}.jsonl.zst" for n in ("labeled", "heldout")]
EDGE = [
    "",
    '"',
    '"abc',
    '"a\\"b" x',
    '"a\\\nb"',
    "'a\\",
    "'a\nb' if",
    "1.2.3abc IF If iF",
    "\u00e91 \u00e9a _1 a1",
    "\u0661\u0662 x\u0663 ELSE",
    "brea\u212a \u212aeep BREAK",
    "\u0130f if \u0131f",
    "\ud800abc def",
    "x" * 13 + " implements interface otherwise",
    "a" + "b" * 40,
]


def _fuzz(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = list("aZ_09 .\"'\\\n\t(),") + [
        "if ",
        "Return",
        "\u212a",
        "\u00e9",
        "\u0663",
        "\u00bd",
        "\ud800",
    ]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(n)]


def _texts() -> list[str]:
    pq = pytest.importorskip("pyarrow.parquet")
    texts = []
    for path in sorted((SAMPLE / "stack").rglob("*.parquet")):
        texts += [t for t in pq.read_table(path, columns=["content"]).column(0).to_pylist() if t is not None]
    assert texts, "the embedded Stack sample is committed but was not found"
    for path in LABELED:
        if path.exists():
            texts += [rec["text"] for rec in read_jsonl(path)]
    return texts


def test_token_counts_equal_reference():
    """Literal share, keyword share and token count are identical to the regex rules on real and fuzzed texts."""
    texts = _texts() + EDGE + _fuzz(3000, 0)
    diff = [
        t
        for t in texts
        if cq.literal_and_keyword_fractions(t) != cq.literal_and_keyword_fractions_reference(t)
    ]
    assert not diff, [t[:80] for t in diff[:5]]


def test_only_kelvin_sign_lowercases_into_ascii():
    """The keyword packing's premise: a non-ASCII character's ``lower()`` holds a non-ASCII character, but KELVIN."""
    into_ascii = [
        c for c in range(128, sys.maxunicode + 1) if chr(c).lower().isascii() and not 0xD800 <= c < 0xE000
    ]
    assert [chr(c) for c in into_ascii] == ["\u212a"]
    assert chr(0x212A).lower() == "k"


def test_pack_keywords_refuses_what_it_cannot_represent():
    """Keys are exact only for ASCII lowercase words of <= 12 letters; anything else must raise, not collide."""
    with pytest.raises(ValueError):
        pack_keywords(["snake_case"])
    with pytest.raises(ValueError):
        pack_keywords(["abcdefghijklm"])
    assert len(pack_keywords(cq.KEYWORDS)) == len(cq.KEYWORDS)
