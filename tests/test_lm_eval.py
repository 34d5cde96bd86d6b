"""lm-evaluation-harness on a mixlab export (optional: ``pip install "lm-eval[hf]"``; skipped without it).

A tiny mixlab model is trained for a few steps, exported with its tokenizer (``export_hf(..., encoding_spec=)``),
and evaluated by lm-eval's ``hf`` model on a LOCAL multiple-choice task (a task YAML and a jsonl in tmp_path:
nothing is downloaded). Per-choice log-likelihoods must equal :meth:`mixlab.eval.lm.MixlabLM.loglikelihood` on the
same (context, " " + choice) pairs within 1e-3 nats. Why that tolerance and why they should agree:
- tokens: lm-eval encodes context and context+continuation with the exported tokenizer's defaults, which prepend
  ``<|endoftext|>`` exactly as MixlabLM's ``prefix_eot`` does; the tokenizer equals tiktoken's ids
  (``tests/test_export_hf.py``), and the items' continuations start with " " + letters, which the split pattern
  always cuts before, so lm-eval's "encode the whole, then split" gives the same continuation tokens as mixlab's
  separate encoding;
- weights: the export reproduces mixlab's fp32 logits within 1e-4 (``tests/test_export_hf.py``); a continuation
  of k <= 3 tokens sums k log-softmax values, each off by at most ~2e-4 from that bound, so 1e-3 still
  separates agreement from any token or position shift (which moves a score by >= ~1e-1 on a trained model).
"""

from __future__ import annotations

import json

import pytest
import torch

from mixlab.eval.encoding import resolve_encoding
from mixlab.eval.lm import MixlabLM
from mixlab.hf_export import export_hf
from mixlab.tokenizer import save_ranks, train_bpe
from mixlab.train.checkpoint import save_checkpoint
from mixlab.train.model import GPT, ModelConfig

CORPUS = [
    "The cat sat on the mat. The dog sat on the log. The bird sat on the branch.",
    "Question: What color is the sky? Answer: blue. Question: What color is grass? Answer: green.",
    "Water is wet. Fire is hot. Ice is cold. Snow is white. Coal is black.",
] * 8
ITEMS = [
    {"question": "The cat sat on the", "choices": ["mat", "sky", "river"], "gold": 0},
    {"question": "Question: What color is the sky? Answer:", "choices": ["blue", "green", "hot"], "gold": 0},
    {"question": "Fire is", "choices": ["cold", "hot", "wet"], "gold": 1},
    {"question": "The dog sat on the", "choices": ["log", "branch", "mat"], "gold": 0},
]


def _train_tiny(tmp_path):
    """(phase folder with final.pt, encoding spec) of a tiny model trained 150 steps on CORPUS."""
    enc = train_bpe(CORPUS, vocab_size=320)
    save_ranks(enc, tmp_path / "bpe.tiktoken")
    spec = {"kind": "bpe", "path": str(tmp_path / "bpe.tiktoken")}
    ids = []
    for text in CORPUS:
        ids += [enc.eot_token, *enc.encode_ordinary(text)]
    data = torch.tensor(ids)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=enc.n_vocab, seq_len=64, n_layers=2, d_model=64, n_heads=4, n_kv_heads=2,
                      ffn_hidden=128)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        starts = torch.randint(0, len(data) - cfg.seq_len - 1, (8,), generator=gen)
        batch = torch.stack([data[s : s + cfg.seq_len + 1] for s in starts])
        logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    phase = tmp_path / "phase"
    phase.mkdir()
    save_checkpoint(phase / "final.pt", model.eval(), None, 150, "pretrain", {}, None,
                    {"complete": True, "result": {"model_config": cfg.to_dict()}})
    return phase, spec


def test_lm_eval_local_task_matches_mixlab(tmp_path, monkeypatch):
    """lm-eval's hf model evaluates the export on a local multiple-choice task: it returns an accuracy in [0, 1],
    and every per-choice log-likelihood equals MixlabLM.loglikelihood on the same item within 1e-3 (module
    docstring: same tokens, same fp32 logits)."""
    lm_eval = pytest.importorskip("lm_eval")
    pytest.importorskip("transformers")
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    phase, spec = _train_tiny(tmp_path)
    out = export_hf(phase, tmp_path / "hf", encoding_spec=spec)

    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "mixlab_local_mc.yaml").write_text(
        "task: mixlab_local_mc\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        f"  data_files:\n    test: {json.dumps(str(data))}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\n'
        "doc_to_choice: choices\n"
        "doc_to_target: gold\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    results = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={out},dtype=float32", tasks=["mixlab_local_mc"],
        task_manager=TaskManager(include_path=str(tasks)), device="cpu", batch_size=2, log_samples=True,
    )
    acc = results["results"]["mixlab_local_mc"]["acc,none"]
    assert 0.0 <= acc <= 1.0

    ours = MixlabLM.from_checkpoint(phase, spec)
    assert ours.enc.n_vocab == resolve_encoding(spec).n_vocab
    samples = results["samples"]["mixlab_local_mc"]
    assert len(samples) == len(ITEMS)
    for sample in samples:
        doc = sample["doc"]
        theirs = [float(resp[0][0]) for resp in sample["resps"]]
        mine = [ours.loglikelihood(doc["question"], " " + choice) for choice in doc["choices"]]
        assert theirs == pytest.approx(mine, abs=1e-3, rel=0), doc
    mixlab_acc = sum(
        max(range(len(it["choices"])), key=lambda j: ours.loglikelihood(it["question"], " " + it["choices"][j]))
        == it["gold"] for it in ITEMS) / len(ITEMS)
    assert acc == pytest.approx(mixlab_acc)
