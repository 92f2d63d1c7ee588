"""The tensor masks agree with the lifecycle module's pure gate functions (the executor's own rules)
on random states, slot by slot; and the test-side reference rules agree with them too."""

import torch
from hypothesis import given

from esper_core.growth import lifecycle as lifecycle_module
from esper_core.rl.masks import mask_inputs_from_observations, slot_op_legality
from esper_core.ops import Op
from support.lifecycle_truth import reference_germination_allowed, reference_legal_ops_for_slot
from support.strategies import action_spaces, rl_setups

@given(rl_setups(spaces=action_spaces(fully_supported=True)))
def test_slot_legality_matches_legal_ops_for_slot_and_germination_allowed(setup):
    space, lifecycle, observations = setup
    legality = slot_op_legality(mask_inputs_from_observations(observations, space, lifecycle))
    for env, obs in enumerate(observations):
        may_germinate = lifecycle_module.germination_allowed(obs.slots, lifecycle)
        for index, summary in enumerate(obs.slots):
            expected = set(lifecycle_module.legal_ops_for_slot(summary, lifecycle))
            if not may_germinate:
                expected.discard(Op.GERMINATE)
            offered = {op for op in Op if op != Op.WAIT and legality[env, index, op]}
            assert offered == expected, (summary, lifecycle)
            assert legality[env, index, Op.WAIT]

@given(rl_setups())
def test_reference_rules_match_the_lifecycle_module(setup):
    _, lifecycle, observations = setup
    for obs in observations:
        expected = lifecycle_module.germination_allowed(obs.slots, lifecycle)
        assert reference_germination_allowed(obs.slots, lifecycle) == expected
        for summary in obs.slots:
            expected_ops = lifecycle_module.legal_ops_for_slot(summary, lifecycle)
            assert reference_legal_ops_for_slot(summary, lifecycle) == expected_ops
