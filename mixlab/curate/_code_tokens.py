"""Compiled token counts of the code quality filter: one numba pass instead of a regex ``findall`` + ``Counter``.

Contract: :func:`scan(text, keys) <scan>` returns ``(alphanumerics, tokens, literals, words, keywords)``,
exactly the counts :func:`mixlab.curate.code_quality.reference_scan` derives from ``bytes.translate`` and
``_TOKEN.findall(text)`` (``tests/test_code_tokens.py`` compares them on the embedded Stack sample, the
detector's labeled sets and fuzzed texts): tokens are, scanning left to right and taking the first alternative
that matches at each position,

- a string literal ``"..."`` / ``'...'`` (no newline inside, a backslash escapes the next non-newline character;
  an unterminated one matches nothing at its quote),
- a number ``\\b\\d[\\w.]*`` (a decimal digit not preceded by a word character),
- an identifier ``[A-Za-z_]\\w*``;

literals = strings + numbers, words = identifiers, keywords = identifiers whose ``lower()`` is in the keyword
set. Character classes are Python ``re``'s for ``str`` patterns: the 128 ASCII characters come from a table, the
few distinct non-ASCII characters of a text are classified by ``re`` itself (``\\w``, ``\\d``) and passed in as a
class per character, so the compiled loop never guesses at Unicode. The same pass counts the alphanumeric
characters (``str.isalnum``, as The Stack's ``alphanum_fraction``): :func:`scan`. A keyword is at most
:data:`MAX_KEY` ASCII letters, packed 5 bits a letter into an int64; the only non-ASCII character whose lowercase is an ASCII letter is KELVIN
SIGN (-> ``k``), so any other non-ASCII character makes a token no keyword (checked in the tests).
The kernel is compiled once per machine (``cache=True``), not per task.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
from numba import njit

MAX_KEY = 12  # letters; 12 x 5 bits fit an int64
KELVIN = 0x212A
_WORD = re.compile(r"\w")
_DIGIT = re.compile(r"\d")


def char_class(c: str) -> int:
    """Class bits of one character: 1 = ``\\w``, 2 = ``\\d`` (``re``'s), 4 = ``[A-Za-z_]``, 8 = ``str.isalnum``."""
    return (
        (1 if _WORD.match(c) else 0)
        | (2 if _DIGIT.match(c) else 0)
        | (4 if c.isascii() and (c.isalpha() or c == "_") else 0)
        | (8 if c.isalnum() else 0)
    )


_ASCII_CLASS = np.array([char_class(chr(c)) for c in range(128)], dtype=np.uint8)


def pack_keywords(keywords: Iterable[str]) -> np.ndarray:
    """Sorted int64 keys of ASCII lowercase keywords (5 bits a letter); longer or other words are refused."""
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
    return np.array(sorted(set(keys)), dtype=np.int64)


@njit(cache=True, nogil=True, inline="always")
def _at(a, cls, direct, i):  # pragma: no cover - compiled
    return cls[a[i]] if direct else cls[i]


@njit(cache=True, nogil=True)
def _count(a, cls, direct, keys):  # pragma: no cover - compiled
    """(alphanumerics, tokens, literals, words, keywords); ``cls`` per character, or the ASCII table if direct."""
    n = a.shape[0]
    alnum = 0
    for i in range(n):
        if _at(a, cls, direct, i) & 8:
            alnum += 1
    tokens = literals = words = keywords = 0
    i = 0
    while i < n:
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
        k = _at(a, cls, direct, i)
        if k & 2 and (i == 0 or not (_at(a, cls, direct, i - 1) & 1)):
            j = i + 1  # a number: [\w.]*
            while j < n and (a[j] == 46 or _at(a, cls, direct, j) & 1):
                j += 1
            tokens += 1
            literals += 1
            i = j
            continue
        if k & 4:  # an identifier: \w*, packed while it can still be a keyword
            key = 0
            ok = True
            j = i
            while j < n:
                d = a[j]
                if not (_at(a, cls, direct, j) & 1):
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
            if ok:
                p = np.searchsorted(keys, key)
                if p < keys.shape[0] and keys[p] == key:
                    keywords += 1
            i = j
            continue
        i += 1
    return alnum, tokens, literals, words, keywords


def scan(text: str, keys: np.ndarray) -> tuple[int, int, int, int, int]:
    """(alphanumerics, tokens, literals, words, keywords) of ``text``; ``keys`` from :func:`pack_keywords`."""
    if text.isascii():
        a = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        counts = _count(a, _ASCII_CLASS, True, keys)
    else:
        a = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        high = a >= 128
        cps, inverse = np.unique(a[high], return_inverse=True)
        cls = _ASCII_CLASS[np.where(high, 0, a)]
        cls[high] = np.array([char_class(chr(c)) for c in cps.tolist()], dtype=np.uint8)[inverse]
        counts = _count(a, cls, False, keys)
    return tuple(int(x) for x in counts)  # type: ignore[return-value]
