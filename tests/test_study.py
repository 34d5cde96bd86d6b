"""Study comparison, code-share fit and recommendation (pure functions, exact)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mixlab.recipe import load_recipe
from mixlab.study import code_share, compare, fit_code_share, recommend_share, study_row

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_code_share_of_shipped_recipes() -> None:
    """Code share is the token-weighted share of Stack + synthetic sources over all phases."""
    for p in (0, 25, 50, 75, 100):
        assert code_share(load_recipe(RECIPES / f"code-share-{p}.yaml")) == pytest.approx(p / 100)
    bt = load_recipe(RECIPES / "balanced-text.yaml")  # 1M tokens at 50% code, then 0.5M of text
    assert code_share(bt) == pytest.approx(0.5 * 1048576 / (1048576 + 524288))
    assert code_share(load_recipe(RECIPES / "code-synthetic.yaml")) == pytest.approx(1.0)


def test_study_row_groups_sources_into_domains() -> None:
    """Final-phase held-out losses are averaged per domain (commits/notebooks/stackexchange = code-adjacent)."""
    recipe = load_recipe(RECIPES / "cooldown-code.yaml")
    summary = {"phases": {"pretrain": {"heldout": {"text": 9.0}},
                          "cooldown": {"heldout": {"text": 4.0, "code": 3.0, "synthetic": 2.0, "commits": 5.0,
                                                   "notebooks": 7.0, "markup": 6.0}}}}
    row = study_row(recipe, summary)
    assert row["domains"] == {"code": 2.5, "code-adjacent": 6.0, "markup": 6.0, "text": 4.0}


def test_compare_is_relative_to_baseline() -> None:
    """Relative change = 100 * (loss - baseline) / baseline per domain; the baseline itself is 0."""
    rows = [{"recipe": "a", "domains": {"text": 4.0, "code": 5.0}, "categories": {"code": 0.1}},
            {"recipe": "b", "domains": {"text": 5.0, "code": 4.0}, "categories": {"code": 0.3}}]
    out = {r["recipe"]: r for r in compare(rows, "a")}
    assert out["a"]["relative"] == {"text": 0.0, "code": 0.0}
    assert out["b"]["relative"] == {"text": pytest.approx(25.0), "code": pytest.approx(-20.0)}
    assert out["b"]["relative_categories"] == {"code": pytest.approx(200.0)}
    with pytest.raises(ValueError, match="baseline"):
        compare(rows, "nope")


def test_fit_recovers_a_quadratic_and_recommendation_minimizes_objective() -> None:
    """Exact data from known curves gives back their coefficients; the recommendation is the objective's
    analytic minimum (text = 2 + s^2, code = 3 - s  ->  0.5*text + 0.5*code minimal at s = 1/2)."""
    shares = [0.0, 0.25, 0.5, 0.75, 1.0]
    rows = [{"code_share": s, "domains": {"text": 2 + s * s, "code": 3 - s}} for s in shares]
    fits = fit_code_share(rows)
    np.testing.assert_allclose(fits["text"], [1, 0, 2], atol=1e-9)
    np.testing.assert_allclose(fits["code"], [0, -1, 3], atol=1e-9)
    rec = recommend_share(fits, {"text": 0.5, "code": 0.5})
    assert rec["share"] == pytest.approx(0.5, abs=1e-3)
    assert recommend_share(fits, {"text": 1.0})["share"] == 0.0
    with pytest.raises(ValueError, match="without a fit"):
        recommend_share(fits, {"math": 1.0})


def test_initialization_preset_has_equal_token_budgets_and_quality_preset_the_paper_shares() -> None:
    """The initialization grid compares initializations at one total budget (whole batches, every phase), and the
    quality grid holds the paper's Fig. 5 variants: 20% markup, 15% code-adjacent, 10% synthetic in code-only."""
    from mixlab.study import PRESETS

    def batches(name: str) -> int:
        r = load_recipe(RECIPES / f"{name}.yaml")
        return sum(p.tokens // (r.seq_len * r.train.batch_size) for p in r.phases.values())

    assert len({batches(n) for n in PRESETS["initialization"]}) == 1
    assert PRESETS["quality"] == ["code-only", "code-markup", "code-adjacent", "code-synthetic"]
    adjacent = {"commits", "notebooks", "stackexchange", "issues"}
    shares = {}
    for name in PRESETS["quality"]:
        r = load_recipe(RECIPES / f"{name}.yaml")
        mix = r.phases["pretrain"].mixture
        shares[name] = (mix.get("markup", 0), sum(w for s, w in mix.items() if s in adjacent), mix.get("synthetic", 0))
    assert shares == {"code-only": (0, 0, 0), "code-markup": (0.2, 0, 0),
                      "code-adjacent": (0, pytest.approx(0.15), 0), "code-synthetic": (0, 0, 0.1)}  # fmt: skip
