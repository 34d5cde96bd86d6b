"""Whole-source dedup (exact, MinHash) and decontamination: across tasks and files, with statistics that add up
and reach the packed manifest. Inputs are generated in tmp_path (SlimPajama-like zstd JSONL, two files)."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
import zstandard

from mixlab.curate.decontaminate import build_index, words
from mixlab.curate.pipeline import run_curation
from mixlab.eval.loaders import humaneval, shipped_quartz
from mixlab.recipe.sources import SlimPajamaOptions, options_json

RNG = random.Random(7)
VOCAB = ["".join(RNG.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)) for _ in range(3000)]  # no digits


def prose(rng: random.Random, n: int = 200) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def edit(text: str, rng: random.Random, k: int = 3) -> str:
    """``text`` with ``k`` words replaced (a near duplicate: Jaccard of 5-gram shingles about 0.9)."""
    toks = text.split()
    for pos in rng.sample(range(len(toks)), k):
        toks[pos] = "edited"
    return " ".join(toks)


def write_inputs(root: Path, files: list[list[str]]) -> Path:
    """One SlimPajama-like ``.jsonl.zst`` per list of texts; returns the input folder."""
    root.mkdir(parents=True, exist_ok=True)
    for i, texts in enumerate(files):
        lines = [orjson.dumps({"text": t, "meta": {"redpajama_set_name": "RedPajamaC4"}}) + b"\n" for t in texts]
        (root / f"part_{i}.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b"".join(lines)))
    return root


def read_texts(folder: Path) -> list[str]:
    out = []
    for path in sorted(folder.glob("*.jsonl.zst")):
        data = zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read()
        out += [orjson.loads(line)["text"] for line in data.splitlines() if line]
    return out


def curate(inp: Path, out: Path, tasks: int, **options) -> dict:
    res = run_curation(SlimPajamaOptions(code_mode="off", **options), str(inp), str(out), tasks=tasks)
    assert res["complete"] and res["docs_in"] == res["docs_kept"] + sum(res["dropped_by_reason"].values())
    assert len(read_texts(out)) == res["docs_kept"]
    return res


def test_exact_duplicates_in_different_files_and_tasks_are_removed(tmp_path):
    """A text repeated in another input file (another task) is kept once, whatever the number of tasks; the drop
    is counted as duplicate_exact; without dedup both copies survive (the duplicate really spans tasks)."""
    rng = random.Random(1)
    a, b, c, d = (prose(rng) for _ in range(4))
    inp = write_inputs(tmp_path / "in", [[a, b, a], [c, a, d]])
    res = curate(inp, tmp_path / "exact2", tasks=2, decontaminate=False)
    assert res["dropped_by_reason"] == {"duplicate_exact": 2}
    assert sorted(read_texts(tmp_path / "exact2")) == sorted([a, b, c, d])
    one = curate(inp, tmp_path / "exact1", tasks=1, decontaminate=False)
    assert one["dropped_by_reason"] == res["dropped_by_reason"]
    assert sorted(read_texts(tmp_path / "exact1")) == sorted(read_texts(tmp_path / "exact2"))
    none = curate(inp, tmp_path / "none", tasks=2, dedup="none", decontaminate=False)
    assert none["docs_kept"] == 6 and none["dropped_by_reason"] == {}


@pytest.mark.parametrize("tasks", [1, 2])
def test_minhash_removes_near_duplicates_and_keeps_distinct_documents(tmp_path, tasks):
    """Of a document, two copies with 3 of 200 words changed (other file) and an exact copy, one survives: the
    exact copy counts as duplicate_exact, the edited ones as duplicate_near; unrelated documents all survive."""
    rng = random.Random(2)
    base = prose(rng)
    distinct = [prose(rng) for _ in range(4)]
    inp = write_inputs(tmp_path / "in", [[base, distinct[0], distinct[1]], [edit(base, rng), distinct[2], base,
                                                                              edit(base, rng), distinct[3]]])
    res = curate(inp, tmp_path / "out", tasks=tasks, dedup="minhash", decontaminate=False)
    assert res["dropped_by_reason"] == {"duplicate_exact": 1, "duplicate_near": 2}
    kept = read_texts(tmp_path / "out")
    assert set(distinct) <= set(kept) and len(kept) == 5
    assert not (tmp_path / "out_logs" / "dedup" / "work").exists()  # spill and signatures removed when complete


def test_rerun_of_a_finished_multistage_curation_redoes_nothing(tmp_path):
    """Every stage keeps datatrove's completion markers: a rerun rewrites no output and returns the same stats."""
    rng = random.Random(3)
    texts = [prose(rng) for _ in range(4)]
    inp = write_inputs(tmp_path / "in", [texts[:2] + [texts[0]], texts[2:]])
    first = curate(inp, tmp_path / "out", tasks=2, dedup="minhash", decontaminate=False)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*")}
    again = curate(inp, tmp_path / "out", tasks=2, dedup="minhash", decontaminate=False)
    assert again == first and {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*")} == before


# ---------------------------------------------------------------- decontamination


def quartz_question() -> str:
    context = shipped_quartz().items[0].context  # "Question: <stem>\nAnswer:"
    return context.removeprefix("Question: ").removesuffix("\nAnswer:")


def contaminated_and_clean(rng: random.Random) -> dict[str, str]:
    """Documents that contain an evaluation item, and near misses that must be kept."""
    prompt = humaneval().items[0].prompt
    question = quartz_question()
    head = " ".join(question.split()[:8])  # 8 words of the question: fewer than 13
    return {
        "humaneval": f"Some helper code from a blog post.\n\n{prompt}    return False\n\n{prose(rng, 40)}",
        "quartz": f"{prose(rng, 30)} QUIZ -- {question.upper().replace(',', ' ;')} {prose(rng, 30)}",
        "clean_code": "from typing import List\n\n\ndef has_close_elements(values: List[float]) -> bool:\n"
        '    """Return True when the list holds two equal values."""\n    return len(set(values)) < len(values)\n',
        "clean_text": f"{head} and ballons rise because helium is lighter than air. {prose(rng, 30)}",
    }


def test_index_finds_eval_items_through_case_and_punctuation_and_ignores_near_misses():
    """A document containing a HumanEval prompt or a QuaRTz question matches that set even re-cased and
    re-punctuated; a document sharing fewer than 13 consecutive words with every item matches none."""
    index = build_index()
    assert index.n == 13 and index.items["humaneval"]["items"] == 164 and index.items["quartz"]["items"] == 100
    docs = contaminated_and_clean(random.Random(4))
    assert index.matches(docs["humaneval"]) == {"humaneval"}
    assert index.matches(docs["quartz"]) == {"quartz"}
    assert index.matches(docs["clean_code"]) == set() and index.matches(docs["clean_text"]) == set()
    twelve = " ".join(words(quartz_question())[:12])
    assert index.matches(f"{prose(random.Random(5), 20)} {twelve} {prose(random.Random(6), 20)}") == set()


def test_contaminated_documents_are_dropped_and_counted_per_eval_set(tmp_path):
    """End to end: contaminated documents are dropped as `contaminated`, counted per evaluation set; the near
    misses are kept; with decontaminate: false all are kept."""
    docs = contaminated_and_clean(random.Random(4))
    inp = write_inputs(tmp_path / "in", [[docs["humaneval"], docs["clean_text"]], [docs["quartz"], docs["clean_code"]]])
    res = curate(inp, tmp_path / "out", tasks=2)
    assert res["dropped_by_reason"] == {"contaminated": 2}
    assert res["contamination"] == {"humaneval": 1, "quartz": 1}
    assert sorted(read_texts(tmp_path / "out")) == sorted([docs["clean_text"], docs["clean_code"]])
    off = curate(inp, tmp_path / "off", tasks=2, decontaminate=False)
    assert off["docs_kept"] == 4 and off["contamination"] == {}


def test_default_options_hash_as_before_and_legacy_exact_dedup_reads():
    """New options at their defaults leave a recipe's filters (hence its hash) unchanged; the old per-task
    `exact_dedup` flag still validates, as dedup exact / none."""
    assert options_json(SlimPajamaOptions()) == {}
    assert SlimPajamaOptions.model_validate({"exact_dedup": False}).dedup == "none"
    assert SlimPajamaOptions.model_validate({"exact_dedup": True}).dedup == "exact"


# ---------------------------------------------------------------- statistics reach the manifest

RECIPE = """
seed: 3
seq_len: 32
data_root: {root}
sources:
  text:
    kind: slimpajama
    path: in
    filters: {{code_mode: "off", dedup: minhash}}
    heldout_docs: 2
tokenizer: {{kind: bpe, vocab_size: 300, train_bytes: 60000}}
model: {{preset: custom, n_layers: 1, d_model: 16, n_heads: 2, n_kv_heads: 1, ffn_hidden: 32}}
train: {{batch_size: 2}}
phases:
  pretrain:
    tokens: 2048
    mixture: {{text: 1.0}}
"""


def test_dedup_and_contamination_stats_reach_the_packed_manifest(tmp_path):
    """A recipe curated in 2 tasks and packed: the manifest's `curation` of the source carries the duplicate and
    contamination drops, and its counts add up."""
    from mixlab.pack.dataset import open_phase
    from mixlab.recipe import load_recipe
    from mixlab.stages import run

    rng = random.Random(8)
    texts = [prose(rng, 120) for _ in range(30)]
    docs = contaminated_and_clean(rng)
    write_inputs(tmp_path / "in", [[*texts[:15], texts[20], docs["humaneval"]],
                                   [*texts[15:], edit(texts[3], rng), docs["clean_text"]]])
    (tmp_path / "r.yaml").write_text(RECIPE.format(root=tmp_path))
    state = run(load_recipe(tmp_path / "r.yaml"), tmp_path / "work", until="pack", tasks=2, progress=False)
    curation = open_phase(state.packed["pretrain"]).manifest.sources["text"].curation
    assert curation["dropped_by_reason"] == {"contaminated": 1, "duplicate_exact": 1, "duplicate_near": 1}
    assert curation["contamination"] == {"humaneval": 1}
    assert curation["docs_in"] == 34 == curation["docs_kept"] + sum(curation["dropped_by_reason"].values())
