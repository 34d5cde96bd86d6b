"""Loading recipes (YAML, ``extends:``, ``--set``), validation messages and the hashes of recipes and stages.

Contract:
- ``load_recipe(path, overrides)`` reads a YAML file, resolves ``extends:`` (a path relative to the file, or a
  list of them, merged left to right; mappings merge deeply except ``mixture`` which is replaced whole, a ``null``
  value deletes the key, lists and scalars replace), applies ``--set a.b=value`` overrides (values parsed as YAML)
  and validates the result once, source filters included.
- Validation errors name the field path and say how to fix it (:func:`format_errors`).
- ``recipe_hash(recipe)`` is the sha256 of the canonical JSON of everything that changes outputs (``name`` and
  ``description`` excluded, source filters without their defaults), so renaming a recipe does not invalidate its
  caches.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mixlab.recipe.base import RecipeError
from mixlab.recipe.sources import SOURCE_KINDS
from mixlab.recipe.spec import Recipe

REPLACED_WHOLE = frozenset({"mixture"})  # a mixture is one distribution: an override restates it, never merges


def deep_merge(
    base: dict[str, Any], over: dict[str, Any], replaced_whole: frozenset[str] = REPLACED_WHOLE
) -> dict[str, Any]:
    """Merge ``over`` into ``base``: mappings recurse (except ``mixture``, replaced whole), ``None`` deletes,
    anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict) and key not in replaced_whole:
            out[key] = deep_merge(out[key], value, replaced_whole)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in chain:
        raise RecipeError(f"extends cycle: {' -> '.join(str(p) for p in (*chain, path))}")
    if not path.exists():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a YAML mapping, got {type(data).__name__}")
    parents = data.pop("extends", None) or []
    merged: dict[str, Any] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = deep_merge(merged, _read_yaml(path.parent / parent, (*chain, path)))
    return deep_merge(merged, data)


def apply_override(data: dict[str, Any], assignment: str) -> dict[str, Any]:
    """Apply one ``a.b.c=value`` override to a raw recipe mapping; the value is parsed as YAML (``2e6`` is the
    integer 2000000) and replaces what was at that key, a mapping included (``--set phases.x.mixture={a: 1}``)."""
    if "=" not in assignment:
        raise RecipeError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set phases.pretrain.tokens=2e6")
    key, raw = assignment.split("=", 1)
    if not key.strip() or any(not part for part in key.strip().split(".")):
        raise RecipeError(f"--set {assignment!r}: the key must be a dotted field path, e.g. phases.pretrain.tokens")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise RecipeError(f"--set {assignment!r}: the value is not valid YAML ({str(e).splitlines()[0]}); quote "
                          f"strings and write mappings as {{a: 1}}") from None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # YAML 1.1 reads 2e6 as a string; budgets are written that way
            value = float(value)
    if isinstance(value, float) and value.is_integer() and "e" in raw.lower():
        value = int(value)
    out = copy.deepcopy(data)
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return out


def format_errors(err: ValidationError, origin: str, what: str = "recipe") -> str:
    """One line per error: the field path (``sources.<name>.filters.<field>``, the ``kind`` tag pydantic adds
    for the source union left out) and what to do about it; ``what`` names the invalid thing in the header."""
    lines = [f"{origin}: invalid {what} ({err.error_count()} error(s))"]
    for e in err.errors():
        loc = list(e["loc"])
        if len(loc) >= 3 and loc[0] == "sources" and loc[2] in SOURCE_KINDS:
            del loc[2]  # sources.<name>.<kind>.filters.x -> sources.<name>.filters.x
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling (see `mixlab validate --schema`)"
        elif e["type"] == "missing":
            msg = "required field is missing; add it"
        elif e["type"] == "union_tag_invalid":
            loc.append("kind")
            msg = f"unknown source kind {e.get('ctx', {}).get('tag')!r}; use one of: {', '.join(SOURCE_KINDS)}"
        elif e["type"] == "union_tag_not_found":
            loc.append("kind")
            msg = f"required field is missing; add it (one of: {', '.join(SOURCE_KINDS)})"
        lines.append(f"  - {'.'.join(str(p) for p in loc) or '(top level)'}: {msg}")
    return "\n".join(lines)


def validate_recipe(data: dict[str, Any], origin: str = "recipe") -> Recipe:
    """Validate a raw mapping (sources' filters included, into their typed options); raise :class:`RecipeError`
    whose message lists each field and its fix."""
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise RecipeError(format_errors(e, origin)) from None


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load, merge (``extends:``), override (``--set``) and validate a recipe file."""
    data = _read_yaml(Path(path))
    for assignment in overrides:
        data = apply_override(data, assignment)
    data.setdefault("name", Path(path).stem)
    return validate_recipe(data, origin=str(path))


def canonical_json(obj: Any) -> str:
    """Sorted-key compact JSON: the byte form every hash in mixlab is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def recipe_hash(recipe: Recipe) -> str:
    """sha256 over everything that changes outputs (name and description excluded)."""
    payload = recipe.model_dump(mode="json", exclude={"name", "description"})
    for phase in payload["phases"].values():  # a zero weight is the same recipe as an absent source
        phase["mixture"] = {k: w for k, w in phase["mixture"].items() if w > 0}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def section_hash(*parts: Any) -> str:
    """Short stable hash of arbitrary JSON-able parts; used to key stage outputs."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:16]
