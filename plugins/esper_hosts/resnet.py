"""``resnet``: a CIFAR-style ResNet with a slot after each of its three stages; ``resnet_impaired``: the
same shape made deliberately narrow and shallow, so growth has capacity to add."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from esper_core.records import SlotPoint, TaskInfo
from esper_core.specs import HostSpec
from esper_core.validators import IncompatibleSettings
from esper_hosts.blocks import BasicBlock, conv_bn_relu, downsampled_size, init_host_weights
from esper_hosts.options import MAX_BLOCKS, as_tuple, positive_ints

STAGE_STRIDES = (1, 2, 2)


def slot_name(stage: int) -> str:
    """Slot after stage ``stage`` (row 0, column ``stage``)."""
    return f"r0c{stage}"


@attrs.frozen(kw_only=True)
class ResNetOptions:
    """``widths``: channels of the three stages; ``blocks``: basic blocks per stage."""

    widths: tuple[int, int, int] = attrs.field(
        default=(16, 32, 64), converter=as_tuple, validator=positive_ints("resnet", 3),
        metadata={"help": "channels of the three stages (a slot after each)"},
    )
    blocks: tuple[int, int, int] = attrs.field(
        default=(2, 2, 2), converter=as_tuple, validator=positive_ints("resnet", 3, MAX_BLOCKS),
        metadata={"help": "basic blocks per stage"},
    )


@attrs.frozen(kw_only=True)
class ImpairedResNetOptions:
    """The impaired host's defaults: half the widths and one block per stage (about 1/8 of ``resnet``)."""

    widths: tuple[int, int, int] = attrs.field(
        default=(8, 16, 32), converter=as_tuple, validator=positive_ints("resnet_impaired", 3),
        metadata={"help": "channels of the three stages (a slot after each); half of resnet's"},
    )
    blocks: tuple[int, int, int] = attrs.field(
        default=(1, 1, 1), converter=as_tuple, validator=positive_ints("resnet_impaired", 3, MAX_BLOCKS),
        metadata={"help": "basic blocks per stage"},
    )


class CifarResNet(nn.Module):
    """Stem conv, three stages of basic blocks (strides 1/2/2), a slot after each stage, global pool, linear."""

    topology = "cnn"

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        widths: tuple[int, int, int] = (16, 32, 64),
        blocks: tuple[int, int, int] = (2, 2, 2),
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.widths = tuple(widths)
        self.stem = conv_bn_relu(in_channels, widths[0])
        stages = []
        in_width = widths[0]
        for width, depth, stride in zip(widths, blocks, STAGE_STRIDES):
            layers = [BasicBlock(in_width, width, stride)] + [BasicBlock(width, width) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*layers))
            in_width = width
        self.stages = nn.ModuleList(stages)
        self.slots = nn.ModuleDict({slot_name(i): nn.Identity() for i in range(len(stages))})
        self.head = nn.Linear(widths[-1], num_classes)
        init_host_weights(self)

    def slot_points(self) -> tuple[SlotPoint, ...]:
        points = []
        size = self.image_size
        for i, (width, stride) in enumerate(zip(self.widths, STAGE_STRIDES)):
            size = downsampled_size(size, stride)
            points.append(SlotPoint(slot_name(i), width, size))
        return tuple(points)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = self.slots[slot_name(i)](stage(x))
        return self.head(x.mean(dim=(2, 3)))


def check_task_info(host: str, info: TaskInfo) -> None:
    """Refuse a task an image host cannot read: a sequence task is the user's choice (``IncompatibleSettings``
    naming the fix), nonsense sizes are the task's fault."""
    if info.sequence_length is not None:
        raise IncompatibleSettings(
            f"host {host!r} reads images, but task {info.name!r} gives token sequences; choose an image task "
            "(e.g. --task synthetic or --task cifar10) or a sequence host (e.g. --host gpt)"
        )
    if info.in_channels < 1 or info.image_size < 1 or info.num_classes < 1:
        raise ValueError(f"{host} host needs in_channels, image_size and num_classes >= 1; got {info!r}")


def build_resnet(options: ResNetOptions | ImpairedResNetOptions, info: TaskInfo) -> CifarResNet:
    check_task_info("resnet_impaired" if isinstance(options, ImpairedResNetOptions) else "resnet", info)
    return CifarResNet(info.in_channels, info.num_classes, info.image_size, options.widths, options.blocks)


RESNET_SPEC = HostSpec(
    name="resnet",
    description="CIFAR ResNet: widths (16,32,64), 2 basic blocks per stage; slots r0c0..r0c2 after each stage.",
    factory=build_resnet,
    topology="cnn",
    options_type=ResNetOptions,
)

IMPAIRED_SPEC = HostSpec(
    name="resnet_impaired",
    description="Deliberately narrow, shallow ResNet (8,16,32), 1 block per stage: room for growth to help.",
    factory=build_resnet,
    topology="cnn",
    options_type=ImpairedResNetOptions,
)
