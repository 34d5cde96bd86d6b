"""The code-in-text line score in numba: every rule of ``line_score`` that is not a regex flag, in one loop.

Contract: :func:`score_lines` returns, for each non-empty line ``a[starts[i]:ends[i]]`` of a codepoint array, exactly
:func:`mixlab.curate._code_in_text_reference.line_score` of that (stripped, Markdown-substituted) line, given the
per-line flags of ``KEYWORD_START``, ``KEY_VALUE`` and ``LATEX`` (:mod:`mixlab.curate._code_in_text_regex`).
Computed here: the endings and ``BLOCK_COLON``, ``OPERATORS``, the ``findall`` counts of the identifier patterns
(each scanning on from its previous match, as ``findall`` does), symbol density, the word features of the first
``MAX_TOKENS`` tokens and ``SENTENCE``. Character classes come per codepoint from :func:`classes`: a table for
ASCII, :func:`char_class` (Python's own ``re`` and ``str`` predicates) for each distinct non-ASCII character,
so ``\\s``, ``\\w``, ``\\d``, ``isalpha`` and ``islower`` are Python's on any text. Function words are ASCII
(the only non-ASCII character lowercasing to an ASCII letter is KELVIN SIGN, and no function word has a "k":
tested). Compiled once per machine (``cache=True``).
"""

from __future__ import annotations

import re

import numpy as np
from numba import njit

from mixlab.curate import _code_in_text_rules as R

# character classes, one bit each, as Python's ``re`` (``\\s``, ``\\w``, ``\\d``) and ``str`` methods see them
SPACE, WORD, DIGIT, ALPHA, NOT_LOWER, LOWER, SYMBOL, PUNCT = (1 << k for k in range(8))
# NOT_LOWER: ``("a" + c).islower()`` is False (c is upper- or titlecase); LOWER: ``c.islower()``. So for a
# word w, ``w[1:].islower()`` = no character of w[1:] is NOT_LOWER and one is LOWER.


def char_class(c: str) -> int:
    """The class bits of one character."""
    return (
        (SPACE if c.isspace() else 0)
        | (WORD if re.match(r"\w", c) else 0)
        | (DIGIT if re.match(r"\d", c) else 0)
        | (ALPHA if c.isalpha() else 0)
        | (0 if ("a" + c).islower() else NOT_LOWER)
        | (LOWER if c.islower() else 0)
        | (SYMBOL if c in R.SYMBOLS else 0)
        | (PUNCT if c in R.PUNCT else 0)
    )


_ASCII_CLASS = np.array([char_class(chr(c)) for c in range(128)], dtype=np.uint8)
# at a character outside _HOT no pattern of score_lines can start unless the next one is in _HOT_NEXT
_HOT = np.array([not chr(c).isalnum() and not chr(c).isspace() for c in range(128)], dtype=np.bool_)
_HOT_NEXT = np.array([chr(c).isupper() or chr(c) in "_([" for c in range(128)], dtype=np.bool_)


def classes(a: np.ndarray) -> np.ndarray:
    """The class bits of every codepoint of ``a``: a table for ASCII, :func:`char_class` of each distinct other."""
    if a.dtype == np.uint8:
        return _ASCII_CLASS[a]
    high = a >= 128
    cps, inverse = np.unique(a[high], return_inverse=True)
    cls = _ASCII_CLASS[np.where(high, 0, a)]
    cls[high] = np.array([char_class(chr(c)) for c in cps.tolist()], dtype=np.uint8)[inverse]
    return cls


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
_END2 = np.array(
    [[ord(c) for c in e] for e in ("){", ");", "};", "*/", "->", "=>", ":-", ":=")], dtype=np.int64
)
_OPS2 = np.array(
    [
        [ord(c) for c in e]
        for e in ("==", "!=", "->", "=>", "::", "&&", "||", "+=", "-=", "++", "</", "/>", "()")
    ],
    dtype=np.int64,
)


@njit(cache=True, nogil=True)
def _hot(table, c):  # pragma: no cover - compiled
    return c < 128 and table[c]


@njit(cache=True, nogil=True)
def _ends(a, st, en, text):  # pragma: no cover - compiled
    m = len(text)
    if en - st < m:
        return False
    for k in range(m):  # noqa: SIM110 - a plain loop for numba
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
def score_lines(
    a, cls, starts, ends, kw, kv, latex, hot, hot_next, stop_keys, block, block_len, end2, ops2
):  # pragma: no cover
    """The reference ``line_score`` of every non-empty line ``a[starts[i]:ends[i]]`` (regex flags given)."""
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
            if e == 0 and last == 58:  # BLOCK_COLON.match: a block word, then \b
                for k in range(block.shape[0]):
                    m = block_len[k]
                    if n >= m:
                        ok = True
                        for j in range(m):
                            if a[st + j] != block[k, j]:
                                ok = False
                                break
                        if ok and (n == m or not cls[st + m] & 2):
                            e = 2
                            break
        if e == 0:
            if (
                last == 40
                or last == 91
                or last == 92
                or _ends(a, st, en, " do")
                or _ends(a, st, en, " then")
                or _ends(a, st, en, " =")
                or _ends(a, st, en, "&&")
                or _ends(a, st, en, "||")
            ):
                e = 1
            elif last == 44 and kv[li]:
                e = 2
        score = e
        if kw[li]:
            score += 2
        # OPERATORS.search, identifier counts (each pattern's findall scans on from its previous match), symbols
        ops = False
        tokens = 0
        closes = 0  # CLOSE counts only on a line holding "(" (the rules search it under that condition)
        paren = False
        symbols = 0
        skip_camel = skip_snake = skip_call = skip_close = skip_dollar = skip_index = skip_compare = st
        for i in range(st, en):
            c = a[i]
            nx = a[i + 1] if i + 1 < en else 0
            if not _hot(hot, c) and not _hot(hot_next, nx):  # no pattern starts here (most prose characters)
                continue
            if cls[i] & 64:
                symbols += 1
            if not ops:
                for k in range(ops2.shape[0]):
                    if c == ops2[k, 0] and nx == ops2[k, 1]:
                        ops = True
                        break
                if c == 41:  # \)\s*\{
                    j = i + 1
                    while j < en and cls[j] & 1:
                        j += 1
                    if j < en and a[j] == 123:
                        ops = True
                elif c == 91:  # \[\d*\]
                    j = i + 1
                    while j < en and cls[j] & 4:
                        j += 1
                    if j < en and a[j] == 93:
                        ops = True
                elif c == 46:  # \.\w+\(
                    j = i + 1
                    while j < en and cls[j] & 2:
                        j += 1
                    if j > i + 1 and j < en and a[j] == 40:
                        ops = True
            if c == 40:
                paren = True
            if i >= skip_camel and 97 <= c <= 122 and 65 <= nx <= 90:
                tokens += 1
                skip_camel = i + 2
            snake = i >= skip_snake and ((65 <= c <= 90) or (97 <= c <= 122)) and nx == 95
            if snake and i + 2 < en and cls[i + 2] & 2:
                tokens += 1
                skip_snake = i + 3
            if i >= skip_call and cls[i] & 2 and nx == 40:
                tokens += 1
                skip_call = i + 2
            if i >= skip_close and c == 41:
                j = i + 1
                while j < en and cls[j] & 1:
                    j += 1
                if j < en and (a[j] == 59 or a[j] == 44 or a[j] == 123 or a[j] == 58):
                    closes += 1
                    skip_close = j + 1
            if i >= skip_dollar and c == 36 and i + 1 < en and cls[i + 1] & 2:
                tokens += 1
                skip_dollar = i + 2
            if i >= skip_index and cls[i] & 2 and nx == 91:
                tokens += 1
                skip_index = i + 2
            if i >= skip_compare and (c == 61 or c == 60 or c == 62 or c == 33) and nx == 61:
                tokens += 1
                skip_compare = i + 2
        if paren:
            tokens += closes
        if ops:
            score += 1
        if tokens:
            score += 1 if tokens < 3 else 2
        density = symbols / n
        # word features of the first MAX_TOKENS whitespace-separated tokens, each stripped of PUNCT
        words = alpha = stop = 0
        ntok = 0
        i = st
        while i < en and ntok < 32:
            while i < en and cls[i] & 1:
                i += 1
            if i == en:
                break
            t0 = i
            while i < en and not cls[i] & 1:
                i += 1
            t1 = i
            ntok += 1
            while t0 < t1 and cls[t0] & 128:
                t0 += 1
            while t1 > t0 and cls[t1 - 1] & 128:
                t1 -= 1
            if t1 == t0:
                continue
            is_alpha = True
            not_lower = False
            lower = False
            is_ascii = True
            for j in range(t0, t1):
                k = cls[j]
                if not k & 8:
                    is_alpha = False
                    break
                if a[j] >= 128:
                    is_ascii = False
                if j > t0:
                    if k & 16:
                        not_lower = True
                    if k & 32:
                        lower = True
            if not is_alpha:
                continue
            alpha += 1
            if lower and not not_lower:  # w[1:].islower() (never for one letter)
                words += 1
                if is_ascii and t1 - t0 <= 12:  # only ASCII words are function words (KELVIN SIGN: tested)
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
            score -= (
                2 if (last == 46 or last == 63 or last == 33 or last == 34 or last == 39 or last == 41) else 1
            )
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
