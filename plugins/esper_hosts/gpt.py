"""``gpt`` and ``gpt_impaired``: a small GPT-style decoder over byte sequences, the ``transformer`` topology.

Pre-norm blocks (LayerNorm -> causal self-attention -> residual, LayerNorm -> GELU MLP -> residual), token
plus learned positional embeddings, and an output layer tied to the token embedding. A slot follows each
chosen block and sees the residual stream [B, T, width]. Logits come out as [B, vocab, T] (classes at dim
1, as ``F.cross_entropy`` and the core's accuracy count expect), targets being the next token per position.

Seeds stay isolated only while TRAINING (``seed_isolation``): from BLENDING on the host's earlier blocks
co-adapt through the seed, which is how growth worked for transformers in the system Esper comes from.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from esper_core.records import SlotPoint, TaskInfo
from esper_core.specs import HostSpec
from esper_core.stages import SeedStage
from esper_core.validators import IncompatibleSettings
from esper_hosts.options import as_tuple

#: Sizes beyond these are typos on this project's scale (and would allocate gigabytes before any message).
MAX_WIDTH, MAX_DEPTH, MAX_CONTEXT = 4096, 64, 8192


def _in_range(low: int, high: int) -> Any:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            raise ValueError(f"gpt host option {attribute.name!r} must be an integer from {low} to {high}; got {value!r}")

    return check


def _check_slots(instance: "GPTOptions", attribute: attrs.Attribute, value: Any) -> None:
    ok = isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok or len(set(value)) != len(value) or not all(0 <= v < instance.depth for v in value):
        raise ValueError(
            f"gpt host option 'slots_after' must list distinct block indices from 0 to depth-1={instance.depth - 1} "
            f"(a slot after each; empty: after every block), e.g. [0, {instance.depth - 1}]; got {value!r}"
        )


def _check_heads(instance: "GPTOptions", attribute: attrs.Attribute, value: Any) -> None:
    _in_range(1, MAX_WIDTH)(instance, attribute, value)
    if instance.width % value:
        raise ValueError(f"gpt host option 'heads' must divide width={instance.width}; got {value}")


@attrs.frozen(kw_only=True)
class GPTOptions:
    """Sizes of the decoder. Defaults fit a 2-core CPU run of a few minutes."""

    width: int = attrs.field(default=64, validator=_in_range(2, MAX_WIDTH), metadata={"help": "residual stream width (embedding size)"})
    depth: int = attrs.field(default=2, validator=_in_range(1, MAX_DEPTH), metadata={"help": "number of decoder blocks"})
    heads: int = attrs.field(default=4, validator=_check_heads, metadata={"help": "attention heads per block (must divide width)"})
    context: int = attrs.field(
        default=256, validator=_in_range(1, MAX_CONTEXT),
        metadata={"help": "longest sequence the positional table covers (the task's sequence length must fit)"},
    )
    mlp_ratio: int = attrs.field(default=4, validator=_in_range(1, 16), metadata={"help": "MLP hidden width / width"})
    slots_after: tuple[int, ...] = attrs.field(
        default=(), converter=as_tuple, validator=_check_slots,
        metadata={"help": "indices of the blocks followed by a slot (from 0 to depth-1); empty: every block"},
    )


class CausalSelfAttention(nn.Module):
    """Multi-head causal attention through ``scaled_dot_product_attention`` (fused kernels where available)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(attended.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    """A pre-norm decoder block."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def slot_name(block: int) -> str:
    return f"block{block}"


class GPT(nn.Module):
    """Token ids [B, T] -> logits [B, vocab, T]; a slot after each block in ``slots_after``."""

    topology = "transformer"
    seed_isolation = frozenset({SeedStage.TRAINING})

    def __init__(self, vocab: int, sequence_length: int, options: GPTOptions) -> None:
        super().__init__()
        self.sequence_length = sequence_length
        self.width = options.width
        self.token = nn.Embedding(vocab, options.width)
        self.position = nn.Embedding(options.context, options.width)
        self.blocks = nn.ModuleList(Block(options.width, options.heads, options.mlp_ratio) for _ in range(options.depth))
        chosen = options.slots_after or tuple(range(options.depth))
        self.slot_after = {index: slot_name(index) for index in sorted(chosen)}
        self.slots = nn.ModuleDict({name: nn.Identity() for name in self.slot_after.values()})
        self.norm = nn.LayerNorm(options.width)
        self._init_weights(options.depth)

    def _init_weights(self, depth: int) -> None:
        """GPT-2 style: normal(0, 0.02), residual output layers scaled by 1/sqrt(2 depth) so the stream's
        variance does not grow with depth."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            for layer in (block.attention.out, block.mlp[2]):
                nn.init.normal_(layer.weight, std=0.02 / (2 * depth) ** 0.5)

    def slot_points(self) -> tuple[SlotPoint, ...]:
        return tuple(SlotPoint(name, self.width, self.sequence_length, sequence=True) for name in self.slot_after.values())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        positions = torch.arange(length, device=tokens.device)
        x = self.token(tokens) + self.position(positions)
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.slot_after:
                x = self.slots[self.slot_after[index]](x)
        logits = self.norm(x) @ self.token.weight.t()  # tied output embedding
        return logits.transpose(1, 2)


def check_sequence_task(options: GPTOptions, info: TaskInfo) -> int:
    """The task's sequence length, or ``IncompatibleSettings`` naming the fix when the task is not one the
    host can read (the user's choice of task or context, not a fault of the host)."""
    host = "gpt_impaired" if isinstance(options, ImpairedGPTOptions) else "gpt"
    if info.sequence_length is None:
        raise IncompatibleSettings(
            f"host {host!r} reads token sequences, but task {info.name!r} gives images; choose a sequence task "
            "(e.g. --task pysource or --task text) or an image host (e.g. --host resnet)"
        )
    if info.sequence_length > options.context:
        raise IncompatibleSettings(
            f"host {host!r}: task {info.name!r} has sequences of {info.sequence_length} tokens but host.options.context "
            f"is {options.context}; raise host.options.context or lower the task's sequence length"
        )
    return info.sequence_length


def build_gpt(options: GPTOptions, info: TaskInfo) -> GPT:
    return GPT(info.num_classes, check_sequence_task(options, info), options)


@attrs.frozen(kw_only=True)
class ImpairedGPTOptions(GPTOptions):
    """``gpt`` made deliberately small (width 32, one block, two heads) so growth has something to add."""

    width: int = attrs.field(default=32, validator=_in_range(2, MAX_WIDTH), metadata={"help": "residual stream width (embedding size)"})
    depth: int = attrs.field(default=1, validator=_in_range(1, MAX_DEPTH), metadata={"help": "number of decoder blocks"})
    heads: int = attrs.field(default=2, validator=_check_heads, metadata={"help": "attention heads per block (must divide width)"})
    context: int = attrs.field(
        default=256, validator=_in_range(1, MAX_CONTEXT),
        metadata={"help": "longest sequence the positional table covers (the task's sequence length must fit)"},
    )
    mlp_ratio: int = attrs.field(default=2, validator=_in_range(1, 16), metadata={"help": "MLP hidden width / width"})
    slots_after: tuple[int, ...] = attrs.field(
        default=(), converter=as_tuple, validator=_check_slots,
        metadata={"help": "indices of the blocks followed by a slot (from 0 to depth-1); empty: every block"},
    )


# What a byte-sequence decoder needs on top of the core presets (``HostSpec.preset_adjustments``). Sizes
# only: the architecture stays the same on every machine, so CPU and GPU runs of a host compare.
# - cpu-quick: 768 windows per epoch in batches of 16 (48 steps; the preset's 384 in batches of 32 is 12)
#   take `esper run --host gpt --task pysource --policy ppo_v2` from 4.14 to 3.71 bits per byte at the end
#   of an episode, for 2m26s of wall time (84 s of CPU) instead of 1m01s (50 s) on the 2-core CPU shared
#   with other work (load average 6; the preset's 60 env steps). 1,024 windows and 512 for validation gave
#   3.55 bpb in 3m40s, too close to the few minutes the demo promises. The untrained controller grows the
#   same either way: 5 germinated, 1 fossilized, 3 pruned.
# - gpu (not timed on a GPU yet): the preset trains on the whole train split every epoch (61k windows of
#   pysource), and this host is not fused (its embeddings cannot be widened), so its 32 envs train one
#   after another. 4,096 windows in batches of 64 and 1,024 for validation match the bytes per epoch of the
#   H100 study in docs/results/2026-11-24-h100-gpt-study (2,048 windows of 128 bytes in batches of 64),
#   where the hosts of default width trained without a fault.
GPT_SPEC = HostSpec(
    name="gpt",
    description="GPT-style pre-norm decoder over bytes (width 64, 2 blocks, 4 heads), a slot after each block.",
    factory=build_gpt,
    topology="transformer",
    options_type=GPTOptions,
    preset_adjustments={
        "cpu-quick": {"training": {"epoch_samples": 768, "batch_size": 16, "val_samples": 256}},
        "gpu": {"training": {"epoch_samples": 4096, "batch_size": 64, "val_samples": 1024}},
    },
)

IMPAIRED_SPEC = HostSpec(
    name="gpt_impaired",
    description="A deliberately small gpt (width 32, 1 block, 2 heads, MLP x2) for growth experiments.",
    factory=build_gpt,
    topology="transformer",
    options_type=ImpairedGPTOptions,
    preset_adjustments=GPT_SPEC.preset_adjustments,  # the same sequences cost the same per sample
)
