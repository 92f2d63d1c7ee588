"""``tiny_cnn``: a host of under two thousand parameters, for fast tests and smoke runs."""

from __future__ import annotations

import attrs
import torch
from torch import nn

from esper_core.records import SlotPoint, TaskInfo
from esper_core.specs import HostSpec
from esper_hosts.blocks import conv_bn_relu, downsampled_size, init_host_weights
from esper_hosts.options import as_tuple, positive_ints
from esper_hosts.resnet import check_task_info, slot_name


@attrs.frozen(kw_only=True)
class TinyCNNOptions:
    """``widths``: channels of the two conv layers (the second one halves the resolution)."""

    widths: tuple[int, int] = attrs.field(
        default=(8, 16), converter=as_tuple, validator=positive_ints("tiny_cnn", 2),
        metadata={"help": "channels of the two conv layers (a slot after each; the second halves the resolution)"},
    )


class TinyCNN(nn.Module):
    """conv-BN-ReLU -> slot r0c0 -> stride-2 conv-BN-ReLU -> slot r0c1 -> global pool -> linear."""

    topology = "cnn"

    def __init__(self, in_channels: int, num_classes: int, image_size: int, widths: tuple[int, int] = (8, 16)) -> None:
        super().__init__()
        self.image_size = image_size
        self.widths = tuple(widths)
        self.layers = nn.ModuleList([conv_bn_relu(in_channels, widths[0]), conv_bn_relu(widths[0], widths[1], 2)])
        self.slots = nn.ModuleDict({slot_name(i): nn.Identity() for i in range(2)})
        self.head = nn.Linear(widths[1], num_classes)
        init_host_weights(self)

    def slot_points(self) -> tuple[SlotPoint, ...]:
        first = self.image_size
        second = downsampled_size(first, 2)
        return (SlotPoint(slot_name(0), self.widths[0], first), SlotPoint(slot_name(1), self.widths[1], second))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = self.slots[slot_name(i)](layer(x))
        return self.head(x.mean(dim=(2, 3)))


def build_tiny_cnn(options: TinyCNNOptions, info: TaskInfo) -> TinyCNN:
    check_task_info("tiny_cnn", info)
    return TinyCNN(info.in_channels, info.num_classes, info.image_size, options.widths)


SPEC = HostSpec(
    name="tiny_cnn",
    description="Two conv layers (8, 16 channels), slots r0c0 and r0c1: a ~1.6k-parameter host for tests.",
    factory=build_tiny_cnn,
    topology="cnn",
    options_type=TinyCNNOptions,
)
