"""One tiny host per topology, with that topology's blueprints, blend styles and input batches, so the
invariant suites run over both without repeating themselves (``TOPOLOGIES``, ``by_topology``).

- ``cnn``: the self-contained ``TinyHost`` of ``lifecycle_strategies`` (two slots, BatchNorm) with its conv
  blueprints and ``add``/``gated`` styles: the suites' original setting, unchanged.
- ``transformer``: the real ``gpt_impaired`` plugin made tiny (width 8, two blocks, a slot after each) on
  an in-memory byte "task" (windows of a few lines of Python), with the real transformer blueprints plus a
  random-output one (real ones start at zero, which would make isolation checks vacuous) and every real
  blend style that declares the topology. Nothing reads the standard library.

What differs between topologies is read from the host's declarations (``isolation``), never assumed.
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
from esper_core.records import TaskInfo
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

    @property
    def isolation(self) -> frozenset[SeedStage]:
        """The stages in which the host declares seeds isolated (the core's default: TRAINING only)."""
        return frozenset(getattr(self.make_host(), "seed_isolation", frozenset({SeedStage.TRAINING})))


CNN = Topology(
    name="cnn", make_host=cnn.TinyHost, blueprints=cnn.BLUEPRINTS, styles=cnn.STYLES, slots=cnn.SLOTS,
    random_blueprint="conv", normalising_blueprint="norm_conv", batch=cnn.batch,
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
)
TOPOLOGIES: tuple[Topology, ...] = (CNN, TRANSFORMER)

#: ``@by_topology`` runs a test once per topology, with the ``topology`` argument.
by_topology = pytest.mark.parametrize("topology", TOPOLOGIES, ids=str)
