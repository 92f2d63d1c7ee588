"""Env steps/s on 1, 2, 4 ... GPUs of one machine, in one run each: the scaling efficiency of device units.

For each device count D (``--counts``, cut to the GPUs present), a run with ``--envs-per-device`` x D envs
spread over ``cuda:0 .. cuda:D-1`` (one fused group per GPU) plays whole rounds (policy, training,
validation, counterfactuals, rewards, telemetry to memory, PPO update) for about ``--seconds``; env steps/s
is measured after one warm-up round. Scaling efficiency of D GPUs = steps/s(D) / (D x steps/s(1)): 1.0 is
perfect. ``--backend local`` steps the GPUs from threads of this process; ``--backend ray`` from one Ray
actor (process) each on a local Ray instance, so the two can be compared on the same machine.

It runs on one GPU too (measuring D=1 only), and ``--tiny --cpu`` is a smoke test on the CPU (two device
entries naming the CPU: the code path, not a measurement). One JSON object is printed and written to
``--out``.

Usage: python benchmarks/multi_gpu_scaling.py --counts 1,2,4 --envs-per-device 16 --seconds 120
       python benchmarks/multi_gpu_scaling.py --backend ray --counts 1,2,4
       python benchmarks/multi_gpu_scaling.py --tiny --cpu
"""

from __future__ import annotations

import json
import platform
import time
from typing import Any

import click
import torch

from esper_core.cli.options import overrides_from_cli
from esper_core.config.loading import deep_merge, load_config
from esper_core.plugins import load_registry
from esper_core.run.backend import choose_backend
from esper_core.run.progress import Progress
from esper_core.run.runner import Runner

#: A CPU smoke test: seconds, not minutes.
TINY: dict[str, Any] = {
    "task": {"name": "synthetic", "options": {"train_size": 256, "val_size": 64, "test_size": 32}},
    "host": {"name": "tiny_cnn"},
    "training": {"epoch_samples": 64, "batch_size": 32, "val_samples": 64, "eval_batch_size": 64},
    "run": {"episode_length": 2},
    "policy": {"options": {"feature_dim": 32, "lstm_dim": 32}},
}


def device_names(count: int, cpu: bool) -> list[str]:
    return ["cpu"] * count if cpu else [f"cuda:{i}" for i in range(count)]


def measure(tree: dict[str, Any], backend: str, seconds: float) -> dict[str, Any]:
    """Rounds of one run until ``seconds`` have passed after a warm-up round: env steps/s."""
    config = load_config(overrides=tree)
    runner = Runner.build(config, load_registry(), progress=Progress(quiet=True), backend=choose_backend(backend))
    try:
        runner.start()
        runner.run(1)  # warm-up: allocations, cuDNN autotuning, actor start
        rounds, started = 0, time.perf_counter()
        while rounds == 0 or time.perf_counter() - started < seconds:
            runner.run(1)
            rounds += 1
        elapsed = time.perf_counter() - started
    finally:
        runner.close()
    steps = rounds * config.run.envs * config.run.episode_length
    return {"rounds": rounds, "env_steps": steps, "seconds": elapsed, "env_steps_per_s": steps / elapsed}


@click.command()
@click.option("--counts", default="1,2,4", show_default=True, help="Device counts to measure, comma-separated.")
@click.option("--envs-per-device", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--seconds", default=60.0, show_default=True, type=click.FloatRange(min=0.0), help="Measured time per count.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--host", default="resnet", show_default=True)
@click.option("--cpu", is_flag=True, help="Name the CPU D times instead of D GPUs (a smoke test of the code path).")
@click.option("--tiny", is_flag=True, help="Tiny task and host (with --cpu: a seconds-long smoke test).")
@click.option("--set", "assignments", metavar="KEY=VALUE", multiple=True,
              help="Override any setting for every count, as esper run's --set (e.g. shorter rounds: "
                   "--set run.episode_length=5 --set training.epoch_samples=2048).")
@click.option("--out", default="multi_gpu_scaling.json", show_default=True, type=click.Path(dir_okay=False))
def main(counts: str, envs_per_device: int, seconds: float, backend: str, host: str, cpu: bool, tiny: bool,
         assignments: tuple[str, ...], out: str) -> None:
    wanted = [int(part) for part in counts.split(",") if part.strip()]
    present = 10**6 if cpu else torch.cuda.device_count()
    if present == 0:
        raise click.UsageError("no CUDA device here; pass --cpu for a smoke test of the code path")
    chosen = [count for count in wanted if count <= present]
    skipped = [count for count in wanted if count > present]
    settings = overrides_from_cli({}, assignments)  # parsed as esper run's --set
    rows = []
    for count in chosen:
        tree = deep_merge(deep_merge(TINY if tiny else {"host": {"name": host}}, settings), {
            "run": {"envs": envs_per_device * count, "seed": 0},
            "device": {"devices": device_names(count, cpu), "fused": "on"},
        })
        row = {"devices": count, **measure(tree, backend, seconds)}
        rows.append(row)
        click.echo(f"{count} device(s): {row['env_steps_per_s']:.2f} env steps/s", err=True)
    base = rows[0]["env_steps_per_s"] / rows[0]["devices"] if rows else 0.0
    for row in rows:
        row["efficiency"] = row["env_steps_per_s"] / (row["devices"] * base) if base else None
    result = {
        "backend": backend,
        "envs_per_device": envs_per_device,
        "host": TINY["host"]["name"] if tiny else host,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "settings": list(assignments),
        "rows": rows,
        "skipped_counts": skipped,  # more devices than this machine has
    }
    text = json.dumps(result, indent=2)
    click.echo(text)
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")


if __name__ == "__main__":
    main()
