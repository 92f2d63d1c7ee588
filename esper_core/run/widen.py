"""Widening: E structurally identical networks become ONE network whose layers are E times as wide.

Why: an env step trains its host for an epoch, and E small hosts trained one after another leave a GPU
launch-bound (measured on an H100: ~16-20k images/s however many hosts), while the same hosts as one
network with grouped convolutions train at 136-210k images/s. Each env's channels occupy their own
contiguous block (env-major), so:

- ``Conv2d(groups=g)`` becomes ``Conv2d(groups=E*g)``: env e's outputs see only env e's inputs;
- ``BatchNorm2d(C)`` becomes ``BatchNorm2d(E*C)``: statistics are per channel, hence per env;
- ``Linear`` becomes ``GroupedLinear``: one batched matmul, env e's features to env e's outputs;
- ``GroupNorm(g, C)`` becomes ``GroupNorm(E*g, E*C)``: its groups never straddle two envs' blocks;
- parameter-free modules (activations, pooling, identities) are shared as they are.

The env's own modules keep working: after widening, each env's parameters and buffers are *views* of its
block of the widened tensors, so an optimiser step, a BatchNorm running-statistics update or a
``load_state_dict`` on either side is seen by the other with no copy. Anything that cannot be widened this
way (a module with parameters of its own kind, a forward that mixes channels across envs) raises
``NotWidenable``; ``check_widened`` compares outputs once so a host that only *looks* widenable is caught.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Callable, Sequence

import torch
from torch import nn

from esper_core.growth.model import memory_format_of


class NotWidenable(ValueError):
    """These modules cannot be fused into one wide module (the message says which part and why)."""


class GroupedLinear(nn.Module):
    """E independent ``Linear(in, out)`` layers on env-major features ``[..., E*in] -> [..., E*out]``."""

    def __init__(self, groups: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.weight = nn.Parameter(torch.empty(groups, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(groups, out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        grouped = x.reshape(-1, self.groups, self.in_features).transpose(0, 1)  # [E, N, in]
        y = torch.baddbmm(self.bias.unsqueeze(1), grouped, self.weight.transpose(1, 2)) if self.bias is not None \
            else torch.bmm(grouped, self.weight.transpose(1, 2))
        return y.transpose(0, 1).reshape(*lead, self.groups * self.out_features)


#: Module types that hold no parameters or buffers and act per element or per channel: shared as they are.
_SHAREABLE: tuple[type[nn.Module], ...] = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.ELU, nn.Hardswish,
    nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten,
)


def _stacked(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach() for t in tensors], dim=0)


Split = Callable[[torch.Tensor, int], torch.Tensor]


class GradBinding:
    """A wide parameter and the env parameters that are views of its blocks. ``bind`` gives each env
    parameter the matching view of the wide gradient, so the envs' own optimisers, gradient-norm
    bookkeeping and fault snapshots work on the fused step exactly as on their own."""

    def __init__(self, wide: nn.Parameter, owners: Sequence[nn.Parameter], split: Split) -> None:
        self.wide, self.owners, self.split = wide, list(owners), split

    def bind(self) -> None:
        grad = self.wide.grad
        for e, param in enumerate(self.owners):
            param.grad = None if grad is None else self.split(grad, e)


def _bind_views(wide: torch.Tensor, owners: Sequence[nn.Module], name: str, split: Split, bindings: list[GradBinding]) -> None:
    """Make each owner's ``name`` tensor a view of its block of ``wide``. A parameter keeps its identity
    (only its ``.data`` moves), so every optimiser that holds it now updates the wide tensor in place."""
    data = wide.data if isinstance(wide, nn.Parameter) else wide
    params = []
    for e, owner in enumerate(owners):
        old = getattr(owner, name)
        if isinstance(old, nn.Parameter):
            old.data = split(data, e)
            params.append(old)
        else:
            owner._buffers[name] = split(data, e)
    if params and isinstance(wide, nn.Parameter):
        bindings.append(GradBinding(wide, params, split))


def _block(size: int) -> Split:
    return lambda t, e: t[e * size : (e + 1) * size]


def _widen_conv(convs: Sequence[nn.Conv2d], bindings: list[GradBinding]) -> nn.Conv2d:
    c = convs[0]
    if c.padding_mode != "zeros":
        raise NotWidenable(f"Conv2d with padding_mode={c.padding_mode!r}")
    n = len(convs)
    wide = nn.utils.skip_init(  # no random initialisation: it would be overwritten, and it draws from the
        nn.Conv2d,              # global generator, which must not move (fused and plain runs stay equal)
        n * c.in_channels, n * c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation,
        groups=n * c.groups, bias=c.bias is not None, device=c.weight.device, dtype=c.weight.dtype,
    )
    wide.weight = nn.Parameter(_stacked([m.weight for m in convs]), requires_grad=c.weight.requires_grad)
    _bind_views(wide.weight, convs, "weight", _block(c.out_channels), bindings)
    if c.bias is not None:
        wide.bias = nn.Parameter(_stacked([m.bias for m in convs]), requires_grad=c.bias.requires_grad)
        _bind_views(wide.bias, convs, "bias", _block(c.out_channels), bindings)
    return wide


def _widen_batchnorm(norms: Sequence[nn.BatchNorm2d], bindings: list[GradBinding]) -> nn.BatchNorm2d:
    b = norms[0]
    n, size = len(norms), b.num_features
    wide = nn.BatchNorm2d(n * size, b.eps, b.momentum, b.affine, b.track_running_stats)
    wide = wide.to(device=(b.weight if b.affine else b.running_mean).device)
    for name in ("weight", "bias"):
        if b.affine:
            setattr(wide, name, nn.Parameter(_stacked([getattr(m, name) for m in norms]), requires_grad=getattr(b, name).requires_grad))
            _bind_views(getattr(wide, name), norms, name, _block(size), bindings)
    if b.track_running_stats:
        for name in ("running_mean", "running_var"):
            wide._buffers[name] = _stacked([getattr(m, name) for m in norms]).clone()
            _bind_views(wide._buffers[name], norms, name, _block(size), bindings)
        wide.num_batches_tracked = b.num_batches_tracked.detach().clone()
    return wide


def _widen_groupnorm(norms: Sequence[nn.GroupNorm], bindings: list[GradBinding]) -> nn.GroupNorm:
    g = norms[0]
    n, size = len(norms), g.num_channels
    wide = nn.GroupNorm(n * g.num_groups, n * size, g.eps, g.affine)  # groups stay inside an env's block
    if g.affine:
        wide = wide.to(device=g.weight.device, dtype=g.weight.dtype)
        for name in ("weight", "bias"):
            setattr(wide, name, nn.Parameter(_stacked([getattr(m, name) for m in norms]), requires_grad=getattr(g, name).requires_grad))
            _bind_views(getattr(wide, name), norms, name, _block(size), bindings)
    return wide


def _index(t: torch.Tensor, e: int) -> torch.Tensor:
    return t[e]


def _widen_linear(linears: Sequence[nn.Linear], bindings: list[GradBinding]) -> GroupedLinear:
    first = linears[0]
    n = len(linears)
    wide = GroupedLinear(n, first.in_features, first.out_features, bias=first.bias is not None)
    wide.weight = nn.Parameter(torch.stack([m.weight.detach() for m in linears]), requires_grad=first.weight.requires_grad)
    _bind_views(wide.weight, linears, "weight", _index, bindings)
    if first.bias is not None:
        wide.bias = nn.Parameter(torch.stack([m.bias.detach() for m in linears]), requires_grad=first.bias.requires_grad)
        _bind_views(wide.bias, linears, "bias", _index, bindings)
    return wide


Replace = Callable[[str, Sequence[nn.Module]], "nn.Module | None"]


def widen(modules: Sequence[nn.Module], replace: Replace | None = None) -> tuple[nn.Module, list[GradBinding]]:
    """One module equivalent to ``modules`` side by side on env-major channels (see the module docstring),
    and the gradient bindings that hand its gradients back to the envs' own parameters.

    ``replace(path, group)`` may return a module to use for a subtree instead (e.g. the slots, whose
    seeds differ per env); ``None`` widens it as usual. Raises ``NotWidenable`` naming the first part that
    cannot be fused. Afterwards every input module's parameters and buffers are views of the wide ones.
    """
    bindings: list[GradBinding] = []
    return _widen(modules, replace or (lambda path, group: None), "", bindings), bindings


def _widen(modules: Sequence[nn.Module], replace: Replace, path: str, bindings: list[GradBinding]) -> nn.Module:
    first = modules[0]
    if any(type(m) is not type(first) for m in modules):
        raise NotWidenable(f"{path or 'the model'}: modules of different types {sorted({type(m).__name__ for m in modules})}")
    custom = replace(path, modules)
    if custom is not None:
        return custom
    if type(first) is nn.Conv2d:
        return _widen_conv(modules, bindings)  # type: ignore[arg-type]
    if type(first) is nn.BatchNorm2d:
        return _widen_batchnorm(modules, bindings)  # type: ignore[arg-type]
    if type(first) is nn.Linear:
        return _widen_linear(modules, bindings)  # type: ignore[arg-type]
    if type(first) is nn.GroupNorm:
        return _widen_groupnorm(modules, bindings)  # type: ignore[arg-type]
    if isinstance(first, _SHAREABLE):
        return first
    own = [name for name, p in first._parameters.items() if p is not None]
    own += [name for name, b in first._buffers.items() if b is not None]
    if own:
        raise NotWidenable(f"{path or 'the model'} ({type(first).__name__}) holds tensors of its own: {own}")
    if not first._modules and type(first).forward is not nn.Module.forward:
        # A parameter-free module with a forward of its own: fine only if it acts per channel; the output
        # check in ``check_widened`` is what catches one that does not.
        return first
    wide = copy.copy(first)
    wide._parameters, wide._buffers = OrderedDict(), OrderedDict()
    wide._modules = OrderedDict()
    for name, child in first._modules.items():
        if child is None:
            wide._modules[name] = None
            continue
        children = [m._modules[name] for m in modules]
        wide._modules[name] = _widen(children, replace, f"{path}.{name}" if path else name, bindings)
    return wide


def env_major(batches: Sequence[torch.Tensor]) -> torch.Tensor:
    """E inputs ``[B, C, ...]`` -> one wide input ``[B, E*C, ...]`` (env e's channels in block e)."""
    stacked = torch.stack(list(batches), dim=1)
    return stacked.reshape(stacked.shape[0], -1, *stacked.shape[3:])


def split_envs(wide: torch.Tensor, n_envs: int) -> torch.Tensor:
    """``[B, E*K]`` (or ``[B, E*C, H, W]``) -> ``[B, E, K]`` (``[B, E, C, H, W]``): env e's block."""
    return wide.reshape(wide.shape[0], n_envs, -1, *wide.shape[2:])


def env_blocks(wide: torch.Tensor, n_envs: int) -> torch.Tensor:
    """``[B, E*C, *spatial]`` -> ``[B, *spatial, E, C]``: env e's block along the second-to-last axis.

    Channels go last so that a channels_last wide activation splits as a view, and so that an env's block
    (``unbind(-2)``) and a group of them (``stack(dim=-2)``) keep channels innermost, the layout the wide
    host's convolutions use (``join_env_blocks`` hands them back in it)."""
    return wide.movedim(1, -1).unflatten(-1, (n_envs, -1))


def join_env_blocks(blocks: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of ``env_blocks``: ``[B, *spatial, m, C]`` -> ``[B, m*C, *spatial]``, in the memory layout of
    ``like`` (the wide activation it came from): the convolutions after it then pick the kernels they pick
    without seeds, so a seed in TRAINING leaves the host's gradients bit-identical."""
    joined = blocks.flatten(-2).movedim(-1, 1)
    return joined.contiguous(memory_format=memory_format_of(like))


def features_of(block: torch.Tensor) -> torch.Tensor:
    """One env's block ``[B, *spatial, C]`` as ordinary features ``[B, C, *spatial]`` (a view)."""
    return block.movedim(-1, 1)


def block_of(features: torch.Tensor) -> torch.Tensor:
    """Inverse of ``features_of`` (a view)."""
    return features.movedim(1, -1)


@torch.no_grad()
def widened_mismatch(wide: nn.Module, modules: Sequence[nn.Module], sample: torch.Tensor, tolerance: float = 1e-2) -> str | None:
    """Why ``wide`` is not ``modules`` side by side on ``sample`` (each env fed its own copy), or None.

    Run in eval mode (BatchNorm on running statistics) and restored afterwards. A forward that mixes envs'
    channels is off by the order of the output itself; summation order (and TF32 convolutions on CUDA)
    only by ~1e-3 of it, hence the ``tolerance`` relative to the output scale."""
    modes = [m.training for m in modules] + [wide.training]
    for m in (*modules, wide):
        m.eval()
    try:
        expected = torch.stack([m(sample) for m in modules], dim=1)
        got = split_envs(wide(env_major([sample] * len(modules))), len(modules))
    finally:
        for m, mode in zip((*modules, wide), modes):
            m.train(mode)
    if got.shape != expected.shape:
        return f"the wide output has shape {tuple(got.shape)}; side by side the envs give {tuple(expected.shape)}"
    error = float((got - expected).abs().max())
    scale = max(1.0, float(expected.abs().max()))
    if not error <= tolerance * scale:
        return f"the wide output differs from the envs' own by {error:.3g} (tolerance {tolerance * scale:.3g})"
    return None


