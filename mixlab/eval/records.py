"""Task records, the :class:`Task` that holds them, and the language-model protocol the harness scores.

Contract:
- Records (pydantic, frozen): :class:`MultipleChoice` (``context``, ``choices``, ``gold`` index),
  :class:`Generative` (``prompt``, accepted ``answers``), :class:`Code` (``prompt``, ``tests``, optional
  ``entry_point``, optional ``canonical_solution``). A :class:`Task` holds records of one kind, its category
  (``nl_reasoning`` | ``world_knowledge`` | ``code``), its primary ``metric`` (default ``acc`` /
  ``exact_match`` / ``pass@1`` by kind) and its generation / execution settings; mixing kinds, or asking for
  ``n_samples`` > 1 greedy samples, is a validation error.
- The harness depends on the :class:`LanguageModel` protocol only: ``loglikelihood_batch([(context,
  continuation)]) -> [sum of log p(continuation tokens | context)]`` (natural log) and
  ``generate_batch(prompts, max_new_tokens, stop, temperature, seed) -> [completion]`` (the completion excludes
  the prompt). :class:`BaseLM` derives both from single-request methods. :class:`mixlab.eval.lm.MixlabLM` is
  the implementation for mixlab checkpoints.
- ``truncate_at_stop(text, stop)``: ``text`` cut before the earliest occurrence of any non-empty stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

Category = Literal["nl_reasoning", "world_knowledge", "code"]
CATEGORIES: tuple[str, ...] = ("nl_reasoning", "world_knowledge", "code")
QA_STOP = ["\n", ".", ","]

# ------------------------------------------------------------------------------------------------ records


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = ""


class MultipleChoice(_Record):
    """Pick the continuation of ``context`` with the highest log-likelihood among ``choices``."""

    kind: Literal["mc"] = "mc"
    context: str
    choices: list[str] = Field(min_length=2)
    gold: int

    @model_validator(mode="after")
    def _gold_in_range(self) -> MultipleChoice:
        if not 0 <= self.gold < len(self.choices):
            raise ValueError(f"gold index {self.gold} outside {len(self.choices)} choices")
        return self


class Generative(_Record):
    """Complete ``prompt``; correct when the normalized completion equals a normalized accepted answer."""

    kind: Literal["gen"] = "gen"
    prompt: str
    answers: list[str] = Field(min_length=1)


class Code(_Record):
    """Complete ``prompt`` into a program that passes ``tests`` (then ``check(entry_point)`` if set)."""

    kind: Literal["code"] = "code"
    prompt: str
    tests: str
    entry_point: str | None = None
    canonical_solution: str | None = None


Item = Annotated[MultipleChoice | Generative | Code, Field(discriminator="kind")]
DEFAULT_METRIC = {"mc": "acc", "gen": "exact_match", "code": "pass@1"}


class Task(BaseModel):
    """A named list of records of one kind, with how to score them."""

    model_config = ConfigDict(extra="forbid")
    name: str
    category: Category
    items: list[Item]
    metric: str | None = Field(None, description="primary metric; default acc / exact_match / pass@1 by kind")
    # generation (gen, code)
    max_new_tokens: int = Field(32, ge=1)
    stop: list[str] = Field(default_factory=lambda: list(QA_STOP))
    # code
    n_samples: int = Field(1, ge=1, description="completions per problem (pass@k needs n >= k)")
    ks: list[int] = Field(default_factory=lambda: [1, 10, 100])
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy; must be > 0 when n_samples > 1")
    strip_prompt: bool = Field(False, description="code: generate from prompt.rstrip() (see module contract)")
    timeout_s: float = Field(10.0, gt=0)
    memory_mb: int = Field(1024, ge=64)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> Task:
        kinds = {item.kind for item in self.items}
        if len(kinds) > 1:
            raise ValueError(f"task {self.name!r} mixes record kinds {sorted(kinds)}")
        if self.metric is None:
            self.metric = DEFAULT_METRIC[self.kind]
        if self.n_samples > 1 and self.temperature == 0.0:
            raise ValueError(f"task {self.name!r}: n_samples={self.n_samples} needs temperature > 0 "
                             "(greedy decoding gives n identical samples)")
        return self

    @property
    def kind(self) -> str:
        return self.items[0].kind if self.items else "mc"

    def head(self, limit: int | None) -> Task:
        """A copy holding the first ``limit`` items (all when None)."""
        return self if limit is None else self.model_copy(update={"items": self.items[:limit]})


# -------------------------------------------------------------------------------------- language models


@runtime_checkable
class LanguageModel(Protocol):
    """What the harness needs from a model (see the module contract)."""

    def loglikelihood_batch(self, requests: Sequence[tuple[str, str]]) -> list[float]: ...

    def generate_batch(
        self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0,
        seed: int = 0,
    ) -> list[str]: ...


class BaseLM:
    """Implements the batched protocol by looping over ``loglikelihood`` / ``generate`` (override either)."""

    def loglikelihood(self, context: str, continuation: str) -> float:
        return self.loglikelihood_batch([(context, continuation)])[0]

    def generate(self, prompt: str, max_new_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0,
                 seed: int = 0) -> str:
        return self.generate_batch([prompt], max_new_tokens, stop, temperature, seed)[0]

    def greedy_generate(self, prompt: str, max_new_tokens: int, stop: Sequence[str] = ()) -> str:
        return self.generate(prompt, max_new_tokens, stop, 0.0)

    def loglikelihood_batch(self, requests: Sequence[tuple[str, str]]) -> list[float]:
        if type(self).loglikelihood is BaseLM.loglikelihood:
            raise NotImplementedError("implement loglikelihood or loglikelihood_batch")
        return [self.loglikelihood(c, x) for c, x in requests]

    def generate_batch(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] = (),
                       temperature: float = 0.0, seed: int = 0) -> list[str]:
        if type(self).generate is BaseLM.generate:
            raise NotImplementedError("implement generate or generate_batch")
        return [self.generate(p, max_new_tokens, stop, temperature, seed + i) for i, p in enumerate(prompts)]


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to (excluding) the earliest occurrence of any stop string."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if 0 <= i < cut:
                cut = i
    return text[:cut]
