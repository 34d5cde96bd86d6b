"""Compiled code-in-text detector: line scores and labels of whole batches of documents in a few passes.

Contract: :func:`label_batch` returns, for each text, the labels of ``text.split("\\n")`` (int8: -1 blank,
0 prose, 1 code) and :func:`fractions` the code fraction, exactly as :func:`mixlab.curate._code_in_text_rules.
label_lines` / :func:`~mixlab.curate._code_in_text_rules.fraction_on_code` over the reference
:func:`~mixlab.curate._code_in_text_reference.line_score` (``tests/test_code_in_text_fast.py`` and
``tests/test_code_in_text_compiled.py`` compare them on the labeled sets, the embedded sample and fuzzed lines).

How: the documents' stripped lines are joined into one text (``\\n`` between lines and between documents) and
read as codepoints. Regular expressions run once over the whole text, never per line: each pattern of the rules
module is rewritten by :func:`line_safe` so that no match crosses a newline (``\\s`` -> ``[^\\S\\n]``, negated
classes exclude ``\\n``) and, for the rules applied with ``match``, prefixed with ``\\n`` (a literal prefix lets
``re`` jump from line start to line start); on a single line the rewritten pattern matches exactly where the
original does. What ``KEYWORD_START``, ``KEY_VALUE``, ``LATEX`` and ``COMMENT`` decide thus comes as one flag per
line. Everything else of the line score (endings, ``BLOCK_COLON``, ``OPERATORS``, the identifier counts,
symbol density, word features, ``SENTENCE``) is computed by :func:`_scores` in one numba loop with ASCII
character classes, which equal ``re``'s and ``str``'s on ASCII; lines with a non-ASCII character keep the
Python scorer (:func:`mixlab.curate.code_in_text._score`, 2% of the lines of the SlimPajama sample). The block
logic of ``label_lines`` (fences, comments, docstrings, neighbour context, document prior) runs in
:func:`_labels`. Kernels are compiled once per machine (``cache=True``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence

import numpy as np
from numba import njit

from mixlab.curate import _code_in_text_rules as R

_NL = 10


def line_safe(pattern: str, at_line_start: bool) -> re.Pattern[str]:
    """``pattern`` rewritten so that no match crosses ``\\n``; ``at_line_start``: ``\\n(?:pattern)`` (``re.M``).

    On a text without ``\\n`` the rewrite matches exactly what ``pattern`` matches: ``\\s`` becomes
    ``[^\\S\\n]``, ``\\W`` becomes ``[^\\w\\n]`` and every negated class also excludes ``\\n`` (``.`` never
    matched it); a positive class holding ``\\s``, ``\\W`` or ``\\D`` is refused. With ``re.M``, ``^`` and ``$``
    match at line starts and ends as they match at the ends of a one-line text.
    """
    out: list[str] = []
    i, n, in_class, negated = 0, len(pattern), False, False
    while i < n:
        c = pattern[i]
        if c == "\\":
            esc = pattern[i : i + 2]
            if in_class:
                if esc in ("\\s", "\\W", "\\D") and not negated:
                    raise ValueError(f"{pattern!r}: a positive class with {esc} would match newlines")
                out.append(esc)
            else:
                out.append({"\\s": "[^\\S\\n]", "\\W": "[^\\w\\n]", "\\D": "[^\\d\\n]"}.get(esc, esc))
            i += 2
            continue
        if not in_class and c == "[":
            in_class = True
            negated = pattern[i + 1] == "^"
            out.append("[^\\n" if negated else "[")
            i += 2 if negated else 1
            if pattern[i] == "]":  # a literal "]" first in a class
                out.append("]")
                i += 1
            continue
        if in_class and c == "]":
            in_class = False
        out.append(c)
        i += 1
    body = "".join(out)
    return re.compile("\n(?:" + body + ")" if at_line_start else body, re.M)


KEYWORD_START = line_safe(R.KEYWORD_START.pattern, True)
KEY_VALUE = line_safe(R.KEY_VALUE.pattern, True)
COMMENT = line_safe(R.COMMENT.pattern, True)
LATEX = line_safe(R.LATEX.pattern, False)
INLINE_CODE = line_safe(R.INLINE_CODE.pattern, False)
MD_LINK = line_safe(R.MD_LINK.pattern, False)

_START = operator.methodcaller("start")
_INDENTED = operator.methodcaller("startswith", ("  ", "\t"))


def _ascii_table(chars: str) -> np.ndarray:
    table = np.zeros(128, dtype=np.bool_)
    table[[ord(c) for c in chars]] = True
    return table


_SPACE = _ascii_table("".join(chr(c) for c in range(128) if chr(c).isspace()))
_WORDCH = _ascii_table("".join(chr(c) for c in range(128) if re.match(r"\w", chr(c))))
_SYMBOL = _ascii_table(R.SYMBOLS)
_PUNCT = _ascii_table(R.PUNCT)


def _pack(word: str) -> int:
    key = 0
    for c in word:
        key = key * 32 + ord(c) - 96
    return key


if not all(w.isascii() and w.isalpha() and w.islower() and len(w) <= 12 for w in R.STOPWORDS):
    raise ValueError("the compiled detector packs function words as <= 12 ASCII lowercase letters")
_STOP_KEYS = np.array(sorted(_pack(w) for w in R.STOPWORDS), dtype=np.int64)
if R.BLOCK_COLON.pattern != r"(?:def|class|if|for|while|elif|else|try|except|with|async def)\b":
    raise ValueError("BLOCK_COLON changed: update _BLOCK_WORDS of the compiled detector")
_BLOCK_WORDS = ("def", "class", "if", "for", "while", "elif", "else", "try", "except", "with", "async def")
_BLOCK = np.zeros((len(_BLOCK_WORDS), 10), dtype=np.int64)
_BLOCK_LEN = np.array([len(w) for w in _BLOCK_WORDS], dtype=np.int64)
for _k, _w in enumerate(_BLOCK_WORDS):
    _BLOCK[_k, : len(_w)] = [ord(c) for c in _w]
_END2 = np.array([[ord(c) for c in e] for e in ("){", ");", "};", "*/", "->", "=>", ":-", ":=")], dtype=np.int64)
_OPS2 = np.array(
    [[ord(c) for c in e] for e in ("==", "!=", "->", "=>", "::", "&&", "||", "+=", "-=", "++", "</", "/>", "()")],
    dtype=np.int64,
)


@njit(cache=True, nogil=True)
def _cls(table, c):  # pragma: no cover - compiled
    return c < 128 and table[c]


@njit(cache=True, nogil=True)
def _ends(a, st, en, text):  # pragma: no cover - compiled
    m = len(text)
    if en - st < m:
        return False
    for k in range(m):
        if a[en - m + k] != ord(text[k]):
            return False
    return True


@njit(cache=True, nogil=True)
def _is_sentence(a, st, en):  # pragma: no cover - compiled
    """SENTENCE.match: space-separated tokens [A-Z]X*P*, then >= 2 of X+P* (X = [A-Za-z'-], P = [,.;:!?"'])."""
    tokens = 0
    i = st
    while i < en:
        c = a[i]
        if c == 32:
            if tokens == 0:
                return False
            while i < en and a[i] == 32:
                i += 1
            if i == en:
                return False
            continue
        first = True
        after_p = False  # a P-only character was seen in this token: no letter or "-" may follow
        while i < en and a[i] != 32:
            c = a[i]
            letter = (65 <= c <= 90) or (97 <= c <= 122)
            if first:
                if tokens == 0:
                    if not 65 <= c <= 90:
                        return False
                elif not (letter or c == 39 or c == 45):
                    return False
                first = False
            elif letter or c == 45:
                if after_p:
                    return False
            elif c == 39:
                pass
            elif c == 44 or c == 46 or c == 59 or c == 58 or c == 33 or c == 63 or c == 34:
                after_p = True
            else:
                return False
            i += 1
        tokens += 1
    return tokens >= 3


@njit(cache=True, nogil=True)
def _scores(a, starts, ends, kw, kv, latex, space, wordch, symbol, punct, stop_keys, block, block_len, end2, ops2):  # noqa: E501  # pragma: no cover - compiled
    """The reference ``line_score`` of every ASCII, non-empty line ``a[starts[i]:ends[i]]`` (regex flags given)."""
    out = np.zeros(starts.shape[0], dtype=np.int64)
    for li in range(starts.shape[0]):
        st, en = starts[li], ends[li]
        n = en - st
        if n == 0:
            continue
        last = a[en - 1]
        # endings
        e = 0
        if last == 59 or last == 123 or last == 125:
            e = 2
        else:
            for k in range(end2.shape[0]):
                if n >= 2 and a[en - 2] == end2[k, 0] and a[en - 1] == end2[k, 1]:
                    e = 2
                    break
            if e == 0 and last == 58:
                for k in range(block.shape[0]):
                    m = block_len[k]
                    if n >= m:
                        ok = True
                        for j in range(m):
                            if a[st + j] != block[k, j]:
                                ok = False
                                break
                        if ok and (n == m or not _cls(wordch, a[st + m])):
                            e = 2
                            break
        if e == 0:
            if last == 40 or last == 91 or last == 92:
                e = 1
            elif _ends(a, st, en, " do") or _ends(a, st, en, " then") or _ends(a, st, en, " ="):
                e = 1
            elif _ends(a, st, en, "&&") or _ends(a, st, en, "||"):
                e = 1
            elif last == 44 and kv[li]:
                e = 2
        score = e
        if kw[li]:
            score += 2
        # OPERATORS.search, identifier counts, symbol density
        ops = False
        tokens = 0
        closes = 0  # CLOSE counts only on a line holding "(" (the rules search it under that condition)
        paren = False
        symbols = 0
        i = st
        skip_camel = skip_snake = skip_call = skip_close = skip_dollar = skip_index = skip_compare = st
        while i < en:
            c = a[i]
            if _cls(symbol, c):
                symbols += 1
            nx = a[i + 1] if i + 1 < en else 0
            if not ops:
                for k in range(ops2.shape[0]):
                    if c == ops2[k, 0] and nx == ops2[k, 1]:
                        ops = True
                        break
                if c == 41:  # \)\s*\{
                    j = i + 1
                    while j < en and _cls(space, a[j]):
                        j += 1
                    if j < en and a[j] == 123:
                        ops = True
                elif c == 91:  # \[\d*\]
                    j = i + 1
                    while j < en and 48 <= a[j] <= 57:
                        j += 1
                    if j < en and a[j] == 93:
                        ops = True
                elif c == 46:  # \.\w+\(
                    j = i + 1
                    while j < en and _cls(wordch, a[j]):
                        j += 1
                    if j > i + 1 and j < en and a[j] == 40:
                        ops = True
            # findall counts: each pattern scans on from the end of its previous match
            if i >= skip_camel and 97 <= c <= 122 and 65 <= nx <= 90:
                tokens += 1
                skip_camel = i + 2
            if i >= skip_snake and ((65 <= c <= 90) or (97 <= c <= 122)) and nx == 95:
                if i + 2 < en and _cls(wordch, a[i + 2]):
                    tokens += 1
                    skip_snake = i + 3
            if i >= skip_call and _cls(wordch, c) and nx == 40:
                tokens += 1
                skip_call = i + 2
            if c == 40:
                paren = True
            if i >= skip_close and c == 41:
                j = i + 1
                while j < en and _cls(space, a[j]):
                    j += 1
                if j < en and (a[j] == 59 or a[j] == 44 or a[j] == 123 or a[j] == 58):
                    closes += 1
                    skip_close = j + 1
            if i >= skip_dollar and c == 36 and _cls(wordch, nx):
                tokens += 1
                skip_dollar = i + 2
            if i >= skip_index and _cls(wordch, c) and nx == 91:
                tokens += 1
                skip_index = i + 2
            if i >= skip_compare and (c == 61 or c == 60 or c == 62 or c == 33) and nx == 61:
                tokens += 1
                skip_compare = i + 2
            i += 1
        if paren:
            tokens += closes
        if ops:
            score += 1
        if tokens:
            score += 1 if tokens < 3 else 2
        density = symbols / n
        # word features of the first MAX_TOKENS whitespace-separated tokens
        words = alpha = stop = 0
        ntok = 0
        i = st
        while i < en and ntok < 32:
            while i < en and _cls(space, a[i]):
                i += 1
            if i == en:
                break
            t0 = i
            while i < en and not _cls(space, a[i]):
                i += 1
            t1 = i
            ntok += 1
            while t0 < t1 and _cls(punct, a[t0]):
                t0 += 1
            while t1 > t0 and _cls(punct, a[t1 - 1]):
                t1 -= 1
            if t1 == t0:
                continue
            is_alpha = True
            rest_lower = True
            for j in range(t0, t1):
                d = a[j]
                low = 97 <= d <= 122
                if not (low or 65 <= d <= 90):
                    is_alpha = False
                    break
                if j > t0 and not low:
                    rest_lower = False
            if not is_alpha:
                continue
            alpha += 1
            if t1 - t0 > 1 and rest_lower:
                words += 1
                if t1 - t0 <= 12:
                    key = 0
                    for j in range(t0, t1):
                        d = a[j]
                        key = key * 32 + ((d + 32 if d <= 90 else d) - 96)
                    p = np.searchsorted(stop_keys, key)
                    if p < stop_keys.shape[0] and stop_keys[p] == key:
                        stop += 1
        if density > 0.4:
            score += 2
        elif density > 0.2:
            score += 1
        if words >= 6 and density < 0.12:
            score -= 2 if (last == 46 or last == 63 or last == 33 or last == 34 or last == 39 or last == 41) else 1
        if words >= 12 and density < 0.08:
            score -= 2
        if stop >= 2 and stop * 5 >= alpha:
            score -= 2 if stop >= 4 else 1
        if _is_sentence(a, st, en):
            score -= 2
        if latex[li] and last != 59:
            score -= 3
        out[li] = score
    return out


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
    for i in range(st, en - 1):
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


def _flags(pattern: re.Pattern[str], text: str, starts: np.ndarray, at_line_start: bool) -> np.ndarray:
    """One flag per line: ``pattern`` (from :func:`line_safe`) matches on it (at its start)."""
    flags = np.zeros(starts.shape[0], dtype=np.bool_)
    if at_line_start:
        pos = np.fromiter(map(_START, pattern.finditer("\n" + text)), dtype=np.int64)
        flags[np.searchsorted(starts, pos)] = True
    else:
        pos = np.fromiter(map(_START, pattern.finditer(text)), dtype=np.int64)
        flags[np.searchsorted(starts, pos, "right") - 1] = True
    return flags


def label_batch(
    texts: Sequence[str], python_score: Callable[[str], int]
) -> tuple[list[list[str]], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels of every line of every text: (lines per text, labels int8, line offsets per text, code chars,
    chars); ``python_score(stripped)`` scores the lines with a non-ASCII character (the fast Python scorer)."""
    docs = [t.split("\n") for t in texts]
    lines = [line for doc in docs for line in doc]
    doc_starts = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum([len(doc) for doc in docs], out=doc_starts[1:])
    stripped = list(map(str.strip, lines))
    joined = "\n".join(stripped)
    a0 = _codepoints(joined)
    starts0, ends0 = _bounds(a0)
    scores = _line_scores(stripped, joined, a0, starts0, ends0, python_score)
    comment = _flags(COMMENT, joined, starts0, True)
    indented = np.fromiter(map(_INDENTED, lines), dtype=np.bool_, count=len(lines))
    labels, code, total = _labels(
        a0, starts0, ends0, comment, indented, scores, doc_starts, R.CODE_SCORE, R.CONTEXT_WEIGHT, R.DOC_PRIOR,
        R.AMBIGUOUS,
    )  # fmt: skip
    return docs, labels, doc_starts, code, total


def line_scores(stripped: list[str], python_score: Callable[[str], int]) -> np.ndarray:
    """The line score of each stripped line (any value for blank ones); lines must not hold ``\\n``."""
    joined = "\n".join(stripped)
    a0 = _codepoints(joined)
    starts0, ends0 = _bounds(a0)
    return _line_scores(stripped, joined, a0, starts0, ends0, python_score)


def _line_scores(
    stripped: list[str],
    joined: str,
    a0: np.ndarray,
    starts0: np.ndarray,
    ends0: np.ndarray,
    python_score: Callable[[str], int],
) -> np.ndarray:
    scored = joined
    if "`" in scored:
        scored = INLINE_CODE.sub("x", scored)
    if "](" in scored:
        scored = MD_LINK.sub("x", scored)
    if scored is joined:
        a, starts, ends = a0, starts0, ends0
    else:
        a = _codepoints(scored)
        starts, ends = _bounds(a)
    n = starts.shape[0]
    kw = _flags(KEYWORD_START, scored, starts, True)
    kv = _flags(KEY_VALUE, scored, starts, True) if "," in scored else np.zeros(n, dtype=np.bool_)
    latex = _flags(LATEX, scored, starts, False) if "\\" in scored else np.zeros(n, dtype=np.bool_)
    scores = _scores(
        a, starts, ends, kw, kv, latex, _SPACE, _WORDCH, _SYMBOL, _PUNCT, _STOP_KEYS, _BLOCK, _BLOCK_LEN,
        _END2, _OPS2,
    )  # fmt: skip
    if a0.dtype != np.uint8:
        for i in np.flatnonzero(~np.fromiter(map(str.isascii, stripped), dtype=np.bool_, count=len(stripped))):
            scores[i] = python_score(stripped[i])
    return scores
