"""Alpha curves go exactly 0 -> 1; schedules reach their target after exactly ``epochs`` advances."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from esper_core.growth.alpha import AlphaSchedule, curve_value
from esper_core.ops import ALPHA_CURVES

unit = st.floats(0.0, 1.0, allow_nan=False)


@pytest.mark.parametrize("curve", ALPHA_CURVES)
def test_curves_start_at_0_end_at_1_and_never_decrease(curve: str) -> None:
    assert curve_value(curve, 0.0) == 0.0
    assert curve_value(curve, 1.0) == 1.0
    points = [curve_value(curve, i / 100) for i in range(101)]
    assert all(0.0 <= p <= 1.0 for p in points)
    assert all(b >= a for a, b in zip(points, points[1:]))
    assert 0.0 < curve_value(curve, 0.5) < 1.0


def test_sigmoid_variants_differ_in_sharpness() -> None:
    quarter = [curve_value(name, 0.25) for name in ("sigmoid_gentle", "sigmoid", "sigmoid_sharp")]
    assert quarter[0] > quarter[1] > quarter[2]  # sharper: slower start


def test_unknown_curve_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown alpha curve 'wobbly'.*linear"):
        curve_value("wobbly", 0.5)
    with pytest.raises(ValueError, match="wobbly"):
        AlphaSchedule(start=0.0, target=1.0, epochs=2, curve="wobbly")


def test_schedule_rejects_values_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="target"):
        AlphaSchedule(start=0.0, target=1.5)
    with pytest.raises(ValueError, match="epochs"):
        AlphaSchedule(start=0.0, target=1.0, epochs=-1)


def test_linear_schedule_values() -> None:
    schedule = AlphaSchedule(start=0.0, target=0.8, epochs=4, curve="linear")
    values = []
    for _ in range(6):
        values.append(schedule.value)
        schedule = schedule.advanced()
    assert values == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 0.8])


def test_instant_schedule_is_at_target_at_once() -> None:
    schedule = AlphaSchedule(start=0.3, target=0.9, epochs=0)
    assert schedule.done and schedule.value == 0.9


def test_retarget_starts_where_alpha_is() -> None:
    schedule = AlphaSchedule(start=0.0, target=1.0, epochs=4).advanced()
    moved = schedule.retargeted(0.0, 2, "cosine")
    assert moved.start == schedule.value == 0.25 and moved.step == 0 and moved.target == 0.0


@given(start=unit, target=unit, epochs=st.integers(0, 10), curve=st.sampled_from(ALPHA_CURVES))
def test_schedule_reaches_target_after_exactly_epochs_steps(start, target, epochs, curve) -> None:
    schedule = AlphaSchedule(start=start, target=target, epochs=epochs, curve=curve)
    assert schedule.value == (target if start == target or epochs == 0 else start)
    low, high = min(start, target), max(start, target)
    for step in range(epochs + 2):
        assert 0.0 <= schedule.value <= 1.0
        assert low <= schedule.value <= high
        moving = start != target and step < epochs
        assert schedule.done is (not moving)
        if not moving:
            assert schedule.value == target  # exactly, not approximately
        schedule = schedule.advanced()
