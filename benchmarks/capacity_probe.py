"""A reference CNN family and a short training loop, to check that a task rewards model capacity.

Why: growth can only pay off where a bigger network does better after the same training budget. The
benchmark beside it (``synthetic_capacity.py``) and the tests measure that property with these same
pieces, so the numbers they report describe one thing. Plain PyTorch, data kept on the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from esper_core.data import epoch_batches, eval_slices
from esper_core.records import TaskData


def probe_cnn(width: int, depth: int = 1, in_channels: int = 3, num_classes: int = 10) -> nn.Sequential:
    """Three stages of ``depth`` conv-BN-ReLU layers (widths w, 2w, 4w; max-pool between stages),
    global average pooling, a linear classifier. width 7/depth 1 ~ 5k parameters; 20/2 ~ 114k."""
    layers: list[nn.Module] = []
    channels = in_channels
    for stage, multiplier in enumerate((1, 2, 4)):
        for _ in range(depth):
            out = width * multiplier
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        if stage < 2:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def accuracy(model: nn.Module, data: TaskData, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` on uint8 images ``x`` (one host sync at the end)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for part in eval_slices(x.shape[0], batch_size):
        correct += (model(data.normalise(x[part])).argmax(dim=1) == y[part]).sum()
    return correct.item() / max(1, x.shape[0])


def train_probe(
    model: nn.Module,
    data: TaskData,
    epochs: int,
    batch_size: int = 64,
    lr: float = 0.05,
    seed: int = 0,
    train_samples: int | None = None,
) -> float:
    """Train with SGD (Nesterov, one-cycle LR) and the task's augmentation; return validation accuracy.

    ``train_samples`` trains on the first samples of the train split only (to keep checks cheap).
    """
    device = data.train_x.device
    torch.manual_seed(seed)
    model.to(device)
    x = data.train_x if train_samples is None else data.train_x[:train_samples]
    y = data.train_y if train_samples is None else data.train_y[:train_samples]
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    if x.shape[0] < batch_size:
        raise ValueError(f"train_probe needs at least batch_size={batch_size} training samples, got {x.shape[0]}")
    steps = epochs * (x.shape[0] // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.15)
    generator = torch.Generator(device=device).manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for index in epoch_batches(x.shape[0], batch_size, generator, device, drop_last=True):
            inputs = data.normalise(data.augment(x[index], generator))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = F.cross_entropy(model(inputs), y[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    return accuracy(model, data, data.val_x, data.val_y)
