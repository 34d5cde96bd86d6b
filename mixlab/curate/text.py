"""Text-source filters: SlimPajama set selection and a minimum length.

- :class:`SetNameFilter` drops documents whose ``metadata["redpajama_set_name"]`` is in the options' ``drop_sets``
  (default RedPajamaGithub and RedPajamaStackExchange: the paper's text-only SlimPajama) or, when ``keep_sets`` is
  given, not in it; it takes the :class:`~mixlab.recipe.sources.SlimPajamaOptions` object itself.
  Reason: ``set_<name>`` (one reason per set, so the stats show what each set lost).
- :class:`MinLengthFilter` drops documents shorter than ``min_chars`` characters (reason ``too_short``).
"""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from mixlab.recipe.sources import SlimPajamaOptions


def set_decision(set_name: str, drop_sets: frozenset[str], keep_sets: frozenset[str] | None) -> bool:
    """Pure core: keep a document of ``set_name``?"""
    if set_name in drop_sets:
        return False
    return keep_sets is None or set_name in keep_sets


class SetNameFilter(BaseFilter):
    """Keep/drop SlimPajama documents by ``redpajama_set_name``."""

    name = "🗂 SlimPajama sets"

    def __init__(self, options: SlimPajamaOptions = SlimPajamaOptions()):
        super().__init__()
        self.drop_sets = frozenset(options.drop_sets)
        self.keep_sets = frozenset(options.keep_sets) if options.keep_sets is not None else None

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        name = doc.metadata.get("redpajama_set_name", "unknown")
        return True if set_decision(name, self.drop_sets, self.keep_sets) else (False, f"set_{name}")


class MinLengthFilter(BaseFilter):
    """Drop documents with fewer than ``min_chars`` characters."""

    name = "📏 min length"

    def __init__(self, min_chars: int):
        super().__init__()
        self.min_chars = min_chars

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return True if len(doc.text) >= self.min_chars else (False, "too_short")
