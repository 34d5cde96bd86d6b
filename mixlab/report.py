"""Summaries of a run: the console table, ``summary.json``, ``report.md`` and ``loss.png``.

Contract: ``summarize(state)`` reads only files the stages wrote (curation stats, manifests, metrics.jsonl), so a
report can be rebuilt from a workspace at any time; ``write_report(summary, out_dir)`` writes the three files.
The accounting tables (curation per source, kept documents per language, tokens per phase and source, tokens
per source over the run) are polars DataFrames built by :mod:`mixlab.tables` from the summary: the console
renders them as aligned text (:func:`format_summary`), the mixture card as markdown tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mixlab.pack.manifest import read_manifest
from mixlab.recipe import recipe_hash
from mixlab.stages import RunState
from mixlab.tables import curation_frame, language_frame, phase_frame, render_table, run_totals_frame

_DECIMALS = {"epochs": 2, "kept share": 3, "share": 3, "token share": 3, "share of run": 3, "held-out loss": 3}


def _metrics(train_dir: Path) -> list[dict[str, Any]]:
    path = train_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(state: RunState) -> dict[str, Any]:
    r = state.recipe
    curation = {}
    for name, stats in state.curation_stats.items():
        curation[name] = {
            "docs_in": stats.get("docs_in", 0), "docs_kept": stats.get("docs_kept", 0),
            "dropped": stats.get("dropped_by_reason", {}), "bytes_kept": stats.get("bytes_kept", 0),
            **{k: stats[k] for k in ("docs_by_lang", "bytes_by_lang", "tokens_by_lang") if stats.get(k)},
        }
    phases = {}
    for pname, packed in state.packed.items():
        m = read_manifest(packed)
        entry: dict[str, Any] = {
            "sequences": m.num_sequences, "tokens": m.planned_tokens, "max_prefix_deviation": m.max_prefix_deviation,
            "sources": {s: {"planned": e.planned_tokens, "realized": e.realized_tokens, "epochs": e.epochs_through}
                        for s, e in m.sources.items()},
        }
        if pname in state.trained:
            rows = _metrics(state.trained[pname])
            steps = [row for row in rows if "loss" in row and "step" in row]
            ends = [row for row in rows if "heldout" in row]
            entry["train"] = {
                "steps": len(steps), "final_loss": steps[-1]["loss"] if steps else None,
                "tokens_per_s": steps[-1].get("tokens_per_s") if steps else None,
                "curve": [(row["step"], row["loss"]) for row in steps],
            }
            entry["heldout"] = ends[-1]["heldout"] if ends else {}
        phases[pname] = entry
    sources = {name: {"kind": src.kind, "path": src.path, "filters": src.filters_json(), "description": src.description}
               for name, src in r.sources.items()}
    return {"recipe": r.name, "description": r.description, "recipe_hash": recipe_hash(r), "sources": sources,
            "curation": curation, "phases": phases,
            "tokenizer": state.tokenizer.model_dump(mode="json") if state.tokenizer else {},
            "seconds": {k: round(v, 1) for k, v in state.timings.items()},
            "evaluation": _evaluation_summary(state.results.get("evaluation"))}


def _evaluation_summary(ev: dict[str, Any] | None) -> dict[str, Any] | None:
    if not ev:
        return None
    tasks = {name: {k: v for k, v in t.items() if isinstance(v, int | float | str)} for name, t in ev.get("tasks", {}).items()}
    return {"categories": ev.get("categories", {}), "tasks": tasks, "checkpoint": ev.get("checkpoint")}


def _table(df, markdown: bool, indent: str = "") -> str:
    return render_table(df, decimals=_DECIMALS, markdown=markdown, indent=indent)


def format_summary(summary: dict[str, Any]) -> str:
    """The console summary: curation and language tables, then each phase's token accounting, the run totals,
    task scores and stage times."""
    lines = [f"recipe {summary['recipe']}: {summary['description']}", "", "Curation (documents):"]
    lines.append(_table(curation_frame(summary["curation"]), False, "  "))
    langs = language_frame(summary["curation"])
    if langs.height:
        lines += ["", "Kept code by language (estimated tokens):", _table(langs, False, "  ")]
    phases = phase_frame(summary["phases"])
    for pname, p in summary["phases"].items():
        lines.append(f"\nPhase {pname}: {p['sequences']} sequences, {p['tokens']:,} tokens, "
                     f"max prefix deviation {p['max_prefix_deviation']:.3f} sequences")
        lines.append(_table(phases.filter(phases["phase"] == pname).drop("phase"), False, "  "))
        held = p.get("heldout", {})
        others = {s: v for s, v in held.items() if s not in p["sources"]}
        if others:
            lines.append("  held-out loss, sources not in this phase: "
                         + ", ".join(f"{s}={v:.3f}" for s, v in others.items()))
        if "train" in p and p["train"]["final_loss"] is not None:
            lines.append(f"  trained {p['train']['steps']} steps, final loss {p['train']['final_loss']:.3f}")
    if len(summary["phases"]) > 1:
        lines += ["\nTokens per source, all phases:", _table(run_totals_frame(phases), False, "  ")]
    ev = summary.get("evaluation")
    if ev:
        lines.append("\nTask evaluation of the final checkpoint (paper's categories):")
        for cat, score in ev["categories"].items():
            lines.append(f"  {cat:<18}{score:.3f}")
    if summary.get("seconds"):
        lines.append("\nseconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in summary["seconds"].items()))
    return "\n".join(lines)


def accounting_markdown(summary: dict[str, Any]) -> list[str]:
    """The mixture card's accounting sections as markdown tables (the same frames as :func:`format_summary`)."""
    md = ["## Curation", "", _table(curation_frame(summary["curation"]), True)]
    langs = language_frame(summary["curation"])
    if langs.height:
        md += ["", "Kept code documents by language (tokens estimated before tokenization):", "",
               _table(langs, True)]
    phases = phase_frame(summary["phases"])
    md += ["", "## Token accounting and held-out loss"]
    for pname, p in summary["phases"].items():
        md += ["", f"**{pname}**: {p['sequences']} sequences, {p['tokens']:,} tokens, max prefix deviation "
               f"{p['max_prefix_deviation']:.3f} sequences"
               + (f"; trained {p['train']['steps']} steps, final loss {p['train']['final_loss']:.3f}"
                  if p.get("train", {}).get("final_loss") is not None else "") + ".", "",
               _table(phases.filter(phases["phase"] == pname).drop("phase"), True)]
        others = {s: v for s, v in p.get("heldout", {}).items() if s not in p["sources"]}
        if others:
            md += ["", "Held-out loss of sources not in this phase: "
                   + ", ".join(f"{s} {v:.3f}" for s, v in others.items()) + "."]
    if phases.height:
        md += ["", "Tokens per source over the whole run:", "", _table(run_totals_frame(phases), True)]
    return md


def plot_losses(summary: dict[str, Any], path: Path) -> bool:
    """Training loss across phases (x = cumulative step), held-out loss per source at phase ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = [(n, p) for n, p in summary["phases"].items() if "train" in p]
    if not phases:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    offset = 0
    for name, p in phases:
        curve = p["train"]["curve"]
        ax1.plot([offset + s for s, _ in curve], [loss for _, loss in curve], label=name)
        offset += len(curve)
        ax1.axvline(offset, color="grey", lw=0.5, ls=":")
    ax1.set(xlabel="step (all phases)", ylabel="training loss", title="Training loss by phase")
    ax1.legend()
    sources = sorted({s for _, p in phases for s in p.get("heldout", {})})
    for s in sources:
        ax2.plot([n for n, _ in phases], [p.get("heldout", {}).get(s, float("nan")) for _, p in phases], "o-", label=s)
    ax2.set(xlabel="end of phase", ylabel="held-out loss (nats/token)", title="Held-out loss per source")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(summary: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    has_plot = plot_losses(summary, out_dir / "loss.png")
    md = [f"# Mixture card: {summary['recipe']}", "", summary["description"], "",
          f"Recipe hash `{summary.get('recipe_hash', '')[:16]}`, tokenizer {summary['tokenizer']['name']} "
          f"(vocab {summary['tokenizer']['vocab_size']}, EOS {summary['tokenizer']['eos_id']}, content "
          f"`{summary['tokenizer']['hash'][:12]}`).", "", "## Sources", "",
          "| source | kind | path | filters | description |", "|---|---|---|---|---|"]
    for name, src in summary.get("sources", {}).items():
        filters = ", ".join(f"{k}={v}" for k, v in src["filters"].items()) or "defaults"
        md.append(f"| {name} | {src['kind']} | `{src['path'] or '-'}` | {filters} | {src['description']} |")
    md += ["", *accounting_markdown(summary)]
    if summary.get("evaluation"):
        md += ["", "## Task evaluation (final checkpoint)", "", "```",
               json.dumps(summary["evaluation"].get("categories", {}), indent=2), "```"]
    if has_plot:
        md += ["", "## Training curves", "", "![loss by phase](loss.png)"]
    (out_dir / "report.md").write_text("\n".join(md) + "\n")
    return out_dir / "report.md"
