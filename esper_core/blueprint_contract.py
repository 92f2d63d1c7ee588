"""Checks a blueprint against what germination needs and says everything that is wrong at once: the
twin of ``host_contract`` for plugin authors (``assert_blueprint_contract(spec)`` in a test).

What germination needs (docs/plugins.md, Blueprints): the seed keeps ``[B, C, H, W]`` for any slot size,
stays finite, outputs 0 when fresh (so germinating preserves the host's function), and can learn (one
optimiser step moves its output; zeroing *every* layer would leave every gradient at 0 forever). The last
check germinates the seed into a host, by default a small stand-in with one slot: the logits with the
fresh seed blended in at alpha 1 must equal the logits without it, and the host's loss must reach the
seed's parameters through the slot.

Why this lives in the contract and does not call ``esper_core.growth``: the contract imports none of the
machinery (importing ``esper_core.api`` stays light, and the plugin API does not change when the growth
room does). The germination here follows the same contract the core enforces (build on the host's
device and dtype, keep the shape, blend ``h + alpha * s``); Esper's own tests check that its verdicts
agree with germinating through the real ``MorphogeneticModel`` for every built-in blueprint.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from esper_core.host_contract import example_input, host_contract_problems
from esper_core.records import SlotPoint, TaskInfo
from esper_core.specs import BlueprintSpec

#: (channels, spatial) pairs a seed is built and run at: odd and even widths, large and tiny maps.
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((8, 8), (16, 4), (32, 2), (12, 5))
ZERO_ATOL = 1e-6
BATCH = 4
#: Steps of training: the first moves the zero-initialised last layer, the second reaches the layers before it.
TRAINING_STEPS = 2


class BlueprintContractError(ValueError):
    """A blueprint that breaks the contract; ``problems`` lists every violation found."""

    def __init__(self, blueprint: str, problems: list[str]) -> None:
        self.blueprint, self.problems = blueprint, problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"blueprint {blueprint!r} breaks the blueprint contract (see docs/plugins.md, Blueprints):\n{listed}")


class _Blended(nn.Module):
    """A slot holding a seed: ``h + alpha * s``, or in isolation (``train``) ``h`` in value while ``s``
    receives the gradient arriving at the slot, as a TRAINING seed does."""

    def __init__(self, seed: nn.Module, alpha: float, isolated: bool) -> None:
        super().__init__()
        self.seed, self.alpha, self.isolated = seed, alpha, isolated

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.isolated:
            s = self.seed(h.detach())
            return h + (s - s.detach())
        return h + self.alpha * self.seed(h)


class _StandInHost(nn.Module):
    """The smallest host with one slot: conv -> slot -> conv -> pool -> linear (``topology = "cnn"``)."""

    topology = "cnn"

    def __init__(self, channels: int, size: int, info: TaskInfo) -> None:
        super().__init__()
        self._point = SlotPoint("stand_in", channels, size)
        self.stem = nn.Conv2d(info.in_channels, channels, 3, padding=1)
        self.slots = nn.ModuleDict({"stand_in": nn.Identity()})
        self.body = nn.Conv2d(channels, channels, 3, padding=1)
        self.head = nn.Linear(channels, info.num_classes)

    def slot_points(self) -> tuple[SlotPoint, ...]:
        return (self._point,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.slots["stand_in"](torch.relu(self.stem(x)))
        return self.head(torch.relu(self.body(h)).mean(dim=(2, 3)))


def _where(channels: int, size: int) -> str:
    return f"at channels={channels}, spatial={size}"


def _module_problems(spec: BlueprintSpec, channels: int, size: int, generator: torch.Generator) -> list[str]:
    """Build, shape, finiteness, fresh output 0, and one optimiser step moving the output."""
    where = _where(channels, size)
    try:
        seed = spec.build(channels, size)
    except Exception as error:  # noqa: BLE001 - reported with the exception's text
        return [f"{where}: factory(channels, spatial) raised {type(error).__name__}: {error}"]
    if not isinstance(seed, nn.Module):
        return [f"{where}: factory must return a torch.nn.Module; got {type(seed).__name__}"]
    x = torch.randn(BATCH, channels, size, size, generator=generator)
    try:
        with torch.no_grad():
            out = seed.eval()(x)
            out_cl = seed(x.contiguous(memory_format=torch.channels_last))
    except Exception as error:  # noqa: BLE001
        return [f"{where}: forward on a {list(x.shape)} batch raised {type(error).__name__}: {error}"]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(x.shape):
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return [f"{where}: a seed must keep [B, C, H, W]; it maps {list(x.shape)} to {shape}"]
    problems = []
    if tuple(out_cl.shape) != tuple(x.shape):
        problems.append(f"{where}: on channels_last input it returns {list(out_cl.shape)}")
    if out.dtype != x.dtype:
        problems.append(f"{where}: output dtype {out.dtype} differs from the input's {x.dtype}")
    if not torch.isfinite(out).all():
        return [*problems, f"{where}: the fresh seed's output is not finite"]
    largest = float(out.abs().max())
    if largest > ZERO_ATOL:
        problems.append(
            f"{where}: a fresh seed must output 0 so germination keeps the host's function; max |output| = "
            f"{largest:.3g} (zero-initialise the last layer only)"
        )
    parameters = {name: p for name, p in seed.named_parameters() if p.requires_grad}
    if not parameters:
        return [*problems, f"{where}: the seed has no trainable parameters, so it can never learn"]
    optimiser = torch.optim.SGD(parameters.values(), lr=0.1)
    target = torch.randn(x.shape, generator=generator)
    reached: set[str] = set()
    try:
        for _ in range(TRAINING_STEPS):
            optimiser.zero_grad()
            nn.functional.mse_loss(seed.train()(x), target).backward()
            reached |= {name for name, p in parameters.items() if p.grad is not None and bool(p.grad.abs().sum() > 0)}
            optimiser.step()
        with torch.no_grad():
            moved = float((seed.eval()(x) - out).abs().max())
    except Exception as error:  # noqa: BLE001
        return [*problems, f"{where}: backward or an optimiser step raised {type(error).__name__}: {error}"]
    if not moved > 0.0:
        problems.append(f"{where}: {TRAINING_STEPS} optimiser steps did not change the output (every gradient is 0)")
    dead = [name for name in parameters if name not in reached]
    if dead:
        shown = ", ".join(dead[:3]) + (f" and {len(dead) - 3} more" if len(dead) > 3 else "")
        problems.append(
            f"{where}: {shown} got no gradient in {TRAINING_STEPS} optimiser steps; zeroing more than the last "
            "layer leaves the layers before it dead for good"
        )
    return problems


def _germination_problems(spec: BlueprintSpec, host: nn.Module, info: TaskInfo, generator: torch.Generator) -> list[str]:
    """Germinate into every slot of ``host`` it supports: logits unchanged at alpha 1, gradient reaching the seed."""
    topology = getattr(host, "topology", "cnn")
    if not spec.supports(topology):
        return [f"it does not support the host's topology {topology!r} (it supports {sorted(spec.topologies)})"]
    problems = []
    x = example_input(info, BATCH, generator)
    device = next(host.parameters()).device
    dtype = next(host.parameters()).dtype
    x = x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)
    original = host
    for point in original.slot_points():
        where = f"germinated into slot {point.name!r} ({_where(point.channels, point.spatial)})"
        host = copy.deepcopy(original).eval()  # a fresh copy per slot: the training pass moves BatchNorm statistics
        try:
            with torch.no_grad():
                before = host(x)
            seed = spec.build(point.channels, point.spatial).to(device=device, dtype=dtype)
            host.slots[point.name] = _Blended(seed, 1.0, isolated=False)
            with torch.no_grad():
                after = host(x)
            host.train()
            host.slots[point.name] = _Blended(seed.train(), 1.0, isolated=True)
            host.zero_grad(set_to_none=True)
            logits = host(x)
            logits.logsumexp(dim=1).sum().backward()  # any loss that depends on every logit
        except Exception as error:  # noqa: BLE001
            problems.append(f"{where}: raised {type(error).__name__}: {error}")
            continue
        change = float((after - before).abs().max())
        if change > ZERO_ATOL * max(1.0, float(before.abs().max())):
            problems.append(f"{where}: the host's logits changed by up to {change:.3g} with the fresh seed blended in at alpha 1")
        if not any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in seed.parameters()):
            problems.append(f"{where}: no gradient from the host's loss reaches the seed's parameters")
    return problems


def blueprint_contract_problems(
    spec: BlueprintSpec,
    *,
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    host: nn.Module | None = None,
    info: TaskInfo | None = None,
) -> list[str]:
    """Every violation found (empty: the blueprint is fine).

    ``sizes``: the ``(channels, spatial)`` pairs to build and run the seed at. ``host`` and ``info``: a real
    host (e.g. from your host plugin) and its task to germinate into; by default a stand-in with one slot.
    """
    if not isinstance(spec, BlueprintSpec):
        return [f"expected a BlueprintSpec; got {type(spec).__name__}"]
    problems = []
    if not spec.name or spec.name == "noop":
        problems.append(f"name {spec.name!r} is not allowed (empty, or the reserved 'noop')")
    if not spec.topologies:
        problems.append("topologies is empty: the blueprint would never be offered")
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):  # building seeds draws initial weights: leave the caller's RNG alone
        torch.manual_seed(0)
        for channels, size in sizes:
            problems += _module_problems(spec, channels, size, generator)
        if host is None:
            channels, size = sizes[0] if sizes else (8, 8)
            info = TaskInfo("stand-in", in_channels=3, image_size=size, num_classes=5)
            if "cnn" not in spec.topologies:
                return [*problems, "no host given: pass host=... (and info=...) of a topology this blueprint supports"]
            host = _StandInHost(channels, size, info)
        elif info is None:
            return [*problems, "a host was given without info=TaskInfo(...) describing its input"]
        host_problems = host_contract_problems(host, info)
        if host_problems:
            return [*problems, *(f"the host to germinate into breaks the host contract: {p}" for p in host_problems)]
        problems += _germination_problems(spec, host, info, generator)
    return problems


def assert_blueprint_contract(
    spec: BlueprintSpec,
    *,
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    host: nn.Module | None = None,
    info: TaskInfo | None = None,
) -> None:
    """Raise ``BlueprintContractError`` listing every violation (see ``blueprint_contract_problems``)."""
    problems = blueprint_contract_problems(spec, sizes=sizes, host=host, info=info)
    if problems:
        raise BlueprintContractError(getattr(spec, "name", repr(spec)), problems)

