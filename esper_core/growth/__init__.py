"""The morphogenetic engine, a host that grows: the lifecycle table and its gates (``lifecycle``), alpha
schedules (``alpha``), the slot a seed lives in with its gradient isolation (``slot``), the host wrapped
with its slots (``model``), the optimiser that follows the morphology (``optimizer``) and counterfactual
contribution measurement (``counterfactual``). Knows nothing of policies, rewards or runs."""
