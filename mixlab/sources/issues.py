"""GitHub issues (bigcode's ``the-stack-github-issues`` schema) -> one Document per thread.

Row schema (JSONL, plain / .gz / .zst, or parquet as on the Hub): ``repo``, ``org``, ``issue_id``,
``issue_number``, ``pull_request`` (``{number, repo, user_login}`` or null), ``events``: a list of
``{action, author, comment_id, datetime, title, type, text}`` in thread order (the raw dump's ``comment`` /
``description`` fields are read where ``text`` is absent), and optional ``usernames``, ``user_count``,
``event_count``, ``text_size``. The thread's title is the row's ``title`` or the first event's.

Text (pure function :func:`thread_to_text`)::

    <title>

    <author>: <text of the opening post>

    <author>: <text of a comment>
    ...

Events without text (``closed``, ``labeled``, ``reopened``...) are not part of the text. With ``drop_bots``,
events by bots (:func:`is_bot`: the author lists, keywords and suffixes of bigcode's issue filtering, plus
``bot_authors``) are removed and counted in the ``bot_events_removed`` stat. With ``mask_usernames`` each author
becomes ``username_<i>`` (order of first appearance), mentions in the texts too, as the public dataset does.
Metadata: ``repo``, ``issue_number``, ``issue_id``, ``pull_request`` (bool), ``n_events``, ``n_users``,
``source_kind``.

Bad input, counted: everything of the JSONL reader (``malformed_json``, ``non_utf8``, ``corrupt_zstd``...),
``corrupt_parquet``, ``missing_field`` (no events list), ``pull_request`` (a pull-request thread when they are
excluded), ``bot_only`` (every event with text was by a bot), ``empty_thread`` (no event with text: a title
alone), and the shared ``empty``, ``too_large``, ``binary``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from mixlab.sources.base import Skip
from mixlab.sources.slimpajama import JsonlRecordReader

# bigcode-dataset preprocessing/utils/utils_issues.py: comments by these authors are removed
BOT_AUTHORS = frozenset({
    "Apache-HBase", "AutorestCI", "CLAassistant", "cmsbuild", "codecov-io", "codecov-commenter", "coveralls",
    "danger-public", "dnfclas", "msftclas", "PyDocTeur", "SparkQA", "karma-pr-reporter", "claassistantio",
    "probot-stale",
})  # fmt: skip
BOT_KEYWORDS = ("[bot]", "botmanager", "bors-", "jenkins", "k8s-", "-test-", "travis")
BOT_SUFFIXES = (
    "-automaton", "-automation", "-benchmark", "-build", "-deployer", "-cloud", "bot", "-ci", "-linter",
    "-teamcity", "-test", "-testing", "-service-account",
)  # fmt: skip


def is_bot(author: str, extra_authors: Iterable[str] = ()) -> bool:
    """Whether ``author`` is a bot: a known bot account, a bot keyword in the name, or a bot suffix."""
    low = author.lower()
    return (
        author in BOT_AUTHORS
        or author in extra_authors
        or any(k in low for k in BOT_KEYWORDS)
        or low.endswith(BOT_SUFFIXES)
    )


def event_text(event: dict[str, Any]) -> str:
    """The text an event adds to the thread ("" for events without text)."""
    for key in ("text", "comment", "description"):
        value = event.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def thread_title(row: dict[str, Any], events: list[Any]) -> str:
    """The row's ``title``, else the first event's."""
    candidates = [row.get("title"), *(e.get("title") for e in events if isinstance(e, dict))]
    return next((t.strip() for t in candidates if isinstance(t, str) and t.strip()), "")


def mask(posts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Authors -> ``username_<i>`` in order of first appearance, their mentions in the texts too."""
    names: dict[str, str] = {}
    for author, _ in posts:
        names.setdefault(author, f"username_{len(names)}")
    if not names:
        return posts
    pattern = re.compile("|".join(re.escape(a) for a in sorted(names, key=len, reverse=True) if a))
    return [
        (names[a], pattern.sub(lambda m: names[m.group(0)], t) if pattern.pattern else t) for a, t in posts
    ]


def thread_posts(
    row: dict[str, Any], drop_bots: bool = True, bot_authors: Iterable[str] = ()
) -> tuple[list[tuple[str, str]], int] | Skip:
    """``([(author, text), ...], bot events removed)`` of a row, or a Skip naming why it has no thread."""
    events = row.get("events")
    if not isinstance(events, list):
        return Skip("missing_field")
    extra = frozenset(bot_authors)
    posts: list[tuple[str, str]] = []
    bots = 0
    for event in events:
        if not isinstance(event, dict):
            continue
        text = event_text(event)
        if not text:
            continue
        author = event.get("author")
        author = author.strip() if isinstance(author, str) and author.strip() else "ghost"
        if drop_bots and is_bot(author, extra):
            bots += 1
            continue
        posts.append((author, text))
    if not posts:
        return Skip("bot_only" if bots else "empty_thread")
    return posts, bots


def thread_to_text(title: str, posts: list[tuple[str, str]]) -> str:
    """Title, then each post as ``author: text``, separated by blank lines."""
    body = "\n\n".join(f"{author}: {text}" for author, text in posts)
    return f"{title}\n\n{body}" if title else body


class IssueReader(JsonlRecordReader):
    """Accounted GitHub issues reader (JSONL or parquet): one Document per thread."""

    name = "mixlab GitHub issues"
    suffixes = (*JsonlRecordReader.suffixes, ".parquet")

    def __init__(
        self,
        input_path: str,
        drop_bots: bool = True,
        bot_authors: Iterable[str] = (),
        mask_usernames: bool = False,
        include_pull_requests: bool = True,
        max_doc_bytes: int = 16 << 20,
        limit: int = -1,
        **reader_options: Any,
    ):
        super().__init__(input_path, "issues", max_doc_bytes, limit, **reader_options)
        self.drop_bots = drop_bots
        self.bot_authors = tuple(bot_authors)
        self.mask_usernames = mask_usernames
        self.include_pull_requests = include_pull_requests

    def adapt(self, rec: dict[str, Any], doc_id: str, nbytes: int) -> Any:
        is_pr = isinstance(rec.get("pull_request"), dict) and bool(rec["pull_request"])
        if is_pr and not self.include_pull_requests:
            return self.drop("pull_request", nbytes)
        got = thread_posts(rec, self.drop_bots, self.bot_authors)
        if isinstance(got, Skip):
            if got.reason == "bot_only":
                self._counts["bot_events_removed"] += sum(
                    1 for e in rec["events"] if isinstance(e, dict) and event_text(e)
                )
            return self.drop(got.reason, nbytes)
        posts, bots = got
        self._counts["bot_events_removed"] += bots
        title = thread_title(rec, rec["events"])
        if self.mask_usernames:
            posts = mask(posts)
        repo, number = rec.get("repo"), rec.get("issue_number")
        meta = {
            "repo": str(repo or ""),
            "issue_number": number if isinstance(number, int) else -1,
            "issue_id": rec.get("issue_id") if isinstance(rec.get("issue_id"), int) else -1,
            "pull_request": is_pr,
            "n_events": len(posts),
            "n_users": len({a for a, _ in posts}),
        }
        ident = f"{repo}#{number}" if repo and isinstance(number, int) else doc_id
        return self.make_doc(thread_to_text(title, posts), ident, meta, nbytes)

    def read_records(self, filepath: str) -> Iterator[Any]:
        if not filepath.endswith(".parquet"):
            yield from super().read_records(filepath)
            return

        def decode(batch: Any) -> tuple[list[dict[str, Any]], list[int]]:
            rows = batch.to_pylist()
            return rows, [batch.slice(i, 1).nbytes for i in range(len(rows))]

        for item in self.parquet_batches(filepath, 256, decode):
            if isinstance(item, Skip):
                yield item
                continue
            row, (rows, sizes) = item
            for i, rec in enumerate(rows):
                yield self.adapt(rec, f"{filepath}/{row + i}", sizes[i])
