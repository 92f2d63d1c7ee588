"""The factored action space, built once per run from what the plugin registries offer.

A third-party blueprint or blend style becomes choosable by the policy with no edit to the core: the
blueprint head has ``noop`` at index 0 followed by every enabled blueprint, the style head one entry per
enabled blend style. The ordered names (``layout()``) are saved with checkpoints and compared on load
(``diff``), because a policy's output layers are only meaningful for the layout they were trained on.
"""

from __future__ import annotations

import collections
from typing import Any, Iterable, Mapping, Protocol, Sequence

import attrs
import torch

from esper_core.config.sections import ActionsConfig
from esper_core.ops import ALPHA_CURVES, ALPHA_SPEEDS, HEADS, RELEVANT_HEADS, Op
from esper_core.records import DecodedAction

#: Name of the blueprint entry at index 0: "no blueprint". Never valid when the op is GERMINATE.
NOOP_BLUEPRINT = "noop"


class _SpecRegistry(Protocol):
    """The part of ``esper_core.plugins.loader.PluginRegistry`` the action space needs."""

    def specs(self, kind: str) -> Mapping[str, Any]: ...


def _require_unique(head: str, names: Sequence[Any]) -> None:
    duplicates = [name for name, count in collections.Counter(names).items() if count > 1]
    if duplicates:
        raise ValueError(f"action head {head!r}: duplicate entries {duplicates!r}; each entry must be unique")


def _require_nonempty(head: str, names: Sequence[Any], hint: str) -> None:
    if len(names) == 0:
        raise ValueError(f"action head {head!r} would be empty: {hint}")


@attrs.frozen(kw_only=True)
class ActionSpace:
    """Ordered entries of every head, plus the topology facts the masks need.

    ``blueprint_topologies[i]`` are the topologies ``blueprints[i]`` supports (empty for ``noop``);
    ``style_topologies[i]`` those of ``styles[i]``, None meaning any topology (blend styles usually do not
    care). ``slot_topologies[s]`` is the topology at slot ``s`` (the host's topology unless a host mixes
    kinds of slot points), so support can be decided per slot.
    """

    slots: tuple[str, ...]
    blueprints: tuple[str, ...]
    blueprint_topologies: tuple[frozenset[str], ...]
    styles: tuple[str, ...]
    style_topologies: tuple[frozenset[str] | None, ...]
    tempos: tuple[int, ...]
    alpha_targets: tuple[float, ...]
    alpha_speeds: tuple[str, ...]
    alpha_curves: tuple[str, ...]
    topology: str
    slot_topologies: tuple[str, ...]

    def __attrs_post_init__(self) -> None:
        _require_nonempty("slot", self.slots, "the host declares no slot points")
        _require_nonempty("style", self.styles, "no blend style is enabled (actions.blend_styles)")
        _require_nonempty("tempo", self.tempos, "actions.tempos is empty")
        _require_nonempty("alpha_target", self.alpha_targets, "actions.alpha_targets is empty")
        _require_nonempty("alpha_speed", self.alpha_speeds, "no alpha speeds given")
        _require_nonempty("alpha_curve", self.alpha_curves, "no alpha curves given")
        if not self.blueprints or self.blueprints[0] != NOOP_BLUEPRINT:
            raise ValueError(f"blueprint head must start with {NOOP_BLUEPRINT!r}; got {self.blueprints!r}")
        if NOOP_BLUEPRINT in self.blueprints[1:]:
            raise ValueError(f"{NOOP_BLUEPRINT!r} is reserved for blueprint index 0; rename that blueprint")
        for head, names in self._entries().items():
            _require_unique(head, names)
        if len(self.blueprint_topologies) != len(self.blueprints):
            raise ValueError("blueprint_topologies must have one entry per blueprint (noop included)")
        if len(self.style_topologies) != len(self.styles):
            raise ValueError("style_topologies must have one entry per style")
        if len(self.slot_topologies) != len(self.slots):
            raise ValueError("slot_topologies must have one entry per slot")
        bad_tempos = [t for t in self.tempos if not isinstance(t, int) or t < 1]
        if bad_tempos:
            raise ValueError(f"actions.tempos must be positive integers (blending epochs); got {bad_tempos!r}")
        bad_targets = [a for a in self.alpha_targets if not 0.0 < a <= 1.0]
        if bad_targets:
            raise ValueError(f"actions.alpha_targets must lie in (0, 1]; got {bad_targets!r}")

    # ----------------------------------------------------------------------------------------- building
    @classmethod
    def build(
        cls,
        slots: Sequence[str],
        blueprints: Sequence[str],
        blueprint_topologies: Mapping[str, Iterable[str]],
        styles: Sequence[str],
        tempos: Sequence[int],
        alpha_targets: Sequence[float],
        topology: str,
        *,
        style_topologies: Mapping[str, Iterable[str] | None] | None = None,
        alpha_speeds: Sequence[str] | None = None,
        alpha_curves: Sequence[str] | None = None,
        slot_topologies: Sequence[str] | None = None,
    ) -> "ActionSpace":
        """From plain values. ``blueprints`` excludes ``noop`` (added at index 0)."""
        missing = [b for b in blueprints if b not in blueprint_topologies]
        if missing:
            raise ValueError(f"blueprint_topologies has no entry for blueprints {missing!r}")
        style_topologies = style_topologies or {}
        return cls(
            slots=tuple(slots),
            blueprints=(NOOP_BLUEPRINT, *blueprints),
            blueprint_topologies=(frozenset(), *(frozenset(blueprint_topologies[b]) for b in blueprints)),
            styles=tuple(styles),
            style_topologies=tuple(
                None if style_topologies.get(s) is None else frozenset(style_topologies[s])  # type: ignore[arg-type]
                for s in styles
            ),
            tempos=tuple(int(t) for t in tempos),
            alpha_targets=tuple(float(a) for a in alpha_targets),
            alpha_speeds=tuple(ALPHA_SPEEDS) if alpha_speeds is None else tuple(alpha_speeds),
            alpha_curves=tuple(ALPHA_CURVES) if alpha_curves is None else tuple(alpha_curves),
            topology=topology,
            slot_topologies=tuple(slot_topologies) if slot_topologies is not None else (topology,) * len(slots),
        )

    @classmethod
    def from_registry(
        cls,
        registry: _SpecRegistry,
        host_topology: str,
        slot_names: Sequence[str],
        actions_config: ActionsConfig,
    ) -> "ActionSpace":
        """From the plugin registries at run start.

        ``actions.blueprints = None`` enables every registered blueprint that supports the host topology;
        an explicit list is taken as given (a listed blueprint that does not fit stays in the head but is
        masked out). Unknown names are errors listing the known ones.
        """
        blueprint_specs = dict(registry.specs("blueprint"))
        style_specs = dict(registry.specs("blend_style"))
        if actions_config.blueprints is None:
            blueprints = [name for name, spec in blueprint_specs.items() if spec.supports(host_topology)]
        else:
            blueprints = list(actions_config.blueprints)
            unknown = [b for b in blueprints if b not in blueprint_specs]
            if unknown:
                raise ValueError(
                    f"actions.blueprints: unknown blueprint(s) {unknown!r}; registered: {sorted(blueprint_specs)!r}"
                )
        if actions_config.blend_styles is None:
            styles = list(style_specs)
        else:
            styles = list(actions_config.blend_styles)
            unknown = [s for s in styles if s not in style_specs]
            if unknown:
                raise ValueError(
                    f"actions.blend_styles: unknown blend style(s) {unknown!r}; registered: {sorted(style_specs)!r}"
                )
        return cls.build(
            slots=slot_names,
            blueprints=blueprints,
            blueprint_topologies={b: blueprint_specs[b].topologies for b in blueprints},
            styles=styles,
            style_topologies={s: getattr(style_specs[s], "topologies", None) for s in styles},
            tempos=actions_config.tempos,
            alpha_targets=actions_config.alpha_targets,
            topology=host_topology,
        )

    # -------------------------------------------------------------------------------------------- shape
    def _entries(self) -> dict[str, tuple[Any, ...]]:
        return {
            "op": tuple(op.name for op in Op),
            "slot": self.slots,
            "blueprint": self.blueprints,
            "style": self.styles,
            "tempo": self.tempos,
            "alpha_target": self.alpha_targets,
            "alpha_speed": self.alpha_speeds,
            "alpha_curve": self.alpha_curves,
        }

    @property
    def head_sizes(self) -> dict[str, int]:
        """Number of entries per head, in ``HEADS`` order."""
        entries = self._entries()
        return {head: len(entries[head]) for head in HEADS}

    def layout(self) -> dict[str, list[Any]]:
        """Ordered entries per head (JSON-able), saved with checkpoints."""
        entries = self._entries()
        return {head: list(entries[head]) for head in HEADS}

    def diff(self, saved: Mapping[str, Sequence[Any]], saved_name: str = "the saved layout") -> list[str]:
        """Differences between this space's layout and a saved one (``layout_diff``; empty when they match)."""
        return layout_diff(self.layout(), saved, here="this run", there=saved_name)

    # ------------------------------------------------------------------------------------------ support
    def blueprint_support(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Bool [S, B]: blueprint b may be germinated at slot s (``noop`` never)."""
        rows = [[topo in topos for topos in self.blueprint_topologies] for topo in self.slot_topologies]
        return torch.tensor(rows, dtype=torch.bool, device=device)

    def style_support(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Bool [S, St]: blend style st may be used at slot s."""
        rows = [[topos is None or topo in topos for topos in self.style_topologies] for topo in self.slot_topologies]
        return torch.tensor(rows, dtype=torch.bool, device=device)

    # ---------------------------------------------------------------------------------- decode / encode
    def decode(self, row: torch.Tensor | Sequence[int]) -> DecodedAction:
        """One joint action (indices in ``HEADS`` order) -> names and values; heads the op ignores -> None."""
        indices = [int(i) for i in (row.tolist() if isinstance(row, torch.Tensor) else row)]
        if len(indices) != len(HEADS):
            raise ValueError(f"an action row has {len(HEADS)} indices (one per head {HEADS}); got {len(indices)}")
        entries = self._entries()
        for head, index in zip(HEADS, indices):
            if not 0 <= index < len(entries[head]):
                raise ValueError(f"action head {head!r}: index {index} out of range [0, {len(entries[head])})")
        op = Op(indices[0])
        relevant = RELEVANT_HEADS[op]
        values = {
            head: entries[head][index] for head, index in zip(HEADS[1:], indices[1:]) if head in relevant
        }
        return DecodedAction(op=op, **values)

    def decode_batch(self, actions: torch.Tensor) -> list[DecodedAction]:
        """[E, H] -> one DecodedAction per env, with a single device-to-host transfer."""
        return [self.decode(row) for row in actions.tolist()]

    def encode(self, action: DecodedAction, device: torch.device | str | None = None) -> torch.Tensor:
        """DecodedAction -> LongTensor [H]. Heads the op ignores are encoded as index 0 (use
        ``esper_core.rl.masks.canonicalise_actions`` to move them onto a valid entry of their masks)."""
        entries = self._entries()
        relevant = RELEVANT_HEADS[action.op]
        indices = [int(action.op)]
        for head in HEADS[1:]:
            value = getattr(action, head)
            if head not in relevant:
                indices.append(0)
                continue
            if value is None:
                raise ValueError(f"{action.op.name} needs a value for head {head!r}; got None")
            if value not in entries[head]:
                raise ValueError(f"action head {head!r}: {value!r} is not one of {list(entries[head])!r}")
            indices.append(entries[head].index(value))
        return torch.tensor(indices, dtype=torch.long, device=device)


def layout_diff(
    current: Mapping[str, Sequence[Any]], saved: Mapping[str, Sequence[Any]], *, here: str, there: str
) -> list[str]:
    """Human-readable differences between two action layouts (head -> ordered entries), naming each head
    and the entries only one side has; an empty list when they match. Why it matters: a policy or rollout
    indexes heads by position, so a layout that differs even in order would silently pick other actions."""
    problems: list[str] = []
    for head in [h for h in saved if h not in current]:
        problems.append(f"action head {head!r} is in {there} but not in {here}")
    for head, entries in current.items():
        if head not in saved:
            problems.append(f"action head {head!r} is in {here} but not in {there}")
            continue
        mine, theirs = list(entries), list(saved[head])
        if mine == theirs:
            continue
        removed = [e for e in theirs if e not in mine]
        added = [e for e in mine if e not in theirs]
        detail = []
        if removed:
            detail.append(f"{there} only: {removed!r}")
        if added:
            detail.append(f"{here} only: {added!r}")
        if not detail:
            detail.append(f"same entries, other order: {there} {theirs!r}, {here} {mine!r}")
        problems.append(f"action head {head!r} differs ({'; '.join(detail)})")
    return problems
