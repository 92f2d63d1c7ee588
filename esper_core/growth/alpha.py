"""Alpha curves and schedules: how a seed's blending weight moves toward a target over whole epochs.

A schedule is an immutable record advanced once per epoch; it reaches its target exactly after ``epochs``
advances (0 = at once) and never leaves [0, 1]. Curves map progress t in [0, 1] to [0, 1] with
curve(0) = 0 and curve(1) = 1 exactly (sigmoids are rescaled so they do).
"""

from __future__ import annotations

import math

import attrs

from esper_core.ops import ALPHA_CURVES

#: Steepness of the logistic curves, by name (larger: a sharper switch around mid-schedule).
_SIGMOID_STEEPNESS = {"sigmoid_gentle": 4.0, "sigmoid": 8.0, "sigmoid_sharp": 16.0}


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def curve_value(curve: str, t: float) -> float:
    """Fraction of the way from start to target at progress ``t`` (clamped to [0, 1])."""
    t = min(1.0, max(0.0, t))
    if curve == "linear":
        return t
    if curve == "cosine":
        return 0.5 - 0.5 * math.cos(math.pi * t)
    if curve in _SIGMOID_STEEPNESS:
        k = _SIGMOID_STEEPNESS[curve]
        low, high = _logistic(-k / 2), _logistic(k / 2)
        return (_logistic(k * (t - 0.5)) - low) / (high - low)
    raise ValueError(f"unknown alpha curve {curve!r}; expected one of {list(ALPHA_CURVES)}")


def check_curve(curve: str) -> str:
    """Validate a curve name early (before any state changes)."""
    if curve not in ALPHA_CURVES:
        raise ValueError(f"unknown alpha curve {curve!r}; expected one of {list(ALPHA_CURVES)}")
    return curve


def _unit_interval(name: str):
    def check(_instance: object, _attribute: object, value: float) -> None:
        if not (0.0 <= value <= 1.0) or math.isnan(value):
            raise ValueError(f"AlphaSchedule.{name} must be in [0, 1]; got {value!r}")

    return check


def _non_negative(_instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 0:
        raise ValueError(f"AlphaSchedule.{attribute.name} must be >= 0; got {value!r}")


@attrs.frozen(kw_only=True)
class AlphaSchedule:
    """Alpha moving from ``start`` to ``target`` over ``epochs`` epochs along ``curve``; ``step`` epochs done.

    A schedule with nothing to move (start == target) is finished at once, whatever ``epochs`` says.
    """

    start: float = attrs.field(converter=float, validator=_unit_interval("start"))
    target: float = attrs.field(converter=float, validator=_unit_interval("target"))
    epochs: int = attrs.field(default=0, converter=int, validator=_non_negative)
    curve: str = attrs.field(default="linear", validator=lambda _i, _a, v: check_curve(v))
    step: int = attrs.field(default=0, converter=int, validator=_non_negative)

    @classmethod
    def constant(cls, value: float) -> "AlphaSchedule":
        return cls(start=value, target=value)

    @property
    def done(self) -> bool:
        return self.start == self.target or self.step >= self.epochs

    @property
    def value(self) -> float:
        if self.done:
            return self.target
        fraction = curve_value(self.curve, self.step / self.epochs)
        return min(1.0, max(0.0, self.start + (self.target - self.start) * fraction))

    def advanced(self) -> "AlphaSchedule":
        """The schedule one epoch later (a finished schedule stays as it is)."""
        return self if self.done else attrs.evolve(self, step=self.step + 1)

    def retargeted(self, target: float, epochs: int, curve: str) -> "AlphaSchedule":
        """A new schedule from the current value (mid-flight retargets start where alpha is now)."""
        return AlphaSchedule(start=self.value, target=target, epochs=epochs, curve=curve)
