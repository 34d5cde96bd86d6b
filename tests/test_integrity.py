"""Inputs verified at every use: a damaged or edited stage output is refused, and rebuilt by re-running.

One small workspace (two sample sources, a trained BPE, one packed phase) is built once for the module; each test
damages one thing in a copy of it and checks that the damage is detected (never read as valid) and repaired by a
re-run of the stage, with the repaired bytes equal to the original ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mixlab.errors import CorruptOutputError
from mixlab.pack.dataset import open_phase
from mixlab.recipe import load_recipe
from mixlab.shards import TokenShardSet
from mixlab.stages import run
from mixlab.tokenizer import TokenizerMismatch, load_tokenizer

RECIPE = """
seed: 3
seq_len: 32
sources:
  text:
    kind: slimpajama
    path: slimpajama/train/chunk*/*.jsonl.zst
    filters: {limit: 60}
    heldout_docs: 2
  code:
    kind: stack
    path: stack/data
    filters: {languages: [Python]}
    heldout_docs: 2
tokenizer: {kind: bpe, vocab_size: 300, train_bytes: 60000}
model: {preset: custom, n_layers: 1, d_model: 16, n_heads: 2, n_kv_heads: 1, ffn_hidden: 32}
train: {batch_size: 2}
phases:
  pretrain:
    tokens: 2048
    mixture: {text: 0.5, code: 0.5}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("integrity")
    (root / "r.yaml").write_text(RECIPE)
    run(load_recipe(root / "r.yaml"), root / "work", until="pack", progress=False)
    return root / "r.yaml", root / "work"


@pytest.fixture
def work(built: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    recipe, work = built
    shutil.copytree(work, tmp_path / "work")
    return recipe, tmp_path / "work"


def _repack(recipe: Path, work: Path):
    return run(load_recipe(recipe), work, until="pack", progress=False)


def _flip(path: Path, offsets: tuple[int, ...] = (200, 201)) -> None:
    data = bytearray(path.read_bytes())
    for i in offsets:
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_a_token_shard_are_refused_then_rebuilt(work: tuple[Path, Path]) -> None:
    """Two flipped bytes in a token shard: reading it through ``verified()`` raises, and a re-run rebuilds the
    shard (same bytes as before the damage) before packing reads it."""
    recipe, root = work
    shard = TokenShardSet(next((root / "tokens").glob("text-*")))
    block = shard.path / f"{shard.blocks('train')[0].name}.train.tokens.npy"
    original = block.read_bytes()
    _flip(block)
    with pytest.raises(CorruptOutputError, match=block.name):
        shard.verified()
    _repack(recipe, root)
    assert shard.problems() == []
    assert block.read_bytes() == original


def test_an_edited_manifest_is_refused_then_repacked(work: tuple[Path, Path]) -> None:
    """Editing the recipe hash inside a manifest is detected (its self-digest no longer matches): loading the
    phase raises, and re-running pack rebuilds the identical manifest."""
    recipe, root = work
    phase_dir = next((root / "packed").glob("pretrain-*"))
    original = (phase_dir / "manifest.json").read_text()
    edited = json.loads(original)
    edited["recipe_hash"] = "0" * 64
    (phase_dir / "manifest.json").write_text(json.dumps(edited, indent=2))
    with pytest.raises(CorruptOutputError, match="differs from its recorded digest"):
        open_phase(phase_dir)
    state = _repack(recipe, root)
    assert (state.packed["pretrain"] / "manifest.json").read_text() == original


def test_a_damaged_packed_file_is_refused_then_repacked(work: tuple[Path, Path]) -> None:
    """A flipped byte in a packed phase's token file fails its checksum; the re-run re-packs identical bytes."""
    recipe, root = work
    phase_dir = next((root / "packed").glob("pretrain-*"))
    original = (phase_dir / "00000.tokens.npy").read_bytes()
    _flip(phase_dir / "00000.tokens.npy", (300,))
    with pytest.raises(Exception, match="checksum"):
        open_phase(phase_dir)
    _repack(recipe, root)
    assert (phase_dir / "00000.tokens.npy").read_bytes() == original
    assert open_phase(phase_dir).manifest.num_sequences > 0


def test_a_swapped_tokenizer_file_is_refused_and_retrained(work: tuple[Path, Path]) -> None:
    """A rank file whose content changed (two ranks swapped) is refused by content hash wherever it is loaded;
    the tokenize stage retrains it, giving back the same tokenizer, so the data downstream stays valid."""
    recipe, root = work
    ranks = next((root / "tokenizer").glob("*/tokenizer.tiktoken"))
    original = ranks.read_text()
    lines = original.splitlines()
    a, b = lines[280].split(), lines[281].split()
    lines[280], lines[281] = f"{a[0]} {b[1]}", f"{b[0]} {a[1]}"
    ranks.write_text("\n".join(lines) + "\n")
    info = TokenShardSet(next((root / "tokens").glob("code-*"))).tokenizer
    with pytest.raises(TokenizerMismatch, match="content hash"):
        load_tokenizer(info, near=root / "tokens")
    _repack(recipe, root)
    assert ranks.read_text() == original
    assert load_tokenizer(info, near=root / "tokens").n_vocab == info.vocab_size


def test_temporary_folders_of_killed_runs_are_removed(work: tuple[Path, Path]) -> None:
    """A killed tokenize/pack leaves ``.<output>.tmp-<pid>`` siblings; the next run removes them."""
    recipe, root = work
    shard_dir = next((root / "tokens").glob("text-*"))
    phase_dir = next((root / "packed").glob("pretrain-*"))
    leftovers = [shard_dir.with_name(f".{shard_dir.name}.tmp-99999"), phase_dir.with_name(f".{phase_dir.name}.tmp-4")]
    for d in leftovers:
        d.mkdir()
        (d / "tokens.npy").write_bytes(np.zeros(10, dtype=np.uint8).tobytes())
    _repack(recipe, root)
    assert not any(d.exists() for d in leftovers)


def test_identical_inputs_give_identical_json_in_any_workdir(built: tuple[Path, Path], tmp_path: Path) -> None:
    """Manifests, token-shard metadata and curation statistics record paths relative to the workspace: the same
    recipe in another workdir gives byte-identical JSON."""
    recipe, first = built
    second = tmp_path / "elsewhere" / "work"
    _repack(recipe, second)
    names = sorted(str(p.relative_to(first)) for p in first.rglob("*.json") if "logs" not in p.parts
                   and ".locks" not in p.parts)
    assert names and any(n.startswith("packed/") for n in names)
    for name in names:
        a, b = (first / name).read_text(), (second / name).read_text()
        assert a == b, name
        assert str(first) not in a

