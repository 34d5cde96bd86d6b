"""Trainer throughput: tokens/s of mixlab's phase trainer and of the GPT step with and without the fused kernels.

    python benchmarks/bench_trainer.py             # CPU: `tiny` preset via train_phase, batch 8 x seq 256, V=4096
    python benchmarks/bench_trainer.py --steps 30  # more steps (CUDA: also the `124m` rows at seq 1024)
    python benchmarks/bench_trainer.py --dry-run   # CPU, tiny sizes, fused kernels under TRITON_INTERPRET=1,
                                                   # compiled with aot_eager: proves the script runs, timings meaningless

Rows (Markdown table on stdout; ``--json PATH`` also writes them):
- ``train_phase tiny``: ``mixlab.train.trainer.train_phase`` end to end (loader, schedule, AdamW, clipping,
  metrics) on random tokens; tokens/s is the median over steps after the first two (warm-up). Needs the
  full install (pydantic for the recipe); skipped with a note where it is missing (e.g. a bare GPU box).
- CUDA, ``124m`` at seq 1024, vocab 50,304, bf16 autocast, fused AdamW, grad clipping, one step = ``--batch``
  sequences in micro-batches of ``--micro`` (the trainer's step, without the trainer's bookkeeping):
  ``GPT + fused kernels, eager``; ``GPT + fused kernels, torch.compile`` (what ``train.compile: true`` runs:
  the kernels are opaque custom ops in the compiled graph, the loss never materialises logits); ``plain torch,
  torch.compile``: ``MIXLAB_KERNELS=reference`` (inductor fuses the reference ops), logits [B,T,V] + F.cross_entropy;
  and, where the trainer imports, ``train_phase 124m (compile)``.
  MFU = flops_per_token x tokens/s / peak bf16 dense FLOP/s of the GPU (H100/H200 SXM: 989 TFLOP/s); peak GiB =
  ``torch.cuda.max_memory_allocated`` over the run.

Measured on the 2-core AMD EPYC dev box (torch 2.13.0+cpu, 2 threads, machine shared with other jobs):
    mixlab tiny (cpu x2 threads): 7,137-7,798 tokens/s = 0.26-0.29 s per step of 2,048 tokens (1 thread:
    4,469 tokens/s); ~0.10 s of each step is the vocab-4096 cross-entropy (2048 x 4096 logits, fwd + bwd).
    The CUDA rows: run ``python benchmarks/gpu_check.py`` on a GPU (see benchmarks/README.md).
Imports torch, numpy and mixlab.kernels / mixlab.train.model only; the trainer rows import the trainer lazily.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s (SXM parts)


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--batch", type=int, default=16, help="CUDA 124m: sequences per step")
    ap.add_argument("--micro", type=int, default=16, help="CUDA 124m: sequences per forward")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, kernels under the interpreter")
    ap.add_argument("--no-trainer", action="store_true", help="skip the train_phase rows")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    return ap.parse_args()


class RandomLoader:
    """The trainer's loader contract over random tokens (state = batches consumed)."""

    def __init__(self, steps: int, batch: int, seq_len: int, vocab: int, seed: int = 0) -> None:
        import numpy as np

        self.data = np.random.default_rng(seed).integers(0, vocab, (steps * batch, seq_len + 1), dtype=np.int64)
        self.batch, self.step = batch, 0

    def __len__(self) -> int:
        return len(self.data) // self.batch

    def __iter__(self):
        import torch

        while self.step < len(self):
            lo = self.step * self.batch
            self.step += 1
            yield torch.from_numpy(self.data[lo : lo + self.batch])

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


# ------------------------------------------------------------------------------------------ train_phase


def bench_train_phase(preset: str, seq_len: int, batch: int, micro: int | None, vocab: int, steps: int,
                      compile_: bool) -> tuple[float, int]:
    """Median tokens/s of train_phase after 2 warm-up steps, and flops per token. Needs the full install."""
    import torch

    from mixlab.recipe import Recipe
    from mixlab.train.metrics import read_metrics
    from mixlab.train.model import GPT, ModelConfig
    from mixlab.train.trainer import train_phase

    recipe = Recipe.model_validate({
        "name": f"bench-{preset}", "seq_len": seq_len,
        "sources": {"s": {"kind": "synthetic", "filters": {"generate": 10}}},  # never read: RandomLoader feeds
        "model": {"preset": preset},
        "train": {"batch_size": batch, "micro_batch_size": micro, "compile": compile_},
        "phases": {"p": {"tokens": steps * batch * seq_len, "mixture": {"s": 1.0},
                         "lr": {"kind": "constant", "warmup_steps": 0, "peak_lr": 1e-3, "min_lr": 1e-4}}},
    })
    with tempfile.TemporaryDirectory() as tmp:
        train_phase(recipe, "p", RandomLoader(steps, batch, seq_len, vocab), Path(tmp), vocab_size=vocab,
                    progress=False)
        rows = [r for r in read_metrics(Path(tmp) / "metrics.jsonl") if r["event"] == "step"]
    with torch.device("meta"):
        flops = GPT(ModelConfig.from_spec(recipe.model, vocab, seq_len)).flops_per_token()
    return statistics.median(r["tokens_per_s"] for r in rows[2:]), flops


# ------------------------------------------------------------------------------------- the bare GPT step


def bench_step(cfg, batch: int, micro: int, steps: int, *, kernels: str, fused_loss: bool,
               compile_backend: str | None, device: str) -> dict:
    """The trainer's step on random tokens: tokens/s (median after 2 warm-up steps), peak memory, flops/token.

    ``kernels`` sets MIXLAB_KERNELS for the run (the backend is chosen when the model is traced);
    ``fused_loss`` False materialises the logits and calls F.cross_entropy.
    """
    import torch
    import torch.nn.functional as F

    from mixlab.train.model import GPT

    os.environ["MIXLAB_KERNELS"] = kernels
    torch._dynamo.reset()  # the dispatch choice is baked into a compiled graph: never reuse one across runs
    torch.manual_seed(0)
    model = GPT(cfg).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.95), fused=device == "cuda" or None,
    )

    def forward(idx: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        if fused_loss:
            return model(idx, tgt)
        logits = model(idx)  # [micro, T, V]
        return F.cross_entropy(logits.float().flatten(0, 1), tgt.flatten())

    run = torch.compile(forward, backend=compile_backend) if compile_backend else forward
    cuda = device == "cuda"
    loader = RandomLoader(steps, batch, cfg.seq_len, cfg.vocab_size)
    accum = batch // micro
    times = []
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    for b in loader:
        b = b.to(device, non_blocking=True)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(accum):
            mb = b[i * micro : (i + 1) * micro]
            with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext():
                loss = run(mb[:, :-1], mb[:, 1:]) / accum
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_val = loss.item()  # syncs
        times.append(time.perf_counter() - t0)
    tps = batch * cfg.seq_len / statistics.median(times[2:] if len(times) > 2 else times)
    return {
        "tokens_per_s": tps, "s_per_step": batch * cfg.seq_len / tps, "last_loss": loss_val * accum,
        "first_step_s": times[0], "flops_per_token": model.flops_per_token(),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }


def peak_flops() -> float | None:
    import torch

    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def main() -> int:
    args = _parse()
    if args.dry_run:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is first imported
    import torch

    from mixlab.train.model import ModelConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available() and not args.dry_run
    dev = torch.cuda.get_device_name() if cuda else f"cpu x{torch.get_num_threads()} threads"
    rows: list[dict] = []

    def add(label: str, result: dict | None, note: str = "") -> None:
        rows.append({"run": label, "device": dev, **(result or {}), "note": note})
        print(f"  done: {label}", file=sys.stderr)

    if not args.no_trainer and not args.dry_run:
        try:
            tps, flops = bench_train_phase("tiny", 256, 8, None, 4096, args.steps, False)
            add("train_phase tiny, 8x256, V=4096", {"tokens_per_s": tps, "s_per_step": 8 * 256 / tps})
        except ImportError as exc:  # a bare GPU box: no pydantic / tqdm for the recipe and the trainer
            add("train_phase tiny, 8x256, V=4096", None, f"skipped: {exc}")
    if args.dry_run:
        cfg = ModelConfig(vocab_size=64, seq_len=16, n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, ffn_hidden=48)
        batch, micro, steps, backend, dev_name = 4, 2, max(3, min(args.steps, 4)), "aot_eager", "cpu"
        kernels = "triton"
        shape = "2 layers d32, 4x16, V=64"
    elif cuda:
        cfg = ModelConfig(vocab_size=50304, seq_len=1024, n_layers=12, d_model=768, n_heads=12, n_kv_heads=12,
                          ffn_hidden=2048)  # the `124m` preset
        batch, micro, steps, backend, dev_name = args.batch, args.micro, args.steps, "inductor", "cuda"
        kernels = "auto"  # the fused Triton kernels on CUDA
        shape = f"124m, {batch}x1024, V=50304"
    else:
        cfg = None
    if cfg is not None:
        runs = [
            (f"GPT + fused kernels, eager, {shape}", kernels, True, None),
            (f"GPT + fused kernels, torch.compile, {shape}", kernels, True, backend),
            (f"plain torch (reference ops, logits + CE), torch.compile, {shape}", "reference", False, backend),
        ]
        for label, k, fused, be in runs:
            try:
                add(label, bench_step(cfg, batch, micro, steps, kernels=k, fused_loss=fused, compile_backend=be,
                                      device=dev_name))
            except Exception as exc:  # one failing run must not hide the others' numbers
                add(label, None, f"error: {type(exc).__name__}: {str(exc)[:300]}")
        if cuda and not args.no_trainer:
            os.environ["MIXLAB_KERNELS"] = "auto"  # what a user's run gets: the fused kernels on CUDA
            torch._dynamo.reset()
            try:
                tps, _ = bench_train_phase("124m", 1024, batch, micro, 50304, steps, True)
                add(f"train_phase 124m (compile), {batch}x1024, V=50304",
                    {"tokens_per_s": tps, "s_per_step": batch * 1024 / tps})
            except ImportError as exc:
                add(f"train_phase 124m (compile), {batch}x1024, V=50304", None, f"skipped: {exc}")
    peak = peak_flops() if cuda else None
    for r in rows:
        fpt, tps = r.get("flops_per_token"), r.get("tokens_per_s")
        r["mfu"] = fpt * tps / peak if peak and fpt and tps else None
    _print(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def _print(rows: list[dict]) -> None:
    def fmt(v, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    print("| run | device | tokens/s | s/step | first step s | MFU | peak GiB | note |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['run']} | {r['device']} | {fmt(r.get('tokens_per_s'), ',.0f')} | "
              f"{fmt(r.get('s_per_step'), '.4f')} | {fmt(r.get('first_step_s'), '.1f')} | "
              f"{fmt(r.get('mfu'), '.1%')} | {fmt(r.get('peak_gib'), '.1f')} | {r.get('note', '')} |")


if __name__ == "__main__":
    sys.exit(main())
