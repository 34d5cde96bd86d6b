"""Studies: run a grid of recipes in one workspace and compare them against a baseline, as the paper does.

Contract:
- ``run_study(recipes, workdir, baseline=...)`` runs every recipe through every stage in one shared workspace,
  so tokenized sources, packed phases and trained phases that recipes share are computed once; an interrupted
  study resumes where it stopped (each stage is cached by its inputs).
- ``compare(rows, baseline)`` is pure: per recipe, the final held-out loss per source and per domain and its
  relative change against the baseline (negative = better), plus task-category scores when evaluated.
- ``fit_code_share(rows)`` is pure: per domain, a least-squares polynomial (degree <= 2) of final held-out loss
  against the recipe's code share, and ``recommend_share`` the share in [0, 1] that minimizes a stated
  weighted objective over the fitted curves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixlab.recipe import Recipe

# Source kinds grouped into the domains the paper reports (held-out loss side).
DOMAIN_OF_KIND = {
    "slimpajama": "text",
    "stack": "code",
    "synthetic": "code",
    "markup": "markup",
    "commits": "code-adjacent",
    "notebooks": "code-adjacent",
    "stackexchange": "code-adjacent",
    "issues": "code-adjacent",
}
CODE_KINDS = frozenset({"stack", "synthetic"})
PRESETS = {
    "code-share": ["code-share-0", "code-share-25", "code-share-50", "code-share-75", "code-share-100"],
    # equal token budgets: every recipe runs balanced->text's two phases, only the mixtures differ
    "initialization": ["text-only-matched", "balanced-matched", "balanced-text", "code-text"],
    "cooldown": ["balanced-text", "cooldown-no-code", "cooldown-code"],
    "quality": ["code-only", "code-markup", "code-adjacent", "code-synthetic"],
}


def code_share(recipe: Recipe) -> float:
    """Token-weighted share of code-kind sources (The Stack, synthetic) over all phases of the recipe."""
    total = code = 0.0
    for phase in recipe.phases.values():
        total += phase.tokens
        code += phase.tokens * sum(w for s, w in phase.mixture.items() if recipe.sources[s].kind in CODE_KINDS)
    return code / total if total else 0.0


def study_row(recipe: Recipe, summary: dict[str, Any], evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
    """One recipe's line of a study: final held-out loss per source and domain, code share, task scores."""
    last = list(summary["phases"].values())[-1]
    held = dict(last.get("heldout", {}))
    domains: dict[str, list[float]] = {}
    for source, loss in held.items():
        domains.setdefault(DOMAIN_OF_KIND[recipe.sources[source].kind], []).append(loss)
    return {
        "recipe": recipe.name,
        "code_share": code_share(recipe),
        "heldout": held,
        "domains": {d: float(np.mean(v)) for d, v in sorted(domains.items())},
        "categories": (evaluation or {}).get("categories", {}),
        "phases": list(summary["phases"]),
    }


def compare(rows: Sequence[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Add ``relative`` (held-out loss per domain, % change vs baseline) and ``relative_categories``."""
    base = next((r for r in rows if r["recipe"] == baseline), None)
    if base is None:
        raise ValueError(f"baseline {baseline!r} is not among the study's recipes {[r['recipe'] for r in rows]}")
    out = []
    for row in rows:
        rel = {d: 100.0 * (v - base["domains"][d]) / base["domains"][d] for d, v in row["domains"].items()
               if d in base["domains"]}
        rel_cat = {c: 100.0 * (v - base["categories"][c]) / base["categories"][c]
                   for c, v in row["categories"].items() if base["categories"].get(c)}
        out.append({**row, "relative": rel, "relative_categories": rel_cat})
    return out


def fit_code_share(rows: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Per domain, polynomial coefficients (highest power first) of held-out loss vs code share."""
    shares = np.array([r["code_share"] for r in rows])
    fits = {}
    for domain in sorted({d for r in rows for d in r["domains"]}):
        ys = np.array([r["domains"].get(domain, np.nan) for r in rows])
        ok = ~np.isnan(ys)
        if ok.sum() < 2 or len(np.unique(shares[ok])) < 2:
            continue
        degree = min(2, len(np.unique(shares[ok])) - 1)
        fits[domain] = np.polyfit(shares[ok], ys[ok], degree).tolist()
    return fits


def recommend_share(fits: dict[str, list[float]], objective: dict[str, float], grid: int = 1001) -> dict[str, Any]:
    """The code share in [0, 1] minimizing ``sum_d weight_d * fitted_loss_d(share)``."""
    missing = sorted(set(objective) - set(fits))
    if missing:
        raise ValueError(f"objective names domains without a fit: {missing}; fitted: {sorted(fits)}")
    xs = np.linspace(0.0, 1.0, grid)
    total = sum(w * np.polyval(fits[d], xs) for d, w in objective.items())
    best = int(np.argmin(total))
    return {"share": float(xs[best]), "objective": objective, "value": float(total[best])}


def format_table(rows: Sequence[dict[str, Any]], baseline: str) -> str:
    domains = sorted({d for r in rows for d in r["domains"]})
    cats = sorted({c for r in rows for c in r["categories"]})
    head = ["recipe", "code share"] + [f"{d} loss" for d in domains] + [f"{c}" for c in cats]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["recipe"] + (" (baseline)" if r["recipe"] == baseline else ""), f"{r['code_share']:.2f}"]
        cells += [f"{r['domains'][d]:.3f} ({r['relative'].get(d, 0):+.1f}%)" if d in r["domains"] else "-"
                  for d in domains]
        cells += [f"{r['categories'][c]:.3f}" if c in r["categories"] else "-" for c in cats]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_study(rows: Sequence[dict[str, Any]], fits: dict[str, list[float]], rec: dict[str, Any] | None,
               out: Path) -> None:
    """Left: relative held-out loss per domain per recipe (the paper's bar charts). Right: loss vs code share
    with the fitted curves and the recommended share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = sorted({d for r in rows for d in r["relative"]})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        ax1.bar(np.arange(len(domains)) + i * width, [r["relative"].get(d, 0) for d in domains], width, label=r["recipe"])
    ax1.axhline(0, color="black", lw=0.6)
    ax1.set_xticks(np.arange(len(domains)) + width * (len(rows) - 1) / 2, domains)
    ax1.set(ylabel="held-out loss vs baseline (%; lower is better)", title="Relative held-out loss by domain")
    ax1.legend(fontsize=7)
    xs = np.linspace(0, 1, 101)
    for d in domains:
        pts = [(r["code_share"], r["domains"][d]) for r in rows if d in r["domains"]]
        line = ax2.plot(*zip(*sorted(pts), strict=True), "o", label=d)[0]
        if d in fits:
            ax2.plot(xs, np.polyval(fits[d], xs), "-", color=line.get_color(), lw=1)
    if rec:
        ax2.axvline(rec["share"], color="grey", ls="--", lw=1, label=f"recommended {rec['share']:.2f}")
    ax2.set(xlabel="code share of training tokens", ylabel="final held-out loss (nats/token)",
            title="Held-out loss vs code share (fitted)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def run_study(
    recipes: Sequence[Recipe], workdir: Path, *, baseline: str, objective: dict[str, float] | None = None,
    evaluate: bool = False, progress: bool = True, workers: int = 1, out_dir: Path | None = None,
) -> dict[str, Any]:
    """Run every recipe (shared, cached workspace), compare to ``baseline``, fit and plot; write study files."""
    from mixlab.report import summarize, write_report
    from mixlab.stages import run

    rows = []
    for recipe in recipes:
        state = run(recipe, workdir, until="eval" if evaluate else "train", progress=progress, workers=workers)
        summary = summarize(state)
        write_report(summary, Path(workdir) / "runs" / recipe.name)
        rows.append(study_row(recipe, summary, summary.get("evaluation")))
    rows = compare(rows, baseline)
    fits = fit_code_share(rows)
    objective = objective or {"text": 0.5, "code": 0.5}
    rec = recommend_share(fits, objective) if set(objective) <= set(fits) else None
    out_dir = Path(out_dir or Path(workdir) / "study")
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"baseline": baseline, "rows": rows, "fits": fits, "recommendation": rec}
    (out_dir / "study.json").write_text(json.dumps(result, indent=2))
    table = format_table(rows, baseline)
    plot_study(rows, fits, rec, out_dir / "study.png")
    md = [f"# Study: {len(rows)} recipes vs {baseline}", "", table, ""]
    if rec:
        md.append(f"Recommended code share for objective {rec['objective']} (weighted held-out loss, fitted "
                  f"curves): **{rec['share']:.2f}**.")
    md += ["", "![study](study.png)"]
    (out_dir / "study.md").write_text("\n".join(md) + "\n")
    result["table"] = table
    return result
