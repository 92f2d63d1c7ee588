"""Which numbers a sink plots, read from the event stream (``docs/events.md``): one place, both sinks.

Every curve's x-axis is the round index (``step = round``): per-round numbers come from the ``metrics``
record (env statistics, the action mix, every number the policy's update reports, timing), per-episode
numbers from each env's ``episode_end``, and evaluation numbers from ``eval_result``/``eval_end``.
One axis for everything is what lets a resumed run cut every curve at the same place.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

#: Fields of an event record that say where it belongs rather than what was measured.
PLACE_FIELDS = frozenset({"type", "round", "env", "episode", "step", "steps"})


def numeric_leaves(value: Any, prefix: str) -> Iterator[tuple[str, float]]:
    """``("policy/entropy_relevant/op", 0.7)`` for every finite number in a nested record (bools,
    text, lists and nulls are not curves)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from numeric_leaves(item, f"{prefix}/{key}" if prefix else str(key))
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        yield prefix, float(value)


def round_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """A ``metrics`` record -> ``env/...`` (accuracy, return, parameters, seed counts, ``env/action_mix/<OP>``),
    ``policy/...`` (every diagnostic of the update) and ``timing/...``."""
    values = {key: item for key, item in record.items() if key not in ("type", "round")}  # "env" is a section here
    return dict(numeric_leaves(values, ""))


def episode_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """An ``episode_end`` record -> ``episode/env<N>/<field>`` (return, accuracies, parameters, seed counts)."""
    values = {key: item for key, item in record.items() if key not in PLACE_FIELDS}
    return dict(numeric_leaves(values, f"episode/env{record['env']}"))


def eval_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """An ``eval_result`` record -> ``eval/env<N>/<field>``; an ``eval_end`` record -> ``eval/mean_test_acc``."""
    values = {key: item for key, item in record.items() if key not in PLACE_FIELDS | {"slots"}}
    prefix = f"eval/env{record['env']}" if "env" in record else "eval"
    return dict(numeric_leaves(values, prefix))


def transition_line(record: Mapping[str, Any]) -> str:
    """One ``seed_transition`` as a line of text: ``step 3 r0c1: DORMANT -> GERMINATED (conv_light; why)``."""
    blueprint = f"{record['blueprint']}; " if record.get("blueprint") else ""
    return (
        f"step {record['step']} {record['slot']}: {record['from_stage']} -> {record['to_stage']} "
        f"({blueprint}{record['reason']})"
    )


def morphology_markdown(slots: list[Mapping[str, Any]]) -> str:
    """An ``eval_result``'s slots as a markdown table (TensorBoard renders text summaries as markdown)."""
    lines = ["| slot | stage | blueprint | style | alpha | seed params | in network |", "|---|---|---|---|---|---|---|"]
    for s in slots:
        lines.append(
            f"| {s['slot']} | {s['stage']} | {s['blueprint'] or '-'} | {s['style'] or '-'} | {s['alpha']:.3g} | "
            f"{s['seed_params']} | {'yes' if s['in_network'] else 'no'} |"
        )
    return "\n".join(lines)
