"""Procedural image generator behind the ``synthetic`` task: textured shapes in clutter, all batched.

Why this design: growth can only pay off on a task where a model's capacity matters. Every image shows
one object, an outline (5 shapes) filled with a two-colour texture (5 textures), in clutter. A class is
a set of (shape, texture) *conjunctions* (see ``class_parts``): neither cue alone says much, a model
has to bind the texture it sees to the outline it sits in, and half the classes are unions of four
unrelated pairs. Distractor patches carry the same textures, so global texture statistics mislead;
fine and coarse stripes differ only in period. Within a short training budget a small network learns
the five matched pairs and stalls near 50%, while a wider/deeper one learns all 25 conjunctions (numbers
in ``benchmarks/synthetic_capacity.py``); given many more epochs a small one slowly closes part of the
gap, so growing capacity early pays.

Every class is invariant under a horizontal flip (shapes are left/right symmetric; textures are
horizontal, vertical or symmetric), so the standard ``CropFlip`` augmentation never changes a label.

How it stays fast (10k images well under 2 s on one core): geometry is computed from separable
per-image row/column vectors broadcast to [N, H, W] (a loop over the few shape and texture kinds,
never over images or pixels), each pixel gets one small integer naming its colour in a per-image
palette, distractors are stamped as small patches with one gather/scatter each, and colour, lighting
and noise are applied once at the end. Everything runs on the CPU with an explicit generator, so the
same seed gives the same images on every machine.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

IMAGE_SIZE = 32
NUM_CLASSES = 10
SHAPES = ("disk", "square", "ring", "cross", "triangle")
TEXTURES = ("h_stripes", "v_stripes", "checker", "fine_h_stripes", "dots")

#: Classes 0-4 are the matching pairs (shape k, texture k). Class 5 + q holds the four mismatched pairs
#: (s, t), s != t, with (s + t) % 5 == q: all 25 pairs are used, each by exactly one class.
MATCHED_CLASSES = 5


def class_parts(labels: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a (shape, texture) pair for each label, uniformly among the pairs of its class.

    Why this mapping: the matched classes are learnt early (one conjunction each) and give a narrow
    model about half the accuracy; a mismatched class is a union of four pairs that share no shape and
    no texture, so it is reachable only by a model holding all twenty conjunction detectors.
    """
    residue = labels - MATCHED_CLASSES
    # The one pair with s == t and 2s = q (mod 5) belongs to a matched class: skip it (2 * 3 = 1 mod 5).
    excluded_shape = (residue * 3) % 5
    shape_off = (excluded_shape + 1 + torch.randint(0, 4, labels.shape, generator=generator)) % 5
    matched = labels < MATCHED_CLASSES
    shapes = torch.where(matched, labels, shape_off)
    textures = torch.where(matched, labels, (residue - shape_off) % 5)
    return shapes, textures


_PATCH = 9  # side of a distractor patch (pixels)
_TWO_PI = 2.0 * math.pi


def _shape_mask(shape: int, dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Inside-the-outline mask from column offsets ``dx`` [m,1,W] and row offsets ``dy`` [m,H,1]."""
    if shape == 0:  # disk
        return dx * dx + dy * dy < r * r
    if shape == 1:  # axis-aligned square
        side = 0.82 * r
        return (dx.abs() < side) & (dy.abs() < side)
    if shape == 2:  # ring
        rho2 = dx * dx + dy * dy
        return (rho2 < r * r) & (rho2 > (0.4 * r) ** 2)
    if shape == 3:  # plus-shaped cross
        arm = 0.36 * r
        ax, ay = dx.abs(), dy.abs()
        return ((ax < r) & (ay < arm)) | ((ax < arm) & (ay < r))
    if shape == 4:  # upward triangle: apex (0, -r), base corners (+-r, 0.7r); image y grows downward
        return (dy < 0.7 * r) & (dx.abs() * 1.7 - (dy + r) < 0.0)
    raise ValueError(f"unknown shape index {shape}")


def _texture_bits(texture: int, u: torch.Tensor, v: torch.Tensor, period: torch.Tensor) -> torch.Tensor:
    """Two-colour fill pattern (bool) from local columns ``u`` [m,1,W] and rows ``v`` [m,H,1]."""
    if texture == 0:  # horizontal stripes
        return torch.sin(_TWO_PI * v / period) > 0
    if texture == 1:  # vertical stripes
        return torch.sin(_TWO_PI * u / period) > 0
    if texture == 2:  # checkerboard
        return (torch.sin(_TWO_PI * u / period) > 0) ^ (torch.sin(_TWO_PI * v / period) > 0)
    if texture == 3:  # fine horizontal stripes: the orientation of texture 0 at 0.6 of its period
        return torch.sin(_TWO_PI * v / (0.6 * period)) > 0
    if texture == 4:  # dot lattice
        return torch.cos(_TWO_PI * u / period) + torch.cos(_TWO_PI * v / period) > 0.9
    raise ValueError(f"unknown texture index {texture}")


def _by_kind(
    kinds: torch.Tensor, count: int, out: torch.Tensor, evaluate: Callable[[int, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Fill ``out[i]`` with ``evaluate(kind, i)`` for the images ``i`` of each kind (loop over kinds only)."""
    for kind in range(count):
        index = (kinds == kind).nonzero(as_tuple=True)[0]
        if index.numel():
            out[index] = evaluate(kind, index).expand(index.numel(), *out.shape[1:])
    return out


def _contrasting(base: torch.Tensor, min_gap: float, generator: torch.Generator) -> torch.Tensor:
    """A random colour per row whose mean brightness differs from ``base`` by at least ``min_gap``."""
    colour = torch.rand(base.shape, generator=generator)
    base_lum = base.mean(dim=-1, keepdim=True)
    direction = torch.where(base_lum < 0.5, 1.0, -1.0)
    gap = (colour.mean(dim=-1, keepdim=True) - base_lum) * direction
    return (colour + (min_gap - gap).clamp_min(0.0) * direction).clamp(0.0, 1.0)


def _distractor_count(difficulty: float) -> int:
    return round(1 + 4 * difficulty)


def _stamp_distractors(
    index_map: torch.Tensor, palette: torch.Tensor, difficulty: float, generator: torch.Generator
) -> None:
    """Stamp small textured patches into ``index_map`` (in place); their colours go to ``palette[:, 3:]``."""
    n, size, _ = index_map.shape
    count = _distractor_count(difficulty)
    local = torch.arange(_PATCH, dtype=torch.float32) - (_PATCH - 1) / 2
    u, v = local.view(1, 1, _PATCH), local.view(1, _PATCH, 1)
    flat = index_map.view(n, size * size)
    offsets = (torch.arange(_PATCH).view(_PATCH, 1) * size + torch.arange(_PATCH).view(1, _PATCH)).view(1, -1)
    for k in range(count):
        present = torch.rand(n, 1, 1, generator=generator) < 0.35 + 0.5 * difficulty
        radius = (2.0 + (1.0 + 1.5 * difficulty) * torch.rand(n, 1, 1, generator=generator)).clamp_max(4.5)
        square = torch.rand(n, 1, 1, generator=generator) < 0.5
        inside = torch.where(square, (u.abs() < radius) & (v.abs() < radius), u * u + v * v < radius * radius)
        inside = inside & present
        kinds = torch.randint(0, len(TEXTURES), (n,), generator=generator)
        period = 3.8 + 0.8 * torch.rand(n, 1, 1, generator=generator)
        phase = 8.0 * torch.rand(n, 2, 1, 1, generator=generator)
        bits = _by_kind(
            kinds,
            len(TEXTURES),
            torch.empty(n, _PATCH, _PATCH, dtype=torch.bool),
            lambda t, i: _texture_bits(t, u + phase[i, 0], v + phase[i, 1], period[i]),
        )
        top = torch.randint(0, size - _PATCH + 1, (n, 2), generator=generator)
        positions = (top[:, :1] * size + top[:, 1:]) + offsets
        current = flat.gather(1, positions)
        stamped = torch.where(inside.view(n, -1), (3 + 2 * k) + bits.view(n, -1).to(torch.uint8), current)
        flat.scatter_(1, positions, stamped)
        colour_a = torch.rand(n, 3, generator=generator)
        palette[:, 3 + 2 * k] = colour_a
        palette[:, 4 + 2 * k] = _contrasting(colour_a, 0.3, generator)


def render(labels: torch.Tensor, difficulty: float, generator: torch.Generator) -> torch.Tensor:
    """uint8 images [N, 3, 32, 32] for the given class labels (CPU, deterministic given the generator)."""
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must lie in [0, 1], got {difficulty}")
    d = float(difficulty)
    n, size = labels.shape[0], IMAGE_SIZE
    shape_ids, texture_ids = class_parts(labels.to(torch.int64), generator)
    grid = torch.arange(size, dtype=torch.float32) + 0.5

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*(shape or (n, 1, 1)), generator=generator)

    # Per-image palette (entry 0 background, 1-2 the object's two colours, 3+ distractors), values 0..1.
    palette = torch.zeros(n, 3 + 2 * _distractor_count(d), 3)
    palette[:, 0] = torch.rand(n, 3, generator=generator)
    index_map = torch.zeros(n, size, size, dtype=torch.uint8)
    _stamp_distractors(index_map, palette, d, generator)

    # The object: a shape (outline) filled with a two-colour texture, shifted and scaled at random.
    shift = 2.0 + 5.0 * d
    radius = uniform(9.5 - 2.5 * d, 11.0)
    cx = size / 2 + uniform(-shift, shift)
    cy = size / 2 + uniform(-shift, shift)
    dx = grid.view(1, 1, size) - cx
    dy = grid.view(1, size, 1) - cy
    period = uniform(4.0 - 0.3 * d, 4.6 + 0.3 * d)
    phase = uniform(0.0, 8.0, n, 2, 1, 1)
    inside = _by_kind(
        shape_ids,
        len(SHAPES),
        torch.empty(n, size, size, dtype=torch.bool),
        lambda s, i: _shape_mask(s, dx[i], dy[i], radius[i]),
    )
    bits = _by_kind(
        texture_ids,
        len(TEXTURES),
        torch.empty(n, size, size, dtype=torch.bool),
        lambda t, i: _texture_bits(t, dx[i] + phase[i, 0], dy[i] + phase[i, 1], period[i]),
    )
    index_map = torch.where(inside, 1 + bits.to(torch.uint8), index_map)
    palette[:, 1] = _contrasting(palette[:, 0], 0.35 - 0.2 * d, generator)
    palette[:, 2] = _contrasting(palette[:, 1], 0.55 - 0.3 * d, generator)

    # Colour lookup, a linear lighting gradient, sensor noise; +0.5 so truncation to uint8 rounds.
    palette = palette.transpose(1, 2).mul(255.0).add(0.5)  # [n, 3, used]
    image = torch.gather(palette, 2, index_map.view(n, 1, -1).to(torch.int64).expand(n, 3, size * size))
    angle = uniform(0.0, _TWO_PI)
    strength = uniform(-1.0, 1.0) * (0.15 + 0.25 * d)
    centred = grid / size - 0.5
    light = 1.0 + strength * (torch.cos(angle) * centred.view(1, 1, size) + torch.sin(angle) * centred.view(1, size, 1))
    image = image.view(n, 3, size, size).mul_(light.unsqueeze(1))
    noise_std = 4.0 + 36.0 * d
    image.add_(torch.randn(n, 3, size, size, generator=generator), alpha=noise_std)
    return image.clamp_(0.0, 255.0).to(torch.uint8)
