"""Wiring a run: ``build_run(config, registry)`` resolves devices, the task (``auto``) and every plugin's
options, loads the data, builds the envs, the action space and the policy, and records provenance. It is the
one place a run is put together, so `esper run`, `esper resume`, `esper eval`, the tests and the benchmark
all get the same run from the same config; the runner only plays it.

The core never names a concrete plugin: ``task = "auto"`` picks the available task with the highest
``auto_priority`` among whatever the registry holds that can feed the chosen host (``TaskSpec.topologies``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import attrs
import torch

from esper_core.config.sections import DeviceConfig, EsperConfig, TaskConfig
from esper_core.host_contract import assert_host_contract
from esper_core.records import PolicyContext, TaskData
from esper_core.rl.actions import ActionSpace
from esper_core.run.env import MorphogenesisEnv
from esper_core.run.quarantine import PluginQuarantine
from esper_core.run.fused import FusedEnvGroup, fused_groups, fusing_devices
from esper_core.run.observers import ObserverSet, build_observers
from esper_core.run.seeding import derived_seed, forked_rng, seed_everything


class SetupError(ValueError):
    """The run cannot be set up as configured; the message names the config key and what was expected."""


def resolve_devices(device: DeviceConfig) -> tuple[torch.device, ...]:
    """``device.devices`` if given (envs spread over them), else ``device.device`` (auto: CUDA if present)."""
    names = list(device.devices) or [device.device]
    resolved = []
    for name in names:
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(name)
        except RuntimeError as error:
            raise SetupError(f"device {name!r} is not a torch device name (device.device/devices): {error}") from None
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise SetupError(f"device {name!r} asked for but CUDA is not available; use --device cpu")
            dev = torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())
            if dev.index >= torch.cuda.device_count():
                raise SetupError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        resolved.append(dev)
    return tuple(resolved)


def usable_threads(asked: int, notice: Callable[[str], None] | None = None) -> int:
    """``device.threads``, cut to the CPUs this process may use: more threads than CPUs only contend (and
    tens of thousands make torch's thread pool crash the process)."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    if asked <= available:
        return asked
    if notice is not None:
        notice(f"device.threads={asked} is more than the {available} CPU(s) this machine gives the run; using {available}")
    return available


def structure(spec: Any, options: Mapping[str, Any], key_path: str) -> Any:
    """A plugin's options table -> its attrs options object (unknown keys are errors naming ``key_path``)."""
    from esper_core.config.loading import structure_options

    return structure_options(spec, dict(options), key_path)


@attrs.frozen
class ResolvedTask:
    spec: Any
    task: Any
    notice: str | None


def _can_download(spec: Any) -> bool:
    """A task opts into ``task.download`` by giving its options type a ``download`` field."""
    return attrs.has(spec.options_type) and "download" in attrs.fields_dict(spec.options_type)


def task_options(spec: Any, task_config: TaskConfig) -> Any:
    """``task.options`` structured for ``spec``, with ``task.download`` passed on to a task that takes it."""
    options = dict(task_config.options)
    if task_config.download and _can_download(spec):
        options.setdefault("download", True)
    return structure(spec, options, "task.options")


def resolve_task(registry: Any, task_config: TaskConfig, *, host_topology: str | None = None) -> ResolvedTask:
    """The configured task, or for ``auto`` the available one with the highest ``auto_priority`` among the
    tasks that can feed the host (``TaskSpec.supports(host_topology)``; ties go in registration order).

    ``host_topology``: the chosen host's ``HostSpec.topology``. Why: ``auto`` must not pick an image task for
    a host that reads token sequences. None (a caller that does not know the host) considers every task. A
    task named explicitly is returned as named, whatever the host: the host's own check says clearly why
    it cannot read it.

    ``task.download`` reaches tasks whose options have a ``download`` field; with it, ``auto`` also picks
    such a task when its data is missing (it will be fetched). ``task.options`` apply to the task picked.
    """
    data_dir = Path(task_config.data_dir).expanduser()
    if task_config.name != "auto":
        spec = registry.get("task", task_config.name)
        return ResolvedTask(spec, spec.factory(task_options(spec, task_config)), None)
    ranked = sorted(
        (spec for spec in registry.specs("task").values() if spec.auto_priority is not None),
        key=lambda s: -s.auto_priority,
    )
    candidates = [spec for spec in ranked if host_topology is None or spec.supports(host_topology)]
    skipped = []
    for spec in candidates:
        probe = spec.factory(structure(spec, {}, "task.options"))
        fetch = task_config.download and _can_download(spec)
        if probe.available(data_dir) or fetch:
            why = f" (not found in {data_dir}: {', '.join(skipped)})" if skipped else ""
            why += " (will download)" if fetch and not probe.available(data_dir) else ""
            task = spec.factory(task_options(spec, task_config))
            return ResolvedTask(spec, task, f"task auto -> {spec.name}{why}; set task.name to choose")
        skipped.append(spec.name)
    if host_topology is not None:
        fitting = [name for name, spec in registry.specs("task").items() if spec.supports(host_topology)]
        raise SetupError(
            f"task auto: no available task for a {host_topology!r} host among {[s.name for s in candidates]} "
            f"(data dir {data_dir}); tasks for {host_topology!r} hosts: {fitting}; "
            "set task.name (--task) to one of them, or choose another host"
        )
    raise SetupError(
        f"task auto: no available task among {[s.name for s in candidates]} (data dir {data_dir}); "
        "set task.name (--task) to one of them"
    )


def host_topology_of(registry: Any, config: EsperConfig) -> str:
    """The configured host's ``HostSpec.topology``: what ``task auto`` must feed (an unknown host raises
    ``UnknownPluginError``, as ``plan_run`` would)."""
    return registry.get("host", config.host.name).topology


def contributor_info(registry: Any, kind: str, name: str) -> dict[str, str | None]:
    """``{"plugin", "distribution", "version"}`` of the plugin that registered ``(kind, name)``
    (``PluginRegistry.contributor``); an in-process plugin has no distribution."""
    info = registry.contributor(kind, name)
    return {"plugin": info.name, "distribution": info.distribution, "version": info.version}


def describe_contributor(registry: Any, kind: str, name: str) -> str:
    """``blueprint 'x' from plugin 'p' (distribution d 1.2)``: how messages name a plugin's contribution."""
    try:
        return f"{kind} {name!r} from {registry.contributor(kind, name).describe()}"
    except (AttributeError, LookupError):
        return f"{kind} {name!r}"


def plugin_set(registry: Any, used: Mapping[str, tuple[str, ...] | str]) -> dict[str, dict[str, str]]:
    """``"kind:name" -> contributor`` for every plugin a run uses (saved in config.json and checkpoints)."""
    result = {}
    for kind, names in used.items():
        for name in (names,) if isinstance(names, str) else names:
            result[f"{kind}:{name}"] = contributor_info(registry, kind, name)
    return result


def throwaway_host(host_spec: Any, host_options: Any, info: Any) -> Any:
    """A host instance built without touching global RNG and checked against the host contract, forward
    pass included: what a run learns about its host before any env builds one."""
    with forked_rng():
        host = host_spec.factory(host_options, info)
        assert_host_contract(host, info, name=host_spec.name)
    return host


def slot_layout(host_spec: Any, host_options: Any, info: Any) -> tuple[tuple[str, ...], str]:
    """Slot names and topology of a host (from a ``throwaway_host``)."""
    return _layout_of(throwaway_host(host_spec, host_options, info), host_spec)


def _layout_of(host: Any, host_spec: Any) -> tuple[tuple[str, ...], str]:
    return tuple(p.name for p in host.slot_points()), getattr(host, "topology", host_spec.topology)


#: Bytes per host parameter an env holds at the least: fp32 weights, gradients, SGD momentum and the fault
#: snapshot of weights and momentum taken before every epoch. Activations and seeds come on top.
BYTES_PER_PARAMETER = 4 * 5


def free_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` (CUDA: the driver's count; CPU: MemAvailable), or None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(host: Any, host_name: str, config: EsperConfig, devices: Sequence[torch.device]) -> None:
    """Refuse, before any env builds a host, a run whose hosts cannot fit: say what was asked (envs x
    parameters) and what each device has free. A lower bound only (no activations), so it never refuses
    a run that would fit."""
    parameters = sum(p.numel() for p in host.parameters())
    for device in dict.fromkeys(devices):
        envs_here = sum(1 for i in range(config.run.envs) if devices[i % len(devices)] == device)
        needed = envs_here * parameters * BYTES_PER_PARAMETER
        free = free_memory(device)
        if free is not None and needed > free:
            raise SetupError(
                f"{envs_here} env(s) of host {host_name!r} ({parameters:,} parameters each) need at least "
                f"{needed / 2**30:.1f} GiB on {device} for weights, gradients, momentum and fault snapshots "
                f"(activations come on top); {device} has {free / 2**30:.1f} GiB free. Lower run.envs or the "
                f"host's widths (host.options), or spread the envs over more devices (--devices)."
            )


@attrs.frozen(eq=False)
class RunParts:
    """Everything a run is made of, built once by ``build_run``; the runner plays rounds with it."""

    config: EsperConfig
    registry: Any
    devices: tuple[torch.device, ...]
    task: ResolvedTask
    data: dict[torch.device, TaskData]  # one copy of the task's tensors per device
    host_spec: Any
    reward_spec: Any
    envs: list[MorphogenesisEnv]
    groups: list[FusedEnvGroup]  # envs trained as one wide network, per device (empty: fusing off)
    space: ActionSpace
    policy_spec: Any
    policy: Any
    policy_device: torch.device
    plugins: dict[str, dict[str, str | None]]  # "kind:name" -> contributor, saved in config.json and checkpoints
    observers: ObserverSet = attrs.field(factory=ObserverSet)  # the enabled observers (observers.enabled)


def fuses(setting: str, devices: Sequence[torch.device]) -> bool:
    """``device.fused``: "auto" fuses when the envs run on CUDA (measured: launch-bound there one after
    another; on a CPU a wide network buys little and would change the CPU trajectories)."""
    if setting == "auto":
        return all(device.type == "cuda" for device in devices)
    return setting == "on"


def _load_task(task: ResolvedTask, device: torch.device, data_dir: str, seed: int) -> TaskData:
    with forked_rng():
        return task.task.load(Path(data_dir).expanduser(), device, seed)


@attrs.frozen(eq=False)
class RunBasis:
    """What a configuration resolves to before any data is read: devices, observers, the task (``auto``
    resolved, and ``config`` saying so, so the run's saved config reproduces it)."""

    config: EsperConfig
    devices: tuple[torch.device, ...]
    observers: ObserverSet
    task: ResolvedTask


def resolve_basis(
    config: EsperConfig, registry: Any, *, resolved_task: ResolvedTask | None = None,
    notice: Callable[[str], None] | None = None,
) -> RunBasis:
    """Devices, observers and task, in the order a run checks them (a missing optional dependency of an
    observer fails before the task is even looked at). ``task = "auto"`` considers only the tasks that can
    feed the configured host's topology (``TaskSpec.topologies``)."""
    devices = resolve_devices(config.device)
    observers = build_observers(registry, config.observers)
    if resolved_task is not None:
        task = resolved_task
    else:
        topology = host_topology_of(registry, config) if config.task.name == "auto" else None
        task = resolve_task(registry, config.task, host_topology=topology)
    if task.notice and notice is not None:
        notice(task.notice)
    if config.task.name != task.spec.name:
        config = attrs.evolve(config, task=attrs.evolve(config.task, name=task.spec.name))
    return RunBasis(config=config, devices=devices, observers=observers, task=task)


@attrs.frozen(eq=False)
class RunPlan:
    """What a configuration resolves to once the task's shape is known, before any env exists."""

    host_spec: Any
    host_options: Any
    reward_spec: Any
    rewards: tuple[Any, ...]  # one per env: a reward may keep episode state
    space: ActionSpace
    policy_spec: Any
    policy: Any


def plan_run(config: EsperConfig, registry: Any, info: Any, devices: Sequence[torch.device]) -> RunPlan:
    """Every check a run makes once it knows the task's shape: host, reward and policy options structured and
    handed to their plugins' factories (which check what a type cannot, e.g. a heuristic tempo that is not
    among ``actions.tempos``), the host contract, memory, and the action space.

    Why one function: `esper config show` runs it too (``check_setup``), so the two cannot drift apart.
    """
    host_spec = registry.get("host", config.host.name)
    host_options = structure(host_spec, config.host.options, "host.options")
    reward_spec = registry.get("reward", config.reward.name)
    reward_options = structure(reward_spec, config.reward.options, "reward.options")
    rewards = tuple(reward_spec.factory(reward_options) for _ in range(config.run.envs))
    host = throwaway_host(host_spec, host_options, info)
    check_memory(host, host_spec.name, config, devices)
    slot_names, topology = _layout_of(host, host_spec)
    del host
    space = ActionSpace.from_registry(registry, topology, slot_names, config.actions)
    policy_spec = registry.get("policy", config.policy.name)
    context = PolicyContext(
        space=space,
        n_envs=config.run.envs,
        episode_length=config.run.episode_length,
        device=devices[0],
        seed=derived_seed(config.run.seed, 200),
        lifecycle=config.lifecycle,
    )
    policy = policy_spec.factory(structure(policy_spec, config.policy.options, "policy.options"), context)
    return RunPlan(
        host_spec=host_spec, host_options=host_options, reward_spec=reward_spec, rewards=rewards, space=space,
        policy_spec=policy_spec, policy=policy,
    )


def check_setup(config: EsperConfig, registry: Any) -> tuple[RunBasis, str | None]:
    """Every check ``build_run`` makes before its first round, with the same messages, but with the data read
    once on the CPU (for its shape), no envs and the global generators untouched: what `esper config show`
    promises a run would accept. Returns the basis and, when the task's data is missing and would be
    downloaded, why the checks that need its shape were skipped (None: nothing skipped)."""
    with forked_rng():
        basis = resolve_basis(config, registry)
        try:
            task_config = basis.config.task
            data_dir = Path(task_config.data_dir).expanduser()
            if task_config.download and _can_download(basis.task.spec) and not basis.task.task.available(data_dir):
                return basis, (
                    f"task {basis.task.spec.name}: no data in {data_dir} yet (a run downloads it), so the host, "
                    "action-space and policy checks that need its shape were skipped"
                )
            info = _load_task(basis.task, torch.device("cpu"), task_config.data_dir, config.run.seed).info
            plan_run(basis.config, registry, info, basis.devices)
        finally:
            basis.observers.close()
    return basis, None


def make_env(
    config: EsperConfig, registry: Any, data: Any, device: torch.device, host_spec: Any, host_options: Any,
    reward: Any, index: int, quarantine: PluginQuarantine, *, in_fused_group: bool = False,
) -> MorphogenesisEnv:
    """Env ``index`` of a run, on ``device`` (where ``data`` was loaded). Its seed derives from the run seed
    and the index alone, so the env is the same wherever it is built (here, or in a Ray actor)."""
    return MorphogenesisEnv(
        data, host_spec, config, registry, device, derived_seed(config.run.seed, 100, index),
        host_options=host_options, reward=reward, index=index, quarantine=quarantine,
        channels_last=config.device.channels_last and not in_fused_group,
    )


def in_fused_group(config: EsperConfig, devices: Sequence[torch.device], device: torch.device) -> bool:
    """Whether the envs on ``device`` (``devices``: each env's) train as a fused group (``fusing_devices``).

    Such envs train in NCHW whatever ``device.channels_last`` says. Why: on an H100 (torch 2.11, bf16),
    fused groups in channels_last corrupted GPU memory in long runs: stored rollout masks zeroed after they
    were written, illegal memory accesses and an illegal instruction, in 3 of 4 study runs within 4-16
    rounds, while the same run in NCHW ran 23 rounds clean, and faster
    (docs/results/2026-11-24-h100-growth-study-2/README.md)."""
    return device in fusing_devices(devices, fuses(config.device.fused, devices))


def build_run(
    config: EsperConfig,
    registry: Any,
    *,
    resolved_task: ResolvedTask | None = None,
    notice: Callable[[str], None] | None = None,
) -> RunParts:
    """Resolve, load and build everything a run needs, in the order the seeds require (see ``seeding``).

    ``resolved_task`` skips resolving the task again when the caller already did. ``notice`` hears what was
    chosen for the user (``task auto -> ...``) before the data loads. Bad plugin options raise
    ``ConfigError``; an unusable setup ``SetupError``. Every check before the envs is ``resolve_basis`` and
    ``plan_run``, shared with ``check_setup`` (`esper config show`).
    """
    if config.device.threads is not None:
        torch.set_num_threads(usable_threads(config.device.threads, notice))
    seed = config.run.seed
    seed_everything(seed)
    basis = resolve_basis(config, registry, resolved_task=resolved_task, notice=notice)
    config, devices, task = basis.config, basis.devices, basis.task
    data = {device: _load_task(task, device, config.task.data_dir, seed) for device in dict.fromkeys(devices)}
    plan = plan_run(config, registry, data[devices[0]].info, devices)
    quarantine = PluginQuarantine(notice=notice, describe=lambda kind, name: describe_contributor(registry, kind, name))
    env_devices = [devices[i % len(devices)] for i in range(config.run.envs)]
    envs = [
        make_env(
            config, registry, data[devices[i % len(devices)]], devices[i % len(devices)], plan.host_spec,
            plan.host_options, plan.rewards[i], i, quarantine,
            in_fused_group=in_fused_group(config, env_devices, devices[i % len(devices)]),
        )
        for i in range(config.run.envs)
    ]
    groups = fused_groups(envs, fuses(config.device.fused, devices), notice)
    space = plan.space
    used = {
        "task": task.spec.name,
        "host": plan.host_spec.name,
        "policy": plan.policy_spec.name,
        "reward": plan.reward_spec.name,
        "blueprint": space.blueprints[1:],
        "blend_style": space.styles,
    }
    return RunParts(
        config=config, registry=registry, devices=devices, task=task, data=data, host_spec=plan.host_spec,
        reward_spec=plan.reward_spec, envs=envs, groups=groups, space=space, policy_spec=plan.policy_spec,
        policy=plan.policy, policy_device=devices[0], plugins=plugin_set(registry, used), observers=basis.observers,
    )
