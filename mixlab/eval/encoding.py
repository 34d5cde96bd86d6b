"""The one place where what eval receives as a tokenizer becomes an encoding.

Contract:
- :data:`TokenizerSpec` is what eval's entry points receive today: ``RunState.encoding_spec``, a dict
  ``{"kind": "bpe", "path": <.tiktoken ranks file>}`` or ``{"kind": "tiktoken", "name": "cl100k_base" | ...}``.
- ``resolve_encoding(tokenizer)`` returns the ``tiktoken.Encoding`` of a :data:`TokenizerSpec`, or ``tokenizer``
  itself when it already is an encoding (anything with ``encode_ordinary``, ``decode``, ``eot_token`` and
  ``n_vocab``).
- :meth:`mixlab.eval.lm.MixlabLM.from_checkpoint` (so :func:`mixlab.eval.run.evaluate_checkpoint`) and
  :func:`mixlab.hf_export.export_hf` go through it and nowhere else, so replacing the untyped dict by a typed
  tokenizer description read from checkpoints changes this module (and the alias) only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TokenizerSpec = Mapping[str, str]

_ENCODING_ATTRS = ("encode_ordinary", "decode", "eot_token", "n_vocab")


def resolve_encoding(tokenizer: TokenizerSpec | Any) -> Any:
    """The encoding of ``tokenizer`` (a :data:`TokenizerSpec` or an encoding, returned as is)."""
    if all(hasattr(tokenizer, a) for a in _ENCODING_ATTRS):
        return tokenizer
    if not isinstance(tokenizer, Mapping) or tokenizer.get("kind") not in ("bpe", "tiktoken"):
        raise ValueError(
            f"tokenizer {tokenizer!r}: expected {{'kind': 'bpe', 'path': <ranks file>}}, "
            "{'kind': 'tiktoken', 'name': 'cl100k_base' | 'o200k_base'} or a tiktoken.Encoding"
        )
    from mixlab.shards import load_encoding

    return load_encoding(dict(tokenizer))
