"""The Stack (dedup) parquet reader -> datatrove Documents.

Layout: ``data/<lang-folder>/train-XXXXX-of-YYYYY.parquet`` (``hf://datasets/bigcode/the-stack-dedup/data`` online,
``mixlab/sample/data/stack/data`` offline). Row schema: content, lang, ext, size, avg_line_length,
max_line_length, alphanum_fraction, hexsha, max_stars_repo_name, max_stars_repo_path, licenses (list<string>).
Only the columns used are read. A folder input is read recursively (all ``*.parquet``); languages are selected
downstream by :class:`~mixlab.curate.code_quality.LanguageFilter` (online, point the path at the wanted folders,
e.g. ``.../the-stack-dedup/data/python`` per run, to avoid reading all 358 languages).

Documents: ``text`` = content, ``id`` = hexsha (``<file>/<row>`` when absent), metadata ``lang``, ``ext``,
``repo``, ``path``, ``hexsha``, ``licenses``, ``source_kind``.

Bad input, counted per row: ``missing_text``, ``non_utf8``, ``empty``, ``too_large``; a file pyarrow cannot open
or a batch it cannot decode: ``corrupt_parquet`` (one per file/batch, the file's remaining rows unread).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mixlab.sources.base import AccountedReader, Skip

META_COLUMNS = {  # parquet column -> metadata key
    "lang": "lang",
    "ext": "ext",
    "max_stars_repo_name": "repo",
    "max_stars_repo_path": "path",
    "hexsha": "hexsha",
    "licenses": "licenses",
    "max_stars_repo_licenses": "licenses",
}


class StackReader(AccountedReader):
    """Accounted parquet reader of The Stack layout (also used for the markup subset)."""

    name = "mixlab Stack parquet"
    suffixes = (".parquet",)

    def __init__(
        self,
        input_path: str,
        source_kind: str = "stack",
        max_doc_bytes: int = 16 << 20,
        limit: int = -1,
        batch_size: int = 512,
        text_column: str = "content",
        **reader_options: Any,
    ):
        super().__init__(input_path, source_kind, max_doc_bytes, limit, **reader_options)
        self.batch_size = batch_size
        self.text_column = text_column

    @staticmethod
    def _texts(column: Any) -> tuple[list[Any], list[int]]:
        """Python strings (None where not valid UTF-8 -> marked with size -1) and byte sizes of a column."""
        import pyarrow as pa
        import pyarrow.compute as pc

        sizes = pc.binary_length(column).to_pylist()
        try:
            return column.to_pylist(), sizes
        except (UnicodeDecodeError, pa.ArrowInvalid):
            texts: list[Any] = []
            for raw in column.cast(pa.binary()).to_pylist():
                try:
                    texts.append(None if raw is None else raw.decode("utf-8"))
                except UnicodeDecodeError:
                    texts.append(b"")  # marker: non-UTF-8
            return texts, sizes

    def read_records(self, filepath: str) -> Iterator[Any]:
        meta_cols: list[str] = []

        def columns(names: set[str]) -> list[str]:
            if self.text_column not in names:
                raise ValueError(f"{filepath}: no {self.text_column!r} column (columns: {sorted(names)})")
            meta_cols.extend(c for c in META_COLUMNS if c in names)
            return [self.text_column, *meta_cols]

        def decode(batch: Any) -> tuple[list[Any], list[int], dict[str, list[Any]]]:
            texts, sizes = self._texts(batch.column(self.text_column))
            return texts, sizes, {c: batch.column(c).to_pylist() for c in meta_cols}

        for item in self.parquet_batches(filepath, self.batch_size, decode, columns):
            if isinstance(item, Skip):
                yield item
                continue
            row, (texts, sizes, metas) = item
            for i, text in enumerate(texts):
                meta = {META_COLUMNS[c]: vals[i] for c, vals in metas.items()}
                doc_id = meta.get("hexsha") or f"{filepath}/{row + i}"
                if text == b"":
                    yield self.drop("non_utf8", sizes[i] or 0)
                else:
                    yield self.make_doc(text, doc_id, meta, sizes[i] or 0)
