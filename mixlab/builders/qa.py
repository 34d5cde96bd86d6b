"""Real questions with answers (the Python FAQ) as StackExchange posts (used by :mod:`mixlab.builders.sample`).

Each FAQ section is a question (its heading is the title and the body) with its answer text; an answer
with several paragraphs is split at paragraph boundaries into 1-3 answers (count chosen from a hash of the
title), so the dump has multi-answer threads. Scores, dates and view counts are deterministic functions of
the title hash, not real StackExchange statistics.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from xml.sax.saxutils import escape

from mixlab.builders.convert import Block, blocks_to_html, blocks_to_text, faq_sections, rst_blocks

ATTR_ENTITIES = {'"': "&quot;", "\n": "&#xA;", "\r": "&#xD;"}
EPOCH = datetime(2012, 3, 1, 9, 30, 0)


@dataclass
class Thread:
    """One question and its answers (each answer a list of rst blocks)."""

    title: str
    tags: list[str]
    answers: list[list[Block]] = field(default_factory=list)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def split_answer(blocks: list[Block], parts: int) -> list[list[Block]]:
    """Split blocks into at most ``parts`` consecutive non-empty groups of similar size; a group never starts
    with a code block (code stays with the paragraph that introduces it)."""
    cuts = [i for i in range(1, len(blocks)) if blocks[i].kind != "code"]
    if parts <= 1 or not cuts:
        return [blocks]
    sizes = [len(b.text) + sum(len(x) for x in b.items) for b in blocks]
    total = sum(sizes)
    chosen: list[int] = []
    for k in range(1, parts):
        target = total * k / parts
        best = min(cuts, key=lambda c: (abs(sum(sizes[:c]) - target), c))
        if best not in chosen and (not chosen or best > chosen[-1]):
            chosen.append(best)
    bounds = [0, *chosen, len(blocks)]
    return [blocks[a:b] for a, b in pairwise(bounds) if blocks[a:b]]


def faq_threads(pages: dict[str, str]) -> list[Thread]:
    """Threads from FAQ pages (name -> rst text), pages in sorted order, sections in page order."""
    threads = []
    for name in sorted(pages):
        for title, body in faq_sections(pages[name]):
            blocks = rst_blocks(body)
            if not blocks:
                continue
            parts = 1 + _hash(title) % 3
            threads.append(Thread(title, ["python", "faq", name], split_answer(blocks, parts)))
    return threads


def thread_text(t: Thread) -> str:
    """SlimPajama StackExchange-style text: ``Q: <question>`` then ``A: <answer>`` (the whole FAQ answer)."""
    return f"Q: {t.title}\n\nA: {blocks_to_text([b for a in t.answers for b in a])}"


def _attr(value: str) -> str:
    return escape(value, ATTR_ENTITIES)


def _date(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}"


def posts_xml(threads: list[Thread]) -> str:
    """The StackExchange data-dump ``Posts.xml`` of the threads (questions PostTypeId=1, answers 2)."""
    rows: list[str] = []
    next_id = 1
    for i, t in enumerate(threads):
        h = _hash(t.title)
        qid = next_id
        aids = list(range(qid + 1, qid + 1 + len(t.answers)))
        next_id = qid + 1 + len(t.answers)
        qdate = EPOCH + timedelta(days=i * 3 + h % 3, seconds=h % 86_400)
        scores = sorted(((h >> (8 * k)) % 60 for k in range(len(t.answers))), reverse=True)
        tags = "".join(f"<{tag}>" for tag in t.tags)
        body = f"<p>{escape(t.title)}</p>\n"
        last = _date(qdate + timedelta(days=30))
        rows.append(
            f'  <row Id="{qid}" PostTypeId="1" AcceptedAnswerId="{aids[0]}" CreationDate="{_date(qdate)}" '
            f'Score="{h % 120}" ViewCount="{100 + h % 50_000}" Body="{_attr(body)}" '
            f'LastActivityDate="{last}" Title="{_attr(t.title)}" Tags="{_attr(tags)}" '
            f'AnswerCount="{len(t.answers)}" CommentCount="0" ContentLicense="PSF-2.0" />'
        )
        for k, (aid, answer) in enumerate(zip(aids, t.answers, strict=True)):
            adate = qdate + timedelta(hours=1 + 5 * k, minutes=h % 60)
            rows.append(
                f'  <row Id="{aid}" PostTypeId="2" ParentId="{qid}" CreationDate="{_date(adate)}" '
                f'Score="{scores[k]}" Body="{_attr(blocks_to_html(answer))}" '
                f'LastActivityDate="{_date(adate)}" CommentCount="0" ContentLicense="PSF-2.0" />'
            )
    return '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "\n".join(rows) + "\n</posts>\n"
