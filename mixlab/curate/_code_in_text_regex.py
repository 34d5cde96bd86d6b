"""Regular expressions of the code-in-text rules, run once over many lines instead of once per line.

Contract: for a pattern of :mod:`mixlab.curate._code_in_text_rules` applied to single lines (``match`` or
``search``), :func:`line_flags` over the lines joined with ``\\n`` gives one flag per line that is True exactly
where the pattern matches that line. :func:`line_safe` rewrites the pattern so that no match can cross a newline
(``\\s`` -> ``[^\\S\\n]``, ``\\W`` -> ``[^\\w\\n]``, negated classes exclude ``\\n``; a positive class that
could match one is refused) and, for ``match``, prefixes it with ``\\n`` under ``re.M`` (a literal prefix: ``re``
jumps from line start to line start); on a line without ``\\n`` the rewrite matches exactly where the original
does. :func:`candidate_flags` runs the pattern over a subset of lines (those a necessary condition lets through).

For ``KEYWORD_START`` (about a hundred alternatives, ~1 us a line) that condition is :func:`start_screen`, read
off ``re``'s own parse tree: a line can match an alternative only if it starts with the alternative's literal
prefix, or else with one of its possible first characters, and holds every character the alternative must
consume (literals outside alternations and optional parts). :func:`_screen` checks it for all lines in numba;
most prose lines fail it for every alternative and never reach the regex. Equality with the rules is tested in
``tests/test_code_in_text_fast.py``.
"""

from __future__ import annotations

import operator
import re

import numpy as np
from numba import njit

try:
    from re import _parser as _sre  # Python >= 3.11
except ImportError:  # pragma: no cover
    import sre_parse as _sre  # type: ignore[no-redef]

from mixlab.curate import _code_in_text_rules as R


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


def first_chars(pattern: str) -> frozenset[int] | None:
    """The characters a match of ``pattern`` can start with, from ``re``'s parse tree; None when any may.

    Exact sets only: literals, literal classes and ranges, alternations, groups and repeats of at least one
    (zero-width lookaheads and anchors are skipped); a category (``\\w``), ``.``, a negated class, a repeat
    that may be empty or an anchor-only start all give None.
    """
    return _first_of(list(_sre.parse(pattern)))


def _first_of(items: list) -> frozenset[int] | None:
    for op, av in items:
        name = str(op)
        if name in ("ASSERT_NOT", "ASSERT", "AT"):  # zero-width: they only restrict where a match starts
            continue
        if name == "LITERAL":
            return frozenset((av,))
        if name == "IN":
            out: set[int] = set()
            for sub_op, sub_av in av:
                if str(sub_op) == "LITERAL":
                    out.add(sub_av)
                elif str(sub_op) == "RANGE":
                    out.update(range(sub_av[0], sub_av[1] + 1))
                else:
                    return None
            return frozenset(out)
        if name == "BRANCH":
            sets = [_first_of(list(alt)) for alt in av[1]]
            return None if any(x is None for x in sets) else frozenset().union(*sets)
        if name == "SUBPATTERN":
            return _first_of(list(av[-1]))
        if name in ("MAX_REPEAT", "MIN_REPEAT") and av[0] >= 1:
            return _first_of(list(av[2]))
        return None
    return None


def _required(items: list) -> set[int]:
    """Characters every match of ``items`` consumes: literals outside alternations, classes and optional parts."""
    out: set[int] = set()
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            out.add(av)
        elif name == "SUBPATTERN":
            out |= _required(list(av[-1]))
        elif name in ("MAX_REPEAT", "MIN_REPEAT") and av[0] >= 1:
            out |= _required(list(av[2]))
    return out


def _alternatives(items: list) -> list[list]:
    """The top-level alternatives of ``items`` (leading anchors dropped, a leading alternation distributed)."""
    while items and str(items[0][0]) == "AT":
        items = items[1:]
    if items and str(items[0][0]) == "BRANCH":
        return [alt for branch in items[0][1][1] for alt in _alternatives(list(branch) + items[1:])]
    if items and str(items[0][0]) == "SUBPATTERN" and len(items[0][1][-1]) == 1:
        return _alternatives(list(items[0][1][-1]) + items[1:])
    return [items]


def start_screen(pattern: str) -> tuple[np.ndarray, ...]:
    """Tables of a necessary condition for ``pattern.match`` on a line, one row per alternative: the literal
    prefix it starts with, else the characters it may start with, and the (ASCII) characters it must contain."""
    alts = _alternatives(list(_sre.parse(pattern)))
    required = [sorted(c for c in _required(alt) if c < 128) for alt in alts]
    universe = sorted({c for req in required for c in req})[:63]  # a character left out is just not required
    bit = {c: 1 << k for k, c in enumerate(universe)}
    char_bit = np.zeros(128, dtype=np.int64)
    for c, b in bit.items():
        char_bit[c] = b
    n = len(alts)
    prefixes = [[av for op, av in alt[: next((k for k, (op, _) in enumerate(alt) if str(op) != "LITERAL"), len(alt))]]
                for alt in alts]  # fmt: skip
    width = max(1, max(len(p) for p in prefixes))
    prefix = np.zeros((n, width), dtype=np.int64)
    prefix_len = np.zeros(n, dtype=np.int64)
    first = np.zeros((n, 128), dtype=np.bool_)
    first_any = np.zeros(n, dtype=np.bool_)  # may start with any character, non-ASCII too
    req = np.zeros(n, dtype=np.int64)
    for k, alt in enumerate(alts):
        prefix[k, : len(prefixes[k])] = prefixes[k]
        prefix_len[k] = len(prefixes[k])
        f = _first_of(alt)
        if f is None:
            first_any[k] = True
            first[k, :] = True
        else:
            first[k, [c for c in f if c < 128]] = True
        for c in required[k]:
            req[k] |= bit.get(c, 0)
    # the alternatives that may start with each ASCII character (row 128: any non-ASCII one), as CSR arrays
    rows = [[k for k in range(n) if first[k, c]] for c in range(128)] + [list(np.flatnonzero(first_any))]
    by_first = np.array([k for row in rows for k in row], dtype=np.int64)
    by_first_start = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(row) for row in rows], out=by_first_start[1:])
    return char_bit, prefix, prefix_len, first, first_any, req, by_first, by_first_start


@njit(cache=True, nogil=True)
def _screen(a, starts, ends, char_bit, prefix, prefix_len, first, first_any, req, by_first, by_first_start):  # noqa: E501  # pragma: no cover
    """Lines on which some alternative's prefix, first character and required characters all fit."""
    out = np.zeros(starts.shape[0], dtype=np.bool_)
    for li in range(starts.shape[0]):
        st, en = starts[li], ends[li]
        if en == st:
            continue
        mask = 0
        for i in range(st, en):
            if a[i] < 128:
                mask |= char_bit[a[i]]
        c0 = a[st]
        row = c0 if c0 < 128 else 128
        for t in range(by_first_start[row], by_first_start[row + 1]):
            k = by_first[t]
            if (mask & req[k]) != req[k]:
                continue
            m = prefix_len[k]
            if m:
                if en - st < m:
                    continue
                ok = True
                for j in range(m):
                    if a[st + j] != prefix[k, j]:
                        ok = False
                        break
                if not ok:
                    continue
            elif not (first_any[k] or (c0 < 128 and first[k, c0])):
                continue
            out[li] = True
            break
    return out


def _first_table(pattern: str) -> np.ndarray:
    first = first_chars(pattern)
    if first is None or max(first) >= 128:
        raise ValueError(f"{pattern!r}: no ASCII first-character set (update the compiled detector)")
    table = np.zeros(128, dtype=np.bool_)
    table[sorted(first)] = True
    return table


KEYWORD_START = line_safe(R.KEYWORD_START.pattern, True)
KEY_VALUE = line_safe(R.KEY_VALUE.pattern, True)
COMMENT = line_safe(R.COMMENT.pattern, True)
LATEX = line_safe(R.LATEX.pattern, False)

_COMMENT_FIRST = _first_table(R.COMMENT.pattern)  # "#", "/", "*", "-", "%", ";", "=", "|", "+", "<", "(", "!"
if first_chars(R.LATEX.pattern) != {92} or not R.KEY_VALUE.pattern.endswith(",$"):
    raise ValueError(
        "LATEX must start with a backslash and KEY_VALUE end with ',$': update the compiled detector"
    )
_KEYWORD_SCREEN = start_screen(R.KEYWORD_START.pattern)
_START = operator.methodcaller("start")


def line_flags(pattern: re.Pattern[str], text: str, starts: np.ndarray, at_line_start: bool) -> np.ndarray:
    """One flag per line: ``pattern`` (from :func:`line_safe`) matches on it (at its start)."""
    flags = np.zeros(starts.shape[0], dtype=np.bool_)
    if at_line_start:
        pos = np.fromiter(map(_START, pattern.finditer("\n" + text)), dtype=np.int64)
        flags[np.searchsorted(starts, pos)] = True
    else:
        pos = np.fromiter(map(_START, pattern.finditer(text)), dtype=np.int64)
        flags[np.searchsorted(starts, pos, "right") - 1] = True
    return flags


def candidate_flags(
    pattern: re.Pattern[str], lines: list[str], candidates: np.ndarray, n: int, at_line_start: bool
) -> np.ndarray:
    """:func:`line_flags` of the candidate lines only (the others cannot match), as flags over all ``n`` lines."""
    flags = np.zeros(n, dtype=np.bool_)
    if candidates.shape[0]:
        sub = "\n".join([lines[i] for i in candidates.tolist()])
        sub_starts = np.zeros(candidates.shape[0], dtype=np.int64)
        np.cumsum([len(lines[i]) + 1 for i in candidates[:-1].tolist()], out=sub_starts[1:])
        flags[candidates] = line_flags(pattern, sub, sub_starts, at_line_start)
    return flags


def first_in(a: np.ndarray, starts: np.ndarray, ends: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Indices of the non-empty lines whose first character is in the ASCII ``table``."""
    first = a[np.minimum(starts, a.shape[0] - 1)] if a.shape[0] else np.zeros(0, dtype=a.dtype)
    ok = (ends > starts) & (first < 128)
    return np.flatnonzero(ok & table[np.where(ok, first, 0)])
