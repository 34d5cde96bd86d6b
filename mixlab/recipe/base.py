"""Shared pieces of the recipe models: the strict base model, the error type and the embedded-sample root.

Contract: imports pydantic only; nothing here reads files.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

SAMPLE_ROOT = "@sample"  # data_root value that means "the sample corpus shipped inside the mixlab package"


class RecipeError(ValueError):
    """A recipe that cannot be loaded or is invalid; the message names the field and the fix."""


class Strict(BaseModel):
    """Base of every recipe model: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def sample_root() -> Path:
    """Folder of the sample corpus shipped inside the package."""
    return Path(__file__).resolve().parents[1] / "sample" / "data"
