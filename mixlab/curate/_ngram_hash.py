"""Compiled pre-screen of the decontamination filter: does a text hold a word n-gram whose hash is in a table?

Contract: :meth:`HashTable(grams, n).may_match(text) <HashTable.may_match>` is ``True`` whenever ``text`` shares a
word ``n``-gram with ``grams``, where the words of a text are exactly
:func:`mixlab.curate.decontaminate.words`: the runs of ``re``'s ``\\w`` in ``text.lower()`` (ASCII ``\\w`` for
ASCII texts: the same set on ASCII characters, checked at import). It is a superset test: ``True`` says that one
n-gram hash of the text is in the table (a 64-bit hash collision says ``True`` too), so the caller confirms a
``True`` with the exact tuple-of-words check and a collision can never change a decision; ``False`` is final (an
n-gram shared with the table hashes to the same key: both sides hash the same code points the same way).

How: one compiled call per text (:func:`_scan`) over its UTF-8 bytes (``str.encode``: a copy for ASCII texts;
5.5 ms for the 8.2 MB of non-ASCII SlimPajama x8 texts, where ``str.lower`` costs 44 ms). Each code point is mapped
through a class table (:data:`_LOWER`): its lower case and whether that is a word character, both computed by
Python itself (``str.lower``, ``re``'s ``\\w``) one block of :data:`BLOCK` code points at a time when a text first
holds one of the block (the kernel reports the unknown code point, :func:`_run` fills its block and runs again),
so the compiled loop never guesses at Unicode. ``str.lower`` is the per-character full lower case except for
U+03A3 (capital sigma: final or not depends on the neighbours; CPython's ``do_lower``), and a code point whose
lower case is not one character (only U+0130 -> ``i`` + U+0307) cannot be mapped alone: a text holding either is lower-cased by Python and read with the identity table
(:data:`_IDENT`), as are the index's grams (their words are lower case already).
Phase 1 (:func:`_words`) hashes each word (rotate-xor of its lower-case code points, branch-free on ASCII);
phase 2 finalizes each word hash (murmur3's fmix64), rolls a polynomial hash over the last ``n`` and looks each
n-gram key up in a 32 KB bit filter (2**18 bits: ~4 % of the probes of a clean text pass it at 10,329 grams),
then in an open-addressing table of the grams' keys. Speed (``benchmarks/results/decontaminate_speed.md``):
SlimPajama x8 texts at 385 MB/s, Stack x8 files at 454 MB/s per core, Python calls included (the Python
reference: 37 and 42 MB/s).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
from numba import njit

_WORD_RE = re.compile(r"\w")  # re's Unicode word character (decontaminate.words' pattern, one character)
_ASCII_WORD_RE = re.compile(r"\w", re.ASCII)
BLOCK = 4096  # code points whose classes are computed at once
MAX_CP = 0x110000
UNKNOWN = 0  # class of a code point whose block is not computed yet
SPECIAL = 1  # class of a code point str.lower does not map alone (U+0130, U+03A3): Python lowers the text
FILTER_BITS = 18  # bit filter in front of the table: 2**18 bits = 32 KB
# class tables: code point -> (lower-case code point << 2) | 2 | (1 if that is a word character), or UNKNOWN /
# SPECIAL. Zeros (UNKNOWN) until filled: the pages of the blocks no text holds are never touched (4.5 MB each).
_LOWER = np.zeros(MAX_CP, dtype=np.int32)  # for texts as read
_IDENT = np.zeros(MAX_CP, dtype=np.int32)  # for lower-cased texts: each code point maps to itself

# hashing constants (uint64 arithmetic wraps modulo 2**64 in the kernel)
_SEED = np.uint64(0xCBF29CE484222325)  # start of every word hash (the FNV offset basis: any odd constant)
_ROLL = np.uint64(0x9E3779B97F4A7C15)  # odd base of the rolling polynomial over word hashes
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)  # murmur3's fmix64 constants
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_SPREAD = np.uint64(0xD6E8FEB86659FD93)  # odd: the top bits of key * _SPREAD index the filter and the table
_M64 = (1 << 64) - 1


def fill_block(cp: int) -> None:
    """Compute the classes of the :data:`BLOCK` code points around ``cp`` in both tables, with Python's own
    ``str.lower`` and ``re``."""
    start = cp - cp % BLOCK
    stop = min(start + BLOCK, MAX_CP)
    word = _WORD_RE.fullmatch
    for c in range(start, stop):
        ch = chr(c)
        _IDENT[c] = (c << 2) | 2 | (word(ch) is not None)
        low = ch.lower()
        _LOWER[c] = SPECIAL if len(low) != 1 or c == 0x3A3 else (ord(low) << 2) | 2 | (word(low) is not None)


fill_block(0)  # ASCII, Latin-1 and more up front
if any(  # the kernel reads ASCII texts with the Unicode classes: both must agree there
    (_LOWER[c] & 1) != (_ASCII_WORD_RE.fullmatch(chr(c).lower()) is not None) for c in range(128)
):  # pragma: no cover - a property of re
    raise ValueError("re's Unicode and ASCII \\w differ on ASCII characters")


@njit(cache=True)
def _words(buf, cls, out):  # type: ignore[no-untyped-def]
    """Phase 1: the raw hash of each word of the UTF-8 bytes ``buf`` (valid UTF-8, surrogates allowed) into
    ``out`` (at least ``len(buf) // 2 + 2`` long); returns their number, or ``-1 - cp`` when code point ``cp`` has
    class UNKNOWN or SPECIAL. Branch-free on ASCII (a word boundary is data, not a jump: 12 ms for the 15 MB of
    ASCII SlimPajama x8 texts against 32 ms with a branch per character, mispredicted twice a word)."""
    off = _SEED
    h = off
    inword = np.uint64(0)
    count = np.uint64(0)
    one = np.uint64(1)
    size = buf.shape[0]
    for i in range(size):
        c = np.int64(buf[i])
        if c >= 0x80:  # a multi-byte character: decoded at its lead byte, its continuation bytes skipped
            if c < 0xC0:
                continue
            if c < 0xE0:
                c = ((c & 0x1F) << 6) | (np.int64(buf[i + 1]) & 0x3F)
            elif c < 0xF0:
                c = ((c & 0x0F) << 12) | ((np.int64(buf[i + 1]) & 0x3F) << 6) | (np.int64(buf[i + 2]) & 0x3F)
            else:
                c = (
                    ((c & 0x07) << 18)
                    | ((np.int64(buf[i + 1]) & 0x3F) << 12)
                    | ((np.int64(buf[i + 2]) & 0x3F) << 6)
                    | (np.int64(buf[i + 3]) & 0x3F)
                )
        v = np.int64(cls[c])
        if v < 2:  # UNKNOWN or SPECIAL
            return -1 - c
        w = np.uint64(v & 1)
        mask = np.uint64(0) - w  # all ones inside a word
        step = ((h << np.uint64(8)) | (h >> np.uint64(56))) ^ np.uint64(v >> 2)  # rotate, xor the code point
        out[count] = h  # kept only when this character ends a word (count moves on)
        count += inword & (one - w)
        h = (step & mask) | (off & ~mask)
        inword = w
    out[count] = h
    count += inword
    return np.int64(count)


@njit(cache=True)
def _scan(buf, n, cls, keys, shift, bits, collect):  # type: ignore[no-untyped-def]
    """The pass over the UTF-8 bytes ``buf`` with class table ``cls``: phase 1 (:func:`_words`), then phase 2
    over the word hashes: each is finalized (murmur3's fmix64), a polynomial hash rolls over the last ``n``, and
    each n-gram key is looked up.

    Returns ``(status, keys)``. ``collect`` false: status 1 when an n-gram's key is in ``keys`` (behind the bit
    filter ``bits``: bit ``(key * _SPREAD) >> (64 - FILTER_BITS)``; table slot ``(key * _SPREAD) >> shift``,
    linear probing), else 0. ``collect`` true (table building): the key of every n-gram in order, status their
    number, nothing probed. Either way status ``-1 - cp`` when code point ``cp`` has class UNKNOWN or SPECIAL.
    """
    hashes = np.empty(buf.shape[0] // 2 + 2, dtype=np.uint64)  # a text of L bytes has <= (L + 1) / 2 words
    count = _words(buf, cls, hashes)
    if count < 0 or count < n:
        return min(count, 0), hashes[:0]  # an error, or too few words
    mask = np.uint64(keys.shape[0] - 1)
    fshift = np.uint64(64 - FILTER_BITS)
    bn = np.uint64(1)  # _ROLL ** n: the weight of the word that leaves the window
    for _ in range(n):
        bn *= _ROLL
    g = np.uint64(0)  # rolling hash of the last n words
    grams = np.empty(count - n + 1 if collect else 0, dtype=np.uint64)
    for k in range(count):
        h = hashes[k]
        h ^= h >> np.uint64(33)
        h *= _MIX1
        h ^= h >> np.uint64(33)
        h *= _MIX2
        h ^= h >> np.uint64(33)
        hashes[k] = h
        g = g * _ROLL + h
        if k < n - 1:
            continue
        if k >= n:
            g -= hashes[k - n] * bn  # the word n back leaves the window
        key = g if g != 0 else np.uint64(1)  # 0 marks an empty slot
        if collect:
            grams[k - n + 1] = key
            continue
        spread = key * _SPREAD
        f = spread >> fshift
        if not (bits[f >> np.uint64(6)] >> (f & np.uint64(63))) & np.uint64(1):
            continue
        j = spread >> shift
        while keys[j] != 0:
            if keys[j] == key:
                return 1, hashes[:0]
            j = (j + np.uint64(1)) & mask
    return grams.shape[0], grams


_NO_KEYS = np.zeros(1, dtype=np.uint64)
_NO_BITS = np.zeros(1, dtype=np.uint64)


def _run(text: str, n: int, keys: np.ndarray, shift: int, bits: np.ndarray, collect: bool, lowered: bool = False
         ) -> tuple[int, np.ndarray]:  # fmt: skip
    """:func:`_scan` over ``text``: filling the classes of the blocks it meets first, lower-casing the text in
    Python when it holds a SPECIAL character. ``lowered``: ``text`` is lower case already (the identity classes)."""
    buf = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    cls = _IDENT if lowered else _LOWER
    while True:
        status, out = _scan(buf, n, cls, keys, np.uint64(shift), bits, collect)
        if status >= 0:
            return int(status), out
        cp = -1 - int(status)
        if cls[cp] == UNKNOWN:
            fill_block(cp)
        else:  # SPECIAL: Python's lower case, read as is
            buf = np.frombuffer(text.lower().encode("utf-8", "surrogatepass"), dtype=np.uint8)
            cls = _IDENT


def gram_hashes(text: str, n: int, lowered: bool = False) -> np.ndarray:
    """The keys of every word ``n``-gram of ``text`` in order (``lowered``: ``text`` is lower case already, its
    code points are hashed as they are)."""
    return _run(text, n, _NO_KEYS, 63, _NO_BITS, True, lowered)[1]


class HashTable:
    """The keys of a set of word ``n``-grams: a bit filter and an open-addressing table (load <= 1/2)."""

    def __init__(self, grams: Iterable[tuple[str, ...]], n: int) -> None:
        grams = list(grams)
        # one pass over all the grams end to end: the n-grams starting at multiples of n are the grams themselves
        # (read as lower case already: a gram's words are decontaminate.words, so they re-split exactly)
        keys = gram_hashes(" ".join(" ".join(gram) for gram in grams), n, lowered=True)[::n]
        if len(keys) != len(grams):
            raise ValueError("a gram must be n words of decontaminate.words")
        unique = {int(k) for k in keys}
        bits = max(4, (2 * len(unique)).bit_length())
        self.n = n
        self.shift = 64 - bits
        self.keys = np.zeros(1 << bits, dtype=np.uint64)
        self.bits = np.zeros(1 << (FILTER_BITS - 6), dtype=np.uint64)
        mask = (1 << bits) - 1
        for k in unique:
            spread = (k * int(_SPREAD)) & _M64
            f = spread >> (64 - FILTER_BITS)
            self.bits[f >> 6] |= np.uint64(1 << (f & 63))
            j = spread >> self.shift
            while self.keys[j]:
                j = (j + 1) & mask
            self.keys[j] = k

    def __len__(self) -> int:
        return int(np.count_nonzero(self.keys))

    def may_match(self, text: str) -> bool:
        """Whether a word n-gram key of ``text`` is in the table (``False`` is exact, see the module contract)."""
        return _run(text, self.n, self.keys, self.shift, self.bits, False)[0] > 0
