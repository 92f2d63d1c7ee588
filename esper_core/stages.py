"""Seed stages and the named sets of them that the lifecycle, masks, model and policies share. Kept apart
from the transition table so tensors, masks and plugins can import them cheaply."""

from enum import IntEnum


class SeedStage(IntEnum):
    """Where a slot's seed is in its life. Integer values are stable: they index one-hot features and masks."""

    DORMANT = 0
    GERMINATED = 1
    TRAINING = 2
    BLENDING = 3
    HOLDING = 4
    FOSSILIZED = 5
    PRUNED = 6
    EMBARGOED = 7
    RESETTING = 8


#: Stages during which a new germination anywhere is blocked (sequential development).
BLOCKS_GERMINATION: frozenset[SeedStage] = frozenset(
    {SeedStage.GERMINATED, SeedStage.TRAINING, SeedStage.PRUNED, SeedStage.EMBARGOED, SeedStage.RESETTING}
)

#: Stages in which a slot holds a live, not yet permanent seed.
LIVE_SEED_STAGES: frozenset[SeedStage] = frozenset(
    {SeedStage.GERMINATED, SeedStage.TRAINING, SeedStage.BLENDING, SeedStage.HOLDING}
)

#: Stages where a seed module is present (PRUNED while its alpha fades out).
SEED_PRESENT_STAGES: frozenset[SeedStage] = frozenset(LIVE_SEED_STAGES | {SeedStage.FOSSILIZED, SeedStage.PRUNED})

#: Stages in which PRUNE may apply (subject to the minimum-age gate).
PRUNABLE_STAGES: frozenset[SeedStage] = frozenset({SeedStage.TRAINING, SeedStage.BLENDING, SeedStage.HOLDING})
