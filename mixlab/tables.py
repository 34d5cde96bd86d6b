"""Per-source and per-language accounting tables as polars DataFrames, and their text / markdown rendering.

Contract:
- Builders read only plain data the stages wrote (a run summary from :func:`mixlab.report.summarize`, a packed
  phase's manifest plus the token recount from its files) and return one ``pl.DataFrame`` each, with a fixed
  column order and one row per source (per source and language for :func:`language_frame`, per phase and
  source for :func:`phase_frame`). Integer columns stay integers (token counts are exact); shares are fractions.
- Aggregations are polars expressions: a source's share of a phase, of its curated tokens or of the whole run
  (:func:`run_totals_frame` sums the phases by source) are computed columns, not hand-summed in loops.
- :func:`render_table` turns a frame into aligned text (console) or a markdown table (``report.md``): integers
  with thousands separators, floats with a fixed number of decimals per column, missing values as ``-``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

MISSING = "-"


def render_table(
    df: pl.DataFrame, *, decimals: Mapping[str, int] | None = None, markdown: bool = False, indent: str = ""
) -> str:
    """``df`` as text: every row and column, no dtypes or shape; floats with ``decimals[col]`` (default 3)."""
    decimals = decimals or {}
    cells = []
    for name, dtype in df.schema.items():
        if dtype.is_float():
            fmt = f"{{:.{decimals.get(name, 3)}f}}"
            text = [MISSING if v is None else fmt.format(v) for v in df[name].to_list()]
            width = max([len(name), *map(len, text)])
            cells.append(pl.Series(name, [t.rjust(width) for t in text], dtype=pl.String))
        else:
            cells.append(df[name])
    with pl.Config(
        tbl_formatting="ASCII_MARKDOWN" if markdown else "NOTHING",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_hide_dtype_separator=True,
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=10_000,
        fmt_str_lengths=10_000,
        thousands_separator=",",
        tbl_cell_numeric_alignment="RIGHT",
    ):
        text = str(pl.DataFrame(cells))
    return "\n".join(indent + line.rstrip() for line in text.splitlines())


def curation_frame(curation: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """One row per source: documents in, kept, dropped, kept fraction, kept bytes, drops by reason (text)."""
    rows = [
        {
            "source": name,
            "docs in": int(c.get("docs_in", 0)),
            "kept": int(c.get("docs_kept", 0)),
            "dropped": int(sum(c.get("dropped", {}).values())),
            "bytes kept": int(c.get("bytes_kept", 0)),
            "dropped by reason": ", ".join(f"{k}={v}" for k, v in sorted(c.get("dropped", {}).items()))
            or "none",
        }
        for name, c in curation.items()
    ]
    schema = {
        "source": pl.String,
        "docs in": pl.Int64,
        "kept": pl.Int64,
        "dropped": pl.Int64,
        "bytes kept": pl.Int64,
        "dropped by reason": pl.String,
    }
    df = pl.DataFrame(rows, schema=schema)
    kept_share = (pl.col("kept") / pl.col("docs in")).fill_nan(None)
    return df.with_columns(kept_share.alias("kept share")).select(
        "source", "docs in", "kept", "dropped", "kept share", "bytes kept", "dropped by reason"
    )


def language_frame(curation: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """One row per (source, language) of the kept documents, sources in order, languages by estimated tokens
    (most first); ``token share`` = the language's share of its source's estimated tokens. Empty when no
    source recorded languages (text kinds do not)."""
    rows = [
        {
            "source": name,
            "lang": lang,
            "docs": int(n),
            "bytes": int(c.get("bytes_by_lang", {}).get(lang, 0)),
            "est. tokens": int(c.get("tokens_by_lang", {}).get(lang, 0)),
        }
        for name, c in curation.items()
        for lang, n in c.get("docs_by_lang", {}).items()
    ]
    schema = {
        "source": pl.String,
        "lang": pl.String,
        "docs": pl.Int64,
        "bytes": pl.Int64,
        "est. tokens": pl.Int64,
    }
    df = pl.DataFrame(rows, schema=schema)
    order = {name: i for i, name in enumerate(curation)}
    share = (pl.col("est. tokens") / pl.col("est. tokens").sum().over("source")).fill_nan(None)
    return (
        df.with_columns(
            share.alias("token share"),
            pl.col("source").replace_strict(order, return_dtype=pl.Int64, default=len(order)).alias("_o"),
        )
        .sort(["_o", "est. tokens", "lang"], descending=[False, True, False])
        .drop("_o")
    )


def phase_frame(phases: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """One row per (phase, source) in phase order: planned and realized tokens, the source's share of the phase's
    realized tokens, epochs through its documents, held-out loss at the phase end (null when not trained)."""
    rows = [
        {
            "phase": pname,
            "source": s,
            "planned": int(t["planned"]),
            "realized": int(t["realized"]),
            "epochs": float(t["epochs"]),
            "held-out loss": p.get("heldout", {}).get(s),
        }
        for pname, p in phases.items()
        for s, t in p["sources"].items()
    ]
    schema = {
        "phase": pl.String,
        "source": pl.String,
        "planned": pl.Int64,
        "realized": pl.Int64,
        "epochs": pl.Float64,
        "held-out loss": pl.Float64,
    }
    df = pl.DataFrame(rows, schema=schema)
    share = pl.col("realized") / pl.col("realized").sum().over("phase")
    return df.with_columns(share.alias("share")).select(
        "phase", "source", "planned", "realized", "share", "epochs", "held-out loss"
    )


def run_totals_frame(phases: pl.DataFrame) -> pl.DataFrame:
    """Tokens per source over the whole run (all phases of :func:`phase_frame`), first appearance order, with
    the number of phases it appears in and its share of every token trained on."""
    return (
        phases.with_row_index("_i")
        .group_by("source", maintain_order=True)
        .agg(pl.len().alias("phases"), pl.col("planned").sum(), pl.col("realized").sum(), pl.col("_i").min())
        .sort("_i")
        .drop("_i")
        .with_columns((pl.col("realized") / pl.col("realized").sum()).alias("share of run"))
    )


def composition_frame(
    sources: Mapping[str, Any], recount: Mapping[str, int], total_tokens: int
) -> pl.DataFrame:
    """A packed phase's composition, by source id: manifest ``sources`` (name -> entry with ``source_id``,
    ``weight``, ``planned_tokens``, ``epochs_through``) beside ``recount`` (tokens recounted from the files);
    ``share`` = recounted tokens / ``total_tokens``."""
    rows = [
        {
            "source": s,
            "id": int(e.source_id),
            "weight": float(e.weight),
            "planned": int(e.planned_tokens),
            "on disk": int(recount.get(s, 0)),
            "epochs": float(e.epochs_through),
        }
        for s, e in sources.items()
    ]
    schema = {
        "source": pl.String,
        "id": pl.Int64,
        "weight": pl.Float64,
        "planned": pl.Int64,
        "on disk": pl.Int64,
        "epochs": pl.Float64,
    }
    df = pl.DataFrame(rows, schema=schema).sort("id")
    return df.with_columns((pl.col("on disk") / max(total_tokens, 1)).alias("share")).select(
        "source", "weight", "planned", "on disk", "share", "epochs"
    )
