"""``mixlab inspect``: what a packed phase holds, recounted from its files rather than read from its manifest.

Contract: ``audit_phase(dir)`` recomputes, from every shard's source-id file, the sequences per source in each
shard, the realized tokens per source in total and the worst prefix deviation of the concatenated stream
(streamed shard by shard), and reports whether they equal the manifest's claims (``ok``; ``bad_shards`` lists
the shards whose recount differs); ``inspect_phase`` formats that audit with the composition table and decoded
sample sequences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mixlab.pack.dataset import open_phase
from mixlab.pack.manifest import recount_shards


def audit_phase(phase_dir: Path) -> dict[str, Any]:
    phase = open_phase(phase_dir)
    m = phase.manifest
    names = phase.source_names
    per_shard, deviation = recount_shards(Path(phase_dir), len(m.shards), len(names))
    bad_shards = [j for j, shard in enumerate(m.shards)
                  if [shard.sequences.get(s, 0) for s in names] != per_shard[j].tolist()]
    counts = per_shard.sum(axis=0)
    recount = {s: int(counts[i]) * m.seq_len for i, s in enumerate(names)}
    ok = (all(recount[s] == m.sources[s].planned_tokens == m.sources[s].realized_tokens for s in names)
          and not bad_shards and deviation < 1.0)
    return {"phase": m.phase, "recount": recount, "shards": len(m.shards), "bad_shards": bad_shards,
            "max_prefix_deviation": deviation, "ok": ok, "manifest": m}


def _decoder(manifest, phase_dir: Path):
    """The tokenizer the phase was packed with (its TokenizerInfo; a trained BPE is found in the workspace above
    ``phase_dir`` and checked by content hash); None when it cannot be found or differs."""
    from mixlab.tokenizer import TokenizerMismatch, load_tokenizer

    try:
        return load_tokenizer(manifest.tokenizer, near=phase_dir)
    except (TokenizerMismatch, OSError):
        return None


def inspect_phase(phase_dir: Path, samples: int = 2, chars: int = 200, encoding=None) -> str:
    a = audit_phase(phase_dir)
    m = a["manifest"]
    lines = [
        f"phase {m.phase} of recipe {m.recipe_name} (hash {m.recipe_hash[:12]}, pack key {m.pack_key})",
        f"{m.num_sequences} sequences x {m.seq_len + 1} tokens ({m.token_dtype}) in {len(m.shards)} shard(s), tokenizer {m.tokenizer_name} "
        f"{m.tokenizer_hash[:12]}",
    ]
    from mixlab.tables import composition_frame, render_table  # the composition table, by source id (polars)

    lines.append(render_table(composition_frame(m.sources, a["recount"], m.planned_tokens), decimals={"epochs": 2}))
    lines.append(f"max prefix deviation recounted from disk: {a['max_prefix_deviation']:.4f} sequences "
                 f"(manifest {m.max_prefix_deviation:.4f}); shards recounted: {a['shards']}, differing: "
                 f"{a['bad_shards'] or 'none'}  audit: {'OK' if a['ok'] else 'FAILED'}")
    enc = encoding or _decoder(m, phase_dir)
    if samples and enc is not None:
        phase = open_phase(phase_dir, verify=False)
        for sid, s in enumerate(phase.source_names):
            for i in _first_of(phase.seq_source, sid, samples):
                text = enc.decode(phase.tokens[i].tolist())[:chars].replace("\n", "\\n")
                lines.append(f"[{s} #{i}] {text}")
    return "\n".join(lines)


def _first_of(seq_source, sid: int, k: int) -> list[int]:
    """The first ``k`` sequence indices of source ``sid``, scanning shard by shard."""
    found: list[int] = []
    for first, part in zip(seq_source.bounds[:-1], seq_source.parts, strict=True):
        found += (int(first) + np.flatnonzero(np.asarray(part) == sid)[: k - len(found)]).tolist()
        if len(found) >= k:
            break
    return found
