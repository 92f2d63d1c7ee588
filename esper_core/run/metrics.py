"""Turning what happened in a step, an episode or a round into telemetry events and metrics records.

Kept out of the loop so the loop reads as the algorithm. Everything here is host-side bookkeeping on
values already synced once per step (actions, log-probs and values via one ``tolist`` each).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import torch

from esper_core.rl.actions import ActionSpace
from esper_core.run.backend import EnvFacts
from esper_core.run.env import StepResult
from esper_core.ops import HEADS, RELEVANT_HEADS, Op
from esper_core.records import DecodedAction, EnvObservation, PolicyOutput
from esper_core.events import (
    ActionTaken,
    EpisodeEnded,
    Event,
    FaultRecovered,
    PluginDisabled,
    RewardGiven,
    SeedTransition,
    StepMetrics,
)


def action_mix(ops: Counter[str]) -> dict[str, float]:
    """Share of each op (every op listed, in op order)."""
    total = sum(ops.values())
    return {op.name: ops.get(op.name, 0) / total for op in Op} if total else {}


def step_events(
    round_index: int,
    step: int,
    envs: Sequence[EnvFacts],
    space: ActionSpace,
    output: PolicyOutput,
    decoded: Sequence[DecodedAction],
    legal: torch.Tensor,
    results: Sequence[StepResult],
) -> list[Event]:
    """Per env: the action (every head: index, value, legality, relevance), seed transitions, a fault if
    one was recovered, the reward with its components, and the host's numbers after the epoch."""
    actions = output.actions.tolist()
    log_probs = output.log_probs.float().tolist()
    values = output.value.float().reshape(-1).tolist()
    legal_rows = legal.tolist()
    entries = space.layout()
    events: list[Event] = []
    for i, (env, action, result) in enumerate(zip(envs, decoded, results)):
        relevant = tuple(h for h in HEADS if h in RELEVANT_HEADS[action.op])
        where = {"round": round_index, "env": env.index, "episode": env.episode, "step": step}
        events.append(
            ActionTaken(
                **where,
                op=action.op.name,
                indices=dict(zip(HEADS, actions[i])),
                values={h: entries[h][actions[i][k]] for k, h in enumerate(HEADS)},
                legal=dict(zip(HEADS, (bool(x) for x in legal_rows[i]))),
                relevant=relevant,
                log_prob=sum(log_probs[i][k] for k, h in enumerate(HEADS) if h in relevant),
                value=values[i],
                ok=result.info.action_ok,
            )
        )
        for t in result.info.transitions:
            blueprint = action.blueprint if t.to_stage.name == "GERMINATED" else _slot_blueprint(result, t.slot)
            events.append(
                SeedTransition(
                    **where, slot=t.slot, from_stage=t.from_stage.name, to_stage=t.to_stage.name, reason=t.reason,
                    blueprint=blueprint,
                )
            )
        if result.info.fault is not None:
            events.append(FaultRecovered(**where, reason=result.info.fault, pruned_slots=result.info.fault_pruned))
        if result.info.disabled is not None:
            kind, name, reason = result.info.disabled
            events.append(PluginDisabled(**where, kind=kind, name=name, reason=reason))
        events.append(RewardGiven(**where, reward=result.reward, components=result.components))
        obs = result.observation
        events.append(
            StepMetrics(
                **where, train_loss=obs.train_loss, train_acc=obs.train_acc, val_loss=obs.val_loss, val_acc=obs.val_acc,
                host_params=obs.host_params, seed_params=obs.seed_params,
            )
        )
    return events


def _slot_blueprint(result: StepResult, slot: str) -> str | None:
    for summary in result.observation.slots:
        if summary.name == slot:
            return summary.blueprint
    return None


def episode_records(
    round_index: int,
    envs: Sequence[EnvFacts],
    returns: Sequence[float],
    observations: Sequence[EnvObservation],
    steps: int,
) -> tuple[list[dict[str, Any]], list[Event]]:
    """Per env: the episode's summary record (for metrics and summary.json) and its ``episode_end`` event."""
    records, events = [], []
    for env, episode_return, obs in zip(envs, returns, observations):
        stats = env.stats
        record = {
            "env": env.index, "episode": env.episode, "final_val_acc": obs.val_acc, "best_val_acc": obs.best_val_acc,
            "params_added": env.params_added, "host_params": obs.host_params, "seed_params": obs.seed_params,
            "germinated": stats.germinated, "fossilized": stats.fossilized, "pruned": stats.pruned,
            "faults": stats.faults, "episode_return": episode_return,
        }
        records.append(record)
        events.append(
            EpisodeEnded(
                round=round_index, env=env.index, episode=env.episode, steps=steps, episode_return=episode_return,
                final_val_acc=obs.val_acc, best_val_acc=obs.best_val_acc, host_params=obs.host_params,
                seed_params=obs.seed_params, params_added=env.params_added, germinated=stats.germinated,
                fossilized=stats.fossilized, pruned=stats.pruned, faults=stats.faults,
            )
        )
    return records, events


def round_metrics(
    round_index: int,
    env_steps_total: int,
    records: Sequence[dict[str, Any]],
    steps: int,
    ops: Counter[str],
    policy_metrics: dict[str, Any],
    round_time: float,
    act_time: float,
    update_time: float,
) -> dict[str, Any]:
    """One ``metrics.jsonl`` line: policy update metrics, env statistics, and (wall-clock) timing."""
    n = len(records)
    return {
        "round": round_index,
        "env_steps_total": env_steps_total,
        "policy": policy_metrics,
        "env": {
            "mean_return": sum(r["episode_return"] for r in records) / n,
            "mean_final_val_acc": sum(r["final_val_acc"] for r in records) / n,
            "max_final_val_acc": max(r["final_val_acc"] for r in records),
            "mean_params_added": sum(r["params_added"] for r in records) / n,
            "germinated": sum(r["germinated"] for r in records),
            "fossilized": sum(r["fossilized"] for r in records),
            "pruned": sum(r["pruned"] for r in records),
            "faults": sum(r["faults"] for r in records),
            "action_mix": action_mix(ops),
        },
        "timing": {
            "round_s": round_time,
            "env_steps_per_s": n * steps / max(round_time, 1e-9),
            "policy_act_s": act_time,
            "policy_update_s": update_time,
        },
    }
