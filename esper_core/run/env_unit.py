"""One device's envs stepped together: the unit a backend schedules (a thread, or a Ray actor).

Why units: with several devices each one's envs (a fused group, or envs interleaved batch by batch) must
keep its device busy on its own, so a slow host sync on one device never holds back the work launched on
another. A unit owns exactly the envs of one entry of ``device.devices`` (env ``i`` sits on entry
``i % len(devices)``); fused groups that span several entries (the same device named twice with fusing
on) join those entries into one unit.

A step comes in three phases so a backend can run the middle one concurrently: ``begin`` executes the
actions (lifecycle code forks the global generators, so callers run it one unit after another),
``train`` runs the epochs and queues validation (no global generator is touched), ``finish`` syncs once
per env and scores the step.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Sequence

import torch

from esper_core.records import DecodedAction, EnvObservation
from esper_core.run.env import MorphogenesisEnv, StepResult
from esper_core.run.fused import FusedEnvGroup


class EnvUnit:
    """The envs of one device (entry) and their fused groups; everything here runs on that device."""

    def __init__(self, envs: Sequence[MorphogenesisEnv], groups: Sequence[FusedEnvGroup]) -> None:
        self.envs = list(envs)
        self.groups = list(groups)
        self._in_groups = {id(env) for group in self.groups for env in group.envs}

    def reset(self) -> list[EnvObservation]:
        """Fresh hosts for a new episode; each fused group is rebuilt over its envs' new hosts and
        validates them together."""
        for env in self.envs:
            if id(env) in self._in_groups:
                env.begin_episode()
            else:
                env.reset()
        for group in self.groups:
            group.rebuild()
            group.open_episodes()
        return [env.observation for env in self.envs]

    def begin(self, actions: Sequence[DecodedAction]) -> None:
        """Execute each env's (legal) action and line up its epoch."""
        if len(actions) != len(self.envs):
            raise ValueError(f"{len(actions)} action(s) for a unit of {len(self.envs)} env(s)")
        for env, action in zip(self.envs, actions):
            env.begin_step(action)

    def train(self) -> None:
        """Every env's epoch (fused groups as one wide network each, the other envs with their batches
        interleaved), then queue the validation passes; no host sync. In a thread of its own, CUDA work
        defaults to this unit's device."""
        device = self.envs[0].device
        with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
            self._train()

    def _train(self) -> None:
        fused = [group for group in self.groups if group.fused]
        in_fused = {id(env) for group in fused for env in group.envs}
        for group in fused:
            group.train_epoch()
        active = [env for env in self.envs if id(env) not in in_fused]
        while active:
            active = [env for env in active if env.train_batch()]
        for group in fused:
            group.launch_validation()
        for env in self.envs:
            if id(env) not in in_fused:
                env.launch_validation()

    def finish(self) -> list[StepResult]:
        return [env.finish_step() for env in self.envs]

    def step(self, actions: Sequence[DecodedAction]) -> list[StepResult]:
        self.begin(actions)
        self.train()
        return self.finish()

    def state_dicts(self) -> list[dict[str, Any]]:
        return [env.state_dict() for env in self.envs]

    def load_state_dicts(self, states: Sequence[Mapping[str, Any]]) -> None:
        if len(states) != len(self.envs):
            raise ValueError(f"{len(states)} env state(s) for a unit of {len(self.envs)} env(s)")
        for env, state in zip(self.envs, states):
            env.load_state_dict(state)


def unit_members(n_envs: int, n_devices: int, groups: Sequence[Sequence[int]] = ()) -> list[tuple[int, ...]]:
    """Env indices of each unit: one unit per device entry (env ``i`` on entry ``i % n_devices``), entries
    joined where a fused group (given as env indices) spans several; units without envs are dropped."""
    entry_of = list(range(n_devices))  # union-find over entries

    def root(entry: int) -> int:
        while entry_of[entry] != entry:
            entry = entry_of[entry]
        return entry

    for members in groups:
        entries = sorted({root(i % n_devices) for i in members})
        for entry in entries[1:]:
            entry_of[entry] = entries[0]
    units: dict[int, list[int]] = {}
    for i in range(n_envs):
        units.setdefault(root(i % n_devices), []).append(i)
    return [tuple(members) for _, members in sorted(units.items())]


def build_units(
    envs: Sequence[MorphogenesisEnv], groups: Sequence[FusedEnvGroup], n_devices: int
) -> list[EnvUnit]:
    """The units over a run's envs (``RunParts.envs`` and ``.groups``), in device-entry order."""
    position = {id(env): i for i, env in enumerate(envs)}
    group_members = [[position[id(env)] for env in group.envs] for group in groups]
    units = []
    for members in unit_members(len(envs), n_devices, group_members):
        chosen = set(members)
        own = [group for group, ids in zip(groups, group_members) if set(ids) <= chosen]
        units.append(EnvUnit([envs[i] for i in members], own))
    return units
