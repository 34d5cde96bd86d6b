"""Compiled counts of the code quality filter: one numba pass instead of ``splitlines`` + a regex ``findall``.

Contract: :func:`scan(text, keys, rules) <scan>` returns :data:`FIELDS` = ``(alphanumerics, tokens, literals,
words, keywords, lines, longest, line_chars, minified)``, exactly the values
:func:`mixlab.curate.code_quality.reference_scan` derives from ``str.splitlines``, ``bytes.translate`` and
``_TOKEN.findall(text)`` (``tests/test_code_tokens.py`` compares them on the embedded Stack sample, the
detector's labeled sets and fuzzed texts), except that the token pass may be skipped (the five token counts are
then 0, see :class:`ScanRules`):

- ``lines``, ``longest``, ``line_chars``: the number of ``text.splitlines() or [""]``, the longest one's length,
  the sum of their lengths (every line boundary of ``str.splitlines``: ``\\n \\r \\r\\n \\v \\f \\x1c \\x1d \\x1e
  \\x85 \\u2028 \\u2029``);
- ``minified``: 1 if some line of >= ``rules.min_len`` characters holds fewer than ``max_space_fraction`` x its
  length spaces and tabs (``code_quality.is_minified``), else 0;
- ``alphanumerics``: characters with ``str.isalnum`` (The Stack's ``alphanum_fraction``);
- tokens, scanning left to right and taking the first alternative that matches at each position:
  a string literal ``"..."`` / ``'...'`` (no newline inside, a backslash escapes the next non-newline character;
  an unterminated one matches nothing at its quote), a number ``\\b\\d[\\w.]*`` (a decimal digit not preceded by
  a word character), an identifier ``[A-Za-z_]\\w*``; literals = strings + numbers, words = identifiers,
  keywords = identifiers whose ``lower()`` is in the keyword set.

Character classes are Python's own (``re``'s ``\\w`` and ``\\d`` for ``str`` patterns, ``str.isalnum``,
``str.splitlines``), computed by Python once per distinct code point and process: :data:`_CLASS` holds every code
point's class bits, 0..255 filled at import, the others when a text first holds them (the kernel reports an
unknown class, :func:`scan` fills it and runs again), so the compiled loop never guesses at Unicode. ASCII texts
go in as their bytes (``str.encode("ascii")`` + ``np.frombuffer``: 5.8 ms for the x8 sample's 21 MB of ASCII
files), others as UTF-32 code points (3.1 ms for its 5.1 MB of others). A keyword is at most :data:`MAX_KEY` ASCII
letters, packed 5 bits a letter into an int64 and looked up in a hash table; the only non-ASCII character whose
lowercase is an ASCII letter is KELVIN SIGN (-> ``k``), so any other non-ASCII character makes a token no keyword
(checked in the tests). The kernel is compiled once per machine (``cache=True``), not per task.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
from numba import njit

MAX_KEY = 12  # letters; 12 x 5 bits fit an int64
KELVIN = 0x212A
WORD, DIGIT, IDENT_START, ALNUM, LINE_BREAK = 1, 2, 4, 8, 16  # class bits (``char_class``)
UNKNOWN = 128  # a code point whose class is not computed yet
FIELDS = (  # what scan returns, in order
    *("alphanumerics", "tokens", "literals", "words", "keywords"),
    *("lines", "longest", "line_chars", "minified"),
)
_WORD = re.compile(r"\w")
_DIGIT = re.compile(r"\d")


def char_class(c: str) -> int:
    """Class bits of one character: ``WORD`` = ``\\w``, ``DIGIT`` = ``\\d`` (``re``'s), ``IDENT_START`` =
    ``[A-Za-z_]``, ``ALNUM`` = ``str.isalnum``, ``LINE_BREAK`` = a ``str.splitlines`` boundary."""
    return (
        (WORD if _WORD.match(c) else 0)
        | (DIGIT if _DIGIT.match(c) else 0)
        | (IDENT_START if c.isascii() and (c.isalpha() or c == "_") else 0)
        | (ALNUM if c.isalnum() else 0)
        | (LINE_BREAK if ("x" + c).splitlines() == ["x"] else 0)
    )


# Every code point's class, filled lazily (1.1 MB): a text's distinct non-ASCII characters went through np.unique
# and re per text before (0.044 s of 0.23 s on the benchmark's 600 non-ASCII files), now once per process.
_CLASS = np.full(sys.maxunicode + 1, UNKNOWN, dtype=np.uint8)
_CLASS[:256] = [char_class(chr(c)) for c in range(256)]


class ScanRules(NamedTuple):
    """What :func:`scan` needs beyond the text: the minified rule, and when the token pass can be skipped.

    The token pass runs unless ``longest > tokens_max_line`` or (``skip_minified`` and ``minified``): the caller
    decides those files before the token checks (``max_line_length`` / ``minified``), so their tokens would be
    counted for nothing (~5% of the filter's time on the benchmark's files). ``tokens_max_line = -1``: never.
    """

    min_len: int = sys.maxsize
    max_space_fraction: float = 0.0
    tokens_max_line: int = sys.maxsize
    skip_minified: bool = False


ALL_COUNTS = ScanRules()  # no minified rule, tokens always counted


@njit(cache=True, nogil=True, inline="always")
def _slot(key):  # pragma: no cover - compiled
    """A key's hash: 1 collision for the 136 keywords in 2048 slots (int64 shifts and xors only: no overflow)."""
    return key ^ (key >> 11) ^ (key >> 28)


def pack_keywords(keywords: Iterable[str]) -> np.ndarray:
    """Keys of ASCII lowercase keywords (5 bits a letter, a nonzero int64) in an open-addressing table: a power of
    two >= 8x as many slots as keys, linear probing from :func:`_slot`, 0 = empty. Other words are refused."""
    keys = []
    for w in keywords:
        if not (w.isascii() and w.isalpha() and w.islower() and len(w) <= MAX_KEY):
            raise ValueError(
                f"keyword {w!r}: only ASCII lowercase words of <= {MAX_KEY} letters can be packed"
            )
        key = 0
        for c in w:
            key = key * 32 + ord(c) - 96
        keys.append(key)
    size = 1 << max(4, (8 * len(keys) - 1).bit_length())
    table = np.zeros(size, dtype=np.int64)
    for key in sorted(set(keys)):
        h = _slot.py_func(key) & (size - 1)
        while table[h] != 0:
            h = (h + 1) & (size - 1)
        table[h] = key
    return table


@njit(cache=True, nogil=True)
def _sparse(a, start, end, max_space_fraction):  # pragma: no cover - compiled
    """``a[start:end]`` (one line) holds fewer than ``max_space_fraction`` x its length spaces and tabs."""
    spaces = 0
    for j in range(start, end):
        if a[j] == 32 or a[j] == 9:
            spaces += 1
    return spaces < max_space_fraction * (end - start)


@njit(cache=True, nogil=True)
def _count(a, cls, keys, min_len, max_space_fraction, tokens_max_line, skip_minified):  # pragma: no cover
    """:data:`FIELDS` of the code points ``a``; alphanumerics = -1 if ``cls`` lacks the class of one of them."""
    n = a.shape[0]
    alnum = lines = longest = line_chars = minified = 0
    start = 0  # of the current line
    i = 0
    while i <= n:  # pass 1: lines, minified, alphanumerics (i == n closes the last line)
        if i < n:
            k = cls[a[i]]
            if k < LINE_BREAK:
                alnum += (k >> 3) & 1
                i += 1
                continue
            if k & UNKNOWN:
                return -1, 0, 0, 0, 0, 0, 0, 0, 0
        elif start == n:  # the text ends with a line break (or is empty): no further line
            break
        length = i - start
        lines += 1
        line_chars += length
        longest = max(longest, length)
        if length >= min_len and minified == 0 and _sparse(a, start, i, max_space_fraction):
            minified = 1
        if i + 1 < n and a[i] == 13 and a[i + 1] == 10:
            i += 1
        i += 1
        start = i
    lines = max(lines, 1)  # "".splitlines() or [""]
    if longest > tokens_max_line or (skip_minified and minified):
        return alnum, 0, 0, 0, 0, lines, longest, line_chars, minified
    tokens = literals = words = keywords = 0
    i = 0
    while i < n:  # pass 2: tokens
        c = a[i]
        if c == 34 or c == 39:  # a string literal, or nothing at this quote
            j = i + 1
            end = -1
            while j < n:
                d = a[j]
                if d == c:
                    end = j + 1
                    break
                if d == 10:
                    break
                if d == 92:
                    if j + 1 < n and a[j + 1] != 10:
                        j += 2
                        continue
                    break
                j += 1
            if end > 0:
                tokens += 1
                literals += 1
                i = end
            else:
                i += 1
            continue
        k = cls[c]
        if k & DIGIT and (i == 0 or not (cls[a[i - 1]] & WORD)):
            j = i + 1  # a number: [\w.]*
            while j < n and (a[j] == 46 or cls[a[j]] & WORD):
                j += 1
            tokens += 1
            literals += 1
            i = j
            continue
        if k & IDENT_START:  # an identifier: \w*, packed while it can still be a keyword
            key = 0
            ok = True
            j = i
            while j < n:
                d = a[j]
                if not (cls[d] & WORD):
                    break
                if ok:
                    if d == KELVIN:
                        d = 107
                    elif 65 <= d <= 90:
                        d += 32
                    if 97 <= d <= 122 and j - i < MAX_KEY:
                        key = key * 32 + (d - 96)
                    else:
                        ok = False
                j += 1
            tokens += 1
            words += 1
            if ok:  # a hash probe: 0.024 s less than np.searchsorted over the sorted keys (0.124 -> 0.100 s)
                mask = keys.shape[0] - 1
                h = _slot(key) & mask
                while keys[h] != 0:
                    if keys[h] == key:
                        keywords += 1
                        break
                    h = (h + 1) & mask
            i = j
            continue
        i += 1
    return alnum, tokens, literals, words, keywords, lines, longest, line_chars, minified


def _learn(a: np.ndarray) -> None:
    """Fill :data:`_CLASS` for the code points of ``a`` it does not know yet (once per code point and process)."""
    for cp in np.unique(a[(_CLASS[a] & UNKNOWN) != 0]).tolist():
        _CLASS[cp] = char_class(chr(cp))


def scan(text: str, keys: np.ndarray, rules: ScanRules = ALL_COUNTS) -> tuple[int, ...]:
    """:data:`FIELDS` of ``text`` (see the module docstring); ``keys`` from :func:`pack_keywords`."""
    if text.isascii():  # O(1) on CPython's compact strings
        a = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    else:
        a = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    counts = _count(a, _CLASS, keys, *rules)
    if counts[0] < 0:
        _learn(a)
        counts = _count(a, _CLASS, keys, *rules)
    return counts
