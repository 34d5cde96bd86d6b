"""Regular expressions of the code-in-text rules as DFA tables, built from ``re``'s own parse tree.

Contract: for a pattern of :mod:`mixlab.curate._code_in_text_rules` and a line ``s`` without ``\\n``, the walk
of its DFA over ``s`` (``_walk`` of :mod:`mixlab.curate._code_in_text_kernel`) is ``bool(pattern.match(s))``,
or ``bool(pattern.search(s))`` for a DFA built with ``search=True`` (tested on real, edge and fuzzed lines).
No pattern is rewritten by hand: :func:`compile_dfas` reads the rules' pattern strings, so a change of a rule is picked up,
and a construct outside the supported subset raises ``ValueError`` at import instead of matching differently.

Supported (``re.UNICODE`` patterns, no other flag): literals, classes with ranges, negation and the categories
``\\w \\W \\s \\S \\d \\D`` (Unicode, as ``re`` applies them to ``str``), ``.``, alternation, groups, greedy or
lazy repeats (a boolean match does not depend on the order paths are tried: ``re``'s backtracking finds a match
iff one exists, there being no backreference, atomic group or possessive repeat), ``^``, ``$``, ``\\b`` and
lookaheads of one character (``(?![!\\[])``): positional conditions, decided when the next character (or the end
of the line) is read. A leading multi-character negative lookahead (``COMMENT``'s ``(?!PREPROC)``) is a separate
guard DFA: :func:`split_guard`.

How: a Thompson NFA (character edges, free edges, free edges under a condition) and the subset construction.
A DFA state is (set of NFA states, the previous character is ``\\w``, at the line start); reading a symbol first
closes the set under the conditions that hold before it, so reaching the accepting NFA state before reading
jumps to state 1 (``MATCHED``, absorbing); a set that becomes empty is state 0 (``FAILED``, absorbing); a search
DFA restarts the pattern at every position. The alphabet: every ASCII character gets the symbol of its
membership pattern over all classes of all the patterns (plus ``\\w``); a non-ASCII character's membership only
depends on its ``\\s \\w \\d`` bits (literals and ranges of the rules are ASCII: checked), so it maps through an
8-entry table. The rules' eight DFAs are built once per process in 0.19 s (KEYWORD_START: 1,025 states; 91
symbols; first version 1.0 s, before closures were memoized and symbols grouped per state).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:
    from re import _constants as _c  # Python >= 3.11
    from re import _parser as _sre
except ImportError:  # pragma: no cover
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _sre  # type: ignore[no-redef]

FAILED, MATCHED = 0, 1
SPACE, WORD, DIGIT = (
    1,
    2,
    4,
)  # the class bits a non-ASCII character's symbol depends on (as in _code_in_text_scores)
_END = -1  # "the next symbol" at the end of the line
_CATEGORY = {  # category -> (bit, negated)
    "CATEGORY_SPACE": (SPACE, False), "CATEGORY_NOT_SPACE": (SPACE, True),
    "CATEGORY_WORD": (WORD, False), "CATEGORY_NOT_WORD": (WORD, True),
    "CATEGORY_DIGIT": (DIGIT, False), "CATEGORY_NOT_DIGIT": (DIGIT, True),
}  # fmt: skip

Charset = tuple[
    bool, tuple[tuple, ...]
]  # (negated, items: ("lit", c) | ("range", lo, hi) | ("cat", bit, negated))


@dataclass(frozen=True)
class Dfa:
    """Tables of one pattern over the shared alphabet: ``trans[state, symbol]`` (0 failed, 1 matched, absorbing),
    ``at_end[state]`` (matched when the line ends there) and ``start[at_line_start, previous_is_word]``."""

    trans: np.ndarray  # int32 [states, symbols]
    at_end: np.ndarray  # bool [states]
    start: np.ndarray  # int32 [2, 2]


@dataclass(frozen=True)
class Alphabet:
    """Symbol of a character: ``ascii[c]`` for c < 128, else ``cat[bits & 7]`` of its class bits."""

    ascii: np.ndarray  # uint8 [128]
    cat: np.ndarray  # uint8 [8]
    word: np.ndarray  # bool [symbols]


def _charset(op: str, av: object) -> Charset:
    """The character class of one parse item (LITERAL, NOT_LITERAL, ANY, IN, CATEGORY)."""
    if op == "LITERAL":
        return False, (("lit", av),)
    if op == "NOT_LITERAL":
        return True, (("lit", av),)
    if op == "ANY":
        return True, (("lit", 10),)
    if op == "CATEGORY":
        return False, (("cat", *_CATEGORY[str(av)]),)
    negated, items = False, []
    for sub_op, sub_av in av:  # type: ignore[attr-defined]
        name = str(sub_op)
        if name == "NEGATE":
            negated = True
        elif name == "LITERAL":
            items.append(("lit", sub_av))
        elif name == "RANGE":
            items.append(("range", *sub_av))
        elif name == "CATEGORY" and str(sub_av) in _CATEGORY:
            items.append(("cat", *_CATEGORY[str(sub_av)]))
        else:
            raise ValueError(f"unsupported class item {name} {sub_av}")
    return negated, tuple(items)


def _member(cs: Charset, cp: int | None, bits: int) -> bool:
    """``cp`` (None: any non-ASCII character) with class ``bits`` is in ``cs``."""
    negated, items = cs
    hit = False
    for item in items:
        if item[0] == "lit":
            hit = cp == item[1]
        elif item[0] == "range":
            hit = cp is not None and item[1] <= cp <= item[2]
        else:
            hit = bool(bits & item[1]) != item[2]
        if hit:
            break
    return hit != negated


class _Nfa:
    """Thompson NFA: per node, character edges (charset, target), free edges and conditional free edges."""

    def __init__(self) -> None:
        self.edges: list[list[tuple[Charset, int]]] = []
        self.free: list[list[int]] = []
        self.cond: list[list[tuple[tuple, int]]] = []

    def node(self) -> int:
        self.edges.append([])
        self.free.append([])
        self.cond.append([])
        return len(self.free) - 1

    def emit(self, items: list, start: int) -> int:
        """Add the NFA of ``items`` from ``start``; returns its end node."""
        cur = start
        for op, av in items:
            name = str(op)
            if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN", "CATEGORY"):
                cs = _charset(name, av)
                if any(it[0] == "lit" and it[1] >= 128 or it[0] == "range" and it[2] >= 128 for it in cs[1]):
                    raise ValueError("non-ASCII literals are not supported")
                nxt = self.node()
                self.edges[cur].append((cs, nxt))
                cur = nxt
            elif name == "SUBPATTERN":
                if av[1] or av[2]:
                    raise ValueError("inline flags are not supported")
                cur = self.emit(list(av[3]), cur)
            elif name == "BRANCH":
                end = self.node()
                for alt in av[1]:
                    s = self.node()
                    self.free[cur].append(s)
                    self.free[self.emit(list(alt), s)].append(end)
                cur = end
            elif name in ("MAX_REPEAT", "MIN_REPEAT"):
                lo, hi, body = av
                for _ in range(lo):
                    cur = self.emit(list(body), cur)
                if hi == _c.MAXREPEAT:
                    loop = self.node()
                    self.free[cur].append(loop)
                    self.free[self.emit(list(body), loop)].append(loop)
                    cur = loop
                else:
                    for _ in range(hi - lo):
                        end = self.node()
                        self.free[cur].append(end)
                        self.free[self.emit(list(body), cur)].append(end)
                        cur = end
            elif name in ("AT", "ASSERT", "ASSERT_NOT"):
                nxt = self.node()
                self.cond[cur].append((_condition(name, av), nxt))
                cur = nxt
            else:
                raise ValueError(f"unsupported regex construct {name}")
        return cur


def _condition(name: str, av: object) -> tuple:
    if name == "AT":
        at = str(av)
        if at in ("AT_BEGINNING", "AT_BEGINNING_STRING"):
            return ("begin",)
        if at in ("AT_END", "AT_END_STRING"):  # no "\n" in a line: "$" is its end
            return ("end",)
        if at == "AT_BOUNDARY":
            return ("boundary",)
        raise ValueError(f"unsupported anchor {at}")
    direction, sub = av  # type: ignore[misc]
    sub = list(sub)
    if (
        direction != 1
        or len(sub) != 1
        or str(sub[0][0]) not in ("LITERAL", "NOT_LITERAL", "ANY", "IN", "CATEGORY")
    ):
        raise ValueError("only lookaheads of one character are supported (see split_guard)")
    return ("next", _charset(str(sub[0][0]), sub[0][1]), name == "ASSERT")


def parse(pattern: str) -> list:
    """The parse items of ``pattern``; ``ValueError`` for a flag other than ``re.UNICODE`` (``(?i)``, ``(?a)``...)."""
    tree = _sre.parse(pattern)
    if tree.state.flags & ~_c.SRE_FLAG_UNICODE:
        raise ValueError(f"{pattern!r}: flags are not supported")
    return list(tree)


def split_guard(pattern: str) -> tuple[list | None, list]:
    """A pattern ``(?!G)B`` as (G, B) parse items (``match`` = G does not match and B does); else (None, items)."""
    items = parse(pattern)
    if items and str(items[0][0]) == "ASSERT_NOT" and len(list(items[0][1][1])) > 1:
        return list(items[0][1][1]), items[1:]
    return None, items


def _charsets(items: list, out: list[Charset]) -> None:
    for op, av in items:
        name = str(op)
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN", "CATEGORY"):
            out.append(_charset(name, av))
        elif name == "SUBPATTERN":
            _charsets(list(av[3]), out)
        elif name == "BRANCH":
            for alt in av[1]:
                _charsets(list(alt), out)
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            _charsets(list(av[2]), out)
        elif name in ("ASSERT", "ASSERT_NOT"):
            _charsets(list(av[1]), out)


def _alphabet(
    charsets: list[Charset], ascii_bits: list[int]
) -> tuple[Alphabet, list[tuple[int | None, int]]]:
    """Symbols = classes of equal membership; returns the alphabet and one (codepoint, bits) per symbol."""
    word_cs: Charset = (False, (("cat", WORD, False),))
    points = [(c, ascii_bits[c]) for c in range(128)] + [(None, b) for b in range(8)]
    ids: dict[tuple[bool, ...], int] = {}
    reps: list[tuple[int | None, int]] = []
    sym = []
    for cp, bits in points:
        key = tuple(_member(cs, cp, bits) for cs in [word_cs, *charsets])
        if key not in ids:
            ids[key] = len(reps)
            reps.append((cp, bits))
        sym.append(ids[key])
    word = np.array([bool(bits & WORD) for _, bits in reps], dtype=np.bool_)
    alpha = Alphabet(np.array(sym[:128], dtype=np.uint8), np.array(sym[128:], dtype=np.uint8), word)
    return alpha, reps


def _dfa(items: list, search: bool, reps: list[tuple[int | None, int]], word: np.ndarray) -> Dfa:
    """Subset construction over the symbols ``reps`` (see the module docstring)."""
    nfa = _Nfa()
    start = nfa.node()
    accept = nfa.emit(items, start)
    n_nodes, n_syms = len(nfa.free), len(reps)
    reach: list[frozenset[int]] = []  # per node: the nodes its free edges reach (itself included)
    for n in range(n_nodes):
        seen, todo = {n}, [n]
        while todo:
            for t in nfa.free[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        reach.append(frozenset(seen))
    charsets = list(dict.fromkeys(cs for node in nfa.edges for cs, _ in node))
    cs_id = {cs: k for k, cs in enumerate(charsets)}
    syms_of = [[x for x, rep in enumerate(reps) if _member(cs, *rep)] for cs in charsets]
    edges = [[(cs_id[cs], t) for cs, t in node] for node in nfa.edges]
    conds = [[(c, t) for c, t in node] for node in nfa.cond]

    def holds(cond: tuple, at_begin: bool, prev_word: bool, nxt: int) -> bool:
        if cond[0] == "begin":
            return at_begin
        if cond[0] == "end":
            return nxt == _END
        if cond[0] == "boundary":
            return prev_word != (nxt != _END and bool(word[nxt]))
        inside = nxt != _END and _member(cond[1], *reps[nxt])
        return inside == cond[2]

    closures: dict[frozenset[int], frozenset[int]] = {}

    def free_closure(nodes: frozenset[int]) -> frozenset[int]:
        if nodes not in closures:
            closures[nodes] = frozenset().union(*(reach[n] for n in nodes))
        return closures[nodes]

    with_conds: dict[frozenset[int], list[tuple[tuple, int]]] = {}

    def cond_edges(nodes: frozenset[int]) -> list[tuple[tuple, int]]:
        if nodes not in with_conds:
            with_conds[nodes] = [(c, t) for n in nodes for c, t in conds[n] if t not in nodes]
        return with_conds[nodes]

    def close(nodes: frozenset[int], at_begin: bool, prev_word: bool, nxt: int) -> frozenset[int]:
        """``nodes`` (closed under free edges) closed under the conditional edges that hold before ``nxt``."""
        while True:
            more = {t for c, t in cond_edges(nodes) if holds(c, at_begin, prev_word, nxt)}
            if not more:
                return nodes
            nodes = nodes | free_closure(frozenset(more))

    index: dict[tuple, int] = {}
    keys: list[tuple] = []

    def state(nodes: frozenset[int], at_begin: bool, prev_word: bool) -> int:
        kinds = {c[0] for c, _ in cond_edges(nodes)}  # positional bits only where a condition reads them
        k = (nodes, at_begin and "begin" in kinds, prev_word and "boundary" in kinds)
        if k not in index:
            index[k] = len(keys) + 2
            keys.append(k)
        return index[k]

    begin = free_closure(frozenset((start,)))
    starts = np.array(
        [[state(begin, ab, pw) for pw in (False, True)] for ab in (False, True)], dtype=np.int32
    )
    restart = begin if search else frozenset()
    rows: list[list[int]] = []
    at_end: list[bool] = []
    steps: dict[frozenset[int], list[frozenset[int]]] = {}
    while len(rows) < len(keys):
        nodes, ab, pw = keys[len(rows)]
        row = []
        for s in range(n_syms):
            closed = close(nodes, ab, pw, s)
            if accept in closed:
                row.append(MATCHED)
                continue
            if closed not in steps:  # the targets of every symbol from this set, computed once
                groups: dict[int, set[int]] = {}
                for n in closed:
                    for k, t in edges[n]:
                        groups.setdefault(k, set()).add(t)
                sig = [0] * n_syms  # per symbol: which of the set's charsets hold it
                for j, k in enumerate(groups):
                    for x in syms_of[k]:
                        sig[x] |= 1 << j
                targets = list(groups.values())
                by_sig: dict[int, frozenset[int]] = {}
                for x in set(sig):
                    by_sig[x] = free_closure(
                        frozenset().union(*(targets[j] for j in range(len(targets)) if x >> j & 1))
                    )
                steps[closed] = [by_sig[x] for x in sig]
            nxt = steps[closed][s] | restart
            row.append(state(nxt, False, bool(word[s])) if nxt else FAILED)
        rows.append(row)
        at_end.append(accept in close(nodes, ab, pw, _END))
    trans = np.array([[FAILED] * n_syms, [MATCHED] * n_syms, *rows], dtype=np.int32)
    return Dfa(trans, np.array([False, True, *at_end], dtype=np.bool_), starts)


def compile_dfas(
    patterns: dict[str, tuple[list, bool]], ascii_bits: list[int]
) -> tuple[Alphabet, dict[str, Dfa]]:
    """DFAs of parsed patterns ``name -> (items, search)`` over one alphabet; ``ascii_bits``: class bits of 0..127."""
    charsets: list[Charset] = []
    for items, _ in patterns.values():
        _charsets(items, charsets)
    alpha, reps = _alphabet(list(dict.fromkeys(charsets)), ascii_bits)
    return alpha, {name: _dfa(items, search, reps, alpha.word) for name, (items, search) in patterns.items()}
