"""Fused env groups against the paths they replace, side by side in one process on one device.

For each host and each number of envs E, with the same data, batch size and samples per epoch:

- ``plain``: one host alone in a bare loop (no slots, no policy), the reference for one model;
- ``interleaved``: Esper's E envs training their epoch with their batches interleaved (``device.fused =
  off``), host training only (the env step's action, validation and rewards are not timed);
- ``fused``: the same E envs trained as one wide network (``device.fused = on``), host training only;
- ``anchor``: the wide network alone on one pre-made batch (no per-env data draws, no per-env optimiser
  bookkeeping): the ceiling the fused path can approach.

Reported as images/s of host training (all envs together), plus peak GPU memory per env for the fused path.
``--end-to-end`` also runs whole rounds (policy, legality, training, validation, counterfactuals, rewards,
telemetry to memory, PPO update) for ``--seconds`` per mode and reports env steps/s and the PPO update's
share of the time. One JSON object is printed and written to ``--out``.

Usage: python benchmarks/fused_throughput.py --hosts resnet,resnet_impaired --envs 8,32,64 --end-to-end 32
       python benchmarks/fused_throughput.py --tiny   (a CPU smoke test)
"""

from __future__ import annotations

import json
import platform
import time
from typing import Any

import click
import torch
import torch.nn.functional as F

from esper_core.config.loading import deep_merge, load_config
from esper_core.ops import Op
from esper_core.plugins import load_registry
from esper_core.records import DecodedAction
from esper_core.run.env import autocast_context
from esper_core.run.runner import Runner
from esper_core.run.widen import env_major, split_envs
from run_throughput import StepClock, _sync, run_for  # beside this script: one step clock and timed run for both

#: A CPU smoke test: seconds, not minutes.
TINY: dict[str, Any] = {
    "task": {"options": {"train_size": 256, "val_size": 64, "test_size": 32}},
    "training": {"epoch_samples": 64, "batch_size": 32, "val_samples": 64, "eval_batch_size": 64},
    "run": {"episode_length": 2},
    "policy": {"options": {"feature_dim": 32, "lstm_dim": 32}},
}


def _config(host: str, envs: int, fused: str, device: str, samples: int, extra: dict[str, Any]) -> Any:
    overrides = deep_merge(
        {
            "task": {"name": "synthetic"},
            "host": {"name": host},
            "policy": {"name": "ppo_v2"},
            "device": {"device": device, "fused": fused},
            "run": {"envs": envs, "rounds": 10**6},
            "training": {"epoch_samples": samples},
        },
        extra,
    )
    return load_config(overrides=overrides, preset="gpu" if device.startswith("cuda") else "cpu-quick")


def _epoch_rate(runner: Runner, epochs: int) -> float:
    """Images/s of host training over ``epochs`` env steps of WAIT (after one warm-up epoch)."""
    envs = runner.envs
    runner._reset_envs()
    wait = DecodedAction(op=Op.WAIT)
    device = envs[0].device
    times = []
    for epoch in range(epochs + 1):
        for env in envs:
            env.begin_step(wait)
        _sync(device)
        tick = time.perf_counter()
        fused = [g for g in runner.groups if g.fused]
        for group in fused:
            group.train_epoch()
        if not fused:
            active = list(envs)
            while active:
                active = [env for env in active if env.train_batch()]
        _sync(device)
        if epoch > 0:
            times.append(time.perf_counter() - tick)
        for env in envs:
            env.launch_validation()
            env.finish_step()
    images = sum(env.train_samples for env in envs)
    return images * len(times) / sum(times)


def _anchor_rate(runner: Runner, seconds: float) -> float:
    """The wide host alone, one batch, SGD: the fused path's ceiling."""
    group = next(g for g in runner.groups if g.fused)
    wide, envs = group.wide, group.envs
    assert wide is not None and group.optimizer is not None
    env = envs[0]
    batch = env.config.training.batch_size
    x = env.normalise(env.data.train_x[:batch])
    y = env.data.train_y[:batch]
    wide_x = env_major([x] * len(envs)).contiguous(memory_format=env.memory_format)
    device = env.device

    def step() -> None:
        with autocast_context(device, env.bf16):
            logits = split_envs(wide(wide_x), len(envs))
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.repeat_interleave(len(envs)))
        group.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        group.optimizer.step()

    for _ in range(3):
        step()
    _sync(device)
    started, steps = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        for _ in range(10):
            step()
        steps += 10
        _sync(device)
    return steps * batch * len(envs) / (time.perf_counter() - started)


def _plain_rate(runner: Runner, epochs: int) -> float:
    """One env's host trained alone (the env's own loop, no other env): the one-model reference."""
    env = runner.envs[0]
    wait = DecodedAction(op=Op.WAIT)
    device = env.device
    env.reset()
    times = []
    for epoch in range(epochs + 1):
        env.begin_step(wait)
        _sync(device)
        tick = time.perf_counter()
        while env.train_batch():
            pass
        _sync(device)
        if epoch > 0:
            times.append(time.perf_counter() - tick)
        env.launch_validation()
        env.finish_step()
    return env.train_samples * len(times) / sum(times)


def _end_to_end(config: Any, registry: Any, seconds: float) -> dict[str, Any]:
    progress = StepClock()
    runner = Runner.build(config, registry, progress=progress)
    update_time = [0.0]
    update = runner.policy.update

    def timed_update(rollout: Any) -> Any:
        tick = time.perf_counter()
        result = update(rollout)
        _sync(runner.policy_device)
        update_time[0] += time.perf_counter() - tick
        return result

    runner.policy.update = timed_update  # type: ignore[method-assign]
    outcome, _, elapsed = run_for(runner, seconds)
    steps = progress.times
    if len(steps) < 3:
        raise click.ClickException(f"only {len(steps)} runner step(s) in {seconds}s; raise --seconds")
    span = steps[-1] - steps[0]  # from the end of the first (warm-up) step to the end of the last
    return {
        "fused": [g.fused for g in runner.groups],
        "runner_steps_counted": len(steps) - 1,
        "rounds_completed": outcome.rounds_completed,
        "env_steps_per_s": len(runner.envs) * (len(steps) - 1) / span,
        "ppo_update_share_of_time": update_time[0] / elapsed,
        "elapsed_s": elapsed,
    }


@click.command()
@click.option("--hosts", default="resnet,resnet_impaired", show_default=True)
@click.option("--envs", "env_counts", default="8,32,64", show_default=True)
@click.option("--device", default="cuda", show_default=True)
@click.option("--samples", type=int, default=2560, show_default=True, help="Host samples per epoch per env.")
@click.option("--epochs", type=int, default=2, show_default=True, help="Timed epochs per measurement.")
@click.option("--end-to-end", "end_to_end", type=int, default=None, help="Also whole rounds at this many envs.")
@click.option("--seconds", type=float, default=45.0, show_default=True, help="Per end-to-end mode.")
@click.option("--tiny", is_flag=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def main(hosts: str, env_counts: str, device: str, samples: int, epochs: int, end_to_end: int | None,
         seconds: float, tiny: bool, out: str | None) -> None:
    extra = TINY if tiny else {"run": {"episode_length": 10}, "training": {"val_samples": 1024}}
    samples = TINY["training"]["epoch_samples"] if tiny else samples
    registry = load_registry()
    result: dict[str, Any] = {
        "benchmark": "fused_throughput",
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor(),
        "samples_per_epoch_per_env": samples,
        "hosts": {},
    }
    for host in hosts.split(","):
        rows: dict[str, Any] = {}
        long_enough = deep_merge(extra, {"run": {"episode_length": epochs + 1}})  # every timed epoch in one episode
        for n in (int(e) for e in env_counts.split(",")):
            row: dict[str, Any] = {}
            interleaved = Runner.build(_config(host, n, "off", device, samples, long_enough), registry, progress=StepClock())
            row["interleaved_images_per_s"] = _epoch_rate(interleaved, epochs)
            if "plain_images_per_s" not in rows:
                rows["plain_images_per_s"] = _plain_rate(interleaved, epochs)
            del interleaved
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            fused = Runner.build(_config(host, n, "on", device, samples, long_enough), registry, progress=StepClock())
            row["fused_images_per_s"] = _epoch_rate(fused, epochs)
            if device.startswith("cuda"):
                row["fused_peak_memory_per_env_mib"] = torch.cuda.max_memory_allocated() / n / 2**20
            row["anchor_images_per_s"] = _anchor_rate(fused, 2.0 if tiny else 5.0)
            row["fused_over_interleaved"] = row["fused_images_per_s"] / row["interleaved_images_per_s"]
            del fused
            rows[f"envs_{n}"] = row
            print(json.dumps({host: {f"envs_{n}": row}}), flush=True)
        if end_to_end:
            for mode in ("off", "on"):
                config = _config(host, end_to_end, mode, device, samples, extra)
                rows[f"end_to_end_{end_to_end}_envs_fused_{mode}"] = _end_to_end(config, registry, seconds)
                print(json.dumps({host: rows[f"end_to_end_{end_to_end}_envs_fused_{mode}"]}), flush=True)
            on = rows[f"end_to_end_{end_to_end}_envs_fused_on"]["env_steps_per_s"]
            off = rows[f"end_to_end_{end_to_end}_envs_fused_off"]["env_steps_per_s"]
            rows[f"end_to_end_{end_to_end}_speedup"] = on / off if on and off else None
        result["hosts"][host] = rows
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        with open(out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
