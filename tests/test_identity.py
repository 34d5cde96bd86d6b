"""One tokenizer identity and one train key, end to end.

A tiktoken recipe's token shards, packed manifest, export sidecar and checkpoint all carry the same TokenizerInfo
with the EOS id the data really uses (cl100k_base: 100257, not vocab - 1); `mixlab eval` / `export-hf` find the
tokenizer from the checkpoint and refuse a different one; a trained BPE is found in the workspace by content; and
a result-neutral setting (parallelism) reuses a trained phase.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mixlab.cli import main
from mixlab.pack.dataset import open_phase
from mixlab.pack.export import export_phase
from mixlab.recipe import load_recipe
from mixlab.shards import TokenShardSet
from mixlab.stages import run
from mixlab.train.checkpoint import load_checkpoint
from tests.test_integrity import RECIPE

TIKTOKEN = RECIPE.replace("tokenizer: {kind: bpe, vocab_size: 300, train_bytes: 60000}",
                          "tokenizer: {kind: tiktoken, name: cl100k_base}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("identity")
    out = {}
    for name, text in (("tiktoken", TIKTOKEN), ("bpe", RECIPE)):
        (root / f"{name}.yaml").write_text(text)
        state = run(load_recipe(root / f"{name}.yaml"), root / name, until="train", progress=False)
        out[name] = state.trained["pretrain"]
        out[f"{name}-packed"] = state.packed["pretrain"]
        out[f"{name}-recipe"] = root / f"{name}.yaml"
    return out


def test_cl100k_eos_is_the_id_the_data_uses_everywhere(trained: dict[str, Path], tmp_path: Path) -> None:
    """Token sets, manifest, export sidecar and checkpoint record cl100k_base with EOS 100257 (its <|endoftext|>),
    and every tokenized document ends with that id."""
    phase = open_phase(trained["tiktoken-packed"])
    info = phase.manifest.tokenizer
    assert (info.name, info.eos_id, info.vocab_size) == ("cl100k_base", 100257, 100277)
    shards = sorted((trained["tiktoken-packed"].parents[1] / "tokens").iterdir())
    for shard in map(TokenShardSet, shards):
        assert shard.tokenizer == info
        tokens, lengths = shard.train_block(0)
        assert (np.asarray(tokens)[np.cumsum(lengths) - 1] == 100257).all()  # every document ends with it
    assert not (np.asarray(phase.tokens) == 100276).any()  # vocab - 1 (<|endofprompt|>) never appears
    export_phase(trained["tiktoken-packed"], tmp_path / "x", "megatron")
    sidecar = json.loads((tmp_path / "x.megatron.export.json").read_text())
    assert sidecar["tokenizer"] == info.model_dump(mode="json")
    ckpt = load_checkpoint(trained["tiktoken"] / "final.pt", mmap=True)
    assert ckpt["extra"]["tokenizer"] == info.model_dump(mode="json")
    assert ckpt["extra"]["pack_key"] == phase.manifest.pack_key


@pytest.mark.parametrize("kind", ["tiktoken", "bpe"])
def test_eval_and_export_find_the_tokenizer_and_refuse_another(
    trained: dict[str, Path], kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --tokenizer, eval and export-hf use the checkpoint's own (a trained BPE is found in the workspace
    above the checkpoint by its recorded path and checked by content); a different tokenizer is refused."""
    ckpt = str(trained[kind])
    assert main(["eval", ckpt, "--suite", "smoke", "--limit", "1"]) == 0
    assert main(["export-hf", ckpt, str(tmp_path / "hf")]) == 0
    exported = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert exported["eos_token_id"] == load_checkpoint(trained[kind] / "final.pt", mmap=True)["extra"]["tokenizer"]["eos_id"]
    assert (tmp_path / "hf" / "tokenizer.json").exists()
    capsys.readouterr()
    assert main(["eval", ckpt, "--tokenizer", "o200k_base", "--suite", "smoke", "--limit", "1"]) == 2
    assert "was trained with tokenizer" in capsys.readouterr().err
    assert main(["export-hf", ckpt, str(tmp_path / "hf2"), "--tokenizer", "o200k_base"]) == 2


def test_parallelism_is_result_neutral_and_reuses_the_phase(trained: dict[str, Path]) -> None:
    """`--set train.parallelism=fsdp` (or micro-batch, compile, checkpoint cadence) names the same train folder,
    so the phase trained before is reused, not retrained."""
    final = trained["bpe"] / "final.pt"
    before = final.stat().st_mtime_ns
    recipe = load_recipe(trained["bpe-recipe"], ["train.parallelism=fsdp", "train.checkpoint_every=7",
                                                  "train.micro_batch_size=1"])
    state = run(recipe, trained["bpe"].parents[1], until="train", progress=False)
    assert state.trained["pretrain"] == trained["bpe"]
    assert state.results["pretrain"].reused and final.stat().st_mtime_ns == before
