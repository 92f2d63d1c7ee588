"""Plugins that broke their contract during a run are disabled for the rest of it, not allowed to crash it.

Why: a blueprint that changes the tensor shape (or whose factory raises) is only found out when the policy
first germinates it. Before, that surfaced as an ``IllegalActionError`` traceback, and because a resumed
run replays the same round, resuming replayed the crash: the run was bricked. Now the germination is
refused (the model is unchanged: ``MorphogeneticModel._build_seed`` checks before anything moves), the
plugin is added to a run-wide disabled set, and every observation from then on carries that set
(``EnvObservation.disabled_blueprints`` / ``disabled_styles``). The masks are a pure function of the
observation and the action space, so stored masks, the legality guard and replay all agree; the set is
part of every env's checkpoint state, so a resumed run masks exactly as the original did.

One ``PluginQuarantine`` is shared by all envs of a run (``build_run``): what one env found out, none of the
others has to try again.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from esper_core.growth.lifecycle import LifecycleError, SeedShapeError
from esper_core.records import DecodedAction

#: Plugin kinds whose contract breaks are absorbed (the kinds with a mask the policy chooses from).
QUARANTINED_KINDS = ("blueprint", "blend_style")


class PluginQuarantine:
    """The run's disabled blueprints and blend styles; ``absorb`` adds one and says so once."""

    def __init__(
        self,
        *,
        notice: Callable[[str], None] | None = None,
        describe: Callable[[str, str], str] | None = None,
    ) -> None:
        self._notice = notice
        self._describe = describe if describe is not None else (lambda kind, name: f"{kind} {name!r}")
        self._disabled: dict[str, tuple[str, ...]] = {kind: () for kind in QUARANTINED_KINDS}

    @property
    def blueprints(self) -> tuple[str, ...]:
        return self._disabled["blueprint"]

    @property
    def styles(self) -> tuple[str, ...]:
        return self._disabled["blend_style"]

    def absorb(self, error: LifecycleError, action: DecodedAction, env: int) -> str | None:
        """For a contract break (a ``SeedShapeError`` naming its culprit): disable the culprit and return
        what happened, for the step's record. Anything else returns None (the caller raises it)."""
        culprit = getattr(error, "culprit", None)
        if not isinstance(error, SeedShapeError) or culprit is None or culprit[0] not in self._disabled:
            return None
        kind, name = culprit
        first = name not in self._disabled[kind]
        if first:
            self._disabled[kind] = tuple(sorted((*self._disabled[kind], name)))
        message = (
            f"{action.op.name} refused: {self._describe(kind, name)} broke its contract ({error}); "
            f"it is disabled for the rest of this run"
        )
        if first and self._notice is not None:
            self._notice(
                f"warning: env {env}: {message}. The policy can no longer choose it. Fix or uninstall the plugin; "
                "`esper --strict-plugins run` checks every blueprint and blend style before a run starts."
            )
        return message

    def state_dict(self) -> dict[str, list[str]]:
        return {kind: list(names) for kind, names in self._disabled.items()}

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        """Restore a checkpoint's set (absent in checkpoints written before quarantining existed: empty)."""
        state = state or {}
        self._disabled = {kind: tuple(sorted(str(n) for n in state.get(kind, ()))) for kind in QUARANTINED_KINDS}
