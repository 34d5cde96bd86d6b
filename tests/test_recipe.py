"""Recipe loading, inheritance, overrides, validation messages and hashing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mixlab.recipe import Recipe, RecipeError, deep_merge, load_recipe, recipe_hash
from mixlab.recipe.sources import SlimPajamaOptions, StackOptions, SyntheticOptions

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
MINIMAL = """
sources:
  text: {kind: slimpajama, path: a/*.jsonl.zst}
  code: {kind: stack, path: stack/data}
phases:
  pretrain: {tokens: 4096, mixture: {text: 0.5, code: 0.5}}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path: Path) -> None:
    """Every file in recipes/ is a valid recipe (the CI gate for recipe review)."""
    recipe = load_recipe(path)
    assert recipe.phases and all(abs(sum(p.mixture.values()) - 1) < 1e-9 for p in recipe.phases.values())


def test_variants_only_change_what_they_test() -> None:
    """Variants inherit everything else from base.yaml (no copy-paste drift): same sources, model, tokenizer."""
    base = load_recipe(RECIPES / "base.yaml")
    for path in RECIPES.glob("*.yaml"):
        r = load_recipe(path)
        assert r.sources == base.sources and r.tokenizer == base.tokenizer and r.seq_len == base.seq_len, path


def test_code_share_sweep_weights() -> None:
    """code-share-P.yaml pre-trains on exactly P% code and (100-P)% text."""
    for p in (0, 25, 50, 75, 100):
        mix = load_recipe(RECIPES / f"code-share-{p}.yaml").phases["pretrain"].mixture
        assert mix.get("code", 0) == pytest.approx(p / 100) and mix.get("text", 0) == pytest.approx(1 - p / 100)


def test_equivalent_recipes_hash_equal_and_names_do_not_matter() -> None:
    """A zero weight equals an absent source and renaming does not change the hash (caches are shared)."""
    assert recipe_hash(load_recipe(RECIPES / "code-share-0.yaml")) == recipe_hash(load_recipe(RECIPES / "text-only.yaml"))
    assert recipe_hash(load_recipe(RECIPES / "code-share-50.yaml")) == recipe_hash(load_recipe(RECIPES / "balanced.yaml"))
    assert recipe_hash(load_recipe(RECIPES / "balanced.yaml")) != recipe_hash(load_recipe(RECIPES / "text-only.yaml"))


def test_extends_merges_deeply_and_replaces_mixtures(tmp_path: Path) -> None:
    """Child mappings merge into the parent's, a mixture is replaced whole, and null deletes a key."""
    write(tmp_path, "parent.yaml", MINIMAL)
    child = write(tmp_path, "child.yaml", """
extends: parent.yaml
seq_len: 64
phases:
  pretrain: {mixture: {code: 1.0}}
  cooldown: {tokens: 1024, mixture: {text: 1.0}, lr: {kind: linear, min_lr: 0}}
""")
    r = load_recipe(child)
    assert r.seq_len == 64 and r.phases["pretrain"].tokens == 4096
    assert r.phases["pretrain"].mixture == {"code": 1.0}
    assert list(r.phases) == ["pretrain", "cooldown"]
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": None}}) == {"a": {"c": 2}}


def test_set_override_edits_one_value(tmp_path: Path) -> None:
    """--set a.b=v changes exactly that value (parsed as YAML; 2e6 is an integer budget)."""
    path = write(tmp_path, "r.yaml", MINIMAL)
    r = load_recipe(path, ["phases.pretrain.tokens=2e6", "phases.pretrain.mixture.text=0.25",
                           "phases.pretrain.mixture.code=0.75"])
    assert r.phases["pretrain"].tokens == 2_000_000 and isinstance(r.phases["pretrain"].tokens, int)
    assert r.phases["pretrain"].mixture == {"text": 0.25, "code": 0.75}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("phases.pretrain.mixture.text=0.7", "phases.pretrain.mixture: weights sum to 1.2"),
        ("phases.pretrain.mixture={text: 0.5, cod: 0.5}", "unknown source(s) ['cod']"),
        ("phases.pretrain.tokens=-5", "phases.pretrain.tokens: Input should be greater than 0"),
        ("seq_len=0", "seq_len"),
        ("phases.pretrain.colour=red", "phases.pretrain.colour: unknown field"),
        ("phases.pretrain.lr.min_lr=1.0", "min_lr (1.0) exceeds peak_lr"),
        ("sources.text.kind=webtext", "sources.text.kind: unknown source kind 'webtext'; use one of: slimpajama"),
        ("sources.text.kind=null", "sources.text.kind: required field is missing"),
        ("sources.code.path=null", "sources.code.path: required field is missing"),
        ("sources.code.filters.max_line_lenght=5", "sources.code.filters.max_line_lenght: unknown field"),
        ("sources.text.filters.code_threshold=2", "sources.text.filters.code_threshold: Input should be less than"),
        ("sources.text.filters.drop_sets=[RedPajamaGitHub]", "sources.text.filters.drop_sets: unknown redpajama_set_name"),
        ("phases.pretrain.init_from=cooldown", "not an earlier phase"),
    ],
)
def test_invalid_recipes_name_the_field_and_the_fix(tmp_path: Path, override: str, expected: str) -> None:
    """Each broken recipe fails with a message naming the offending field."""
    path = write(tmp_path, "r.yaml", MINIMAL + "\n  cooldown: {tokens: 4096, mixture: {text: 1.0}}\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path, [override])
    assert expected in str(err.value)


def test_extends_cycle_and_missing_file_are_clear(tmp_path: Path) -> None:
    """A cycle in extends or a missing parent is reported, not a recursion error or a traceback."""
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(RecipeError, match="extends cycle"):
        load_recipe(tmp_path / "a.yaml")
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(write(tmp_path, "c.yaml", "extends: nope.yaml\n"))


def test_validate_cli_is_light_and_fails_clearly(tmp_path: Path) -> None:
    """`mixlab validate` passes shipped recipes, fails a broken one with exit 1, and imports neither torch nor datatrove."""
    import subprocess

    code = (
        "import sys; from mixlab.cli import main; rc = main(['validate', *sys.argv[1:]]);"
        "assert 'torch' not in sys.modules and 'datatrove' not in sys.modules, 'heavy import'; sys.exit(rc)"
    )
    ok = subprocess.run([sys.executable, "-c", code, str(RECIPES / "demo.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = write(tmp_path, "bad.yaml", MINIMAL.replace("code: 0.5}", "code: 0.6}"))
    out = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True)
    assert out.returncode == 1 and "weights sum to 1.1, they must sum to 1" in out.stderr


def test_filters_are_the_kinds_typed_options(tmp_path: Path) -> None:
    """A source's filters load once into its kind's options model (defaults filled in), the kind selects the model,
    and a synthetic source without an input is refused at load, naming the field."""
    r = load_recipe(RECIPES / "base.yaml")
    text, code, synthetic = r.sources["text"].filters, r.sources["code"].filters, r.sources["synthetic"].filters
    assert isinstance(text, SlimPajamaOptions) and text.code_mode == "strip" and text.code_threshold == 0.5
    assert isinstance(code, StackOptions) and len(code.languages) == 25
    assert isinstance(synthetic, SyntheticOptions) and synthetic.generate == 400
    with pytest.raises(RecipeError, match="sources.synthetic.filters: synthetic source needs an input"):
        load_recipe(RECIPES / "base.yaml", ["sources.synthetic.filters={seed: 1}"])


def test_filters_hash_without_defaults_and_round_trip() -> None:
    """Restating a filter default leaves the recipe hash unchanged, a real change changes it, and a recipe's dump
    (filters without defaults) validates back to an equal recipe."""
    base = load_recipe(RECIPES / "base.yaml")
    same = load_recipe(RECIPES / "base.yaml", ["sources.code.filters.max_line_length=1000",
                                               "sources.text.filters.code_threshold=0.5"])
    other = load_recipe(RECIPES / "base.yaml", ["sources.code.filters.max_line_length=999"])
    assert recipe_hash(same) == recipe_hash(base) != recipe_hash(other)
    assert base.model_dump()["sources"]["text"]["filters"] == {"code_mode": "strip"}
    assert Recipe.model_validate(base.model_dump()) == base


def test_recipe_imports_no_stage_package() -> None:
    """Importing mixlab.recipe loads no curation, source-reader, training, torch or datatrove module (recipes are
    data; filter validation needs no lazy import that could silently fail)."""
    import subprocess

    code = (
        "import sys, mixlab.recipe; heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'datatrove')"
        " or m.startswith(('mixlab.curate', 'mixlab.sources', 'mixlab.train'))); assert not heavy, heavy"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
