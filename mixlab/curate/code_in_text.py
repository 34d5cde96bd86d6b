"""Fast code-in-text detector and the filter step built on it.

Pure core:
- :func:`line_score` scores one line from cheap features: line endings (``;``, ``{``, ``}``, ``->``, ``:-``),
  leading code keywords of ~20 languages (``def``, ``#include``, ``public``, ``SELECT``, ``local``, ``(defun``,
  ``-module(``...), operator tokens (``==``, ``->``, ``&&``...), code identifiers and syntax (snake_case,
  camelCase, calls ``f(``, ``$var``, ``a[``), symbol density; prose evidence pulls the score down: runs of words
  ending with sentence punctuation, English function words that are no language's keyword ("the", "of",
  "which"...), LaTeX commands. Markdown inline code spans count as prose. Score >= :data:`CODE_SCORE` is code.
- :func:`classify_lines` labels every line (``None`` blank, ``True`` code, ``False`` prose): fenced blocks
  (```` ``` ```` / ``~~~``) are code; a line's score is moved towards its neighbours' in the same block
  (:data:`CONTEXT_WEIGHT`); in a document whose lines are mostly code (:data:`DOC_PRIOR`) every line that is not
  clearly prose is code; comments and docstrings follow their context.
- :func:`code_fraction` = characters on code lines / characters on non-blank lines, in [0, 1]; texts with
  almost no code symbols return 0.0 without the per-line pass.
- :func:`strip_code` removes fenced blocks and runs of >= ``min_lines`` code lines.

Also code (rules of the held-out round): JSON keys, INI/TOML sections, YAML keys with an empty or one-word value,
one-line SQL and shell commands, C/C++ declarations, entries of hash literals ending with ``,``; prose: lines of
plain words with sentence punctuation (verse ending with ``;``), Markdown links; heading underlines and table rows
follow their context. Held-out packages (``benchmarks/data/code_in_text_heldout.jsonl.zst``, split ``test``):
F1 0.994 at the 0.10 cut, 0.6% of prose flagged (``benchmarks/RESULTS.md``); numbers below are older.

Two implementations of one set of rules: :func:`line_score` / :func:`classify_lines_python` /
:func:`code_fraction_python` are the Python scorer (word features through ``map``/``filter``, ``bytes.translate``
counts, a per-document cache), specified by :mod:`mixlab.curate._code_in_text_reference`; :func:`classify_lines`,
:func:`code_fraction`, :func:`code_fractions` (a batch), :func:`strip_code` and the filter run the compiled path
of :mod:`mixlab.curate._code_in_text_compiled` (one numba kernel per batch over the UTF-8 bytes, the rules'
regexes as DFAs built from their parse trees: :mod:`mixlab.curate._code_in_text_kernel`).
Both give the reference's labels, fractions and strip output exactly (tests/test_code_in_text_fast.py). The
tables and the block logic exist once, in :mod:`mixlab.curate._code_in_text_rules`.

Measured (``benchmarks/bench_code_in_text.py``, labeled set, held-out half, 505 real documents): drop decisions at
threshold 0.5 precision 0.950 / recall 0.914; code lines of prose-with-code documents precision 0.865 / recall
0.899. Speed per core (``benchmarks/results/detector_speed.md``): the Python scorer 8.9-10.3 MB/s, the compiled
path in batches of 64 85.9 MB/s on the labeled set and 109.7 MB/s on the SlimPajama sample x8 (0.34x of the bare
zstd + orjson reading loop there; 31.9 MB/s and 0.12x before the DFA / UTF-8 kernel).

Step: :class:`CodeInTextFilter` (mode ``drop`` | ``strip``) drops documents whose code fraction exceeds the
threshold (reason ``code_in_text``); in ``strip`` mode it also removes code blocks from the documents it keeps
(stat ``code_blocks_stripped``; a document left empty is dropped as ``empty_after_strip``). It scores documents in
batches of ``batch_size`` (datatrove's ``filter_batch``; the decisions are those of one document at a time).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from itertools import repeat

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from mixlab.curate._code_in_text_compiled import code_chars, labels_of
from mixlab.curate._code_in_text_rules import (
    AMBIGUOUS,
    BLOCK_COLON,
    CALL,
    CAMEL,
    CLOSE,
    CODE_SCORE,
    COMPARE,
    CONTEXT_WEIGHT,
    DELETE_SYMBOLS,
    DOC_PRIOR,
    DOLLAR,
    INDEX,
    INLINE_CODE,
    KEY_VALUE,
    KEYWORD_START,
    LATEX,
    MAX_TOKENS,
    MD_LINK,
    OPERATORS,
    PUNCT,
    SENTENCE,
    SNAKE,
    STOPWORDS,
    SYMBOLS,
    code_blocks,
    label_lines,
    strip_blocks,
)
from mixlab.curate._code_in_text_rules import code_fraction as _code_fraction

__all__ = [
    "AMBIGUOUS", "CODE_SCORE", "CONTEXT_WEIGHT", "DOC_PRIOR", "CodeInTextFilter", "classify_lines", "code_blocks",
    "code_fraction", "code_fractions", "line_score", "strip_code",
]  # fmt: skip

# Word features (prose evidence) with C-level iteration (``map``/``filter`` over the first tokens) instead of a
# Python loop, same values as the loop of the reference: ``alpha`` = tokens whose ``strip(PUNCT)`` is alphabetic,
# ``words`` = those with ``w[1:].islower()`` (never true for one letter: ``"".islower()`` is False), ``stop`` = those
# whose lowercase form is a function word. A word ``w`` with ``w.lower()`` in ``STOPWORDS`` (all ASCII lowercase)
# is the function word itself or its capitalized form: the only non-ASCII character that lowercases to an ASCII one
# is KELVIN SIGN -> "k", and no function word starts with "k" (both checked in tests/test_code_in_text_fast.py).
_STOP_FORMS = frozenset(STOPWORDS | {w.capitalize() for w in STOPWORDS})
_TAIL = operator.itemgetter(slice(1, None))
_SYMBOL_BYTES = SYMBOLS.encode("ascii")
_CASE_CLASSES = bytes(  # ASCII lowercase -> "a", uppercase -> "A", every other byte -> " "
    ord("a") if chr(c).islower() and c < 128 else ord("A") if chr(c).isupper() and c < 128 else 32
    for c in range(256)
)
_END_2 = ("){", ");", "};", "*/", "->", "=>", ":-", ":=")
_END_1 = (" do", " then", " =", "&&", "||")


def line_score(line: str) -> int:
    """Code evidence of one non-blank line (higher: more code-like); see the module docstring.

    The rules are those of :func:`mixlab.curate._code_in_text_reference.line_score` (the readable
    specification); this implementation returns the same integer for every line (tested).
    """
    return _score(line.strip())


def _score(s: str) -> int:
    """:func:`line_score` of an already stripped, non-empty line."""
    if "`" in s:  # Markdown inline code spans are prose's quotations of code
        s = INLINE_CODE.sub("x", s) or "x"
    if "](" in s:  # Markdown links [text](url) are prose markup
        s = MD_LINK.sub("x", s) or "x"
    n = len(s)
    last = s[-1]
    if last in ";{}" or s.endswith(_END_2) or (last == ":" and BLOCK_COLON.match(s)):
        score = 2
    elif last in "([\\" or s.endswith(_END_1):
        score = 1
    elif last == "," and KEY_VALUE.match(s):
        score = 2
    else:
        score = 0
    if KEYWORD_START.match(s):
        score += 2
    if OPERATORS.search(s):
        score += 1
    if s.isascii():  # bytes.translate: ~10x faster than str.translate and than a findall of [a-z][A-Z]
        raw = s.encode()
        density = (n - len(raw.translate(None, _SYMBOL_BYTES))) / n
        tokens = raw.translate(_CASE_CLASSES).count(b"aA")  # camelCase: "aA" never overlaps itself
    else:
        density = (n - len(s.translate(DELETE_SYMBOLS))) / n
        tokens = len(CAMEL.findall(s))
    if "_" in s:
        tokens += len(SNAKE.findall(s))
    if "(" in s:
        tokens += len(CALL.findall(s)) + len(CLOSE.findall(s))
    if "$" in s:
        tokens += len(DOLLAR.findall(s))
    if "[" in s:
        tokens += len(INDEX.findall(s))
    if "=" in s:
        tokens += len(COMPARE.findall(s))
    if tokens:
        score += 1 if tokens < 3 else 2
    # prose evidence from the first MAX_TOKENS tokens (a prefix decides; long paragraphs cost no more): only
    # what can change the score is counted: "words" only matter with >= 6 tokens and density < 0.12,
    # "alpha" only when there are >= 2 function words, nothing with fewer than 2 tokens
    words = alpha = stop = 0
    parts = s.split(None, MAX_TOKENS)
    if len(parts) >= 2:
        if len(parts) > MAX_TOKENS:
            del parts[MAX_TOKENS]
        ws = list(map(str.strip, parts, repeat(PUNCT)))
        stop = sum(map(_STOP_FORMS.__contains__, ws))
        if len(ws) >= 6 and density < 0.12:
            words = sum(map(str.islower, map(_TAIL, filter(str.isalpha, ws))))
        if stop >= 2:
            alpha = sum(map(str.isalpha, ws))
    if density > 0.4:
        score += 2
    elif density > 0.2:
        score += 1
    if words >= 6 and density < 0.12:
        score -= 2 if last in ".?!\"')" else 1
    if words >= 12 and density < 0.08:
        score -= 2
    if stop >= 2 and stop * 5 >= alpha:
        score -= 2 if stop >= 4 else 1
    if SENTENCE.match(s):
        score -= 2
    if "\\" in s and LATEX.search(s) and not s.endswith(";"):
        score -= 3
    return score


class _ScoreCache(dict):
    """Line scores of one document's distinct stripped lines, computed on first lookup (a C-level dict hit after)."""

    def __missing__(self, stripped: str) -> int:
        score = self[stripped] = _score(stripped)
        return score


def classify_lines_python(lines: list[str]) -> list[bool | None]:
    """:func:`classify_lines` in Python: ``label_lines`` over :func:`line_score`, each distinct line scored once."""
    return label_lines(lines, _ScoreCache().__getitem__)


def classify_lines(lines: list[str]) -> list[bool | None]:
    """Label each line: None (blank), True (code), False (prose).

    The block logic of :func:`mixlab.curate._code_in_text_rules.label_lines` over :func:`line_score`, computed
    by :mod:`mixlab.curate._code_in_text_compiled` (lines holding a newline take the Python path).
    """
    if any("\n" in line for line in lines):
        return classify_lines_python(lines)
    return [None if v < 0 else v == 1 for v in labels_of("\n".join(lines)).tolist()]


def code_fractions(texts: Sequence[str]) -> list[float]:
    """:func:`code_fraction` of each text, the whole batch in one compiled pass (quick screen included)."""
    code, total = code_chars(texts)
    return [c / t if t else 0.0 for c, t in zip(code, total, strict=True)]


def code_fraction(text: str) -> float:
    """Share of non-blank characters that sit on code lines (0.0 for prose, ~1.0 for source code)."""
    return code_fractions([text])[0]


def code_fraction_python(text: str) -> float:
    """:func:`code_fraction` through :func:`classify_lines_python` (no compiled code)."""
    return _code_fraction(text, classify_lines_python)


def strip_code(text: str, min_lines: int = 3) -> tuple[str, int]:
    """``text`` without its code blocks (see :func:`code_blocks`), and how many blocks were removed."""
    return strip_blocks(text, classify_lines, min_lines)


class CodeInTextFilter(BaseFilter):
    """Drop documents that are mostly code; in ``strip`` mode also strip code blocks from the prose kept."""

    name = "🧹 code-in-text"

    def __init__(
        self, threshold: float = 0.5, mode: str = "drop", strip_min_lines: int = 3, batch_size: int = 64
    ):
        super().__init__(batch_size=batch_size)
        if mode not in ("drop", "strip"):
            raise ValueError(f"mode must be 'drop' or 'strip', got {mode!r}")
        self.threshold = threshold
        self.mode = mode
        self.strip_min_lines = strip_min_lines

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self._decide(doc, code_fraction(doc.text))

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        """:meth:`filter` of each document, their code fractions computed in one batch (the same decisions)."""
        return list(map(self._decide, batch, code_fractions([doc.text for doc in batch])))

    def _decide(self, doc: Document, frac: float) -> bool | tuple[bool, str]:
        doc.metadata["code_fraction"] = round(frac, 4)
        if frac > self.threshold:
            return False, "code_in_text"
        if self.mode == "strip" and frac > 0:
            text, removed = strip_code(doc.text, self.strip_min_lines)
            if removed:
                self.stat_update("code_blocks_stripped", value=removed)
                self.stat_update("docs_stripped")
                if not text.strip():
                    return False, "empty_after_strip"
                doc.text = text
        return True
