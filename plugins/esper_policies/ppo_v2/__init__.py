"""The ``ppo_v2`` policy: a recurrent factored actor-critic trained with PPO.

One update, as ``PPOV2Policy.update`` runs it (each name below is a function you can open)::

    inputs = prepare_inputs(rollout, ...)           # update.py: rollout.validate(); unpack the stored rows;
                                                    #   GAE per env (done: no bootstrap, truncated: V(s'));
                                                    #   advantages normalised once per update
    for epoch in range(update_epochs):              # PPOUpdate.run
        for envs in minibatches of whole envs:      #   sequences stay whole: hidden states never go stale
            ev = evaluate(inputs, envs, ...)         #   replay from the stored initial state;
                                                    #   evaluate_actions under the STORED masks and floors
            loss = _losses(ev, ...)                  #   joint = joint_log_ratio(new, old, ops)  (sum of the
                                                    #     relevant heads' log-ratios, clipped as a whole)
                                                    #   A_h = per_head_advantages(A, ops)  (0 where irrelevant)
                                                    #   clipped_surrogate + value_coef * value loss
                                                    #   - entropy_coef * sum_h coef_h * entropy_h (every head)
            if approx_kl > kl_stop_factor * target_kl: stop   # _gradient_step: the step is dropped
            _apply(step)                            #   clip_grad_norm_, Adam step (critic-only weight decay)
    after = evaluate_all(inputs)                    # post-update statistics
    normaliser.update(raw features)                 # only now: the rollout saw one set of statistics
    return compute_diagnostics(...)                 # diagnostics.py: per-head entropy, ratios, KL, warnings

Modules: ``options`` (every setting, ``policy.options.*``), ``network`` (the model), ``policy`` (act /
update / state_dict), ``update`` (the above), ``diagnostics`` (what an update reports and warns about),
``stored`` (the row stored per step). Why the pieces are shaped this way: ``docs/design/ppo-lessons.md``.
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
