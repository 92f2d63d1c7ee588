"""RolloutBuffer: storage, validation messages, returns, recurrent state."""

import pytest
import torch

from esper_core.rl.advantages import gae
from esper_core.ops import HEADS
from esper_core.rl.rollout import RolloutBuffer, RolloutError

SIZES = {
    "op": 6, "slot": 2, "blueprint": 3, "style": 2, "tempo": 3, "alpha_target": 2, "alpha_speed": 4, "alpha_curve": 5
}


def step_data(n_envs=2, value=0.0, reward=1.0):
    return dict(
        obs=torch.ones(n_envs, 3),
        actions=torch.zeros(n_envs, len(HEADS), dtype=torch.long),
        log_probs=torch.full((n_envs, len(HEADS)), -0.5),
        masks={h: torch.ones(n_envs, n, dtype=torch.bool) for h, n in SIZES.items()},
        values=torch.full((n_envs,), value),
        rewards=torch.full((n_envs,), reward),
        dones=torch.zeros(n_envs, dtype=torch.bool),
    )


def full_buffer(n_steps=3, **kw):
    buffer = RolloutBuffer(n_steps, 2, 3, SIZES, **kw)
    for t in range(n_steps):
        buffer.add(t, **step_data(value=float(t)), **({"obs_int": torch.ones(2, 2, dtype=torch.long)} if kw else {}))
    return buffer


def test_preallocated_shapes():
    buffer = RolloutBuffer(4, 2, 3, SIZES, obs_int_dim=5)
    assert buffer.obs.shape == (4, 2, 3) and buffer.obs_int.shape == (4, 2, 5)
    assert buffer.actions.shape == buffer.log_probs.shape == (4, 2, len(HEADS))
    assert {h: m.shape for h, m in buffer.masks.items()} == {h: (4, 2, n) for h, n in SIZES.items()}
    assert RolloutBuffer(4, 2, 3, SIZES).obs_int is None


def test_a_complete_valid_rollout_validates_and_computes_gae():
    buffer = full_buffer()
    buffer.validate()
    adv, ret = buffer.compute_returns(torch.tensor([1.0, 2.0]), 0.9, 0.95)
    expected, _ = gae(
        buffer.rewards, buffer.values, buffer.dones, buffer.truncated, buffer.bootstrap_values,
        torch.tensor([1.0, 2.0]), 0.9, 0.95,
    )
    assert torch.equal(adv, expected) and buffer.advantages is adv
    assert torch.allclose(ret, adv + buffer.values)


def test_validate_reports_missing_steps():
    buffer = RolloutBuffer(3, 2, 3, SIZES)
    buffer.add(0, **step_data())
    with pytest.raises(RolloutError, match="never added: \\[1, 2\\]"):
        buffer.validate()


def test_validate_names_an_action_outside_its_stored_mask():
    buffer = full_buffer()
    buffer.masks["blueprint"][1, 1, 0] = False  # stored action 0 is now invalid at step 1, env 1
    expected = (
        "head 'blueprint': action 0 at step 1, env 1 is invalid under its stored mask \\(valid entries \\[1, 2\\]"
    )
    with pytest.raises(RolloutError, match=expected):
        buffer.validate()


def test_validate_reports_non_finite_log_probs_and_empty_masks():
    buffer = full_buffer()
    buffer.log_probs[2, 0, 3] = float("-inf")
    buffer.masks["tempo"][0, 1] = False
    with pytest.raises(RolloutError) as info:
        buffer.validate()
    assert "log_probs not finite at index (2, 0, 3)" in str(info.value)
    assert "head 'tempo': stored mask has no valid entry at step 0, env 1" in str(info.value)


def test_add_checks_step_masks_and_obs_int():
    buffer = RolloutBuffer(2, 2, 3, SIZES, obs_int_dim=2)
    with pytest.raises(IndexError):
        buffer.add(2, **step_data(), obs_int=torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="obs_int missing"):
        buffer.add(0, **step_data())
    data = step_data()
    del data["masks"]["style"]
    with pytest.raises(ValueError, match="lack head\\(s\\) \\['style'\\]"):
        buffer.add(0, **data, obs_int=torch.zeros(2, 2, dtype=torch.long))


def test_initial_state_is_a_detached_copy_and_clear_forgets():
    buffer = full_buffer()
    h = torch.ones(1, 2, 4, requires_grad=True)
    buffer.set_initial_state((h * 2, h * 3))
    assert len(buffer.initial_state) == 2 and not buffer.initial_state[0].requires_grad
    buffer.clear()
    assert buffer.initial_state == () and buffer.advantages is None
    with pytest.raises(RolloutError):
        buffer.validate()


def test_truncated_steps_bootstrap_from_stored_values():
    buffer = RolloutBuffer(1, 1, 3, SIZES)
    data = step_data(n_envs=1, value=0.0, reward=0.0)
    buffer.add(0, **data, truncated=torch.tensor([True]), bootstrap_values=torch.tensor([4.0]))
    adv, _ = buffer.compute_returns(torch.tensor([100.0]), 0.5, 1.0)
    assert adv.item() == pytest.approx(2.0)


# ------------------------------------------------------------------ each step checked as it is stored
def test_add_catches_a_mask_row_without_the_stored_action_at_the_step_that_stored_it():
    """A mask handed in that no longer allows its action (the slot-head failure seen after a resume on
    CUDA: an all-False row at one step) is caught by ``add`` at that step, naming env, head, the mask
    handed in and the buffer's row; before, it surfaced only in the update as "no valid entry"."""
    buffer = RolloutBuffer(3, 2, 3, SIZES)
    buffer.add(0, **step_data())
    data = step_data()
    data["masks"]["slot"][1] = False  # env 1's slot row is all-False, its action 0 stored anyway
    with pytest.raises(RolloutError) as info:
        buffer.add(1, **data)
    message = str(info.value)
    assert "rollout step 1 stored unusable data (1 head/env pair(s))" in message
    assert "head 'slot', env 1: action handed in 0, stored 0; mask handed in [0, 0], buffer's row [0, 0]" in message
    assert "the mask handed in already forbids the action" in message


def test_add_catches_a_buffer_row_that_differs_from_the_mask_handed_in():
    class ChangingMasks(dict):
        """Hands out an all-False slot mask to the copy, the true one afterwards (a lost copy)."""

        def __init__(self, masks):
            super().__init__(masks)
            self.reads = 0

        def __getitem__(self, head):
            value = super().__getitem__(head)
            if head == "slot":
                self.reads += 1
                if self.reads == 1:
                    return torch.zeros_like(value)
            return value

    buffer = RolloutBuffer(2, 2, 3, SIZES)
    data = step_data()
    data["masks"] = ChangingMasks(data["masks"])
    with pytest.raises(RolloutError) as info:
        buffer.add(0, **data)
    message = str(info.value)
    assert "head 'slot', env 0: action handed in 0, stored 0; mask handed in [1, 1], buffer's row [0, 0]" in message
    assert "the copy into the buffer did not take" in message


def test_a_row_changed_after_a_checked_add_is_reported_as_changed_afterwards():
    buffer = full_buffer()
    buffer.masks["alpha_target"][1].zero_()
    with pytest.raises(RolloutError, match="(?s)no valid entry at step 1, env 0.*changed afterwards"):
        buffer.validate()


def test_the_step_check_can_be_switched_off():
    buffer = RolloutBuffer(1, 2, 3, SIZES, check_steps=False)
    data = step_data()
    data["masks"]["tempo"][0] = False
    buffer.add(0, **data)  # not checked here ...
    with pytest.raises(RolloutError, match="head 'tempo': stored mask has no valid entry at step 0, env 0") as info:
        buffer.validate()  # ... only in the update
    assert "changed afterwards" not in str(info.value)
