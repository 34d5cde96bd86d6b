"""The packed phase's manifest: the pydantic JSON that proves a phase's composition.

Contract: a phase folder is valid only when ``manifest.json`` exists (it is written last, atomically) and
every file it lists has the recorded size and xxh64 checksum. ``planned_tokens == realized_tokens`` for every
source, where realized tokens are recounted from the written source-id sidecar (``sequences * seq_len``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import xxhash
from pydantic import BaseModel, ConfigDict, Field

from mixlab.errors import CorruptOutputError
from mixlab.tokenizer import TokenizerInfo

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: one `tokenizer` (TokenizerInfo) replaces vocab_size / eos_id / tokenizer_name / _hash


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bytes: int = Field(description="File size in bytes.")
    xxh64: str = Field(description="xxh64 hex digest of the file's bytes.")


class SourceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_id: int = Field(description="Value of this source in seq_source.npy.")
    weight: float = Field(description="Recipe weight of the source in this phase.")
    planned_sequences: int = Field(description="Sequences apportioned by Hamilton's method.")
    planned_tokens: int = Field(description="planned_sequences * seq_len.")
    realized_tokens: int = Field(description="Recounted from seq_source.npy after writing.")
    ledger_start: int = Field(description="Source stream position before this phase (tokens).")
    ledger_end: int = Field(description="Source stream position after this phase (tokens).")
    source_tokens: int = Field(description="Training tokens available in the source (one epoch).")
    source_documents: int = Field(description="Training documents in the source.")
    epochs_touched: list[int] = Field(description="Epoch indices this phase read from.")
    epochs_through: float = Field(description="ledger_end / source_tokens: passes over the source so far.")
    input_digest: str = Field(description="Digest of the tokenized source shard this phase read.")
    curation: dict[str, Any] = Field(default_factory=dict, description="Curation statistics of the source.")


class PhaseManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int = FORMAT_VERSION
    recipe_name: str
    recipe_hash: str
    phase: str
    phase_index: int
    pack_key: str = Field(description="Hash of everything this phase's bytes depend on.")
    seq_len: int
    num_sequences: int
    requested_tokens: int = Field(description="The phase's token budget in the recipe.")
    planned_tokens: int = Field(description="num_sequences * seq_len (budget rounded down to whole batches).")
    token_dtype: str
    tokenizer: TokenizerInfo = Field(description="The tokenizer the tokens were made with (its one identity).")
    seed: int
    max_prefix_deviation: float = Field(description="Worst |count_k(prefix) - w_k i| over prefixes, in sequences.")
    sources: dict[str, SourceEntry]
    files: dict[str, FileEntry]
    digest: str = Field("", description="xxh64 of this manifest's canonical JSON without this field (seal()).")

    def content_digest(self) -> str:
        body = self.model_dump_json(exclude={"digest"})
        return xxhash.xxh64(body.encode()).hexdigest()

    def seal(self) -> PhaseManifest:
        """This manifest with its own digest filled in: an edited field no longer matches and is refused."""
        return self.model_copy(update={"digest": self.content_digest()})

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_id

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name

    @property
    def tokenizer_hash(self) -> str:
        return self.tokenizer.hash


def file_entry(path: Path, chunk: int = 1 << 24) -> FileEntry:
    h = xxhash.xxh64()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return FileEntry(bytes=path.stat().st_size, xxh64=h.hexdigest())


def write_json_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)


def read_manifest(phase_dir: Path) -> PhaseManifest:
    path = Path(phase_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(
            f"{phase_dir} has no {MANIFEST}: the phase was never packed or its packing was interrupted; "
            f"run `mixlab pack RECIPE` again"
        )
    try:
        manifest = PhaseManifest.model_validate_json(path.read_text())
    except ValueError as e:
        raise CorruptOutputError(f"{path}: not a valid manifest ({str(e).splitlines()[0]}); re-run "
                                 f"`mixlab pack RECIPE`, which rebuilds the phase") from None
    if manifest.digest != manifest.content_digest():
        raise CorruptOutputError(f"{path}: its content differs from its recorded digest (edited or damaged); "
                                 f"re-run `mixlab pack RECIPE`, which rebuilds the phase")
    return manifest
