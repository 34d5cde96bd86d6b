"""Curation: pure filter cores, options, statistics invariant, restartability, end-to-end runs (whole-source
dedup and decontamination: tests/test_dedup.py).

Fixtures are generated in tmp_path; the embedded sample (mixlab/sample/data) is used when present.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import zstandard
from datatrove.data import Document

from mixlab.curate.code_in_text import CodeInTextFilter, code_fraction, strip_code
from mixlab.curate.code_quality import CodeQualityFilter, LanguageFilter, code_quality_reason
from mixlab.curate.dedup import ExactDedupFilter
from mixlab.curate.markup import markup_reason
from mixlab.curate.pipeline import build_pipeline, make_executor, run_curation
from mixlab.curate.stats import CurationStats, summarize
from mixlab.curate.text import SetNameFilter
from mixlab.recipe import load_recipe
from mixlab.recipe.languages import MARKUP_LANGUAGES, TOP25_LANGUAGES
from mixlab.recipe.sources import (
    OPTIONS_BY_KIND,
    CommitOptions,
    NotebookOptions,
    SlimPajamaOptions,
    StackOptions,
    SyntheticOptions,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "mixlab" / "sample" / "data"

PROSE = (
    "The history of the city goes back to the Roman period, when a small settlement was founded near the river.\n"
    "In the Middle Ages it became an important market town (about 5,000 people) and a centre of the wool trade.\n\n"
    "Today the city is known for its university, its museums and its festival; visitors come from everywhere.\n"
)
PYTHON = '''import sys


def main(argv):
    """Entry point."""
    total = 0
    for arg in argv[1:]:
        if arg.startswith("-"):
            continue
        total += len(arg)
    print(f"total={total}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''
C_CODE = '#include <stdio.h>\n\nint main(void) {\n    for (int i = 0; i < 3; i++) {\n        printf("%d\\n", i);\n    }\n    return 0;\n}\n'
LATEX = (
    "\\section{Introduction}\nWe estimate $\\theta$ from noisy observations, following \\cite{smith2020}.\n"
    "\\begin{equation}\n  f(x) = \\sum_{i=1}^{n} \\alpha_i k(x, x_i) + b\n\\end{equation}\n"
    "where $k$ is a kernel and $\\alpha_i$ are the weights learned by the model from the data.\n"
)


def doc(text: str, **meta) -> Document:
    return Document(text=text, id=str(hash(text)), metadata=meta)


def run_filter(step, docs: list[Document]) -> tuple[list[Document], dict[str, int]]:
    kept = list(step.run(iter(docs)))
    return kept, {k: int(v.total) for k, v in step.stats.stats.items()}


# ---------------------------------------------------------------- code-in-text detector


def test_code_fraction_separates_prose_code_and_mixed():
    """Prose (and LaTeX) score ~0, source code ~1, and prose with one code block in between."""
    assert code_fraction(PROSE) == 0.0
    assert code_fraction(LATEX) < 0.2
    assert code_fraction(PYTHON) > 0.9 and code_fraction(C_CODE) > 0.9
    mixed = (
        PROSE
        + "\nHere is how to do it:\n\n"
        + PYTHON
        + "\nRunning it prints the total of the argument lengths.\n"
    )
    assert 0.2 < code_fraction(mixed) < 0.8
    assert code_fraction("") == 0.0


def test_strip_code_removes_blocks_and_keeps_prose():
    """Stripping removes fenced and unfenced code blocks and leaves every prose line intact."""
    fenced = PROSE + "\n```python\nx = 1\n```\n\nThat is all there is to say about this.\n"
    out, n = strip_code(fenced)
    assert n == 1 and "x = 1" not in out and "```" not in out and "That is all" in out
    mixed = PROSE + "\n" + C_CODE + "\nThe program prints three numbers, one per line, and exits.\n"
    out, n = strip_code(mixed)
    assert n == 1 and "printf" not in out and all(line in out for line in PROSE.split("\n") if line)
    assert strip_code(PROSE) == (PROSE, 0)


def test_code_in_text_filter_modes():
    """drop mode drops code documents; strip mode also removes code from the prose it keeps."""
    mixed = PROSE + "\n" + C_CODE + "\nThe program prints three numbers, one per line, and exits.\n"
    kept, stats = run_filter(CodeInTextFilter(0.5, "drop"), [doc(PROSE), doc(PYTHON), doc(mixed)])
    assert [d.text for d in kept] == [PROSE, mixed] and stats["dropped_code_in_text"] == 1
    kept, stats = run_filter(CodeInTextFilter(0.5, "strip"), [doc(PROSE), doc(PYTHON), doc(mixed)])
    assert len(kept) == 2 and "printf" not in kept[1].text and stats["code_blocks_stripped"] == 1


# ---------------------------------------------------------------- text, code and markup filters


def test_set_name_filter_reasons():
    """GitHub and StackExchange sets are dropped by default, each under its own reason; keep_sets restricts."""
    docs = [
        doc(f"t{i}", redpajama_set_name=s)
        for i, s in enumerate(["RedPajamaC4", "RedPajamaGithub", "RedPajamaStackExchange"])
    ]
    kept, stats = run_filter(SetNameFilter(), docs)
    assert [d.metadata["redpajama_set_name"] for d in kept] == ["RedPajamaC4"]
    assert stats["dropped_set_RedPajamaGithub"] == 1 and stats["dropped_set_RedPajamaStackExchange"] == 1
    kept, _ = run_filter(SetNameFilter(SlimPajamaOptions(drop_sets=[], keep_sets=["RedPajamaGithub"])), docs)
    assert [d.metadata["redpajama_set_name"] for d in kept] == ["RedPajamaGithub"]


LOREM = "lorem ipsum dolor sit amet consectetur adipiscing elit sed eiusmod tempor incididunt ut labore dolore magna"
QUALITY_CASES = {
    None: PYTHON,
    "autogenerated": "// Code generated by protoc-gen-go. DO NOT EDIT.\npackage pb\n\nfunc F() int { return 1 }\n",
    "minified": "var a=" + "function(b){return b+1};" * 30 + "\n",
    "max_line_length": "x = [" + ", ".join(str(i) for i in range(400)) + "]\nprint(x)\n",
    "avg_line_length": "".join(f"# {LOREM} {i} {LOREM}\n" for i in range(10)) + "x = 1\n",
    "alphanum_fraction": "# ----==== ++++ ////\n" * 20 + "x = 1\n",
    "data_like": "DATA = [\n" + "".join(f"    {i}.5, {i}.25, '{i}', \"v{i}\",\n" for i in range(60)) + "]\n",
    "few_keywords": "".join(" ".join(LOREM.split()[i % 8 : i % 8 + 6]) + "\n" for i in range(30)),
}


@pytest.mark.parametrize("reason", list(QUALITY_CASES))
def test_code_quality_reasons(reason):
    """Each StarCoder-style check fires on its own example, under its own reason (None = clean code kept)."""
    assert code_quality_reason(QUALITY_CASES[reason]) == reason


def test_quality_and_language_filters_emit_reason_stats():
    """The filter steps turn reasons into dropped_<reason> stats; languages outside the list are dropped."""
    docs = [doc(t, lang="Python") for t in QUALITY_CASES.values()]
    kept, stats = run_filter(CodeQualityFilter(), docs)
    assert len(kept) == 1 and all(stats[f"dropped_{r}"] == 1 for r in QUALITY_CASES if r)
    kept, stats = run_filter(
        LanguageFilter(TOP25_LANGUAGES), [doc("a", lang="python"), doc("b", lang="COBOL"), doc("c")]
    )
    assert len(kept) == 1 and stats["dropped_language_not_selected"] == 2


def test_markup_reasons():
    """Markup: too_short, autogenerated, minified, max_line_length, html_low_text are distinct; real markup passes."""
    md = "# Title\n\n" + "This project does useful things for people who need them. " * 4 + "\n"
    css = "body {\n  margin: 0;\n  font-family: sans-serif;\n}\n" * 5
    html_good = (
        "<html><body><h1>About</h1><p>" + "We build tools for data people. " * 8 + "</p></body></html>\n"
    )
    html_bad = (
        "<html><head><script>" + "var x = 1;\n" * 40 + "</script></head><body><div></div></body></html>\n"
    )
    assert markup_reason(md, "Markdown") is None and markup_reason(css, "CSS") is None
    assert markup_reason(html_good, "HTML") is None
    assert markup_reason("# hi\n", "Markdown") == "too_short"
    assert markup_reason("<!-- auto-generated, do not edit -->\n" + html_good, "HTML") == "autogenerated"
    assert markup_reason("a{b:c}" * 300, "CSS") == "minified"
    assert markup_reason("a { b: c } " * 300, "CSS") == "max_line_length"
    long_paragraph = "# Notes\n\n" + "A long paragraph written on a single line, as Markdown allows. " * 25
    assert markup_reason(long_paragraph, "Markdown") is None
    assert markup_reason(html_bad, "HTML") == "html_low_text"


def test_exact_dedup_keeps_first_occurrence():
    """Exact duplicates after the first are dropped (duplicate_exact); a fresh run forgets earlier tasks."""
    step = ExactDedupFilter()
    kept, stats = run_filter(step, [doc("a"), doc("b"), doc("a"), doc("a")])
    assert [d.text for d in kept] == ["a", "b"] and stats["dropped_duplicate_exact"] == 2
    assert len(list(step.run(iter([doc("a")])))) == 1


# ---------------------------------------------------------------- options


def test_options_models_are_strict_and_documented():
    """Every kind has an options model that forbids unknown keys and documents every field."""
    assert {"slimpajama", "stack", "markup", "notebooks", "commits", "stackexchange", "synthetic"} <= set(
        OPTIONS_BY_KIND
    )
    for kind, cls in OPTIONS_BY_KIND.items():
        assert cls.model_config.get("extra") == "forbid", kind
        for name, field in cls.model_fields.items():
            assert field.description, f"{kind}.{name} has no description"
    with pytest.raises(ValueError, match="max_line_lenght"):
        StackOptions.model_validate({"max_line_lenght": 5})
    with pytest.raises(ValueError, match="unknown redpajama_set_name"):
        SlimPajamaOptions(drop_sets=["RedPajamaGitHub"])
    assert len(TOP25_LANGUAGES) == len(set(TOP25_LANGUAGES)) == 25 and not set(TOP25_LANGUAGES) & set(
        MARKUP_LANGUAGES
    )


def test_steps_receive_the_recipe_options_object(tmp_path):
    """The recipe's typed filters reach the curation steps as the same object (no copy into thresholds that
    could drift from the options' defaults), and a changed option changes the step's decision."""
    from mixlab.curate.code_quality import CodeQualityFilter as Quality
    from mixlab.curate.markup import MarkupFilter

    recipe = load_recipe(REPO / "recipes" / "base.yaml", ["sources.code.filters.max_line_length=10"])
    options = recipe.sources["code"].filters
    assert isinstance(options, StackOptions) and options.max_line_length == 10
    steps = build_pipeline(options, recipe.resolve_path("code"), str(tmp_path / "out"))
    assert [s.options for s in steps if isinstance(s, Quality)] == [options]
    assert next(s for s in steps if isinstance(s, Quality)).options is options
    assert code_quality_reason(PYTHON, options) == "max_line_length" and code_quality_reason(PYTHON) is None
    markup = load_recipe(REPO / "recipes" / "base.yaml").sources["markup"].filters
    steps = build_pipeline(markup, recipe.resolve_path("markup"), str(tmp_path / "out"))
    assert next(s for s in steps if isinstance(s, MarkupFilter)).options is markup
    with pytest.raises(TypeError, match="options must be a source options model"):
        build_pipeline({"max_line_length": 10}, "x", str(tmp_path / "out"))  # type: ignore[arg-type]


def test_options_and_stats_import_no_datatrove():
    """The options models (mixlab.recipe.sources) and curate.stats stay importable without datatrove."""
    code = "import sys, mixlab.recipe.sources, mixlab.curate.stats, mixlab.curate.script; sys.exit(any(m.startswith('datatrove') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


# ---------------------------------------------------------------- fixtures for pipeline runs


def sp_record(text: str, set_name: str = "RedPajamaC4") -> bytes:
    return orjson.dumps({"text": text, "meta": {"redpajama_set_name": set_name}}) + b"\n"


VOCAB = "the of and to in is that for it as was with be by on not he this are or his from at which"


def words(rng: random.Random, n: int) -> str:
    vocab = VOCAB.split()
    return " ".join(rng.choice(vocab) for _ in range(n))


def make_slimpajama(root: Path, files: int = 3, per_file: int = 20) -> dict[str, int]:
    """SlimPajama-like files with known bad records; returns the expected drop counts."""
    rng = random.Random(0)
    for f in range(files):
        lines = [sp_record(f"file {f} doc {i}. " + words(rng, 80)) for i in range(per_file)]
        lines += [
            sp_record("github " + words(rng, 20), "RedPajamaGithub"),
            sp_record(PYTHON),
            sp_record(PROSE),
        ]
        lines += [b"{bad json\n", b'{"text": "\xff\xfe"}\n', b'{"meta": {}}\n', sp_record("   ")]
        (root / "chunk1").mkdir(parents=True, exist_ok=True)
        data = zstandard.ZstdCompressor().compress(b"".join(lines))
        (root / "chunk1" / f"example_train_{f}.jsonl.zst").write_bytes(data)
    return {
        "set_RedPajamaGithub": files,
        "code_in_text": files,
        "duplicate_exact": files - 1,  # PROSE repeats in each file: removed across files and tasks
        "malformed_json": files,
        "non_utf8": files,
        "missing_text": files,
        "empty": files,
    }


def read_output(folder: Path) -> list[dict]:
    out = []
    for path in sorted(folder.glob("*.jsonl.zst")):
        with open(path, "rb") as f:
            data = zstandard.ZstdDecompressor().stream_reader(f).read()
        out += [orjson.loads(line) for line in data.splitlines() if line]
    return out


# ---------------------------------------------------------------- statistics and restartability


def test_stats_invariant_and_reasons_end_to_end(tmp_path):
    """docs_in == docs_kept + sum(dropped); every bad record lands under its reason; bytes_kept matches output."""
    expected = make_slimpajama(tmp_path / "in")
    res = run_curation(SlimPajamaOptions(), str(tmp_path / "in"), str(tmp_path / "out"), tasks=1)
    stats = CurationStats.model_validate({k: v for k, v in res.items() if k in CurationStats.model_fields})
    assert stats.invariant_holds() and res["complete"]
    assert stats.dropped_by_reason == expected
    out = read_output(tmp_path / "out")
    assert len(out) == stats.docs_kept == 3 * 20 + 1
    assert stats.bytes_kept == sum(len(r["text"].encode()) for r in out)
    assert {r["metadata"]["source_kind"] for r in out} == {"slimpajama"}
    assert stats.docs_in == 3 * 27 and stats.bytes_in > stats.bytes_kept


def test_summarize_counts_unlabelled_drops():
    """A filter drop without a reason is still accounted for (duplicate_near for MinHash, else unlabelled)."""
    task = [
        {"name": "READER", "stats": {"records_in": 10, "bytes_in": 100, "dropped_empty": 1}},
        {"name": "FILTER: x", "stats": {"total": 9, "dropped": 3, "dropped_too_short": 1, "forwarded": 6}},
        {"name": "DEDUP: 🎯 MinHash stage 4", "stats": {"total": 6, "dropped": 1}},
        {
            "name": "WRITER",
            "stats": {"docs_kept": 5, "bytes_kept": {"total": 50, "n": 2}, "lang_docs_C++": 5},
        },
    ]
    s = summarize([task, task], "stack")
    assert s.docs_in == 20 and s.docs_kept == 10 and s.bytes_kept == 100 and s.docs_by_lang == {"C++": 10}
    assert s.dropped_by_reason == {"empty": 2, "duplicate_near": 2, "too_short": 2, "unlabelled:FILTER: x": 4}
    assert s.check().invariant_holds()
    with pytest.raises(ValueError, match="unaccounted"):
        CurationStats(kind="x", docs_in=3, docs_kept=1).check()


def test_restart_skips_completed_tasks_and_never_duplicates(tmp_path):
    """A rerun redoes nothing; after a simulated kill (marker + output lost or half-written) it redoes only that task.
    (One stage, dedup off; the stages of whole-source dedup: tests/test_dedup.py.)"""
    make_slimpajama(tmp_path / "in")
    args = (SlimPajamaOptions(dedup="none"), str(tmp_path / "in"), str(tmp_path / "out"))
    first = run_curation(*args, tasks=3, logging_dir=str(tmp_path / "logs"))
    outputs = sorted((tmp_path / "out").glob("*.jsonl.zst"))
    assert [p.name for p in outputs] == ["00000.jsonl.zst", "00001.jsonl.zst", "00002.jsonl.zst"]
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in outputs}
    ids = sorted(r["id"] for r in read_output(tmp_path / "out"))

    again = run_curation(*args, tasks=3, logging_dir=str(tmp_path / "logs"))
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in outputs} == before
    assert again == first

    (tmp_path / "logs" / "completions" / "00001").unlink()
    (tmp_path / "out" / "00001.jsonl.zst").unlink()
    (tmp_path / "logs" / "completions" / "00002").unlink()
    (tmp_path / "out" / "00002.jsonl.zst").write_bytes(before["00002.jsonl.zst"][1][:40])  # killed mid-write
    resumed = run_curation(*args, tasks=3, logging_dir=str(tmp_path / "logs"))
    assert (tmp_path / "out" / "00000.jsonl.zst").stat().st_mtime_ns == before["00000.jsonl.zst"][0]
    after = sorted(r["id"] for r in read_output(tmp_path / "out"))
    assert after == ids and len(set(after)) == len(after)
    assert (
        resumed["docs_kept"] == first["docs_kept"]
        and resumed["dropped_by_reason"] == first["dropped_by_reason"]
    )


# ---------------------------------------------------------------- pipelines and executors


def test_stack_pipeline_counts_languages(tmp_path):
    """Code runs keep top-25 languages only, write lang metadata and per-language docs/bytes/tokens."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        ("Python", PYTHON),
        ("C", C_CODE),
        ("COBOL", "IDENTIFICATION DIVISION.\n"),
        ("Python", QUALITY_CASES["minified"]),
    ]
    (tmp_path / "data" / "mixed").mkdir(parents=True)
    table = pa.table(
        {
            "content": [c for _, c in rows],
            "lang": [lang for lang, _ in rows],
            "hexsha": [f"{i}" * 40 for i in range(4)],
        }
    )
    pq.write_table(table, tmp_path / "data" / "mixed" / "train-00000-of-00001.parquet")
    res = run_curation(StackOptions(), str(tmp_path / "data"), str(tmp_path / "out"))
    assert res["docs_kept"] == 2 and res["dropped_by_reason"] == {"language_not_selected": 1, "minified": 1}
    assert (
        res["docs_by_lang"] == {"C": 1, "Python": 1}
        and sum(res["bytes_by_lang"].values()) == res["bytes_kept"]
    )
    assert all(v > 0 for v in res["tokens_by_lang"].values())
    assert {r["metadata"]["lang"] for r in read_output(tmp_path / "out")} == {"C", "Python"}


def test_script_and_executors(tmp_path, capsys):
    """The pipelines/ command line runs a curation; Slurm needs a partition; Ray without ray is a clear error."""
    from mixlab.curate.script import main

    (tmp_path / "nb").mkdir()
    nb = {"cells": [{"cell_type": "code", "source": "print(1)"}], "metadata": {}, "nbformat": 4}
    (tmp_path / "nb" / "a.ipynb").write_bytes(orjson.dumps(nb))
    res = main(
        ["commits", "notebooks", "stackexchange"],
        argv=["--kind", "notebooks", "--input", str(tmp_path / "nb"), "--output", str(tmp_path / "out")],
    )
    assert res["docs_kept"] == 1 and '"docs_kept": 1' in capsys.readouterr().out
    with pytest.raises(ValueError, match="needs an input path"):
        build_pipeline(CommitOptions(), "", str(tmp_path / "out2"))
    with pytest.raises(ValueError, match="synthetic source needs an input"):
        SyntheticOptions()
    pipeline = build_pipeline(NotebookOptions(), str(tmp_path / "nb"), str(tmp_path / "out2"))
    with pytest.raises(ValueError, match="partition"):
        make_executor("slurm", pipeline, logging_dir=str(tmp_path / "l"))
    slurm = make_executor("slurm", pipeline, tasks=4, logging_dir=str(tmp_path / "l"), partition="cpu")
    assert slurm.world_size == 4 and slurm.partition == "cpu"
    try:
        import ray  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install"):
            make_executor("ray", pipeline)


def test_script_recipe_source_is_the_recipe_curation(tmp_path, capsys):
    """pipelines/*.py --recipe R --source NAME curates with the recipe's resolved input path and typed filters:
    the same statistics as run_curation called with them (what `mixlab curate` does); --set applies; misuse
    (wrong kind, unknown source, unknown filter field, --recipe with --input) exits with a message naming the fix."""
    from mixlab.curate.script import main

    kinds = ["commits", "notebooks", "stackexchange"]
    (tmp_path / "nb").mkdir()
    for name, cells in (("code", [{"cell_type": "code", "source": "print(1)"}]), ("prose", [])):
        nb = {"cells": [{"cell_type": "markdown", "source": f"# {name}"}, *cells], "metadata": {}, "nbformat": 4}
        (tmp_path / "nb" / f"{name}.ipynb").write_bytes(orjson.dumps(nb))
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(
        f"data_root: {tmp_path}\nsources:\n  nb: {{kind: notebooks, path: nb}}\n  text: {{kind: slimpajama, path: sp}}\n"
        "phases:\n  p: {tokens: 4096, mixture: {nb: 1.0}}\n"
    )
    res = main(kinds, argv=["--recipe", str(recipe_file), "--source", "nb", "--output", str(tmp_path / "o1")])
    recipe = load_recipe(recipe_file)
    direct = run_curation(recipe.sources["nb"].filters, recipe.resolve_path("nb"), str(tmp_path / "o2"))
    same = {k for k in res if k not in ("output_folder", "logging_dir")}
    assert {k: res[k] for k in same} == {k: direct[k] for k in same}
    assert res["docs_kept"] == 1 and res["dropped_by_reason"] == {"no_code_cells": 1}
    res = main(kinds, argv=["--recipe", str(recipe_file), "--source", "nb", "--set", "sources.nb.filters.min_code_cells=0",
                            "--output", str(tmp_path / "o3")])
    assert res["docs_kept"] == 2
    capsys.readouterr()
    bad = {
        "pipelines/text.py": ["--recipe", str(recipe_file), "--source", "text"],
        "its sources: ['nb', 'text']": ["--recipe", str(recipe_file), "--source", "nbs"],
        "min_code_cell: unknown field": ["--kind", "notebooks", "--input", "nb", "--filters", '{"min_code_cell": 0}'],
        "cannot be combined with --recipe": ["--recipe", str(recipe_file), "--source", "nb", "--input", "nb"],
    }
    for message, argv in bad.items():
        with pytest.raises(SystemExit):
            main(kinds, argv=[*argv, "--output", str(tmp_path / "o4")])
        assert message in capsys.readouterr().err, message


# ---------------------------------------------------------------- the embedded sample

SAMPLE_INPUTS = {
    "slimpajama": "slimpajama/train",
    "stack": "stack/data",
    "markup": "stack/data",
    "notebooks": "notebooks",
    "commits": "commits",
    "stackexchange": "stackexchange/Posts.xml",
}


@pytest.mark.parametrize("kind", list(SAMPLE_INPUTS))
def test_curation_on_embedded_sample(kind, tmp_path):
    """Each kind curates the embedded sample end to end: output written, every document accounted for."""
    path = SAMPLE / SAMPLE_INPUTS[kind]
    assert path.exists(), f"the embedded sample is committed but {path} is missing"
    res = run_curation(OPTIONS_BY_KIND[kind](), str(path), str(tmp_path / "out"), tasks=2 if kind == "slimpajama" else 1)
    assert res["complete"] and res["docs_in"] == res["docs_kept"] + sum(res["dropped_by_reason"].values())
    out = read_output(tmp_path / "out")
    assert len(out) == res["docs_kept"] > 0
    assert {r["metadata"]["source_kind"] for r in out} == {kind}
    if kind == "slimpajama":
        assert not {r["metadata"]["redpajama_set_name"] for r in out} & {
            "RedPajamaGithub",
            "RedPajamaStackExchange",
        }
    if kind == "stack":
        assert {r["metadata"]["lang"] for r in out} <= set(TOP25_LANGUAGES)
    if kind == "markup":
        assert {r["metadata"]["lang"] for r in out} <= set(MARKUP_LANGUAGES)
    if kind == "notebooks" and (path / "broken_truncated.ipynb").exists():
        assert res["dropped_by_reason"].get("broken_notebook", 0) >= 1
    if os.environ.get("MIXLAB_PRINT_STATS"):
        print(kind, {k: res[k] for k in ("docs_in", "docs_kept", "dropped_by_reason")})
