"""Frozen reference implementation of the code-in-text line score (the rules before the speed work).

:func:`line_score` is the readable specification of one line's code evidence; the tables it reads and the
logic above single lines (fences, comments, neighbour context, document prior, blocks) live once in
:mod:`mixlab.curate._code_in_text_rules`, shared with the fast module. :mod:`mixlab.curate.code_in_text`
computes exactly the same scores with faster code (C-level token features, a per-document cache of line
scores); ``tests/test_code_in_text_fast.py`` checks that the two agree line by line and document by document on
the labeled set, the embedded sample and generated edge cases. A change of the line rules must be made in both
``line_score`` functions and in :mod:`mixlab.curate._code_in_text_kernel` (the compiled kernel; the few rules
hand-coded there are checked against their pattern strings at import by :mod:`mixlab.curate._code_in_text_scores`);
a change of a regex is picked up by the compiled path (DFAs built from its parse tree; it refuses constructs it
cannot build); a change of the block logic must be mirrored in the kernel's block pass.
"""

from __future__ import annotations

from mixlab.curate import _code_in_text_rules as R


def line_score(line: str) -> int:
    """Code evidence of one non-blank line (higher: more code-like); see the module docstring."""
    s = line.strip()
    if "`" in s:  # Markdown inline code spans are prose's quotations of code
        s = R.INLINE_CODE.sub("x", s) or "x"
    if "](" in s:  # Markdown links [text](url) are prose markup
        s = R.MD_LINK.sub("x", s) or "x"
    n = len(s)
    score = 0
    last = s[-1]
    block_colon = last == ":" and R.BLOCK_COLON.match(s)
    if last in ";{}" or s.endswith(("){", ");", "};", "*/", "->", "=>", ":-", ":=")) or block_colon:
        score += 2
    elif last in "([\\" or s.endswith((" do", " then", " =", "&&", "||")):
        score += 1
    elif last == "," and R.KEY_VALUE.match(s):  # an entry of a hash / dict / map literal
        score += 2
    if R.KEYWORD_START.match(s):
        score += 2
    if R.OPERATORS.search(s):
        score += 1
    tokens = len(R.CAMEL.findall(s))
    if "_" in s:
        tokens += len(R.SNAKE.findall(s))
    if "(" in s:
        tokens += len(R.CALL.findall(s)) + len(R.CLOSE.findall(s))
    if "$" in s:
        tokens += len(R.DOLLAR.findall(s))
    if "[" in s:
        tokens += len(R.INDEX.findall(s))
    if "=" in s:
        tokens += len(R.COMPARE.findall(s))
    if tokens:
        score += 1 if tokens < 3 else 2
    density = (n - len(s.translate(R.DELETE_SYMBOLS))) / n
    if density > 0.4:
        score += 2
    elif density > 0.2:
        score += 1
    words = alpha = stop = 0  # prose-like words, alphabetic tokens, English function words
    for tok in s.split(None, R.MAX_TOKENS)[: R.MAX_TOKENS]:  # a prefix decides; long paragraphs cost no more
        w = tok.strip(R.PUNCT)
        if w.isalpha():
            alpha += 1
            if len(w) > 1 and w[1:].islower():
                words += 1
                if w.lower() in R.STOPWORDS:
                    stop += 1
    if words >= 6 and density < 0.12:
        score -= 2 if last in ".?!\"')" else 1
    if words >= 12 and density < 0.08:
        score -= 2
    if stop >= 2 and stop * 5 >= alpha:
        score -= 2 if stop >= 4 else 1
    if R.SENTENCE.match(s):  # plain words and sentence punctuation only (verse ending with ";")
        score -= 2
    if "\\" in s and R.LATEX.search(s) and not s.endswith(";"):
        score -= 3
    return score


def classify_lines(lines: list[str]) -> list[bool | None]:
    """Label each line: None (blank), True (code), False (prose) (:func:`~mixlab.curate._code_in_text_rules.label_lines`)."""
    return R.label_lines(lines, line_score)


def code_fraction(text: str) -> float:
    """Share of non-blank characters that sit on code lines (0.0 for prose, ~1.0 for source code)."""
    return R.code_fraction(text, classify_lines)


def strip_code(text: str, min_lines: int = 3) -> tuple[str, int]:
    """``text`` without its code blocks (fenced, or runs of >= ``min_lines`` code lines), and how many were removed."""
    return R.strip_blocks(text, classify_lines, min_lines)
