"""Pure text converters used by :mod:`mixlab.builders.sample` (no I/O, no third-party imports).

Size: ~540 lines of independent small converters (reST, HTML, notebooks, man pages...): a builder tool, not runtime.

- :func:`rst_blocks` parses Sphinx reStructuredText into blocks (heading, paragraph, code, list);
  :func:`blocks_to_text` renders them as the plain text a web-page extractor would produce (code blocks kept,
  indented), :func:`blocks_to_html` as StackExchange-style HTML (``<p>``, ``<pre><code>``, ``<ul>``).
- :func:`faq_sections` splits a Python FAQ page into (question title, answer rst) pairs.
- :func:`wikitext_to_text` strips MediaWiki markup (templates, tables, references, link syntax).
- :func:`html_to_text` extracts the visible text of an HTML page (``<pre>`` kept verbatim).
- :func:`sweave_to_latex` turns a Sweave (``.Rnw``) paper into arXiv-style LaTeX body text.
- :func:`truncate_text` cuts a text at a line boundary below a character limit.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

# ----------------------------------------------------------------------------------------------------------
# reStructuredText (Sphinx flavour, as in python3.11-doc ``_sources/*.rst.txt``)
# ----------------------------------------------------------------------------------------------------------

ADORNMENT = re.compile(r"^([=\-~^\"'`#*+_:.])\1{2,}\s*$")
DIRECTIVE = re.compile(r"^\.\.\s+([A-Za-z][\w:-]*)::\s*(.*)$")
BULLET = re.compile(r"^([*+\-]|\d+\.|#\.)\s+")
TABLE_BORDER = re.compile(r"^(=+\s+)+=+\s*$|^\+[-=+]+\+\s*$")

# fmt: off
DROP_DIRECTIVES = {
    "index", "toctree", "contents", "highlight", "module", "currentmodule", "sectionauthor", "moduleauthor",
    "testsetup", "testcleanup", "include", "literalinclude", "tabularcolumns", "image", "figure", "raw",
    "audit-event", "program", "c:namespace", "role", "default-role", "autoclass", "automodule",
    "autofunction", "pdbcommand", "productionlist", "list-table", "csv-table", "table", "opcode",
    "availability", "meta",
}
CODE_DIRECTIVES = {"code-block", "sourcecode", "code", "doctest", "testcode", "testoutput", "parsed-literal"}
LABELS = {
    "note": "Note:", "warning": "Warning:", "seealso": "See also:", "tip": "Tip:", "important": "Important:",
    "caution": "Caution:", "impl-detail": "CPython implementation detail:", "attention": "Attention:",
}
VERSION_LABELS = {
    "versionadded": "New in version {}.", "versionchanged": "Changed in version {}:",
    "deprecated": "Deprecated since version {}:", "deprecated-removed": "Deprecated since version {}:",
}
SIGNATURE_DIRECTIVES = {
    "function", "method", "class", "data", "attribute", "exception", "decorator", "classmethod",
    "staticmethod", "coroutinemethod", "coroutinefunction", "describe", "object", "cmdoption", "option",
    "envvar", "abstractmethod", "decoratormethod", "c:function", "c:member", "c:type", "c:var", "c:macro",
    "c:struct",
}
PLAIN_CONTAINERS = {"only", "topic", "sidebar", "rubric", "centered", "admonition", "container"}
CODE_ROLES = {
    "func", "meth", "class", "mod", "attr", "data", "exc", "const", "obj", "keyword", "option", "envvar",
    "file", "program", "samp", "c:func", "c:data", "c:type", "c:macro", "c:member", "c:var", "c:expr",
    "opcode", "makevar", "kbd", "command", "token",
}
# fmt: on


@dataclass
class Block:
    """One rendered unit of an rst document."""

    kind: str  # "h" (heading), "p" (paragraph), "code", "ul" (list)
    text: str = ""
    items: list[str] = field(default_factory=list)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _take_block(lines: list[str], start: int, indent: int) -> tuple[list[str], int]:
    """Lines from ``start`` that are blank or indented deeper than ``indent`` (trailing blanks excluded)."""
    j = start
    while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > indent):
        j += 1
    block = lines[start:j]
    while block and not block[-1].strip():
        block.pop()
    return block, start + len(block)


def _dedent(lines: list[str]) -> list[str]:
    widths = [_indent(line) for line in lines if line.strip()]
    cut = min(widths) if widths else 0
    return [line[cut:] if line.strip() else "" for line in lines]


def _strip_options(lines: list[str]) -> list[str]:
    """Drop a directive's leading ``:option: value`` lines."""
    out = list(lines)
    while out and (not out[0].strip() or re.match(r"^\s*:[\w-]+:", out[0])):
        if not out[0].strip() and len(out) > 1 and not re.match(r"^\s*:[\w-]+:", out[1]):
            break
        out.pop(0)
    return out


def rst_blocks(text: str) -> list[Block]:
    """Parse rst into blocks; Sphinx directives are dropped, unwrapped with a label, or kept as code."""
    lines = text.expandtabs(8).split("\n")
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block("p", " ".join(para)))
            para.clear()

    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        s = line.strip()
        ind = _indent(line)
        if not s:
            flush()
            i += 1
            continue
        if TABLE_BORDER.match(s):
            flush()
            j = i
            while j < n and lines[j].strip():
                j += 1
            blocks.append(Block("code", "\n".join(_dedent(lines[i:j]))))
            i = j
            continue
        if ADORNMENT.match(s):  # overline or transition
            i += 1
            continue
        nxt = lines[i + 1].strip() if i + 1 < n else ""
        if nxt and ADORNMENT.match(nxt) and len(nxt) >= len(s) and not para:
            flush()
            blocks.append(Block("h", s))
            i += 2
            continue
        if s.startswith(".."):
            flush()
            body, j = _take_block(lines, i + 1, ind)
            m = DIRECTIVE.match(s)
            i = j
            if not m:
                continue  # comment, label or substitution definition
            name, arg = m.group(1), m.group(2).strip()
            while arg.endswith("\\") and body and body[0].strip():  # signature continued on the next line
                arg = arg[:-1].rstrip() + " " + body.pop(0).strip()
            if name in DROP_DIRECTIVES or name.startswith("auto"):
                continue
            body = _strip_options(body)
            if name in CODE_DIRECTIVES:
                if body:
                    blocks.append(Block("code", "\n".join(_dedent(body)).strip("\n")))
                continue
            sub = rst_blocks("\n".join(_dedent(body)))
            label = ""
            if name in LABELS:
                label = LABELS[name]
            elif name in VERSION_LABELS:
                version, _, rest = arg.partition(" ")
                label = VERSION_LABELS[name].format(version) + (" " + rest if rest else "")
            elif name in SIGNATURE_DIRECTIVES or name not in PLAIN_CONTAINERS:
                label = arg  # a signature, or an unknown directive's argument
            elif name in {"topic", "sidebar", "rubric", "admonition"} and arg:
                blocks.append(Block("h", arg))
            if label and sub and sub[0].kind == "p" and name not in SIGNATURE_DIRECTIVES:
                sub[0] = Block("p", f"{label} {sub[0].text}")
            elif label:
                sub.insert(0, Block("code" if name in SIGNATURE_DIRECTIVES else "p", label))
            blocks.extend(sub)
            continue
        if s.startswith(">>>") and not para:
            j = i
            while j < n and lines[j].strip():
                j += 1
            blocks.append(Block("code", "\n".join(_dedent(lines[i:j]))))
            i = j
            continue
        bm = BULLET.match(s)
        if bm and not para:
            item_lines = [s[bm.end() :]]
            cont, j = _take_block(lines, i + 1, ind)
            item_lines += [c.strip() for c in cont if c.strip()]
            item = " ".join(item_lines)
            if blocks and blocks[-1].kind == "ul":
                blocks[-1].items.append(item)
            else:
                blocks.append(Block("ul", items=[item]))
            i = j
            continue
        para.append(s)
        i += 1
        if s.endswith("::") and (i >= n or not lines[i].strip() or _indent(lines[i]) > ind):
            last = para[-1]
            para[-1] = last[:-2].rstrip() if last.endswith(" ::") or last == "::" else last[:-1]
            if not para[-1]:
                para.pop()
            flush()
            k = i
            while k < n and not lines[k].strip():
                k += 1
            if k < n and _indent(lines[k]) > ind:
                body, j = _take_block(lines, k, ind)
                blocks.append(Block("code", "\n".join(_dedent(body)).strip("\n")))
                i = j
        elif i < n and lines[i].strip() and _indent(lines[i]) > ind and not para[:-1]:
            # definition-list term followed by an indented definition: keep as separate paragraphs
            flush()
    flush()
    return blocks


ROLE = re.compile(r":([\w:+-]+):`([^`]+)`")
LINK = re.compile(r"`([^`<]+?)\s*<([^`>]+)>`__?")
REF = re.compile(r"`([^`]+)`_{1,2}")
LITERAL = re.compile(r"``(.+?)``")
STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
EMPH = re.compile(r"(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])")
SUBST = re.compile(r"\|(\w[\w -]*)\|")


def _role_text(role: str, body: str) -> str:
    m = re.match(r"^(.*?)\s*<([^>]+)>$", body)
    if m:
        return m.group(1)
    body = body.lstrip("!")
    if body.startswith("~"):
        body = body[1:].rsplit(".", 1)[-1]
    if role in {"pep", "rfc"}:
        return f"{role.upper()} {body}"
    return body


def rst_inline(text: str, mode: str = "text") -> str:
    """Inline rst markup -> plain text (``mode="text"``) or HTML (``mode="html"``)."""
    if mode == "html":
        text = html.escape(text, quote=False)
    spans: list[str] = []

    def keep(s: str) -> str:
        spans.append(s)
        return f"\x00{len(spans) - 1}\x00"

    def lit(m: re.Match[str]) -> str:
        return keep(f"<code>{m.group(1)}</code>" if mode == "html" else m.group(1))

    def role(m: re.Match[str]) -> str:
        r, body = m.group(1), m.group(2)
        t = _role_text(r, html.unescape(body) if mode == "html" else body)
        if mode == "html":
            t = html.escape(t, quote=False)
            return keep(f"<code>{t}</code>" if r in CODE_ROLES else t)
        return keep(t)

    def link(m: re.Match[str]) -> str:
        label, url = m.group(1), m.group(2)
        if mode == "html" and re.match(r"^https?://", html.unescape(url)):
            return keep(f'<a href="{html.escape(html.unescape(url))}">{label}</a>')
        return keep(label)

    text = LITERAL.sub(lit, text)
    text = ROLE.sub(role, text)
    text = LINK.sub(link, text)
    text = REF.sub(lambda m: keep(m.group(1)), text)
    text = STRONG.sub(lambda m: f"<strong>{m.group(1)}</strong>" if mode == "html" else m.group(1), text)
    text = EMPH.sub(lambda m: f"<em>{m.group(1)}</em>" if mode == "html" else m.group(1), text)
    text = SUBST.sub(lambda m: m.group(1), text)
    text = re.sub(r"\s*\[(#[\w-]*|\d+|\*)\]_", "", text)  # footnote references
    text = re.sub(r"\\(.)", r"\1", text)
    return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], text)


def blocks_to_text(blocks: list[Block]) -> str:
    """Plain text: headings and paragraphs as lines, list items with ``- ``, code indented by 4 spaces."""
    parts: list[str] = []
    for b in blocks:
        if b.kind == "code":
            parts.append("\n".join("    " + line if line else "" for line in b.text.split("\n")))
        elif b.kind == "ul":
            parts.append("\n".join("- " + rst_inline(item) for item in b.items))
        else:
            parts.append(rst_inline(b.text))
    return "\n\n".join(p for p in parts if p.strip())


def blocks_to_html(blocks: list[Block]) -> str:
    """StackExchange-style post HTML."""
    parts: list[str] = []
    for b in blocks:
        if b.kind == "code":
            parts.append(f"<pre><code>{html.escape(b.text, quote=False)}\n</code></pre>")
        elif b.kind == "ul":
            lis = "".join(f"<li>{rst_inline(item, 'html')}</li>" for item in b.items)
            parts.append(f"<ul>\n{lis}\n</ul>")
        elif b.kind == "h":
            parts.append(f"<h3>{rst_inline(b.text, 'html')}</h3>")
        else:
            parts.append(f"<p>{rst_inline(b.text, 'html')}</p>")
    return "\n\n".join(parts) + "\n"


def faq_sections(text: str) -> list[tuple[str, str]]:
    """(question title, answer rst) for each section at the deepest heading level of a FAQ page."""
    lines = text.split("\n")
    heads: list[tuple[int, str, str]] = []  # (line index of title, title, adornment char)
    for i in range(len(lines) - 1):
        s, u = lines[i].strip(), lines[i + 1].strip()
        if s and not ADORNMENT.match(s) and ADORNMENT.match(u) and len(u) >= len(s):
            heads.append((i, s, u[0]))
    if not heads:
        return []
    order: list[str] = []
    for _, _, ch in heads:
        if ch not in order:
            order.append(ch)
    deepest = order[-1]
    out: list[tuple[str, str]] = []
    for k, (i, title, ch) in enumerate(heads):
        if ch != deepest:
            continue
        end = heads[k + 1][0] if k + 1 < len(heads) else len(lines)
        body = lines[i + 2 : end]
        while body and (not body[-1].strip() or body[-1].startswith(".. _")):
            body.pop()
        out.append((title, "\n".join(body).strip("\n")))
    return out


# ----------------------------------------------------------------------------------------------------------
# MediaWiki wikitext
# ----------------------------------------------------------------------------------------------------------

_DROP_SECTIONS = re.compile(
    r"^==+\s*(References|External links|See also|Further reading|Notes|Bibliography|Sources|Footnotes)"
    r"\s*==+\s*$",
    re.M,
)


def _remove_nested(text: str, open_: str, close: str) -> str:
    """Remove balanced ``open_ ... close`` spans (nesting-aware)."""
    out: list[str] = []
    depth = 0
    i = 0
    lo, lc = len(open_), len(close)
    while i < len(text):
        if text.startswith(open_, i):
            depth += 1
            i += lo
        elif depth and text.startswith(close, i):
            depth -= 1
            i += lc
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return "".join(out)


def _remove_links_with_prefix(text: str, prefixes: tuple[str, ...]) -> str:
    """Remove ``[[File:...]]``-style links, which may contain nested ``[[...]]``."""
    pat = re.compile(r"\[\[\s*(" + "|".join(prefixes) + r")\s*:", re.I)
    while True:
        m = pat.search(text)
        if not m:
            return text
        depth, j = 0, m.start()
        while j < len(text):
            if text.startswith("[[", j):
                depth += 1
                j += 2
            elif text.startswith("]]", j):
                depth -= 1
                j += 2
                if depth == 0:
                    break
            else:
                j += 1
        text = text[: m.start()] + text[j:]


def wikitext_to_text(wt: str) -> str:
    """Plain article text from raw wikitext (reasonable, not MediaWiki-exact)."""
    t = re.sub(r"<!--.*?-->", "", wt, flags=re.S)
    t = re.sub(r"<ref[^>/]*/>", "", t)
    t = re.sub(r"<ref[^>]*>.*?</ref>", "", t, flags=re.S)
    t = re.sub(r"<(gallery|math|timeline|imagemap|score)[^>]*>.*?</\1>", "", t, flags=re.S | re.I)
    t = _remove_nested(t, "{{", "}}")
    t = _remove_nested(t, "{|", "|}")
    t = _remove_links_with_prefix(t, ("File", "Image", "Category", "Media", "[a-z]{2,3}(?:-[a-z]+)?"))
    m = _DROP_SECTIONS.search(t)
    if m:
        t = t[: m.start()]
    t = re.sub(r"\[\[([^\[\]|]*)\|([^\[\]]*)\]\]", r"\2", t)
    t = re.sub(r"\[\[([^\[\]]*)\]\]", r"\1", t)
    t = re.sub(r"\[https?://\S+\s+([^\]]*)\]", r"\1", t)
    t = re.sub(r"\[https?://\S+\]", "", t)
    t = re.sub(r"'{2,5}", "", t)
    t = re.sub(r"^(=+)\s*(.*?)\s*\1\s*$", r"\2", t, flags=re.M)
    t = re.sub(r"<[^>]+>", "", t)
    t = html.unescape(t)
    lines = []
    for line in t.split("\n"):
        line = re.sub(r"^[*#:;]+\s*", "", line).rstrip()
        if line.startswith("__") and line.endswith("__"):  # __NOTOC__ and friends
            continue
        lines.append(line)
    t = "\n".join(lines)
    t = re.sub(r"\(\s*[,;]?\s*\)", "", t)  # "( )" left behind by removed templates
    t = re.sub(r"[ \t]{2,}", " ", t)
    t = re.sub(r"\n{3,}", "\n\n", t)
    return t.strip()


# ----------------------------------------------------------------------------------------------------------
# HTML -> text
# ----------------------------------------------------------------------------------------------------------

# fmt: off
_BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr",
    "pre", "blockquote", "section", "article", "header", "footer", "hr", "title",
}
# fmt: on

_VOID_TAGS = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"}
_SKIP_CLASSES = {"navheader", "navfooter"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.skip_depth = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip_depth:
            self.skip_depth += tag not in _VOID_TAGS
            return
        if tag == "div" and (dict(attrs).get("class") or "") in _SKIP_CLASSES:
            self.skip_depth = 1  # navigation bars of DocBook pages
            return
        if tag in {"script", "style", "head", "nav"}:
            self.skip += 1
        if tag == "pre":
            self.pre += 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag != "br" else "\n")
        if tag == "li":
            self.parts.append("- ")
        if tag in {"td", "th"}:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if self.skip_depth:
            self.skip_depth -= tag not in _VOID_TAGS
            return
        if tag in {"script", "style", "head", "nav"} and self.skip:
            self.skip -= 1
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.skip or self.skip_depth:
            return
        if self.pre:
            self.parts.append(data.replace("\n", "\x01"))  # protect pre newlines from whitespace folding
        else:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(page: str) -> str:
    """Visible text of an HTML page; ``<pre>`` content keeps its line structure."""
    ex = _TextExtractor()
    ex.feed(page)
    ex.close()
    t = "".join(ex.parts)
    t = re.sub(r"[ \t]*\n[ \t]*", "\n", t)
    t = re.sub(r"(^|\n)-\n+", r"\1- ", t)  # list marker followed by the item's paragraph
    t = re.sub(r"\n{3,}", "\n\n", t).replace("\x01", "\n")
    return t.strip()


# ----------------------------------------------------------------------------------------------------------
# Sweave (.Rnw) -> arXiv-style LaTeX
# ----------------------------------------------------------------------------------------------------------


def sweave_to_latex(rnw: str) -> str:
    """LaTeX body as RedPajama's ArXiv subset keeps it: from the first ``\\section``, comments and the
    bibliography removed; Sweave code chunks become ``Sinput`` environments (code only, as Sweave's
    ``echo`` shows it; chunks with ``echo=FALSE`` are dropped)."""
    out: list[str] = []
    in_chunk = False
    echo = True
    chunk: list[str] = []
    for line in rnw.split("\n"):
        if not in_chunk and re.match(r"^<<.*>>=\s*$", line):
            in_chunk, chunk = True, []
            echo = not re.search(r"echo\s*=\s*(FALSE|F)\b", line)
            continue
        if in_chunk:
            if re.match(r"^@\s*$", line):
                in_chunk = False
                if echo and any(c.strip() for c in chunk):
                    out += ["\\begin{Sinput}", *chunk, "\\end{Sinput}"]
            else:
                chunk.append(line)
            continue
        if line.lstrip().startswith("%") or line.startswith("\\SweaveOpts"):
            continue
        out.append(re.sub(r"(?<!\\)%.*$", "", line))
    t = "\n".join(out)
    m = re.search(r"\\section\*?\{", t)
    if m:
        t = t[m.start() :]
    m = re.search(r"\\bibliography\{|\\begin\{thebibliography\}|\\end\{document\}", t)
    if m:
        t = t[: m.start()]
    return re.sub(r"\n{3,}", "\n\n", t).strip()


# ----------------------------------------------------------------------------------------------------------
# misc
# ----------------------------------------------------------------------------------------------------------


def truncate_text(text: str, limit: int) -> str:
    """``text`` if short enough, else its longest prefix of whole lines within ``limit`` characters (or of
    ``limit`` characters when whole lines would keep less than half of that, e.g. minified code)."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut + 1] if cut >= limit // 2 else text[:limit]
