"""What seeds cost a fused group's training epoch, blueprint by blueprint, on one device.

Why: a fused group trains its hosts near the wide-network anchor when no env holds a seed, but end to end
(where most envs hold seeds) its epochs take several times longer. This says which blueprints, in which
mode (isolated in TRAINING, or blended), cost what, and which device kernels a mixed epoch spends on.

For one host and E envs fused (``device.fused = on``), images/s of host training (all envs together) for:

- ``none``: no seeds;
- ``<blueprint>@<slot>:training`` / ``:blending``: every env holds that blueprint in that slot, isolated or
  blended at alpha 1 (one widened seed for the group);
- ``mixed``: every env holds a seed in every slot (env e's i-th slot blueprint ``(e + i) mod B``), blended
  except the last slot's seed in half the envs (groups of about E/B envs, the shape of a real run's
  seeded epochs at their busiest);

and with ``--kernels`` a ``torch.profiler`` table of one mixed epoch's device kernels.

Usage: python benchmarks/seed_cost.py --host resnet_impaired --envs 32 [--slot r0c1] [--kernels] [--out FILE]
       python benchmarks/seed_cost.py --tiny   (a CPU smoke test)
"""

from __future__ import annotations

import json
import platform
import time
from typing import Any

import click
import torch

from esper_core.config.loading import deep_merge
from esper_core.ops import Op
from esper_core.plugins import load_registry
from esper_core.records import DecodedAction
from esper_core.run.runner import Runner
from fused_throughput import TINY, _config  # beside this script: the same runs, seeded here
from run_throughput import _sync

#: What this script adds to every run: seeds germinate straight into TRAINING and may fill every slot, and
#: every timed epoch (and the epochs that bring seeds to BLENDING) fits in one episode.
SEEDED: dict[str, Any] = {"run": {"episode_length": 64}, "lifecycle": {"min_training_epochs": 0, "max_seeds": 64}}


def _runner(host: str, envs: int, device: str, samples: int, tiny: bool) -> Runner:
    extra = deep_merge(TINY if tiny else {}, SEEDED)
    runner = Runner.build(_config(host, envs, "on", device, samples, extra), load_registry())
    runner._reset_envs()
    if not runner.groups or not runner.groups[0].fused:
        raise click.ClickException(f"the {host!r} host does not fuse; nothing to measure")
    return runner


def _step_all(runner: Runner, actions: list[DecodedAction]) -> float:
    """One env step for every env (each with its action): seconds of the fused training epoch alone."""
    group = runner.groups[0]
    for env, action in zip(runner.envs, actions):
        env.begin_step(action)
    _sync(group.device)
    tick = time.perf_counter()
    group.train_epoch()
    _sync(group.device)
    took = time.perf_counter() - tick
    group.launch_validation()
    for env in runner.envs:
        env.finish_step()
    return took


def _wait(n: int) -> list[DecodedAction]:
    return [DecodedAction(op=Op.WAIT)] * n


def _seed(runner: Runner, plan: list[list[tuple[str, str, bool]]], style: str, epochs: int) -> float:
    """Germinate per env ``plan[e]`` = [(slot, blueprint, blended)], bring the blended ones to BLENDING at
    alpha 1, then time ``epochs`` fused epochs: images/s of host training, all envs together."""
    runner._reset_envs()
    envs = runner.envs
    depth = max(len(p) for p in plan)
    for k in range(depth):  # one action per env step: germinate the k-th seed, then bring it to BLENDING
        germinate, advance = [], []
        for env, wanted in zip(envs, plan):
            if k < len(wanted):
                slot, blueprint, blended = wanted[k]
                germinate.append(
                    DecodedAction(op=Op.GERMINATE, slot=slot, blueprint=blueprint, style=style, tempo=0, alpha_target=1.0)
                )
                advance.append(DecodedAction(op=Op.ADVANCE, slot=slot) if blended else DecodedAction(op=Op.WAIT))
            else:
                germinate.append(DecodedAction(op=Op.WAIT))
                advance.append(DecodedAction(op=Op.WAIT))
        _step_all(runner, germinate)
        _step_all(runner, advance)
    _step_all(runner, _wait(len(envs)))  # warm-up: group rebuilds, kernel selection
    took = sum(_step_all(runner, _wait(len(envs))) for _ in range(epochs))
    return sum(env.config.training.epoch_samples for env in envs) * epochs / took


def _kernel_table(runner: Runner, plan: list[list[tuple[str, str, bool]]], style: str, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    _seed(runner, plan, style, 1)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if runner.groups[0].device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        _step_all(runner, _wait(len(runner.envs)))
    key = "self_cuda_time_total" if runner.groups[0].device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


@click.command()
@click.option("--host", default="resnet_impaired", show_default=True)
@click.option("--envs", type=int, default=32, show_default=True)
@click.option("--device", default="cuda", show_default=True)
@click.option("--samples", type=int, default=2560, show_default=True, help="Host samples per epoch per env.")
@click.option("--epochs", type=int, default=2, show_default=True, help="Timed epochs per measurement.")
@click.option("--slot", default=None, help="Slot for the one-blueprint rows (default: the host's middle slot).")
@click.option("--style", default="linear_add", show_default=True)
@click.option("--kernels", is_flag=True, help="Also a torch.profiler table of one mixed epoch.")
@click.option("--rows", type=int, default=30, show_default=True)
@click.option("--only", default=None, help="Comma-separated rows to measure (none, mixed, or blueprint names); default all.")
@click.option("--tiny", is_flag=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def main(host: str, envs: int, device: str, samples: int, epochs: int, slot: str | None, style: str,
         kernels: bool, rows: int, only: str | None, tiny: bool, out: str | None) -> None:
    samples = TINY["training"]["epoch_samples"] if tiny else samples
    runner = _runner(host, envs, device, samples, tiny)
    model = runner.envs[0]._require_model()
    slots = list(model.slot_names)
    slot = slot or slots[len(slots) // 2]
    topology = runner.envs[0].host_spec.topology
    registry = load_registry()
    blueprints = [name for name, spec in registry.specs("blueprint").items() if spec.supports(topology)]
    result: dict[str, Any] = {
        "benchmark": "seed_cost",
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor(),
        "host": host,
        "envs": envs,
        "samples_per_epoch_per_env": samples,
        "slot": slot,
        "images_per_s": {},
    }
    chosen = set(only.split(",")) if only else {"none", "mixed", *blueprints}
    # a TRAINING seed blocks further germination (sequential development): only an env's last seed may train
    mixed = [
        [(s, blueprints[(e + i) % len(blueprints)], i < len(slots) - 1 or e % 2 == 1) for i, s in enumerate(slots)]
        for e in range(envs)
    ]
    rates = result["images_per_s"]
    rates["none"] = _seed(runner, [[] for _ in range(envs)], style, epochs)
    print(f"none: {rates['none']:.0f} img/s", flush=True)
    for blueprint in (b for b in blueprints if b in chosen):
        for blended in (False, True):
            name = f"{blueprint}@{slot}:{'blending' if blended else 'training'}"
            rates[name] = _seed(runner, [[(slot, blueprint, blended)] for _ in range(envs)], style, epochs)
            print(f"{name}: {rates[name]:.0f} img/s ({rates[name] / rates['none']:.2f} of none)", flush=True)
    if "mixed" in chosen:
        rates["mixed"] = _seed(runner, mixed, style, epochs)
        print(f"mixed: {rates['mixed']:.0f} img/s ({rates['mixed'] / rates['none']:.2f} of none)", flush=True)
    if kernels:
        result["kernels_mixed"] = _kernel_table(runner, mixed, style, rows)
        print(result["kernels_mixed"], flush=True)
    text = json.dumps(result, indent=2)
    if out:
        with open(out, "w") as handle:
            handle.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
