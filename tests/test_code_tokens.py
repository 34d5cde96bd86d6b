"""The compiled counts of the code quality filter equal the Python specification on every tested text.

:func:`mixlab.curate._code_tokens.scan` (numba: line lengths, the minified rule, alphanumerics and token counts in
one pass) must return exactly what :func:`~mixlab.curate.code_quality.reference_scan` (``str.splitlines``,
``bytes.translate`` and the ``_TOKEN.findall`` + ``Counter`` rules) returns, and
:func:`~mixlab.curate.code_quality.code_quality_reason` the same reason as the Python rules
(``code_quality_reason_reference``) under several option sets: checked on the embedded Stack sample, the
detector's labeled sets and fuzzed texts with quotes, escapes, every ``str.splitlines`` boundary (``\\r\\n``
too), long lines, digits after non-ASCII letters, KELVIN SIGN and non-ASCII digits.
"""

from __future__ import annotations

import functools
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from mixlab.curate import code_quality as cq
from mixlab.curate._code_tokens import ScanRules, pack_keywords, scan
from mixlab.jsonl import read_jsonl
from mixlab.recipe.sources import StackOptions

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
    "\n",
    "\r\n",
    "\r\r\n\n",
    "a\rb\x0bc\x0cd\x1ce\x1df\x1eg\x85h\u2028i\u2029j\n",
    "x" * 30 + "\r\n" + "y " * 20,
    "ab\r",
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
        "\r",
        "\r\n",
        "\x0b\x0c\x1c\x1d\x1e",
        "\x85",
        "\u2028\u2029",
        "x" * 12,
        "x = 1",
    ]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(n)]


@functools.cache
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
    table = pack_keywords(cq.KEYWORDS)
    assert np.count_nonzero(table) == len(cq.KEYWORDS) and len(table) >= 2 * len(cq.KEYWORDS)


# minified rules: the defaults; short lines (one in most fuzzed texts); any non-empty line with fewer spaces than
# characters; never (spaces < 0); none
RULES = [ScanRules(500, 0.06), ScanRules(12, 0.2), ScanRules(1, 1.0), ScanRules(0, 0.0), ScanRules()]


@pytest.mark.parametrize("rules", RULES, ids=lambda r: f"min_len={r.min_len},fraction={r.max_space_fraction}")
def test_scan_equals_reference(rules):
    """Every count (lines, longest, line characters, minified, alphanumerics, tokens) equals the Python rules."""
    texts = _texts() + EDGE + _fuzz(2000, 1)
    diff = [t for t in texts if scan(t, cq._KEYWORD_KEYS, rules) != cq.reference_scan(t, None, rules)]
    assert not diff, [t[:80] for t in diff[:5]]


OPTIONS = {
    "default": cq.DEFAULT_OPTIONS,
    "tight": StackOptions(
        max_line_length=40,
        max_avg_line_length=20,
        minified_line_length=30,
        min_tokens_for_data_check=4,
        min_alphanum_fraction=0.5,
        min_keyword_fraction=0.05,
        max_literal_fraction=0.3,
    ),
    "no minified, no data": StackOptions(drop_minified=False, drop_data_like=False, max_line_length=60),
    "minified only": StackOptions(
        minified_line_length=20, minified_max_space_fraction=0.3, max_line_length=10**6
    ),
}


@pytest.mark.parametrize("name", OPTIONS)
def test_code_quality_reason_equals_reference(name):
    """The compiled decision (line rules in the scan, the token pass skipped where a line rule decides) equals the
    Python rules on every text, under options that make each check decide somewhere."""
    options = OPTIONS[name]
    texts = _texts() + EDGE + _fuzz(2000, 2)
    got = [cq.code_quality_reason(t, options) for t in texts]
    want = [cq.code_quality_reason_reference(t, options) for t in texts]
    diff = [(t[:80], g, w) for t, g, w in zip(texts, got, want, strict=True) if g != w]
    assert not diff, diff[:5]
    assert len(set(want)) >= 3, set(want)  # the options exercise several checks


def test_token_pass_skipped_when_a_line_rule_decides():
    """The skip that saves the token pass of minified and over-long files happens (and only as documented)."""
    rules = cq.scan_rules(cq.DEFAULT_OPTIONS)
    minified = "if(x){y=1;}" * 100
    assert scan(minified, cq._KEYWORD_KEYS, rules)[1:5] == (0, 0, 0, 0)
    assert scan(minified, cq._KEYWORD_KEYS)[1:5] == cq.reference_scan(minified)[1:5] != (0, 0, 0, 0)
    assert scan("if x " * 300, cq._KEYWORD_KEYS, rules)[1:5] == (0, 0, 0, 0)  # 1500 > max_line_length
    kept = "if x:\n    return 1\n"
    assert scan(kept, cq._KEYWORD_KEYS, rules) == cq.reference_scan(kept, None, rules)


def test_is_autogenerated_equals_split_rule():
    """The header search by ``str.find`` equals the former ``"\\n".join(text.split("\\n", n)[:n])`` rule."""
    markers = ["generated by", "do not edit"]
    texts = _fuzz(500, 3) + [("\n" * k) + "Generated By x" for k in range(8)] + ["DO NOT EDIT", ""]
    for n in (1, 2, 5):
        for t in texts:
            head = "\n".join(t.split("\n", n)[:n]).lower()
            assert cq.is_autogenerated(t, markers, n) == any(m in head for m in markers), (t[:80], n)
