"""The ``ppo_v2`` policy: a recurrent factored actor-critic trained with PPO (ARCHITECTURE section 6).

Modules: ``network`` (the model), ``policy`` (act / update / state_dict), ``update`` (one PPO update),
``diagnostics`` (what an update reports and warns about), ``stored`` (the row stored per step),
``options`` (non-hyperparameter options; the hyperparameters are ``PPOConfig``).
"""

from esper_core.specs import PolicySpec

from esper_policies.ppo_v2.options import PPOV2Options
from esper_policies.ppo_v2.policy import PPOV2Policy

SPEC = PolicySpec(
    name="ppo_v2",
    description="Recurrent factored actor-critic (LSTM, one head per action head, V(s) baseline) trained with "
    "masked, relevance-aware PPO.",
    factory=PPOV2Policy,
    options_type=PPOV2Options,
    learns=True,
)

__all__ = ["SPEC", "PPOV2Options", "PPOV2Policy"]
