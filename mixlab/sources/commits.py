"""CommitPack rows -> training documents "commit message + unified diff".

Row schema (CommitPack / CommitPackFT): commit, old_file, new_file, old_contents, new_contents, subject, message,
lang, license, repos. Files are JSONL (plain, .gz or .zst). The text (pure function :func:`commit_to_text`) is::

    <message (or subject) stripped>

    diff --git a/<old_file> b/<new_file>
    --- a/<old_file>
    +++ b/<new_file>
    @@ -l,n +l,n @@
    ...

computed with :func:`difflib.unified_diff` (``context_lines`` of context); a line without a final newline gets
the ``\\ No newline at end of file`` marker like git. Metadata: ``lang``, ``commit``, ``repos``, ``license``,
``path`` (new_file), ``source_kind``.

Bad input, counted: everything of the JSONL reader (``malformed_json``, ``non_utf8``, ``corrupt_zstd``...),
``missing_field`` (no old/new contents or file names), ``empty_diff`` (identical contents),
``diff_too_large`` (more changed+context lines than ``max_diff_lines``), ``empty``, ``too_large``.
"""

from __future__ import annotations

import difflib
from typing import Any

from mixlab.sources.base import Skip
from mixlab.sources.slimpajama import JsonlRecordReader

NO_NEWLINE = "\\ No newline at end of file\n"


def unified_diff(old: str, new: str, old_file: str, new_file: str, context_lines: int = 3) -> list[str]:
    """git-style unified diff lines (each ending with a newline) of ``old`` -> ``new``; [] when identical."""
    lines: list[str] = []
    for line in difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{old_file}",
        tofile=f"b/{new_file}",
        n=context_lines,
    ):
        if line.endswith("\n"):
            lines.append(line)
        else:
            lines.extend((line + "\n", NO_NEWLINE))
    return lines


def commit_to_text(row: dict[str, Any], context_lines: int = 3, max_diff_lines: int = 5000) -> str | Skip:
    """Training text of one CommitPack row, or a Skip naming why it cannot become one."""
    old, new = row.get("old_contents"), row.get("new_contents")
    old_file, new_file = (
        row.get("old_file") or row.get("new_file"),
        row.get("new_file") or row.get("old_file"),
    )
    if not isinstance(old, str) or not isinstance(new, str) or not old_file:
        return Skip("missing_field")
    diff = unified_diff(old, new, old_file, new_file, context_lines)
    if not diff:
        return Skip("empty_diff")
    if len(diff) > max_diff_lines:
        return Skip("diff_too_large")
    message = row.get("message") or row.get("subject") or ""
    message = message.strip() if isinstance(message, str) else ""
    header = f"diff --git a/{old_file} b/{new_file}\n"
    return (f"{message}\n\n" if message else "") + header + "".join(diff)


class CommitReader(JsonlRecordReader):
    """Accounted CommitPack reader: one Document per commit row."""

    name = "mixlab commits"

    def __init__(
        self,
        input_path: str,
        context_lines: int = 3,
        max_diff_lines: int = 5000,
        max_doc_bytes: int = 16 << 20,
        limit: int = -1,
        **reader_options: Any,
    ):
        super().__init__(input_path, "commits", max_doc_bytes, limit, **reader_options)
        self.context_lines = context_lines
        self.max_diff_lines = max_diff_lines

    def adapt(self, rec: dict[str, Any], doc_id: str, nbytes: int) -> Any:
        text = commit_to_text(rec, self.context_lines, self.max_diff_lines)
        if isinstance(text, Skip):
            return self.drop(text.reason, nbytes)
        lang = rec.get("lang")
        meta = {
            "lang": lang if isinstance(lang, str) else "unknown",
            "commit": str(rec.get("commit", "")),
            "repos": str(rec.get("repos", "")),
            "license": str(rec.get("license", "")),
            "path": str(rec.get("new_file") or rec.get("old_file")),
        }
        commit = meta["commit"]
        return self.make_doc(text, f"{commit}:{meta['path']}" if commit else doc_id, meta, nbytes)
