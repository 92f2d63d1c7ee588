"""What `esper report` reads from a run directory, as plain series: per-round values of every env (for a
mean with its spread), the seed lifecycle of every slot over the run, and the morphology each env ended
with. From the files alone (config.json, events.jsonl, metrics.jsonl), so a killed run, a run still going
or one from another machine can be reported without the plugins that produced it.

Rounds are numbered from 0, as everywhere in Esper; an epoch of the run is ``round * episode_length +
step``, step from 0.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any, Iterable, Sequence

import attrs

#: The values of ``episode_end`` events followed per round (mean and spread over the envs).
EPISODE_KEYS: tuple[str, ...] = (
    "final_val_acc", "best_val_acc", "episode_return", "params_added", "host_params", "germinated", "fossilized",
    "pruned",
)
#: Stages in which a slot holds nothing: no bar is drawn for them.
EMPTY_STAGES = frozenset({"DORMANT"})


@attrs.frozen
class Spread:
    """One series over rounds: the mean over the envs and its range (min, max)."""

    round: tuple[int, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    envs: int

    def to_dict(self) -> dict[str, Any]:
        return {"round": list(self.round), "mean": list(self.mean), "min": list(self.low), "max": list(self.high),
                "envs": self.envs}


def spreads(events: Iterable[dict[str, Any]], keys: Sequence[str] = EPISODE_KEYS) -> dict[str, Spread]:
    """``key -> Spread`` from the ``episode_end`` events (one per env and round)."""
    values: dict[str, dict[int, list[float]]] = {key: defaultdict(list) for key in keys}
    envs: set[int] = set()
    for event in events:
        if event.get("type") != "episode_end":
            continue
        envs.add(int(event["env"]))
        for key in keys:
            value = event.get(key)
            if isinstance(value, (int, float)):
                values[key][int(event["round"])].append(float(value))
    result = {}
    for key, by_round in values.items():
        rounds = tuple(sorted(by_round))
        result[key] = Spread(
            round=rounds,
            mean=tuple(statistics.fmean(by_round[r]) for r in rounds),
            low=tuple(min(by_round[r]) for r in rounds),
            high=tuple(max(by_round[r]) for r in rounds),
            envs=len(envs),
        )
    return result


@attrs.frozen
class Span:
    """A slot in one stage from epoch ``start`` to ``end`` (exclusive), holding ``blueprint``."""

    env: int
    slot: str
    stage: str
    start: int
    end: int
    blueprint: str | None


@attrs.frozen
class SeedLife:
    """One seed from its germination to its last stage in the slot (the label of the timeline)."""

    env: int
    slot: str
    blueprint: str
    start: int
    end: int
    outcome: str  # FOSSILIZED, PRUNED, or the stage it was in when the episode ended


def lifecycle(events: Iterable[dict[str, Any]], episode_length: int) -> tuple[list[Span], list[SeedLife]]:
    """Every slot's stages over the run, from ``seed_transition`` events: a stage lasts from the epoch of
    the transition into it to the next transition of the slot or the end of the episode (each episode
    starts with every slot DORMANT on a fresh host)."""
    spans: list[Span] = []
    lives: list[SeedLife] = []
    open_spans: dict[tuple[int, str], tuple[str, int, str | None]] = {}
    open_lives: dict[tuple[int, str], tuple[str, int]] = {}
    episode_end: dict[int, int] = {}

    def close(key: tuple[int, str], at: int) -> None:
        stage, start, blueprint = open_spans.pop(key)
        if stage not in EMPTY_STAGES and at > start:
            spans.append(Span(key[0], key[1], stage, start, at, blueprint))

    def close_life(key: tuple[int, str], at: int, outcome: str) -> None:
        blueprint, start = open_lives.pop(key)
        lives.append(SeedLife(key[0], key[1], blueprint, start, at, outcome))

    def finish_episode(env: int) -> None:
        end = episode_end.pop(env)
        for key in [k for k in open_spans if k[0] == env]:
            stage = open_spans[key][0]
            close(key, end)
            if key in open_lives:
                close_life(key, end, stage)

    for event in events:
        kind = event.get("type")
        if kind not in ("seed_transition", "episode_start"):
            continue
        env = int(event["env"])
        round_start = int(event["round"]) * episode_length
        if env in episode_end and round_start >= episode_end[env]:
            finish_episode(env)
        episode_end[env] = round_start + episode_length
        if kind == "episode_start":
            continue
        key, at, stage = (env, str(event["slot"])), round_start + int(event["step"]), str(event["to_stage"])
        blueprint = event.get("blueprint")
        if key in open_spans:
            close(key, at)
        open_spans[key] = (stage, at, blueprint)
        if stage == "GERMINATED":
            if key in open_lives:  # a new seed without an end in between: the old one ended unseen
                close_life(key, at, "?")
            open_lives[key] = (str(blueprint or "?"), at)
        elif stage in ("FOSSILIZED", "PRUNED") and key in open_lives:
            close_life(key, at, stage)
    for env in list(episode_end):
        finish_episode(env)
    return spans, lives


def final_morphology(
    events: Iterable[dict[str, Any]], slots: Sequence[str]
) -> dict[int, dict[str, Any]]:
    """Per env, what its last episode ended with: ``{"round", "slots": {slot: (stage, blueprint)},
    "params_added", "host_params"}`` (slots never touched in that episode are DORMANT)."""
    last: dict[int, dict[str, Any]] = {}
    for event in events:
        kind = event.get("type")
        if kind == "episode_start":
            last[int(event["env"])] = {
                "round": int(event["round"]), "slots": {slot: ("DORMANT", None) for slot in slots},
                "params_added": None, "host_params": None,
            }
        elif kind == "seed_transition" and int(event["env"]) in last:
            last[int(event["env"])]["slots"][str(event["slot"])] = (str(event["to_stage"]), event.get("blueprint"))
        elif kind == "episode_end" and int(event["env"]) in last:
            last[int(event["env"])].update(params_added=event.get("params_added"), host_params=event.get("host_params"))
    return {env: last[env] for env in sorted(last)}


def episode_length_of(config: dict[str, Any], events: Sequence[dict[str, Any]]) -> int:
    """``run.episode_length`` from the saved config, else the longest episode seen in the events."""
    length = config.get("run", {}).get("episode_length") if isinstance(config, dict) else None
    if isinstance(length, int) and length > 0:
        return length
    steps = [int(e["steps"]) for e in events if e.get("type") == "episode_end" and isinstance(e.get("steps"), int)]
    return max(steps, default=1)
