"""Real commits in CommitPack's row shape, from Debian quilt patch series (used by :mod:`mixlab.builders.sample`).

Each patch of a series is one change: its header (git ``format-patch`` mail, ``git log`` text, DEP-3
``Description:``/``Subject:`` fields, ``# DP:`` lines or free text) gives ``subject`` and ``message``; the
file before and after applying it with ``patch`` gives ``old_contents`` and ``new_contents``. Patches are
applied in series order onto a copy of the pristine upstream files (``direction="forward"``), or, for a tree
that ships with the series already applied (Debian's glibc-source and rust-src do), reverted in reverse
order (``direction="reverse"``). Only patches that apply cleanly and change exactly one file of a known
language become rows; ``commit`` is the upstream sha when the header names one, else the sha1 of the
patch file.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COMMIT_FIELDS = (
    "commit",
    "old_file",
    "new_file",
    "old_contents",
    "new_contents",
    "subject",
    "message",
    "lang",
    "license",
    "repos",
)

LANG_BY_EXT = {
    ".c": "C",
    ".h": "C",
    ".rs": "Rust",
    ".py": "Python",
    ".sh": "Shell",
    ".mk": "Makefile",
    ".toml": "TOML",
    ".awk": "Awk",
    ".pl": "Perl",
    ".js": "JavaScript",
    ".css": "CSS",
    ".md": "Markdown",
    ".S": "Assembly",
    ".json": "JSON",
    ".yml": "YAML",
    ".yaml": "YAML",
    ".html": "HTML",
    ".cc": "C++",
    ".cpp": "C++",
}
LANG_BY_NAME = {
    "Makefile": "Makefile",
    "Makeconfig": "Makefile",
    "Makerules": "Makefile",
    "configure": "Shell",
}
MAX_CONTENT_BYTES = 60_000


@dataclass(frozen=True)
class PatchSeries:
    """A quilt series and the trees to apply it to."""

    name: str
    patches_dir: Path  # folder holding ``series`` and the patches
    pristine: Path  # upstream tree (unpatched for "forward", patched for "reverse")
    direction: str  # "forward" or "reverse"
    repos: str  # CommitPack ``repos`` value
    license: str  # CommitPack ``license`` value (lower-case SPDX-like, as CommitPack spells it)


def commit_lang(path: str) -> str | None:
    """CommitPack language of a file path, None when not a language we keep."""
    name = path.rsplit("/", 1)[-1]
    if name in LANG_BY_NAME:
        return LANG_BY_NAME[name]
    m = re.search(r"(\.[A-Za-z]+)$", name)
    return LANG_BY_EXT.get(m.group(1)) if m else None


def series_patches(patches_dir: Path) -> list[Path]:
    """Patch files in ``series`` order (comments and blank lines skipped, ``-p`` options ignored)."""
    out = []
    for line in (patches_dir / "series").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(patches_dir / line.split()[0])
    return out


def patch_targets(diff: str) -> list[str]:
    """Paths (``-p1``) of the files a unified diff touches."""
    paths = []
    for m in re.finditer(r"^\+\+\+ (\S+)", diff, re.M):
        p = m.group(1)
        if p == "/dev/null":
            continue
        p = p.split("/", 1)[1] if "/" in p else p
        if p not in paths:
            paths.append(p)
    for m in re.finditer(r"^--- (\S+)", diff, re.M):  # deleted files
        p = m.group(1)
        if p != "/dev/null" and "/" in p and p.split("/", 1)[1] not in paths:
            nxt = diff[m.end() : m.end() + 200]
            if "+++ /dev/null" in nxt:
                paths.append(p.split("/", 1)[1])
    return paths


def _split_header(text: str) -> str:
    m = re.search(r"^(diff |--- |Index: |=+\n---)", text, re.M)
    return text[: m.start()] if m else text


def parse_header(text: str) -> tuple[str | None, str]:
    """(upstream commit sha or None, full commit message) of a patch's header."""
    head = _split_header(text)
    sha = None
    m = re.match(r"^From ([0-9a-f]{40}) ", head) or re.search(r"^commit ([0-9a-f]{40})\b", head, re.M)
    if m:
        sha = m.group(1)
    lines = head.split("\n")
    # git format-patch mail
    subj = re.search(r"^Subject: (.*(?:\n .*)*)", head, re.M)
    if re.match(r"^From [0-9a-f]{40} ", head) or (subj and re.search(r"^From: ", head, re.M)):
        subject = re.sub(r"^\[PATCH[^\]]*\]\s*", "", re.sub(r"\s*\n\s*", " ", subj.group(1))) if subj else ""
        body = head[subj.end() :] if subj else ""
        body = re.split(r"^---\s*$", body, maxsplit=1, flags=re.M)[0]
        body = "\n".join(
            line for line in body.split("\n") if not re.match(r"^[\w-]+: ", line) or line.startswith("  ")
        )
        return sha, _join(subject, body)
    # git log text
    if re.search(r"^commit [0-9a-f]{40}", head, re.M):
        m = re.search(r"^Date:.*\n\n((?:    .*\n|\n)+)", head, re.M)
        body = "\n".join(line[4:] for line in m.group(1).split("\n")) if m else ""
        return sha, _join("", body)
    # DEP-3
    fields = re.search(r"^(Description|Subject): ?(.*(?:\n[ \t].*)*)", head, re.M)
    if fields:
        raw = fields.group(2).split("\n")
        first = raw[0].strip()
        rest = [("" if ln.strip() == "." else ln[1:]) for ln in raw[1:]]
        return sha, _join(first, "\n".join(rest))
    dp = [re.sub(r"^# DP: ?", "", ln) for ln in lines if ln.startswith("# DP:")]
    if dp:
        dp = [re.sub(r"^Description: ?", "", ln) for ln in dp if not DP_META.match(ln)]
        return sha, _join("", "\n".join(dp))
    free = [
        ln for ln in lines if not re.match(r"^( \S.*\|\s+\d+|\s*\d+ files? changed|---\s*$|Index:|=+$)", ln)
    ]
    return sha, _join("", "\n".join(free))


DP_META = re.compile(
    r"^(Related bugs|Dpatch author|Patch author|Author|Upstream status|Status|Date|All lines)", re.I
)
CHANGELOG_HEAD = re.compile(r"^\d{4}-\d{2}-\d{2}\s+.*<[^>]+>\s*$")


def _join(subject: str, body: str) -> str:
    lines = body.strip("\n").split("\n")
    if not subject and lines and CHANGELOG_HEAD.match(lines[0]):  # GNU ChangeLog entry: drop the date line
        lines = [re.sub(r"^\t(\* )?", "", ln) for ln in lines[1:]]
    body = "\n".join(lines).strip("\n")
    body = "\n".join(line.rstrip() for line in body.split("\n")).strip()
    msg = f"{subject.strip()}\n\n{body}" if subject.strip() and body else (subject.strip() or body)
    return msg.strip() + "\n"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8") if path.exists() else ""
    except UnicodeDecodeError:
        return None


def series_commits(series: PatchSeries, work: Path) -> list[dict[str, Any]]:
    """CommitPack rows for the single-file patches of ``series`` that apply cleanly; ``work`` is scratch."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    patches = series_patches(series.patches_dir)
    if series.direction == "reverse":
        patches = patches[::-1]
    rows: list[dict[str, Any]] = []
    for patch in patches:
        if not patch.is_file():
            continue
        raw = patch.read_bytes()
        text = raw.decode("utf-8", errors="replace")
        targets = patch_targets(text)
        for t in targets:
            dst, src = work / t, series.pristine / t
            if not dst.exists() and src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
        before = {t: _read(work / t) for t in targets}
        args = [
            "patch",
            "-p1",
            "-s",
            "-f",
            "--no-backup-if-mismatch",
            "-r",
            "-",
            "-d",
            str(work),
            "-i",
            str(patch),
        ]
        if series.direction == "reverse":
            args.insert(1, "-R")
        dry = subprocess.run([*args, "--dry-run"], capture_output=True)
        if dry.returncode != 0:
            continue
        subprocess.run(args, capture_output=True, check=True)
        after = {t: _read(work / t) for t in targets}
        changed = [t for t in targets if before[t] != after[t]]
        if len(changed) != 1:
            continue
        path = changed[0]
        old, new = (
            (before[path], after[path]) if series.direction == "forward" else (after[path], before[path])
        )
        lang = commit_lang(path)
        if lang is None or old is None or new is None:
            continue
        if max(len(old.encode()), len(new.encode())) > MAX_CONTENT_BYTES:
            continue
        sha, message = parse_header(text)
        if not message.strip():  # no description: the patch's name is its only message
            message = patch.name.rsplit(".", 1)[0] + "\n"
        subject = message.split("\n", 1)[0]
        rows.append(
            {
                "commit": sha or hashlib.sha1(raw).hexdigest(),
                "old_file": path,
                "new_file": path,
                "old_contents": old,
                "new_contents": new,
                "subject": subject,
                "message": message,
                "lang": lang,
                "license": series.license,
                "repos": series.repos,
            }
        )
    shutil.rmtree(work)
    return rows
