"""The fused kernels as registered custom ops: ``torch.library.opcheck`` on each op, and ``torch.compile``
of the whole model with the kernels in its graph as opaque nodes.

Without a GPU the kernels run under Triton's interpreter (``tests/conftest.py`` sets ``TRITON_INTERPRET=1``
before Triton is imported), on small shapes. Tolerances are those of ``tests/test_kernels.py``: compiled
and eager runs call the same kernels on the same inputs, and only the torch code around them (matmuls,
attention) may be reordered by the compiler, so fp32 results agree to rtol = atol = 1e-5.
"""

from __future__ import annotations

import pytest
import torch
from torch.library import opcheck

import mixlab.kernels  # noqa: F401  (registers the torch.ops.mixlab ops)
from mixlab.kernels import reference as ref
from mixlab.train.model import GPT, ModelConfig

pytest.importorskip("triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
OPS = torch.ops.mixlab
FP32_TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(1234)


def _leaf(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype, device=DEVICE).requires_grad_(True)


def _opcheck(op, args: tuple) -> None:
    results = opcheck(op, args)
    assert set(results.values()) == {"SUCCESS"}, results


# ---------------------------------------------------------------------------------------------- opcheck


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_opcheck_rms_norm(dtype: torch.dtype) -> None:
    """mixlab::rms_norm and its backward op pass opcheck (schema, autograd registration, fake tensor
    metadata equal to the real outputs', AOT dispatch with dynamic shapes), for x in fp32 and bf16 with
    an fp32 weight and for a row-strided view of x."""
    x = _leaf(3, 5, 17, dtype=dtype)
    w = _leaf(17)
    _opcheck(OPS.rms_norm.default, (x, w, 1e-6))
    strided = torch.randn(9, 40, dtype=dtype, device=DEVICE)[:, 3:20].requires_grad_(True)
    _opcheck(OPS.rms_norm.default, (strided, w, 1e-5))
    rstd = torch.rand(15, device=DEVICE) + 0.5
    dy = torch.randn(3, 5, 17, dtype=dtype, device=DEVICE)
    _opcheck(OPS.rms_norm_backward.default, (dy, x.detach(), w.detach(), rstd))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_opcheck_swiglu(dtype: torch.dtype) -> None:
    """mixlab::swiglu and mixlab::swiglu_backward pass opcheck, also on non-contiguous halves of a fused
    projection."""
    gate, up = _leaf(4, 33, dtype=dtype), _leaf(4, 33, dtype=dtype)
    _opcheck(OPS.swiglu.default, (gate, up))
    proj = _leaf(5, 2 * 7, dtype=dtype)
    _opcheck(OPS.swiglu.default, tuple(proj.chunk(2, dim=-1)))
    dout = torch.randn(4, 33, dtype=dtype, device=DEVICE)
    _opcheck(OPS.swiglu_backward.default, (dout, gate.detach(), up.detach()))


@pytest.mark.parametrize("inverse", [False, True])
def test_opcheck_apply_rotary(inverse: bool) -> None:
    """mixlab::apply_rotary (its backward is itself with ``inverse`` flipped) passes opcheck, with tables
    longer than the sequence and with x a strided view of a fused qkv tensor."""
    cos, sin = ref.rotary_tables(9, 10, device=DEVICE)
    _opcheck(OPS.apply_rotary.default, (_leaf(2, 7, 3, 10), cos, sin, inverse))
    qkv = _leaf(2, 7, 3, 3, 10, dtype=torch.bfloat16)
    _opcheck(OPS.apply_rotary.default, (qkv[:, :, 0], cos, sin, inverse))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("chunk,need", [(3, (True, True)), (None, (False, True)), (2, (True, False))], ids=str)
def test_opcheck_linear_cross_entropy(dtype: torch.dtype, chunk: int | None, need: tuple[bool, bool]) -> None:
    """mixlab::linear_cross_entropy (loss plus the gradients it computes in its forward; a gradient not
    asked for is an empty tensor) passes opcheck for several chunkings, and both of its backward ops
    (functional, used when traced; in place, used eagerly) pass too."""
    h, w = _leaf(7, 16, dtype=dtype), _leaf(37, 16, dtype=dtype)
    t = torch.randint(0, 37, (7,), device=DEVICE)
    t[1::3] = -100
    _opcheck(OPS.linear_cross_entropy.default, (h, w, t, -100, chunk, *need))
    g = torch.tensor(2.5, device=DEVICE)
    gh = torch.randn(7, 16, dtype=dtype, device=DEVICE)
    gw = torch.randn(37, 16, dtype=dtype, device=DEVICE)
    _opcheck(OPS.linear_cross_entropy_backward.default, (g, gh, gw))
    _opcheck(OPS.linear_cross_entropy_backward_.default, (g, gh, gw))


# ------------------------------------------------------------------------------------- torch.compile


def _tiny_gpt() -> GPT:
    # GQA (4 query heads, 2 kv heads), 2 layers: every fused op appears, twice or more.
    cfg = ModelConfig(vocab_size=64, seq_len=16, n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, ffn_hidden=48)
    return GPT(cfg).to(DEVICE)


def _loss_and_grads(model: torch.nn.Module, run, idx: torch.Tensor, tgt: torch.Tensor):
    model.zero_grad(set_to_none=True)
    loss = run(idx, tgt)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}



def _check_compiled_matches_eager(backend) -> None:
    model = _tiny_gpt()
    idx = torch.randint(0, 64, (2, 16), device=DEVICE)
    tgt = torch.randint(0, 64, (2, 16), device=DEVICE)
    tgt[0, :3] = -100
    loss, grads = _loss_and_grads(model, model, idx, tgt)
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    loss_c, grads_c = _loss_and_grads(model, compiled, idx, tgt)
    torch.testing.assert_close(loss_c, loss, **FP32_TOL)
    assert grads_c.keys() == grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(grads_c[name], g, **FP32_TOL, msg=lambda m, name=name: f"d {name}: {m}")


@pytest.fixture
def _fresh_dynamo(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MIXLAB_KERNELS", "triton")
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_gpt_has_fused_ops_as_opaque_nodes(_fresh_dynamo, one_torch_thread) -> None:
    """torch.compile(GPT, fullgraph=True) with MIXLAB_KERNELS=triton traces the whole model into one graph
    whose forward holds each fused op as one node (never their launchers) and whose backward holds their
    backward ops; the compiled loss and every parameter gradient equal eager's."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    seen: dict[str, set[str]] = {}

    def record(name: str):
        def compiler(gm: torch.fx.GraphModule, example_inputs):
            seen[name] = {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}
            return make_boxed_func(gm.forward)

        return compiler

    _check_compiled_matches_eager(aot_autograd(fw_compiler=record("fw"), bw_compiler=record("bw")))
    fw = {t for t in seen["fw"] if t.startswith("mixlab.")}
    bw = {t for t in seen["bw"] if t.startswith("mixlab.")}
    assert fw == {"mixlab.rms_norm.default", "mixlab.swiglu.default", "mixlab.apply_rotary.default",
                  "mixlab.linear_cross_entropy.default"}, seen["fw"]
    assert bw == {"mixlab.rms_norm_backward.default", "mixlab.swiglu_backward.default",
                  "mixlab.apply_rotary.default", "mixlab.linear_cross_entropy_backward.default"}, seen["bw"]


@pytest.mark.slow
def test_compiled_gpt_with_inductor_matches_eager(_fresh_dynamo, one_torch_thread) -> None:
    """The default compiler (inductor, what ``train.compile: true`` uses) builds the model with the fused
    ops as extern calls, with one graph (fullgraph), and gives eager's loss and gradients."""
    _check_compiled_matches_eager("inductor")
