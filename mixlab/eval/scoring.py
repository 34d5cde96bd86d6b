"""Scorers of the three task kinds: multiple choice by log-likelihood, exact match, pass@k.

Contract:
- Multiple choice (:func:`score_multiple_choice`): ``acc`` is the rate at which the highest summed
  log-likelihood is the gold choice; ``acc_norm`` divides each choice's log-likelihood by its length in
  characters first (lm-evaluation-harness's acc / acc_norm). Ties go to the lowest index (:func:`argmax_first`).
- Generative (:func:`score_generative`): the completion (greedy, at most ``max_new_tokens``, cut before the
  first stop string) is correct when ``normalize_answer`` of it equals ``normalize_answer`` of any accepted
  answer: lowercase, punctuation (ASCII and Unicode ``P*``) deleted, articles a/an/the removed, whitespace
  collapsed (the SQuAD normalization that TriviaQA and NQ-open exact match use). An empty normalized form never
  matches; an answer that is itself an article (blood type "A") is compared without article removal (see
  ``exact_match``).
- Code (:func:`score_code`): each problem's program is ``prompt + completion + "\\n\\n" + tests`` followed by
  ``check(entry_point)`` when ``entry_point`` is set (:func:`code_program`); it runs in
  :func:`mixlab.sandbox.run_many` (own process, time and memory limits, no network). Only a ``passed`` outcome
  counts: failures, errors, timeouts and memory blow-ups are all failures, never exceptions of the harness.
  ``pass@k`` is the unbiased estimator of Chen et al. 2021, ``1 - C(n-c, k) / C(n, k)`` averaged over problems
  (:func:`pass_at_k`), for each k <= n; ``frac_<status>`` reports the share of each failure kind.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections.abc import Sequence

from mixlab.eval.records import Code, Generative, LanguageModel, MultipleChoice, truncate_at_stop

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str, drop_articles: bool = True) -> str:
    """Lowercase, delete punctuation, drop articles, collapse whitespace (SQuAD / TriviaQA / NQ normalization)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT and not unicodedata.category(ch).startswith("P"))
    if drop_articles:
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answers: Sequence[str]) -> bool:
    """True when the normalized prediction equals the normalized form of any accepted answer.

    An empty normalized form never matches. An answer that normalizes to nothing because it *is* an article
    (blood type "A") is compared without article removal, so "the the" does not match "A" but "a" does."""
    pred, pred_kept = normalize_answer(prediction), normalize_answer(prediction, drop_articles=False)
    for answer in answers:
        target = normalize_answer(answer)
        if target:
            if pred == target:
                return True
        elif (kept := normalize_answer(answer, drop_articles=False)) and pred_kept == kept:
            return True
    return False


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``c`` correct among ``n`` samples: ``1 - C(n-c, k) / C(n, k)``."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def argmax_first(values: Sequence[float]) -> int:
    """Index of the largest value; ties go to the lowest index."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def score_multiple_choice(items: Sequence[MultipleChoice], lm: LanguageModel) -> tuple[dict[str, float], list[dict]]:
    """(``{"acc", "acc_norm"}``, per-item details) of multiple-choice records."""
    requests = [(it.context, ch) for it in items for ch in it.choices]
    lls = lm.loglikelihood_batch(requests) if requests else []
    if len(lls) != len(requests):
        raise ValueError(f"loglikelihood_batch returned {len(lls)} values for {len(requests)} requests")
    details, pos, hits, hits_norm = [], 0, 0, 0
    for it in items:
        ll = [float(x) for x in lls[pos : pos + len(it.choices)]]
        pos += len(it.choices)
        norm = [v / max(1, len(ch)) for v, ch in zip(ll, it.choices, strict=True)]
        pred, pred_norm = argmax_first(ll), argmax_first(norm)
        hits += pred == it.gold
        hits_norm += pred_norm == it.gold
        details.append({"id": it.id, "gold": it.gold, "pred": pred, "pred_norm": pred_norm, "loglikelihoods": ll})
    n = max(1, len(items))
    return {"acc": hits / n, "acc_norm": hits_norm / n}, details


def score_generative(
    items: Sequence[Generative], lm: LanguageModel, max_new_tokens: int, stop: Sequence[str]
) -> tuple[dict[str, float], list[dict]]:
    """(``{"exact_match"}``, per-item details) of generative records, greedy decoding."""
    outs = lm.generate_batch([it.prompt for it in items], max_new_tokens, stop, 0.0, 0) if items else []
    details, hits = [], 0
    for it, out in zip(items, outs, strict=True):
        pred = truncate_at_stop(out, stop)
        ok = exact_match(pred, it.answers)
        hits += ok
        details.append({"id": it.id, "prediction": pred, "correct": ok})
    return {"exact_match": hits / max(1, len(items))}, details


def code_program(item: Code, completion: str) -> str:
    """The program that decides whether ``completion`` solves ``item`` (module contract)."""
    program = item.prompt + completion + "\n\n" + item.tests + "\n"
    if item.entry_point:
        program += f"\ncheck({item.entry_point})\n"
    return program


def score_code(
    items: Sequence[Code], completions: Sequence[Sequence[str]], ks: Sequence[int] = (1,), *,
    workers: int = 2, timeout_s: float = 10.0, memory_mb: int = 1024,
) -> tuple[dict[str, float], list[dict]]:
    """(``{"pass@k" for k <= n}``, per-problem details) for ``completions[i]`` = the n samples of ``items[i]``."""
    from mixlab.sandbox import TestedProgram, run_many

    if len(completions) != len(items):
        raise ValueError(f"{len(completions)} completion lists for {len(items)} problems")
    n_per = {len(c) for c in completions}
    if len(n_per) > 1 or 0 in n_per:
        raise ValueError(f"every problem needs the same, non-zero number of samples; got {sorted(n_per)}")
    n = n_per.pop() if n_per else 1
    # completion and tests run in separate jails (mixlab.sandbox.run_tests): the completion cannot forge a pass
    programs = [TestedProgram(it.prompt + c, it.tests, it.entry_point)
                for it, cs in zip(items, completions, strict=True) for c in cs]
    results = run_many(programs, workers=workers, timeout_s=timeout_s, memory_mb=memory_mb)
    details = []
    for i, it in enumerate(items):
        rs = results[i * n : (i + 1) * n]
        statuses = [r.status for r in rs]
        details.append({"id": it.id, "n": n, "correct": statuses.count("passed"), "statuses": statuses,
                        "completions": list(completions[i])})
    metrics: dict[str, float] = {}
    for k in sorted(set(ks)):
        if k <= n:
            metrics[f"pass@{k}"] = sum(pass_at_k(n, d["correct"], k) for d in details) / max(1, len(items))
    statuses_all = [r.status for r in results]
    for status in ("failed", "error", "timeout", "memory"):
        metrics[f"frac_{status}"] = statuses_all.count(status) / max(1, len(statuses_all))
    return metrics, details

