"""Where a round's time goes: whole rounds of a run under cProfile, the top functions by cumulative time.

Why: end-to-end env steps/s depends on everything around host training (policy, legality, validation,
counterfactuals, rewards, telemetry); this says which of those to fuse or trim next. CUDA work is
asynchronous, so a function's time here is its Python and launch time plus any sync it waits on.

Usage: python benchmarks/profile_run.py --host resnet_impaired --envs 32 --rounds 1 [--fused on] [--top 40]
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from typing import Any

import click

from esper_core.config.loading import load_config
from esper_core.plugins import load_registry
from esper_core.run.progress import Progress
from esper_core.run.runner import Runner


class _Silent(Progress):
    def __init__(self) -> None:
        super().__init__(quiet=True)

    def step(self, *args: Any, **kwargs: Any) -> None:
        pass

    def notice(self, text: str) -> None:
        pass


@click.command()
@click.option("--host", default="resnet_impaired", show_default=True)
@click.option("--envs", type=int, default=32, show_default=True)
@click.option("--rounds", type=int, default=1, show_default=True, help="Profiled rounds (after one warm-up round).")
@click.option("--episode-length", type=int, default=10, show_default=True)
@click.option("--samples", type=int, default=2560, show_default=True, help="Host samples per epoch per env.")
@click.option("--fused", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--top", type=int, default=40, show_default=True)
@click.option("--kernels", is_flag=True, help="Profile device operators (torch.profiler) instead of Python; keep the round short (--episode-length 2 --samples 640): a full 32-env round takes minutes to trace.")
def main(
    host: str, envs: int, rounds: int, episode_length: int, samples: int, fused: str, device: str, top: int, kernels: bool
) -> None:
    config = load_config(
        overrides={
            "task": {"name": "synthetic"},
            "host": {"name": host},
            "run": {"envs": envs, "episode_length": episode_length, "rounds": rounds + 1},
            "training": {"epoch_samples": samples, "val_samples": 1024},
            "device": {"device": device, "fused": fused},
        }
    )
    runner = Runner.build(config, load_registry(), progress=_Silent())
    runner.run(1)  # warm-up: allocator, cuDNN autotuning, first germinations
    if kernels:
        _profile_kernels(runner, rounds, top)
        return
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    runner.run(rounds)
    profile.disable()
    elapsed = time.perf_counter() - started
    steps = rounds * episode_length * envs
    print(f"{rounds} round(s), {steps} env steps in {elapsed:.1f}s: {steps / elapsed:.2f} env steps/s "
          f"(fused groups: {[g.fused for g in runner.groups]})")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(top)
    print(out.getvalue())


def _profile_kernels(runner: Runner, rounds: int, top: int) -> None:
    """Which operators the device spends its time in (self time, so nothing is counted twice)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        runner.run(rounds)
    averages = prof.key_averages()
    for key in ("self_device_time_total", "self_cuda_time_total", "self_cpu_time_total"):
        try:
            print(averages.table(sort_by=key, row_limit=top))
            return
        except (AttributeError, KeyError, ValueError):
            continue


if __name__ == "__main__":
    main()
