"""The code-in-text detector's rule tables and block logic, shared by its reference and fast line scorers.

One copy of everything both implementations need: the thresholds (:data:`CODE_SCORE`, :data:`CONTEXT_WEIGHT`,
:data:`DOC_PRIOR`, :data:`AMBIGUOUS`), the regular expressions and character tables of the line rules, and the
logic above single lines: :func:`label_lines` (fences, comments, docstrings, neighbour context, the document
prior), :func:`fraction_on_code`, :func:`code_blocks` and :func:`strip_blocks`, each given the line labels or
a labelling function. Only the line score itself exists more than once: readably in
:mod:`mixlab.curate._code_in_text_reference` (the specification), fast in Python in
:mod:`mixlab.curate.code_in_text`, and compiled (with the block logic) in
:mod:`mixlab.curate._code_in_text_kernel`, which runs the regexes here as DFAs built from their parse trees (equality
tested in ``tests/test_code_in_text_fast.py``). Pure: no I/O, no third-party imports.
"""

from __future__ import annotations

import re
from collections.abc import Callable

CODE_SCORE = 2
CONTEXT_WEIGHT = 0.75  # share of the neighbours' mean score added to a line's own score (dev grid: 0.25-0.75)
DOC_PRIOR = 0.5  # when at least this share of a document's scored lines is code, ambiguous lines are code too
AMBIGUOUS = 0  # ... "ambiguous" = own score >= this (not clearly prose)

FENCE = re.compile(r"^\s*(```|~~~)")
PREPROC = r"#\s*(?:if|ifdef|ifndef|endif|else|elif|pragma|undef|define|include|import|error)\b"
KEYWORD_START = re.compile(
    r"^(?:def |class \w|import \w|from [\w.]+ import |return\b|raise |throw |assert |yield |await |pass$|"
    r"break;?$|continue;?$|self\.|this\.|if ?\(|for ?\(|while ?\(|else\b|elif |try:|except\b|catch ?\(|"
    r"switch ?\(|case \S.*:$|" + PREPROC + r"|#!/|public |private |protected |static |const |let |var |"
    r"function\b|fn |func |package |using |namespace |struct |impl |val |echo |print\(|printf\(|console\.|"
    r"System\.|SELECT |INSERT |UPDATE \w+ SET|CREATE TABLE|<\?php|<!DOCTYPE|<html|<div|<script|<\w+[^>]*>$|"
    r"@\w+|\$ |>>> |\.\.\. |\w+(?:\.\w+)*\s*[-+*/|&]?=\s*\S|end$|fi$|done$|\}|"
    # more languages: ML/Haskell/Lisp/Erlang/Prolog/Lua/shell/SQL/Ruby/Fortran openings
    r"local \w|module \w|export \w|type \w+\s*=|data \w|fun \w|datatype |structure |signature |instance |"
    r"\((?:def\w*|let\*?|lambda|if|cond|setq|require|import|ns|module)\b|"
    r"-(?:module|export|define|include|record|spec|type)\(|"
    r":- |[a-z]\w*\(.*\)\s*(?::-|->)|(?:then|do|begin|end\w*|elsif|esac|unless|until)$|"
    r"(?:CREATE|ALTER|DROP|GRANT|REVOKE|DECLARE|BEGIN|COMMIT)\b|subroutine |program \w|use \w|require\b|"
    r"[\w.]+\s*<-\s|[\w.]+\s*:=\s|\w+!\(|"
    # configuration and data formats: JSON keys, INI/TOML sections, YAML keys with an empty or one-word value
    r"\"[^\"]*\"\s*:\s*(?:[\[{\"\d-]|true|false|null|$)|\[[A-Za-z_][\w.\- \"]*\]$|"
    r"[A-Za-z_][\w.\-]*:(?:\s+[^\s#]+)?$|"
    # one-line SQL and shell commands, C/C++ declarations without braces
    r"(?:WITH|DELETE FROM|INSERT INTO|TRUNCATE|EXPLAIN|VACUUM)\s|"
    r"(?:sudo|apt-get|apt|pip3?|npm|npx|yarn|pnpm|git|docker|kubectl|curl|wget|chmod|chown|mkdir|cargo|gem|"
    r"bundle|brew|tar|make|cmake|ssh|scp|rsync|systemctl|ln|rm|cp|mv|ls|cat|grep|sed|awk|find|touch)"
    r" +(?:-|[\w./~$]+(?: |$))|"
    r"template\s*<|typename |inline |virtual |constexpr |extern |typedef |explicit |friend |operator\W|"
    r"(?:void|int|char|bool|auto|double|float|long|unsigned|size_t|std::\w+)\s*[*&]*\s*\w+\s*[(=;,\[])"
)
# a key => value or key: value entry of a hash/dict/map literal, ending with a comma (Ruby, Perl, PHP, JS, Python)
KEY_VALUE = re.compile(r"(?:[\"'][^\"']*[\"']|:\w+|\w+)\s*(?:=>|:)\s*\S.*,$")
# a line of plain words with sentence punctuation only, starting with a capital: verse and prose, not code
SENTENCE = re.compile(r"[A-Z][A-Za-z'\-]*[,.;:!?\"']*(?: +[A-Za-z'\-]+[,.;:!?\"']*){2,}$")
OPERATORS = re.compile(r"==|!=|->|=>|::|&&|\|\||\+=|-=|\+\+|</|/>|\(\)|\)\s*\{|\[\d*\]|\.\w+\(")
# identifiers and syntax prose rarely has, each a simple pattern searched only when its key character occurs
# (one alternation of all of them cost 3x more: 20 us per line on the labeled set)
SNAKE = re.compile(r"[A-Za-z]_\w")  # snake_case
CAMEL = re.compile(r"[a-z][A-Z]")  # camelCase
CALL = re.compile(r"\w\(")  # f(
CLOSE = re.compile(r"\)\s*[;,{:]")  # ); ){ ):
DOLLAR = re.compile(r"\$\w")  # $var
INDEX = re.compile(r"\w\[")  # a[
COMPARE = re.compile(r"[=<>!]=")  # == <= >= !=
# comment lines, and markup lines that follow their context like comments: heading underlines, table rows
COMMENT = re.compile(
    r"(?!" + PREPROC + r")(?:={3,}$|\|.*\|$|\+[-=+]+\+$|#(?![!\[])|//|/\*|\*|--\s|--$|<!--|%|;|\(\*|!\s)"
)
BLOCK_COLON = re.compile(r"(?:def|class|if|for|while|elif|else|try|except|with|async def)\b")
INLINE_CODE = re.compile(r"`[^`]+`")
MD_LINK = re.compile(r"!?\[[^\]]*\]\([^)\s]*\)")  # Markdown links and images: prose markup
# English function words that are no keyword of a common programming language
STOPWORD_LIST = """the an of to are was were be been that it its on by at but which have has had will would can
    could should may might must also their they them there these those than such who whom what how we you our your
    more most other only very about because however each both many much does did here often usually"""
STOPWORDS = frozenset(STOPWORD_LIST.split())
LATEX = re.compile(
    r"^\\[a-zA-Z]+|\\(?:begin|end|frac|section|cite|ref|label|item|emph|textbf|mathbf|math\w*)\b"
)
SYMBOLS = "{}[]()<>=;:+-*/&|!%^~$#@\\_\"'`"
DELETE_SYMBOLS = str.maketrans("", "", SYMBOLS)
PUNCT = "\"'(),.;:!?"
QUICK_SYMBOLS = ";{}=<>_"
_QUICK_SYMBOL_BYTES = QUICK_SYMBOLS.encode("ascii")
# any of these sends a text to the per-line pass: fences, indentation, block openers and YAML keys (":" at a line
# end), imports, list items (YAML), calls, shell prompts and paths (whole files without ";{}=<>" are code too)
QUICK_HINTS = ("```", "\n    ", "\n\t", ":\n", "import ", "\n- ", "()", "$ ", "#include", "#!/", "./", "--")
_QUICK_HINT = re.compile("|".join(map(re.escape, QUICK_HINTS)))
MAX_TOKENS = 32  # word features look at the first 32 tokens of a line (the thresholds saturate well before)


def label_lines(lines: list[str], score_of: Callable[[str], int]) -> list[bool | None]:
    """Label each line: None (blank), True (code), False (prose).

    ``score_of(stripped)`` is the line score of a stripped non-blank line (``line_score`` of the reference or
    of the fast module: the same integers). On top of it: fenced lines are code; an indented line gets +1 when it follows a blank line
    (markdown code block) or a code line (a block body). A line is code when its score plus
    ``CONTEXT_WEIGHT`` x the mean score of its nearest scored neighbours in the same block (one before, one
    after, no blank line between; each clipped to [-3, 3]) reaches ``CODE_SCORE``; a not-clearly-prose line (score >= 0) between two code lines is code.
    When at least ``DOC_PRIOR`` of the scored lines are code (a source file), every line scoring >=
    ``AMBIGUOUS`` is code. Comment lines (``#``, ``//``, ``/*``, ``*``, ``--``, ``%``, ``;``, ``(*``) and
    triple-quoted docstring regions take their label from the context: code when the nearest scored lines
    before and after them are code (or absent, e.g. a license header at the top of a file).
    """
    labels: list[bool | None] = []
    scores: list[int] = []
    neutral: list[int] = []
    scored: list[int] = []
    block: list[int] = []  # per scored line: index of its block (blank lines separate blocks)
    in_fence = in_doc = in_block = False
    prev_blank = True
    prev_code = False
    n_blocks = 0
    for line in lines:
        stripped = line.strip()
        if not stripped:
            labels.append(None)
            scores.append(0)
            if not prev_blank:
                n_blocks += 1
            prev_blank = True
            continue
        if in_fence or (("```" in line or "~~~" in line) and FENCE.match(line)):
            if FENCE.match(line):
                in_fence = not in_fence
            labels.append(True)
            scores.append(CODE_SCORE)
            prev_blank, prev_code = False, True
            continue
        quotes = (
            stripped.count('"""') + stripped.count("'''") if ('"""' in stripped or "'''" in stripped) else 0
        )
        opens = stripped.startswith("/*") and "*/" not in stripped[2:]
        if in_doc or in_block or quotes or COMMENT.match(stripped):
            in_doc = in_doc != (quotes % 2 == 1)
            in_block = (in_block or opens) and "*/" not in stripped[2 if opens else 0 :]
            neutral.append(len(labels))
            labels.append(False)
            scores.append(0)
            prev_blank = False
            continue
        score = score_of(stripped)
        if line.startswith(("  ", "\t")) and (prev_blank or prev_code):
            score += 1
        scored.append(len(labels))
        block.append(n_blocks)
        labels.append(score >= CODE_SCORE)
        scores.append(score)
        prev_blank, prev_code = False, score >= CODE_SCORE
    # context: the nearest scored neighbours in the same block pull a line towards their side
    m = len(scored)
    clipped = [max(-3, min(3, scores[i])) for i in scored]
    for k, i in enumerate(scored):
        b = block[k]
        before = k > 0 and block[k - 1] == b
        after = k + 1 < m and block[k + 1] == b
        if before and after:
            ctx = (clipped[k - 1] + clipped[k + 1]) / 2
        elif before or after:
            ctx = clipped[k - 1] if before else clipped[k + 1]
        else:
            ctx = 0.0
        labels[i] = scores[i] + CONTEXT_WEIGHT * ctx >= CODE_SCORE
    # a weak line sandwiched between code lines belongs to the block
    for k in range(1, m - 1):
        i = scored[k]
        if labels[i] is False and scores[i] >= 0 and labels[scored[k - 1]] and labels[scored[k + 1]]:
            labels[i] = True
    # a document that is mostly code: ambiguous lines are code too
    if m and sum(1 for i in scored if labels[i]) >= DOC_PRIOR * m:
        for i in scored:
            if scores[i] >= AMBIGUOUS:
                labels[i] = True
    # comments and docstrings follow their context
    if neutral and scored:
        pos = 0
        for i in neutral:
            while pos < m and scored[pos] < i:
                pos += 1
            before = labels[scored[pos - 1]] if pos > 0 else None
            after = labels[scored[pos]] if pos < m else None
            labels[i] = before is not False and after is not False
    return labels


def quick_no_code(text: str) -> bool:
    """True when the text surely has no code (almost no code symbols, no fences, no indentation)."""
    if _QUICK_HINT.search(text):  # = any(hint in text for hint in QUICK_HINTS), in one scan (2.4x faster)
        return False
    # the number of QUICK_SYMBOLS characters, counted on the UTF-8 bytes (all ASCII: one byte each, and no byte
    # of a multi-byte character is ASCII) with bytes.translate: one C pass instead of one str.count per symbol
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw) - len(raw.translate(None, _QUICK_SYMBOL_BYTES)) < 0.004 * len(text)


def fraction_on_code(lines: list[str], labels: list[bool | None]) -> float:
    """Share of non-blank characters (stripped lines) that sit on lines labelled code."""
    total = code = 0
    for line, label in zip(lines, labels, strict=True):
        if label is None:
            continue
        n = len(line.strip())
        total += n
        if label:
            code += n
    return code / total if total else 0.0


def code_fraction(text: str, classify: Callable[[list[str]], list[bool | None]]) -> float:
    """:func:`fraction_on_code` of ``text`` labelled by ``classify`` (0.0 when :func:`quick_no_code`)."""
    if not text or quick_no_code(text):
        return 0.0
    lines = text.split("\n")
    return fraction_on_code(lines, classify(lines))


def code_blocks(lines: list[str], labels: list[bool | None], min_lines: int) -> list[tuple[int, int]]:
    """Line ranges [start, end) of code blocks: fenced blocks, or runs of >= min_lines code lines (blanks inside)."""
    blocks: list[tuple[int, int]] = []
    i, n = 0, len(lines)
    while i < n:
        if not labels[i]:
            i += 1
            continue
        start = end = i
        count = 0
        fenced = bool(FENCE.match(lines[i]))
        j = i
        while j < n and labels[j] is not False:
            if labels[j]:
                count += 1
                end = j + 1
            j += 1
        if fenced or count >= min_lines:
            blocks.append((start, end))
        i = max(j, i + 1)
    return blocks


def strip_blocks(
    text: str, classify: Callable[[list[str]], list[bool | None]], min_lines: int
) -> tuple[str, int]:
    """``text`` without its code blocks (:func:`code_blocks` of ``classify``'s labels), and how many were removed."""
    if quick_no_code(text):
        return text, 0
    lines = text.split("\n")
    blocks = code_blocks(lines, classify(lines), min_lines)
    if not blocks:
        return text, 0
    keep: list[str] = []
    pos = 0
    for start, end in blocks:
        keep.extend(lines[pos:start])
        pos = end
    keep.extend(lines[pos:])
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(keep)).strip()
    return (out + "\n" if out else ""), len(blocks)
