"""Downstream task harness: the paper's three evaluation categories on any language model (public names).

arXiv 2408.10914 groups its benchmarks into natural-language reasoning (multiple choice scored by
log-likelihood), world knowledge (generative exact match) and code (pass@k by executing completions). The
harness is split by concern, each module with its own contract:

- :mod:`mixlab.eval.records`: task records, :class:`Task`, the :class:`LanguageModel` protocol, :class:`BaseLM`;
- :mod:`mixlab.eval.scoring`: multiple choice (acc / acc_norm), exact match, pass@k (code run in the sandbox);
- :mod:`mixlab.eval.suite`: :func:`evaluate_task`, :class:`TaskSuite` and the category means;
- :mod:`mixlab.eval.readers`: local / compressed / fsspec JSON and JSON Lines files, archive members;
- :mod:`mixlab.eval.formats`: one record converter per public benchmark format (``FORMATS``);
- :mod:`mixlab.eval.loaders`: the ``name -> loader`` table (``LOADERS``, :func:`load_task`) and shipped data.

This module re-exports their public names, so ``from mixlab.eval.tasks import ...`` is the one import a
caller of the harness needs. :class:`mixlab.eval.lm.MixlabLM` is the :class:`LanguageModel` of mixlab
checkpoints; :mod:`mixlab.eval.run` builds the named suites.
"""

from __future__ import annotations

from mixlab.eval.formats import FORMATS, HUMANEVAL_STOP, MBPP_STOP
from mixlab.eval.loaders import (
    DATA_DIR,
    LOADERS,
    QUARTZ_MEMBER,
    humaneval,
    humaneval_path,
    load_bigbench,
    load_evals_mc,
    load_format,
    load_piqa,
    load_task,
    shipped_qa_wikidata,
    shipped_quartz,
)
from mixlab.eval.readers import read_json, read_records
from mixlab.eval.records import (
    CATEGORIES,
    DEFAULT_METRIC,
    QA_STOP,
    BaseLM,
    Category,
    Code,
    Generative,
    Item,
    LanguageModel,
    MultipleChoice,
    Task,
    truncate_at_stop,
)
from mixlab.eval.scoring import (
    argmax_first,
    code_program,
    exact_match,
    normalize_answer,
    pass_at_k,
    score_code,
    score_generative,
    score_multiple_choice,
)
from mixlab.eval.suite import SuiteResult, TaskResult, TaskSuite, category_means, evaluate_task

__all__ = [
    "CATEGORIES", "DATA_DIR", "DEFAULT_METRIC", "FORMATS", "HUMANEVAL_STOP", "LOADERS", "MBPP_STOP", "QA_STOP",
    "QUARTZ_MEMBER", "BaseLM", "Category", "Code", "Generative", "Item", "LanguageModel", "MultipleChoice",
    "SuiteResult", "Task", "TaskResult", "TaskSuite", "argmax_first", "category_means", "code_program",
    "evaluate_task", "exact_match", "humaneval", "humaneval_path", "load_bigbench", "load_evals_mc", "load_format",
    "load_piqa", "load_task", "normalize_answer", "pass_at_k", "read_json", "read_records", "score_code",
    "score_generative", "score_multiple_choice", "shipped_qa_wikidata", "shipped_quartz", "truncate_at_stop",
]
