"""Evaluating tasks and suites: one :class:`TaskResult` per task, category means over a :class:`TaskSuite`.

Contract:
- ``evaluate_task(task, lm)`` scores a task with the scorer of its kind (:mod:`mixlab.eval.scoring`);
  ``score`` is the task's primary metric, a metric the scorer did not compute is an error, and a task without
  items scores ``nan``. Code tasks with ``strip_prompt`` (the default of the HumanEval and MBPP loaders, as in
  bigcode-evaluation-harness) continue ``prompt.rstrip()`` and build the program on that stripped prompt: a
  prompt ending in "\\n" would otherwise force a token boundary before the indentation that byte-level BPEs
  merge with the newline ("\\n   " + " return").
- :class:`TaskSuite` evaluates its tasks (names unique) and reports each task's metrics, the mean primary
  score per category (tasks weighted equally, tasks without items left out) and the mean of the category
  means (``overall``; ``nan`` when no category has a score).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, field_validator

from mixlab.eval.records import CATEGORIES, Category, LanguageModel, Task, truncate_at_stop
from mixlab.eval.scoring import score_code, score_generative, score_multiple_choice

log = logging.getLogger(__name__)


class TaskResult(BaseModel):
    name: str
    category: Category
    kind: str
    n_items: int
    metric: str
    score: float
    metrics: dict[str, float]
    wall_s: float
    details: list[dict[str, Any]] = Field(default_factory=list)


def evaluate_task(task: Task, lm: LanguageModel, *, workers: int = 2, keep_details: bool = False) -> TaskResult:
    """Score ``task`` with ``lm`` (module contract); ``score`` is the task's primary metric."""
    t0 = time.perf_counter()
    items = task.items
    assert task.metric is not None
    if not items:  # e.g. limit=0: nothing to score, and no category mean to move
        return TaskResult(name=task.name, category=task.category, kind=task.kind, n_items=0, metric=task.metric,
                          score=math.nan, metrics={}, wall_s=0.0)
    if task.kind == "mc":
        metrics, details = score_multiple_choice(items, lm)  # type: ignore[arg-type]
    elif task.kind == "gen":
        metrics, details = score_generative(items, lm, task.max_new_tokens, task.stop)  # type: ignore[arg-type]
    else:
        if task.strip_prompt:
            items = [it.model_copy(update={"prompt": it.prompt.rstrip()}) for it in items]  # type: ignore[union-attr]
        prompts = [it.prompt for it in items for _ in range(task.n_samples)]
        outs = lm.generate_batch(prompts, task.max_new_tokens, task.stop, task.temperature, task.seed) if prompts else []
        outs = [truncate_at_stop(o, task.stop) for o in outs]
        n = task.n_samples
        completions = [outs[i * n : (i + 1) * n] for i in range(len(items))]
        metrics, details = score_code(items, completions, task.ks, workers=workers,  # type: ignore[arg-type]
                                      timeout_s=task.timeout_s, memory_mb=task.memory_mb)
    if task.metric not in metrics:
        raise ValueError(f"task {task.name!r}: metric {task.metric!r} not computed (have {sorted(metrics)})")
    return TaskResult(name=task.name, category=task.category, kind=task.kind, n_items=len(items),
                      metric=task.metric, score=metrics[task.metric], metrics=metrics,
                      wall_s=time.perf_counter() - t0, details=details if keep_details else [])


class SuiteResult(BaseModel):
    suite: str
    tasks: dict[str, TaskResult]
    categories: dict[str, float]
    overall: float
    skipped: dict[str, str] = Field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready scores without per-item details."""
        return {
            "suite": self.suite,
            "tasks": {n: {"category": r.category, "metric": r.metric, "score": r.score, "n_items": r.n_items,
                          "metrics": r.metrics, "wall_s": r.wall_s} for n, r in self.tasks.items()},
            "categories": self.categories, "overall": self.overall, "skipped": self.skipped,
        }


class TaskSuite(BaseModel):
    """Tasks grouped into the paper's categories."""

    name: str = "custom"
    tasks: list[Task]
    skipped: dict[str, str] = Field(default_factory=dict, description="task name -> why it is not in the suite")

    @field_validator("tasks")
    @classmethod
    def _unique(cls, tasks: list[Task]) -> list[Task]:
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate task names in {names}")
        return tasks

    def evaluate(self, lm: LanguageModel, *, workers: int = 2, keep_details: bool = False,
                 on_task: Callable[[TaskResult], None] | None = None) -> SuiteResult:
        results: dict[str, TaskResult] = {}
        for task in self.tasks:
            log.info("evaluating %s (%d items)", task.name, len(task.items))
            results[task.name] = r = evaluate_task(task, lm, workers=workers, keep_details=keep_details)
            if on_task is not None:
                on_task(r)
        return SuiteResult(suite=self.name, tasks=results, skipped=dict(self.skipped), **category_means(results))


def category_means(results: dict[str, TaskResult]) -> dict[str, Any]:
    """``{"categories": {cat: mean primary score}, "overall": mean of category means}``; tasks without items
    (score nan) are left out; ``overall`` is nan when no category has a score."""
    cats: dict[str, float] = {}
    for cat in CATEGORIES:
        scores = [r.score for r in results.values() if r.category == cat and not math.isnan(r.score)]
        if scores:
            cats[cat] = sum(scores) / len(scores)
    return {"categories": cats, "overall": sum(cats.values()) / len(cats) if cats else math.nan}
