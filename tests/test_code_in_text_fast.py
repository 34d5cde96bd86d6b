"""The fast code-in-text detector and quality-filter helpers give exactly the reference results.

:mod:`mixlab.curate.code_in_text` (its Python scorer: C-level word features, bytes-level symbol/camelCase counts,
a per-document cache; and the compiled batch path of :mod:`mixlab.curate._code_in_text_compiled` that
``code_fraction``, ``classify_lines``, ``strip_code`` and the filter use: UTF-8 bytes, DFAs built from the rules'
regexes, one numba kernel) must label every line exactly as :mod:`mixlab.curate._code_in_text_reference` (the
frozen readable rules): checked line by line and document by document on both labeled sets of the detector
benchmark, the embedded SlimPajama sample and generated edge cases (Unicode letters, digits, spaces, title case,
4-byte characters and lone surrogates included); each DFA against its ``re`` pattern, on those lines and on lines
built from the pattern's own literals; the filter's decisions likewise. The code quality helpers are checked
against their definitions and against The Stack's precomputed columns of the embedded sample.
"""

from __future__ import annotations

import itertools
import random
import re
import sys
from pathlib import Path

import pytest
from datatrove.data import Document

from mixlab.curate import _code_in_text_compiled as compiled
from mixlab.curate import _code_in_text_reference as ref
from mixlab.curate import _code_in_text_regex as regex
from mixlab.curate import _code_in_text_rules as rules
from mixlab.curate import _code_in_text_scores as scores
from mixlab.curate import code_in_text as fast
from mixlab.curate.code_quality import alphanum_fraction, code_quality_reason
from mixlab.jsonl import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
LABELED = ROOT / "benchmarks" / "data" / "code_in_text_labeled.jsonl.zst"
HELDOUT = ROOT / "benchmarks" / "data" / "code_in_text_heldout.jsonl.zst"
SAMPLE = ROOT / "mixlab" / "sample" / "data"
EDGE_LINES = [
    "x",
    "}",
    "  return foo(bar);",
    "The the THE tHe Of of, (the) 'which' \u212aeep because; however.",
    "caf\u00e9 na\u00efve \u00c9cole the of and it is (see above), which",
    " ".join(["word"] * 40) + " the of the",
    " ".join(["The", "of"] * 20),
    "use `foo_bar()` to call the function, which is what we do",
    "`x`",
    "\\section{Intro} the of which",
    "a\x1cb\x1fc the\x0bof which\x0c",
    "\u00a0the\u2003of\u3000which are\u00a0",
    "\u00bd \u00b2 \u216b \u4e2d\u6587 the of",
    "x = 1  # the of which",
    "def f(a, b):",
    "SELECT * FROM t WHERE a == b;",
    '"name": "x",',
    "[tool.ruff]",
    "name: CI",
    "'html' => 'text/html',",
    "And the night shall be filled with music;",
    "* [AuggieH](https://github.com/AuggieH) - **Auggie**",
    "==========",
    "npm install commander",
    "template <typename T>",
    "\u01c5ebug the \u00c9cole of it, \u0663[\u0664] x.\u00e9t(1) f\u00e9_x(\u00e9)",
    "\u00e9l\u00e8ve \u00e9tait l\u00e0 \u2014 the of which are the one,",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 the of and it is the of",
    "if\u00e9: x",
    "\u2003def f(x):\u3000",
    "a)\u2003{ b)\u00a0; c[\u0663] $\u00e9 \u00e9[0] \u00e9(1)",
    "\\begin{x} the of",
    "x = `a` and [b](c) `d`,",
]


def _jsonl_zst_texts(path: Path) -> list[str]:
    return [rec["text"] for rec in read_jsonl(path)]


def _corpus() -> list[str]:
    texts = [t for path in (LABELED, HELDOUT) if path.exists() for t in _jsonl_zst_texts(path)]
    for path in sorted((SAMPLE / "slimpajama").rglob("*.jsonl.zst")):
        texts += _jsonl_zst_texts(path)
    assert texts, "the labeled set and the embedded sample are committed; neither was found"
    return texts


def _fuzz_lines(n: int = 3000) -> list[str]:
    """Random lines from an alphabet of code symbols, punctuation, letters, odd whitespace and non-ASCII."""
    rng = random.Random(0)
    alphabet = list("aAzZ_09 \t;{}()[]<>=:+-*/&|!%^~$#@\\\"'`.,?") + [
        "the ", "Of ", "which ", "\u212a", "\u00e9", "\u00a0", "\x1c", "def ", "return ", "```", "//", "/*", "*/",
        "\u00c9", "\u01c5", "\u0663", "\u2003", "\u4e2d", "\u0301", "](", "SELECT ", "x := ", "#include",
        "\U0001f600", "\ud800", "\x85", "\u2028", "\u3000", "\u1680", "[x](y)", "\\begin", '"""', "'''",
    ]  # fmt: skip
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(n)]


def test_stopword_forms_are_exact():
    """The word-feature shortcut's premise: only ASCII letters and KELVIN SIGN lowercase to ASCII letters."""
    to_ascii = [
        chr(c) for c in range(sys.maxunicode + 1) if chr(c).lower() in set("abcdefghijklmnopqrstuvwxyz")
    ]
    assert set(to_ascii) - set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") == {"\u212a"}
    assert not any(w.startswith("k") for w in rules.STOPWORDS)


def test_line_scores_identical():
    """The fast line score equals the reference score on every real, edge-case and fuzzed line."""
    lines = [line for text in _corpus() for line in text.split("\n") if line.strip()]
    lines += EDGE_LINES + [line for line in _fuzz_lines() if line.strip()]
    diff = [line for line in lines if fast.line_score(line) != ref.line_score(line)]
    assert not diff, diff[:5]


def test_documents_identical():
    """classify_lines, code_fraction and strip_code (both min_lines) agree on every document."""
    rng = random.Random(1)
    fuzz = _fuzz_lines()
    docs = _corpus() + ["\n".join(rng.sample(fuzz, 12)) for _ in range(200)] + ["\n".join(EDGE_LINES)]
    for text in docs:
        lines = text.split("\n")
        assert fast.classify_lines(lines) == ref.classify_lines(lines)
        assert fast.code_fraction(text) == ref.code_fraction(text)
        for min_lines in (1, 3):
            assert fast.strip_code(text, min_lines) == ref.strip_code(text, min_lines)


def test_compiled_line_scores_identical():
    """The compiled scorer (one batch, regex flags over the joined lines) equals the reference on every line."""
    lines = [line for text in _corpus() for line in text.split("\n")]
    lines += EDGE_LINES + _fuzz_lines()
    stripped = [line.strip() for line in lines]
    scores = compiled.line_scores(stripped).tolist()
    diff = [(s, got) for s, got in zip(stripped, scores, strict=True) if s and got != ref.line_score(s)]
    assert not diff, diff[:5]


def test_word_features_stop_early_exactly():
    """Pass 3 stops before 32 tokens only when the score's word terms are decided: equal to the reference on
    lines around that point (function words, words, capitalised and numeric tokens in every mix, in runs
    that put the counts on each side of the thresholds 2/4 function words, 6/12 words, 32 tokens)."""
    rng = random.Random(3)
    kinds = ["the", "of", "which", "word", "Word", "WORD", "12", "x;", "(the)", "it,"]
    lines = [
        " ".join(["the"] * k + [filler] * m + ["of"] * j)
        for k in range(7)
        for m in range(34)
        for filler in ("12", "1;", "a=b", "x;", "Word", "word", "WORD")
        for j in range(5)
        if k + m + j
    ]
    for _ in range(3000):
        runs = [(rng.choice(kinds), rng.randint(0, 12)) for _ in range(rng.randint(1, 5))]
        lines.append(" ".join(tok for tok, n in runs for _ in range(n)) or "x")
    scores = compiled.line_scores(lines).tolist()
    assert scores == [ref.line_score(line) for line in lines]


def _threshold_docs(n: int, seed: int) -> list[str]:
    """Documents of lines whose scores sit around the labels-only path's cut points: prose runs of 1-34 tokens
    (function words, words, capitalised and numeric tokens) after code-like openings and before endings that
    move the line-end and word terms, indented or not, between code lines and blank lines."""
    rng = random.Random(seed)
    heads = [
        "",
        "",
        "The ",
        "def ",
        "x = ",
        "foo(bar) ",
        "\\section{a} ",
        "a_b c_d e_f ",
        "if (",
        "// ",
        "$x ",
    ]
    tails = ["", ".", ".", ",", ";", " {", ")", "?", " the", ":", "\\", " ->"]
    kinds = ["the", "of", "which", "house", "green", "Word", "12", "(the)", "it,", "x"]
    neighbours = ["", "", "return x;", "}", "int y = f(a);", "# note", "  indented(x);"]
    docs = []
    for _ in range(n):
        lines = []
        for _ in range(rng.randint(1, 9)):
            if rng.random() < 0.3:
                lines.append(rng.choice(neighbours))
                continue
            body = " ".join(rng.choice(kinds) for _ in range(rng.randint(1, 34)))
            indent = rng.choice(["", "", "  ", "\t"])
            lines.append(indent + rng.choice(heads) + body + rng.choice(tails))
        docs.append("\n".join(lines))
    return docs


def test_labels_only_path_equals_exact_scores():
    """The labels-only path (what the filter, code fractions and labels run: a line's word features are read
    only until its score is provably <= -4 or >= 5) is exact where it matters: each of its line scores equals
    the reference score or lies on the same side of those bounds; any score on such a side labels alike (the
    block logic with every score <= -4 or >= 5 moved further out); and its labels and code characters equal
    those of the path that computes every score in full and of the reference, on documents whose line scores
    sit on both sides of the bounds."""
    docs = _threshold_docs(2500, 5)
    lines = [line.strip() for t in docs for line in t.split("\n")]
    want = [ref.line_score(s) if s else 0 for s in lines]
    got = compiled.line_scores(lines, exact=False).tolist()
    off = [
        (s, g, w)
        for s, g, w in zip(lines, got, want, strict=True)
        if g != w and not (g <= -4 and w <= -4 or g >= 5 and w >= 5)
    ]
    assert not off, off[:5]
    assert got != want  # the cut points are met

    def moved(line: str) -> int:
        score = ref.line_score(line)
        return score - 7 if score <= -4 else score + 7 if score >= 5 else score

    labels = [
        [1 if x else 0 if x is not None else -1 for x in ref.classify_lines(t.split("\n"))] for t in docs
    ]
    assert labels == [
        [1 if x else 0 if x is not None else -1 for x in rules.label_lines(t.split("\n"), moved)]
        for t in docs
    ]
    fast_code, fast_total, fast_labels = compiled._run(docs, False, True)
    exact_code, exact_total, exact_labels = compiled._run(docs, False, True, exact=True)
    assert fast_labels.tolist() == exact_labels.tolist() == [x for doc in labels for x in doc]
    assert (fast_code.tolist(), fast_total.tolist()) == (exact_code.tolist(), exact_total.tolist())


def test_short_lowercase_tokens_read_8_bytes_at_a_time_exactly():
    """Pass 3 reads a token ``[a-z]{1,7}`` followed by " " from one 8-byte word (SWAR): its word features are
    those of the byte-by-byte loop. Lines of such tokens of every length 1-9 (function words among them) at
    every byte offset, next to capitalised, punctuated, numeric, non-ASCII tokens, tabs and runs of spaces,
    score as the reference; and a token cut by the line's (stripped) end is never read on into the bytes after
    it, even when those are lowercase letters and a space (a document's end in a batch): the word features of
    ``b[st:en]`` do not depend on ``b[en:]``."""
    import numpy as np

    from mixlab.curate import _code_in_text_kernel as kernel

    rng = random.Random(15)
    short = ["a", "of", "the", "this", "which", "because"]
    short += ["between", "abcdefgh", "abcdefghi", "x", "is", "ab"]
    other = ["The", "word,", "end.", "x1", "caf\u00e9", "don't"] + [
        "(see",
        "a-b",
        "\tand",
        "  of",
        "\u00e9t\u00e9",
    ]
    lines = []
    for _ in range(1500):
        words = [rng.choice(short if rng.random() < 0.8 else other) for _ in range(rng.randint(1, 20))]
        lines.append("x" * rng.randint(0, 7) + " " + " ".join(words))
    stripped = [line.strip() for line in lines]
    got = compiled.line_scores(stripped).tolist()
    assert got == [ref.line_score(s) if s else 0 for s in stripped]
    t = scores.tables()
    ct = scores.class_table()
    for line in stripped[:300]:
        body = line.encode()
        for cut in range(1, len(body) + 1):
            if body[cut - 1] == 32 or (cut < len(body) and 0x80 <= body[cut] < 0xC0):
                continue  # the line's end is a non-space character (and a whole one)
            feats = []
            for tail in (b"\n", b"ory and more words " * 2):
                b = np.frombuffer(body[:cut] + tail + b"\0" * 8, dtype=np.uint8)
                bw = b[: b.shape[0] // 8 * 8].view(np.uint64)
                feats.append(kernel._words(b, bw, ct, 0, cut, t.stop_keys, t.stop_mult, True, 33))
            assert feats[0] == feats[1], (line, cut)


def _word_features(line: str, need_words: bool, w_stop: int) -> tuple[int, int, int]:
    """Pass 3's (words, alphabetic tokens, function words) by the reference's definitions, with its early stop."""
    words = alpha = stop = 0
    for ntok, tok in enumerate(line.split(None, rules.MAX_TOKENS)[: rules.MAX_TOKENS], 1):
        w = tok.strip(rules.PUNCT)
        if w.isalpha():
            alpha += 1
            if len(w) > 1 and w[1:].islower():
                words += 1
                stop += w.lower() in rules.STOPWORDS
        if words >= w_stop or (
            (words >= 12 or not need_words) and stop >= 4 and 5 * stop >= alpha + 32 - ntok
        ):
            break
    return words, alpha, stop


def test_word_features_64_bytes_at_a_time_exactly():
    """Pass 3 reads tokens from bit masks of 64 bytes at a time (non-spaces, letters, lowercase letters): its
    word features equal the reference definitions for tokens that start, end or lie across each 64-byte
    window's end (every offset: padding of 0-70 bytes), tokens of 63-66 bytes, punctuated, capitalised,
    numeric and hyphenated tokens, non-ASCII bytes and tabs inside or between words (the byte loop's part),
    lines that end at the batch's last byte (no room for a window) or run on into more words after the
    line's end; and the line scores of those lines equal the reference's."""
    import numpy as np

    from mixlab.curate import _code_in_text_kernel as kernel

    rng = random.Random(55)
    tokens = ["the", "of", "which", "because", "between", "word", "Word", "WORD", "wOrd", "words.", "(see",
              "it,", "'quoted'", "\"x\"", "end.)", "don't", "e.g.", "a-b", "x1", "1990", "12,", ";", "...", "a",
              "I", "Ab", "caf\u00e9", "\u00e9t\u00e9", "na\u00efve,", "abcdefgh", "abcdefghijklmnop",
              "x" * 63, "y" * 64, "The" + "z" * 62, "(" + "w" * 64 + ")", "tab\tbed", "ctrl\x1cx", "del\x7f"]  # fmt: skip
    lines = []
    for _ in range(3000):
        words = [rng.choice(tokens if rng.random() < 0.3 else tokens[:12]) for _ in range(rng.randint(1, 40))]
        seps = [rng.choice([" ", " ", " ", "  ", "\t", " \u00a0"]) for _ in words]
        body = "".join(w + sep for w, sep in zip(words, seps, strict=True)).strip()
        lines.append(("p" * rng.randint(0, 70) + " " + body).strip())
    assert compiled.line_scores(lines).tolist() == [ref.line_score(line) for line in lines]  # learns classes
    t = scores.tables()
    ct = scores.class_table()
    for k, line in enumerate(lines):
        body = line.encode()
        want = _word_features(line, k % 2 == 0, 33 if k % 3 else 6)
        for tail, pad in ((b"", 0), (b"\n", 80), (b" and the of which are more words" * 3, 80)):
            b = np.frombuffer(body + tail + b"\0" * pad, dtype=np.uint8)
            bw = b[: b.shape[0] // 8 * 8].view(np.uint64)
            got = kernel._words(
                b, bw, ct, 0, len(body), t.stop_keys, t.stop_mult, k % 2 == 0, 33 if k % 3 else 6
            )
            assert got == want, (line, tail, pad)


def test_compiled_batches_identical():
    """Batched code fractions and labels do not depend on the batch: each equals the reference of its text."""
    rng = random.Random(2)
    fuzz = _fuzz_lines()
    docs = _corpus() + ["\n".join(rng.sample(fuzz, 12)) for _ in range(200)] + ["", "\n\n", "x"]
    rng.shuffle(docs)
    want = [ref.code_fraction(text) for text in docs]
    for size in (1, 7, 64, len(docs)):
        got = [f for i in range(0, len(docs), size) for f in fast.code_fractions(docs[i : i + size])]
        assert got == want, size


def test_filter_decisions_identical():
    """CodeInTextFilter (batched, both modes) keeps, drops (same reason), strips and annotates as the reference."""
    docs = _corpus()
    for mode in ("drop", "strip"):
        step = fast.CodeInTextFilter(threshold=0.5, mode=mode, strip_min_lines=3, batch_size=32)
        batch = [Document(text=t, id=str(i)) for i, t in enumerate(docs)]
        got = [step.filter_batch(batch[i : i + 32]) for i in range(0, len(batch), 32)]
        got = [r for chunk in got for r in chunk]
        for text, doc, result in zip(docs, batch, got, strict=True):
            frac = ref.code_fraction(text)
            assert doc.metadata["code_fraction"] == round(frac, 4)
            if frac > 0.5:
                assert result == (False, "code_in_text")
            elif mode == "strip" and frac > 0:
                out, removed = ref.strip_code(text, 3)
                if removed and not out.strip():
                    assert result == (False, "empty_after_strip")
                else:
                    assert result is True and doc.text == (out if removed else text)
            else:
                assert result is True and doc.text == text


def _keyword_lines(pattern: str, n: int, seed: int) -> list[str]:
    """Random lines built from ``pattern``'s own literal runs (``def ``, ``SELECT ``, ``#include``...), its
    alphabet and Unicode whitespace and letters: they reach deep into the DFA, where random text does not."""
    pieces: set[str] = set()

    def walk(items: list) -> None:
        run = ""
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                run += chr(av)
                continue
            if run:
                pieces.add(run)
            run = ""
            if name == "BRANCH":
                for alt in av[1]:
                    walk(list(alt))
            elif name == "SUBPATTERN":
                walk(list(av[3]))
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "ASSERT_NOT"):
                walk(list(av[-1]))
        if run:
            pieces.add(run)

    walk(regex.parse(pattern))
    extra = list("aZ_9 .:-=()[]{}<>;,$#@!*/'\"\\`|&+?%~^") + [
        "\t",
        "\u00a0",
        "\u2003",
        "\u00e9",
        "\u4e2d",
        "\U0001f600",
    ]
    alphabet = sorted(pieces) + extra
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(n)]


def test_dfas_match_their_regexes():
    """Each rule's DFA (the compiled walk) says what ``re`` says: ``match`` (``search`` for LATEX and OPERATORS),
    COMMENT as "guard fails and body matches"; on real, edge and fuzzed lines and on lines of each pattern's pieces."""
    base = [line for text in _corpus()[:300] for line in text.split("\n")] + EDGE_LINES + _fuzz_lines()
    for k, name in enumerate(scores.DFA_NAMES):
        if name == "COMMENT_GUARD":
            continue
        pattern = getattr(rules, name)
        lines = base + _keyword_lines(pattern.pattern, 4000, k)
        find = pattern.search if name in ("LATEX", "OPERATORS") else pattern.match
        want = [bool(find(s)) for s in lines]
        got = compiled.dfa_flags(name, lines)
        if name == "COMMENT":
            guard = compiled.dfa_flags("COMMENT_GUARD", lines)
            got = [g and not x for g, x in zip(got, guard, strict=True)]
        diff = [s for s, w, g in zip(lines, want, got, strict=True) if w != g]
        assert not diff, (name, diff[:5])
        assert any(want) and not all(want), name  # the lines exercise both verdicts


def test_hand_coded_sentence_equals_regex():
    """The kernel's branch-free ``SENTENCE`` (used instead of its DFA) equals ``SENTENCE.match`` on every real,
    edge-case and fuzzed line, and on lines drawn from the pattern's own alphabet (tokens of letters, ``'-``
    and ``,.;:!?"``, runs of spaces, a stray digit, tab or non-ASCII letter)."""
    rng = random.Random(2)
    parts = ["The", "A", "a", "word", "don't", "-", "'", ",", ".", '"', "?!", "'s", "x,y", "9", "\t"]
    parts.append("\u00e9")
    made = [
        "".join(rng.choice(parts) + " " * rng.randint(0, 2) for _ in range(rng.randint(1, 6)))
        for _ in range(4000)
    ]
    made = [rng.choice(["", " ", "The ", "I "]) + (m.rstrip(" ") if k % 2 else m) for k, m in enumerate(made)]
    lines = [line for text in _corpus()[:300] for line in text.split("\n")]
    lines = [line for line in lines + EDGE_LINES + _fuzz_lines() + made if line]
    want = [bool(rules.SENTENCE.match(line)) for line in lines]
    assert compiled.sentence_flags(lines) == want
    assert sum(want) > 500  # both verdicts are common


def _sentence_window_lines(n: int, seed: int) -> list[str]:
    """Lines of ``SENTENCE``'s alphabet only whose telling bytes sit at each 64-byte boundary: a first word
    padded to 0-140 bytes, then tokens of letters, "-", "'" and ``,.;:!?"`` (tail bytes then "'"s then a
    letter, a tail byte after a space, runs of spaces), some with a trailing space or a lowercase start."""
    rng = random.Random(seed)
    tokens = ["word", "The", "a", "don't", "x-y", "it,", "b.'", "ok.'", "'s", "--"] * 2
    tokens += [",", ".", '"', "?!", "'", "a.'b", "a,''b"]  # a tail byte starting a token, a letter after one
    lines = []
    for _ in range(n):
        pad = rng.randint(0, 140)
        first = rng.choice(["A", "The", "I"]) + "x" * max(0, pad - 3)
        rest = [rng.choice(tokens) for _ in range(rng.randint(0, 6))]
        line = first + "".join(" " * rng.choice([1, 1, 1, 2, 3]) + tok for tok in rest)
        if rng.random() < 0.1:
            line += " "
        if rng.random() < 0.05:
            line = line.lower()
        lines.append(line)
    return lines


def test_sentence_64_bytes_at_a_time_exactly():
    """``SENTENCE`` from bit masks of 64 bytes at a time (the lines :func:`_scan` asks about: every byte of the
    pattern's alphabet) equals ``SENTENCE.match`` where a tail-then-"'" chain, a " ", a token start or the
    line's end falls on either side of a window boundary, in a batch and at the batch's very end (the byte
    loop there); the line scores of those lines equal the reference's."""
    lines = _sentence_window_lines(6000, 11)
    want = [bool(rules.SENTENCE.match(line)) for line in lines]
    assert compiled.sentence_flags(lines) == want
    assert sum(want) > 1000 and len(want) - sum(want) > 1000  # both verdicts are common
    for line in lines[:300]:  # alone in its batch: the byte loop near the end, the windows before it
        assert compiled.sentence_flags([line, line + " the end"]) == [
            bool(rules.SENTENCE.match(line)),
            bool(rules.SENTENCE.match(line + " the end")),
        ]
    stripped = [line.strip() for line in lines]
    assert compiled.line_scores(stripped).tolist() == [ref.line_score(s) for s in stripped]


def _camel_lines(n: int, seed: int) -> list[str]:
    """Lines of 0-5 uppercase letters, each after one of: an ASCII lowercase letter, an uppercase one, a digit,
    ``_``, a space or tab, non-ASCII letters of 2-4 bytes (lowercase, title case, the Kelvin sign, an emoji),
    a lowercase letter then a non-ASCII character, a combining mark, or Markdown that substitutes to ``x``
    (`` `c` ``, ``[a](b)``); some lines start with an uppercase letter or with indentation, a few prose words
    between."""
    rng = random.Random(seed)
    before = ["a", "z", "q", "A", "Z", "0", "_", " ", "\t", "(", "@", "\u00e9", "\u00df", "\u212a", "\u01c5",
              "\U0001f600", "a\u00e9", "z\u00df", "a\u0301", "a\U0001f600", "`c`", "[a](b)", "x`c`"]  # fmt: skip
    before += ["a", "z", "q", "xy"] * 4  # enough lines with 3 and more pairs
    words = ["the", "of", "it", "which", "x", "=", "Foo"]
    lines = []
    for _ in range(n):
        parts = [rng.choice(["", "", " ", "  ", "\t", "B", "Qa"])]
        for _ in range(rng.randint(0, 5)):
            parts.append(rng.choice(before) + rng.choice("ABMZ") + rng.choice(["", "", "b", "x"]))
            parts.append(rng.choice(["", " ", " ", " the "]))
        parts += [" " + rng.choice(words) for _ in range(rng.randint(0, 4))]
        lines.append("".join(parts))
    return lines


def test_camel_pairs_kept_only_after_ascii_lowercase():
    """Pass 1 keeps an uppercase letter for pass 2 only right after an ASCII lowercase one, and pass 2 counts
    each kept one as a CAMEL pair: the line scores (0, 1-2 and 3+ identifier tokens score differently) equal
    the reference's where the byte before an uppercase letter is any kind of character, the line's first, or
    in a Markdown copy; and so do labels and code fractions of documents where a line ending in a lowercase
    letter is followed by one starting with an uppercase letter."""
    lines = _camel_lines(4000, 12)
    counts = [len(rules.CAMEL.findall(line)) for line in lines]
    assert all(counts.count(k) > 150 for k in range(4))  # 0, 1, 2, 3 pairs: the score's steps
    assert sum("a\u00e9" + u in line for line in lines for u in "ABMZ") > 50  # [a-z], non-ASCII, [A-Z]
    stripped = [line.strip() for line in lines if line.strip()]
    assert compiled.line_scores(stripped).tolist() == [ref.line_score(s) for s in stripped]
    rng = random.Random(13)
    docs = ["\n".join(rng.sample(lines, 8)) for _ in range(300)]
    docs += ["a\nB", "abc\nDef gHi\nxY", "\u00e9\nA", "`x`\nA a`b`C"]
    assert [f for i in range(0, len(docs), 64) for f in fast.code_fractions(docs[i : i + 64])] == [
        ref.code_fraction(text) for text in docs
    ]
    for text in docs[:100]:
        lines_of = text.split("\n")
        assert fast.classify_lines(lines_of) == ref.classify_lines(lines_of)


def test_dfa_builder_refuses_what_it_cannot_express():
    """Backreferences, atomic groups, multi-character lookaheads inside a pattern, \\B, flags and non-ASCII literals
    raise instead of matching differently."""
    bits = [scores.char_class(chr(c)) for c in range(128)]
    for pattern in (r"(a)\1", r"a(?=bc)d", r"(?i)abc", "\u00e9x", r"(?>ab)c", r"a\Bb"):
        with pytest.raises(ValueError):
            regex.compile_dfas({"p": (regex.parse(pattern), False)}, bits)


def test_space_bit_is_re_space():
    """The DFAs read ``\\s`` off the class table's SPACE bit (``str.isspace``): the two agree on all of Unicode."""
    text = "".join(map(chr, range(sys.maxunicode + 1)))
    assert re.findall(r"\s", text) == [c for c in text if c.isspace()]


def test_quick_screen_threshold():
    """The compiled quick screen skips a text exactly when ``quick_no_code`` does, at the symbol-share boundary
    (characters counted, not UTF-8 bytes: non-ASCII texts included)."""
    texts = [
        filler * (n - k) + ";" * k
        for filler in ("x", "\u00e9", "\u4e2d")
        for n in (250, 1000, 1001)
        for k in range(8)
    ]
    assert fast.code_fractions(texts) == [ref.code_fraction(t) for t in texts]
    assert {ref.code_fraction(t) for t in texts} == {0.0, 1.0}  # both sides of the boundary occur


def test_class_table_learns_new_characters():
    """Characters first met in a batch get their classes before the kernel reads them, in any later batch too."""
    table = scores.class_table()
    fresh = [c for c in (0x1D400, 0x2F800, 0x10400, 0xE0041) if table[c] == scores.UNKNOWN]
    text = "\n".join(
        f"x{chr(c)}y = {chr(c)}z;  the {chr(c)} of" for c in (0x1D400, 0x2F800, 0x10400, 0xE0041)
    )
    assert fast.code_fractions([text]) == [ref.code_fraction(text)]
    assert all(table[c] == scores.char_class(chr(c)) for c in fresh)


def test_unknown_codepoints_finds_every_new_character():
    """The kernel's search for characters of unknown class (8 bytes skipped at a time where all are ASCII)
    finds exactly the distinct unknown codepoints of the non-ASCII documents: characters of 2, 3 and 4 bytes at
    every offset modulo 8, at the ends of documents, next to ASCII documents; ASCII documents are not read."""
    rng = random.Random(7)
    alphabet = ["a", " ", "\n", "\u00e9", "\u2019", "\u4e2d", "\U0001d400", "\u00a0", "\U00010400"]
    docs = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    docs += ["x" * k + "\u00e9" for k in range(17)] + ["\u2019" + "y" * k for k in range(17)]
    hidden = [ord(c) for c in alphabet if ord(c) >= 128]
    for k, text in enumerate(docs):
        batch = ["z" * (k % 11), text, "\u00e9\u2019" * (k % 2)]  # the document at every byte offset
        a, bounds, chars = compiled._batch(batch)
        table = scores.class_table().copy()
        table[hidden] = scores.UNKNOWN
        found = sorted(compiled.K.unknown_codepoints(a, bounds, chars, table, scores.UNKNOWN).tolist())
        assert found == sorted({ord(c) for t in batch for c in t if ord(c) in hidden}), (k, text)
        assert all(table[c] == scores.UNKNOWN - 1 for c in found)


def test_compiled_quick_screen_equals_quick_no_code():
    """The compiled quick screen (hints found through their key byte pairs) equals ``quick_no_code`` on every
    document, and on texts with each hint at the start, at the end, cut by the text's end, or next to the key
    pair of another hint, batched so that a hint could only be completed across two texts."""
    texts = _corpus()[:600] + EDGE_LINES + _fuzz_lines(500) + [""]
    for h in rules.QUICK_HINTS:
        for filler in ("x" * 300, "\u00e9" * 300, "pour l'import mp lu " * 20):
            texts += [h + filler, filler + h, filler + h[:-1], h[1:] + filler]
            texts.append(filler + h[:-1] + "\u00e9" + h[-1:])
    assert compiled.quick_screen(texts) == [rules.quick_no_code(t) for t in texts]
    assert {rules.quick_no_code(t) for t in texts} == {True, False}


def test_quick_screen_short_texts_and_last_byte():
    """The quick screen's byte loop (round 8: an inner loop on an unsigned index that leaves only for a key
    pair) on every text of 1-3 characters over the hints' and symbols' characters, and on texts whose only
    symbol or hint sits at the last byte or is cut there, and hints split between two neighbours (a key pair
    at a text's start with the hint's head in the text before): a pair read past a text's end, a missed last
    byte or a hint matched from before a text's start changes the answer."""
    alphabet = ["(", ")", "-", ";", "x", "\n", "\t", ":", "$", " ", "\u00e9", "/", ".", "`", "_"]
    texts = [""]
    for n in (1, 2, 3):
        texts += ["".join(t) for t in itertools.product(alphabet, repeat=n)]
    for filler in ("x" * 249, "x" * 250, "\u00e9" * 250):
        texts += [filler + ";", filler + "_", ";" + filler, filler + "()", filler + "(", filler + "--"]
        for h in rules.QUICK_HINTS:  # a hint split between two neighbours, at every cut
            for k in range(1, len(h)):
                texts += [filler + h[:k], h[k:] + filler]
    assert compiled.quick_screen(texts) == [rules.quick_no_code(t) for t in texts]
    assert {rules.quick_no_code(t) for t in texts} == {True, False}


def test_quick_no_code_definition():
    """The one-scan quick screen equals its definition: no hint substring and few code symbols."""
    for text in _corpus()[:400] + EDGE_LINES + _fuzz_lines(500):
        want = not any(h in text for h in rules.QUICK_HINTS) and sum(
            text.count(c) for c in rules.QUICK_SYMBOLS
        ) < 0.004 * len(text)
        assert rules.quick_no_code(text) == want


def test_alphanum_fraction_matches_definition_and_stack_columns():
    """Equal to sum(isalnum)/len on mixed texts, and to The Stack's precomputed column on the embedded sample."""
    pq = pytest.importorskip("pyarrow.parquet")
    edge = [
        "",
        "\u00e9",
        "a\u212ab",
        "\u0661\u0662 abc",
        "\u00bd\u00b2\u216b\u4e2d_\u00e9",
        "\ud800abc",
        "a_b-1",
    ]
    for text in edge + _fuzz_lines(300):
        want = sum(c.isalnum() for c in text) / len(text) if text else 0.0
        assert alphanum_fraction(text) == want, text
    files = sorted((SAMPLE / "stack").rglob("*.parquet"))
    assert files, "the embedded Stack sample is committed but was not found"
    for path in files:
        table = pq.read_table(path, columns=["content", "alphanum_fraction", "max_line_length"])
        for text, frac, longest in zip(*(table.column(i).to_pylist() for i in range(3)), strict=True):
            assert alphanum_fraction(text) == frac
            assert max(map(len, text.splitlines() or [""])) == longest


def test_code_quality_reason_minified_skip():
    """The minified scan is skipped only when no line is long enough; long dense lines are still caught."""
    assert code_quality_reason("x=1;" * 200) == "minified"
    assert code_quality_reason(("x = 1 " * 100 + "\n") * 3) == "avg_line_length"
    assert code_quality_reason("def f(x):\n    return x\n") is None
