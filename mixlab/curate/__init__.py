"""Curation as datatrove pipelines: filters, dedup and statistics, built from a recipe source's typed options.

The options themselves are recipe data (:mod:`mixlab.recipe.sources`); this package builds and runs pipelines
from them and from the readers of :mod:`mixlab.sources` (which never import curate). Modules: ``stats``
(CurationStats, no datatrove), ``code_in_text``, ``text``, ``code_quality``, ``markup``, ``dedup`` (whole-source
exact and MinHash dedup stages), ``decontaminate`` (n-gram overlap with the shipped evaluation sets), ``pipeline``
(``build_pipeline``, ``run_curation``: the one entry point of ``mixlab curate`` and ``pipelines/*.py``), ``script`` (the ``pipelines/*.py`` command line) and ``detector_eval`` (the code-in-text
detector's labeled evaluation set: format and loader; built by ``mixlab.builders.detector_set``). Importing this package imports nothing heavy.

Public face of the code-in-text detector: ``code_fraction(text) -> float`` (share of non-blank characters on code
lines; imported on first use, so ``import mixlab.curate`` stays light).
"""

from __future__ import annotations

from typing import Any

__all__ = ["code_fraction"]


def __getattr__(name: str) -> Any:
    if name == "code_fraction":
        from mixlab.curate.code_in_text import code_fraction

        return code_fraction
    raise AttributeError(f"module 'mixlab.curate' has no attribute {name!r}")
