"""Synthetic code: Python problems whose solutions are kept only when they pass their tests in the sandbox.

The paper's synthetic code source (Aryabumi et al. 2024, Sec. 2) is Python problems with formally verified
solutions. Here a problem (:class:`Problem`) is HumanEval-shaped: ``prompt`` (signature + docstring),
``solution`` (the code completing the prompt), ``tests`` (asserts calling ``entry_point``, or a HumanEval
``def check(candidate)``) and ``entry_point``. Problems come from

- the built-in generator :func:`generate_problems` (10 families, :mod:`mixlab.sources.synthetic_families`),
  deterministic in ``(n, seed)``, with an optional deterministic fraction of deliberately wrong solutions
  (``metadata["corrupted"]``, for testing the drop path), as the step :class:`SyntheticProblemGenerator`;
- user JSONL (plain, .gz, .zst): :func:`read_problems` or the accounted reader step
  :class:`SyntheticProblemReader`. Accepted aliases: HumanEval's ``canonical_solution`` / ``test``, MBPP's
  ``test_list`` (a list of asserts). Other keys go to ``metadata``. Bad lines are counted by reason:
  the JSONL reasons of :mod:`mixlab.sources.slimpajama` plus ``missing_field``, ``bad_field_type``,
  ``bad_entry_point``, ``duplicate_task_id``.

Documents: ``text`` = prompt + solution (the training text), ``id`` = task_id, metadata ``task_id``,
``family``, ``entry_point``, ``tests``, ``lang="Python"``, ``source_kind="synthetic"`` (+ ``corrupted`` when a
generated solution is deliberately wrong).
:class:`VerifiedSyntheticFilter` runs ``text + tests`` in :mod:`mixlab.sandbox` (batched, in parallel) and
keeps a document only when it passes; it then removes ``tests`` from the metadata (appending them to the text
when ``include_tests``) and sets ``verified=True``. Drops: ``dropped_tests_failed``, ``dropped_timeout``,
``dropped_memory``, ``dropped_error``, ``dropped_missing_tests``.
The curation pipeline (generator and/or reader -> verifier -> writer) is assembled from these steps by
:func:`mixlab.curate.pipeline.build_pipeline` with the recipe's ``SyntheticOptions``; this module imports no curate.
"""

from __future__ import annotations

import keyword
import os
import random
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mixlab.sandbox import TestedProgram, run_many
from mixlab.sources.base import Skip
from mixlab.sources.slimpajama import JsonlRecordReader
from mixlab.sources.synthetic_families import build_spec

SOURCE_KIND = "synthetic"
DROP_REASONS = {"failed": "tests_failed", "timeout": "timeout", "memory": "memory", "error": "error"}


def is_identifier(name: object) -> bool:
    """A usable Python function name: an identifier that is not a keyword."""
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


class Problem(BaseModel):
    """One Python problem with a candidate solution and the tests that verify it."""

    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(
        min_length=1, description="Unique id of the problem, e.g. 'synthetic/0/17' or 'HumanEval/3'."
    )
    prompt: str = Field(
        description="Imports + signature + docstring (HumanEval 'prompt'); may be '' when the "
        "solution is a whole function."
    )
    solution: str = Field(
        min_length=1, description="Code completing the prompt: prompt + solution is runnable."
    )
    tests: str = Field(
        min_length=1,
        description="Python asserts calling entry_point, or a HumanEval-style "
        "'def check(candidate)' (called automatically).",
    )
    entry_point: str = Field(description="Name of the function under test (an identifier, not a keyword).")
    family: str = Field("user", description="Generator family, or 'user' for supplied problems.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Extra fields (scalars) kept with the problem."
    )

    @field_validator("entry_point")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not is_identifier(v):
            raise ValueError(f"entry_point must be a Python identifier, got {v!r}")
        return v


class ProblemsRead(NamedTuple):
    """Result of :func:`read_problems`: the valid problems and the count of bad lines per reason."""

    problems: list[Problem]
    dropped: Counter[str]


def verification_program(code: str, tests: str, entry_point: str) -> str:
    """The program run in the sandbox: ``code`` (prompt + solution), then the tests, then ``check(entry_point)``
    when the tests define a HumanEval-style ``check`` they do not call themselves."""
    program = f"{code.rstrip()}\n\n\n{tests.strip()}\n"
    if re.search(r"^def check\(", tests, re.M) and not re.search(r"^check\(", tests, re.M):
        program += f"\n\ncheck({entry_point})\n"
    return program


# ---- the built-in generator -------------------------------------------------------------------------------
def _is_corrupted(index: int, seed: int, corrupt_fraction: float) -> bool:
    return corrupt_fraction > 0 and random.Random(f"{seed}:{index}:corrupt").random() < corrupt_fraction


def generate_problem(index: int, seed: int = 0, corrupt_fraction: float = 0.0) -> Problem:
    """Problem ``index`` of the stream ``seed`` (independent of every other index; see synthetic_families)."""
    spec = build_spec(index, seed)
    corrupted = _is_corrupted(index, seed, corrupt_fraction)
    return Problem(
        task_id=f"synthetic/{seed}/{index}",
        prompt=spec.prompt(),
        solution=spec.wrong if corrupted else spec.solution,
        tests=spec.tests(),
        entry_point=spec.entry_point,
        family=spec.family,
        metadata={"corrupted": corrupted, "seed": seed, "index": index},
    )


def generate_problems(n: int, seed: int = 0, corrupt_fraction: float = 0.0) -> list[Problem]:
    """``n`` generated problems (families round-robin); the same ``(n, seed, corrupt_fraction)`` gives the same
    problems. About ``corrupt_fraction`` of them (chosen per index by the seed) carry a wrong solution and
    ``metadata["corrupted"] = True``."""
    return [generate_problem(i, seed, corrupt_fraction) for i in range(n)]


# ---- user JSONL -------------------------------------------------------------------------------------------
def problem_from_record(rec: dict[str, Any]) -> Problem | Skip:
    """A JSON object -> Problem, or a Skip naming why it cannot be one (pure)."""
    rec = dict(rec)
    for alias, name in (("canonical_solution", "solution"), ("test", "tests")):
        if name not in rec and alias in rec:
            rec[name] = rec.pop(alias)
    if "tests" not in rec and isinstance(rec.get("test_list"), list):
        tl = rec.pop("test_list")
        if not all(isinstance(t, str) for t in tl):
            return Skip("bad_field_type")
        rec["tests"] = "\n".join(tl)
    if "prompt" not in rec and "solution" in rec:
        rec["prompt"] = ""
    required = ("task_id", "prompt", "solution", "tests", "entry_point")
    if any(rec.get(k) is None for k in required):
        return Skip("missing_field")
    if isinstance(rec["task_id"], int) and not isinstance(rec["task_id"], bool):
        rec["task_id"] = str(rec["task_id"])
    if not all(isinstance(rec[k], str) for k in required):
        return Skip("bad_field_type")
    if any(not rec[k].strip() for k in required if k != "prompt"):
        return Skip("missing_field")
    if not is_identifier(rec["entry_point"]):
        return Skip("bad_entry_point")
    family = rec.get("family") if isinstance(rec.get("family"), str) else "user"
    meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
    extra = {
        k: v
        for k, v in rec.items()
        if k not in (*required, "family", "metadata") and isinstance(v, (str, int, float, bool))
    }
    try:
        return Problem(**{k: rec[k] for k in required}, family=family, metadata={**extra, **meta})
    except ValidationError:
        return Skip("invalid_record")


def read_problems(path: str, max_line_bytes: int = 16 << 20) -> ProblemsRead:
    """All valid problems of one JSONL file (plain, .gz or .zst; local or fsspec URL), bad lines counted.

    Never raises for bad content; a missing file raises ``FileNotFoundError``. A repeated ``task_id`` keeps the
    first occurrence (``duplicate_task_id``)."""
    import orjson
    from datatrove.io import get_datafolder

    from mixlab.sources.base import open_lines

    folder, name = os.path.split(path)
    data_folder = get_datafolder(folder or ".")
    if not data_folder.isfile(name):
        raise FileNotFoundError(f"problems file not found: {path}")
    problems: list[Problem] = []
    dropped: Counter[str] = Counter()
    seen: set[str] = set()
    for line in open_lines(data_folder, name, max_line_bytes):
        item = line if isinstance(line, Skip) else _parse_line(line, orjson)
        if not isinstance(item, Skip) and item.task_id in seen:
            item = Skip("duplicate_task_id")
        if isinstance(item, Skip):
            dropped[item.reason] += 1
        else:
            seen.add(item.task_id)
            problems.append(item)
    return ProblemsRead(problems, dropped)


def _parse_line(line: bytes, orjson: Any) -> Problem | Skip:
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return Skip("non_utf8")
        return Skip("malformed_json")
    return problem_from_record(rec) if isinstance(rec, dict) else Skip("not_an_object")


# ---- datatrove steps --------------------------------------------------------------------------------------
def problem_to_document(problem: Problem) -> Document:
    """Document of a problem: text prompt + solution; tests and entry point in the metadata for the verifier."""
    meta: dict[str, Any] = {
        "task_id": problem.task_id,
        "family": problem.family,
        "entry_point": problem.entry_point,
        "tests": problem.tests,
        "lang": "Python",
        "source_kind": SOURCE_KIND,
    }
    if problem.metadata.get("corrupted"):
        meta["corrupted"] = True
    return Document(text=problem.prompt + problem.solution, id=problem.task_id, metadata=meta)


class SyntheticProblemGenerator(PipelineStep):
    """Reader step yielding generated problems as Documents; rank r of w yields indices r, r+w, r+2w, ..."""

    type = "📖 - READER"
    name = "🧪 synthetic generator"

    def __init__(self, n: int, seed: int = 0, corrupt_fraction: float = 0.0):
        super().__init__()
        self.n, self.seed, self.corrupt_fraction = n, seed, corrupt_fraction

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        for index in range(rank, self.n, world_size):
            self.stat_update("records_in")
            with self.track_time():
                doc = problem_to_document(generate_problem(index, self.seed, self.corrupt_fraction))
            self.stat_update("bytes_in", value=len(doc.text.encode("utf-8")))
            self.update_doc_stats(doc)
            yield doc


class SyntheticProblemReader(JsonlRecordReader):
    """Accounted reader of user problem JSONL (a file, folder or glob): one Document per valid problem."""

    name = "📖 synthetic problems"

    def __init__(self, input_path: str, max_doc_bytes: int = 16 << 20, limit: int = -1):
        super().__init__(input_path, source_kind=SOURCE_KIND, max_doc_bytes=max_doc_bytes, limit=limit)
        self._seen: set[str] = set()

    def read_records(self, filepath: str) -> Iterator[Document | Skip]:
        self._seen = set()
        yield from super().read_records(filepath)

    def adapt(self, rec: dict[str, Any], doc_id: str, nbytes: int) -> Document | Skip:
        problem = problem_from_record(rec)
        if isinstance(problem, Skip):
            return self.drop(problem.reason, nbytes)
        if problem.task_id in self._seen:
            return self.drop("duplicate_task_id", nbytes)
        self._seen.add(problem.task_id)
        doc = problem_to_document(problem)
        return self.make_doc(doc.text, doc.id, doc.metadata, nbytes)


class VerifiedSyntheticFilter(BaseFilter):
    """Keep a problem document only when ``text + tests`` passes in the sandbox (``batch_size`` documents are
    run ``workers`` at a time). Drop reasons: tests_failed, timeout, memory, error, missing_tests."""

    name = "✅ verified synthetic"

    def __init__(
        self,
        timeout_s: float = 5.0,
        memory_mb: int = 512,
        workers: int = 2,
        include_tests: bool = False,
        batch_size: int | None = None,
        exclusion_writer=None,
    ):
        super().__init__(exclusion_writer, batch_size=batch_size or 8 * workers)
        self.timeout_s, self.memory_mb, self.workers, self.include_tests = (
            timeout_s,
            memory_mb,
            workers,
            include_tests,
        )

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        results: list[bool | tuple[bool, str]] = [(False, "missing_tests")] * len(batch)
        todo = [
            i
            for i, d in enumerate(batch)
            if isinstance(d.metadata.get("tests"), str)
            and d.metadata["tests"].strip()
            and is_identifier(d.metadata.get("entry_point"))
        ]
        programs = []  # solution and tests run in separate jails (mixlab.sandbox.run_tests): no forged pass
        for i in todo:
            tests, entry = batch[i].metadata["tests"], batch[i].metadata["entry_point"]
            calls = re.search(r"^def check\(", tests, re.M) and not re.search(r"^check\(", tests, re.M)
            programs.append(TestedProgram(batch[i].text, tests, entry if calls else None))
        for i, res in zip(
            todo, run_many(programs, self.workers, self.timeout_s, self.memory_mb), strict=True
        ):
            doc = batch[i]
            self.stat_update("sandbox_ms", value=round(res.wall_s * 1000), unit="program")
            if res.passed:
                tests = doc.metadata.pop("tests")
                if self.include_tests:
                    doc.text = f"{doc.text.rstrip()}\n\n\n{tests.strip()}\n"
                doc.metadata["verified"] = True
                results[i] = True
            else:
                doc.metadata["sandbox_detail"] = res.detail
                results[i] = (False, DROP_REASONS[res.status])
        return results
