"""Which envs train as a fused group, and so in NCHW whatever ``device.channels_last`` says (fused groups in
channels_last corrupted GPU memory on an H100: ``run.setup.in_fused_group``)."""

from __future__ import annotations

import pytest
import torch

from esper_core.config import load_config
from esper_core.plugins import load_registry
from esper_core.run.runner import Runner
from esper_core.run.setup import in_fused_group

CUDA0, CUDA1, CPU = torch.device("cuda", 0), torch.device("cuda", 1), torch.device("cpu")


def _config(fused: str):
    return load_config(overrides={"device": {"fused": fused}}, preset="cpu-quick", cuda_available=False)


@pytest.mark.parametrize(
    ("fused", "devices", "device", "expected"),
    [
        ("auto", [CUDA0, CUDA0], CUDA0, True),
        ("auto", [CUDA0, CUDA1], CUDA0, False),  # one env per device: nothing to fuse with
        ("auto", [CUDA0, CUDA1, CUDA0], CUDA0, True),
        ("auto", [CUDA0, CUDA1, CUDA0], CUDA1, False),
        ("auto", [CPU, CPU], CPU, False),  # auto fuses only on CUDA
        ("on", [CPU, CPU], CPU, True),
        ("off", [CUDA0, CUDA0], CUDA0, False),
    ],
)
def test_envs_sharing_a_device_with_fusing_on_are_in_a_fused_group(fused, devices, device, expected) -> None:
    assert in_fused_group(_config(fused), devices, device) is expected


def test_the_run_builds_fused_envs_without_channels_last_and_lone_envs_with_the_config_s_choice(monkeypatch) -> None:
    seen: list[bool | None] = []
    from esper_core.run import env as env_module

    original = env_module.MorphogenesisEnv.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("channels_last"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(env_module.MorphogenesisEnv, "__init__", spy)
    overrides = {"device": {"fused": "on", "device": "cpu"}, "run": {"envs": 2}, "host": {"name": "tiny_cnn"}}
    Runner.build(load_config(overrides=overrides, preset="cpu-quick", cuda_available=False), load_registry())
    overrides["device"]["fused"] = "off"
    Runner.build(load_config(overrides=overrides, preset="cpu-quick", cuda_available=False), load_registry())
    assert seen == [False, False, True, True]
