"""Compiled code-in-text detector: line scores and labels of whole batches of documents in a few passes.

Contract: :func:`label_batch` returns, for each text, the labels of ``text.split("\\n")`` (int8: -1 blank,
0 prose, 1 code) and the characters on code lines and on non-blank lines, exactly as
:func:`mixlab.curate._code_in_text_rules.label_lines` / ``fraction_on_code`` over the reference
:func:`~mixlab.curate._code_in_text_reference.line_score`; :func:`line_scores` gives the line scores
(``tests/test_code_in_text_fast.py`` compares both with the reference on the labeled sets, the embedded sample
and fuzzed lines, Unicode included).

How: the documents' stripped lines are joined into one text and read as codepoints (uint8 when ASCII, else
uint32). Lines with a backtick or ``](`` get the rules' Markdown substitutions; the regex rules give one flag
per line (:mod:`mixlab.curate._code_in_text_regex`, ``KEYWORD_START`` behind a compiled screen, ``KEY_VALUE``
only on lines ending with ``,``, ``LATEX`` only on lines with a backslash, ``COMMENT`` only on lines starting
with one of its first characters); everything else of the score is one numba loop
(:mod:`mixlab.curate._code_in_text_scores`); the block logic of ``label_lines`` (fences, comments, docstrings,
neighbour context, document prior) is :func:`_labels`, per document. Compiled once per machine (``cache=True``).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
from numba import njit

from mixlab.curate import _code_in_text_rules as R
from mixlab.curate._code_in_text_regex import (
    _COMMENT_FIRST,
    _KEYWORD_SCREEN,
    COMMENT,
    KEY_VALUE,
    KEYWORD_START,
    LATEX,
    _screen,
    candidate_flags,
    first_in,
)
from mixlab.curate._code_in_text_scores import (
    _BLOCK,
    _BLOCK_LEN,
    _END2,
    _HOT,
    _HOT_NEXT,
    _OPS2,
    _STOP_KEYS,
    classes,
    score_lines,
)

_NL = 10
_INDENTED = operator.methodcaller("startswith", ("  ", "\t"))


@njit(cache=True, nogil=True)
def _count3(a, st, en, q):  # pragma: no cover - compiled
    """Non-overlapping occurrences of ``q q q`` in ``a[st:en]`` (``str.count('\"\"\"')``)."""
    count = 0
    i = st
    while i + 2 < en:
        if a[i] == q and a[i + 1] == q and a[i + 2] == q:
            count += 1
            i += 3
        else:
            i += 1
    return count


@njit(cache=True, nogil=True)
def _has_close(a, st, en):  # pragma: no cover - compiled
    for i in range(st, en - 1):  # noqa: SIM110 - a plain loop for numba
        if a[i] == 42 and a[i + 1] == 47:
            return True
    return False


@njit(cache=True, nogil=True)
def _labels(a, starts, ends, comment, indented, scores, doc_starts, code_score, weight, prior, ambiguous):  # noqa: E501  # pragma: no cover - compiled
    """``label_lines`` of every document (lines ``doc_starts[d]:doc_starts[d+1]``); (labels, code chars, chars)."""
    n_lines = starts.shape[0]
    labels = np.full(n_lines, -1, dtype=np.int8)
    eff = np.zeros(n_lines, dtype=np.int64)  # a scored line's score (+1 for an indented block line)
    n_docs = doc_starts.shape[0] - 1
    code_chars = np.zeros(n_docs, dtype=np.int64)
    all_chars = np.zeros(n_docs, dtype=np.int64)
    scored = np.empty(n_lines, dtype=np.int64)
    block = np.empty(n_lines, dtype=np.int64)
    neutral = np.empty(n_lines, dtype=np.int64)
    for d in range(n_docs):
        m = 0
        n_neutral = 0
        in_fence = in_doc = in_block = False
        prev_blank = True
        prev_code = False
        n_blocks = 0
        for li in range(doc_starts[d], doc_starts[d + 1]):
            st, en = starts[li], ends[li]
            if en == st:
                if not prev_blank:
                    n_blocks += 1
                prev_blank = True
                continue
            fence = en - st >= 3 and (
                (a[st] == 96 and a[st + 1] == 96 and a[st + 2] == 96)
                or (a[st] == 126 and a[st + 1] == 126 and a[st + 2] == 126)
            )
            if in_fence or fence:
                if fence:
                    in_fence = not in_fence
                labels[li] = 1
                prev_blank = False
                prev_code = True
                continue
            quotes = _count3(a, st, en, 34) + _count3(a, st, en, 39)
            opens = en - st >= 2 and a[st] == 47 and a[st + 1] == 42 and not _has_close(a, st + 2, en)
            if in_doc or in_block or quotes > 0 or comment[li]:
                in_doc = in_doc != (quotes % 2 == 1)
                in_block = (in_block or opens) and not _has_close(a, st + 2 if opens else st, en)
                neutral[n_neutral] = li
                n_neutral += 1
                labels[li] = 0
                prev_blank = False
                continue
            score = scores[li]
            if indented[li] and (prev_blank or prev_code):
                score += 1
            eff[li] = score
            scored[m] = li
            block[m] = n_blocks
            m += 1
            labels[li] = 1 if score >= code_score else 0
            prev_blank = False
            prev_code = score >= code_score
        # context: the nearest scored neighbours in the same block
        new = np.empty(m, dtype=np.int8)
        for k in range(m):
            b = block[k]
            before = k > 0 and block[k - 1] == b
            after = k + 1 < m and block[k + 1] == b
            if before and after:
                ctx = (min(3, max(-3, eff[scored[k - 1]])) + min(3, max(-3, eff[scored[k + 1]]))) / 2
            elif before:
                ctx = float(min(3, max(-3, eff[scored[k - 1]])))
            elif after:
                ctx = float(min(3, max(-3, eff[scored[k + 1]])))
            else:
                ctx = 0.0
            new[k] = 1 if eff[scored[k]] + weight * ctx >= code_score else 0
        for k in range(m):
            labels[scored[k]] = new[k]
        for k in range(1, m - 1):
            i = scored[k]
            if labels[i] == 0 and eff[i] >= 0 and labels[scored[k - 1]] == 1 and labels[scored[k + 1]] == 1:
                labels[i] = 1
        if m:
            n_code = 0
            for k in range(m):
                n_code += labels[scored[k]] == 1
            if n_code >= prior * m:
                for k in range(m):
                    if eff[scored[k]] >= ambiguous:
                        labels[scored[k]] = 1
        if n_neutral and m:
            pos = 0
            for t in range(n_neutral):
                i = neutral[t]
                while pos < m and scored[pos] < i:
                    pos += 1
                before_ok = pos == 0 or labels[scored[pos - 1]] != 0
                after_ok = pos == m or labels[scored[pos]] != 0
                labels[i] = 1 if (before_ok and after_ok) else 0
        for li in range(doc_starts[d], doc_starts[d + 1]):
            if labels[li] >= 0:
                all_chars[d] += ends[li] - starts[li]
                if labels[li] == 1:
                    code_chars[d] += ends[li] - starts[li]
    return labels, code_chars, all_chars


def _codepoints(text: str) -> np.ndarray:
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _bounds(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nl = np.flatnonzero(a == _NL)
    starts = np.concatenate(([0], nl + 1)).astype(np.int64)
    ends = np.concatenate((nl, [a.shape[0]])).astype(np.int64)
    return starts, ends


def label_batch(
    texts: Sequence[str],
) -> tuple[list[list[str]], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels of every line of every text: (lines per text, labels int8, line offsets per text, code chars,
    chars)."""
    docs = [t.split("\n") for t in texts]
    lines = [line for doc in docs for line in doc]
    doc_starts = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum([len(doc) for doc in docs], out=doc_starts[1:])
    stripped = list(map(str.strip, lines))
    joined = "\n".join(stripped)
    a0 = _codepoints(joined)
    starts0, ends0 = _bounds(a0)
    scores = _line_scores(stripped, joined, a0, starts0, ends0)
    comment = candidate_flags(
        COMMENT, stripped, first_in(a0, starts0, ends0, _COMMENT_FIRST), len(stripped), True
    )
    indented = np.fromiter(map(_INDENTED, lines), dtype=np.bool_, count=len(lines))
    labels, code, total = _labels(
        a0, starts0, ends0, comment, indented, scores, doc_starts, R.CODE_SCORE, R.CONTEXT_WEIGHT, R.DOC_PRIOR,
        R.AMBIGUOUS,
    )  # fmt: skip
    return docs, labels, doc_starts, code, total


def line_scores(stripped: list[str]) -> np.ndarray:
    """The line score of each stripped line (any value for blank ones); lines must not hold ``\\n``."""
    joined = "\n".join(stripped)
    a0 = _codepoints(joined)
    starts0, ends0 = _bounds(a0)
    return _line_scores(stripped, joined, a0, starts0, ends0)


def _line_scores(
    stripped: list[str],
    joined: str,
    a0: np.ndarray,
    starts0: np.ndarray,
    ends0: np.ndarray,
) -> np.ndarray:
    # Markdown inline code and links are replaced line by line with the rules' own patterns, on the lines
    # holding a backtick or "](" only
    marked = np.flatnonzero(a0 == 96)
    if a0.shape[0] > 1:
        marked = np.concatenate((marked, np.flatnonzero((a0[:-1] == 93) & (a0[1:] == 40))))
    scored, scored_lines = joined, stripped
    if marked.shape[0]:
        scored_lines = list(stripped)
        for i in np.unique(np.searchsorted(starts0, marked, "right") - 1).tolist():
            s = scored_lines[i]
            if "`" in s:
                s = R.INLINE_CODE.sub("x", s) or "x"
            if "](" in s:
                s = R.MD_LINK.sub("x", s) or "x"
            scored_lines[i] = s
        scored = "\n".join(scored_lines)
    if scored is joined:
        a, starts, ends = a0, starts0, ends0
    else:
        a = _codepoints(scored)
        starts, ends = _bounds(a)
    n = starts.shape[0]
    kw = candidate_flags(
        KEYWORD_START, scored_lines, np.flatnonzero(_screen(a, starts, ends, *_KEYWORD_SCREEN)), n, True
    )
    nonempty = ends > starts
    # KEY_VALUE ends with ",$", LATEX needs a backslash: only those lines go through the regex
    kv_lines = np.flatnonzero(nonempty & (a[np.maximum(ends - 1, 0)] == 44)) if a.shape[0] else ends[:0]
    latex_lines = np.unique(np.searchsorted(starts, np.flatnonzero(a == 92), "right") - 1)
    if kv_lines.shape[0] or latex_lines.shape[0]:
        kv = candidate_flags(KEY_VALUE, scored_lines, kv_lines, n, True)
        latex = candidate_flags(LATEX, scored_lines, latex_lines, n, False)
    else:
        kv = latex = np.zeros(n, dtype=np.bool_)
    cls = classes(a)
    scores = score_lines(
        a, cls, starts, ends, kw, kv, latex, _HOT, _HOT_NEXT, _STOP_KEYS, _BLOCK, _BLOCK_LEN, _END2, _OPS2
    )
    return scores
