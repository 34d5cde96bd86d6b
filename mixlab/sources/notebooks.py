"""Jupyter notebooks (``*.ipynb``, nbformat 4, also 3) -> one datatrove Document per notebook.

Text (pure function :func:`notebook_to_text`): markdown (and raw) cells as text, code cells either fenced
(```` ```python ```` ... ```` ``` ````) or as-is, cells separated by a blank line, outputs always dropped.
Metadata: ``lang`` (kernel language, e.g. ``python``), ``n_code_cells``, ``n_markdown_cells``, ``path``,
``source_kind``.

Bad input, counted: ``no_code_cells`` (fewer than ``min_code_cells``), ``broken_notebook`` (not JSON, truncated, not a notebook dict), ``non_utf8``, ``empty``
(no cell text), ``too_large`` (file size above the limit, checked before reading when the size is known).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from mixlab.sources.base import AccountedReader


def _cell_source(cell: dict[str, Any], key: str) -> str:
    src = cell.get(key, "")
    if isinstance(src, list):
        return "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def notebook_cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    """The cells of an nbformat 4 (``cells``) or 3 (``worksheets[*].cells``) notebook; ValueError otherwise."""
    if isinstance(nb.get("cells"), list):
        return [c for c in nb["cells"] if isinstance(c, dict)]
    sheets = nb.get("worksheets")
    if isinstance(sheets, list):
        return [
            c for ws in sheets if isinstance(ws, dict) for c in ws.get("cells", []) if isinstance(c, dict)
        ]
    raise ValueError("not a notebook: no cells")


def notebook_language(nb: dict[str, Any]) -> str:
    """Kernel language from ``metadata.kernelspec.language`` / ``metadata.language_info.name``; 'python' default."""
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    for key, sub in (("kernelspec", "language"), ("language_info", "name")):
        val = meta.get(key, {}).get(sub) if isinstance(meta.get(key), dict) else None
        if isinstance(val, str) and val:
            return val.lower()
    return "python"


def notebook_to_text(nb: dict[str, Any], code_format: str = "fenced", include_markdown: bool = True) -> str:
    """Training text of a parsed notebook; ``code_format`` is ``"fenced"`` or ``"plain"``. Outputs are dropped."""
    lang = notebook_language(nb)
    parts: list[str] = []
    for cell in notebook_cells(nb):
        kind = cell.get("cell_type")
        if kind == "code":
            src = _cell_source(cell, "source") or _cell_source(cell, "input")  # nbformat 3 uses "input"
            src = src.strip("\n")
            if src.strip():
                parts.append(f"```{lang}\n{src}\n```" if code_format == "fenced" else src)
        elif kind in ("markdown", "raw", "heading") and include_markdown:
            src = _cell_source(cell, "source").strip()
            if src:
                parts.append(src)
    return "\n\n".join(parts) + ("\n" if parts else "")


class NotebookReader(AccountedReader):
    """Accounted reader: one Document per ``.ipynb`` file (a notebook is one record)."""

    name = "mixlab notebooks"
    suffixes = (".ipynb",)

    def __init__(
        self,
        input_path: str,
        code_format: str = "fenced",
        include_markdown: bool = True,
        min_code_cells: int = 0,
        max_doc_bytes: int = 16 << 20,
        limit: int = -1,
        **reader_options: Any,
    ):
        super().__init__(input_path, "notebooks", max_doc_bytes, limit, **reader_options)
        self.code_format = code_format
        self.include_markdown = include_markdown
        self.min_code_cells = min_code_cells

    def read_records(self, filepath: str) -> Iterator[Any]:
        try:
            size = self.data_folder.size(filepath)
        except (OSError, NotImplementedError):
            size = None
        if size is not None and size > 4 * self.max_doc_bytes:  # outputs dominate big files; still bounded
            yield self.drop("too_large", size)
            return
        with self.data_folder.open(filepath, "rb") as f:
            raw = f.read()
        try:
            nb = orjson.loads(raw)
            if not isinstance(nb, dict):
                raise ValueError("not an object")
            cells = notebook_cells(nb)
            text = notebook_to_text(nb, self.code_format, self.include_markdown)
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
            try:
                raw.decode("utf-8")
                reason = "broken_notebook"
            except UnicodeDecodeError:
                reason = "non_utf8"
            yield self.drop(reason, len(raw))
            return
        meta = {
            "lang": notebook_language(nb),
            "n_code_cells": sum(1 for c in cells if c.get("cell_type") == "code"),
            "n_markdown_cells": sum(1 for c in cells if c.get("cell_type") == "markdown"),
            "path": filepath,
        }
        if meta["n_code_cells"] < self.min_code_cells:
            yield self.drop("no_code_cells", len(raw))
            return
        yield self.make_doc(text, filepath, meta, len(raw))
