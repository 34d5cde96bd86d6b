"""Whole-source deduplication: exact (content hash) and MinHash near-duplicates, as datatrove stages.

Contract:
- :func:`dedup_stages` turns one source's curation (``head``: reader + filters, per task; ``writer``: the final
  writer) into the successive stages that remove duplicates across EVERY task and input file of the source;
  :func:`mixlab.curate.pipeline.run_curation` runs them chained with datatrove's ``depends=`` on any executor.
- ``method="exact"``: identical texts (xxh64 of the UTF-8 text, datatrove's 64-bit exact dedup) keep one copy,
  the others are dropped as ``duplicate_exact``. ``method="minhash"``: the same, then MinHash near-duplicates of
  the survivors (datatrove's 4 MinHash steps, :class:`~datatrove.pipeline.dedup.minhash.MinhashConfig`) are
  dropped as ``duplicate_near``. ``method="none"``: one stage, ``head + writer``.
- Plan with ``tasks > 1``: ``curate`` (``head`` -> spill writer -> exact signatures), ``exact_find`` (1 task),
  [``minhash_signatures`` (re-read spill -> exact filter -> signatures), ``minhash_buckets`` (one task per
  bucket), ``minhash_cluster`` (1 task)], ``final`` (re-read spill -> exact filter [-> MinHash filter] ->
  ``writer``). With ``tasks == 1`` one task sees the whole source, so :class:`ExactDedupFilter` (an in-task set of
  digests, same result: the first occurrence is kept) replaces the exact stages: ``exact`` is then one stage.
- Documents are matched to signatures by their index in a task's stream, so every re-read of the spill goes
  through :class:`RankReader`, which reads exactly the file its own rank wrote (a rank that kept nothing wrote
  none; datatrove's readers would then shift files between ranks).
- Statistics: only the ``curate`` and ``final`` stages count documents (:data:`COUNTED_STAGES`); the exact filter
  that ``minhash_signatures`` repeats is not counted twice.

Words for MinHash shingles come from :class:`WhitespaceWordTokenizer` (datatrove's default English tokenizer needs
nltk data, which an offline machine lacks) after datatrove's ``simplify_text`` (lower case, no punctuation, digits
-> 0). Shingles are hashed by :class:`Signature`, which encodes text to UTF-8 before xxhash (xxhash >= 4 refuses
``str``; the hashes equal what xxhash 3 computed on ``str``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig
from datatrove.pipeline.dedup.exact_dedup import ExactDedupFilter as _DTExactFilter
from datatrove.pipeline.dedup.minhash import MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.text import ngrams, simplify_text
from datatrove.utils.word_tokenizers import WordTokenizer

from mixlab.jsonl import MAX_LINE_BYTES, open_lines

DedupMethod = Literal["none", "exact", "minhash"]
COUNTED_STAGES = ("curate", "final")  # the stages whose statistics account for documents


def _xxh64_text(text: str) -> int:
    return xxhash.xxh64_intdigest(text.encode("utf-8", "surrogatepass"))


def _xxh32_text(text: str) -> int:
    return xxhash.xxh32_intdigest(text.encode("utf-8", "surrogatepass"))


def text_bytes(doc: Document) -> bytes:
    """The exact-dedup content: the document's text as UTF-8."""
    return doc.text.encode("utf-8", "surrogatepass")


EXACT_CONFIG = ExactDedupConfig(content_getter=text_bytes)  # xxhash, 64 bits; priority: first occurrence


class ExactDedupFilter(BaseFilter):
    """Drop documents whose exact text was already seen in this task (``duplicate_exact``); with one task, that
    is the whole source. 8 bytes (xxh64) per distinct document."""

    name = "🫂 exact dedup (in task)"

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[int] = set()

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._seen = set()
        yield from super().run(data, rank, world_size)
        self._seen = set()

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        digest = _xxh64_text(doc.text)
        if digest in self._seen:
            return False, "duplicate_exact"
        self._seen.add(digest)
        return True


class _Reasoned:
    """Mixin: a datatrove dedup filter's ``dropped`` stat also counts as ``dropped_<reason>``."""

    reason: str

    def stat_update(self, *labels: str, value: int = 1, unit: str | None = None) -> None:
        if "dropped" in labels:
            labels = (*labels, f"dropped_{self.reason}")
        super().stat_update(*labels, value=value, unit=unit)  # type: ignore[misc]


class ExactDuplicateFilter(_Reasoned, _DTExactFilter):
    """datatrove's exact-dedup stage 3; drops are labelled ``duplicate_exact``; kept documents are not given the
    ``duplicate_count`` metadata (the output is the same whatever the number of tasks)."""

    reason = "duplicate_exact"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in super().run(data, rank, world_size):
            doc.metadata.pop("duplicate_count", None)
            yield doc


class NearDuplicateFilter(_Reasoned, MinhashDedupFilter):
    """datatrove's MinHash stage 4; drops are labelled ``duplicate_near``."""

    reason = "duplicate_near"


class RankReader(PipelineStep):
    """Read back ``<folder>/<rank:05d>.jsonl.zst`` (what this rank's spill writer wrote) in order; no statistics
    (the documents were counted when first read)."""

    type = "📖 - READER"
    name = "🔁 spill reader"

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = get_datafolder(folder)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        name = f"{rank:05d}.jsonl.zst"
        if not self.folder.exists(name):
            return
        for line in open_lines(self.folder, name, MAX_LINE_BYTES):
            if not isinstance(line, bytes):
                raise ValueError(
                    f"{self.folder.path}/{name}: unreadable spill file ({line}); rerun the curation"
                )
            rec = orjson.loads(line)
            yield Document(text=rec["text"], id=rec["id"], metadata=rec.get("metadata") or {})


class WhitespaceWordTokenizer(WordTokenizer):
    """Language-agnostic word tokenizer (split on whitespace) for MinHash shingles; needs no model data."""

    def __init__(self) -> None:
        super().__init__("whitespace")

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [s for s in text.split("\n") if s.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        spans, pos = [], 0
        for sent in self.sent_tokenize(text):
            start = text.index(sent, pos)
            spans.append((start, start + len(sent)))
            pos = start + len(sent)
        return spans


class Signature(MinhashDedupSignature):
    """datatrove's MinHash stage 1 with a str-safe xxhash and a whitespace word tokenizer."""

    def __init__(self, output_folder: str, config: Any = None) -> None:
        super().__init__(output_folder, config=config, language=WhitespaceWordTokenizer())
        if self.config.hash_config.hash_fc == "xxhash":
            self._hash_func = _xxh64_text if self.config.hash_config.precision == 64 else _xxh32_text
        self._ascii_norm = dataclasses.replace(self.config.norm_config, norm_unicode_diacritics=False)

    def get_shingles(self, text: str) -> np.ndarray:
        """datatrove's shingles; on ASCII text the diacritics step (NFD, then a Python loop over characters
        dropping combining marks: half of the signature stage's time) is skipped, as it changes nothing there."""
        norm = self._ascii_norm if text.isascii() else self.config.norm_config
        tokens = self.word_tokenizer.word_tokenize(simplify_text(text, norm))
        return np.fromiter(
            (self._hash_func(" ".join(x)) for x in ngrams(tokens, self.config.n_grams)), dtype=np.uint64
        ).reshape((-1, 1))


def minhash_config(n_grams: int = 5, num_buckets: int = 14, hashes_per_bucket: int = 8) -> Any:
    """A datatrove ``MinhashConfig`` (64-bit xxhash, seed 1)."""
    from datatrove.pipeline.dedup.minhash import MinhashConfig

    return MinhashConfig(n_grams=n_grams, num_buckets=num_buckets, hashes_per_bucket=hashes_per_bucket)


@dataclass
class DedupStage:
    """One stage: its name, its datatrove pipeline and the number of tasks it must run with."""

    name: str
    pipeline: list[PipelineStep]
    tasks: int


def dedup_stages(
    head: list[PipelineStep],
    writer: PipelineStep,
    spill: PipelineStep,
    work: str,
    tasks: int,
    method: DedupMethod = "exact",
    config: Any = None,
) -> list[DedupStage]:
    """The stages of one source's curation with whole-source dedup (module contract). ``spill`` writes
    ``<work>/spill/<rank>.jsonl.zst`` without counting; ``work`` also receives the signatures and duplicate lists;
    ``config`` is the MinHash config (default :func:`minhash_config`)."""
    if method == "none":
        return [DedupStage("curate", [*head, writer], tasks)]
    if tasks == 1:
        head = [*head, ExactDedupFilter()]
        if method == "exact":
            return [DedupStage("curate", [*head, writer], tasks)]
    from datatrove.pipeline.dedup.exact_dedup import ExactDedupSignature, ExactFindDedups
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupCluster

    work = work.rstrip("/")
    spilled = f"{work}/spill"
    stages: list[DedupStage] = []
    again: list[PipelineStep] = [RankReader(spilled)]
    if tasks > 1:
        stages.append(
            DedupStage(
                "curate", [*head, spill, ExactDedupSignature(f"{work}/exact_sigs", EXACT_CONFIG)], tasks
            )
        )
        stages.append(
            DedupStage(
                "exact_find", [ExactFindDedups(f"{work}/exact_sigs", f"{work}/exact_dups", EXACT_CONFIG)], 1
            )
        )
        again.append(ExactDuplicateFilter(f"{work}/exact_dups", EXACT_CONFIG))
    if method == "minhash":
        config = config or minhash_config()
        signature = Signature(f"{work}/minhash_sigs", config)
        if tasks > 1:
            stages.append(DedupStage("minhash_signatures", [*again, signature], tasks))
        else:
            stages.append(DedupStage("curate", [*head, spill, signature], tasks))
        stages.append(
            DedupStage(
                "minhash_buckets",
                [MinhashDedupBuckets(f"{work}/minhash_sigs", f"{work}/minhash_buckets", config=config)],
                config.num_buckets,
            )
        )
        stages.append(
            DedupStage(
                "minhash_cluster",
                [MinhashDedupCluster(f"{work}/minhash_buckets", f"{work}/minhash_remove", config=config)],
                1,
            )
        )
        again.append(NearDuplicateFilter(f"{work}/minhash_remove"))
    stages.append(DedupStage("final", [*again, writer], tasks))
    return stages
