"""The text and code curation pipelines on a larger local sample (3 varied copies of the embedded one).

Invariants: every record read is kept or dropped with a reason; the scaled sample reads exactly 3x the records;
decisions that depend only on metadata (set and language selection) scale exactly; kept counts scale (content
filters see slightly varied texts, so a borderline document may be decided differently in a copy).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mixlab.builders.scale import scale_sample, vary_text
from mixlab.curate.pipeline import run_curation
from mixlab.recipe.sources import OPTIONS_BY_KIND

SAMPLE = Path(__file__).resolve().parents[1] / "mixlab" / "sample" / "data"
FACTOR = 3
KINDS = {"slimpajama": "slimpajama/train", "stack": "stack/data"}
METADATA_REASONS = ("set_", "language_not_selected")


def test_vary_text_keeps_lines_and_separates_copies():
    """Copy 1 is the text itself; later copies differ from it and from each other, keep the head and every line."""
    text = "# header\nline two\n\nalpha\nbeta\n\ngamma\n\ndelta\n"
    copies = [vary_text(text, c, fixed_lines=2) for c in (1, 2, 3)]
    assert copies[0] == text and len(set(copies)) == 3
    for c, copy in enumerate(copies[1:], start=2):
        assert copy.startswith("# header\nline two\n\n") and copy.endswith(f"[copy {c}]\n")
        assert Counter(copy.split("\n")) - Counter(text.split("\n")) == Counter({f"[copy {c}]": 1, "": 1})


@pytest.mark.parametrize("kind", list(KINDS))
def test_pipeline_on_scaled_sample(kind, tmp_path):
    """in == kept + dropped per reason, at factor 1 and 3; records x3; metadata drops x3; kept ~x3."""
    assert (SAMPLE / KINDS[kind]).exists(), "the embedded sample is committed but was not found"
    scale_sample(FACTOR, tmp_path / "scaled")
    one = run_curation(OPTIONS_BY_KIND[kind](), str(SAMPLE / KINDS[kind]), str(tmp_path / "out1"), tasks=1)
    big = run_curation(OPTIONS_BY_KIND[kind](), str(tmp_path / "scaled" / KINDS[kind]), str(tmp_path / "out3"), tasks=1)
    for res in (one, big):
        assert res["complete"] and res["docs_in"] == res["docs_kept"] + sum(res["dropped_by_reason"].values())
    assert big["docs_in"] == FACTOR * one["docs_in"] and big["bytes_kept"] > 0.99 * FACTOR * one["bytes_kept"]
    for reason, n in one["dropped_by_reason"].items():
        if reason.startswith(METADATA_REASONS):
            assert big["dropped_by_reason"][reason] == FACTOR * n, reason
    assert abs(big["docs_kept"] - FACTOR * one["docs_kept"]) <= max(2, 0.01 * FACTOR * one["docs_kept"])
    if kind == "stack":
        assert set(big["docs_by_lang"]) == set(one["docs_by_lang"])
