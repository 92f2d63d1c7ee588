"""Run-loop throughput: Esper's full env step beside a plain training loop, measured in one command.

Esper: the given preset (default ``gpu``) with N envs on the synthetic task, the whole machinery (policy
forward, legality checks, interleaved host epochs, validation, counterfactuals, lifecycle, rewards,
telemetry to memory, PPO updates between rounds) for about ``--seconds``. Reported: env steps/s, wall
seconds per runner step (one host epoch in every env), and seconds per host epoch per env (amortised).

Plain: the same host, the same device-resident data, batch size, samples per epoch, augmentation, SGD
settings, bf16/channels_last on CUDA, one model and a bare loop (no slots, no policy, no events), for
about the same time. Reported: seconds per epoch training only, and with the same validation pass.

Prints one JSON object (and writes it to ``--out`` when given). The first runner step and the first plain
epoch are warm-up and not counted. ``--tiny`` shrinks everything for a CPU smoke test.

Usage: python benchmarks/run_throughput.py --seconds 120 --envs 4 [--device cuda] [--policy ppo_v2]
       python benchmarks/run_throughput.py --tiny --seconds 3 --device cpu
"""

from __future__ import annotations

import json
import platform
import threading
import time
from pathlib import Path
from typing import Any

import click
import torch
import torch.nn.functional as F

from esper_core.cli.options import parse_assignment
from esper_core.config.loading import deep_merge, load_config
from esper_core.run.env import autocast_context
from esper_core.plugins import load_registry, preset_adjustments_of
from esper_core.run.progress import Progress
from esper_core.run.setup import resolve_devices, resolve_task, structure
from esper_core.run.runner import Runner

#: Sizes for a CPU smoke test: seconds, not minutes.
TINY: dict[str, Any] = {
    "task": {"options": {"train_size": 256, "val_size": 128, "test_size": 64}},
    "training": {"epoch_samples": 128, "batch_size": 64, "val_samples": 128, "eval_batch_size": 128},
    "run": {"episode_length": 4, "envs": 2},
}
#: ...and a narrow ppo_v2 (its options; other policies take none of these).
TINY_PPO_V2: dict[str, Any] = {"policy": {"options": {"feature_dim": 32, "lstm_dim": 32}}}


class StepClock(Progress):
    """Records when each runner step ends (the runner reports every step here)."""

    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.times: list[float] = []

    def step(self, *args: Any, **kwargs: Any) -> None:
        self.times.append(time.perf_counter())

    def notice(self, text: str) -> None:
        """Silent: the time-box ends the run with an "interrupted" notice that is expected here."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_for(runner: Runner, seconds: float) -> tuple[Any, float, float]:
    """Rounds of ``runner`` until ``seconds`` have passed (the stop request then finishes the step): the
    outcome, when it started (``time.perf_counter``, as a ``StepClock``'s times) and the wall time it took."""
    timer = threading.Timer(seconds, runner.request_stop)
    started = time.perf_counter()
    timer.start()
    try:
        outcome = runner.run(10**6)
    finally:
        timer.cancel()
    return outcome, started, time.perf_counter() - started


def measure_esper(config: Any, registry: Any, seconds: float) -> dict[str, Any]:
    clock = StepClock()
    runner = Runner.build(config, registry, progress=clock)
    outcome, started, total = run_for(runner, seconds)
    steps = clock.times
    counted = len(steps) - 1
    if counted < 1:
        raise click.ClickException(f"only {len(steps)} runner step(s) in {seconds}s; raise --seconds")
    span = steps[-1] - steps[0]
    n_envs = len(runner.envs)
    per_step = span / counted
    return {
        "envs": n_envs,
        "devices": [str(d) for d in runner.devices],
        "runner_steps_counted": counted,
        "rounds_completed": outcome.rounds_completed,
        "elapsed_s": total,
        "env_steps_per_s": n_envs * counted / span,
        "seconds_per_step": per_step,
        "seconds_per_host_epoch_per_env": per_step / n_envs,
        "first_step_s": steps[0] - started,
    }


def measure_plain(config: Any, registry: Any, seconds: float) -> dict[str, Any]:
    """One host, one SGD, the same data path as an env step, nothing else."""
    dev = resolve_devices(config.device)[0]
    spec = registry.get("host", config.host.name)
    task = resolve_task(registry, config.task, host_topology=spec.topology)
    data = task.task.load(Path(config.task.data_dir), dev, config.run.seed)
    host = spec.factory(structure(spec, config.host.options, "host.options"), data.info).to(dev)
    cuda = dev.type == "cuda"
    channels_last = cuda and config.device.channels_last
    if channels_last:
        host = host.to(memory_format=torch.channels_last)
    bf16 = cuda and config.device.bf16
    training = config.training
    optimizer = torch.optim.SGD(
        host.parameters(), lr=training.lr, momentum=training.momentum, weight_decay=training.weight_decay
    )
    mean = torch.tensor(data.mean, device=dev).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=dev).view(1, -1, 1, 1)
    scale, shift = 1.0 / (std * 255.0), -mean / std
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    generator = torch.Generator(device=dev).manual_seed(0)
    n_train = data.train_x.shape[0]
    samples = training.epoch_samples or n_train
    n_val = data.val_x.shape[0] if training.val_samples is None else min(training.val_samples, data.val_x.shape[0])

    def features(x: torch.Tensor) -> torch.Tensor:
        return (x.float() * scale + shift).contiguous(memory_format=memory_format)

    def train_epoch() -> torch.Tensor:
        host.train()
        total = torch.zeros((), device=dev)
        order = torch.cat([torch.randperm(n_train, generator=generator, device=dev) for _ in range(-(-samples // n_train))])
        for start in range(0, samples, training.batch_size):
            index = order[start : min(start + training.batch_size, samples)]
            if index.numel() < 2:
                break
            x = data.augment(data.train_x.index_select(0, index), generator)
            y = data.train_y.index_select(0, index)
            with autocast_context(dev, bf16):
                loss = F.cross_entropy(host(features(x)).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        return total

    @torch.no_grad()
    def validate() -> torch.Tensor:
        host.eval()
        correct = torch.zeros((), device=dev)
        for start in range(0, n_val, training.eval_batch_size):
            stop = min(start + training.eval_batch_size, n_val)
            with autocast_context(dev, bf16):
                correct += (host(features(data.val_x[start:stop])).argmax(1) == data.val_y[start:stop]).sum()
        return correct

    train_epoch().item()  # warm-up (cuDNN autotuning, allocator)
    validate().item()
    train_times, val_times = [], []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or not train_times:
        tick = time.perf_counter()
        train_epoch().item()  # one sync per epoch, as in an env step
        middle = time.perf_counter()
        validate().item()
        train_times.append(middle - tick)
        val_times.append(time.perf_counter() - middle)
    train = sum(train_times) / len(train_times)
    val = sum(val_times) / len(val_times)
    return {
        "epochs_counted": len(train_times),
        "samples_per_epoch": samples,
        "seconds_per_epoch_train": train,
        "seconds_per_epoch_train_val": train + val,
    }


@click.command()
@click.option("--seconds", type=float, default=60.0, show_default=True, help="Time for each of the two measurements.")
@click.option("--envs", type=int, default=None, help="Envs (default: the preset's).")
@click.option("--preset", default="gpu", show_default=True)
@click.option("--host", default="resnet", show_default=True)
@click.option("--policy", default="ppo_v2", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--devices", default=None, help="Comma-separated; spreads Esper's envs (plain uses the first).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Any config override.")
@click.option("--tiny", is_flag=True, help="Tiny sizes for a CPU smoke test.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the JSON here.")
def main(
    seconds: float, envs: int | None, preset: str, host: str, policy: str, device: str, devices: str | None,
    assignments: tuple[str, ...], tiny: bool, out: str | None,
) -> None:
    overrides: dict[str, Any] = {
        "task": {"name": "synthetic"},
        "host": {"name": host},
        "policy": {"name": policy},
        "device": {"device": device},
        "run": {"rounds": 10**6},
    }
    if tiny:
        overrides = deep_merge(overrides, TINY)
        if policy == "ppo_v2":
            overrides = deep_merge(overrides, TINY_PPO_V2)
    if envs is not None:
        overrides = deep_merge(overrides, {"run": {"envs": envs}})
    if devices:
        overrides = deep_merge(overrides, {"device": {"devices": [d.strip() for d in devices.split(",") if d.strip()]}})
    for assignment in assignments:
        overrides = deep_merge(overrides, parse_assignment(assignment))
    registry = load_registry()
    config = load_config(overrides=overrides, preset=preset, preset_adjustments=preset_adjustments_of(registry))
    esper = measure_esper(config, registry, seconds)
    plain = measure_plain(config, registry, seconds)
    result = {
        "benchmark": "run_throughput",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() and device != "cpu" else platform.processor() or "cpu",
        "preset": config.run.preset,
        "host": host,
        "policy": policy,
        "episode_length": config.run.episode_length,
        "epoch_samples": plain["samples_per_epoch"],
        "batch_size": config.training.batch_size,
        "val_samples": config.training.val_samples,
        "esper": esper,
        "plain": plain,
        "esper_epoch_over_plain_train_val": esper["seconds_per_host_epoch_per_env"] / plain["seconds_per_epoch_train_val"],
    }
    text = json.dumps(result, indent=2)
    click.echo(text)
    if out:
        Path(out).write_text(text + "\n")


if __name__ == "__main__":
    main()
