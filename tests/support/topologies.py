"""One tiny host per topology, with that topology's blueprints, blend styles and input batches, so the
invariant suites run over both without repeating themselves (``TOPOLOGIES``, ``by_topology``).

- ``cnn``: the self-contained ``TinyHost`` of ``lifecycle_strategies`` (two slots, BatchNorm) with its conv
  blueprints and ``add``/``gated`` styles: the suites' original setting, unchanged.
- ``transformer``: the real ``gpt_impaired`` plugin made tiny (width 8, two blocks, a slot after each) on
  an in-memory byte "task" (windows of a few lines of Python), with the real transformer blueprints plus a
  random-output one (real ones start at zero, which would make isolation checks vacuous) and every real
  blend style that declares the topology. Nothing reads the standard library.

What differs between topologies is read from the host's declarations (``isolation``), never assumed.
Slot-level suites use a lone ``SeedSlot`` at the topology's ``slot_point`` (``lone_slot``) with features of
its shape (``features``); suites that feed whole models raw data use ``raw_batch`` and ``prepare`` (uint8
images normalised, or uint8 bytes as token ids), as the core's counterfactual passes receive them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import pytest
import torch
from torch import nn

from esper_blends.plugin import esper_blend_styles
from esper_blueprints.plugin import BUILTIN_BLUEPRINTS
from esper_core.config import LifecycleConfig, TrainingConfig
from esper_core.growth.model import MorphogeneticModel
from esper_core.growth.slot import SeedSlot
from esper_core.records import SlotPoint, TaskInfo
from esper_core.specs import BlendStyleSpec, BlueprintSpec
from esper_core.stages import SeedStage
from esper_hosts.plugin import esper_hosts
from support import lifecycle_strategies as cnn

#: The in-memory byte corpus the transformer host reads (a stand-in for ``pysource``).
TEXT = b"def add(a, b):\n    return a + b\n\n\nclass Point:\n    x: int = 0\n    y: int = 0\n" * 2
SEQUENCE = TaskInfo("tiny_bytes", in_channels=1, image_size=6, num_classes=256, sequence_length=6)
GPT_OPTIONS = {"width": 8, "depth": 2, "heads": 2, "mlp_ratio": 1, "context": 8}


class RandomStreamSeed(nn.Module):
    """Linear -> GELU -> Linear on [B, T, D] with random (non-zero) output, like the CNN ``conv`` seed."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.inner = nn.Linear(channels, channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(nn.functional.gelu(self.inner(x)))


RANDOM_STREAM = BlueprintSpec(
    name="random_stream", description="random-output MLP on the stream (tests only)",
    factory=lambda c, s: RandomStreamSeed(c), topologies=frozenset({"transformer"}),
)


def _gpt_host() -> nn.Module:
    spec = next(spec for spec in esper_hosts() if spec.name == "gpt_impaired")
    return spec.factory(spec.options_type(**GPT_OPTIONS), SEQUENCE)


def _byte_batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` windows of ``TEXT`` at random offsets: inputs [n, T], next-byte targets [n, T]."""
    generator = torch.Generator().manual_seed(seed)
    corpus = torch.tensor(list(TEXT), dtype=torch.long)
    length = SEQUENCE.sequence_length
    starts = torch.randint(0, len(corpus) - length - 1, (n,), generator=generator)
    windows = torch.stack([corpus[s : s + length + 1] for s in starts.tolist()])
    return windows[:, :-1], windows[:, 1:]


def _raw_images(n: int = 37, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, cnn.IMAGE, cnn.IMAGE), dtype=torch.uint8, generator=generator)
    return x, torch.randint(0, cnn.CLASSES, (n,), generator=generator)


def _normalise_images(x: torch.Tensor) -> torch.Tensor:
    return (x.float() - 127.5) / 64.0


def _raw_bytes(n: int = 37, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of random bytes (uint8, as a byte task stores them) and their next-byte targets."""
    generator = torch.Generator().manual_seed(seed)
    windows = torch.randint(0, 256, (n, SEQUENCE.sequence_length + 1), dtype=torch.uint8, generator=generator)
    return windows[:, :-1], windows[:, 1:].long()


def _token_ids(x: torch.Tensor) -> torch.Tensor:
    return x.long()


@dataclass(frozen=True)
class Topology:
    """A host builder with what grows on it (both tiny: each topology costs about the same per example)."""

    name: str
    make_host: Callable[[], nn.Module]
    blueprints: Mapping[str, BlueprintSpec]
    styles: Mapping[str, BlendStyleSpec]
    slots: tuple[str, ...]
    random_blueprint: str  # a seed whose fresh output is non-zero (isolation checks need one)
    normalising_blueprint: str  # a seed with normalisation state (checkpoints must carry it)
    batch: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    slot_point: SlotPoint  # where a lone slot sits (slot-level suites)
    additive_style: str  # the style that blends as h + alpha * s
    raw_batch: Callable[..., tuple[torch.Tensor, torch.Tensor]]  # stored inputs (uint8) and labels
    prepare: Callable[[torch.Tensor], torch.Tensor]  # stored inputs -> what the host reads

    def __str__(self) -> str:
        return self.name

    def model(
        self,
        lifecycle: LifecycleConfig = cnn.FAST_LIFECYCLE,
        training: TrainingConfig = cnn.TRAINING,
        seed: int = 0,
        blueprints: Mapping[str, BlueprintSpec] | None = None,
    ) -> MorphogeneticModel:
        torch.manual_seed(seed)
        return MorphogeneticModel(self.make_host(), dict(blueprints or self.blueprints), dict(self.styles),
                                  lifecycle, training)

    def features(self, n: int = 3, seed: int = 0) -> torch.Tensor:
        """Random features of ``slot_point``'s shape, as the host would hand the slot."""
        return torch.randn(n, *self.slot_point.feature_shape, generator=torch.Generator().manual_seed(seed))

    def seed_module(self, blueprint: str | None = None) -> nn.Module:
        point = self.slot_point
        return self.blueprints[blueprint or self.random_blueprint].factory(point.channels, point.spatial)

    def style_module(self, style: str | None = None) -> nn.Module:
        return self.styles[style or self.additive_style].factory(self.slot_point.channels)

    def lone_slot(self) -> SeedSlot:
        """An empty slot at ``slot_point``, isolating seeds where the topology's host does."""
        return SeedSlot(self.slot_point, isolation=self.isolation)

    @property
    def isolation(self) -> frozenset[SeedStage]:
        """The stages in which the host declares seeds isolated (the core's default: TRAINING only)."""
        return frozenset(getattr(self.make_host(), "seed_isolation", frozenset({SeedStage.TRAINING})))


CNN = Topology(
    name="cnn", make_host=cnn.TinyHost, blueprints=cnn.BLUEPRINTS, styles=cnn.STYLES, slots=cnn.SLOTS,
    random_blueprint="conv", normalising_blueprint="norm_conv", batch=cnn.batch,
    slot_point=SlotPoint("s", 4, 5), additive_style="add", raw_batch=_raw_images, prepare=_normalise_images,
)
TRANSFORMER = Topology(
    name="transformer",
    make_host=_gpt_host,
    blueprints={
        **{spec.name: spec for spec in BUILTIN_BLUEPRINTS if spec.supports("transformer")},
        RANDOM_STREAM.name: RANDOM_STREAM,
    },
    styles={spec.name: spec for spec in esper_blend_styles() if spec.topologies is None or "transformer" in spec.topologies},
    slots=("block0", "block1"),
    random_blueprint=RANDOM_STREAM.name,
    normalising_blueprint="layer_norm",
    batch=_byte_batch,
    slot_point=SlotPoint("s", 8, 6, sequence=True),
    additive_style="linear_add",
    raw_batch=_raw_bytes,
    prepare=_token_ids,
)
TOPOLOGIES: tuple[Topology, ...] = (CNN, TRANSFORMER)

#: ``@by_topology`` runs a test once per topology, with the ``topology`` argument.
by_topology = pytest.mark.parametrize("topology", TOPOLOGIES, ids=str)
