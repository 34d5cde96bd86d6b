"""Fused Triton kernels vs the pure-torch reference: outputs AND gradients, fp32 and bf16, odd shapes.

Without a GPU the kernels run under Triton's interpreter (``tests/conftest.py`` sets ``TRITON_INTERPRET=1``
before Triton is imported), on small shapes. Full-size checks are marked ``gpu`` and skipped without CUDA.

Tolerances, per dtype (checked with ``|actual - expected| <= atol + rtol * |expected|`` elementwise):
- fp32: kernel and reference do the same fp32 arithmetic; only the order of the terms in reductions
  (sum of squares, dot products over a row, sums over rows) differs. For the sizes here (<= 211 terms)
  that moves results by a few fp32 ulps (measured over 5 seeds: at most 0.08 of the tolerance below), so
  rtol = atol = 1e-5 leaves a >10x margin and still catches any real formula error.
- bf16: both sides compute in fp32 from the same bf16 inputs and round the result to bf16 once. bf16
  keeps 8 significant bits, so one ulp is at most 2^-7 of the value; the two roundings can land one ulp
  apart (fp32 noise straddling a rounding boundary; and Triton's interpreter converts fp32 -> bf16 by
  truncation where torch and the GPU round to nearest) but never two, since the fp32 values differ by far
  less than an ulp. Hence rtol = 2^-7 (an exact bound, not a fit) plus atol = 1e-5 for fp32 noise near
  zero. Measured under the interpreter over 5 seeds: 0.992 of the bound at worst, which is exactly one ulp
  for a value one ulp above a power of two.
- Products with the [.., vocab] gradient (linear + cross-entropy's d hidden and d weight) are dot products
  of bf16-rounded terms whose sum cancels (each softmax-gradient row sums to zero), so their error scales
  with the largest terms, not with each output element: they are compared against the largest magnitude,
  ``max|a - e| <= rel * max|e|``, rel = 1e-5 (fp32; measured <= 4.5e-7) or 2^-5 = 3.1% (bf16: each
  gradient logit carries up to one ulp, 2^-8 relative, of rounding difference, and the interpreter's
  truncation biases them all the same way, so errors add up over the vocab instead of cancelling: that
  alone accounts for 0.9% / 0.6%; measured over 5 seeds: d hidden <= 0.82%, d weight <= 1.2%, a 2.6x
  margin).
- The loss is fp32 on both sides from the same logits: rtol 1e-5 (measured <= 2e-7 relative).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import mixlab.kernels as kernels
from mixlab.kernels import reference as ref

triton = pytest.importorskip("triton")

lce_mod = importlib.import_module("mixlab.kernels.fused_linear_ce")
ops_mod = importlib.import_module("mixlab.kernels.ops")
rms_mod = importlib.import_module("mixlab.kernels.fused_rmsnorm")
rope_mod = importlib.import_module("mixlab.kernels.fused_rotary")
swiglu_mod = importlib.import_module("mixlab.kernels.fused_swiglu")

HAS_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if HAS_CUDA else "cpu"
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")

DTYPES = [torch.float32, torch.bfloat16]
TOL = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.bfloat16: {"rtol": 2.0**-7, "atol": 1e-5},
}
MATMUL_REL = {torch.float32: 1e-5, torch.bfloat16: 2.0**-5}


def _close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    torch.testing.assert_close(actual.float(), expected.float(), **TOL[expected.dtype], msg=lambda m: f"{what}: {m}")


def _close_scaled(actual: torch.Tensor, expected: torch.Tensor, rel: float, what: str) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    err = (actual.float() - expected.float()).abs().max().item()
    scale = expected.float().abs().max().item()
    assert err <= rel * scale + 1e-12, f"{what}: max err {err:.3g} > {rel:.3g} * max|expected| {scale:.3g}"


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def _grads(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], dout: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(out, inputs, dout)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(1234)


# ----------------------------------------------------------------------------------------------- RMSNorm


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("dim", [17, 64, 96])
@pytest.mark.parametrize("lead", [(1,), (7,), (3, 11)], ids=["rows1", "rows7", "rows3x11"])
def test_rms_norm_matches_reference(lead: tuple[int, ...], dim: int, dtype: torch.dtype) -> None:
    """Fused RMSNorm gives the reference's y, dx AND dweight, for 1/7/33 rows, odd and even widths."""
    x = _leaf(torch.randn(*lead, dim, dtype=dtype, device=DEVICE) * 3)
    w = _leaf(1 + 0.3 * torch.randn(dim, dtype=dtype, device=DEVICE))
    dy = torch.randn(*lead, dim, dtype=dtype, device=DEVICE)
    y = rms_mod.rms_norm(x, w, 1e-6)
    y_ref = ref.rms_norm(x, w, 1e-6)
    _close(y, y_ref, "y")
    dx, dw = _grads(y, (x, w), dy)
    dx_ref, dw_ref = _grads(y_ref, (x, w), dy)
    _close(dx, dx_ref, "dx")
    _close(dw, dw_ref, "dweight")


def test_rms_norm_mixed_dtypes_and_strided_rows() -> None:
    """bf16 activations with an fp32 weight keep each gradient in its own dtype; row-strided and
    last-dim-strided views of x give the same result as contiguous copies."""
    base = torch.randn(9, 40, dtype=torch.bfloat16, device=DEVICE)
    w = _leaf(1 + 0.3 * torch.randn(17, device=DEVICE))
    dy = torch.randn(9, 17, dtype=torch.bfloat16, device=DEVICE)
    for view in (base[:, 3:20], base[:, ::2][:, :17]):  # row stride 40; element stride 2
        x = view.detach().requires_grad_(True)
        y = rms_mod.rms_norm(x, w, 1e-5)
        y_ref = ref.rms_norm(x, w, 1e-5)
        _close(y, y_ref, "y")
        dx, dw = _grads(y, (x, w), dy)
        dx_ref, dw_ref = _grads(y_ref, (x, w), dy)
        _close(dx, dx_ref, "dx")
        assert dw.dtype == torch.float32
        torch.testing.assert_close(dw, dw_ref, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ SwiGLU


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(1, 17), (7, 64), (3, 11, 96), (5, 1031)], ids=str)
def test_swiglu_matches_reference(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    """Fused silu(gate) * up gives the reference's output, dgate and dup; sizes straddle the 1024 block."""
    gate = _leaf(torch.randn(shape, dtype=dtype, device=DEVICE) * 3)
    up = _leaf(torch.randn(shape, dtype=dtype, device=DEVICE))
    dout = torch.randn(shape, dtype=dtype, device=DEVICE)
    out = swiglu_mod.swiglu(gate, up)
    out_ref = ref.swiglu(gate, up)
    _close(out, out_ref, "out")
    pairs = zip(_grads(out, (gate, up), dout), _grads(out_ref, (gate, up), dout), ("dgate", "dup"), strict=True)
    for got, want, name in pairs:
        _close(got, want, name)


def test_swiglu_on_halves_of_a_fused_projection() -> None:
    """gate/up as non-contiguous halves of one [.., 2*d] projection: same values and gradients."""
    proj = _leaf(torch.randn(7, 2 * 33, device=DEVICE))
    dout = torch.randn(7, 33, device=DEVICE)
    gate, up = proj.chunk(2, dim=-1)
    (g1,) = _grads(swiglu_mod.swiglu(gate, up), (proj,), dout)
    gate, up = proj.chunk(2, dim=-1)
    (g2,) = _grads(ref.swiglu(gate, up), (proj,), dout)
    _close(g1, g2, "dproj")


# ------------------------------------------------------------------------------------------------ Rotary


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(1, 1, 1, 2), (2, 7, 3, 34), (1, 33, 5, 64)], ids=str)
def test_rotary_matches_reference(shape: tuple[int, int, int, int], dtype: torch.dtype) -> None:
    """Fused rotate-half rotary gives the reference's output and dx; tables longer than seq are sliced."""
    bsz, seq, heads, head_dim = shape
    cos, sin = ref.rotary_tables(seq + 5, head_dim, device=DEVICE)
    x = _leaf(torch.randn(shape, dtype=dtype, device=DEVICE))
    dy = torch.randn(shape, dtype=dtype, device=DEVICE)
    y = rope_mod.apply_rotary(x, cos, sin)
    y_ref = ref.apply_rotary(x, cos, sin)
    _close(y, y_ref, "y")
    _close(_grads(y, (x,), dy)[0], _grads(y_ref, (x,), dy)[0], "dx")


def test_rotary_on_strided_qkv_view() -> None:
    """q taken as a strided view of a fused [B, S, 3, H, D] qkv tensor rotates like its contiguous copy."""
    qkv = _leaf(torch.randn(2, 9, 3, 3, 18, device=DEVICE))
    cos, sin = ref.rotary_tables(9, 18, device=DEVICE)
    dy = torch.randn(2, 9, 3, 18, device=DEVICE)
    y = rope_mod.apply_rotary(qkv[:, :, 0], cos, sin)
    (g,) = _grads(y, (qkv,), dy)
    y_ref = ref.apply_rotary(qkv[:, :, 0], cos, sin)
    (g_ref,) = _grads(y_ref, (qkv,), dy)
    _close(y, y_ref, "y")
    _close(g, g_ref, "dqkv")


# ------------------------------------------------------------------------------ linear + cross-entropy


def _lce_inputs(n: int, hidden: int, vocab: int, dtype: torch.dtype, ignore_every: int = 5):
    h = _leaf(torch.randn(n, hidden, dtype=dtype, device=DEVICE))
    w = _leaf(torch.randn(vocab, hidden, dtype=dtype, device=DEVICE) / hidden**0.5 * 2)
    t = torch.randint(0, vocab, (n,), device=DEVICE)
    t[1::ignore_every] = -100
    return h, w, t


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "n,hidden,vocab,chunk", [(1, 17, 37, None), (7, 64, 211, 3), (33, 96, 211, 8), (33, 17, 37, None)], ids=str
)
def test_linear_cross_entropy_matches_reference(
    n: int, hidden: int, vocab: int, chunk: int | None, dtype: torch.dtype
) -> None:
    """Fused chunked linear+CE gives the reference's mean loss over non-ignored targets and its gradients
    w.r.t. hidden and weight, also under a non-unit upstream gradient."""
    h, w, t = _lce_inputs(n, hidden, vocab, dtype)
    upstream = torch.tensor(2.5, device=DEVICE)
    loss = lce_mod.linear_cross_entropy(h, w, t, chunk_rows=chunk)
    loss_ref = ref.linear_cross_entropy(h, w, t)
    assert loss.dtype == torch.float32
    # Both compute the loss in fp32 from the same logits (a chunk's matmul rows equal the full matmul's).
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-6)
    gh, gw = _grads(loss, (h, w), upstream)
    gh_ref, gw_ref = _grads(loss_ref, (h, w), upstream)
    _close_scaled(gh, gh_ref, MATMUL_REL[dtype], "d hidden")
    _close_scaled(gw, gw_ref, MATMUL_REL[dtype], "d weight")


@pytest.mark.parametrize("chunk", [1, 4, 10, 32, 33, 64])
def test_linear_cross_entropy_chunk_size_does_not_change_results(chunk: int) -> None:
    """Any chunk size, dividing N=33 or not, larger than N or 1, gives the unchunked reference's loss and
    gradients on [batch, seq, hidden] input."""
    h, w, t = _lce_inputs(33, 24, 53, torch.float32, ignore_every=4)
    h3, t3 = _leaf(h.detach().reshape(3, 11, 24)), t.reshape(3, 11)
    loss = lce_mod.linear_cross_entropy(h3, w, t3, chunk_rows=chunk)
    loss_ref = ref.linear_cross_entropy(h3, w, t3)
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-6)
    gh, gw = _grads(loss, (h3, w), torch.tensor(1.0))
    gh_ref, gw_ref = _grads(loss_ref, (h3, w), torch.tensor(1.0))
    assert gh.shape == h3.shape
    _close_scaled(gh, gh_ref, 1e-5, "d hidden")
    _close_scaled(gw, gw_ref, 1e-5, "d weight")


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor (in bytes) any torch op produces while active. Bytes, not elements:
    Triton's interpreter stages kernel arguments through byte (uint8) copies of their storage."""

    def __init__(self) -> None:
        super().__init__()
        self.max_bytes = 0
        self.shape: tuple[int, ...] = ()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor) and o.numel() * o.element_size() > self.max_bytes:
                self.max_bytes, self.shape = o.numel() * o.element_size(), tuple(o.shape)
        return out


def test_linear_cross_entropy_never_materialises_full_logits() -> None:
    """With chunk_rows=c, no tensor created in forward+backward is larger than max(c x V, V x H, N x H):
    the [N, V] logits never exist (the same probe sees them in the reference)."""
    n, hidden, vocab, chunk = 64, 17, 211, 8
    h, w, t = _lce_inputs(n, hidden, vocab, torch.float32)
    allowed = 4 * max(chunk * vocab, vocab * hidden, n * hidden)  # fp32 bytes
    assert allowed < 4 * n * vocab
    with _LargestTensor() as probe:
        loss = lce_mod.linear_cross_entropy(h, w, t, chunk_rows=chunk)
        loss.backward()
    assert probe.max_bytes <= allowed, f"a {probe.shape} tensor ({probe.max_bytes} bytes) was created"
    with _LargestTensor() as probe_ref:
        ref.linear_cross_entropy(h, w, t).backward()
    assert probe_ref.max_bytes >= 4 * n * vocab, "the probe must see the reference's full logits"


def test_linear_cross_entropy_all_ignored_and_no_grad() -> None:
    """All targets ignored: NaN loss and zero gradients, as F.cross_entropy. Under no_grad the loss-only
    kernel path gives the same loss as the gradient path."""
    h, w, t = _lce_inputs(7, 16, 37, torch.float32)
    loss = lce_mod.linear_cross_entropy(h, w, torch.full_like(t, -100), chunk_rows=3)
    assert torch.isnan(loss) and torch.isnan(ref.linear_cross_entropy(h, w, torch.full_like(t, -100)))
    gh, gw = _grads(loss, (h, w), torch.tensor(1.0))
    assert not gh.any() and not gw.any()
    with torch.no_grad():
        loss_eval = lce_mod.linear_cross_entropy(h, w, t, chunk_rows=3)
    torch.testing.assert_close(loss_eval, ref.linear_cross_entropy(h, w, t), rtol=1e-5, atol=1e-6)
    loss_custom = lce_mod.linear_cross_entropy(h, w, torch.where(t < 0, 5, t), ignore_index=5)
    torch.testing.assert_close(loss_custom, ref.linear_cross_entropy(h, w, torch.where(t < 0, 5, t), 5))


def test_linear_cross_entropy_under_autocast() -> None:
    """Under bf16 autocast with fp32 hidden and weight, the fused loss runs its matmuls in bf16 like the
    reference's autocast matmul, and returns fp32 gradients to the fp32 leaves."""
    h, w, t = _lce_inputs(9, 16, 37, torch.float32)
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        loss = lce_mod.linear_cross_entropy(h, w, t, chunk_rows=4)
        loss_ref = ref.linear_cross_entropy(h, w, t)
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-6)
    gh, gw = _grads(loss, (h, w), torch.tensor(1.0, device=DEVICE))
    gh_ref, gw_ref = _grads(loss_ref, (h, w), torch.tensor(1.0, device=DEVICE))
    _close_scaled(gh, gh_ref, MATMUL_REL[torch.bfloat16], "d hidden")
    _close_scaled(gw, gw_ref, MATMUL_REL[torch.bfloat16], "d weight")


def test_linear_cross_entropy_refuses_a_second_backward() -> None:
    """The fused loss hands out gradients computed in its forward and scales them in place, so a second
    backward through the same graph must raise, never return silently rescaled gradients."""
    h, w, t = _lce_inputs(5, 8, 13, torch.float32)
    loss = lce_mod.linear_cross_entropy(h, w, t, chunk_rows=2)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        loss.backward()


# ------------------------------------------------------------------------------------- modules, dispatch


def test_modules_match_reference() -> None:
    """The nn.Module wrappers compute the reference ops (RMSNorm, SwiGLU MLP, rotary, linear+CE)."""
    x = torch.randn(2, 5, 24, device=DEVICE)
    norm = rms_mod.FusedRMSNorm(24, eps=1e-5).to(DEVICE)
    _close(norm(x), ref.rms_norm(x, norm.weight, 1e-5), "FusedRMSNorm")
    mlp = swiglu_mod.FusedSwiGLUMLP(24, 40).to(DEVICE)
    want = mlp.down_proj(ref.swiglu(mlp.gate_proj(x), mlp.up_proj(x)))
    _close(mlp(x), want, "FusedSwiGLUMLP")
    rope = rope_mod.FusedRotary(8, max_seq_len=16).to(DEVICE)
    xr = x.reshape(2, 5, 3, 8)
    _close(rope(xr), ref.apply_rotary(xr, *ref.rotary_tables(16, 8, device=DEVICE)), "FusedRotary")
    w = torch.randn(29, 24, device=DEVICE)
    t = torch.randint(0, 29, (2, 5), device=DEVICE)
    loss = lce_mod.FusedLinearCrossEntropy(chunk_rows=4)(x, w, t)
    torch.testing.assert_close(loss, ref.linear_cross_entropy(x, w, t), rtol=1e-5, atol=1e-6)


def test_dispatch_follows_device_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Auto mode uses the reference on CPU tensors; MIXLAB_KERNELS=triton forces the fused kernels (here
    under the interpreter), =reference forces the reference; anything else is rejected."""
    x = torch.randn(3, 16)
    monkeypatch.delenv("MIXLAB_KERNELS", raising=False)
    assert kernels.backend(x) == "reference"
    monkeypatch.setenv("MIXLAB_KERNELS", "reference")
    assert kernels.backend(x) == "reference"
    monkeypatch.setenv("MIXLAB_KERNELS", "triton")
    assert kernels.backend(x) == "triton"
    calls: list[str] = []
    real = ops_mod.rms_norm
    monkeypatch.setattr(ops_mod, "rms_norm", lambda *a: calls.append("fused") or real(*a))
    w = torch.ones(16)
    _close(kernels.rms_norm(x, w), ref.rms_norm(x, w), "dispatched rms_norm")
    assert calls == ["fused"]
    g, u = torch.randn(4, 9), torch.randn(4, 9)
    _close(kernels.swiglu(g, u), ref.swiglu(g, u), "dispatched swiglu")
    cos, sin = ref.rotary_tables(3, 8)
    xr = torch.randn(1, 3, 2, 8)
    _close(kernels.apply_rotary(xr, cos, sin), ref.apply_rotary(xr, cos, sin), "dispatched rotary")
    h, lm, t = torch.randn(6, 11), torch.randn(29, 11), torch.randint(0, 29, (6,))
    torch.testing.assert_close(
        kernels.linear_cross_entropy(h, lm, t, chunk_rows=4), ref.linear_cross_entropy(h, lm, t), rtol=1e-5, atol=1e-6
    )
    assert callable(kernels.swiglu) and callable(kernels.linear_cross_entropy), "kernel modules shadowed the API"
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        kernels.backend(x)
    monkeypatch.setenv("MIXLAB_KERNELS", "fast")
    with pytest.raises(ValueError, match="MIXLAB_KERNELS"):
        kernels.backend(x)


def test_package_imports_without_triton_or_datatrove() -> None:
    """`import mixlab.kernels` works with triton unimportable, imports neither triton nor datatrove, and
    serves every op from the reference, even on the default auto mode."""
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, mixlab.kernels as k\n"
        "assert not k.triton_available()\n"
        "assert 'datatrove' not in sys.modules\n"
        "x = torch.randn(2, 8); k.rms_norm(x, torch.ones(8)); k.swiglu(x, x)\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "MIXLAB_KERNELS": "auto"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


_AOT_COMPILE = """
import importlib, sys
import triton
try:
    importlib.import_module("triton.backends.nvidia.compiler")
except ImportError:
    sys.exit(77)
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
mods = {m: importlib.import_module("mixlab.kernels." + m) for m in ("fused_rmsnorm", "fused_swiglu", "fused_rotary", "fused_linear_ce")}
i32 = "i32"
for act, w in (("*bf16", "*fp32"), ("*fp32", "*fp32")):
    jobs = [
        ("fused_rmsnorm", "_rms_norm_fwd_kernel", [act, act, w, "*fp32", i32, i32, i32, "fp32"], {"BLOCK": 4096}, 8),
        ("fused_rmsnorm", "_rms_norm_bwd_kernel", [act, act, w, "*fp32", act, "*fp32"] + [i32] * 6, {"BLOCK": 4096}, 8),
        ("fused_swiglu", "_swiglu_fwd_kernel", [act, act, act, i32], {"BLOCK": 1024}, 4),
        ("fused_swiglu", "_swiglu_bwd_kernel", [act] * 5 + [i32], {"BLOCK": 1024}, 4),
        ("fused_rotary", "_rotary_kernel", [act, act, "*fp32", "*fp32"] + [i32] * 11,
         {"BACKWARD": True, "BLOCK_H": 32, "BLOCK_D": 64}, 8),
        ("fused_linear_ce", "_ce_loss_grad_kernel", [act, i32, "*i64", "*fp32", "*fp32", i32, i32],
         {"COMPUTE_GRAD": True, "BLOCK": 16384}, 16),
        ("fused_linear_ce", "_ce_loss_grad_kernel", [act, i32, "*i64", "*fp32", "*fp32", i32, i32],
         {"COMPUTE_GRAD": False, "BLOCK": 16384}, 16),
    ]
    for mod, name, types, consts, warps in jobs:
        fn = getattr(mods[mod], name)
        sig = dict(zip(fn.arg_names, types + ["constexpr"] * len(consts)))
        src = ASTSource(fn=fn, signature=sig, constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()})
        k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})
        assert "cubin" in k.asm, name
print("ok")
"""


def test_kernels_compile_for_hopper_without_a_gpu(tmp_path: Path) -> None:
    """Every kernel compiles through Triton's real compiler (TTIR -> PTX -> sm_90 cubin, no GPU needed), in
    bf16 and fp32, with the launchers' block sizes: the interpreter alone accepts code that the compiler
    rejects (e.g. loop-carried type changes), which would otherwise surface only on a GPU."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), TRITON_CACHE_DIR=str(tmp_path))
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    out = subprocess.run([sys.executable, "-c", _AOT_COMPILE], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode == 77:
        pytest.skip("this Triton build has no CUDA backend")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


# ----------------------------------------------------------------------------------- full size, GPU only


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_full_size_ops_match_reference_on_gpu(dtype: torch.dtype) -> None:
    """Llama-7B-size rows (hidden 4096, MLP 11008, 32 heads x 128) through the compiled kernels match the
    reference in output and gradients."""
    x = _leaf(torch.randn(4096, 4096, dtype=dtype, device="cuda"))
    w = _leaf(1 + 0.3 * torch.randn(4096, dtype=dtype, device="cuda"))
    dy = torch.randn_like(x)
    y, y_ref = rms_mod.rms_norm(x, w), ref.rms_norm(x, w)
    _close(y, y_ref, "rms y")
    dx, dw = _grads(y, (x, w), dy)
    dx_ref, dw_ref = _grads(y_ref, (x, w), dy)
    _close(dx, dx_ref, "rms dx")
    _close_scaled(dw, dw_ref, MATMUL_REL[dtype], "rms dweight")  # sum over 4096 rows: order-dependent
    gate = _leaf(torch.randn(8192, 11008, dtype=dtype, device="cuda"))
    up = _leaf(torch.randn_like(gate))
    dout = torch.randn_like(gate)
    out, out_ref = swiglu_mod.swiglu(gate, up), ref.swiglu(gate, up)
    _close(out, out_ref, "swiglu")
    pairs = zip(_grads(out, (gate, up), dout), _grads(out_ref, (gate, up), dout), ("dgate", "dup"), strict=True)
    for a, b, name in pairs:
        _close(a, b, name)
    q = _leaf(torch.randn(4, 2048, 32, 128, dtype=dtype, device="cuda"))
    cos, sin = ref.rotary_tables(2048, 128, device="cuda")
    dq = torch.randn_like(q)
    yq, yq_ref = rope_mod.apply_rotary(q, cos, sin), ref.apply_rotary(q, cos, sin)
    _close(yq, yq_ref, "rotary")
    _close(_grads(yq, (q,), dq)[0], _grads(yq_ref, (q,), dq)[0], "rotary dx")


@pytest.mark.gpu
@needs_cuda
def test_full_size_linear_cross_entropy_on_gpu() -> None:
    """bf16, 16384 tokens, hidden 2048, vocab 100k: fused loss and gradients match the reference, and the
    fused forward+backward peak memory (beyond the inputs) is at most a quarter of the unfused one."""
    n, hidden, vocab = 16384, 2048, 100_000
    h, w, t = _lce_inputs(n, hidden, vocab, torch.bfloat16, ignore_every=7)

    def run(fn):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        loss = fn(h, w, t)
        grads = _grads(loss, (h, w), torch.tensor(1.0, device="cuda"))
        torch.cuda.synchronize()
        return loss, grads, torch.cuda.max_memory_allocated() - base

    loss, (gh, gw), peak = run(lce_mod.linear_cross_entropy)
    loss_ref, (gh_ref, gw_ref), peak_ref = run(ref.linear_cross_entropy)
    # cuBLAS may tile a chunk's GEMM differently from the full one, so single bf16 logits can differ by one
    # ulp (2^-8 relative); averaged over 16k rows the loss (~ln V = 11.5) moves far less than rtol 1e-3.
    torch.testing.assert_close(loss, loss_ref, rtol=1e-3, atol=1e-3)
    _close_scaled(gh, gh_ref, MATMUL_REL[torch.bfloat16], "d hidden")
    _close_scaled(gw, gw_ref, MATMUL_REL[torch.bfloat16], "d weight")
    assert peak <= 0.25 * peak_ref, f"fused peak {peak / 2**30:.2f} GiB vs unfused {peak_ref / 2**30:.2f} GiB"
