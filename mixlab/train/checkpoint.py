"""Checkpoints: atomic writes, safe loads (``weights_only=True``), RNG capture, latest-step lookup.

Contract:
- ``save_checkpoint(path, model, optimizer, step, phase, data_state, rng_state, extra)`` writes a dict of
  tensors and primitive containers only (so ``torch.load(weights_only=True)`` reads it; nothing is unpickled):
  ``{"format", "model", "optimizer", "step", "phase", "data_state", "rng", "extra"}``. The write is atomic: a
  hidden temporary file in the same folder is written, fsynced and ``os.replace``d over ``path`` (then the
  folder is fsynced), so a killed process leaves either the old file or the new one, never a torn one.
- ``model`` may be wrapped (DDP, ``torch.compile``): the state dict of the underlying module is stored. ``model``
  and ``optimizer`` may also be state dicts already (an FSDP run passes the full, unsharded ones that
  :func:`mixlab.train.fsdp.full_state` gathered), so every checkpoint has one layout whatever the parallelism.
- ``capture_rng_state()`` / ``restore_rng_state(d)`` cover Python ``random``, NumPy's global generator, torch CPU
  and (when present) every CUDA device, as tensors.
- ``latest_checkpoint(dir)`` returns the ``step_XXXXXX.pt`` with the highest step, or None; temporary files of
  an interrupted write are never returned.
- Loading a trained model (what eval and HF export consume): ``resolve_checkpoint(path)`` is ``path`` when it is
  a file, else ``<phase dir>/final.pt``, else the phase's latest ``step_XXXXXX.pt``.
  ``load_checkpoint_and_config(path, model_config=None)`` returns the checkpoint dict and its
  :class:`~mixlab.train.model.ModelConfig`, read from ``extra.result.model_config`` (written with every
  ``final.pt``; step checkpoints do not record it, so pass ``model_config`` for those). ``load_model(path,
  device)`` returns the :class:`~mixlab.train.model.GPT` in eval mode on ``device`` and its config.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from mixlab.train.model import GPT, ModelConfig

FORMAT = 1
STEP_RE = re.compile(r"^step_(\d+)\.pt$")


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def step_path(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / f"step_{step:06d}.pt"


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG as tensors and ints (loadable with ``weights_only=True``)."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_version": py_version,
        "python_gauss": py_gauss,
        "numpy": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_meta": [np_kind, int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate((state["python_version"], tuple(state["python"].tolist()), state["python_gauss"]))
    kind, pos, has_gauss, gauss = state["numpy_meta"]
    np.random.set_state((kind, state["numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def digest_path(path: Path) -> Path:
    """The sidecar ``<name>.xxh64`` that records a checkpoint's size and digest."""
    return path.with_name(path.name + ".xxh64")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a hidden temporary file beside ``path``, fsync, then rename over ``path``; the file's size
    and xxh64 go to ``<path>.xxh64`` (written first: a crash between the two renames leaves a mismatch, which
    reads as damaged and is rebuilt, never as valid)."""
    from mixlab.workspace import digest, write_json_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        write_json_atomic(digest_path(path), {"bytes": tmp.stat().st_size, "xxh64": digest(tmp)})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def verify_checkpoint(path: Path) -> None:
    """Raise :class:`~mixlab.errors.CorruptOutputError` when ``path`` differs from its recorded digest (a file
    without a sidecar, written by another tool or an older mixlab, is accepted as is)."""
    import json

    from mixlab.errors import CorruptOutputError
    from mixlab.workspace import verify

    side = digest_path(Path(path))
    if not side.exists():
        return
    try:
        recorded = json.loads(side.read_text())
    except ValueError:
        recorded = {"bytes": -1, "xxh64": ""}
    problems = verify(Path(path).parent, {Path(path).name: recorded})
    if problems:
        raise CorruptOutputError(f"checkpoint damaged: {problems[0]}; delete it (a phase folder retrains or resumes "
                                 f"from its latest step checkpoint when re-run)")


def save_checkpoint(
    path: Path | str,
    model: nn.Module | Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | Mapping[str, Any] | None,
    step: int,
    phase: str,
    data_state: dict[str, Any],
    rng_state: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (see module contract); returns its path."""
    payload = {
        "format": FORMAT,
        "model": unwrap(model).state_dict() if isinstance(model, nn.Module) else dict(model),
        "optimizer": (optimizer.state_dict() if isinstance(optimizer, torch.optim.Optimizer)
                      else dict(optimizer) if optimizer is not None else None),
        "step": int(step),
        "phase": phase,
        "data_state": dict(data_state),
        "rng": rng_state,
        "extra": dict(extra or {}),
    }
    atomic_torch_save(payload, Path(path))
    return Path(path)


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict:
    """Read a checkpoint with ``weights_only=True``; ``mmap=True`` maps tensors lazily (cheap metadata reads)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    verify_checkpoint(path)
    ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a mixlab checkpoint (format {FORMAT}); was it written by another tool?")
    return ckpt


def latest_checkpoint(folder: Path | str) -> Path | None:
    """The ``step_XXXXXX.pt`` in ``folder`` with the highest step, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STEP_RE.match(p.name))]
    return max(steps)[1] if steps else None


def remove_step_checkpoints(folder: Path | str, keep: Path | None = None) -> None:
    """Delete every ``step_XXXXXX.pt`` in ``folder`` except ``keep``."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if STEP_RE.match(p.name) and (keep is None or p.resolve() != Path(keep).resolve()):
            p.unlink(missing_ok=True)
            digest_path(p).unlink(missing_ok=True)


def checkpoint_key(path: Path | str) -> str:
    """The train key a checkpoint was written under (``extra.key``); for a checkpoint without one (another
    tool's, or hand-made), the xxh64 of its bytes, so a different file is a different key."""
    import xxhash

    try:
        key = (load_checkpoint(path, mmap=True).get("extra") or {}).get("key")
    except ValueError:
        key = None
    if key:
        return str(key)
    h = xxhash.xxh64()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return f"file-{h.hexdigest()}"


def resolve_checkpoint(path: Path | str) -> Path:
    """``path`` itself when it is a file, else ``path/final.pt``, else the latest step checkpoint in ``path``."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / "final.pt").is_file():
        return path / "final.pt"
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"no checkpoint at {path} (expected a .pt file or a phase folder with final.pt)")
    return latest


def model_config_of(ckpt: dict[str, Any], path: Path | str = "checkpoint") -> ModelConfig:
    """The :class:`ModelConfig` recorded in a ``final.pt`` (``extra.result.model_config``)."""
    cfg = ((ckpt.get("extra") or {}).get("result") or {}).get("model_config")
    if not cfg:
        raise ValueError(f"{path} records no model configuration (only final.pt does); pass model_config=")
    return ModelConfig(**cfg)


def load_checkpoint_and_config(
    path: Path | str, model_config: ModelConfig | dict | None = None
) -> tuple[dict, ModelConfig]:
    """(checkpoint dict, model config) of a checkpoint file or phase folder; ``model_config`` overrides."""
    file = resolve_checkpoint(path)
    ckpt = load_checkpoint(file, map_location="cpu")
    if model_config is None:
        return ckpt, model_config_of(ckpt, file)
    return ckpt, model_config if isinstance(model_config, ModelConfig) else ModelConfig(**model_config)


def load_model(
    path: Path | str, device: str | torch.device = "cpu", model_config: ModelConfig | dict | None = None
) -> tuple[GPT, ModelConfig]:
    """(model in eval mode on ``device``, its config) from a checkpoint file or phase folder."""
    ckpt, cfg = load_checkpoint_and_config(path, model_config)
    model = GPT(cfg)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg
