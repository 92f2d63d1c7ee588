"""Every seed and RNG state of a run, in one place: reproducibility ("resume bit for bit") is reviewable here.

How a run's randomness is laid out (one run seed, everything else derived from it):
- ``seed_everything(run.seed)``: the global generators (torch, python ``random``, numpy), set once at setup.
- ``derived_seed(run.seed, 100, i)``: env ``i``'s seed; each env then derives independent streams from its
  own seed (data order and augmentation, seed-module initialisation, the host of each episode).
- ``derived_seed(run.seed, 200)``: the policy's seed (its initialisation and its own sampling generator).
- ``forked_rng(seed, device)``: module initialisation from a given stream without touching the global
  generators, so building one env's host never shifts another's.
- ``capture_rng_state`` / ``restore_rng_state``: the global generators as checkpoint-safe values (tensors
  and plain containers, loadable with ``weights_only=True``).
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Mapping

import numpy as np
import torch

from esper_core.run.checkpoint import CheckpointError


class RngStateError(CheckpointError):
    """Saved RNG states that this machine cannot restore (another number of CUDA devices)."""


def seed_everything(seed: int) -> None:
    """Global generators (policy initialisation and anything else that draws from them)."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers (run seed, env index, episode...): independent streams. Parts are not
    length-prefixed (``(a, b)`` and ``(a, b, 0)`` are one stream), so each stream uses a fixed number of parts."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def forked_rng(seed: int | None = None, device: torch.device | None = None) -> contextlib.AbstractContextManager:
    """Run a block on forked global generators (CPU, plus ``device`` if it is a CUDA device), seeded with
    ``seed`` if given; the global streams are exactly as before once the block ends."""
    devices = [device.index or 0] if device is not None and device.type == "cuda" else []
    stack = contextlib.ExitStack()
    stack.enter_context(torch.random.fork_rng(devices=devices))
    if seed is not None:
        torch.manual_seed(seed)
    return stack


def capture_rng_state() -> dict[str, Any]:
    """Global RNG states (torch CPU and every CUDA device, python ``random``, numpy) as safe values."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "torch_cpu": torch.get_rng_state(),
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch_cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch_cpu"])
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    cuda_states = list(state.get("torch_cuda", []))
    if cuda_states and torch.cuda.is_available():
        if len(cuda_states) != torch.cuda.device_count():
            raise RngStateError(
                f"checkpoint holds RNG states for {len(cuda_states)} CUDA device(s); this machine has "
                f"{torch.cuda.device_count()}"
            )
        torch.cuda.set_rng_state_all(cuda_states)
