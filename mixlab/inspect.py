"""``mixlab inspect``: what a packed phase holds, recounted from its files rather than read from its manifest.

Contract: ``audit_phase(dir)`` recomputes realized tokens per source and the worst prefix deviation from
``seq_source.npy`` and reports whether they equal the manifest's claims; ``inspect_phase`` formats that audit
with the composition table and decoded sample sequences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mixlab.pack.dataset import open_phase
from mixlab.pack.interleave import max_prefix_deviation


def audit_phase(phase_dir: Path) -> dict[str, Any]:
    phase = open_phase(phase_dir)
    m = phase.manifest
    names = phase.source_names
    counts = np.bincount(np.asarray(phase.seq_source), minlength=len(names))
    recount = {s: int(counts[i]) * m.seq_len for i, s in enumerate(names)}
    deviation = max_prefix_deviation(np.asarray(phase.seq_source), [int(c) for c in counts])
    ok = all(recount[s] == m.sources[s].planned_tokens for s in names) and deviation < 1.0
    return {"phase": m.phase, "recount": recount, "max_prefix_deviation": deviation, "ok": ok, "manifest": m}


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
        f"{m.num_sequences} sequences x {m.seq_len + 1} tokens ({m.token_dtype}), tokenizer {m.tokenizer_name} "
        f"{m.tokenizer_hash[:12]}",
        f"{'source':<14}{'weight':>8}{'planned':>12}{'on disk':>12}{'share':>8}{'epochs':>8}",
    ]
    for s, e in sorted(m.sources.items(), key=lambda kv: kv[1].source_id):
        lines.append(f"{s:<14}{e.weight:>8.3f}{e.planned_tokens:>12,}{a['recount'][s]:>12,}"
                     f"{a['recount'][s] / m.planned_tokens:>8.3f}{e.epochs_through:>8.2f}")
    lines.append(f"max prefix deviation recounted from disk: {a['max_prefix_deviation']:.4f} sequences "
                 f"(manifest {m.max_prefix_deviation:.4f})  audit: {'OK' if a['ok'] else 'FAILED'}")
    enc = encoding or _decoder(m, phase_dir)
    if samples and enc is not None:
        phase = open_phase(phase_dir, verify=False)
        for sid, s in enumerate(phase.source_names):
            for i in np.flatnonzero(np.asarray(phase.seq_source) == sid)[:samples]:
                text = enc.decode(phase.tokens[i].tolist())[:chars].replace("\n", "\\n")
                lines.append(f"[{s} #{i}] {text}")
    return "\n".join(lines)
