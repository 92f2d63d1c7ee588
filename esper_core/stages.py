"""Seed stages. Kept apart from the transition table so tensors and masks can import it cheaply."""

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
