"""StackExchange data dump (``Posts.xml``) -> one Document per question with its answers.

Input: ``<posts><row Id=".." PostTypeId="1|2" ParentId=".." AcceptedAnswerId=".." Score=".." Body="html"
Title=".." Tags="<a><b>" /></posts>``, streamed with :func:`xml.etree.ElementTree.iterparse` (rows are cleared
as soon as read; question and answer texts of one file are held until the file ends, so one file is one site
dump: fine for every site except stackoverflow.com, which should be split by question id first).

Text (pure function :func:`question_to_text`): title, question body, then the answers sorted by score
(descending; accepted answer first on ties, then by id), each after an ``Answer:`` line; HTML converted to text
by :func:`html_to_text` (``<pre>`` blocks fenced with ```` ``` ````, inline ``<code>`` in backticks, lists as
``- `` items). Metadata: ``tags`` (list), ``score``, ``n_answers``, ``site`` (folder of the file), ``source_kind``.

Accounting: a record is a question (kept, or dropped as ``no_answers`` / ``empty`` / ``too_large``) or a row
that cannot be part of a document (``malformed_row``, ``other_post_type``, ``orphan_answer``); answers attached
to their question are counted in the ``answers_merged`` stat. Broken XML: ``corrupt_xml`` (once; the questions
read before the error are still emitted).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

from mixlab.sources.base import AccountedReader

_BLOCK_TAGS = {"p", "div", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "tr", "hr"}
_WS = re.compile(r"\s+")
_BLANKS = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")


class _HtmlToText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "pre":
            self.pre += 1
            self.out.append("\n\n```\n")
        elif tag == "code" and not self.pre:
            self.out.append("`")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag == "br":
            self.out.append("\n")
        elif tag in _BLOCK_TAGS:
            self.out.append("\n\n")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.out.append(f"[{alt}]")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
            if self.out and not self.out[-1].endswith("\n"):
                self.out.append("\n")
            self.out.append("```\n\n")
        elif tag == "code" and not self.pre:
            self.out.append("`")
        elif tag in _BLOCK_TAGS:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.out.append(data if self.pre else _WS.sub(" ", data))


def html_to_text(html: str) -> str:
    """Readable text of a StackExchange post body (code blocks fenced, entities unescaped)."""
    parser = _HtmlToText()
    parser.feed(html)
    parser.close()
    text = "".join(parser.out)
    text = "\n".join(line.rstrip() if line.strip() else "" for line in text.split("\n"))
    return _BLANKS.sub("\n\n", text).strip()


def parse_tags(tags: str | None) -> list[str]:
    """``"<python><list>"`` or ``"|python|list|"`` -> ``["python", "list"]``."""
    if not tags:
        return []
    return [t for t in re.split(r"[<>|]+", tags) if t]


def question_to_text(question: dict[str, Any], answers: list[dict[str, Any]]) -> str:
    """Title, question and answers (already sorted) as one text."""
    parts = [question.get("Title", "").strip(), html_to_text(question.get("Body", ""))]
    parts += [f"Answer:\n{html_to_text(a['Body'])}" for a in answers]
    return "\n\n".join(p for p in parts if p) + "\n"


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


class StackExchangeReader(AccountedReader):
    """Accounted reader of ``Posts.xml`` files (one site dump per file)."""

    name = "mixlab StackExchange"
    suffixes = ("Posts.xml",)

    def __init__(
        self,
        input_path: str,
        min_answers: int = 1,
        max_answers: int = 10,
        min_answer_score: int = 0,
        max_doc_bytes: int = 16 << 20,
        limit: int = -1,
        **reader_options: Any,
    ):
        super().__init__(input_path, "stackexchange", max_doc_bytes, limit, **reader_options)
        self.min_answers = min_answers
        self.max_answers = max_answers
        self.min_answer_score = min_answer_score

    def _rows(self, filepath: str) -> Iterator[dict[str, str] | None]:
        """Attribute dicts of the ``row`` elements; None once if the XML breaks."""
        with self.data_folder.open(filepath, "rb") as f:
            root = None
            try:
                for event, elem in ET.iterparse(f, events=("start", "end")):
                    if event == "start":
                        if root is None:
                            root = elem
                        continue
                    if elem.tag == "row":
                        yield dict(elem.attrib)
                        if root is not None:
                            root.clear()  # rows already consumed: keep memory flat
            except ET.ParseError:
                yield None

    def read_records(self, filepath: str) -> Iterator[Any]:
        questions: dict[str, dict[str, str]] = {}
        answers: dict[str, list[dict[str, Any]]] = {}
        for row in self._rows(filepath):
            if row is None:
                yield self.drop("corrupt_xml")
                break
            kind, post_id, body = row.get("PostTypeId"), row.get("Id"), row.get("Body")
            if not post_id or body is None or kind is None:
                yield self.drop("malformed_row", len(body or ""))
            elif kind == "1":
                questions[post_id] = row
            elif kind == "2" and row.get("ParentId"):
                answers.setdefault(row["ParentId"], []).append(row)
            else:
                yield self.drop("other_post_type", len(body))
        full = str(self.data_folder.resolve_paths(filepath)).rstrip("/")
        site = full.rsplit("/", 2)[-2] if full.count("/") >= 1 else ""
        for qid in sorted(questions, key=_int):
            q = questions[qid]
            accepted = q.get("AcceptedAnswerId")
            ans = answers.pop(qid, [])
            nbytes = len(q.get("Body", "")) + len(q.get("Title", "")) + sum(len(a["Body"]) for a in ans)
            self._counts["answers_merged"] += len(ans)
            ans = [a for a in ans if _int(a.get("Score")) >= self.min_answer_score]
            ans.sort(key=lambda a: (-_int(a.get("Score")), a.get("Id") != accepted, _int(a.get("Id"))))
            ans = ans[: self.max_answers]
            if len(ans) < self.min_answers:
                yield self.drop("no_answers", nbytes)
                continue
            meta = {
                "tags": parse_tags(q.get("Tags")),
                "score": _int(q.get("Score")),
                "n_answers": len(ans),
                "site": site,
            }
            yield self.make_doc(question_to_text(q, ans), f"{filepath}/{qid}", meta, nbytes)
        for orphans in answers.values():
            for a in orphans:
                yield self.drop("orphan_answer", len(a["Body"]))
