"""Tables of the compiled code-in-text scorer: character classes, the rules' regexes as DFAs, function words.

Contract: everything :mod:`mixlab.curate._code_in_text_kernel` reads besides the text, derived from
:mod:`mixlab.curate._code_in_text_rules` (never a hand copy of a rule that could drift: a rule the kernel codes
by hand is checked against the pattern it was written for, and a change raises ``ValueError`` here).

- Character classes, one byte per codepoint, as Python's ``re`` (``\\s``, ``\\w``, ``\\d``) and ``str``
  methods see them (:func:`char_class`): a table over all of Unicode (:func:`class_table`), ASCII filled at
  once, every other codepoint the first time a batch holds it (:func:`fill_classes`; 255 = not yet known, a
  value no non-ASCII character has, since ``SYMBOL`` and ``PUNCT`` are ASCII).
- The regexes ``KEYWORD_START``, ``KEY_VALUE``, ``COMMENT`` (guard ``(?!PREPROC)`` + body), ``LATEX``
  (search), ``SENTENCE``, ``OPERATORS`` (search) and ``BLOCK_COLON`` as DFAs over one alphabet
  (:mod:`mixlab.curate._code_in_text_regex`), stacked into one transition table: built once per process on
  first use (:func:`tables`, ~0.2 s). The kernel decides ``SENTENCE`` by its own loop (the pattern is one of
  those checked); the DFA still gives which characters kill it (``SENT_DEAD``).
- Function words packed 5 bits a letter into a multiplicative hash table (no collision: found at build).
- The quick screen's hint strings and symbols (``quick_no_code``), each hint keyed on its rarest pair of
  characters (:func:`hint_keys`) in a table over byte pairs.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

import numpy as np

from mixlab.curate import _code_in_text_regex as X
from mixlab.curate import _code_in_text_rules as R

# character classes, one bit each, as Python's ``re`` (``\\s``, ``\\w``, ``\\d``) and ``str`` methods see them
SPACE, WORD, DIGIT, ALPHA, NOT_LOWER, LOWER, SYMBOL, PUNCT = (1 << k for k in range(8))
# NOT_LOWER: ``("a" + c).islower()`` is False (c is upper- or titlecase); LOWER: ``c.islower()``. So for a
# word w, ``w[1:].islower()`` = no character of w[1:] is NOT_LOWER and one is LOWER.
UNKNOWN = 255
assert (SPACE, WORD, DIGIT) == (X.SPACE, X.WORD, X.DIGIT)


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


@functools.cache
def class_table() -> np.ndarray:
    """uint8 [0x110000]: the class bits of every codepoint met so far (:data:`UNKNOWN` for the others)."""
    table = np.full(0x110000, UNKNOWN, dtype=np.uint8)
    table[:128] = [char_class(chr(c)) for c in range(128)]
    return table


def fill_classes(codepoints: np.ndarray) -> None:
    """Enter the classes of ``codepoints`` (distinct, not yet known) into :func:`class_table`."""
    table = class_table()
    for cp in codepoints.tolist():
        table[cp] = char_class(chr(cp))


# the rules the kernel codes by hand, as they were when it was written
_BY_HAND = {
    "FENCE": r"^\s*(```|~~~)",
    "INLINE_CODE": r"`[^`]+`",
    "MD_LINK": r"!?\[[^\]]*\]\([^)\s]*\)",
    "SNAKE": r"[A-Za-z]_\w",
    "CAMEL": r"[a-z][A-Z]",
    "CALL": r"\w\(",
    "CLOSE": r"\)\s*[;,{:]",
    "DOLLAR": r"\$\w",
    "INDEX": r"\w\[",
    "COMPARE": r"[=<>!]=",
    "SENTENCE": r"[A-Z][A-Za-z'\-]*[,.;:!?\"']*(?: +[A-Za-z'\-]+[,.;:!?\"']*){2,}$",
}
_changed = [name for name, pattern in _BY_HAND.items() if getattr(R, name).pattern != pattern]
if _changed or R.PUNCT != "\"'(),.;:!?" or R.QUICK_SYMBOLS != ";{}=<>_" or R.MAX_TOKENS != 32:
    raise ValueError(
        f"rules changed ({_changed or 'PUNCT/QUICK_SYMBOLS/MAX_TOKENS'}): update the compiled kernel"
    )
if (
    not all(w.isascii() and w.isalpha() and w.islower() for w in R.STOPWORDS)
    or max(map(len, R.STOPWORDS)) != 7
):
    raise ValueError(
        "function words must be ASCII lowercase letters, the longest of 7 (the kernel's _STOP_LEN)"
    )

# the DFAs, in the order of the kernel's ``start`` rows
DFA_NAMES = (
    "KEYWORD_START",
    "KEY_VALUE",
    "COMMENT_GUARD",
    "COMMENT",
    "LATEX",
    "SENTENCE",
    "OPERATORS",
    "BLOCK_COLON",
)
_SEARCH = ("LATEX", "OPERATORS")
STOP_BITS = 9  # 512 slots for the function words
_M64 = (1 << 64) - 1


class Tables(NamedTuple):
    """Everything the kernel reads besides the text (see the module docstring)."""

    sym_ascii: np.ndarray  # uint8 [128]: DFA symbol of an ASCII character
    sym_cat: np.ndarray  # uint8 [8]: DFA symbol of a non-ASCII character, by its SPACE|WORD|DIGIT bits
    trans: np.ndarray  # int32 [states, symbols]: all DFAs; 0 failed, 1 matched
    at_end: np.ndarray  # bool [states]
    start: np.ndarray  # int32 [len(DFA_NAMES), 2, 2]: start state by (at line start, previous is \w)
    act: np.ndarray  # uint8 [128]: what a character triggers in the scan (kernel's TRIG, OPS_START, ... bits)
    act_cat: np.ndarray  # uint8 [8]: the same for a non-ASCII character, by its SPACE|WORD|DIGIT bits
    stop_keys: np.ndarray  # int64 [2**STOP_BITS]: packed function word per hash slot (0: empty)
    stop_mult: np.uint64  # the hash multiplier
    quick_sym: np.ndarray  # int64 [256]: 1 for the bytes of QUICK_SYMBOLS
    quick_pair: np.ndarray  # uint16 [256 * 256]: bit h set at the key byte pair of hint h (:func:`hint_keys`)
    hints: np.ndarray  # int64 [hints, longest]: QUICK_HINTS, zero-padded
    hint_len: np.ndarray  # int64 [hints]
    hint_at: np.ndarray  # int64 [hints]: the offset of the key pair in the hint


# English letters, most frequent first, after space and newline (any other character ranks as rarer)
_COMMON = " \netaoinshrdlcumwfgypbvkjxqz"


def hint_keys(hints: tuple[str, ...]) -> list[int]:
    """The offset of each hint's key pair of characters: the pair whose more common character is rarest (then
    whose other character is), by :data:`_COMMON`; only the speed of the quick screen depends on the choice."""

    def rank(c: str) -> int:
        return _COMMON.find(c.lower()) if c.lower() in _COMMON else len(_COMMON)

    return [
        max(
            range(len(h) - 1),
            key=lambda k: (min(rank(h[k]), rank(h[k + 1])), max(rank(h[k]), rank(h[k + 1]))),
        )
        for h in hints
    ]


def pack_word(word: str) -> int:
    """A lowercase ASCII word as 5 bits a letter (``a`` = 1)."""
    key = 0
    for c in word:
        key = key * 32 + ord(c) - 96
    return key


def stop_slot(key: int, mult: int) -> int:
    return ((key * mult) & _M64) >> (64 - STOP_BITS)


def _stop_hash() -> tuple[np.ndarray, int]:
    keys = [pack_word(w) for w in sorted(R.STOPWORDS)]
    rng = np.random.default_rng(0)
    while True:
        mult = int(rng.integers(1 << 62)) * 2 + 1
        slots = {stop_slot(k, mult) for k in keys}
        if len(slots) == len(keys):
            table = np.zeros(1 << STOP_BITS, dtype=np.int64)
            for k in keys:
                table[stop_slot(k, mult)] = k
            return table, mult


def _acts(alpha: X.Alphabet, ops: X.Dfa, sentence: X.Dfa) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's per-character action bits, the DFA ones read off the DFAs' tables.

    ``OPS_START``: the character moves the ``OPERATORS`` search DFA out of its start state (which it would
    otherwise stay in: no condition on the position, checked), so the walk may begin at the first such
    character. ``SENT_DEAD``: the character fails ``SENTENCE`` from every state, and ``SENTENCE`` only matches
    at the line end (checked), so a line holding one is no sentence.
    """
    from mixlab.curate import _code_in_text_kernel as K

    q0 = int(ops.start[0, 0])
    if not (ops.start == q0).all() or ops.trans[q0, alpha.ascii[ord("a")]] != q0:
        raise ValueError("OPERATORS depends on the position: update the compiled kernel")
    if (sentence.trans[2:] == X.MATCHED).any():
        raise ValueError("SENTENCE can match before the line end: update the compiled kernel")
    ops_start = ops.trans[q0] != q0
    dead = (sentence.trans[2:] == X.FAILED).all(axis=0)
    act = np.zeros(128, dtype=np.uint8)
    for c in range(128):
        ch = chr(c)
        sym = alpha.ascii[c]
        space = ch.isspace()
        act[c] = (
            (K.TRIG if ch in "()[$_=\"'/`\\" else 0)
            | (K.OPS_START if ops_start[sym] else 0)
            | (K.SENT_DEAD if dead[sym] and not space else 0)
            | (K._WS_DEAD if dead[sym] and space else 0)
            | (K.LOWER_AZ if "a" <= ch <= "z" else 0)
            | (K.UPPER_AZ if "A" <= ch <= "Z" else 0)
            | (K._ACT_SYMBOL if ch in R.SYMBOLS else 0)
            | (K._ACT_SPACE if space else 0)
        )
    act_cat = np.array(
        [(K.OPS_START if ops_start[s] else 0) | (K.SENT_DEAD if dead[s] else 0) for s in alpha.cat.tolist()],
        dtype=np.uint8,
    )
    return act, act_cat


@functools.cache
def tables() -> Tables:
    """The kernel's tables, built on first use."""
    flagged = [name for name in DFA_NAMES if name != "COMMENT_GUARD" and getattr(R, name).flags != re.UNICODE]
    if flagged:
        raise ValueError(f"{flagged}: compiled with flags, which the DFAs do not support")
    guard, body = X.split_guard(R.COMMENT.pattern)
    if guard is None:
        raise ValueError("COMMENT no longer starts with (?!PREPROC): update the compiled kernel")
    parsed = {
        name: (X.parse(getattr(R, name).pattern), name in _SEARCH)
        for name in DFA_NAMES
        if not name.startswith("COMMENT")
    }
    parsed["COMMENT_GUARD"] = (guard, False)
    parsed["COMMENT"] = (body, False)
    alpha, dfas = X.compile_dfas(parsed, [char_class(chr(c)) for c in range(128)])
    rows, ends, start = [], [], np.zeros((len(DFA_NAMES), 2, 2), dtype=np.int32)
    base = 2  # states 0 and 1 (failed, matched) are shared; each DFA's own states follow the previous ones
    for k, name in enumerate(DFA_NAMES):
        d = dfas[name]
        own = d.trans[2:]
        rows.append(np.where(own >= 2, own + base - 2, own))
        ends.append(d.at_end[2:])
        start[k] = np.where(d.start >= 2, d.start + base - 2, d.start)
        base += own.shape[0]
    n_syms = alpha.word.shape[0]
    trans = np.concatenate([np.array([[0] * n_syms, [1] * n_syms])] + rows).astype(np.int32)
    at_end = np.concatenate([np.array([False, True])] + ends)
    act, act_cat = _acts(alpha, dfas["OPERATORS"], dfas["SENTENCE"])
    stop_keys, mult = _stop_hash()
    if not all(h.isascii() and len(h) >= 2 for h in R.QUICK_HINTS) or len(R.QUICK_HINTS) > 16:
        raise ValueError("QUICK_HINTS: the quick screen needs at most 16 ASCII hints of 2 characters or more")
    hints = [[ord(c) for c in h] for h in R.QUICK_HINTS]
    width = max(map(len, hints))
    at = hint_keys(R.QUICK_HINTS)
    pair = np.zeros(1 << 16, dtype=np.uint16)
    for k, (h, j) in enumerate(zip(hints, at, strict=True)):
        pair[(h[j] << 8) | h[j + 1]] |= 1 << k
    sym = np.zeros(256, dtype=np.int64)
    sym[[ord(c) for c in R.QUICK_SYMBOLS]] = 1
    return Tables(
        alpha.ascii, alpha.cat, trans, at_end, start, act, act_cat, stop_keys, np.uint64(mult), sym, pair,
        np.array([h + [0] * (width - len(h)) for h in hints], dtype=np.int64),
        np.array([len(h) for h in hints], dtype=np.int64), np.array(at, dtype=np.int64),
    )  # fmt: skip
