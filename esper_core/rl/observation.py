"""What a learning policy sees: observations -> fixed-width float features + blueprint indices, and a
running mean/std normaliser for those features.

The encoder is stateless (every field comes from the current ``EnvObservation``, so no "previous value"
can go stale; memory across steps is the policy's recurrent state). Index maps (blueprint, style, stage,
op) are built from their single source of truth (the action space, ``SeedStage``, ``Op``) at construction;
a name that is not in a map is an error naming it, never a silent 0.

Clamp ranges (value after the transform). "cut" marks the bounds that are artificial: a value sitting on
one counts towards ``ObservationEncoder.saturation``, so a clamp that bites all the time shows up in the
policy's diagnostics (a natural bound such as a loss of 0 does not count):

=========================== ===================================== =============== =======
feature                     transform                             range           cut
=========================== ===================================== =============== =======
epoch_progress              epoch / episode_length (observation)  [0, 1]          -
train/val_loss              log1p(loss) (a loss above e^8 - 1     [0, 8]          high
                            ~ 2980 saturates; language models
                            and 1000-class tasks fit)
train/val/best_val_acc      as is                                 [0, 1]          -
val_acc_gap_to_best         best_val_acc - val_acc                [0, 1]          -
generalisation_gap          train_acc - val_acc                   [-1, 1]         -
val_acc_delta               as is                                 [-0.5, 0.5]     both
val_loss_delta              as is                                 [-5, 5]         both
plateau                     plateau_epochs / episode_length       [0, 1]          -
param_budget_used           as is                                 [0, 2]          high
seed_param_share            seed_params / host_params             [0, 2]          high
live_seed_fraction          live seeds / lifecycle.max_seeds      [0, 1]          -
dormant_slot_fraction       dormant slots / slots                 [0, 1]          -
germination_open            env-wide germination gates hold       {0, 1}          -
last_op=<op>, last_ok       one-hot, flag                         {0, 1}          -
slot: stage=<stage>         one-hot over SeedStage                {0, 1}          -
slot: alpha, alpha_target   as is                                 [0, 1]          -
slot: alpha_at_target       flag                                  {0, 1}          -
slot: epochs_in_stage       / episode_length (config)             [0, 1]          high
slot: seed_age              / episode_length (config)             [0, 1]          high
slot: embargo_left          / (embargo + resetting epochs)        [0, 1]          -
slot: can_<op>              per-slot lifecycle gates hold         {0, 1}          -
slot: param_share           seed_params / host_params             [0, 2]          high
slot: contribution          last measured contribution, 0 if none [-1, 1]         both
slot: contribution_measured flag (the 0 above is "not measured")  {0, 1}          -
slot: grad_norm_ratio       log1p(ratio)                          [0, log1p(1e3)] high
slot: style=<style>         one-hot over the action space styles  {0, 1}          -
=========================== ===================================== =============== =======
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import attrs
import torch

from esper_core.config.sections import LifecycleConfig
from esper_core.growth.lifecycle import SLOT_OPS, germination_allowed, legal_ops_for_slot
from esper_core.ops import Op
from esper_core.records import EnvObservation, SlotSummary
from esper_core.stages import LIVE_SEED_STAGES, SeedStage

_LOSS_MAX = 8.0
_GRAD_RATIO_MAX = math.log1p(1e3)


@attrs.frozen
class FeatureInfo:
    """One float feature: its name, the range its value is clamped to, and which bounds are artificial
    cuts (counted as saturation when hit) rather than the value's natural range (0 for a loss, 0 epochs)."""

    name: str
    low: float
    high: float
    cut_low: bool = False
    cut_high: bool = False


@attrs.frozen(eq=False)
class EncodedObservations:
    """``features`` float32 [E, D] (raw, clamped, not normalised); ``blueprint_index`` int64 [E, S]."""

    features: torch.Tensor
    blueprint_index: torch.Tensor


def _index_map(head: str, names: Sequence[Any]) -> dict[Any, int]:
    mapping = {name: i for i, name in enumerate(names)}
    if len(mapping) != len(names):
        raise ValueError(f"observation index map for {head!r}: duplicate names in {list(names)!r}")
    return mapping


def _clamp(value: float, low: float, high: float, nan: float = 0.0) -> float:
    """Clamp into [low, high]; NaN (which compares false with everything) becomes ``nan``."""
    if value != value:
        return nan
    return low if value < low else high if value > high else value


def _loss(value: float) -> float:
    """log1p of a loss; a NaN or infinite loss reads as the worst representable one."""
    if not math.isfinite(value):
        return _LOSS_MAX
    return _clamp(math.log1p(max(0.0, value)), 0.0, _LOSS_MAX)


class ObservationEncoder:
    """``EnvObservation``s -> float features [E, D] + blueprint indices [E, S] (index into the action
    space's blueprint head, ``noop`` = 0 for a slot without a seed) for a learned embedding.

    ``episode_length`` (the run's) scales the per-slot timers; the epoch progress uses each observation's
    own ``episode_length``.
    """

    def __init__(self, space: Any, lifecycle: LifecycleConfig, episode_length: int) -> None:
        if episode_length < 1:
            raise ValueError(f"ObservationEncoder: episode_length must be >= 1; got {episode_length}")
        self.space = space
        self.lifecycle = lifecycle
        self.episode_length = int(episode_length)
        self.slot_names: tuple[str, ...] = tuple(space.slots)
        self.blueprint_index = _index_map("blueprint", space.blueprints)
        self.style_index = _index_map("style", space.styles)
        self.stages: tuple[SeedStage, ...] = tuple(SeedStage)
        self.ops: tuple[Op, ...] = tuple(Op)
        # Coverage: every entry of every source of truth has a slot in the feature vector.
        if set(self.blueprint_index) != set(space.blueprints) or space.blueprints[0] != "noop":
            raise AssertionError(f"blueprint index map does not cover the action space: {space.blueprints!r}")
        if set(self.style_index) != set(space.styles):
            raise AssertionError(f"style index map does not cover the action space: {space.styles!r}")
        self.base_features = self._base_features()
        self.slot_features = self._slot_features()
        self.features: tuple[FeatureInfo, ...] = self.base_features + tuple(
            attrs.evolve(f, name=f"{slot}.{f.name}") for slot in self.slot_names for f in self.slot_features
        )
        self.float_dim = len(self.features)
        self.n_slots = len(self.slot_names)
        self.n_blueprints = len(space.blueprints)
        self._embargo_span = max(1, lifecycle.embargo_epochs + lifecycle.resetting_epochs)

    # --------------------------------------------------------------------------------------- layout
    def _base_features(self) -> tuple[FeatureInfo, ...]:
        return (
            FeatureInfo("epoch_progress", 0.0, 1.0),
            FeatureInfo("train_loss", 0.0, _LOSS_MAX, cut_high=True),
            FeatureInfo("val_loss", 0.0, _LOSS_MAX, cut_high=True),
            FeatureInfo("train_acc", 0.0, 1.0),
            FeatureInfo("val_acc", 0.0, 1.0),
            FeatureInfo("best_val_acc", 0.0, 1.0),
            FeatureInfo("val_acc_gap_to_best", 0.0, 1.0),
            FeatureInfo("generalisation_gap", -1.0, 1.0),
            FeatureInfo("val_acc_delta", -0.5, 0.5, cut_low=True, cut_high=True),
            FeatureInfo("val_loss_delta", -5.0, 5.0, cut_low=True, cut_high=True),
            FeatureInfo("plateau", 0.0, 1.0),
            FeatureInfo("param_budget_used", 0.0, 2.0, cut_high=True),
            FeatureInfo("seed_param_share", 0.0, 2.0, cut_high=True),
            FeatureInfo("live_seed_fraction", 0.0, 1.0),
            FeatureInfo("dormant_slot_fraction", 0.0, 1.0),
            FeatureInfo("germination_open", 0.0, 1.0),
            *(FeatureInfo(f"last_op={op.name}", 0.0, 1.0) for op in self.ops),
            FeatureInfo("last_action_ok", 0.0, 1.0),
        )

    def _slot_features(self) -> tuple[FeatureInfo, ...]:
        return (
            *(FeatureInfo(f"stage={stage.name}", 0.0, 1.0) for stage in self.stages),
            FeatureInfo("alpha", 0.0, 1.0),
            FeatureInfo("alpha_target", 0.0, 1.0),
            FeatureInfo("alpha_at_target", 0.0, 1.0),
            FeatureInfo("epochs_in_stage", 0.0, 1.0, cut_high=True),
            FeatureInfo("seed_age", 0.0, 1.0, cut_high=True),
            FeatureInfo("embargo_left", 0.0, 1.0),
            *(FeatureInfo(f"can_{op.name}", 0.0, 1.0) for op in SLOT_OPS),
            FeatureInfo("param_share", 0.0, 2.0, cut_high=True),
            FeatureInfo("contribution", -1.0, 1.0, cut_low=True, cut_high=True),
            FeatureInfo("contribution_measured", 0.0, 1.0),
            FeatureInfo("grad_norm_ratio", 0.0, _GRAD_RATIO_MAX, cut_high=True),
            *(FeatureInfo(f"style={style}", 0.0, 1.0) for style in self.style_index),
        )

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def saturation(self, raw: torch.Tensor) -> torch.Tensor:
        """Fraction [D] of rows of raw features [..., D] that sit on an artificial clamp bound."""
        device = raw.device
        low = torch.tensor([f.low for f in self.features], dtype=raw.dtype, device=device)
        high = torch.tensor([f.high for f in self.features], dtype=raw.dtype, device=device)
        cut_low = torch.tensor([f.cut_low for f in self.features], dtype=torch.bool, device=device)
        cut_high = torch.tensor([f.cut_high for f in self.features], dtype=torch.bool, device=device)
        rows = raw.reshape(-1, self.float_dim)
        hit = (cut_low & (rows <= low)) | (cut_high & (rows >= high))
        return hit.float().mean(0)

    # ------------------------------------------------------------------------------------- encoding
    def encode(
        self, observations: Sequence[EnvObservation], device: torch.device | str | None = None
    ) -> EncodedObservations:
        """Build the rows on the host (plain Python values) and move them with one transfer each."""
        if len(observations) == 0:
            raise ValueError("ObservationEncoder.encode needs at least one observation")
        rows: list[list[float]] = []
        indices: list[list[int]] = []
        for env, obs in enumerate(observations):
            names = tuple(s.name for s in obs.slots)
            if names != self.slot_names:
                raise ValueError(
                    f"observation of env {env} has slots {names}; the encoder was built for {self.slot_names}"
                )
            row = self._base_row(obs)
            for slot in obs.slots:
                row.extend(self._slot_row(slot, obs))
            rows.append(row)
            indices.append([self._blueprint(slot, env) for slot in obs.slots])
        features = torch.tensor(rows, dtype=torch.float32).to(device)
        blueprint_index = torch.tensor(indices, dtype=torch.long).to(device)
        return EncodedObservations(features=features, blueprint_index=blueprint_index)

    def _blueprint(self, slot: SlotSummary, env: int) -> int:
        if slot.blueprint is None:
            return 0
        if slot.blueprint not in self.blueprint_index:
            raise ValueError(
                f"env {env}, slot {slot.name!r}: blueprint {slot.blueprint!r} is not in the action space's "
                f"blueprint head {list(self.blueprint_index)!r}; the policy cannot encode it"
            )
        return self.blueprint_index[slot.blueprint]

    def _base_row(self, obs: EnvObservation) -> list[float]:
        slots = obs.slots
        host = max(1, obs.host_params)
        live = sum(1 for s in slots if s.stage in LIVE_SEED_STAGES)
        dormant = sum(1 for s in slots if s.stage == SeedStage.DORMANT)
        row = [
            _clamp(obs.epoch / max(1, obs.episode_length), 0.0, 1.0),
            _loss(obs.train_loss),
            _loss(obs.val_loss),
            _clamp(obs.train_acc, 0.0, 1.0),
            _clamp(obs.val_acc, 0.0, 1.0),
            _clamp(obs.best_val_acc, 0.0, 1.0),
            _clamp(obs.best_val_acc - obs.val_acc, 0.0, 1.0),
            _clamp(obs.train_acc - obs.val_acc, -1.0, 1.0),
            _clamp(obs.val_acc_delta, -0.5, 0.5),
            _clamp(obs.val_loss_delta, -5.0, 5.0, nan=5.0),
            _clamp(obs.plateau_epochs / self.episode_length, 0.0, 1.0),
            _clamp(obs.param_budget_used, 0.0, 2.0),
            _clamp(obs.seed_params / host, 0.0, 2.0),
            _clamp(live / max(1, self.lifecycle.max_seeds), 0.0, 1.0),
            dormant / max(1, len(slots)),
            float(germination_allowed(slots, self.lifecycle)),
        ]
        row.extend(1.0 if obs.last_op == op else 0.0 for op in self.ops)
        row.append(float(obs.last_action_ok))
        return row

    def _slot_row(self, slot: SlotSummary, obs: EnvObservation) -> list[float]:
        if slot.style is not None and slot.style not in self.style_index:
            raise ValueError(
                f"slot {slot.name!r}: blend style {slot.style!r} is not in the action space's style head "
                f"{list(self.style_index)!r}; the policy cannot encode it"
            )
        row = [1.0 if slot.stage == stage else 0.0 for stage in self.stages]
        legal = legal_ops_for_slot(slot, self.lifecycle)
        contribution = slot.last_contribution
        ratio = _clamp(slot.grad_norm_ratio, 0.0, 1e3, nan=1e3)
        row += [
            _clamp(slot.alpha, 0.0, 1.0),
            _clamp(slot.alpha_target, 0.0, 1.0),
            float(slot.alpha_at_target),
            _clamp(slot.epochs_in_stage / self.episode_length, 0.0, 1.0),
            _clamp(slot.seed_age / self.episode_length, 0.0, 1.0),
            _clamp(slot.embargo_left / self._embargo_span, 0.0, 1.0),
            *(float(op in legal) for op in SLOT_OPS),
            _clamp(slot.seed_params / max(1, obs.host_params), 0.0, 2.0),
            0.0 if contribution is None else _clamp(contribution, -1.0, 1.0),
            0.0 if contribution is None else 1.0,
            _clamp(math.log1p(ratio), 0.0, _GRAD_RATIO_MAX),
        ]
        row.extend(1.0 if slot.style == style else 0.0 for style in self.style_index)
        return row


class RunningNormaliser:
    """Running mean/variance of features (parallel-merge update, float64 statistics on the device).

    ``normalise`` maps x to (x - mean) / max(std, ``min_std``), clipped to +-``clip``: a feature that has
    been constant so far (std 0) does not explode the first time it moves. Before the first update it is
    the identity (mean 0, var 1). Statistics only change in ``update`` (the policy calls it from the
    rollout, after the update, so everything stored in a rollout was normalised with the same statistics).
    """

    def __init__(
        self, dim: int, *, clip: float = 5.0, min_std: float = 1e-2, device: torch.device | str | None = None
    ) -> None:
        if dim < 1:
            raise ValueError(f"RunningNormaliser: dim must be >= 1; got {dim}")
        self.dim, self.clip, self.min_std = int(dim), float(clip), float(min_std)
        self.mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self.var = torch.ones(dim, dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.float64, device=device)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.dim:
            raise ValueError(f"RunningNormaliser expects features of width {self.dim}; got shape {tuple(x.shape)}")

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Merge the statistics of ``batch`` [..., D] (Chan et al.'s parallel algorithm; no host sync)."""
        self._check(batch)
        rows = batch.reshape(-1, self.dim).to(device=self.device, dtype=torch.float64)
        n = rows.shape[0]
        if n == 0:
            return
        batch_mean = rows.mean(0)
        batch_var = rows.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        first = self.count == 0
        merged_mean = self.mean + delta * (n / total)
        merged_m2 = self.var * self.count + batch_var * n + delta.square() * (self.count * n / total)
        # The prior (mean 0, var 1) is not data: the first batch replaces it.
        self.mean = torch.where(first, batch_mean, merged_mean)
        self.var = torch.where(first, batch_var, merged_m2 / total)
        self.count = total

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        std = self.var.sqrt().clamp(min=self.min_std)
        out = (x.to(torch.float64) - self.mean) / std
        return out.clamp(-self.clip, self.clip).to(torch.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = [k for k in ("mean", "var", "count") if k not in state]
        if missing:
            raise KeyError(f"normaliser state lacks key(s) {missing}; got {sorted(state)}")
        for key in ("mean", "var"):
            if tuple(state[key].shape) != (self.dim,):
                raise ValueError(
                    f"normaliser state {key!r} has shape {tuple(state[key].shape)}; this encoder produces "
                    f"{self.dim} features (did the observation layout or the action space change?)"
                )
        self.mean = state["mean"].to(device=self.device, dtype=torch.float64).clone()
        self.var = state["var"].to(device=self.device, dtype=torch.float64).clone()
        self.count = torch.as_tensor(state["count"]).to(device=self.device, dtype=torch.float64).clone()
