"""Shared test setup: Hypothesis profiles and a CPU-friendly torch."""

import os

import torch
from hypothesis import HealthCheck, settings

# One thread: the suite runs on 2 shared cores, where small-tensor ops slow down badly with more.
torch.set_num_threads(1)

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
