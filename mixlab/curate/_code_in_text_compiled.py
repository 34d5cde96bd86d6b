"""Compiled code-in-text detector: batches of Python strings in, code characters and line labels out.

Contract: :func:`code_chars` gives, for each text, the characters on code lines and on non-blank lines of
``text.split("\\n")`` (both 0 for an empty text or one that ``quick_no_code`` skips, with ``screen``), exactly
as :func:`mixlab.curate._code_in_text_rules.fraction_on_code` over ``label_lines`` with the reference
:func:`~mixlab.curate._code_in_text_reference.line_score`; :func:`labels_of` the labels of one text (int8: -1
blank, 0 prose, 1 code); :func:`line_scores` the reference line score of each line; :func:`quick_screen` and
:func:`sentence_flags` the kernel's ``quick_no_code`` and ``SENTENCE.match``. Tested for equality in
``tests/test_code_in_text_fast.py`` (labeled sets, embedded sample, edge and fuzzed lines, Unicode included).

How: the texts of a batch are encoded to UTF-8 one by one and joined (11 ms for the 23.2 M characters of
SlimPajama x8: cheaper than UTF-32, which cost 29 ms with the join), and the batch goes through
:func:`mixlab.curate._code_in_text_kernel.label_docs` once. Before that, the class table learns the non-ASCII
characters the batch holds that it has not met yet (:func:`~mixlab.curate._code_in_text_scores.fill_classes`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from mixlab.curate import _code_in_text_kernel as K
from mixlab.curate import _code_in_text_rules as R
from mixlab.curate._code_in_text_scores import DFA_NAMES, UNKNOWN, class_table, fill_classes, tables

if (R.CODE_SCORE, R.CONTEXT_WEIGHT, R.DOC_PRIOR, R.AMBIGUOUS) != (
    K._CODE_SCORE,
    K._WEIGHT,
    K._PRIOR,
    K._AMBIGUOUS,
):
    raise ValueError("the block logic's thresholds changed: update mixlab.curate._code_in_text_kernel")
_LEARNING = threading.Lock()  # one thread at a time marks and fills new classes (the kernels release the GIL)


def _batch(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UTF-8 bytes of ``texts`` end to end, byte bounds and characters per text; classes of new characters."""
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    bounds = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=bounds[1:])
    chars = np.array([len(t) for t in texts], dtype=np.int64)
    a = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    if bounds[-1] != chars.sum():  # non-ASCII characters: learn the classes of new ones
        table = class_table()
        with _LEARNING:
            new = K.unknown_codepoints(a, bounds, chars, table, UNKNOWN)
            if new.shape[0]:
                try:
                    fill_classes(new)
                except BaseException:
                    table[new] = UNKNOWN
                    raise
    return a, bounds, chars


def _args() -> tuple:
    t = tables()
    return (class_table(), t.act, t.act_cat, t.sym_ascii, t.sym_cat, t.trans, t.at_end, t.start, t.stop_keys,
            t.stop_mult)  # fmt: skip


def _screen_args() -> tuple:
    t = tables()
    return t.quick_sym, t.quick_pair, t.hints, t.hint_len, t.hint_at


def quick_screen(texts: Sequence[str]) -> list[bool]:
    """The compiled ``quick_no_code`` of each text (the kernel's quick screen, :func:`code_chars` skips empty texts)."""
    a, bounds, chars = _batch(texts)
    return K.quick_screen(a, bounds, chars, *_screen_args()).tolist()  # type: ignore[no-any-return]


def _run(
    texts: Sequence[str], screen: bool, want_labels: bool, exact: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's (code chars, non-blank chars, labels); ``exact``: every line score computed in full (the
    default skips the work that cannot change a label; the results are the same, tested)."""
    a, bounds, chars = _batch(texts)
    return K.label_docs(  # type: ignore[no-any-return]
        a, bounds, chars, screen, want_labels, exact, *_args(), *_screen_args()
    )


def code_chars(texts: Sequence[str], screen: bool = True) -> tuple[list[int], list[int]]:
    """(characters on code lines, characters on non-blank lines) of each text; see the module docstring."""
    code, total, _ = _run(texts, screen, False)
    return code.tolist(), total.tolist()


def labels_of(text: str) -> np.ndarray:
    """The labels of ``text.split("\\n")`` (int8: -1 blank, 0 prose, 1 code)."""
    return _run([text], False, True)[2]


def line_scores(lines: list[str], exact: bool = True) -> np.ndarray:
    """The reference line score of each stripped line (0 for blank ones); lines must not hold ``\\n``. Without
    ``exact``, the scores the labels-only path computes: a score <= -4 or >= 5 may come out as any other score
    on its side (every such score labels alike; tested)."""
    a, _, _ = _batch(["\n".join(lines)])
    return K.score_lines(a, exact, *_args())  # type: ignore[no-any-return]


def sentence_flags(lines: list[str]) -> list[bool]:
    """The kernel's hand-coded ``SENTENCE.match`` on each line (no ``\\n``)."""
    a, _, _ = _batch(["\n".join(lines)])
    return K.sentence_lines(a).tolist()  # type: ignore[no-any-return]


def dfa_flags(name: str, lines: list[str]) -> list[bool]:
    """The compiled walk of the DFA ``name`` (``DFA_NAMES``) on each line (no ``\\n``): ``match``, or ``search``."""
    t = tables()
    a, _, _ = _batch(["\n".join(lines)])
    state = t.start[DFA_NAMES.index(name), 1, 0]
    return K.walk_lines(a, class_table(), t.sym_ascii, t.sym_cat, t.trans, t.at_end, state).tolist()  # type: ignore[no-any-return]
