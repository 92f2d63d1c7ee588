"""The grown network as a standalone artefact: what ``esper export`` writes and ``load_grown_network`` reads.

Checkpoints hold no host tensors (episodes restart at round boundaries), so the network comes from
replaying an episode: ``esper export`` plays the final episode deterministically, exactly as ``esper
eval`` does, and saves each env's host as it ends. Every seed that shapes the output is kept with its
blueprint, blend style and current alpha frozen in (fossilized seeds for good, and seeds still blending
or fading); seeds that do not reach the output (pruned and gone, TRAINING, an empty slot) are left out.

On disk, per env: ``manifest.json`` (host name and options, task shape and normalisation, blueprint,
style, alpha and stage per slot, provenance) and ``state_dict.pt`` (tensors only, read with
``weights_only=True``). Loading needs the host, blueprint and style plugins (to rebuild the modules) and
nothing of the run machinery: no runner, env, optimiser or checkpoint. Both files are treated as
untrusted: the manifest is structured strictly and nothing in either can run code.

This module sits in the ``run`` room (it rebuilds modules through the plugin registry), so
``esper_core.api`` does not re-export it: import ``esper_core.run.export.load_grown_network``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import torch
from torch import nn

import esper_core
from esper_core.config.converter import CONVERTER
from esper_core.config.loading import ConfigError, plain_json, structure_options
from esper_core.growth.model import MorphogeneticModel
from esper_core.growth.slot import SeedSlot
from esper_core.plugins.registry import UnknownPluginError
from esper_core.records import TaskInfo
from esper_core.run.rundir import write_atomic, write_json_atomic
from esper_core.run.seeding import forked_rng
from esper_core.stages import SeedStage

EXPORT_FORMAT = 1
MANIFEST = "manifest.json"
STATE_DICT = "state_dict.pt"
#: A manifest is a few KiB; anything far larger is not one (and is not read into memory).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

S = SeedStage
_BLENDING_STAGES = frozenset({S.BLENDING, S.HOLDING, S.FOSSILIZED})


class ExportError(ValueError):
    """An export cannot be written or read back; the message names the file and what is wrong."""


# ------------------------------------------------------------------------------------------- records
@attrs.frozen(kw_only=True)
class SlotRecord:
    """One slot of the grown network."""

    slot: str
    stage: str  # SeedStage name at the end of the episode
    blueprint: str | None
    style: str | None
    alpha: float  # the blend weight frozen into the exported network
    seed_params: int  # parameters of the seed and its blend style
    in_network: bool  # the seed shapes the output and is part of the exported network


@attrs.frozen(kw_only=True)
class TaskRecord:
    """What the network was built for, and how its inputs are normalised."""

    name: str
    in_channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]  # per channel, for pixels scaled to [0, 1]
    std: tuple[float, ...]


@attrs.frozen(kw_only=True)
class Contributor:
    """Where a plugin the network needs came from (to say what to install when it is missing)."""

    distribution: str | None
    version: str | None


@attrs.frozen(kw_only=True)
class ExportManifest:
    """Everything needed to rebuild the network's modules before its tensors are loaded."""

    format: int
    esper_version: str
    run_name: str
    checkpoint: str
    round: int  # rounds of training behind the policy that grew this network
    env: int
    episode: int
    task: TaskRecord
    host: str
    host_options: dict[str, Any]
    slots: tuple[SlotRecord, ...]
    plugins: dict[str, Contributor]  # "kind:name" -> contributor, for the host and every seed in the network
    parameters: int  # parameters of the exported network
    test_acc: float | None  # held-out accuracy measured at export (None when not measured)


@attrs.frozen(kw_only=True, eq=False)
class GrownNetwork:
    """A loaded export: the network (eval mode; it takes normalised float images) and its manifest."""

    network: nn.Module
    manifest: ExportManifest

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW pixels -> the float input the network expects (the task's normalisation)."""
        device = next(self.network.parameters()).device
        mean = torch.tensor(self.manifest.task.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.manifest.task.std, device=device).view(1, -1, 1, 1)
        return (images.to(device).float() / 255.0 - mean) / std

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.network(inputs)


class GrownSlot(nn.Module):
    """A slot of an exported network: ``blend(h, seed(h), alpha)`` with alpha fixed (a buffer).

    Attribute names match ``SeedSlot``'s, so the env model's tensors load into it key for key.
    """

    def __init__(self, seed: nn.Module, blend: nn.Module, alpha: float) -> None:
        super().__init__()
        self.seed = seed
        self.blend = blend
        self.register_buffer("alpha", torch.tensor(float(alpha)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.blend(h, self.seed(h), self.alpha)


# ----------------------------------------------------------------------------------------- morphology
def shapes_output(slot: SeedSlot) -> bool:
    """Whether the slot's seed changes the host's output at inference (no gradient): blending, holding,
    fossilized, or pruned and still fading out."""
    if slot.seed is None:
        return False
    if slot.stage in _BLENDING_STAGES:
        return True
    return slot.stage == S.PRUNED and not (slot.schedule.done and slot.schedule.target == 0.0)


def slot_records(model: MorphogeneticModel) -> tuple[SlotRecord, ...]:
    """The morphology of a grown model: blueprint, style, alpha and stage per slot."""
    return tuple(
        SlotRecord(
            slot=name,
            stage=slot.stage.name,
            blueprint=slot.blueprint,
            style=slot.style,
            alpha=float(slot.schedule.value),
            seed_params=int(slot.seed_params),
            in_network=shapes_output(slot),
        )
        for name, slot in model.slots.items()
    )


def morphology_rows(records: tuple[SlotRecord, ...]) -> list[dict[str, Any]]:
    """JSON-able slot records (``eval.json``, the ``eval_result`` event)."""
    return [attrs.asdict(record) for record in records]


def grown_host(model: MorphogeneticModel) -> nn.Module:
    """A CPU copy of the model's host with each slot replaced by what it computes at inference."""
    host = copy.deepcopy(model.host).cpu()
    for name, slot in list(host.slots.items()):
        if isinstance(slot, SeedSlot) and shapes_output(slot):
            host.slots[name] = GrownSlot(slot.seed, slot.blend, float(slot.alpha))
        else:
            host.slots[name] = nn.Identity()
    return host.float().eval()


# ---------------------------------------------------------------------------------------------- write
def export_env(
    env: Any,
    directory: Path,
    *,
    run_name: str,
    checkpoint: str,
    round_index: int,
    registry: Any,
    test_acc: float | None = None,
) -> ExportManifest:
    """Write ``env``'s current network (call after an episode) as ``manifest.json`` + ``state_dict.pt``."""
    model: MorphogeneticModel = env.model
    if model is None:
        raise ExportError(f"env {env.index} has no network yet: play an episode before exporting")
    network = grown_host(model)
    records = slot_records(model)
    used = {f"host:{env.host_spec.name}": ("host", env.host_spec.name)}
    for record in records:
        if record.in_network:
            used[f"blueprint:{record.blueprint}"] = ("blueprint", record.blueprint)
            used[f"blend_style:{record.style}"] = ("blend_style", record.style)
    plugins = {}
    for key, (kind, name) in used.items():
        info = registry.contributor(kind, name)
        plugins[key] = Contributor(distribution=info.distribution, version=info.version)
    info = env.data.info
    manifest = ExportManifest(
        format=EXPORT_FORMAT,
        esper_version=esper_core.__version__,
        run_name=run_name,
        checkpoint=checkpoint,
        round=round_index,
        env=env.index,
        episode=env.episode,
        task=TaskRecord(
            name=info.name, in_channels=info.in_channels, image_size=info.image_size, num_classes=info.num_classes,
            mean=tuple(float(m) for m in env.data.mean), std=tuple(float(s) for s in env.data.std),
        ),
        host=env.host_spec.name,
        host_options=plain_json(CONVERTER.unstructure(env.host_options)),
        slots=records,
        plugins=plugins,
        parameters=sum(p.numel() for p in network.parameters()),
        test_acc=test_acc,
    )
    directory.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().clone() for key, value in network.state_dict().items()}
    write_atomic(directory / STATE_DICT, lambda handle: torch.save(state, handle))  # old or whole new, fsynced
    write_json_atomic(directory / MANIFEST, plain_json(CONVERTER.unstructure(manifest)))
    return manifest


# ----------------------------------------------------------------------------------------------- read
def read_manifest(directory: Path | str) -> ExportManifest:
    """The manifest of an export directory, strictly checked (unknown keys and wrong types name the key)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ExportError(f"{path} is missing: {directory} is not an export directory (see `esper export`)")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ExportError(f"{path} is {path.stat().st_size} bytes; a manifest is a few KiB, refusing to read it")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"{path} is not valid JSON: {error}") from None
    if isinstance(data, dict) and data.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{path}: export format {data.get('format')!r}; this Esper reads format {EXPORT_FORMAT}")
    try:
        # structure_options wants a spec; the manifest class is the "options type" of this one.
        return structure_options(SimpleNamespace(options_type=ExportManifest), data, "", source=str(path))
    except ConfigError as error:
        raise ExportError(str(error).replace("invalid configuration", "invalid export manifest")) from None


def _spec(registry: Any, manifest: ExportManifest, kind: str, name: str, path: Path) -> Any:
    try:
        return registry.get(kind, name)
    except UnknownPluginError as error:
        origin = manifest.plugins.get(f"{kind}:{name}")
        hint = f"; it came from {origin.distribution} {origin.version}: install that" if origin and origin.distribution else ""
        raise ExportError(f"{path}: the network needs {kind} {name!r}, which is not installed ({error}){hint}") from None


def load_grown_network(
    directory: Path | str, registry: Any = None, *, device: torch.device | str = "cpu"
) -> GrownNetwork:
    """Rebuild an exported network from its plugins and load its tensors; returns it in eval mode.

    ``registry`` defaults to every installed plugin (``esper_core.plugins.load_registry``). The network
    takes normalised images (``GrownNetwork.normalise`` turns uint8 pixels into them) and returns logits.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    manifest_path = directory / MANIFEST
    if registry is None:
        from esper_core.plugins.loader import load_registry

        registry = load_registry()
    host_spec = _spec(registry, manifest, "host", manifest.host, manifest_path)
    try:
        options = structure_options(host_spec, manifest.host_options, "host_options", source=str(manifest_path))
    except ConfigError as error:
        raise ExportError(str(error)) from None
    task = manifest.task
    info = TaskInfo(task.name, in_channels=task.in_channels, image_size=task.image_size, num_classes=task.num_classes)
    with forked_rng():  # building modules draws initial weights: leave the caller's RNG alone
        host = host_spec.factory(options, info)
        points = {point.name: point for point in host.slot_points()}
        recorded = [record.slot for record in manifest.slots]
        if recorded != list(points):
            raise ExportError(f"{manifest_path}: slots {recorded} do not match host {manifest.host!r}'s {list(points)}")
        for record in manifest.slots:
            if not record.in_network:
                continue
            if record.blueprint is None or record.style is None:
                raise ExportError(f"{manifest_path}: slot {record.slot!r} is in the network but names no blueprint/style")
            point = points[record.slot]
            blueprint = _spec(registry, manifest, "blueprint", record.blueprint, manifest_path)
            style = _spec(registry, manifest, "blend_style", record.style, manifest_path)
            host.slots[record.slot] = GrownSlot(
                blueprint.build(point.channels, point.spatial), style.factory(point.channels), record.alpha
            )
    state_path = directory / STATE_DICT
    if not state_path.is_file():
        raise ExportError(f"{state_path} is missing")
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses anything but tensors and plain containers
        raise ExportError(f"{state_path} is not a tensor file Esper wrote: {type(error).__name__}: {error}") from None
    if not isinstance(state, dict):
        raise ExportError(f"{state_path} must hold a dict of tensors; got {type(state).__name__}")
    try:
        host.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ExportError(f"{state_path} does not fit the network the manifest describes: {error}") from None
    return GrownNetwork(network=host.to(device).eval(), manifest=manifest)
