"""Shared pytest setup.

Triton kernels run on the CPU under Triton's interpreter, which must be switched on through
``TRITON_INTERPRET=1`` before ``triton`` is first imported (i.e. before any ``@triton.jit`` function is
defined). This file is imported before any test module, so it sets the variable here, and only where no
CUDA GPU is present: on a GPU machine the kernels are compiled for real. ``setdefault`` lets a caller
override it (``TRITON_INTERPRET=0``).
"""

from __future__ import annotations

import os

import pytest


def _cuda_available() -> bool:
    try:
        import torch  # importing torch does not import triton
    except ImportError:
        return False
    return torch.cuda.is_available()


if not _cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``engines`` tests start real Slurm/Ray daemons: skipped unless ``-m engines`` or ``MIXLAB_ENGINES=1``."""
    if os.environ.get("MIXLAB_ENGINES") == "1" or "engines" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="starts real Slurm/Ray: run with -m engines or MIXLAB_ENGINES=1")
    for item in items:
        if "engines" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_torch_thread():
    """Tiny models on a shared 2-core machine run far faster with one torch thread (see mixlab.eval.lm)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
