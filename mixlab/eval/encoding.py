"""The one place where what eval and HF export receive as a tokenizer becomes an encoding.

Contract:
- ``resolve_encoding(tokenizer, checkpoint=None)`` returns a ``tiktoken.Encoding``. ``tokenizer`` is one of:
  None (use the :class:`~mixlab.tokenizer.TokenizerInfo` the checkpoint recorded: a named encoding is rebuilt, a
  trained BPE's rank file is found in the workspace above the checkpoint), a CLI string (``cl100k_base``,
  ``o200k_base`` or a ``.tiktoken`` rank file), a :class:`~mixlab.tokenizer.TokenizerInfo`, a legacy
  ``{"kind": "bpe"|"tiktoken", "path"|"name": ...}`` mapping, or an encoding (returned as is).
- With a ``checkpoint`` that records its tokenizer, an explicitly given one must have the same content hash:
  scoring or exporting a model with another tokenizer raises :class:`~mixlab.tokenizer.TokenizerMismatch`.
  A checkpoint that records none (another tool's, or a hand-made one) needs an explicit tokenizer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixlab.tokenizer import (
    NAMED_ENCODINGS,
    TokenizerInfo,
    TokenizerMismatch,
    encoding_hash,
    load_ranks,
    load_tokenizer,
    named_encoding,
)

TokenizerSpec = Mapping[str, str]
_ENCODING_ATTRS = ("encode_ordinary", "decode", "eot_token", "n_vocab")


def checkpoint_tokenizer(checkpoint: Path | str) -> TokenizerInfo | None:
    """The TokenizerInfo a mixlab checkpoint (file or phase folder) was trained with, or None if unrecorded."""
    from mixlab.train.checkpoint import load_checkpoint, resolve_checkpoint

    recorded = (load_checkpoint(resolve_checkpoint(checkpoint), mmap=True).get("extra") or {}).get("tokenizer")
    return TokenizerInfo.model_validate(recorded) if recorded else None


def _explicit(tokenizer: Any) -> Any:
    if all(hasattr(tokenizer, a) for a in _ENCODING_ATTRS):
        return tokenizer
    if isinstance(tokenizer, TokenizerInfo):
        return load_tokenizer(tokenizer)
    if isinstance(tokenizer, str | Path):
        if str(tokenizer) in NAMED_ENCODINGS:
            return named_encoding(str(tokenizer))
        if not Path(tokenizer).is_file():
            raise TokenizerMismatch(f"tokenizer {str(tokenizer)!r}: give {' or '.join(NAMED_ENCODINGS)} or a .tiktoken "
                                    f"rank file (a trained BPE is at <workdir>/tokenizer/<key>/tokenizer.tiktoken)")
        return load_ranks(Path(tokenizer), "mixlab-bpe")
    if isinstance(tokenizer, Mapping) and tokenizer.get("kind") == "tiktoken":
        return named_encoding(tokenizer["name"])
    if isinstance(tokenizer, Mapping) and tokenizer.get("kind") == "bpe":
        return load_ranks(Path(tokenizer["path"]), tokenizer.get("name", "mixlab-bpe"))
    raise ValueError(f"tokenizer {tokenizer!r}: expected a TokenizerInfo, an encoding name, a .tiktoken file, "
                     f"{{'kind': 'bpe', 'path': ...}} or {{'kind': 'tiktoken', 'name': ...}}")


def resolve_encoding(tokenizer: Any = None, checkpoint: Path | str | None = None) -> Any:
    """The encoding to score or export ``checkpoint`` with (module contract)."""
    info = checkpoint_tokenizer(checkpoint) if checkpoint is not None else None
    if tokenizer is None:
        if info is None:
            raise TokenizerMismatch(f"{checkpoint}: the checkpoint records no tokenizer; pass one explicitly "
                                    f"(--tokenizer cl100k_base | o200k_base | <rank file>)")
        return load_tokenizer(info, near=checkpoint)
    enc = _explicit(tokenizer)
    if info is not None and encoding_hash(enc) != info.hash:
        raise TokenizerMismatch(
            f"{checkpoint} was trained with tokenizer {info.name} ({info.hash[:12]}), but the one given is "
            f"{enc.name} ({encoding_hash(enc)[:12]}); leave --tokenizer out to use the checkpoint's own"
        )
    return enc
