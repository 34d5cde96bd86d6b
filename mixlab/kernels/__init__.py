"""Fused ops with one dispatching entry point each.

``rms_norm``, ``swiglu``, ``apply_rotary`` and ``linear_cross_entropy`` run the fused Triton kernels
(``fused_rmsnorm.py``, ``fused_swiglu.py``, ``fused_rotary.py``, ``fused_linear_ce.py``) when every tensor argument is
on CUDA and Triton imports; everywhere else they run the pure-torch reference in
:mod:`mixlab.kernels.reference`, which is also their specification. ``rotary_tables`` always comes from
the reference.

``MIXLAB_KERNELS`` (read at every call) overrides the choice:
- ``reference``: always the reference;
- ``triton``: always Triton, also on CPU tensors, which works only under the Triton interpreter
  (``TRITON_INTERPRET=1`` set before Triton is first imported); an error if Triton is missing;
- unset / ``auto``: the rule above.

Importing this package imports neither Triton nor datatrove: the kernel modules load on first use.
The Triton path goes through the custom ops registered in :mod:`mixlab.kernels.ops` (``torch.ops.mixlab.*``),
so ``torch.compile(model, fullgraph=True)`` keeps each fused op as one opaque node of its graph (forward
and backward). Under ``torch.compile`` the choice of backend is made when a function is traced: changing
``MIXLAB_KERNELS`` afterwards affects a compiled function only once it recompiles.

The kernel modules are named ``fused_*`` so that none shadows the dispatching function of its op.
"""

from __future__ import annotations

import os

import torch

from mixlab.kernels import ops, reference
from mixlab.kernels.reference import rotary_tables

__all__ = ["apply_rotary", "backend", "linear_cross_entropy", "rms_norm", "rotary_tables", "swiglu"]

_MODES = ("auto", "reference", "triton")


_TRITON_OK: list[bool] = []  # cache of triton_available()


@torch.compiler.assume_constant_result  # torch.compile calls it once at trace time instead of tracing an import
def triton_available() -> bool:
    """True when Triton imports (it is in the ``gpu`` extra, and in ``dev`` for interpreter tests)."""
    if not _TRITON_OK:
        try:
            import triton  # noqa: F401
            import triton.language  # noqa: F401
        except Exception:  # ImportError, or a broken install raising at import time
            _TRITON_OK.append(False)
        else:
            _TRITON_OK.append(True)
    return _TRITON_OK[0]


def backend(*tensors: torch.Tensor) -> str:
    """``"triton"`` or ``"reference"`` for an op on these tensors, following ``MIXLAB_KERNELS``."""
    mode = os.environ.get("MIXLAB_KERNELS", "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise ValueError(f"MIXLAB_KERNELS must be one of {_MODES}, got {mode!r}")
    if mode == "reference":
        return "reference"
    if mode == "triton":
        if not triton_available():
            raise ImportError("MIXLAB_KERNELS=triton but triton cannot be imported (pip install triton)")
        if not all(t.is_cuda for t in tensors) and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError(
                "MIXLAB_KERNELS=triton on CPU tensors needs Triton's interpreter: set TRITON_INTERPRET=1 "
                "before triton is first imported"
            )
        return "triton"
    if all(t.is_cuda for t in tensors) and triton_available():
        return "triton"
    return "reference"


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``x * rsqrt(mean(x**2, -1) + eps) * weight`` in fp32, returned in x.dtype."""
    if backend(x, weight) == "triton":
        return ops.rms_norm(x, weight, eps)
    return reference.rms_norm(x, weight, eps)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` in fp32, returned in gate.dtype."""
    if backend(gate, up) == "triton":
        return ops.swiglu(gate, up)
    return reference.swiglu(gate, up)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half rotary embedding of x [batch, seq, heads, head_dim] by cos/sin [seq, head_dim // 2].

    The fused kernel passes no gradient to cos/sin, so tables that require grad take the reference.
    """
    if not (cos.requires_grad or sin.requires_grad) and backend(x, cos, sin) == "triton":
        return ops.apply_rotary(x, cos, sin)
    return reference.apply_rotary(x, cos, sin)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -100,
    *,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` over targets != ignore_index (fp32 loss).

    ``chunk_rows`` bounds the fused path's logits to ``chunk_rows x vocab`` (default: see
    ``fused_linear_ce.default_chunk_rows``); the reference ignores it.
    """
    if backend(hidden, weight, targets) == "triton":
        return ops.linear_cross_entropy(hidden, weight, targets, ignore_index, chunk_rows=chunk_rows)
    return reference.linear_cross_entropy(hidden, weight, targets, ignore_index)
