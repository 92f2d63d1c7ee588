"""Invariant 2: GERMINATE is masked whenever a seed is GERMINATED, TRAINING, PRUNED, EMBARGOED or
RESETTING, or no slot is DORMANT, or the seed limit is reached; and only then (or when nothing fits)."""

from hypothesis import given

from esper_core.rl.masks import mask_inputs_from_observations, op_mask
from esper_core.ops import Op
from esper_core.stages import LIVE_SEED_STAGES, SeedStage
from support.lifecycle_truth import legal_ops_in_env, slot_can_host
from support.strategies import action_spaces, rl_setups

BLOCKING_STAGES = {SeedStage.GERMINATED, SeedStage.TRAINING, SeedStage.PRUNED, SeedStage.EMBARGOED, SeedStage.RESETTING}


@given(rl_setups())
def test_germinate_masked_whenever_a_rule_forbids_it(setup):
    space, lifecycle, observations = setup
    germinate = op_mask(mask_inputs_from_observations(observations, space, lifecycle))[:, Op.GERMINATE]
    for env, obs in enumerate(observations):
        stages = [s.stage for s in obs.slots]
        if any(stage in BLOCKING_STAGES for stage in stages):
            assert not germinate[env], f"sequential development broken: {[s.name for s in stages]}"
        if SeedStage.DORMANT not in stages:
            assert not germinate[env], "GERMINATE without a DORMANT slot"
        if sum(stage in LIVE_SEED_STAGES for stage in stages) >= lifecycle.max_seeds:
            assert not germinate[env], "GERMINATE beyond the seed limit"
        if not any(slot_can_host(space, i) and st == SeedStage.DORMANT for i, st in enumerate(stages)):
            assert not germinate[env], "GERMINATE although no empty slot supports any blueprint and style"


@given(rl_setups(spaces=action_spaces(fully_supported=True)))
def test_germinate_valid_exactly_when_the_lifecycle_allows_it(setup):
    space, lifecycle, observations = setup
    germinate = op_mask(mask_inputs_from_observations(observations, space, lifecycle))[:, Op.GERMINATE]
    for env, obs in enumerate(observations):
        assert bool(germinate[env]) == (Op.GERMINATE in legal_ops_in_env(obs, space, lifecycle)), [
            s.stage.name for s in obs.slots
        ]
