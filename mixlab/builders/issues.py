"""Build ``issues/issues.jsonl.zst``: real GitHub issue threads in the-stack-github-issues row schema.

Run ``python -m mixlab.builders.issues --out mixlab/sample/data`` (needs pip and PyPI; CI does not run it).

Input: the github3.py sdist (pinned in :mod:`mixlab.builders.pins`, BSD-3-Clause), whose ``tests/cassettes/*.json``
are betamax recordings of real GitHub API v3 responses. Every issue object (``.../repos/<owner>/<repo>/issues/<n>``
with a ``title``) and every issue comment (``.../issues/comments/<id>`` with an ``issue_url``) found in a
recorded response body (plain or base64, gzip or not; search results included) is collected; an issue recorded
several times keeps its last recording (files and interactions in sorted order). A comment whose issue object is
not recorded has no title and is left out.

Row (one per issue, sorted by repository and number): ``repo``, ``org``, ``issue_id``, ``issue_number``,
``pull_request`` (``{number, repo, user_login}`` for pull requests, else null), ``events``: the opening post
(``action="opened"``, ``type="issue"``, ``text`` = body), the comments by creation time (``"created"``,
``"comment"``) and, for a closed issue whose closer is recorded, a ``"closed"`` event without text; each event has
``author``, ``comment_id`` (null for the opening post), ``datetime`` (epoch milliseconds), ``title`` (the opening
post only) and ``text``. Plus ``usernames`` (distinct authors in order), ``user_count``, ``event_count`` and
``text_size`` (characters of the event texts). Nothing is filtered: bot posts and empty bodies stay, for the reader
to drop with reasons. The file is written with zstd level 19 and sorted keys, so a rebuild gives the same bytes.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import re
import sys
import tarfile
from datetime import datetime
from pathlib import Path
from typing import Any

import zstandard

from mixlab.builders import pins
from mixlab.builders.fetch import fetch
from mixlab.sample import DATA

ISSUE_URL = re.compile(r"https://api\.github\.com/repos/([^/]+/[^/]+)/issues/(\d+)$")
COMMENT_URL = re.compile(r"https://api\.github\.com/repos/([^/]+/[^/]+)/issues/comments/(\d+)$")
CASSETTES = "tests/cassettes/"


def response_bodies(cassette: dict[str, Any]) -> list[Any]:
    """The JSON values of the response bodies of a betamax cassette (bodies that are not JSON are skipped)."""
    out = []
    for interaction in cassette.get("http_interactions", []):
        body = interaction.get("response", {}).get("body", {})
        raw = body.get("string") or ""
        if not raw and body.get("base64_string"):
            data = base64.b64decode(body["base64_string"])
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            raw = data.decode("utf-8", "replace")
        if raw[:1] in ("{", "["):
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
    return out


def api_objects(value: Any) -> list[dict[str, Any]]:
    """Objects of a response: the value itself, the items of a list, or the ``items`` of a search result."""
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    if isinstance(value, dict):
        return [v for v in value.get("items", []) if isinstance(v, dict)] if "items" in value else [value]
    return []


def epoch_ms(stamp: str | None) -> int | None:
    """``2014-01-06T19:57:21Z`` -> epoch milliseconds."""
    if not stamp:
        return None
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def login(user: Any) -> str:
    return user.get("login", "ghost") if isinstance(user, dict) else "ghost"


def collect(
    cassettes: list[dict[str, Any]],
) -> tuple[dict[tuple[str, int], dict], dict[tuple[str, int], dict]]:
    """(issues by (repo, number), comments by (repo, number) -> {comment id: comment})."""
    issues: dict[tuple[str, int], dict] = {}
    comments: dict[tuple[str, int], dict[int, dict]] = {}
    for cassette in cassettes:
        for body in response_bodies(cassette):
            for obj in api_objects(body):
                url = obj.get("url", "")
                if (m := ISSUE_URL.match(url)) and isinstance(obj.get("title"), str):
                    issues[(m[1], int(m[2]))] = obj
                elif (m := COMMENT_URL.match(url)) and (i := ISSUE_URL.match(obj.get("issue_url", ""))):
                    comments.setdefault((i[1], int(i[2])), {})[int(m[2])] = obj
    return issues, comments


def issue_row(repo: str, number: int, issue: dict[str, Any], comments: dict[int, dict]) -> dict[str, Any]:
    """One row in the-stack-github-issues schema (see the module docstring)."""
    events = [{
        "action": "opened", "author": login(issue.get("user")), "comment_id": None,
        "datetime": epoch_ms(issue.get("created_at")), "title": issue["title"], "type": "issue",
        "text": issue.get("body") or "",
    }]  # fmt: skip
    for cid, c in sorted(comments.items(), key=lambda kv: (kv[1].get("created_at") or "", kv[0])):
        events.append({
            "action": "created", "author": login(c.get("user")), "comment_id": cid,
            "datetime": epoch_ms(c.get("created_at")), "title": None, "type": "comment", "text": c.get("body") or "",
        })  # fmt: skip
    if issue.get("closed_at") and isinstance(issue.get("closed_by"), dict):
        events.append({
            "action": "closed", "author": login(issue["closed_by"]), "comment_id": None,
            "datetime": epoch_ms(issue["closed_at"]), "title": None, "type": "issue", "text": "",
        })  # fmt: skip
    users = list(dict.fromkeys(e["author"] for e in events))
    pr = issue.get("pull_request")
    return {
        "repo": repo,
        "org": repo.split("/")[0],
        "issue_id": issue.get("id"),
        "issue_number": number,
        "pull_request": {"number": number, "repo": repo, "user_login": login(issue.get("user"))}
        if pr
        else None,
        "events": events,
        "usernames": users,
        "user_count": len(users),
        "event_count": len(events),
        "text_size": sum(len(e["text"]) for e in events),
    }


def read_cassettes(sdist: Path) -> list[dict[str, Any]]:
    """The cassettes of the github3.py sdist, in member-name order."""
    out = []
    with tarfile.open(sdist) as tf:
        members = sorted(
            (m for m in tf.getmembers() if CASSETTES in m.name and m.name.endswith(".json")),
            key=lambda m: m.name,
        )
        for m in members:
            f = tf.extractfile(m)
            if f is not None:
                out.append(json.loads(f.read()))
    return out


def build_issues(out: Path, sdist: Path | None = None) -> tuple[Path, int]:
    """Write ``<out>/issues/issues.jsonl.zst``; returns its path and the number of rows."""
    issues, comments = collect(read_cassettes(sdist or fetch(pins.GITHUB3)))
    rows = [issue_row(repo, n, issues[(repo, n)], comments.get((repo, n), {})) for repo, n in sorted(issues)]
    data = b"".join(json.dumps(r, sort_keys=True, ensure_ascii=False).encode() + b"\n" for r in rows)
    path = out / "issues" / "issues.jsonl.zst"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor(level=19).compress(data))
    return path, len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=DATA, help="output folder (the sample data folder)")
    args = ap.parse_args(argv)
    path, n = build_issues(args.out)
    print(f"{path}: {n} issue threads, {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
