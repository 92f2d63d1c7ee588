"""Where the env groups run: the learner (policy, rollout, update, telemetry, checkpoints) talks to its envs
only through an ``EnvBackend``, so the same run loop drives envs in this process or on a cluster.

``LocalBackend`` steps each device's unit (``env_unit``) in this process, one thread per unit when there
are several, so one device's host sync never holds back launching another's work. The Ray backend
(``ray_backend``, imported only when chosen) runs each unit in an actor. Both return what the envs
return, in env order, so a run's results do not depend on where its envs ran.

A backend whose worker can die raises ``EnvGroupsLost`` from any call; the runner then calls ``recover``
and replays the round from its start (episodes start and end at round boundaries, so that state is small
and the replay is exact).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Protocol, Sequence

import attrs

from esper_core.records import DecodedAction, EnvObservation
from esper_core.run.env import EpisodeStats, StepResult
from esper_core.run.env_unit import EnvUnit, build_units
from esper_core.run.setup import RunParts, SetupError

#: The backends ``--backend`` offers.
BACKENDS = ("local", "ray")


class EnvFacts(Protocol):
    """What the learner reads of an env besides its observations (events, episode records)."""

    @property
    def index(self) -> int: ...

    @property
    def episode(self) -> int: ...

    @property
    def stats(self) -> EpisodeStats: ...

    @property
    def params_added(self) -> int: ...


@attrs.frozen
class EnvCard:
    """``EnvFacts`` as a value, for envs that live in another process."""

    index: int
    episode: int
    stats: EpisodeStats
    params_added: int


class EnvGroupsLost(RuntimeError):
    """A worker holding env groups died; ``recover`` and replay the round from its start."""


class EnvBackend(Protocol):
    """Steps a run's envs for the learner; every list is in env order."""

    def reset(self) -> list[EnvObservation]:
        """Every env starts its next episode; their first observations."""
        ...

    def step(self, actions: Sequence[DecodedAction]) -> list[StepResult]:
        """One env step in every env (the actions are legal)."""
        ...

    def facts(self) -> Sequence[EnvFacts]:
        """Index, episode and episode statistics of every env, as of the last reset or step."""
        ...

    def env_devices(self) -> list[str]:
        """The device of every env, as a checkpoint records it."""
        ...

    def state_dicts(self) -> list[dict[str, Any]]:
        """Every env's round-boundary state (``MorphogenesisEnv.state_dict``)."""
        ...

    def load_state_dicts(self, states: Sequence[Mapping[str, Any]]) -> None:
        ...

    def recover(self) -> tuple[int, ...]:
        """After ``EnvGroupsLost``: replace the dead workers (their envs are then loaded with
        ``load_state_dicts``); returns the units restarted."""
        ...

    def close(self) -> None:
        ...


def in_env_order(per_unit: Sequence[Sequence[Any]], members: Sequence[Sequence[int]], n_envs: int) -> list[Any]:
    """Per-unit lists (unit k's envs are ``members[k]``) merged back into env order."""
    merged: list[Any] = [None] * n_envs
    for values, indices in zip(per_unit, members):
        for value, i in zip(values, indices):
            merged[i] = value
    return merged


def by_unit(values: Sequence[Any], members: Sequence[Sequence[int]]) -> list[list[Any]]:
    """An env-ordered list split into each unit's part."""
    return [[values[i] for i in indices] for indices in members]


class LocalBackend:
    """The run's envs in this process (``RunParts.envs``); one thread per device unit when there are several."""

    def __init__(self, parts: RunParts) -> None:
        self.envs = parts.envs
        self.units: list[EnvUnit] = build_units(parts.envs, parts.groups, len(parts.devices))
        position = {id(env): i for i, env in enumerate(parts.envs)}
        self.members = [tuple(position[id(env)] for env in unit.envs) for unit in self.units]
        self._pool = ThreadPoolExecutor(len(self.units), "esper-unit") if len(self.units) > 1 else None

    def reset(self) -> list[EnvObservation]:
        # Building a host forks the global generators: one unit after another.
        return in_env_order([unit.reset() for unit in self.units], self.members, len(self.envs))

    def step(self, actions: Sequence[DecodedAction]) -> list[StepResult]:
        for unit, own in zip(self.units, by_unit(actions, self.members)):
            unit.begin(own)  # executing an action may fork the global generators: never in parallel
        if self._pool is None:
            for unit in self.units:
                unit.train()
        else:
            for future in [self._pool.submit(unit.train) for unit in self.units]:
                future.result()  # re-raises a unit's error here
        # Every device's work is queued before the first sync.
        return in_env_order([unit.finish() for unit in self.units], self.members, len(self.envs))

    def facts(self) -> Sequence[EnvFacts]:
        return self.envs

    def env_devices(self) -> list[str]:
        return [str(env.device) for env in self.envs]

    def state_dicts(self) -> list[dict[str, Any]]:
        return [env.state_dict() for env in self.envs]

    def load_state_dicts(self, states: Sequence[Mapping[str, Any]]) -> None:
        for env, state in zip(self.envs, states):
            env.load_state_dict(state)

    def recover(self) -> tuple[int, ...]:
        return ()  # nothing here can die alone

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


BackendFactory = Callable[[RunParts], EnvBackend]


def choose_backend(name: str, address: str | None = None) -> BackendFactory:
    """``--backend`` / ``--ray-address`` -> what builds the backend over a run's parts. The Ray backend is
    imported only here, only when chosen: a missing ``ray`` is a clear setup error, not an import error."""
    if name == "local":
        if address:
            raise SetupError("--ray-address needs --backend ray")
        return LocalBackend
    if name != "ray":
        raise SetupError(f"backend {name!r} is unknown; choose one of {', '.join(BACKENDS)}")
    try:
        from esper_core.run.ray_backend import RayBackend
    except ImportError as error:
        raise SetupError(f"--backend ray needs Ray ({error}); install it with: pip install 'esper-grow[ray]'") from None
    return lambda parts: RayBackend(parts, address)
