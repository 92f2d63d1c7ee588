"""``--strict-plugins``: check every enabled blueprint and blend style against its contract before a run.

Why up front: without it a broken blueprint is found out only when the policy first germinates it (the
run then disables it, ``esper_core.run.quarantine``); with ``--strict-plugins`` a broken plugin is a
reason not to start at all. The probe is what germination does: build the module at each slot's
``(channels, spatial)``, run it on a zero batch and compare shapes; for a blend style, blend a zero
seed output into zero features. Nothing is trained and no global RNG state is touched.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from esper_core.records import SlotPoint
from esper_core.run.seeding import forked_rng
from esper_core.run.setup import RunParts, describe_contributor


def _probe(build: Callable[[], Any], run: Callable[[Any, torch.Tensor], Any], features: torch.Tensor) -> str | None:
    """Why the module fails its contract on ``features``, or None."""
    try:
        module = build()
        module.eval()
        with torch.no_grad():
            out = run(module, features)
    except (Exception, SystemExit) as error:
        return f"{type(error).__name__}: {error}"
    if not isinstance(out, torch.Tensor):
        return f"returned a {type(out).__name__}, not a tensor"
    if tuple(out.shape) != tuple(features.shape):
        return f"maps {tuple(features.shape)} to {tuple(out.shape)}; it must keep [B, C, H, W]"
    return None


def slot_points(parts: RunParts) -> tuple[SlotPoint, ...]:
    """The host's slot points, from a throwaway instance (as ``setup.slot_layout`` does)."""
    info = next(iter(parts.data.values())).info
    with forked_rng():
        host = parts.host_spec.factory(parts.envs[0].host_options, info)
    return tuple(host.slot_points())


def contract_problems(parts: RunParts) -> list[str]:
    """Every (blueprint or blend style, slot) pair of the run's action space that breaks its contract."""
    space, registry = parts.space, parts.registry
    problems = []
    with forked_rng():
        for point, topology in zip(slot_points(parts), space.slot_topologies):
            features = torch.zeros(2, *point.feature_shape)
            for name, topologies in zip(space.blueprints[1:], space.blueprint_topologies[1:]):
                if topology not in topologies:
                    continue  # masked out at this slot anyway
                spec = registry.get("blueprint", name)
                why = _probe(lambda spec=spec: spec.build(point.channels, point.spatial), lambda m, x: m(x), features)
                if why is not None:
                    problems.append(f"{describe_contributor(registry, 'blueprint', name)} at slot {point.name!r}: {why}")
            alpha = torch.zeros(())
            for name, topologies in zip(space.styles, space.style_topologies):
                if topologies is not None and topology not in topologies:
                    continue
                spec = registry.get("blend_style", name)
                why = _probe(lambda spec=spec: spec.factory(point.channels), lambda m, x: m(x, torch.zeros_like(x), alpha), features)
                if why is not None:
                    problems.append(f"{describe_contributor(registry, 'blend_style', name)} at slot {point.name!r}: {why}")
    return problems
