"""Curation as datatrove pipelines: filters, dedup and statistics, built from a recipe source's typed options.

The options themselves are recipe data (:mod:`mixlab.recipe.sources`); this package builds and runs pipelines
from them and from the readers of :mod:`mixlab.sources` (which never import curate). Modules: ``stats``
(CurationStats, no datatrove), ``code_in_text``, ``text``, ``code_quality``, ``markup``, ``dedup`` (datatrove
steps), ``pipeline`` (``build_pipeline``, ``run_curation``: the one entry point of ``mixlab curate`` and
``pipelines/*.py``), ``script`` (the ``pipelines/*.py`` command line) and ``detector_eval`` (the code-in-text
detector's labeled evaluation set: format and loader; built by ``mixlab.builders.detector_set``). Importing this package imports nothing heavy.
"""
