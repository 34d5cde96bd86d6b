"""Public benchmark formats: one record converter per format, and the ``FORMATS`` table that describes each.

Contract:
- A converter ``fmt_item(record: dict, i: int) -> MultipleChoice | Generative | Code`` turns one record of the
  benchmark's own file layout into a task record (``i`` is its index, the id when the record has none).
  Prompt templates follow lm-evaluation-harness's conventions for each benchmark (written here, not copied).
- ``FORMATS[name] = (converter, category, primary metric, task settings)`` for hellaswag, piqa, arc, boolq,
  sciq, evals_mc, triviaqa, nq_open, humaneval and mbpp; :mod:`mixlab.eval.loaders` builds loaders from it.
- Stop strings: :data:`HUMANEVAL_STOP` and :data:`MBPP_STOP` (function-body completion, Codex paper), and
  :data:`~mixlab.eval.records.QA_STOP` for short answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mixlab.eval.records import QA_STOP, Category, Code, Generative, MultipleChoice

# Codex paper (Chen et al. 2021) stop sequences for function-body completion.
HUMANEVAL_STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
MBPP_STOP = ["\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n```"]


def _clean_hellaswag(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return " ".join(text.split())


def hellaswag_item(rec: dict[str, Any], i: int) -> MultipleChoice:
    """HellaSwag jsonl (``activity_label``, ``ctx`` or ``ctx_a``/``ctx_b``, ``endings``, ``label``)."""
    ctx = rec.get("ctx") or (rec["ctx_a"] + " " + rec.get("ctx_b", "").capitalize())
    label = rec.get("activity_label")
    context = _clean_hellaswag(f"{label}: {ctx}" if label else ctx)
    return MultipleChoice(id=str(rec.get("ind", i)), context=context,
                          choices=[" " + _clean_hellaswag(e) for e in rec["endings"]], gold=int(rec["label"]))


def piqa_item(rec: dict[str, Any], i: int) -> MultipleChoice:
    """PIQA (``goal``, ``sol1``, ``sol2``, ``label``; the original files keep labels apart: see ``load_piqa``)."""
    return MultipleChoice(id=str(rec.get("id", i)), context=f"Question: {rec['goal']}\nAnswer:",
                          choices=[" " + rec["sol1"], " " + rec["sol2"]], gold=int(rec["label"]))


def arc_item(rec: dict[str, Any], i: int) -> MultipleChoice:
    """ARC, AI2 jsonl (``question.stem``, ``question.choices[{text,label}]``, ``answerKey``) or HF layout
    (``question`` string, ``choices{text[],label[]}``)."""
    q = rec["question"]
    if isinstance(q, dict):
        stem, texts, labels = q["stem"], [c["text"] for c in q["choices"]], [c["label"] for c in q["choices"]]
    else:
        stem, texts, labels = q, list(rec["choices"]["text"]), list(rec["choices"]["label"])
    key = str(rec["answerKey"])
    return MultipleChoice(id=str(rec.get("id", i)), context=f"Question: {stem}\nAnswer:",
                          choices=[" " + t for t in texts], gold=labels.index(key))


def boolq_item(rec: dict[str, Any], i: int) -> MultipleChoice:
    """BoolQ (``question``, ``passage``, ``answer`` bool, or ``label`` 0/1)."""
    answer = rec["answer"] if "answer" in rec else rec["label"]
    if isinstance(answer, str):
        answer = answer.strip().lower() in ("true", "yes", "1")
    question = rec["question"].strip().rstrip("?")
    return MultipleChoice(id=str(rec.get("idx", i)), context=f"{rec['passage']}\nQuestion: {question}?\nAnswer:",
                          choices=[" no", " yes"], gold=int(bool(answer)))


def sciq_item(rec: dict[str, Any], i: int) -> MultipleChoice:
    """SciQ (``question``, ``distractor1..3``, ``correct_answer``, ``support``); the correct answer is last."""
    support = (rec.get("support") or "").strip()
    context = (f"{support}\n" if support else "") + f"Question: {rec['question']}\nAnswer:"
    choices = [" " + rec[f"distractor{j}"] for j in (1, 2, 3)] + [" " + rec["correct_answer"]]
    return MultipleChoice(id=str(rec.get("id", i)), context=context, choices=choices, gold=3)


_OPTION = re.compile(r"^\s*([A-Z])\s*[:.)]\s*(.*?)\s*$")


def evals_mc_item(rec: dict[str, Any], i: int) -> MultipleChoice:
    """OpenAI evals multiple-choice sample: the last user message is ``stem`` followed by option lines
    ``A: text`` / ``B: text`` ..., ``ideal`` is the gold letter (e.g. ``registry/data/quartz/samples.jsonl``)."""
    messages = rec["input"]
    user = [m["content"] for m in messages if m.get("role") == "user"] if isinstance(messages, list) else [messages]
    lines = user[-1].rstrip().split("\n")
    options: list[tuple[str, str]] = []
    while lines and (m := _OPTION.match(lines[-1])):
        options.insert(0, (m.group(1), m.group(2)))
        lines.pop()
    stem = "\n".join(lines).strip()
    if len(options) < 2 or not stem:
        raise ValueError(f"record {i}: no 'A: ...' option lines after a question")
    ideal = rec["ideal"][0] if isinstance(rec["ideal"], list) else rec["ideal"]
    letters = [letter for letter, _ in options]
    return MultipleChoice(id=str(rec.get("id", i)), context=f"Question: {stem}\nAnswer:",
                          choices=[" " + text for _, text in options], gold=letters.index(str(ideal).strip()))


def triviaqa_item(rec: dict[str, Any], i: int) -> Generative:
    """TriviaQA: HF layout (``question``, ``answer.aliases``, ``answer.value``) or the original
    (``Question``, ``Answer.Aliases``, ``Answer.Value``)."""
    question = rec.get("question", rec.get("Question"))
    answer = rec.get("answer", rec.get("Answer")) or {}
    aliases = list(answer.get("aliases", answer.get("Aliases", [])))
    value = answer.get("value", answer.get("Value"))
    answers = list(dict.fromkeys([*aliases, *([value] if value else [])]))
    qid = rec.get("question_id", rec.get("QuestionId", i))
    return Generative(id=str(qid), prompt=f"Question: {question.strip().rstrip('?')}?\nAnswer:", answers=answers)


def nq_open_item(rec: dict[str, Any], i: int) -> Generative:
    """NQ-open (``question``, ``answer`` list of strings)."""
    answers = rec["answer"] if isinstance(rec["answer"], list) else [rec["answer"]]
    return Generative(id=str(rec.get("id", i)), prompt=f"Q: {rec['question'].strip().rstrip('?')}?\nA:",
                      answers=[str(a) for a in answers])


def humaneval_item(rec: dict[str, Any], i: int) -> Code:
    """HumanEval (``task_id``, ``prompt``, ``canonical_solution``, ``test``, ``entry_point``)."""
    return Code(id=rec["task_id"], prompt=rec["prompt"], tests=rec["test"], entry_point=rec["entry_point"],
                canonical_solution=rec.get("canonical_solution"))


def mbpp_item(rec: dict[str, Any], i: int) -> Code:
    """MBPP (``text``, ``code``, ``test_list``, optional ``test_setup_code``): the prompt states the problem and
    its first test in a docstring; the model writes the whole function; every test assert must pass."""
    tests = list(rec["test_list"])
    prompt = f'"""\n{rec["text"].strip()}\n{tests[0]}\n"""\n'
    setup = (rec.get("test_setup_code") or "").strip()
    return Code(id=str(rec.get("task_id", i)), prompt=prompt, tests=(setup + "\n" if setup else "") + "\n".join(tests),
                entry_point=None, canonical_solution=rec.get("code"))


# name -> (record converter, category, primary metric, task settings)
FORMATS: dict[str, tuple[Callable[[dict[str, Any], int], Any], Category, str, dict[str, Any]]] = {
    "hellaswag": (hellaswag_item, "nl_reasoning", "acc_norm", {}),
    "piqa": (piqa_item, "nl_reasoning", "acc_norm", {}),
    "arc": (arc_item, "nl_reasoning", "acc_norm", {}),
    "boolq": (boolq_item, "nl_reasoning", "acc", {}),
    "sciq": (sciq_item, "nl_reasoning", "acc_norm", {}),
    "evals_mc": (evals_mc_item, "nl_reasoning", "acc", {}),
    "triviaqa": (triviaqa_item, "world_knowledge", "exact_match", {"stop": QA_STOP, "max_new_tokens": 32}),
    "nq_open": (nq_open_item, "world_knowledge", "exact_match", {"stop": QA_STOP, "max_new_tokens": 32}),
    "humaneval": (humaneval_item, "code", "pass@1", {"stop": HUMANEVAL_STOP, "max_new_tokens": 512, "strip_prompt": True}),
    "mbpp": (mbpp_item, "code", "pass@1", {"stop": MBPP_STOP, "max_new_tokens": 512, "strip_prompt": True}),
}
