"""The accounting tables (polars) behind ``mixlab inspect``, the console summary and the mixture card."""

from __future__ import annotations

from types import SimpleNamespace

import polars as pl

from mixlab.tables import (
    composition_frame,
    curation_frame,
    language_frame,
    phase_frame,
    render_table,
    run_totals_frame,
)

CURATION = {
    "text": {"docs_in": 752, "docs_kept": 505, "dropped": {"set_RedPajamaGithub": 60, "code_in_text": 187},
             "bytes_kept": 2_489_546},
    "code": {"docs_in": 300, "docs_kept": 200, "dropped": {"language_not_selected": 100}, "bytes_kept": 123_456,
             "docs_by_lang": {"Python": 120, "Go": 80}, "bytes_by_lang": {"Python": 1000, "Go": 800},
             "tokens_by_lang": {"Python": 300, "Go": 500}},
    "empty": {"docs_in": 0, "docs_kept": 0, "dropped": {}, "bytes_kept": 0},
}
PHASES = {
    "pretrain": {"sources": {"text": {"planned": 5120, "realized": 5120, "epochs": 0.31},
                             "code": {"planned": 5120, "realized": 5120, "epochs": 1.2}},
                 "heldout": {"text": 5.1, "code": 4.2}},
    "cooldown": {"sources": {"text": {"planned": 3840, "realized": 3840, "epochs": 0.5},
                             "synthetic": {"planned": 1280, "realized": 1280, "epochs": 2.0}}},
}


def test_curation_frame_accounts_for_every_document():
    """Per source, kept + dropped == docs in, the drop reasons are all listed, and an empty source shows '-' as
    its kept share instead of a division error."""
    df = curation_frame(CURATION)
    assert df["source"].to_list() == ["text", "code", "empty"]
    assert (df["kept"] + df["dropped"] == df["docs in"]).all()
    assert df.row(0, named=True)["dropped by reason"] == "code_in_text=187, set_RedPajamaGithub=60"
    shown = render_table(df).splitlines()
    assert shown[1].split()[:4] == ["text", "752", "505", "247"] and "2,489,546" in shown[1]
    assert shown[3].split()[4] == "-"


def test_language_frame_orders_and_shares_within_each_source():
    """Only sources with languages appear; languages by estimated tokens (most first); shares sum to 1 per
    source; a summary without languages gives an empty frame."""
    df = language_frame(CURATION)
    assert df.select("source", "lang").rows() == [("code", "Go"), ("code", "Python")]
    assert df["token share"].to_list() == [0.625, 0.375]
    assert language_frame({"text": CURATION["text"]}).height == 0


def test_phase_and_run_totals_add_up():
    """Each phase's shares sum to 1; the run totals equal the sum of the phases per source, in first-appearance
    order, with the phase count; a missing held-out loss is null and rendered as '-'."""
    phases = phase_frame(PHASES)
    sums = phases.group_by("phase").agg(pl.col("share").sum())
    assert all(abs(v - 1.0) < 1e-12 for v in sums["share"])
    totals = run_totals_frame(phases)
    assert totals.select("source", "phases", "realized").rows() == [
        ("text", 2, 8960), ("code", 1, 5120), ("synthetic", 1, 1280)
    ]
    assert totals["realized"].sum() == 15360 and abs(totals["share of run"].sum() - 1.0) < 1e-12
    cooldown = phases.filter(pl.col("phase") == "cooldown").drop("phase")
    assert cooldown["held-out loss"].null_count() == 2
    assert render_table(cooldown, decimals={"epochs": 2}).splitlines()[1].split() == [
        "text", "3,840", "3,840", "0.750", "0.50", "-"
    ]


def test_composition_frame_follows_source_ids_and_markdown_renders():
    """inspect's table lists sources by source id (not by name) with the recounted tokens and their share; the
    markdown rendering is a pipe table with one line per source plus header and rule."""
    entry = SimpleNamespace
    sources = {"a": entry(source_id=1, weight=0.25, planned_tokens=256, epochs_through=0.5),
               "b": entry(source_id=0, weight=0.75, planned_tokens=768, epochs_through=1.25)}
    df = composition_frame(sources, {"a": 256, "b": 768}, 1024)
    assert df["source"].to_list() == ["b", "a"] and df["share"].to_list() == [0.75, 0.25]
    md = render_table(df, markdown=True, decimals={"epochs": 2}).splitlines()
    assert len(md) == 4 and md[0].startswith("| source") and set(md[1]) <= {"|", "-", ":"}
    assert md[2].replace(" ", "") == "|b|0.750|768|768|0.750|1.25|"
