"""Manifests that prove their own content: a file entry model and a base class sealed by its own digest.

Contract: ``FileEntry`` is a file's size and xxh64. A :class:`Sealed` model carries ``digest`` = xxh64 of its
canonical JSON without that field; ``seal()`` fills it in and :func:`read_sealed` refuses a file that is missing,
not valid for the model, or whose content no longer matches its digest (edited or damaged), with a
:class:`~mixlab.errors.CorruptOutputError` that ends with the caller's fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import xxhash
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from mixlab.errors import CorruptOutputError

S = TypeVar("S", bound="Sealed")


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class FileEntry:
    """A file's size and xxh64: a slotted (pydantic) dataclass, not a model, as manifests hold one per file (x1000's
    two token sets: 9,048; ~160 bytes each against ~500 as a ``BaseModel``); the same JSON object either way."""

    bytes: int = Field(description="File size in bytes.")
    xxh64: str = Field(description="xxh64 hex digest of the file's bytes.")

    def __getitem__(self, key: str) -> int | str:
        """``entry["bytes"]``, ``entry["xxh64"]``: reads as the mapping :func:`mixlab.workspace.verify` takes,
        without a dict per file."""
        if key not in ("bytes", "xxh64"):
            raise KeyError(key)
        return getattr(self, key)

    def model_dump(self) -> dict[str, int | str]:
        """``{"bytes", "xxh64"}``, as a model's dump gives."""
        return {"bytes": self.bytes, "xxh64": self.xxh64}


class Sealed(BaseModel):
    """A model sealed by the digest of its own canonical JSON (see the module contract)."""

    model_config = ConfigDict(extra="forbid")
    digest: str = Field("", description="xxh64 of this manifest's canonical JSON without this field (seal()).")

    def content_digest(self) -> str:
        # the serializer's bytes (model_dump_json's, undecoded): no str and no second copy of a manifest's JSON
        return xxhash.xxh64(self.__pydantic_serializer__.to_json(self, exclude={"digest"})).hexdigest()

    def seal(self: S) -> S:
        """This manifest with its digest filled in: an edited field no longer matches and is refused."""
        return self.model_copy(update={"digest": self.content_digest()})


def read_sealed(model: type[Sealed], path: Path, fix: str) -> Sealed:
    """``path`` parsed as ``model`` and checked against its seal; ``fix`` says how to rebuild it."""
    try:
        manifest = model.model_validate_json(Path(path).read_bytes())
    except ValidationError as e:
        raise CorruptOutputError(f"{path}: not a valid {model.__name__} ({str(e).splitlines()[0]}; an older "
                                 f"mixlab or damage); {fix}") from None
    if manifest.digest != manifest.content_digest():
        raise CorruptOutputError(f"{path}: its content differs from its recorded digest (edited or damaged); {fix}")
    return manifest
