"""Recipes as data: pydantic models, YAML loading with ``extends:`` and ``--set`` overrides, stable hashes.

Contract:
- ``load_recipe(path, overrides)`` reads, merges, overrides and validates a recipe (:mod:`.load`); every model
  forbids unknown fields and validation errors name the field path and the fix.
- Sources are a union discriminated on ``kind`` whose ``filters`` is the kind's typed options model
  (:mod:`.sources`), validated once at load and passed as is to curation.
- ``recipe_hash(recipe)`` is the sha256 of the canonical JSON of everything that changes outputs.
- This package imports pydantic and yaml only: never torch, datatrove, ``mixlab.curate`` or ``mixlab.train``
  (``mixlab validate`` must stay light).

Modules: ``base`` (Strict, RecipeError, sample root), ``languages`` (language lists), ``sources`` (options per
source kind, SourceSpec), ``spec`` (phases, model, tokenizer, training, Recipe), ``load`` (loading, hashes).
"""

from mixlab.recipe.base import SAMPLE_ROOT, RecipeError, Strict, sample_root
from mixlab.recipe.load import (
    REPLACED_WHOLE,
    apply_override,
    canonical_json,
    deep_merge,
    format_errors,
    load_recipe,
    recipe_hash,
    section_hash,
    validate_recipe,
)
from mixlab.recipe.sources import (
    OPTIONS_BY_KIND,
    SOURCE_KINDS,
    CommitOptions,
    CommonOptions,
    MarkupOptions,
    NotebookOptions,
    Options,
    SlimPajamaOptions,
    SourceBase,
    SourceOptions,
    SourceSpec,
    StackExchangeOptions,
    StackOptions,
    SyntheticOptions,
)
from mixlab.recipe.spec import LRSchedule, ModelSpec, PhaseSpec, Recipe, TokenizerSpec, TrainSpec

__all__ = [
    "OPTIONS_BY_KIND",
    "REPLACED_WHOLE",
    "SAMPLE_ROOT",
    "SOURCE_KINDS",
    "CommitOptions",
    "CommonOptions",
    "LRSchedule",
    "MarkupOptions",
    "ModelSpec",
    "NotebookOptions",
    "Options",
    "PhaseSpec",
    "Recipe",
    "RecipeError",
    "SlimPajamaOptions",
    "SourceBase",
    "SourceOptions",
    "SourceSpec",
    "StackExchangeOptions",
    "StackOptions",
    "Strict",
    "SyntheticOptions",
    "TokenizerSpec",
    "TrainSpec",
    "apply_override",
    "canonical_json",
    "deep_merge",
    "format_errors",
    "load_recipe",
    "recipe_hash",
    "sample_root",
    "section_hash",
    "validate_recipe",
]
