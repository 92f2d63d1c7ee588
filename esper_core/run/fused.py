"""Fused env groups: every env's host on one device trained as one wide network (``run.widen``).

Per batch, each env still draws its own batch with its own generator (``next_train_batch``: data order
and augmentation exactly as if it ran alone); the batches go through the wide host in one forward and
one backward; one SGD step updates every env's base host at once (SGD is elementwise, so this is each
env's own step), and each env's own optimiser steps what is only its own: seeds and fossilized seeds
(``finish_train_batch``). The envs' momentum buffers for the base host are views of the wide optimiser's
(``_link_momentum``), so per-env state dicts, fault snapshots and rollbacks, validation and
counterfactuals all work unchanged.

Seeds differ per env (blueprint, stage, alpha), so each slot of the wide host is a ``FusedSlot`` that
hands env e's block of channels to env e's own ``SeedSlot``. A morphology change therefore needs no
rebuild; a new episode (fresh hosts) does (``rebuild``).

A host that cannot be widened (``NotWidenable``, or a forward that mixes channels across envs, caught by
an output check) trains as before, one env after another, with one notice.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import attrs

import torch
import torch.nn.functional as F
from torch import nn

from esper_core.growth.counterfactual import growth_switched_off, measured_slots, scored_contributions
from esper_core.growth.slot import SeedSlot, isolated_seed_output
from esper_core.stages import SeedStage
from esper_core.run.env import MorphogenesisEnv, autocast_context
from esper_core.run.faults import SharedSnapshot
from esper_core.run.own_step import OwnStep
from esper_core.run.widen import (
    GradBinding,
    NotWidenable,
    block_of,
    env_blocks,
    env_major,
    features_of,
    join_env_blocks,
    split_envs,
    widen,
    widened_mismatch,
)


@attrs.define
class _SeedGroup:
    """Seeds of one blueprint in one mode (isolated or blended) in several envs, widened into one module.

    A group is reused only for the very seed modules it holds (``serves``), never by ``id``: a released
    seed's address can go to its successor (CPython reuses freed memory), and a group keyed by ids ran the
    successor on the old seed's widened weights, with no gradient for its own. Holding the modules keeps
    them from being freed while the group is cached."""

    members: tuple[int, ...]  # env indices, in the order of the widened blocks
    seeds: tuple[nn.Module, ...]  # each member's seed module when the group was built
    wide: nn.Module
    bindings: list[GradBinding]

    def serves(self, members: Sequence[int], seeds: Sequence[nn.Module]) -> bool:
        """Whether this group was widened from exactly these envs' current seed modules."""
        return tuple(members) == self.members and len(seeds) == len(self.seeds) and all(
            seed is held for seed, held in zip(seeds, self.seeds)
        )


class FusedSlot(nn.Module):
    """A slot of the wide host: env e's channel block goes through env e's own ``SeedSlot``.

    Seeds of the same blueprint in the same mode (isolated in TRAINING, or blended) in several envs run
    as one widened seed module (``widen`` again: their parameters become views of its blocks), so the
    seeds cost one forward and one backward per group, not one per env; each env's slot still combines
    its own output (isolation, blend style, alpha). After backward ``bind_grads`` hands each env's seed
    its gradient view, so its own optimiser and gradient bookkeeping work unchanged. A group is rebuilt
    when its membership changes (a germination, a prune, a stage change): rarely, since WAIT is the
    common action. A blueprint whose forward mixes channels is found by an output check and runs per env.
    """

    def __init__(self, slots: Sequence[SeedSlot]) -> None:
        super().__init__()
        # Not registered as submodules: the envs own their slots (and seeds); the wide host's parameters
        # are exactly the host's.
        self.__dict__["env_slots"] = tuple(slots)
        self.__dict__["groups"] = {}  # (blueprint, TRAINING, reads detached features) -> _SeedGroup
        self.__dict__["unfusable"] = set()  # blueprints whose widened seed differs from the seeds side by side
        self.__dict__["used"] = []  # the groups of the last forward with gradients

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slots: tuple[SeedSlot, ...] = self.__dict__["env_slots"]
        active = [e for e, slot in enumerate(slots) if not slot.passes_through()]
        if not active:
            return x
        # One unbind in, one stack out: each env's block is a view, and autograd sees two nodes for the
        # whole slot. (Indexing env by env, ``x[:, e]``, costs every env a zero-filled gradient the size of
        # the whole activation: measured, any seed at all then halved a 32-env group's images/s.)
        views = env_blocks(x, len(slots)).unbind(-2)  # E x [B, *spatial, C]
        outs = list(views)
        by_kind: dict[tuple[str, bool, bool], list[int]] = {}
        for e in active:
            slot = slots[e]
            by_kind.setdefault((str(slot.blueprint), slot.stage == SeedStage.TRAINING, slot.stage in slot.isolation), []).append(e)
        used = []
        for kind, members in by_kind.items():
            group = self._group(kind, members, x) if len(members) > 1 else None
            if group is None:
                for e in members:
                    outs[e] = block_of(slots[e](features_of(views[e])))
                continue
            group.wide.train(slots[members[0]].training)
            host = torch.stack([views[e] for e in members], dim=-2)  # [B, *spatial, m, C]
            seed_input = join_env_blocks(host.detach() if kind[2] else host, x)
            seed_out = env_blocks(group.wide(seed_input), len(members))
            for e, out in zip(members, _combine_members(slots, members, host, seed_out)):
                outs[e] = out
            used.append(group)
        if torch.is_grad_enabled():
            self.__dict__["used"] = used
        return join_env_blocks(torch.stack(outs, dim=-2), x)

    def _group(self, kind: tuple[str, bool, bool], members: list[int], x: torch.Tensor) -> _SeedGroup | None:
        if kind[0] in self.__dict__["unfusable"]:
            return None
        slots: tuple[SeedSlot, ...] = self.__dict__["env_slots"]
        seeds = [slots[e].seed for e in members]
        group = self.__dict__["groups"].get(kind)
        if group is not None and group.serves(members, seeds):  # type: ignore[arg-type]
            return group
        try:
            wide, bindings = widen(seeds)  # type: ignore[arg-type]
        except NotWidenable:
            self.__dict__["unfusable"].add(kind[0])
            return None
        generator = torch.Generator(device=x.device).manual_seed(0)  # never the global streams
        shape = (2, x.shape[1] // len(slots), *x.shape[2:])
        sample = torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
        with torch.no_grad():
            if widened_mismatch(wide, seeds, sample) is not None:  # type: ignore[arg-type]
                self.__dict__["unfusable"].add(kind[0])
                return None
        group = _SeedGroup(tuple(members), tuple(seeds), wide, bindings)  # type: ignore[arg-type]
        self.__dict__["groups"][kind] = group
        return group

    def drop_grads(self) -> None:
        """Before a backward: the widened seeds' gradients from the last step are gone."""
        for group in self.__dict__["groups"].values():
            for param in group.wide.parameters():
                param.grad = None

    def bind_grads(self) -> None:
        """After a backward: each env's seed parameters get the view of their widened gradient."""
        for group in self.__dict__["used"]:
            for binding in group.bindings:
                binding.bind()


def _combine_members(
    slots: Sequence[SeedSlot], members: list[int], host: torch.Tensor, seed_out: torch.Tensor
) -> list[torch.Tensor]:
    """Each member env's slot output (``[B, *spatial, C]``, in ``members`` order) from the group's host
    blocks and seed outputs (``[B, *spatial, m, C]`` each), in as few calls as the slots allow: isolated
    seeds in one ``isolated_seed_output`` (its proximal pull is per element, so it is scaled by the member
    count), and blended seeds whose blend style holds no tensors in one call per style, envs stacked along
    the batch with each env's alpha per sample (blend styles already take per-sample alphas and treat
    samples independently, see ``SeedSlot.alpha_override``). Others combine env by env."""
    first, m = slots[members[0]], len(members)
    if m > 1 and first.stage == SeedStage.TRAINING and all(slots[e].proximal == first.proximal for e in members):
        return list(isolated_seed_output(host, seed_out, first.proximal * m).unbind(-2))
    hosts, seeds = host.unbind(-2), seed_out.unbind(-2)
    outs: list[torch.Tensor | None] = [None] * m
    by_style: dict[str, list[int]] = {}
    for j, e in enumerate(members):
        slot = slots[e]
        if slot.stage == SeedStage.TRAINING or _holds_tensors(slot.blend):
            outs[j] = block_of(slot.combine(features_of(hosts[j]), features_of(seeds[j])))
        else:
            by_style.setdefault(str(slot.style), []).append(j)
    for positions in by_style.values():
        if len(positions) == 1:
            j = positions[0]
            outs[j] = block_of(slots[members[j]].combine(features_of(hosts[j]), features_of(seeds[j])))
            continue
        batch = host.shape[0]
        alpha = torch.cat([slots[members[j]].blend_alpha().expand(batch) for j in positions])
        stacked_host = torch.cat([features_of(hosts[j]) for j in positions])  # [k*B, C, *spatial], env after env
        stacked_seed = torch.cat([features_of(seeds[j]) for j in positions])
        combined = block_of(slots[members[positions[0]]].blend(stacked_host, stacked_seed, alpha))
        for j, out in zip(positions, combined.unflatten(0, (len(positions), batch)).unbind(0)):
            outs[j] = out
    return outs  # type: ignore[return-value]


def _holds_tensors(module: nn.Module | None) -> bool:
    return module is None or any(True for _ in module.parameters()) or any(True for _ in module.buffers())


#: The SGD settings a wide optimiser copies from an env's host param group.
_SGD_SETTINGS = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")


def _fused_slots(path: str, group: Sequence[nn.Module]) -> nn.Module | None:
    return FusedSlot(group) if isinstance(group[0], SeedSlot) else None  # type: ignore[arg-type]


class FusedEnvGroup:
    """Envs of one host architecture on one device, trained together (``train_epoch``)."""

    def __init__(self, envs: Sequence[MorphogenesisEnv], notice: Callable[[str], None] | None = None) -> None:
        devices = {env.device for env in envs}
        if len(devices) != 1:
            raise ValueError(f"a fused group needs its envs on one device; got {sorted(map(str, devices))}")
        self.envs = list(envs)
        self.device = envs[0].device
        self.notice = notice
        self.wide: nn.Module | None = None
        self.bindings: list[GradBinding] = []
        self.optimizer: torch.optim.SGD | None = None
        self.fused_slots: list[FusedSlot] = []
        self.unfusable: str | None = None  # why this group trains one env after another (None: it fuses)
        self._snapshot: SharedSnapshot | None = None  # this epoch's copy of the wide tensors

    @property
    def fused(self) -> bool:
        return self.wide is not None

    def rebuild(self) -> None:
        """After every env's ``reset`` (fresh hosts): one wide host whose tensors the envs' hosts view,
        and one SGD over it with the envs' host hyperparameters."""
        self.wide, self.bindings, self.optimizer, self._snapshot = None, [], None, None
        for env in self.envs:
            env.shared_snapshot = None
        if self.unfusable is not None:
            return
        hosts = [env._require_model().host for env in self.envs]
        try:
            wide, bindings = widen(hosts, _fused_slots)
        except NotWidenable as error:
            self._give_up(str(error))
            return
        info = self.envs[0].data.info
        generator = torch.Generator(device=self.device).manual_seed(0)  # never the global streams
        sample = torch.randn(2, info.in_channels, info.image_size, info.image_size, generator=generator, device=self.device)
        why = widened_mismatch(wide, hosts, sample.contiguous(memory_format=self.envs[0].memory_format))
        if why is not None:
            self._give_up(why)
            return
        self.wide, self.bindings = wide, bindings
        self.fused_slots = [m for m in wide.modules() if isinstance(m, FusedSlot)]
        host_group = self.envs[0]._require_model().optimizer.host.param_groups[0]
        settings = {k: v for k, v in host_group.items() if k in _SGD_SETTINGS}
        self.optimizer = torch.optim.SGD([b.wide for b in bindings], **settings)
        if settings.get("momentum", 0.0) > 0:
            for binding in bindings:
                self.optimizer.state[binding.wide]["momentum_buffer"] = torch.zeros_like(binding.wide)
            self._link_momentum()
        for env in self.envs:
            env.shared_snapshot = self.shared_snapshot

    def shared_snapshot(self) -> SharedSnapshot:
        """This epoch's copy of the wide host's tensors and momentum, taken at the first env's
        ``begin_step``; the envs' fault snapshots of their host tensors are views into it. Actions
        never write the base host's tensors, so one copy serves every env's snapshot of the epoch."""
        if self._snapshot is None:
            assert self.wide is not None and self.optimizer is not None
            tensors = [*self.wide.parameters(), *self.wide.buffers()]
            tensors += [state["momentum_buffer"] for state in self.optimizer.state.values() if "momentum_buffer" in state]
            self._snapshot = SharedSnapshot(tensors)
        return self._snapshot

    def _link_momentum(self) -> None:
        """Each env's host momentum buffers become views of the wide ones. A buffer that is no longer the
        view (a fault rollback loads a state dict, which copies) is copied back in first."""
        assert self.optimizer is not None
        for binding in self.bindings:
            wide_buffer = self.optimizer.state[binding.wide]["momentum_buffer"]
            for e, (param, env) in enumerate(zip(binding.owners, self.envs)):
                view = binding.split(wide_buffer, e)
                state = env._require_model().optimizer.host.state[param]
                current = state.get("momentum_buffer")
                if current is not None and current.data_ptr() != view.data_ptr():
                    view.copy_(current)
                state["momentum_buffer"] = view

    def _give_up(self, why: str) -> None:
        self.unfusable = why
        if self.notice is not None:
            self.notice(
                f"note: the {self.envs[0].host_spec.name!r} host cannot be fused ({why}); its "
                f"{len(self.envs)} envs on {self.device} train one after another"
            )

    def train_epoch(self) -> None:
        """Every env's epoch in one wide forward and backward per batch (after their ``begin_step``)."""
        if self.wide is None:
            raise RuntimeError("train_epoch on a group that does not fuse; train its envs one by one")
        wide, envs, optimizer = self.wide, self.envs, self.optimizer
        assert optimizer is not None
        if "momentum_buffer" in optimizer.state.get(self.bindings[0].wide, {}):
            self._link_momentum()
        wide.train()
        own = OwnStep([env._require_model() for env in envs], self.device)
        n = len(envs)
        loss_sums = torch.zeros(n, device=self.device)
        correct = torch.zeros(n, dtype=torch.long, device=self.device)
        seen = 0
        while True:
            batch = self._next_batch()
            if batch is None:
                break
            x, y = batch
            with autocast_context(self.device, envs[0].bf16):
                logits = split_envs(wide(x), n)  # [B, E, K]
                per_sample = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
                losses = per_sample.view(y.shape).mean(dim=0)  # [E]: each env's own mean loss
            optimizer.zero_grad(set_to_none=True)
            own.zero_grad()
            for slot in self.fused_slots:
                slot.drop_grads()
            losses.sum().backward()
            for slot in self.fused_slots:
                slot.bind_grads()
            if own.live:
                own.record_grad_norms(self._host_grad_norms_sq())
            optimizer.step()
            own.step()
            with torch.no_grad():
                loss_sums += losses.detach() * y.shape[0]
                correct += (logits.argmax(dim=-1) == y).sum(dim=0)
            seen += int(y.shape[0])
        own.finish_epoch()
        self._snapshot = None  # the next epoch's snapshots copy the wide tensors afresh
        for e, env in enumerate(envs):
            env.add_train_totals(loss_sums[e], correct[e], seen)

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Every env's next batch as one wide input ``[B, E*C, H, W]`` and labels ``[B, E]`` (None when
        the epoch is done). Envs sharing one task tensor and an augmentation that can take several
        generators at once (``CropFlip.many``) are gathered and augmented in one go; others one by one.
        Either way each env's batch is exactly what its own ``next_train_batch`` would give."""
        envs, first = self.envs, self.envs[0]
        augment = first.data.augment
        if all(env.data is first.data for env in envs) and hasattr(augment, "many"):
            indices = [env.next_train_indices() for env in envs]
            if all(index is None for index in indices):
                return None
            if any(index is None or index.shape != indices[0].shape for index in indices):
                raise RuntimeError("envs of a fused group drew batches of different sizes")
            flat = torch.cat(indices)  # type: ignore[arg-type]
            images = augment.many(first.data.train_x.index_select(0, flat), [env.generator for env in envs])
            x = first.normalise(images)  # [E*B, C, H, W], env after env
            n, size = len(envs), indices[0].shape[0]  # type: ignore[union-attr]
            wide = x.view(n, size, *x.shape[1:]).transpose(0, 1).reshape(size, -1, *x.shape[2:])
            y = first.data.train_y.index_select(0, flat).view(n, size).transpose(0, 1)
            return wide.contiguous(memory_format=first.memory_format), y
        batches = [env.next_train_batch() for env in envs]
        if all(batch is None for batch in batches):
            return None
        if any(batch is None for batch in batches):
            raise RuntimeError("envs of a fused group ran out of batches at different steps")
        x = env_major([b[0] for b in batches]).contiguous(memory_format=first.memory_format)  # type: ignore[index]
        return x, torch.stack([b[1] for b in batches], dim=1)  # type: ignore[index]

    @torch.no_grad()
    def _validate_all(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every env's validation pass in one wide forward per batch (the envs share the split): per env
        ``(loss_sum, correct)`` ([E] each) exactly as its own ``_validate`` would compute them."""
        n, env = len(self.envs), self.envs[0]
        loss_sums = torch.zeros(n, device=self.device)
        correct = torch.zeros(n, dtype=torch.long, device=self.device)
        with self._evaluating() as wide:
            for x, y in self._val_batches():
                with autocast_context(self.device, env.bf16):
                    logits = split_envs(wide(env_major([x] * n).contiguous(memory_format=env.memory_format)), n)
                targets = y.unsqueeze(1).expand(-1, n)
                per_sample = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
                loss_sums += per_sample.view(targets.shape).sum(dim=0)
                correct += (logits.argmax(dim=-1) == targets).sum(dim=0)
        return loss_sums, correct

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[nn.Module]:
        """The wide host, and every env's slots (seeds, blends), in eval mode for a shared validation pass;
        the slots' modes restored afterwards (``train_epoch`` puts the wide host back in training)."""
        wide = self.wide
        if wide is None:
            raise RuntimeError("a fused validation on a group that does not fuse; validate its envs one by one")
        modes = _slots_to_eval([env._require_model() for env in self.envs])
        wide.eval()
        try:
            yield wide
        finally:
            _restore_modes(modes)

    def _val_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The shared validation split in evaluation batches, normalised: what every env's own ``_validate``
        reads."""
        env = self.envs[0]
        size = env.config.training.eval_batch_size
        for start in range(0, env.val_count, size):
            stop = min(start + size, env.val_count)
            yield env.normalise(env.data.val_x[start:stop]), env.data.val_y[start:stop]

    def launch_validation(self) -> None:
        """After the fused epoch: every env's validation and counterfactuals in shared wide passes."""
        loss_sums, correct = self._validate_all()
        for e, member in enumerate(self.envs):
            member.launch_validation((loss_sums[e], correct[e]))
        self._measure_contributions()
        self._measure_without_growth()

    def _measure_without_growth(self) -> None:
        """For envs whose reward asks (``measures_growth``): validation with every grown seed at alpha 0, all
        envs in one wide validation pass (``env._without_growth`` in the plain path; same samples, batches)."""
        asking = [env.measures_growth for env in self.envs]
        if not any(asking):
            return
        with contextlib.ExitStack() as stack:
            switched = [stack.enter_context(growth_switched_off(env._require_model())) for env in self.envs]
            sums = _as_lists(self._validate_all()) if any(switched) else None  # the group's one sync for it
        for e, env in enumerate(self.envs):
            if asking[e]:
                scored = sums is not None and switched[e]
                env.set_accuracy_without_growth(env.validation_result(sums[0][e], sums[1][e])[1] if scored else None)

    def open_episodes(self) -> None:
        """After every env's ``begin_episode`` and ``rebuild``: validate the untrained hosts (fused when the
        group fuses; one sync for the group) and open each env's episode."""
        if self.wide is None:
            for env in self.envs:
                env.open_episode(*env._evaluate_now())
            return
        loss_sums, correct = _as_lists(self._validate_all())
        for e, env in enumerate(self.envs):
            env.open_episode(*env.validation_result(loss_sums[e], correct[e]))

    @torch.no_grad()
    def _measure_contributions(self) -> None:
        """Every env's counterfactuals (``growth.counterfactual.contributions``) in shared wide passes:
        pass k switches off, in each env that has one, its k-th measured seed for the second half of a
        duplicated batch. As many passes as the most measured seeds in one env, not one per seed."""
        envs = self.envs
        names = [measured_slots(env._require_model()) for env in envs]
        passes = max(len(n) for n in names)
        if passes == 0:
            for env in envs:
                env.set_contributions({})
            return
        n_envs, env = len(envs), envs[0]
        models = [e._require_model() for e in envs]
        hits = torch.zeros(passes, 2, n_envs, dtype=torch.long, device=self.device)
        # Loss sums only where a task's metric is read off the loss (as in the plain path).
        losses = torch.zeros(passes, 2, n_envs, device=self.device)
        from_loss = any(member.metric.from_loss for member in envs)
        with self._evaluating() as wide:
            for xb, yb in self._val_batches():
                n = xb.shape[0]
                doubled = env_major([torch.cat([xb, xb])] * n_envs).contiguous(memory_format=env.memory_format)
                for k in range(passes):
                    with contextlib.ExitStack() as overrides:
                        for model, slots in zip(models, names):
                            if k < len(slots):
                                slot = model.slots[slots[k]]
                                alpha = torch.cat([slot.alpha.detach().expand(n), torch.zeros_like(slot.alpha).expand(n)])
                                overrides.enter_context(slot.alpha_override(alpha))
                        with autocast_context(self.device, env.bf16):
                            logits = split_envs(wide(doubled), n_envs)  # [2n, E, K]
                    labels = torch.cat([yb, yb]).unsqueeze(1)
                    right = logits.argmax(dim=-1) == labels
                    hits[k] += right.view(2, n, n_envs).sum(dim=1)
                    if from_loss:
                        per_target = F.cross_entropy(logits.float().transpose(1, 2), labels.expand(-1, n_envs), reduction="none")
                        losses[k] += per_target.view(2, n, n_envs).sum(dim=1)
        # [env][counts, loss sums][pass][with, without]: the group's one sync for the counterfactuals
        per_env = torch.stack([hits.float(), losses]).permute(3, 0, 1, 2).tolist()
        for member, slots, (counts, loss_sums) in zip(envs, names, per_env):
            n = len(slots)
            member.set_contributions(scored_contributions(slots, counts[:n], loss_sums[:n], member.val_count, member.metric))

    def _host_grad_norms_sq(self) -> torch.Tensor:
        """Squared norm of each env's base-host gradient ([E]), read off the wide gradients in one pass."""
        n = len(self.envs)
        grads = [b.wide.grad for b in self.bindings if b.wide.grad is not None]
        return torch.stack([g.reshape(n, -1).float().pow(2).sum(dim=1) for g in grads]).sum(dim=0)


def _as_lists(sums: tuple[torch.Tensor, torch.Tensor]) -> list[list[float]]:
    """A fused validation's per-env ``(loss_sum, correct)`` on the host, in one transfer."""
    return torch.stack([sums[0].float(), sums[1].float()]).tolist()


def _slots_to_eval(models: Sequence[nn.Module]) -> list[tuple[nn.Module, bool]]:
    """Eval mode for every env's slots (their seeds and blends), returning what to restore. Only the slots:
    the envs' host modules never run in a fused group (the wide host does, set apart), and walking all of
    them for every env took 5% of a fused round on an H100."""
    slots = [slot for model in models for slot in model.slots.values()]  # type: ignore[attr-defined]
    modes = [(slot, slot.training) for slot in slots]
    for slot in slots:
        slot.eval()
    return modes


def _restore_modes(modes: Sequence[tuple[nn.Module, bool]]) -> None:
    for module, mode in modes:
        module.train(mode)


def fusing_devices(devices: Sequence[torch.device], enabled: bool) -> set[torch.device]:
    """The devices whose envs train as one fused group (``devices``: each env's): fusing on and two envs
    or more there. Envs elsewhere train interleaved, as they always did."""
    if not enabled:
        return set()
    return {device for device in devices if sum(d == device for d in devices) > 1}


def fused_groups(
    envs: Sequence[MorphogenesisEnv], enabled: bool, notice: Callable[[str], None] | None = None
) -> list[FusedEnvGroup]:
    """One group per device of ``fusing_devices`` (a run's envs share one host architecture); none when
    fusing is off."""
    chosen = fusing_devices([env.device for env in envs], enabled)
    by_device: dict[torch.device, list[MorphogenesisEnv]] = {}
    for env in envs:
        if env.device in chosen:
            by_device.setdefault(env.device, []).append(env)
    return [FusedEnvGroup(group, notice) for group in by_device.values()]
