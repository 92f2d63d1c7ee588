"""Checks a host against the ``Host`` contract and says everything that is wrong at once.

``isinstance(host, Host)`` cannot do this job: from Python 3.12 runtime protocols look members up
statically and miss an ``nn.Module``'s submodules (``slots``), and on any version it checks names only,
not that ``slot_points()`` matches what the forward pass really feeds each slot. The core runs these
checks when it builds a host, and plugin authors can call them in their own tests.
"""

from __future__ import annotations

import torch
from torch import nn

from esper_core.records import SlotPoint, TaskInfo


class HostContractError(ValueError):
    """A host that breaks the contract; ``problems`` lists every violation found."""

    def __init__(self, host: str, problems: list[str]) -> None:
        self.host, self.problems = host, problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"host {host!r} breaks the host contract (see docs/plugins.md, Hosts):\n{listed}")


def structural_problems(host: object) -> list[str]:
    """Members and slots, without running the host."""
    if not isinstance(host, nn.Module):
        return [f"a host must be a torch.nn.Module; got {type(host).__name__}"]
    problems = []
    topology = getattr(host, "topology", None)
    if not isinstance(topology, str) or not topology:
        problems.append(f"`topology` must be a non-empty str (e.g. 'cnn'); got {topology!r}")
    slots = getattr(host, "slots", None)
    if not isinstance(slots, nn.ModuleDict):
        problems.append(f"`slots` must be an nn.ModuleDict of nn.Identity, one per slot point; got {type(slots).__name__}")
        slots = None
    if not callable(getattr(host, "slot_points", None)):
        return problems + ["`slot_points()` is missing: it returns a tuple of SlotPoint(name, channels, spatial)"]
    points = tuple(host.slot_points())
    bad = [p for p in points if not isinstance(p, SlotPoint)]
    if bad:
        return problems + [f"`slot_points()` must return SlotPoint records; got {type(bad[0]).__name__}"]
    names = [p.name for p in points]
    if not points:
        problems.append("`slot_points()` returned no slot points: a host needs at least one place to grow")
    if len(set(names)) != len(names):
        problems.append(f"slot point names repeat: {names}")
    problems += [
        f"slot point {p.name!r} has channels={p.channels}, spatial={p.spatial}; both must be positive ints"
        for p in points
        if not (isinstance(p.channels, int) and isinstance(p.spatial, int) and p.channels > 0 and p.spatial > 0)
    ]
    if slots is not None:
        missing = [n for n in names if n not in slots]
        extra = [n for n in slots if n not in names]
        if missing:
            problems.append(f"slot points {missing} have no entry in `slots` (add nn.Identity() under each name)")
        if extra:
            problems.append(f"`slots` entries {extra} are not declared by `slot_points()`")
        not_identity = [n for n, m in slots.items() if n in names and not isinstance(m, nn.Identity)]
        if not_identity:
            problems.append(f"`slots` entries {not_identity} must start as nn.Identity (the core installs the seeds)")
    return problems


def forward_problems(host: nn.Module, info: TaskInfo, batch: int = 2) -> list[str]:
    """One forward pass (eval mode, no grad) on a batch shaped like the task's images: the output shape,
    and that every slot is called exactly once with the features ``slot_points()`` declares."""
    calls: dict[str, list[tuple[int, ...]]] = {name: [] for name in host.slots}

    def record(name: str):  # noqa: ANN202 - a forward hook
        return lambda module, args, output: calls[name].append(tuple(args[0].shape))

    handles = [module.register_forward_hook(record(name)) for name, module in host.slots.items()]
    was_training = host.training
    problems = []
    try:
        host.eval()
        device = next((p.device for p in host.parameters()), torch.device("cpu"))
        x = example_input(info, batch).to(device)
        with torch.no_grad():
            out = host(x)
    except Exception as error:  # noqa: BLE001 - reported, not hidden: the message carries the exception
        return [f"forward on a {list(example_shape(info, batch))} batch raised {type(error).__name__}: {error}"]
    finally:
        for handle in handles:
            handle.remove()
        host.train(was_training)
    logits = (batch, info.num_classes) if info.sequence_length is None else (batch, info.num_classes, info.sequence_length)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != logits:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        wanted = f"({batch}, num_classes={info.num_classes})" if info.sequence_length is None else (
            f"({batch}, num_classes={info.num_classes}, sequence_length={info.sequence_length})"
        )
        problems.append(f"forward must return logits of shape {wanted}; got {shape}")
    for point in host.slot_points():
        seen = calls.get(point.name, [])
        expected = (batch, *point.feature_shape)
        if len(seen) != 1:
            problems.append(f"forward must pass features through slots[{point.name!r}] exactly once; it did {len(seen)} time(s)")
        elif seen[0] != expected:
            problems.append(
                f"slot {point.name!r} declares [B, {', '.join(map(str, point.feature_shape))}] but forward "
                f"feeds it {list(seen[0])}"
            )
    return problems


def example_shape(info: TaskInfo, batch: int) -> tuple[int, ...]:
    """The shape of a batch of the task's inputs: images, or token sequences."""
    if info.sequence_length is not None:
        return (batch, info.sequence_length)
    return (batch, info.in_channels, info.image_size, info.image_size)


def example_input(info: TaskInfo, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random batch shaped like the task's inputs as the host reads them: normalised images (float), or
    token ids (int64 below ``num_classes``) for a sequence task."""
    if info.sequence_length is not None:
        return torch.randint(0, info.num_classes, example_shape(info, batch), generator=generator)
    return torch.randn(example_shape(info, batch), generator=generator)


def host_contract_problems(host: object, info: TaskInfo | None = None) -> list[str]:
    """Every violation found (empty: the host is fine). With ``info``, the forward pass is checked too."""
    problems = structural_problems(host)
    if not problems and info is not None:
        assert isinstance(host, nn.Module)
        problems = forward_problems(host, info)
    return problems


def assert_host_contract(host: object, info: TaskInfo | None = None, name: str | None = None) -> None:
    """Raise ``HostContractError`` listing every violation; for the core and for plugin authors' tests."""
    problems = host_contract_problems(host, info)
    if problems:
        raise HostContractError(name or type(host).__name__, problems)
