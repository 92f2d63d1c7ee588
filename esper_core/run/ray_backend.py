"""The Ray backend: each device unit (``env_unit``) runs in a Ray actor; the learner stays in the driver.

Why Ray: beyond one machine we use an existing distributed engine (scheduling on GPUs, worker processes,
failure detection) rather than a home-made one. This module is imported only when ``--backend ray`` is
chosen (``backend.choose_backend``), so Ray stays an optional extra (``pip install 'esper-grow[ray]'``).

Each actor builds its own envs from the run's configuration (``unit_envs``), with the same env indices,
seeds and device kind as a local run, so it steps exactly the envs a local run would. Per env step the
driver sends every actor its envs' actions at once and gathers their results (observations, rewards,
events' facts); at a round's last step the actors also return their envs' round-boundary state, which the
checkpoint needs. Plugins must be installed on every node (actors load them from entry points) and a
task's data must be readable at ``task.data_dir`` there.

Faults: a call to a dead actor raises ``EnvGroupsLost``; ``recover`` starts a fresh actor for each dead
one, and the runner reloads every unit from the round start and replays the round (``Runner``).
Blueprints a plugin fault disabled (``PluginQuarantine``) are shared by the envs of one actor, not of the
whole run as in a local run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import ray
import ray.exceptions
import torch

from esper_core.config.sections import EsperConfig
from esper_core.plugins.loader import load_registry
from esper_core.records import DecodedAction, EnvObservation
from esper_core.run.backend import EnvCard, EnvFacts, EnvGroupsLost, by_unit, in_env_order
from esper_core.run.checkpoint import tensors_to_cpu
from esper_core.run.env import MorphogenesisEnv, StepResult
from esper_core.run.env_unit import EnvUnit, unit_members
from esper_core.run.fused import fused_groups
from esper_core.run.quarantine import PluginQuarantine
from esper_core.run.seeding import forked_rng
from esper_core.run.setup import RunParts, describe_contributor, fuses, in_fused_group, make_env, resolve_task, structure, usable_threads


def _notice(text: str) -> None:
    print(text, file=sys.stderr)  # Ray forwards an actor's stderr to the driver's console


def unit_envs(config: EsperConfig, registry: Any, device: torch.device, indices: Sequence[int]) -> list[MorphogenesisEnv]:
    """Envs ``indices`` of a run, built as ``setup.build_run`` builds them (same seeds, options, reward per
    env), on ``device``: what an actor steps. The task's data is loaded once, on this device."""
    host_spec = registry.get("host", config.host.name)
    task = resolve_task(registry, config.task, host_topology=host_spec.topology)  # the driver's task (named by now)
    with forked_rng():
        data = task.task.load(Path(config.task.data_dir).expanduser(), device, config.run.seed)
    host_options = structure(host_spec, config.host.options, "host.options")
    reward_spec = registry.get("reward", config.reward.name)
    reward_options = structure(reward_spec, config.reward.options, "reward.options")
    quarantine = PluginQuarantine(notice=_notice, describe=lambda kind, name: describe_contributor(registry, kind, name))
    return [
        make_env(
            config, registry, data, device, host_spec, host_options, reward_spec.factory(reward_options), i, quarantine,
            in_fused_group=in_fused_group(config, [device] * len(indices), device),
        )
        for i in indices
    ]


def _cards(unit: EnvUnit) -> list[EnvCard]:
    return [
        EnvCard(index=env.index, episode=env.episode, stats=env.stats,
                params_added=env.params_added if env.model is not None else 0)
        for env in unit.envs
    ]


class EnvUnitWorker:
    """What a Ray actor holds: one unit's envs, built from the configuration in the actor's process."""

    def __init__(self, config: EsperConfig, indices: tuple[int, ...], device: str) -> None:
        if config.device.threads is not None:
            torch.set_num_threads(usable_threads(config.device.threads, _notice))
        registry = load_registry()
        where = torch.device(device)
        envs = unit_envs(config, registry, where, indices)
        self.unit = EnvUnit(envs, fused_groups(envs, fuses(config.device.fused, [where]), _notice))

    def ping(self) -> bool:
        return True

    def reset(self) -> tuple[list[EnvObservation], list[EnvCard]]:
        return self.unit.reset(), _cards(self.unit)

    def step(self, actions: list[DecodedAction]) -> tuple[list[StepResult], list[EnvCard], list[dict[str, Any]] | None]:
        """The step's results and env facts; at the episode's end also the round-boundary states."""
        results = self.unit.step(actions)
        states = self.state_dicts() if all(r.done for r in results) else None
        return results, _cards(self.unit), states

    def state_dicts(self) -> list[dict[str, Any]]:
        return tensors_to_cpu(self.unit.state_dicts())

    def load_state_dicts(self, states: list[dict[str, Any]]) -> None:
        self.unit.load_state_dicts(states)


def _gather(refs: list[Any]) -> list[Any]:
    """``ray.get``, with a dead actor turned into ``EnvGroupsLost`` (an env's own error propagates as is)."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayActorError as error:
        raise EnvGroupsLost(f"a Ray actor holding envs died: {type(error).__name__}: {error}") from error


class RayBackend:
    """One actor per device unit (a GPU each for CUDA units, a CPU each otherwise); joins the Ray cluster at
    ``address`` (None: the one this process already joined, or a fresh local one)."""

    def __init__(self, parts: RunParts, address: str | None = None) -> None:
        if not ray.is_initialized():
            ray.init(address=address or None)
        self.config = parts.config
        self.n_envs = len(parts.envs)
        devices = parts.devices
        position = {id(env): i for i, env in enumerate(parts.envs)}
        groups = [[position[id(env)] for env in group.envs] for group in parts.groups]
        self.members = unit_members(self.n_envs, len(devices), groups)
        self.kinds = [devices[m[0] % len(devices)].type for m in self.members]
        self._devices = [str(env.device) for env in parts.envs]
        self.actors = [self._spawn(k) for k in range(len(self.members))]
        self.restarts = 0
        self._facts: list[EnvCard] = [
            EnvCard(index=env.index, episode=env.episode, stats=env.stats, params_added=0) for env in parts.envs
        ]
        # The envs' state at the last round boundary (the driver's envs are the actors' twins until then).
        self._boundary: list[dict[str, Any]] | None = tensors_to_cpu([env.state_dict() for env in parts.envs])

    def _spawn(self, k: int) -> Any:
        cuda = self.kinds[k] == "cuda"
        actor = ray.remote(num_cpus=1, num_gpus=1 if cuda else 0, max_restarts=0)(EnvUnitWorker)
        # Ray shows an actor its GPU as the first one, so a CUDA unit uses "cuda" there.
        return actor.remote(self.config, self.members[k], "cuda" if cuda else "cpu")

    def reset(self) -> list[EnvObservation]:
        self._boundary = None
        answers = _gather([actor.reset.remote() for actor in self.actors])
        self._facts = in_env_order([cards for _, cards in answers], self.members, self.n_envs)
        return in_env_order([observations for observations, _ in answers], self.members, self.n_envs)

    def step(self, actions: Sequence[DecodedAction]) -> list[StepResult]:
        self._boundary = None
        answers = _gather(
            [actor.step.remote(own) for actor, own in zip(self.actors, by_unit(list(actions), self.members))]
        )
        self._facts = in_env_order([cards for _, cards, _ in answers], self.members, self.n_envs)
        if all(states is not None for _, _, states in answers):
            self._boundary = in_env_order([states for _, _, states in answers], self.members, self.n_envs)
        return in_env_order([results for results, _, _ in answers], self.members, self.n_envs)

    def facts(self) -> Sequence[EnvFacts]:
        return self._facts

    def env_devices(self) -> list[str]:
        return list(self._devices)

    def state_dicts(self) -> list[dict[str, Any]]:
        if self._boundary is not None:
            return list(self._boundary)
        answers = _gather([actor.state_dicts.remote() for actor in self.actors])
        return in_env_order(answers, self.members, self.n_envs)

    def load_state_dicts(self, states: Sequence[Mapping[str, Any]]) -> None:
        states = tensors_to_cpu(list(states))
        _gather([actor.load_state_dicts.remote(own) for actor, own in zip(self.actors, by_unit(states, self.members))])
        self._boundary = states

    def recover(self) -> tuple[int, ...]:
        """A fresh actor for every one that no longer answers."""
        dead = []
        for k, actor in enumerate(self.actors):
            try:
                ray.get(actor.ping.remote())
            except ray.exceptions.RayActorError:
                dead.append(k)
        for k in dead:
            self.actors[k] = self._spawn(k)
        self.restarts += len(dead)
        return tuple(dead)

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
