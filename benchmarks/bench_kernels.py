"""Benchmark the fused Triton kernels against torch eager, torch.compile and (if installed) Liger Kernel.

For each op (RMSNorm, SwiGLU, rotary on q and k, linear + cross-entropy) and each implementation:
forward time, forward+backward time, achieved bandwidth of forward+backward (the minimum bytes the op must
move, divided by its time) as GB/s and as a share of the GPU's peak memory bandwidth, and the peak memory
that one forward+backward allocates beyond its inputs (``torch.cuda.max_memory_allocated``). Linear +
cross-entropy is compute-bound, so it reports TFLOP/s instead of GB/s, and the fused/unfused peak-memory
ratio at vocab 100k (target: <= 0.25).

    python benchmarks/bench_kernels.py                 # CUDA GPU; Markdown table on stdout
    python benchmarks/bench_kernels.py --json out.json # also keep the numbers (rewritten after each one)
    python benchmarks/bench_kernels.py --cpu-check     # tiny shapes on the CPU under TRITON_INTERPRET=1,
                                                       # only to prove the script runs; timings meaningless

Needs torch and triton only (no datatrove). Times are medians of ``triton.testing.do_bench``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Run from a checkout without installing: make the repository's `mixlab` importable.
_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "mixlab").is_dir() and str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

# Peak HBM bandwidth in bytes/s by device-name fragment (vendor figures). The first match wins.
PEAK_BANDWIDTH = [
    ("H200", 4.8e12),
    ("H100 PCIe", 2.0e12),
    ("H100", 3.35e12),  # SXM5 / "H100 80GB HBM3"
    ("A100-SXM4-80GB", 2.039e12),
    ("A100-PCIE-80GB", 1.935e12),
    ("A100", 1.555e12),
    ("L40S", 0.864e12),
    ("A10G", 0.6e12),
    ("RTX 4090", 1.008e12),
]


@dataclass
class Case:
    """One op at one size: inputs (leaves with requires_grad), implementations, and its traffic/flops."""

    op: str
    shape: str
    inputs: tuple
    impls: dict[str, Callable]
    bytes_fwd_bwd: float | None = None  # minimum bytes moved by forward + backward (memory-bound ops)
    flops_fwd_bwd: float | None = None  # matmul flops of forward + backward (compute-bound ops)
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    op: str
    shape: str
    impl: str
    fwd_ms: float | None
    fwd_bwd_ms: float | None
    gbps: float | None
    pct_peak_bw: float | None
    tflops: float | None
    peak_mib: float | None
    error: str | None = None


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu-check", action="store_true", help="tiny shapes on CPU under the Triton interpreter")
    p.add_argument("--ops", default="rms_norm,swiglu,rotary,linear_cross_entropy", help="comma-separated ops")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (its compile time is long)")
    p.add_argument("--peak-gbps", type=float, default=None, help="override the device's peak bandwidth, GB/s")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return p.parse_args()


def main() -> int:
    args = _parse()
    if args.cpu_check:
        # Must precede the first `import triton` (the kernel modules import it).
        os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    if not args.cpu_check and not torch.cuda.is_available():
        print(
            "bench_kernels.py needs a CUDA GPU (torch.cuda.is_available() is False). "
            "Use --cpu-check to run tiny shapes under the Triton interpreter instead.",
            file=sys.stderr,
        )
        return 2
    try:
        import triton  # noqa: F401
    except ImportError:
        print("bench_kernels.py needs triton: pip install 'mixlab[gpu]'", file=sys.stderr)
        return 2

    device = torch.device("cpu" if args.cpu_check else "cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    peak_bw = _peak_bandwidth(device, args.peak_gbps)
    cases = [c for c in _build_cases(device, dtype, args) if c.op in args.ops.split(",")]

    results: list[Result] = []
    for case in cases:
        for impl, fn in case.impls.items():
            results.append(_measure(case, impl, fn, device, peak_bw))
            print(f"  measured {case.op} / {impl}", file=sys.stderr)
            if args.json:  # after every measurement: a run stopped by a time limit keeps what it measured
                args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))

    _print_table(results, device, dtype, peak_bw, cases)
    return 0


def _peak_bandwidth(device, override_gbps: float | None) -> float | None:
    import torch

    if override_gbps:
        return override_gbps * 1e9
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((bw for frag, bw in PEAK_BANDWIDTH if frag in name), None)


# ------------------------------------------------------------------------------------------------ cases


def _build_cases(device, dtype, args: argparse.Namespace) -> list[Case]:
    import torch

    from mixlab.kernels import reference as ref

    rms_mod = importlib.import_module("mixlab.kernels.fused_rmsnorm")
    swiglu_mod = importlib.import_module("mixlab.kernels.fused_swiglu")
    rope_mod = importlib.import_module("mixlab.kernels.fused_rotary")
    lce_mod = importlib.import_module("mixlab.kernels.fused_linear_ce")
    liger = _liger() if device.type == "cuda" else None
    cpu = device.type == "cpu"
    el = torch.empty((), dtype=dtype).element_size()

    def leaf(*shape: int, scale: float = 1.0, offset: float = 0.0) -> torch.Tensor:
        return (torch.randn(*shape, device=device, dtype=dtype) * scale + offset).requires_grad_(True)

    def compiled(fn: Callable) -> Callable:
        # On the CPU check, backend="eager" exercises dynamo without a C++ build on a small machine.
        return torch.compile(fn, backend="eager" if cpu else "inductor", dynamic=False)

    def impls(fused: Callable, eager: Callable, liger_fn: Callable | None) -> dict[str, Callable]:
        out = {"fused (triton)": fused, "torch eager": eager}
        if not args.no_compile:
            out["torch.compile"] = compiled(eager)
        if liger_fn is not None:
            out["liger"] = liger_fn
        return out

    cases = []
    # RMSNorm: 16k tokens x hidden 4096 (Llama-7B width). fwd reads x, writes y; bwd reads dy, x, writes dx.
    n, d = (33, 96) if cpu else (16384, 4096)
    x, w = leaf(n, d), leaf(d, scale=0.1, offset=1.0)
    cases.append(Case(
        "rms_norm", f"[{n}, {d}]", (x, w),
        impls(lambda x, w: rms_mod.rms_norm(x, w, 1e-6), lambda x, w: ref.rms_norm(x, w, 1e-6),
              (lambda x, w: liger.liger_rms_norm(x, w, 1e-6)) if liger else None),
        bytes_fwd_bwd=5 * n * d * el,
    ))
    # SwiGLU: 16k tokens x MLP 11008. fwd reads 2 writes 1; bwd reads 3 writes 2.
    n, f = (7, 1031) if cpu else (16384, 11008)
    g, u = leaf(n, f, scale=2.0), leaf(n, f)
    cases.append(Case(
        "swiglu", f"[{n}, {f}]", (g, u),
        impls(swiglu_mod.swiglu, ref.swiglu, liger.liger_swiglu if liger else None),
        bytes_fwd_bwd=8 * n * f * el,
    ))
    # Rotary on q and k: [batch 4, seq 4096, 32 heads, 128]. Each: fwd reads+writes, bwd reads+writes.
    b, s, h, hd = (1, 7, 3, 34) if cpu else (4, 4096, 32, 128)
    q, k = leaf(b, s, h, hd), leaf(b, s, h, hd)
    cos, sin = ref.rotary_tables(s, hd, device=device)
    liger_rope = None
    if liger:
        cos_full = torch.cat([cos, cos], dim=-1)[None].to(dtype)  # Liger: [1, seq, head_dim], [B, H, S, D]
        sin_full = torch.cat([sin, sin], dim=-1)[None].to(dtype)
        ql = q.detach().transpose(1, 2).contiguous().requires_grad_(True)
        kl = k.detach().transpose(1, 2).contiguous().requires_grad_(True)

        def liger_rope(q_: torch.Tensor, k_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # Ignores q_/k_ (our layout) and rotates the same data in Liger's [B, H, S, D] layout.
            return liger.liger_rope(ql, kl, cos_full, sin_full)

    cases.append(Case(
        "rotary", f"q and k, 2 x [{b}, {s}, {h}, {hd}]", (q, k),
        impls(lambda q, k: (rope_mod.apply_rotary(q, cos, sin), rope_mod.apply_rotary(k, cos, sin)),
              lambda q, k: (ref.apply_rotary(q, cos, sin), ref.apply_rotary(k, cos, sin)), liger_rope),
        bytes_fwd_bwd=2 * 4 * b * s * h * hd * el,
        notes=["liger rotates q and k in one launch, in its [B, H, S, D] layout"] if liger else [],
    ))
    # Linear + CE: 16k tokens, hidden 2048, vocab 100k. Flops: logits, d hidden, d weight = 3 GEMMs.
    n, hid, vocab = (33, 24, 211) if cpu else (16384, 2048, 100_000)
    hdn, lm = leaf(n, hid), leaf(vocab, hid, scale=hid**-0.5)
    tgt = torch.randint(0, vocab, (n,), device=device)
    tgt[::17] = -100
    chunk = 8 if cpu else None  # the CPU check exercises several chunks; on GPU the default heuristic
    cases.append(Case(
        "linear_cross_entropy", f"N={n} H={hid} V={vocab}", (hdn, lm),
        impls(lambda h_, w_: lce_mod.linear_cross_entropy(h_, w_, tgt, chunk_rows=chunk),
              lambda h_, w_: ref.linear_cross_entropy(h_, w_, tgt),
              (lambda h_, w_: liger.liger_fused_linear_cross_entropy(h_, w_, tgt)) if liger else None),
        flops_fwd_bwd=3 * 2 * n * hid * vocab,
        notes=[f"fused chunk_rows = {chunk or lce_mod.default_chunk_rows(n, hid, vocab)}"],
    ))
    return cases


def _liger():
    try:
        return importlib.import_module("liger_kernel.transformers.functional")
    except Exception:  # not installed, or incompatible with this torch/triton
        return None


# --------------------------------------------------------------------------------------------- measuring


def _fwd_bwd(fn: Callable, inputs: Sequence) -> None:
    import torch

    outs = fn(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    # A fixed upstream gradient of ones: what matters here is the traffic, not the values.
    torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])


def _time_ms(fn: Callable, device, grad_to_none: Sequence | None = None) -> float:
    if device.type == "cuda":
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=25, rep=100, grad_to_none=grad_to_none, return_mode="median"))
    fn()  # CPU check: a few wall-clock runs, only to exercise the path
    t0 = time.perf_counter()
    for _ in range(3):
        if grad_to_none:
            for t in grad_to_none:
                t.grad = None
        fn()
    return (time.perf_counter() - t0) / 3 * 1e3


def _measure(case: Case, impl: str, fn: Callable, device, peak_bw: float | None) -> Result:
    import torch

    inputs = case.inputs
    try:
        with torch.no_grad():
            fwd_ms = _time_ms(lambda: fn(*inputs), device)
        fwd_bwd_ms = _time_ms(lambda: _fwd_bwd(fn, inputs), device, grad_to_none=inputs)
        peak_mib = None
        if device.type == "cuda":
            for t in inputs:
                t.grad = None
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            _fwd_bwd(fn, inputs)
            torch.cuda.synchronize()
            peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
            for t in inputs:
                t.grad = None
    except Exception as exc:  # an implementation failing must not hide the others' numbers
        return Result(case.op, case.shape, impl, None, None, None, None, None, None, f"{type(exc).__name__}: {exc}")
    gbps = case.bytes_fwd_bwd / (fwd_bwd_ms * 1e-3) / 1e9 if case.bytes_fwd_bwd else None
    pct = 100 * gbps * 1e9 / peak_bw if gbps and peak_bw else None
    tflops = case.flops_fwd_bwd / (fwd_bwd_ms * 1e-3) / 1e12 if case.flops_fwd_bwd else None
    return Result(case.op, case.shape, impl, fwd_ms, fwd_bwd_ms, gbps, pct, tflops, peak_mib)


# --------------------------------------------------------------------------------------------- reporting


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _print_table(results: list[Result], device, dtype, peak_bw: float | None, cases: list[Case]) -> None:
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (Triton interpreter)"
    bw = f"{peak_bw / 1e12:.2f} TB/s peak" if peak_bw else "peak bandwidth unknown (--peak-gbps)"
    print(f"\n## Fused kernels: {name}, {bw}, {str(dtype).removeprefix('torch.')}, torch {torch.__version__}\n")
    if device.type == "cpu":
        print("CPU check only: the interpreter's timings say nothing about GPU speed.\n")
    print("| op | shape | impl | fwd ms (no grad) | fwd+bwd ms | fwd+bwd GB/s | % peak BW | TFLOP/s | peak MiB (fwd+bwd) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if r.error:
            print(f"| {r.op} | {r.shape} | {r.impl} | error: {r.error[:80]} | | | | | |")
            continue
        print(
            f"| {r.op} | {r.shape} | {r.impl} | {_fmt(r.fwd_ms, '.3f')} | {_fmt(r.fwd_bwd_ms, '.3f')} | "
            f"{_fmt(r.gbps, '.0f')} | {_fmt(r.pct_peak_bw, '.0f')} | {_fmt(r.tflops, '.0f')} | "
            f"{_fmt(r.peak_mib, '.0f')} |"
        )
    for c in cases:
        for note in c.notes:
            print(f"\n- {c.op}: {note}")
    by = {(r.op, r.impl): r for r in results}
    fused, eager = by.get(("linear_cross_entropy", "fused (triton)")), by.get(("linear_cross_entropy", "torch eager"))
    if fused and eager and fused.peak_mib and eager.peak_mib:
        ratio = fused.peak_mib / eager.peak_mib
        verdict = "OK" if ratio <= 0.25 else "ABOVE TARGET"
        print(f"\n- linear_cross_entropy peak memory fused/unfused: {ratio:.3f} (target <= 0.25: {verdict})")
    print(
        "\nGB/s = minimum bytes the op must move (inputs read once, outputs written once, forward and backward)"
        " / fwd+bwd time. Peak MiB = max_memory_allocated during one fwd+bwd, beyond its inputs."
    )


if __name__ == "__main__":
    sys.exit(main())
