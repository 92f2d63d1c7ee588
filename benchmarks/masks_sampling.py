"""Micro-benchmark: mask computation + conditional sampling for a batch of envs.

Prints one JSON object: median microseconds per call (over ``--repeats`` timed calls after warm-up) for
- ``mask_inputs_from_observations``: host-side observations -> device tensors (one transfer),
- ``masks``: op mask + conditional slot/blueprint/style masks for given actions,
- ``sample_actions``: masks + sampling of all heads with floors (what a policy's act() pays),
- ``evaluate_actions``: log-probs and entropies of the stored actions under the stored masks.
Usage: python benchmarks/masks_sampling.py [--envs 64] [--slots 3] [--device cpu|cuda] [--repeats 200]
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from typing import Callable

import click
import torch

from esper_core.rl.actions import ActionSpace
from esper_core.config import LifecycleConfig
from esper_policies.ppo_v2 import PPOV2Options
from esper_core.rl.masks import compute_action_masks, mask_inputs_from_observations
from esper_core.ops import Op
from esper_core.records import EnvObservation, SlotSummary
from esper_core.rl.sampling import evaluate_actions, sample_actions
from esper_core.stages import SeedStage


def _space(n_slots: int) -> ActionSpace:
    blueprints = [f"bp{i}" for i in range(8)]
    return ActionSpace.build(
        slots=[f"slot{i}" for i in range(n_slots)],
        blueprints=blueprints,
        blueprint_topologies={b: {"cnn"} for b in blueprints},
        styles=["add", "multiply", "sigmoid", "gated"],
        tempos=[3, 5, 8],
        alpha_targets=[0.5, 0.7, 1.0],
        topology="cnn",
    )


def _observations(space: ActionSpace, n_envs: int, seed: int) -> list[EnvObservation]:
    generator = torch.Generator().manual_seed(seed)
    stages = list(SeedStage)
    observations = []
    for _ in range(n_envs):
        picks = torch.randint(0, len(stages), (len(space.slots),), generator=generator).tolist()
        slots = tuple(
            SlotSummary(name=name, stage=stages[p], epochs_in_stage=p % 4, seed_age=p, alpha_at_target=bool(p % 2))
            for name, p in zip(space.slots, picks)
        )
        observations.append(
            EnvObservation(
                epoch=0, episode_length=25, topology="cnn", train_loss=1.0, train_acc=0.5, val_loss=1.0,
                val_acc=0.5, val_acc_delta=0.0, val_loss_delta=0.0, best_val_acc=0.5, plateau_epochs=0,
                host_params=1, seed_params=0, param_budget_used=0.0, last_op=Op.WAIT, last_action_ok=True,
                slots=slots,
            )
        )
    return observations


def _median_us(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    for _ in range(max(5, repeats // 10)):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def _cuda_checks(logits, inputs, floors, time_major, stored_actions, stored_masks, repeats) -> dict[str, object]:
    """On CUDA: does sampling/evaluation force a host sync, how many kernels does it launch, and how fast
    is it replayed as a CUDA graph (static shapes, no syncs: a policy may capture its whole act())."""
    checks: dict[str, object] = {}
    torch.cuda.set_sync_debug_mode("error")
    try:
        sample_actions(logits, inputs, floors, False)
        evaluate_actions(time_major, stored_actions, stored_masks, floors)
        checks["host_syncs"] = "none"
    except RuntimeError as error:
        checks["host_syncs"] = str(error).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        sample_actions(logits, inputs, floors, False)
        torch.cuda.synchronize()
    checks["sample_actions_kernels"] = sum(e.count for e in prof.key_averages() if e.device_type.name == "CUDA")
    try:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                sample_actions(logits, inputs, floors, False)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            sample_actions(logits, inputs, floors, False)
        checks["sample_actions_cuda_graph_us"] = round(_median_us(graph.replay, repeats, torch.cuda.synchronize), 1)
    except Exception as error:  # report, do not fail the benchmark
        checks["sample_actions_cuda_graph_us"] = f"capture failed: {type(error).__name__}: {str(error).splitlines()[0]}"
    return checks


@click.command()
@click.option("--envs", default=64, show_default=True)
@click.option("--slots", default=3, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--repeats", default=200, show_default=True)
@click.option("--threads", default=None, type=int, help="torch CPU threads (default: torch's choice)")
def main(envs: int, slots: int, device: str, repeats: int, threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    space, lifecycle, floors = _space(slots), LifecycleConfig(), dict(PPOV2Options().prob_floors)
    observations = _observations(space, envs, seed=0)
    inputs = mask_inputs_from_observations(observations, space, lifecycle, dev)
    generator = torch.Generator(device=dev).manual_seed(0)
    logits = {h: torch.randn(envs, n, device=dev, generator=generator) for h, n in space.head_sizes.items()}
    sampled = sample_actions(logits, inputs, floors, False, generator)
    time_major = {h: l.unsqueeze(0) for h, l in logits.items()}
    stored_masks = {h: m.unsqueeze(0) for h, m in sampled.masks.items()}
    stored_actions = sampled.actions.unsqueeze(0)
    results = {
        "mask_inputs_from_observations_us": _median_us(
            lambda: mask_inputs_from_observations(observations, space, lifecycle, dev), repeats, sync
        ),
        "masks_us": _median_us(lambda: compute_action_masks(inputs, sampled.actions), repeats, sync),
        "sample_actions_us": _median_us(
            lambda: sample_actions(logits, inputs, floors, False, generator), repeats, sync
        ),
        "sample_actions_deterministic_us": _median_us(
            lambda: sample_actions(logits, inputs, floors, True), repeats, sync
        ),
        "evaluate_actions_us": _median_us(
            lambda: evaluate_actions(time_major, stored_actions, stored_masks, floors), repeats, sync
        ),
    }
    checks: dict[str, object] = {}
    if dev.type == "cuda":  # after the timings: the profiler and graph capture must not disturb them
        checks.update(_cuda_checks(logits, inputs, floors, time_major, stored_actions, stored_masks, repeats))
    print(
        json.dumps(
            {
                "benchmark": "masks_sampling",
                "envs": envs,
                "slots": slots,
                "head_sizes": space.head_sizes,
                "device": str(dev),
                "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.machine(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "repeats": repeats,
                "statistic": "median",
                **{k: round(v, 1) for k, v in results.items()},
                **checks,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
