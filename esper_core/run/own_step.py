"""What each env of a fused group owns (seeds, fossilized seeds), stepped for every env at once.

Why: after the wide backward, each env used to zero, measure and step its own seeds with its own
optimisers: a few dozen small kernels and optimiser calls per env per batch, which took 14% of a fused
round on an H100 (``docs/results/2026-11-24-h100-fused-envs``). SGD is elementwise, so one multi-tensor
SGD call over every env's own parameters that share hyperparameters is each env's own step; the
momentum buffers stay in each env's optimiser state (checkpoints, fault snapshots and rollbacks see them
as before). The gradient-norm bookkeeping (``MorphogeneticModel.record_grad_norms``) becomes one
multi-tensor norm and one scatter-add for the group, summed over the epoch and handed to each model at
its end. The morphology cannot change during an epoch, so the layout is built once per epoch.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.optim.sgd import sgd as sgd_step

from esper_core.growth.model import MorphogeneticModel

#: The SGD settings a param group carries that the functional SGD takes.
_SGD_KEYS = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")


class OwnStep:
    """One epoch's own-parameter step for the models of a fused group (built after their actions)."""

    def __init__(self, models: Sequence[MorphogeneticModel], device: torch.device) -> None:
        self.models = list(models)
        self.groups = [group for model in self.models for group in model.optimizer.own_groups()]
        self.params: list[nn.Parameter] = [p for group, _ in self.groups for p in group["params"]]
        self.live = [e for e, model in enumerate(self.models) if model.has_live_seeds()]
        n_slots = len(self.models[0].slot_names) if self.models else 0
        self.bins = n_slots + 1  # per live env: its own host gradients, then one bin per slot
        norm_params: list[nn.Parameter] = []
        targets: list[int] = []
        for i, e in enumerate(self.live):
            fossils, seeds = self.models[e].grad_norm_sources()
            norm_params += fossils
            targets += [i * self.bins] * len(fossils)
            for k, params in enumerate(seeds):
                norm_params += params
                targets += [i * self.bins + 1 + k] * len(params)
        self.norm_params = norm_params
        self.targets = torch.tensor(targets, dtype=torch.long, device=device)
        self.live_index = torch.tensor(self.live, dtype=torch.long, device=device)
        self.ratio_sum = torch.zeros(len(self.live), n_slots, device=device)
        self.batches = 0
        self._zero = torch.zeros((), device=device)

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def record_grad_norms(self, outside_sq: torch.Tensor) -> None:
        """After backward: every live env's seed/host gradient-norm ratios (``outside_sq``: each env's
        base-host squared gradient norm, ``[E]``), accumulated on the device."""
        if not self.live:
            return
        sums = torch.zeros(len(self.live) * self.bins, device=self.ratio_sum.device)
        if self.norm_params:
            grads = [p.grad if p.grad is not None else self._zero for p in self.norm_params]
            norms = torch.stack(torch._foreach_norm(grads)).float()
            sums.index_add_(0, self.targets, norms * norms)
        sums = sums.view(len(self.live), self.bins)
        host = (sums[:, 0] + outside_sq.index_select(0, self.live_index).float()).sqrt().clamp_min(1e-12)
        self.ratio_sum += sums[:, 1:].sqrt() / host.unsqueeze(1)
        self.batches += 1

    @torch.no_grad()
    def step(self) -> None:
        """Each env's SGD step of its own parameters; groups with equal settings share one call."""
        batches: dict[tuple[Any, ...], list[tuple[nn.Parameter, dict[Any, Any]]]] = {}
        for group, state in self.groups:
            key = tuple(group[k] for k in _SGD_KEYS)
            batches.setdefault(key, []).extend((p, state) for p in group["params"] if p.grad is not None)
        for key, members in batches.items():
            if not members:
                continue
            settings = dict(zip(_SGD_KEYS, key))
            params = [p for p, _ in members]
            buffers = [state[p].get("momentum_buffer") if p in state else None for p, state in members]
            sgd_step(params, [p.grad for p in params], buffers, **settings)
            if settings["momentum"] != 0:
                for (param, state), buffer in zip(members, buffers):
                    state.setdefault(param, {})["momentum_buffer"] = buffer

    def finish_epoch(self) -> None:
        """Hand each live env's summed ratios to its model (as its own ``record_grad_norms`` would have)."""
        for i, e in enumerate(self.live):
            self.models[e].add_grad_ratios(self.ratio_sum[i], self.batches)
