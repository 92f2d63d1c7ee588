"""Per-episode bookkeeping of the contribution reward: what each seed started from, what fossilized seeds
banked, and which pruned seeds may have scaffolded a later fossilization. Cleared by ``reset()``."""

from __future__ import annotations

import attrs

from esper_core.records import EnvObservation
from esper_core.stages import SeedStage

from esper_rewards.events import EMPTY_STAGES
from esper_rewards.rent import RENTED_STAGES


@attrs.define
class SeedRecord:
    """One seed's history: validation accuracy when it arrived (for its total improvement) and the largest
    alpha it reached (a seed that never blended never touched the host, so it cannot have scaffolded)."""

    germinated_epoch: int
    val_acc_at_germination: float
    max_alpha: float = 0.0


@attrs.frozen
class Scaffold:
    """A pruned seed that blended into the host: candidate for hindsight credit."""

    slot: str
    pruned_epoch: int


@attrs.define
class EpisodeLedger:
    seeds: dict[str, SeedRecord] = attrs.field(factory=dict)
    banked: dict[str, float] = attrs.field(factory=dict)  # fossilized slot -> credited contribution, frozen
    scaffolds: list[Scaffold] = attrs.field(factory=list)

    def clear(self) -> None:
        self.seeds.clear()
        self.banked.clear()
        self.scaffolds.clear()

    def adopt(self, obs: EnvObservation) -> None:
        """Give seeds seen for the first time a record (a reward created mid-episode): they are measured from
        now on, and fossilized seeds it never saw fossilize bank nothing."""
        for slot in obs.slots:
            if slot.stage in RENTED_STAGES and slot.name not in self.seeds:
                self.seeds[slot.name] = SeedRecord(obs.epoch, obs.val_acc, slot.alpha)
            if slot.stage is SeedStage.FOSSILIZED and slot.name not in self.banked:
                self.banked[slot.name] = 0.0

    def germinate(self, slot: str, before: EnvObservation, after: EnvObservation) -> None:
        self.seeds[slot] = SeedRecord(after.epoch, before.val_acc)
        self.banked.pop(slot, None)

    def track_alpha(self, obs: EnvObservation) -> None:
        for slot in obs.slots:
            record = self.seeds.get(slot.name)
            if record is not None and slot.stage in RENTED_STAGES:
                record.max_alpha = max(record.max_alpha, slot.alpha)

    def prune(self, slot: str, epoch: int) -> None:
        record = self.seeds.get(slot)
        if record is not None and record.max_alpha > 0.0:
            self.scaffolds.append(Scaffold(slot, epoch))

    def expire_scaffolds(self, epoch: int, window: int) -> None:
        """Scaffolds pruned more than ``window`` epochs ago can no longer be credited."""
        self.scaffolds = [s for s in self.scaffolds if epoch - s.pruned_epoch <= window]

    def take_scaffolds(self) -> list[Scaffold]:
        """Remove and return the current scaffolds: each is credited at most once."""
        taken, self.scaffolds = self.scaffolds, []
        return taken

    def forget_empty(self, obs: EnvObservation) -> None:
        """Drop records of slots whose seed is gone, so a reused slot starts a fresh history."""
        for slot in obs.slots:
            if slot.stage in EMPTY_STAGES:
                self.seeds.pop(slot.name, None)
                self.banked.pop(slot.name, None)

    def val_acc_at_germination(self, slot: str, default: float) -> float:
        record = self.seeds.get(slot)
        return default if record is None else record.val_acc_at_germination

