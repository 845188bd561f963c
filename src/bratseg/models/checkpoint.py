"""Checkpoints: written atomically, read with ``torch.load(..., weights_only=True)``.

- ``last.pt``: the full training state after an epoch (model, optimiser, scheduler, history), to resume.
- ``best.pt``: the model of the best validation epoch plus its metadata (architecture, preprocessing and
  inference parameters), everything ``predict`` needs. It holds nothing run-specific (no time, no run id),
  so the same parameters give a byte-identical file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from bratseg.io import atomic_path


def save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    """Serialise ``state`` (tensors, numbers, strings, lists, dicts only) atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely: only tensors and plain containers are accepted (no pickled code)."""
    state: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    return state
