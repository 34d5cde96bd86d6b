"""The compiled code-in-text detector: from the UTF-8 bytes of a batch of documents to line labels and code
fractions in one numba call.

Contract: for the UTF-8 bytes ``a`` of documents laid end to end (``bounds[d]:bounds[d+1]`` is document d, of
``chars[d]`` characters; ``str.encode("utf-8", "surrogatepass")``) and the tables of
:mod:`mixlab.curate._code_in_text_scores`, :func:`label_docs` returns per document the characters on code lines
and on non-blank lines of ``text.split("\\n")``, exactly as ``fraction_on_code`` over ``label_lines``
(:mod:`mixlab.curate._code_in_text_rules`) with the reference ``line_score`` (0 and 0 for an empty document or
one ``quick_no_code`` skips, when ``screen``), and the labels of all lines when asked (-1 blank, 0 prose, 1
code); :func:`score_lines` gives line scores, :func:`walk_lines` one DFA's verdicts, :func:`sentence_lines`
those of the hand-coded ``SENTENCE`` and :func:`quick_screen` those of ``quick_no_code``. Tested in
``tests/test_code_in_text_fast.py``.

All compiled code of the detector is in this one module: numba's cache does not notice a change of a compiled
function in another file, so splitting it would let a stale kernel run. Bytes below 128 are ASCII characters
(UTF-8 never uses them inside a multi-byte character), so comparisons with ASCII literals work on bytes; a
character from 128 up is decoded where its class matters (``\\s``, ``\\w``, letters). Per document: the quick
screen (hint strings found through one table lookup per byte pair, share of ``;{}=<>_``); per line
(:func:`_scan`): leading whitespace, then pass 1 byte by byte (line end, stripped end, symbols, the ``act``
bits; positions of the few characters pass 2 needs), pass 2 over those positions (the identifier patterns as
``findall`` counts, each scanning on from its previous match; ``\"\"\"``/``'''`` counts, ``*/``), pass 3 token
by token over the first 32 tokens, last (word features; it stops earlier once the score's word terms are
decided, and on the labels-only path once the score is on a side of the bounds where every score labels
alike; tokens from bit masks of 64 bytes at a time where those are ASCII without control characters,
:func:`_masks`, the others byte by byte, :func:`_token`). The regexes are DFA walks that stop at their verdict:
``KEYWORD_START``, ``KEY_VALUE``, ``BLOCK_COLON``, ``COMMENT`` (a few characters on most lines), ``OPERATORS``
only from the characters that can start it, ``LATEX`` only on lines with a backslash; ``SENTENCE`` is coded by
hand (its pattern is checked), only on lines without a character that kills it: from bit masks of 64 bytes at
a time (:func:`_sentence64`; a loop without a branch per byte, :func:`_sentence`, near the batch's end). A line
with a backtick or ``](`` is scored on its Markdown-substituted copy only. The block logic of ``label_lines``
follows per document. The helpers are compiled without reference counting (``_nrt=False``: array arguments
would cost an atomic increment and decrement per call).

Measured (SlimPajama x8, 24.1 MB, 6016 documents, batches of 64): ~95 ms a pass after round 8 (unsigned
indexes in the byte loops: no wraparound test per access; the quick screen's byte loop with few live values;
107.3-111.5 -> 99.7-100.5 ms interleaved, then pass 3's indexes -4.5 to -6.7 ms more), 108-111 ms after round 7 (the line
helpers :func:`_line`, :func:`_scan`, :func:`_syntax`, :func:`_words`, :func:`_sentence64`, :func:`_substitute`
inlined into :func:`_doc`: array arguments cost 7-9 words each per call, -19 to -26 ms; pass 1 keeps an
uppercase letter for pass 2 only after ``[a-z]``, -3 to -5 ms; inlining ``_doc``, ``_walk`` or the small
helpers as well measured no faster, -0.6 to +48 ms), 133.5-135.8 ms after round 6
(``SENTENCE`` from 64-byte masks: -1.3 to -4.2 ms in interleaved runs against 137.1-137.7; scoring no line
whose label ignores its score (fences, comments), ``SENTENCE`` and ``OPERATORS`` after pass 3 only where
they can still change a label, no ``OPERATORS`` walk on ASCII lines without a character that starts it
measured +0.6 to +3 ms: dropped), 136-142 ms after round 5 (pass 3 from 64-byte bit masks, one step per
token: -17 to -22 ms in interleaved runs against 157-165; narrower 32-byte windows, branch-free token
steps, pass 1 on 8 bytes at a time between "\\n" checks, inlining the pass helpers into :func:`_scan`
measured +2 to +20 ms: dropped), 157-158 ms after round 4 (166-168 before
it: pass 3's short lowercase tokens 8 bytes at a time ~-9 ms, the quick screen's stop at the symbol
share ~-1 ms; pass 1 on 8 bytes at a time while they are all ``[a-z ]`` measured 174-178 ms: dropped, a
break out of the word loop every ~3 words costs more than the byte loop it saves), ~164 ms in round 3
(the labels-only bound on pass 3: -10 to -16 ms in interleaved runs; an ASCII-only pass 3 and a
first-character check before the ``COMMENT`` walks measured -6 to +6 ms from one build to the next:
dropped), ~178 ms before it (~200 ms before round 2: quick screen 20 -> 12 ms, ``SENTENCE`` by hand 13 -> 6
ms, pass 3's early stop and packed keys ~56 -> ~49 ms, no score for a Markdown line's original text ~3 ms).
Of the 2864 documents the screen passes (17.4 M bytes, 248 k non-blank lines): pass 1 ~22 ms, pass 2 ~14 ms,
pass 3 ~49 ms, ~48 on the labels-only path (per line ~200 ns: most lines are short, the cost is per token;
~28 ms after round 5),
``KEYWORD_START`` ~9 ms, ``OPERATORS`` ~11 ms, the rest of the line score ~30 ms, Markdown lines ~4 ms, the
block logic with the ``COMMENT`` walks and the line dispatch the rest. A single fused pass per line was
slower (~25 live values spilled to the stack: 2x the cycles per byte); tried and dropped in round 2 (each no
faster): pass 3 as a table-driven token DFA (~7 cycles a byte, bound by the state's load-to-use latency) or
as one loop of branch-free 0/1 flags per ASCII token; DFA rows as flat offsets (no imul in the walk); a 128 x
128 pair table for the screen.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros

# class bits (mixlab.curate._code_in_text_scores.char_class), act bits, DFA rows of the tables' ``start``
_SPACE, _WORD, _ALPHA, _NOT_LOWER, _LOWER, _SYMBOL, _PUNCT = 1, 2, 8, 16, 32, 64, 128
TRIG, OPS_START, SENT_DEAD, LOWER_AZ, UPPER_AZ, _ACT_SYMBOL, _ACT_SPACE, _WS_DEAD = 1, 2, 4, 8, 16, 32, 64, 128  # fmt: skip
_ACT_PASS2 = TRIG | OPS_START | UPPER_AZ | _WS_DEAD  # the characters pass 2 of a line looks at
# pass 1 keeps an uppercase letter for pass 2 only after an ASCII lowercase one (CAMEL, the only rule that reads
# it: 26 k of the 592 k uppercase letters of SlimPajama x8's screened text; the kernel -3 to -5 ms, round 7)
_ACT_PASS2_NOUP = TRIG | OPS_START | _WS_DEAD
_KW, _KV, _CGUARD, _COMMENT, _LATEX, _SENT, _OPS, _BLOCK = range(8)
_CODE_SCORE, _WEIGHT, _PRIOR, _AMBIGUOUS = 2, 0.75, 0.5, 0  # the rules' (checked by _code_in_text_compiled)
_QUICK_SHARE = 0.004  # quick_no_code: fewer QUICK_SYMBOLS than this share of the characters (tested)
_STOP_LEN = 7  # the longest function word (checked by the tables; packed 5 bits a letter, at most 12)
_STOP_SHIFT = np.uint64(64 - 9)
# labels only: every line score <= _LOW labels its line (and its neighbours) as -4 does, every one >= _HIGH as 5
# does (the block logic reads scores through >= 0, >= _CODE_SCORE and clipping to [-3, 3] after the indent's +1,
# and adds at most 0.75 * 3 of context: see _scan; tested)
_LOW, _HIGH = -4, 5
# pass 3 on 8 bytes at a time (SWAR on uint64 words): the masks of bytes 0x61..0x7a ("a".."z") and of " "
_ALL_HIGH, _ALL_LOW7, _ALL_SPACE = np.uint64(0x8080808080808080), np.uint64(0x7F7F7F7F7F7F7F7F), np.uint64(0x2020202020202020)  # fmt: skip  # noqa: E501
_ADD_A, _ADD_Z = (
    np.uint64(0x1F1F1F1F1F1F1F1F),
    np.uint64(0x0505050505050505),
)  # + 0x1f >= 0x80 from "a" (0x61)
_ONES, _ALL_96 = np.uint64(0x0101010101010101), np.uint64(0x6060606060606060)
_PAIR = np.uint64(0x00FF00FF00FF00FF)
_QUAD, _HALF = np.uint64(0x0000FFFF0000FFFF), np.uint64(0x00000000FFFFFFFF)
_LOWER_BITS = 42  # the class bits of every "a".."z" (checked by the tests)
# pass 3 on 64 bytes at a time: the masks of "A".."Z" (+ 0x3f >= 0x80 from 0x41, + 0x25 from 0x5b); the high
# bits of 8 bytes gathered into 8 bits by one multiply (byte k's bit lands on bit 56 + k, no carries)
_ADD_UA, _ADD_UZ = np.uint64(0x3F3F3F3F3F3F3F3F), np.uint64(0x2525252525252525)
_GATHER, _LOW63 = np.uint64(0x0102040810204080), np.uint64(0x7FFFFFFFFFFFFFFF)
# SENTENCE on 64 bytes at a time: the bytes "-" and "'" in every byte of a word
_ALL_DASH, _ALL_QUOTE = np.uint64(0x2D2D2D2D2D2D2D2D), np.uint64(0x2727272727272727)


@njit(cache=True, nogil=True, inline="always")
def _decode(b, i):  # pragma: no cover - compiled
    """(codepoint, bytes) of the multi-byte character starting at ``b[i]`` (valid UTF-8, surrogates passed)."""
    c = np.int64(b[i])
    if c < 0xE0:
        return ((c & 0x1F) << 6) | (np.int64(b[i + 1]) & 0x3F), 2
    if c < 0xF0:
        return ((c & 0x0F) << 12) | ((np.int64(b[i + 1]) & 0x3F) << 6) | (np.int64(b[i + 2]) & 0x3F), 3
    return (
        ((c & 0x07) << 18) | ((np.int64(b[i + 1]) & 0x3F) << 12) | ((np.int64(b[i + 2]) & 0x3F) << 6)
        | (np.int64(b[i + 3]) & 0x3F),
        4,
    )  # fmt: skip


@njit(cache=True, nogil=True, _nrt=False)
def _walk(b, ct, st, en, sa, sc, trans, at_end, state):  # pragma: no cover - compiled
    """Run a DFA from ``state`` over ``b[st:en]``: True when it matches.

    Indexes are unsigned here and in the other hot loops (round 8): numba adds ``i + len`` for a negative
    signed index, a test and a select on every ``b[i]`` whose sign LLVM cannot prove; with them gone the kernel
    ran 111.5 -> 100.5 ms (interleaved, with the quick screen's loop below)."""
    i = np.uint64(st)  # unsigned: no wraparound test on each b[i]
    end = np.uint64(en)
    while i < end:
        c = b[i]
        if c < 128:
            s = sa[c]
            i += np.uint64(1)
        else:
            cp, w = _decode(b, np.int64(i))
            s = sc[ct[cp] & 7]
            i += np.uint64(w)
        state = trans[np.uint64(state), s]
        if state <= 1:
            return state == 1
    return at_end[state]


@njit(cache=True, nogil=True, _nrt=False)
def _class_at(b, ct, j):  # pragma: no cover - compiled
    """Class bits and byte width of the character at ``b[j]``."""
    c = b[np.uint64(j)]  # unsigned: no wraparound test
    if c < 128:
        return ct[c], 1
    cp, w = _decode(b, j)
    return ct[cp], w


@njit(cache=True, nogil=True, _nrt=False)
def _is_stop(b, t0, t1, stop_keys, stop_mult):  # pragma: no cover - compiled
    """The ASCII letters ``b[t0:t1]`` lowercased are a function word."""
    key = 0
    for j in range(t0, t1):
        key = key * 32 + ((b[j] | 32) - 96)
    return stop_keys[(np.uint64(key) * stop_mult) >> _STOP_SHIFT] == key


@njit(cache=True, nogil=True, _nrt=False)
def _search_from(
    b, ct, act, act_cat, pos, n_pos, en, sa, sc, trans, at_end, q0
):  # pragma: no cover - compiled
    """A search DFA that stays in its start state ``q0`` on every character without ``OPS_START``, over the line
    up to ``en``: stepped only from the recorded positions ``pos[:n_pos]`` (ascending) that can start a match
    until it is back in ``q0`` (prose has few such characters: walking whole lines cost ~10 ms more)."""
    i = -1
    state = q0
    for t in range(n_pos):
        p = pos[t]
        if p >= en:
            break
        if p < i:
            continue
        c = b[p]
        if not (act[c] if c < 128 else act_cat[_class_at(b, ct, p)[0] & 7]) & OPS_START:
            continue
        i = p
        state = q0
        while i < en:
            c = b[np.uint64(i)]  # unsigned: no wraparound test
            if c < 128:
                s = sa[c]
                i += 1
            else:
                cp, w = _decode(b, i)
                s = sc[ct[cp] & 7]
                i += w
            state = trans[state, s]
            if state <= 1:
                return state == 1
            if state == q0:
                break
        if i >= en and state != q0:
            return at_end[state]
    return at_end[q0]


@njit(cache=True, nogil=True, _nrt=False)
def _prev_word(b, ct, i, st):  # pragma: no cover - compiled
    """The character before ``b[i]`` (not before ``st``) is ``\\w``."""
    if i == st:
        return False
    j = i - 1
    while b[j] >= 128 and b[j] < 0xC0:
        j -= 1
    return (_class_at(b, ct, j)[0] & _WORD) != 0


@njit(cache=True, nogil=True, _nrt=False)
def _bytes(b, ct, act, act_cat, i, de, pos):  # pragma: no cover - compiled
    """Pass 1 over the line from its first non-space byte ``i``: (its end, stripped end, continuation bytes,
    symbols, OR of the act bits, number of positions written to ``pos``: the characters pass 2 must see; an
    uppercase letter only right after an ASCII lowercase one, ``after_low``: the CAMEL pairs).

    The hot loop has few live values (one fused pass with everything kept ~25 live and spilled them: 2x slower);
    a position is written for every byte and kept only when its act bits ask (a branch-free append). The index
    is unsigned (no wraparound test per byte; round 8: -4.6 ms in one interleaved run, see :func:`_walk`).
    """
    one = np.uint64(1)
    u = np.uint64(i)  # unsigned: no wraparound test on each b[u]
    end = np.uint64(de)
    en = u
    symbols = orf = n_pos = n_cont = after_low = 0  # after_low: UPPER_AZ when the byte before is [a-z]
    while u < end:
        c = b[u]
        if c < 128:
            if c == 10:
                break
            f = act[c]
            symbols += (f >> 5) & 1  # _ACT_SYMBOL
            orf |= f
            if not f & _ACT_SPACE:
                en = u + one
            pos[n_pos] = u
            n_pos += ((f & _ACT_PASS2_NOUP) | (f & after_low)) != 0
            after_low = (f << 1) & UPPER_AZ  # LOWER_AZ << 1
            u += one
        else:
            cp, w = _decode(b, np.int64(u))
            k = ct[cp]
            f = act_cat[k & 7]
            n_cont += w - 1
            if not k & _SPACE:
                en = u + np.uint64(w)
                orf |= f
            elif f & SENT_DEAD:
                orf |= _WS_DEAD
            pos[n_pos] = u
            n_pos += (f & _ACT_PASS2) != 0
            after_low = 0
            u += np.uint64(w)
    return np.int64(u), np.int64(en), n_cont, symbols, orf, n_pos


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _syntax(b, ct, act, act_cat, st, en, pos, n_pos, n_cont):  # noqa: C901  # pragma: no cover - compiled
    """Pass 2, over the positions pass 1 kept (in order): (identifier tokens: the findall counts of CAMEL, SNAKE,
    CALL, CLOSE (only with a "("), DOLLAR, INDEX, COMPARE; a non-trailing whitespace character that SENTENCE
    lacks; quotes; ``*/`` anywhere / from offset 2; backtick or ``](``; backslash)."""
    tokens = closes = quotes = run = 0
    paren = close_any = close2 = marked = backslash = dead_ws = False
    skip_snake = skip_compare = st
    for t in range(n_pos):
        i = pos[t]
        if i >= en:
            break
        c = np.int64(b[np.uint64(i)])  # unsigned: no wraparound test
        if c >= 128:  # a non-ASCII character that can start OPERATORS or is whitespace SENTENCE lacks
            dead_ws |= (_class_at(b, ct, i)[0] & _SPACE) != 0
            continue
        f = act[c]
        if f & _WS_DEAD:
            dead_ws = True
        p = b[np.uint64(i - 1)] if i > st else 0
        if f & UPPER_AZ:  # CAMEL [a-z][A-Z]: pass 1 keeps an uppercase letter only after [a-z]
            tokens += 1
        elif c == 40:  # CALL \w\( ; "](" ; CLOSE counts only on a line with "("
            paren = True
            tokens += _prev_word(b, ct, i, st)
            marked |= p == 93
        elif c == 41:  # CLOSE \)\s*[;,{:]
            j = i + 1
            while j < en:
                kj, wj = _class_at(b, ct, j)
                if not kj & _SPACE:
                    break
                j += wj
            if j < en and (b[j] == 59 or b[j] == 44 or b[j] == 123 or b[j] == 58):
                closes += 1
        elif c == 91:  # INDEX \w\[
            tokens += _prev_word(b, ct, i, st)
        elif c == 36:  # DOLLAR \$\w
            if i + 1 < en and _class_at(b, ct, i + 1)[0] & _WORD:
                tokens += 1
        elif c == 95:  # SNAKE [A-Za-z]_\w
            if i - 1 >= skip_snake and p < 128 and act[p] & (LOWER_AZ | UPPER_AZ) and i + 1 < en:
                kj, wj = _class_at(b, ct, i + 1)
                if kj & _WORD:
                    tokens += 1
                    skip_snake = i + 1 + wj
        elif c == 61:  # COMPARE [=<>!]=
            if i - 1 >= skip_compare and (p == 61 or p == 60 or p == 62 or p == 33):
                tokens += 1
                skip_compare = i + 1
        elif c == 34 or c == 39:  # runs of quotes: str.count('"""') + str.count("'''")
            if p == c:
                run += 1
            else:
                quotes += run // 3
                run = 1
        elif c == 47:
            if p == 42:
                close_any = True
                off = i - 1 - st  # the character offset of the "*" is >= 2
                if n_cont:
                    for j in range(st, i - 1):
                        off -= b[j] >= 128 and b[j] < 0xC0
                close2 |= off >= 2
        elif c == 96:
            marked = True
        elif c == 92:
            backslash = True
    quotes += run // 3  # the last run (each earlier one was counted when the next began)
    if paren:
        tokens += closes
    return tokens, dead_ws, quotes, close_any, close2, marked, backslash


@njit(cache=True, nogil=True)
def _words_of(b):  # pragma: no cover - compiled
    """The uint64 words of ``b`` (its first ``len // 8 * 8`` bytes), for :func:`_short_lower`."""
    return b[: b.shape[0] // 8 * 8].view(np.uint64)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _short_lower(bw, i, en):  # pragma: no cover - compiled
    """(length, packed key) of the token ``[a-z]{1,7}`` followed by " " at ``b[i:]`` (inside ``b[:en]``), found
    with word-parallel arithmetic on the 8 bytes from ``i``; length 0 when there is none (then nothing is known).
    The packed key is :func:`_is_stop`'s: 5 bits a letter, the first letter highest."""
    q = np.uint64(i) >> np.uint64(3)  # unsigned: no wraparound test
    if q + np.uint64(1) >= bw.shape[0]:
        return 0, 0
    r = np.uint64((i & 7) * 8)
    x = bw[q] >> r
    if r:
        x |= bw[q + np.uint64(1)] << (np.uint64(64) - r)
    if x & _ALL_HIGH:
        return 0, 0
    lo = (x + _ADD_A) & ~(x + _ADD_Z) & _ALL_HIGH  # high bit of each byte 0x61..0x7a
    y = x ^ _ALL_SPACE
    sp = ~(((y & _ALL_LOW7) + _ALL_LOW7) | y) & _ALL_HIGH  # high bit of each " "
    low = sp & (np.uint64(0) - sp)  # the first " "
    below = low - np.uint64(1)  # the bytes before it (all bits below its high bit)
    if low == 0 or (lo & below) != (below & _ALL_HIGH) or (below & _ALL_HIGH) == 0:
        return 0, 0
    ones = below >> np.uint64(7) & _ONES  # 1 in each byte of the token
    n = np.int64((ones * _ONES) >> np.uint64(56))  # the token's length (the sum of those bytes)
    if i + n > en:
        return 0, 0
    m = (x & (below >> np.uint64(7))) - (_ALL_96 & (below >> np.uint64(7)))  # letters - 96, 0 past the token
    return n, _fold(m, n)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _fold(m, n):  # pragma: no cover - compiled
    """:func:`_is_stop`'s packed key of the ``n`` letters whose ``(c | 32) - 96`` are the low bytes of ``m``
    (the other bytes 0): 5 bits a letter, the first letter highest."""
    # packed big-endian: pairs of letters, then 4, then 8
    m = ((m & _PAIR) << np.uint64(5)) + ((m >> np.uint64(8)) & _PAIR)
    m = ((m & _QUAD) << np.uint64(10)) + ((m >> np.uint64(16)) & _QUAD)
    m = ((m & _HALF) << np.uint64(20)) + (m >> np.uint64(32))
    return np.int64(m >> np.uint64(5 * (8 - n)))


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _load8(bw, i):  # pragma: no cover - compiled
    """The 8 bytes ``b[i:i + 8]`` as one little-endian uint64 (``(i >> 3) + 1 < bw.shape[0]``), without a branch."""
    r = np.uint64((i & 7) * 8)
    q = np.uint64(i) >> np.uint64(3)  # unsigned: no wraparound test
    return (bw[q] >> r) | ((bw[q + np.uint64(1)] << np.uint64(1)) << (np.uint64(63) - r))


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _gather(h):  # pragma: no cover - compiled
    """The high bits of the 8 bytes of ``h`` (nothing else set) as 8 bits, byte k's at bit k."""
    return ((h >> np.uint64(7)) * _GATHER) >> np.uint64(56)


@njit(cache=True, nogil=True, _nrt=False)
def _masks(bw, i, lim):  # pragma: no cover - compiled
    """The bytes ``b[i:i + min(lim, 64)]`` one bit a byte (bit k: ``b[i + k]``): (non-" " bytes, letters
    ``[A-Za-z]``, lowercase ``[a-z]``; whether one of them is from 128 up, below " " or DEL: then they are not
    for :func:`_words`' window). SWAR on uint64 words, needs ``(i >> 3) + 9 < bw.shape[0]``."""
    sp = al = lo = bad = np.uint64(0)
    for j in range(min(8, (lim + 7) >> 3)):
        x = _load8(bw, i + 8 * j)
        left = lim - 8 * j
        keep = _ALL_HIGH if left >= 8 else _ALL_HIGH >> np.uint64(8 * (8 - left))
        x7 = x & _ALL_LOW7
        bad |= (x | ~(x7 + _ALL_96) | (x7 + _ONES)) & keep  # >= 0x80, < 0x20 (x7 + 0x60 < 0x80), 0x7f
        low = (x7 + _ADD_A) & ~(x7 + _ADD_Z) & _ALL_HIGH
        up = (x7 + _ADD_UA) & ~(x7 + _ADD_UZ) & _ALL_HIGH
        y = x7 ^ _ALL_SPACE
        sh = np.uint64(8 * j)
        sp |= _gather(~(y + _ALL_LOW7) & _ALL_HIGH) << sh
        al |= _gather(low | up) << sh
        lo |= _gather(low) << sh
    valid = ~np.uint64(0) if lim >= 64 else (np.uint64(1) << np.uint64(lim)) - np.uint64(1)
    return ~sp & valid, al, lo, bad != 0


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _token(b, bw, ct, i, en, stop_keys, stop_mult):  # pragma: no cover - compiled
    """The token at ``b[i:]`` (``i < en``, not whitespace) byte by byte, for :func:`_words` where its window
    does not apply: (its end; its core, what ``strip(PUNCT)`` leaves, is alphabetic; also ``core[1:].islower()``;
    also a function word). A token that is its own core is looked up by the key packed in its loop (~2 ms on
    SlimPajama x8: no second loop over its letters); a token ``[a-z]{1,7}`` followed by " " is read from one
    8-byte word (:func:`_short_lower`; round 4: the kernel 166-168 -> 157-158 ms; round 5: still 2 ms faster
    on the lines left to this loop than without it)."""
    t0 = i
    and_k, or_k, or_rest, rest_mask, tok_ascii, key = 255, 0, 0, 0, True, 0
    n, key = _short_lower(bw, i, en)
    if n:  # [a-z]{1,7} then " ": the class bits of its letters, without a branch per byte
        and_k = _LOWER_BITS
        or_k = _LOWER_BITS
        or_rest = _LOWER_BITS if n > 1 else 0
        i += n
    while not n and i < en:
        c = np.int64(b[np.uint64(i)])
        if c < 128:
            k = ct[c]
            w = 1
        else:
            c, w = _decode(b, i)
            k = ct[c]
        if k & _SPACE:
            break
        tok_ascii &= c < 128
        key = key * 32 + ((c | 32) - 96)  # the packed key, used when the token is the core
        and_k &= k
        or_k |= k
        or_rest |= k & rest_mask
        rest_mask = 255
        i += w
    c0, c1 = t0, i
    if or_k & _PUNCT:  # PUNCT is ASCII: strip it, then the class bits of the core again
        while c0 < c1 and b[c0] < 128 and ct[b[c0]] & _PUNCT:
            c0 += 1
        while c1 > c0 and b[c1 - 1] < 128 and ct[b[c1 - 1]] & _PUNCT:
            c1 -= 1
        and_k, or_rest, rest_mask = 255, 0, 0
        j = c0
        while j < c1:
            kj, wj = _class_at(b, ct, j)
            and_k &= kj
            or_rest |= kj & rest_mask
            rest_mask = 255
            j += wj
    alpha = word = stop = False
    if c1 > c0 and and_k & _ALPHA:
        alpha = True
        if or_rest & _LOWER and not or_rest & _NOT_LOWER:  # w[1:].islower()
            word = True
            if tok_ascii and c1 - c0 <= _STOP_LEN:
                if c1 - c0 < i - t0:  # PUNCT stripped: pack the core
                    stop = _is_stop(b, c0, c1, stop_keys, stop_mult)
                else:
                    stop = stop_keys[(np.uint64(key) * stop_mult) >> _STOP_SHIFT] == key
    return i, alpha, word, stop


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _words(b, bw, ct, st, en, stop_keys, stop_mult, need_words, w_stop):  # noqa: C901  # pragma: no cover
    """Pass 3, the word features of the first 32 tokens: (tokens whose core, what ``strip(PUNCT)`` leaves, is
    alphabetic; those with ``core[1:].islower()``; those that are function words), or of the first tokens that
    already decide every term of the score that reads them (the counts only grow and ``alpha`` stays <= 32):
    ``words >= 12`` or not ``need_words`` (density >= 0.12: the two word terms are off), with ``stop >= 4`` and
    ``5 * stop >= alpha + tokens left`` (the function-word term is -2 whatever the rest holds). It saves ~4 ms
    on SlimPajama x8 (most lines have fewer than 16 tokens). It also stops once ``words >= w_stop`` (the
    labels-only bound of :func:`_scan`; 33: never).

    64 bytes at a time (round 5): where the next 64 bytes of the line (or its rest) are ASCII with " " the only
    whitespace, :func:`_masks` gives one bit a byte for non-spaces, letters and lowercase letters, and each token
    is one step of bit arithmetic (its bounds by trailing-zero counts, alphabetic core: one run of letters with
    only PUNCT around it, ``core[1:]`` lowercase, the function word's key packed from one 8-byte load), no branch
    per byte; a token that reaches the window's end is read by the next window. Other tokens (non-ASCII bytes,
    tabs, the end of the batch, 64 bytes or longer) go byte by byte (:func:`_token`), and the next token tries a
    window again. The kernel 157-165 -> 136-142 ms on SlimPajama x8 (interleaved runs); reading the tokens
    before a non-ASCII byte from its window, or the rest of such a line byte by byte, measured 3-4 ms slower.
    Round 8: unsigned indexes here and in :func:`_load8`, :func:`_short_lower`, :func:`_token` (no wraparound
    test, see :func:`_walk`): the kernel 100.0-102.1 -> 95.4-95.5 ms (three interleaved runs; a fourth, at
    higher load, 98.5 -> 97.5)."""
    words = alpha = stop = ntok = 0
    i = st
    while i < en and ntok < 32:
        lim = en - i
        if (i >> 3) + 9 < bw.shape[0]:
            ns, al, lo, bad = _masks(bw, i, lim)
            if not bad:
                ts = ns & ~(ns << np.uint64(1))  # token starts
                te = ns & ~(ns >> np.uint64(1))  # token ends
                if lim > 64:
                    te &= _LOW63  # a token at the window's last byte may go on: the next window reads it
                while te:
                    s = ts & (np.uint64(0) - ts)
                    tok = ((te & (np.uint64(0) - te)) << np.uint64(1)) - s  # its bytes
                    ts &= ts - np.uint64(1)
                    te &= te - np.uint64(1)
                    ntok += 1
                    a = al & tok
                    if a:
                        ta = trailing_zeros(a)
                        run = a >> ta
                        if not run & (run + np.uint64(1)):  # one run of letters
                            rest = tok & ~a
                            core = True
                            while rest:  # the bytes around it are PUNCT (mostly none or one)
                                core &= (ct[b[np.uint64(i) + trailing_zeros(rest)]] & _PUNCT) != 0
                                rest &= rest - np.uint64(1)
                            if core:
                                alpha += 1
                                tail = a & (a - np.uint64(1))
                                if tail and not tail & ~lo:  # core[1:].islower()
                                    words += 1
                                    n = 64 - np.int64(leading_zeros(run))
                                    if n <= _STOP_LEN:
                                        x = _load8(bw, i + np.int64(ta))
                                        m = ((x | _ALL_SPACE) - _ALL_96) & (
                                            (np.uint64(1) << np.uint64(8 * n)) - np.uint64(1)
                                        )
                                        key = _fold(m, n)
                                        stop += stop_keys[(np.uint64(key) * stop_mult) >> _STOP_SHIFT] == key
                    if (
                        ntok >= 32
                        or words >= w_stop
                        or ((words >= 12 or not need_words) and stop >= 4 and 5 * stop >= alpha + 32 - ntok)
                    ):
                        return words, alpha, stop
                if lim <= 64:
                    return words, alpha, stop
                if ts:  # the token that reaches the window's end
                    s = np.int64(trailing_zeros(ts))
                    if s:
                        i += s
                        continue
                else:
                    i += 64
                    while i < en:  # the whitespace at the window's end
                        k, w = _class_at(b, ct, i)
                        if not k & _SPACE:
                            break
                        i += w
                    continue
        i, is_alpha, is_word, is_stop = _token(b, bw, ct, i, en, stop_keys, stop_mult)
        ntok += 1
        alpha += is_alpha
        words += is_word
        stop += is_stop
        if words >= w_stop or (
            (words >= 12 or not need_words) and stop >= 4 and 5 * stop >= alpha + 32 - ntok
        ):
            break
        while i < en:  # the whitespace after it
            k, w = _class_at(b, ct, i)
            if not k & _SPACE:
                break
            i += w
    return words, alpha, stop


# SENTENCE by hand (the pattern is checked by _code_in_text_scores): per byte its part of the pattern; 0 for a
# byte SENTENCE never accepts (every byte from 128 up: the pattern is ASCII)
_S_BODY, _S_TAIL, _S_BOTH, _S_SPACE = 1, 2, 4, 8  # [A-Za-z\-], [,.;:!?"], ', " "
_SENT_BITS = np.zeros(256, dtype=np.int64)
for _c in range(128):
    _ch = chr(_c)
    _SENT_BITS[_c] = (
        _S_BODY if ("A" <= _ch <= "Z" or "a" <= _ch <= "z" or _ch == "-") else _S_TAIL if _ch in ',.;:!?"'
        else _S_BOTH if _ch == "'" else _S_SPACE if _ch == " " else 0
    )  # fmt: skip


@njit(cache=True, nogil=True, _nrt=False)
def _sentence(b, st, en):  # pragma: no cover - compiled
    """``SENTENCE.match`` of ``b[st:en]`` (``st < en``), ``[A-Z][A-Za-z'\\-]*[,.;:!?\"']*(?: +[A-Za-z'\\-]+
    [,.;:!?\"']*){2,}$``: an uppercase ASCII first byte, then at least three tokens split by runs of spaces
    (none at either end), each of bytes of the two classes only, not starting with one of ``,.;:!?"``, no
    letter or ``-`` after one of those (``'`` is in both classes: a token is ``x y`` with x in the first class
    and y in the second exactly then).

    A loop without a branch per byte but its exit: 6 ms on the lines of SlimPajama x8 where the DFA walk took
    13 ms (its step, a dependent load of the state table, ~6-9 cycles a byte).
    """
    if not 65 <= b[st] <= 90:
        return False
    bad = tail = space = 0
    ntok = 1
    for i in range(st, en):
        k = _SENT_BITS[b[i]]
        sp = (k >> 3) & 1
        to = (k >> 1) & 1
        bad |= (k == 0) | (tail & k & _S_BODY) | (space & to)
        ntok += space & (1 - sp)
        tail = (tail | to) & (1 - sp)
        space = sp
        if bad:
            return False
    return space == 0 and ntok >= 3


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _eq(x, rep):  # pragma: no cover - compiled
    """The high bit of each byte of ``x`` equal to the byte of ``rep`` (bytes below 0x80; carries out of the
    others go to higher bytes only)."""
    return ~((x ^ rep) + _ALL_LOW7) & _ALL_HIGH


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _sentence64(b, bw, st, en):  # pragma: no cover - compiled
    """:func:`_sentence` of ``b[st:en]`` (``st < en``) whose bytes are all of ``SENTENCE``'s alphabet (no
    ``SENT_DEAD`` character: the only ones :func:`_scan` asks about), 64 bytes at a time: one bit a byte for
    " ", body bytes ``[A-Za-z\\-]`` and "'" (SWAR compares on eight uint64 loads, as :func:`_masks`), the other
    bytes are the tail class ``[,.;:!?"]``. No tail byte right after a " "; no body byte after a tail byte
    and "'"s (the byte after each such chain found by one carry through the runs of "'"); at least two
    " "-to-token steps; the state carried from one window to the next in two bits. Near the batch's end (the
    loads would pass it) :func:`_sentence` byte by byte. 46.6 k lines of SlimPajama x8 (3.7 M bytes) get here
    past the first byte: the kernel -1.3 to -4.2 ms against the byte loop (interleaved runs, round 6)."""
    if not 65 <= b[st] <= 90 or b[en - 1] == 32:
        return False
    if ((en - 1) >> 3) + 1 >= bw.shape[0]:
        return _sentence(b, st, en)
    one = np.uint64(1)
    prev_sp = chain = np.uint64(0)  # the byte before the window: a " "; the end of a tail-then-"'" chain
    gaps = 0
    i = st
    while True:
        lim = en - i
        sp = bo = qu = np.uint64(0)
        for j in range(min(8, (lim + 7) >> 3)):
            x = _load8(bw, i + 8 * j)
            body = ((x + _ADD_A) & ~(x + _ADD_Z)) | ((x + _ADD_UA) & ~(x + _ADD_UZ)) | _eq(x, _ALL_DASH)
            sh = np.uint64(8 * j)
            sp |= _gather(_eq(x, _ALL_SPACE)) << sh
            bo |= _gather(body & _ALL_HIGH) << sh
            qu |= _gather(_eq(x, _ALL_QUOTE)) << sh
        valid = ~np.uint64(0) if lim >= 64 else (one << np.uint64(lim)) - one
        sp &= valid
        bo &= valid
        qu &= valid
        tail = valid & ~(sp | bo | qu)
        after_sp = (sp << one) | prev_sp
        if tail & after_sp:  # a token starting with a tail byte
            return False
        starts = ~sp & valid & after_sp  # tokens after the first
        gaps += (starts != 0) + ((starts & (starts - one)) != 0)
        seed = (tail << one) | chain  # the bytes right after a tail byte
        run = qu + (seed & qu)  # carried through the "'"s that follow it
        if bo & ((seed | run) & ~qu):
            return False
        if lim <= 64:
            return gaps >= 2
        prev_sp = sp >> np.uint64(63)
        chain = (tail | (qu & ~run)) >> np.uint64(63)
        i += 64


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _scan(
    b, bw, ct, act, act_cat, ls, de, sa, sc, trans, at_end, start, stop_keys, stop_mult, pos, first, exact
):  # noqa: C901, E501  # pragma: no cover
    """The line of ``b`` starting at ``ls`` (it ends at the next ``\\n`` or at ``de``): (its end, stripped start
    and end, score, characters, ``\"\"\"`` + ``\'\'\'`` count, ``*/`` anywhere, ``*/`` from offset 2, backtick or
    ``](``); the score is that of this text, before Markdown substitution; all 0 but the bounds when blank.
    With ``first``, a line with a backtick or ``](`` gets score 0: its score is that of its substituted copy
    (not computing it saves ~3 ms on SlimPajama x8).

    Without ``exact`` (the labels-only path: label_docs for the filter, code fractions and labels) the score
    is exact unless it is <= ``_LOW`` or >= ``_HIGH``, where it is some other score on the same side: every
    score <= -4 labels its line and its neighbours as -4 does (the block logic reads a score, after the
    indent's +1, through >= 0, >= 2 and clipping to [-3, 3], with at most 0.75 * 3 of context added), every
    one >= 5 as 5 does. Pass 3 goes last, and reads tokens only until its word terms (which only lower the
    score, -6 at most) put the score on one of those sides: a line already <= -4 or >= 11 skips it, one that
    6 (12) words take to <= -4 stops there. 10-16 ms less on SlimPajama x8 (interleaved runs; pass 3's tokens
    mostly sit in short lines whose scores stay between the bounds: the rest of pass 3 is still ~48 ms)."""
    i = ls
    while i < de:  # leading whitespace
        c = b[np.uint64(i)]  # unsigned: no wraparound test
        if c == 10:
            break
        k, w = _class_at(b, ct, i)
        if not k & _SPACE:
            break
        i += w
    st = i
    le, en, n_cont, symbols, orf, n_pos = _bytes(b, ct, act, act_cat, st, de, pos)
    if en == st:
        return le, st, en, 0, 0, 0, False, False, False
    n = en - st - n_cont
    if n_cont:  # continuation bytes of trailing whitespace are not the line's
        for j in range(en, le):
            n += b[j] >= 128 and b[j] < 0xC0
    tokens, dead_ws, quotes, close_any, close2, marked, backslash = _syntax(
        b, ct, act, act_cat, st, en, pos, n_pos, n_cont
    )
    if first and marked:
        return le, st, en, 0, n, quotes, close_any, close2, marked
    dead = (orf & SENT_DEAD) != 0 or dead_ws
    density = symbols / n
    # the score (the terms of the reference line_score; the word terms of pass 3 last)
    last = b[en - 1]
    p = b[en - 2] if en - st >= 2 else 0
    # "*/" "->" "=>" ":-" ":=" ("){" ");" "};" end with ";{}"), BLOCK_COLON
    two = (
        (p == 42 and last == 47)
        or (p == 45 and last == 62)
        or (p == 61 and last == 62)
        or (p == 58 and (last == 45 or last == 61))
    )
    e = 0
    if (
        last == 59
        or last == 123
        or last == 125
        or two
        or (last == 58 and _walk(b, ct, st, en, sa, sc, trans, at_end, start[_BLOCK, 1, 0]))
    ):
        e = 2
    if e == 0:
        if (
            last == 40
            or last == 91
            or last == 92
            or (p == 32 and last == 61)
            or (p == 38 and last == 38)
            or (p == 124 and last == 124)
            or (en - st >= 3 and b[en - 3] == 32 and p == 100 and last == 111)
            or (
                en - st >= 5
                and b[en - 5] == 32
                and b[en - 4] == 116
                and b[en - 3] == 104
                and p == 101
                and last == 110
            )
        ):  # "([\\", " =", "&&", "||", " do", " then"
            e = 1
        elif last == 44 and _walk(b, ct, st, en, sa, sc, trans, at_end, start[_KV, 1, 0]):
            e = 2
    score = e
    if _walk(b, ct, st, en, sa, sc, trans, at_end, start[_KW, 1, 0]):
        score += 2
    if _search_from(b, ct, act, act_cat, pos, n_pos, en, sa, sc, trans, at_end, start[_OPS, 1, 0]):
        score += 1
    if tokens:
        score += 1 if tokens < 3 else 2
    if density > 0.4:
        score += 2
    elif density > 0.2:
        score += 1
    if not dead and _sentence64(b, bw, st, en):
        score -= 2
    if backslash and last != 59 and _walk(b, ct, st, en, sa, sc, trans, at_end, start[_LATEX, 1, 0]):
        score -= 3
    t1 = 0
    if density < 0.12:
        t1 = -2 if (last == 46 or last == 63 or last == 33 or last == 34 or last == 39 or last == 41) else -1
    t2 = -2 if density < 0.08 else 0
    w_stop = 33  # pass 3 reads at most 32 tokens: never
    if not exact:  # labels only: every score <= _LOW (>= _HIGH) labels alike; the word terms only lower it
        if score <= _LOW or score - 6 >= _HIGH:
            w_stop = 0
        elif score + t1 <= _LOW:
            w_stop = 6
        elif score + t1 + t2 <= _LOW:
            w_stop = 12
    if w_stop == 0:
        return le, st, en, score, n, quotes, close_any, close2, marked
    words, alpha, stop = _words(b, bw, ct, st, en, stop_keys, stop_mult, density < 0.12, w_stop)
    if words >= 6:
        score += t1
    if words >= 12:
        score += t2
    if stop >= 2 and stop * 5 >= alpha:
        score -= 2 if stop >= 4 else 1
    return le, st, en, score, n, quotes, close_any, close2, marked


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _substitute(b, ct, st, en, tmp, out):  # pragma: no cover - compiled
    """``MD_LINK.sub("x", INLINE_CODE.sub("x", line))`` of ``b[st:en]`` into ``out``; returns its length."""
    m = 0
    i = st
    while i < en:  # INLINE_CODE `[^`]+`
        if b[i] == 96 and i + 1 < en and b[i + 1] != 96:
            j = i + 1
            while j < en and b[j] != 96:
                j += 1
            if j < en:
                tmp[m] = 120
                m += 1
                i = j + 1
                continue
        tmp[m] = b[i]
        m += 1
        i += 1
    o = 0
    i = 0
    while i < m:  # MD_LINK !?\[[^\]]*\]\([^)\s]*\)
        j = i + 1 if tmp[i] == 33 and i + 1 < m and tmp[i + 1] == 91 else i
        if tmp[j] == 91:
            k = j + 1
            while k < m and tmp[k] != 93:
                k += 1
            if k + 1 < m and tmp[k + 1] == 40:
                q = k + 2
                while q < m and tmp[q] != 41:
                    kq, wq = _class_at(tmp, ct, q)
                    if kq & _SPACE:
                        break
                    q += wq
                if q < m and tmp[q] == 41:
                    out[o] = 120
                    o += 1
                    i = q + 1
                    continue
        out[o] = tmp[i]
        o += 1
        i += 1
    return o


@njit(cache=True, nogil=True, _nrt=False)
def _scan_sub(
    b, bw, ct, act, act_cat, ls, de, sa, sc, trans, at_end, start, stop_keys, stop_mult, pos, first, exact
):  # noqa: E501  # pragma: no cover - compiled
    """:func:`_scan`, not inlined: the Markdown-substituted copy of a line (few lines have one), and every line
    of :func:`score_lines`. With ``_scan`` inlined only once, into :func:`_line`'s first scan, compiling
    ``label_docs`` without a cache takes ~35 CPU s (50.5 before, round 8) and ``score_lines`` ~24 (47.1); the
    kernel's speed is unchanged (111.1 / 111.6 against 111.5 / 111.2 ms, interleaved). One ``_scan`` call in a
    loop over the line and its copy (both inlined at one site) compiled in ~24 s but ran 120.6 against 107.9
    ms: dropped."""
    return _scan(
        b, bw, ct, act, act_cat, ls, de, sa, sc, trans, at_end, start, stop_keys, stop_mult, pos, first, exact
    )


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _line(
    b,
    bw,
    ct,
    act,
    act_cat,
    ls,
    de,
    sa,
    sc,
    trans,
    at_end,
    start,
    stop_keys,
    stop_mult,
    tmp,
    sub,
    subw,
    pos,
    exact,
):  # noqa: E501  # pragma: no cover
    """:func:`_scan` of the line at ``ls``, the score taken from its Markdown-substituted copy when it has one.

    Both inlined into :func:`_doc` (round 7): a call passes each array argument as 7-9 machine words on the stack
    (the 15 arrays of ``_line`` and the 13 of ``_scan`` were ~200 pushes a line, blank ones included); the
    kernel -14 to -19 ms on SlimPajama x8 (interleaved runs). :func:`_syntax`, :func:`_sentence64`,
    :func:`_words` and :func:`_substitute` are inlined too: together -4 to -8 ms more (two builds each, four
    runs), one at a time within +-2 ms; the ``_walk`` calls (``COMMENT``, ``KEYWORD_START``) inlined as well
    measured no better: not done. The cost: compiling ``label_docs`` without a cache took ~52 CPU s (~19 s
    before the inlining); round 8 scores the substituted copy through :func:`_scan_sub`: ~35 s."""
    le, st, en, score, n, quotes, close_any, close2, marked = _scan(
        b, bw, ct, act, act_cat, ls, de, sa, sc, trans, at_end, start, stop_keys, stop_mult, pos, True, exact
    )
    if marked:
        m = _substitute(b, ct, st, en, tmp, sub)
        score = _scan_sub(sub, subw, ct, act, act_cat, 0, m, sa, sc, trans, at_end, start, stop_keys, stop_mult,
                          pos, False, exact)[3]  # fmt: skip
    return le, st, en, score, n, quotes, close_any, close2


@njit(cache=True, nogil=True, _nrt=False)
def _quick(a, ds, de, chars, sym, pair, hints, hint_len, hint_at):  # pragma: no cover - compiled
    """``quick_no_code`` of ``a[ds:de]`` (``chars`` characters, ``de > ds``): no hint string, and few
    ``QUICK_SYMBOLS``.

    One table lookup per byte pair: ``pair`` marks, for each hint, the rarest pair of bytes in it (at offset
    ``hint_at``), so a hint is compared in full only where that pair occurs; symbols counted branch-free. Keyed
    on each hint's first character before (the ``i`` of ``import `` is 7% of prose): 20 -> 13 ms for the 6016
    documents of SlimPajama x8. It stops as soon as the symbols reach the share (the answer is then False
    whatever follows): 11.7 -> 10.5 ms (round 4). Round 8: the byte loop is an inner loop that leaves only for
    a key pair, on an unsigned index: the old loop's ~17 instructions a byte reloaded 5 values from the stack
    and kept its position in memory (~4.7 cycles a byte); the screen alone 10.3-10.5 -> 6.7-7.0 ms (all 6016
    documents, ``quick_screen``), the kernel -1.5 / -3.0 ms. A 32 x 32 pair table on byte classes (L1-resident
    instead of 128 KB) with the old loop measured +1.3 ms: dropped.
    """
    count = 0
    # count < _QUICK_SHARE * chars exactly while count < limit
    limit = np.int64(np.ceil(_QUICK_SHARE * chars))
    one = np.uint64(1)
    i = np.uint64(ds)
    end = np.uint64(de - 1)
    while i < end:
        m = 0
        while i < end:  # the hot loop: few live values, unsigned index (no wraparound test)
            c = a[i]
            count += sym[c]
            if count >= limit:
                return False
            m = pair[(np.uint64(c) << np.uint64(8)) | np.uint64(a[i + one])]
            if m:
                break
            i += one
        if m:
            k = np.int64(i)
            for h in range(hints.shape[0]):
                if (m >> h) & 1:
                    s = k - hint_at[h]
                    n = hint_len[h]
                    if s >= ds and s + n <= de:
                        ok = True
                        for j in range(n):
                            if a[s + j] != hints[h, j]:
                                ok = False
                                break
                        if ok:
                            return False
            i += one
    count += sym[a[de - 1]]
    return count < _QUICK_SHARE * chars


@njit(cache=True, nogil=True, _nrt=False)
def _doc(
    a,
    aw,
    ds,
    de,
    ct,
    act,
    act_cat,
    sa,
    sc,
    trans,
    at_end,
    start,
    stop_keys,
    stop_mult,
    tmp,
    sub,
    subw,
    pos,
    labels,
    size,
    eff,
    scored,
    block,
    neutral,
    exact,
):  # noqa: E501  # pragma: no cover
    """``label_lines`` of document ``a[ds:de]`` into ``labels``/``size``; returns (lines, code chars, chars);
    with ``exact`` False the line scores are only exact where they can change a label (see :func:`_scan`)."""
    n_lines = m = n_neutral = n_blocks = 0
    in_fence = in_doc = in_block = prev_code = False
    prev_blank = True
    ls = ds
    while True:
        le, st, en, score, n, quotes, close_any, close2 = _line(
            a,
            aw,
            ct,
            act,
            act_cat,
            ls,
            de,
            sa,
            sc,
            trans,
            at_end,
            start,
            stop_keys,
            stop_mult,
            tmp,
            sub,
            subw,
            pos,
            exact,
        )
        li = n_lines
        n_lines += 1
        size[li] = n
        if en == st:
            labels[li] = -1
            if not prev_blank:
                n_blocks += 1
            prev_blank = True
        else:
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
            else:
                if (
                    in_doc
                    or in_block
                    or quotes
                    or (
                        not _walk(a, ct, st, en, sa, sc, trans, at_end, start[_CGUARD, 1, 0])
                        and _walk(a, ct, st, en, sa, sc, trans, at_end, start[_COMMENT, 1, 0])
                    )
                ):
                    opens = en - st >= 2 and a[st] == 47 and a[st + 1] == 42 and not close2
                    in_doc = in_doc != (quotes % 2 == 1)
                    in_block = (in_block or opens) and not (close2 if opens else close_any)
                    neutral[n_neutral] = li
                    n_neutral += 1
                    labels[li] = 0
                    prev_blank = False
                else:
                    if (a[ls] == 9 or (a[ls] == 32 and a[ls + 1] == 32)) and (prev_blank or prev_code):
                        score += 1  # an indented line after a blank or a code line ("  " or "\t")
                    eff[li] = score
                    scored[m] = li
                    block[m] = n_blocks
                    m += 1
                    labels[li] = 1 if score >= _CODE_SCORE else 0
                    prev_blank = False
                    prev_code = score >= _CODE_SCORE
        if le >= de:
            break
        ls = le + 1
    # context: the nearest scored neighbours in the same block pull a line towards their side (scores, not labels)
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
        labels[scored[k]] = 1 if eff[scored[k]] + _WEIGHT * ctx >= _CODE_SCORE else 0
    # a weak line sandwiched between code lines belongs to the block
    for k in range(1, m - 1):
        i = scored[k]
        if labels[i] == 0 and eff[i] >= 0 and labels[scored[k - 1]] == 1 and labels[scored[k + 1]] == 1:
            labels[i] = 1
    # a document that is mostly code: ambiguous lines are code too
    if m:
        n_code = 0
        for k in range(m):
            n_code += labels[scored[k]] == 1
        if n_code >= _PRIOR * m:
            for k in range(m):
                if eff[scored[k]] >= _AMBIGUOUS:
                    labels[scored[k]] = 1
    # comments and docstrings follow their context
    if n_neutral and m:
        pos = 0
        for t in range(n_neutral):
            i = neutral[t]
            while pos < m and scored[pos] < i:
                pos += 1
            before_ok = pos == 0 or labels[scored[pos - 1]] != 0
            after_ok = pos == m or labels[scored[pos]] != 0
            labels[i] = 1 if (before_ok and after_ok) else 0
    code = total = 0
    for li in range(n_lines):
        if labels[li] >= 0:
            total += size[li]
            if labels[li] == 1:
                code += size[li]
    return n_lines, code, total


@njit(cache=True, nogil=True)
def label_docs(
    a,
    bounds,
    chars,
    screen,
    want_labels,
    exact,
    ct,
    act,
    act_cat,
    sa,
    sc,
    trans,
    at_end,
    start,
    stop_keys,
    stop_mult,
    sym,
    pair,
    hints,
    hint_len,
    hint_at,
):  # noqa: E501  # pragma: no cover
    """(code chars, non-blank chars) per document, and the labels of all their lines when ``want_labels``."""
    n_docs = bounds.shape[0] - 1
    code = np.zeros(n_docs, dtype=np.int64)
    total = np.zeros(n_docs, dtype=np.int64)
    longest = 0
    for d in range(n_docs):
        longest = max(longest, bounds[d + 1] - bounds[d])
    n_out = 0
    if want_labels:
        for i in range(a.shape[0]):
            n_out += a[i] == 10
        n_out += n_docs
    out = np.empty(n_out, dtype=np.int8)
    tmp = np.empty(longest, dtype=np.uint8)
    sub = np.empty(longest + 8, dtype=np.uint8)
    aw, subw = _words_of(a), _words_of(sub)
    pos = np.empty(longest + 1, dtype=np.int64)
    labels = np.empty(longest + 1, dtype=np.int8)
    size = np.empty(longest + 1, dtype=np.int64)
    eff = np.empty(longest + 1, dtype=np.int64)
    scored = np.empty(longest + 1, dtype=np.int64)
    block = np.empty(longest + 1, dtype=np.int64)
    neutral = np.empty(longest + 1, dtype=np.int64)
    at = 0
    for d in range(n_docs):
        ds, de = bounds[d], bounds[d + 1]
        if screen and (de == ds or _quick(a, ds, de, chars[d], sym, pair, hints, hint_len, hint_at)):
            continue
        n_lines, code[d], total[d] = _doc(
            a, aw, ds, de, ct, act, act_cat, sa, sc, trans, at_end, start, stop_keys, stop_mult, tmp, sub, subw, pos,
            labels,
            size, eff, scored, block, neutral, exact,
        )  # fmt: skip
        if want_labels:
            out[at : at + n_lines] = labels[:n_lines]
            at += n_lines
    return code, total, out


@njit(cache=True, nogil=True)
def quick_screen(a, bounds, chars, sym, pair, hints, hint_len, hint_at):  # pragma: no cover - compiled
    """The compiled ``quick_no_code`` of each document (False for an empty one, as ``quick_no_code``)."""
    n_docs = bounds.shape[0] - 1
    out = np.zeros(n_docs, dtype=np.bool_)
    for d in range(n_docs):
        if bounds[d + 1] > bounds[d]:
            out[d] = _quick(a, bounds[d], bounds[d + 1], chars[d], sym, pair, hints, hint_len, hint_at)
    return out


@njit(cache=True, nogil=True)
def score_lines(
    a, exact, ct, act, act_cat, sa, sc, trans, at_end, start, stop_keys, stop_mult
):  # pragma: no cover
    """The line score of each line of ``a`` (split on ``\\n``, stripped; 0 for blank lines); without ``exact``
    as the labels-only path computes it (exact unless both it and the exact score are <= _LOW or >= _HIGH)."""
    n = 1
    for i in range(a.shape[0]):
        n += a[i] == 10
    out = np.zeros(n, dtype=np.int64)
    b = a.copy()  # mutable, as sub: one compiled _scan_sub serves both (not inlined here: compile time)
    tmp = np.empty(a.shape[0], dtype=np.uint8)
    sub = np.empty(a.shape[0] + 8, dtype=np.uint8)
    bw, subw = _words_of(b), _words_of(sub)
    pos = np.empty(a.shape[0] + 1, dtype=np.int64)
    de = a.shape[0]
    ls = li = 0
    while li < n:
        le, st, en, score, _, _, _, _, marked = _scan_sub(
            b,
            bw,
            ct,
            act,
            act_cat,
            ls,
            de,
            sa,
            sc,
            trans,
            at_end,
            start,
            stop_keys,
            stop_mult,
            pos,
            True,
            exact,
        )
        if marked:
            m = _substitute(b, ct, st, en, tmp, sub)
            score = _scan_sub(sub, subw, ct, act, act_cat, 0, m, sa, sc, trans, at_end, start, stop_keys, stop_mult,
                              pos, False, exact)[3]  # fmt: skip
        out[li] = score
        li += 1
        ls = le + 1
    return out


@njit(cache=True, nogil=True)
def unknown_codepoints(a, bounds, chars, ct, unknown):  # pragma: no cover - compiled
    """The distinct codepoints of the non-ASCII documents whose class is ``unknown`` (marked ``unknown - 1``).

    The first pass skips 8 bytes at a time where none is from 128 up (most non-ASCII documents are ASCII but
    for a few quotes and dashes): ~3.9 -> ~1.5 ms a pass over SlimPajama x8."""
    n = 0
    words = a[: a.shape[0] // 8 * 8].view(np.uint64)
    high = np.uint64(0x8080808080808080)
    for d in range(bounds.shape[0] - 1):
        if bounds[d + 1] - bounds[d] == chars[d]:
            continue  # ASCII
        i, de = bounds[d], bounds[d + 1]
        while i < de:
            if i % 8 == 0 and i + 8 <= de and not words[i // 8] & high:
                i += 8
                continue
            if a[i] >= 0xC0:
                n += ct[_decode(a, i)[0]] == unknown
            i += 1
    out = np.empty(n, dtype=np.int64)
    m = 0
    if n:
        for d in range(bounds.shape[0] - 1):
            for i in range(bounds[d], bounds[d + 1]):
                if a[i] >= 0xC0:
                    cp = _decode(a, i)[0]
                    if ct[cp] == unknown:
                        ct[cp] = unknown - 1
                        out[m] = cp
                        m += 1
    return out[:m]


@njit(cache=True, nogil=True)
def sentence_lines(a):  # pragma: no cover - compiled
    """:func:`_sentence` of each line of ``a`` (split on ``\\n``, not stripped; False for an empty one), from
    :func:`_sentence64` where the line's bytes are all of ``SENTENCE``'s alphabet (as in :func:`_scan`)."""
    n = 1
    for i in range(a.shape[0]):
        n += a[i] == 10
    out = np.zeros(n, dtype=np.bool_)
    aw = _words_of(a)
    ls = 0
    for li in range(n):
        le = ls
        alphabet = True
        while le < a.shape[0] and a[le] != 10:
            alphabet &= _SENT_BITS[a[le]] != 0
            le += 1
        if le > ls:
            out[li] = _sentence64(a, aw, ls, le) if alphabet else _sentence(a, ls, le)
        ls = le + 1
    return out


@njit(cache=True, nogil=True)
def walk_lines(a, ct, sa, sc, trans, at_end, state):  # pragma: no cover - compiled
    """The verdict of the DFA starting in ``state`` on each line of ``a`` (split on ``\\n``, not stripped)."""
    n = 1
    for i in range(a.shape[0]):
        n += a[i] == 10
    out = np.zeros(n, dtype=np.bool_)
    ls = 0
    for li in range(n):
        le = ls
        while le < a.shape[0] and a[le] != 10:
            le += 1
        out[li] = _walk(a, ct, ls, le, sa, sc, trans, at_end, state)
        ls = le + 1
    return out
