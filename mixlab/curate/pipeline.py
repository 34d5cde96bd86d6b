"""Curation pipelines: reader -> filters -> writer per source kind, run with a datatrove executor.

Contracts:
- One entry point: :func:`run_curation` (typed options in, statistics out). ``mixlab curate`` and the
  ``pipelines/*.py`` scripts call it with the same arguments: a recipe source's ``filters`` (its typed options,
  validated once when the recipe loaded) and its resolved input path. The options' class selects the kind.
- :func:`build_pipeline` returns plain datatrove ``PipelineStep`` lists; the steps receive the options object
  itself (no copies of its fields, no second validation). Decontamination (:mod:`mixlab.curate.decontaminate`)
  follows the kind's filters. :func:`build_stages` wraps them in the stages of whole-source dedup
  (:mod:`mixlab.curate.dedup`): with ``dedup: exact`` and ``tasks > 1``, or ``dedup: minhash``, the stages after
  the first log to ``<logging_dir>/dedup/<stage>`` and keep their data in ``<logging_dir>/dedup/work`` (on shared
  storage for Slurm / Ray; removed after a complete local run); each stage ``depends=`` on the previous one.
- Output: kept documents as JSONL, zstd-compressed (datatrove's ``JsonlWriter``; datatrove supports zstd through
  fsspec, we register a level-3 zstd codec for speed), one file per task: ``<output_folder>/<rank:05d>.jsonl.zst``,
  records ``{"text", "id", "metadata"}`` with ``metadata.source_kind`` and, for code kinds, ``metadata.lang``.
- :func:`run_curation` runs the pipeline (local, Slurm or Ray executor) and returns the merged
  :class:`~mixlab.curate.stats.CurationStats` as a dict (plus ``logging_dir``, ``output_folder``, ``complete``).
- Restartability: datatrove marks each finished task in ``<logging_dir>/completions/<rank>`` (each stage in its
  own logging dir); a rerun with the
  same ``logging_dir`` and ``tasks`` skips finished tasks, and an unfinished task rewrites its one output file
  from scratch (files are opened with mode ``wb``), so output is never duplicated. Keep ``tasks`` fixed across
  reruns: the file -> task sharding depends on it.
"""

from __future__ import annotations

from typing import Any, Literal

import fsspec.compression
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers import JsonlWriter

from mixlab.curate.stats import DEDUP_LOGS, curation_stats, estimate_tokens
from mixlab.executors import make_executor, wait_for_tasks  # noqa: F401 (make_executor: re-exported)
from mixlab.recipe.sources import (
    CommitOptions,
    CommonOptions,
    IssueOptions,
    MarkupOptions,
    NotebookOptions,
    SlimPajamaOptions,
    SourceOptions,
    StackExchangeOptions,
    StackOptions,
    SyntheticOptions,
)
from mixlab.sources.base import text_nbytes

CODE_KINDS = frozenset({"stack", "markup", "notebooks", "commits"})
ZSTD_LEVEL = 3
FAST_ZSTD = (
    "mixlab-zstd"  # fsspec's own "zstd" writer uses level 10: ~4x slower than level 3 for ~8% smaller files
)


def _fast_zstd(infile: Any, mode: str = "rb") -> Any:
    import zstandard

    if "r" in mode:
        return zstandard.ZstdDecompressor().stream_reader(infile)
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).stream_writer(infile)


fsspec.compression.register_compression(FAST_ZSTD, _fast_zstd, [], force=True)


class CuratedJsonlWriter(JsonlWriter):
    """datatrove JsonlWriter (zstd level 3 with checksums, ``${rank}.jsonl.zst``) that also counts what it keeps.

    Stats: ``docs_kept``, ``bytes_kept`` and, with ``by_lang``, ``lang_docs_<lang>``, ``lang_bytes_<lang>``,
    ``lang_tokens_<lang>`` (estimated tokens). Counters are flushed when the writer closes.
    """

    name = "🐿 mixlab curated jsonl.zst"

    def __init__(self, output_folder: str, by_lang: bool = False):
        super().__init__(output_folder, output_filename="${rank}.jsonl.zst", compression=FAST_ZSTD)
        self.by_lang = by_lang
        self._kept: dict[str, int] = {}

    def _default_adapter(self, document: Document) -> dict:
        """``{"text", "id", "metadata"}`` without dataclasses.asdict's deep copy (a third of the writer's time)."""
        return {"text": document.text, "id": document.id, "metadata": document.metadata}

    def write(self, document: Document, rank: int = 0, **kwargs: Any) -> None:
        super().write(document, rank, **kwargs)
        kept = self._kept
        nbytes = text_nbytes(document.text)
        kept["docs_kept"] = kept.get("docs_kept", 0) + 1
        kept["bytes_kept"] = kept.get("bytes_kept", 0) + nbytes
        if self.by_lang:
            lang = str(document.metadata.get("lang") or "unknown")
            for label, value in (
                (f"lang_docs_{lang}", 1),
                (f"lang_bytes_{lang}", nbytes),
                (f"lang_tokens_{lang}", estimate_tokens(document.text)),
            ):
                kept[label] = kept.get(label, 0) + value

    def close(self) -> None:
        for label, value in self._kept.items():
            self.stat_update(label, value=value)
        self._kept = {}
        super().close()


def _reader(input_path: str, o: CommonOptions) -> PipelineStep:
    if not input_path or not input_path.strip():
        raise ValueError(
            f"source kind {o.kind!r} needs an input path (a folder, file, glob or URL); got {input_path!r}"
        )
    common = {
        "max_doc_bytes": o.max_doc_bytes,
        "limit": o.limit,
        "control_chars": o.control_chars,
        "keep_form_feed": o.keep_form_feed,
        "max_binary_fraction": o.max_binary_fraction,
    }
    if isinstance(o, SlimPajamaOptions):
        from mixlab.sources.slimpajama import SlimPajamaReader

        return SlimPajamaReader(input_path, **common)
    if isinstance(o, StackOptions | MarkupOptions):
        from mixlab.sources.stack import StackReader

        return StackReader(input_path, source_kind=o.kind, **common)
    if isinstance(o, NotebookOptions):
        from mixlab.sources.notebooks import NotebookReader

        return NotebookReader(input_path, o.code_format, o.include_markdown, min_code_cells=o.min_code_cells, **common)
    if isinstance(o, CommitOptions):
        from mixlab.sources.commits import CommitReader

        return CommitReader(input_path, o.context_lines, o.max_diff_lines, **common)
    if isinstance(o, StackExchangeOptions):
        from mixlab.sources.stackexchange import StackExchangeReader

        return StackExchangeReader(input_path, o.min_answers, o.max_answers, o.min_answer_score, **common)
    if isinstance(o, IssueOptions):
        from mixlab.sources.issues import IssueReader

        return IssueReader(
            input_path, o.drop_bots, o.bot_authors, o.mask_usernames, o.include_pull_requests, **common
        )
    raise TypeError(f"no reader for options {type(o).__name__}")


def _filters(o: CommonOptions) -> list[PipelineStep]:
    from mixlab.curate.code_quality import CodeQualityFilter, LanguageFilter
    from mixlab.curate.markup import MarkupFilter
    from mixlab.curate.text import MinLengthFilter, SetNameFilter

    steps: list[PipelineStep] = []
    if isinstance(o, SlimPajamaOptions):
        steps.append(SetNameFilter(o))
        if o.code_mode != "off":
            from mixlab.curate.code_in_text import CodeInTextFilter

            steps.append(CodeInTextFilter(o.code_threshold, o.code_mode, o.strip_min_lines))
    elif isinstance(o, StackOptions):
        steps += [LanguageFilter(o.languages), CodeQualityFilter(o)]
    elif isinstance(o, MarkupOptions):
        steps += [LanguageFilter(o.languages), MarkupFilter(o)]
    elif isinstance(o, CommitOptions) and o.languages is not None:
        steps.append(LanguageFilter(o.languages))
    if o.min_chars > 0 and not isinstance(o, MarkupOptions):  # MarkupFilter applies min_chars itself
        steps.append(MinLengthFilter(o.min_chars))
    return steps


def _head(options: CommonOptions, input_path: str, index: Any = None) -> list[PipelineStep]:
    """reader -> kind-specific filters -> (min length) -> (decontamination: ``index`` or the shipped sets')."""
    steps = [_reader(input_path, options), *_filters(options)]
    if options.decontaminate:
        from mixlab.curate.decontaminate import DecontaminationFilter, shipped_index

        steps.append(DecontaminationFilter(index or shipped_index(options.decontaminate_ngram)))
    return steps


class SpillWriter(CuratedJsonlWriter):
    """Documents between the stages of a multi-stage curation (same format); counts nothing: the final writer does."""

    name = "🐿 mixlab spill jsonl.zst"

    def write(self, document: Document, rank: int = 0, **kwargs: Any) -> None:
        JsonlWriter.write(self, document, rank, **kwargs)


def build_stages(
    options: SourceOptions, input_path: str, output_folder: str, work_folder: str, tasks: int = 1, index: Any = None
) -> list[Any]:
    """The successive datatrove stages of one source's curation (:class:`mixlab.curate.dedup.DedupStage` list):
    whole-source dedup per ``options.dedup`` (:func:`mixlab.curate.dedup.dedup_stages`; intermediate data under
    ``work_folder``) around :func:`build_pipeline`'s steps; one stage for synthetic sources."""
    from mixlab.curate.dedup import DedupStage, dedup_stages, minhash_config

    if isinstance(options, SyntheticOptions) or not isinstance(options, CommonOptions):
        return [DedupStage("curate", build_pipeline(options, input_path, output_folder), tasks)]
    config = minhash_config(options.minhash_ngrams, options.minhash_buckets, options.minhash_hashes_per_bucket)
    writer = CuratedJsonlWriter(output_folder, options.kind in CODE_KINDS)
    spill = SpillWriter(f"{work_folder.rstrip('/')}/spill")
    return dedup_stages(_head(options, input_path, index), writer, spill, work_folder, tasks, options.dedup, config)


def build_synthetic_pipeline(output_folder: str, o: SyntheticOptions) -> list[PipelineStep]:
    """Generator and/or user reader -> ``VerifiedSyntheticFilter`` (sandbox) -> :class:`CuratedJsonlWriter`, so
    that ``curation_stats(logging_dir, "synthetic")`` accounts for every problem."""
    from mixlab.sources.synthetic import (
        SyntheticProblemGenerator,
        SyntheticProblemReader,
        VerifiedSyntheticFilter,
    )

    steps: list[PipelineStep] = []
    if o.generate:
        steps.append(SyntheticProblemGenerator(o.generate, o.seed, o.corrupt_fraction))
    if o.problems_path:
        steps.append(SyntheticProblemReader(o.problems_path))
    steps.append(VerifiedSyntheticFilter(o.timeout_s, o.memory_mb, o.workers, o.include_tests))
    steps.append(CuratedJsonlWriter(output_folder, by_lang=True))
    return steps


def build_pipeline(options: SourceOptions, input_path: str, output_folder: str) -> list[PipelineStep]:
    """The pipeline of ONE task: reader -> kind-specific filters -> (min length) -> (decontamination) -> (exact
    dedup within the task unless ``dedup: none``) -> CuratedJsonlWriter; for synthetic options, generator/reader ->
    sandbox verifier -> writer (``input_path``, if any, is the problems file unless ``problems_path`` is set).
    Whole-source and near dedup take several stages: :func:`build_stages`."""
    if isinstance(options, SyntheticOptions):
        if input_path and not options.problems_path:
            options = options.model_copy(update={"problems_path": input_path})
        return build_synthetic_pipeline(output_folder, options)
    if not isinstance(options, CommonOptions):
        raise TypeError(
            f"options must be a source options model (SlimPajamaOptions, StackOptions, ... from "
            f"mixlab.recipe.sources), got {type(options).__name__}; validate a dict with OPTIONS_BY_KIND[kind]"
        )
    from mixlab.curate.dedup import ExactDedupFilter

    dedup = [ExactDedupFilter()] if options.dedup != "none" else []
    return [*_head(options, input_path), *dedup, CuratedJsonlWriter(output_folder, options.kind in CODE_KINDS)]


def default_logging_dir(output_folder: str) -> str:
    """``<output_folder>_logs``: next to the output, so readers of the output folder never see log files."""
    return f"{output_folder.rstrip('/')}_logs"


def run_curation(
    options: SourceOptions,
    input_path: str,
    output_folder: str,
    *,
    executor: Literal["local", "slurm", "ray"] = "local",
    tasks: int = 1,
    workers: int = 1,
    logging_dir: str | None = None,
    wait: bool = False,
    **executor_kwargs: Any,
) -> dict[str, Any]:
    """Curate one source: ``options`` (a recipe source's typed ``filters``; its class selects the kind) applied to
    ``input_path`` (resolved: absolute, or a URL; ``""`` for generated sources), kept documents written to
    ``output_folder``. Returns the merged CurationStats as a dict, plus ``logging_dir`` (default
    ``<output_folder>_logs``), ``output_folder`` and ``complete``.

    ``executor_kwargs`` go to the datatrove executor (Slurm: ``partition`` required, ``time``, ``cpus_per_task``,
    ``mem_per_cpu_gb``, ``qos``, ``venv_path``...; Ray: ``cpus_per_task``, ``mem_per_cpu_gb``...). With the Slurm
    executor the jobs are only submitted (``wait=True``: waited for): the result has ``complete=False`` and the stats
    are gathered later with ``curation_stats(logging_dir, options.kind, tasks)``.
    """
    logging_dir = (logging_dir or default_logging_dir(output_folder)).rstrip("/")
    stages = build_stages(options, input_path, output_folder, f"{logging_dir}/{DEDUP_LOGS}/work", tasks)
    exe = None
    for stage in stages:  # each stage depends on the previous one: running the last runs (or submits) them all
        stage_logs = logging_dir if stage.name == "curate" else f"{logging_dir}/{DEDUP_LOGS}/{stage.name}"
        job = f"mixlab-curate-{options.kind}" + ("" if stage.name == "curate" else f"-{stage.name}")
        kwargs = {**executor_kwargs, **({"depends": exe} if exe is not None else {})}
        exe = make_executor(executor, stage.pipeline, stage.tasks, min(workers, stage.tasks), stage_logs, job, **kwargs)
    assert exe is not None
    exe.run()
    if wait and executor == "slurm":  # Slurm's run() only submits; wait=True returns when every task is done
        wait_for_tasks(stage_logs, tasks, timeout_s=24 * 3600)
    stats = curation_stats(logging_dir, options.kind, tasks)
    complete = stats.tasks == tasks
    if complete:
        stats.check()
        if executor == "local" and len(stages) > 1:  # signatures and spilled documents are no longer needed
            fs, work = fsspec.core.url_to_fs(f"{logging_dir}/{DEDUP_LOGS}/work")
            if fs.exists(work):
                fs.rm(work, recursive=True)
    return {
        **stats.model_dump(),
        "logging_dir": logging_dir,
        "output_folder": output_folder,
        "complete": complete,
    }
