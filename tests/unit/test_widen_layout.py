"""The layout pieces of fused slots: env blocks split as views and join back into the wide tensor, in
the wide tensor's own memory layout (NCHW on CPU, channels_last on CUDA)."""

from __future__ import annotations

import torch
from hypothesis import given, strategies as st

from esper_core.run.widen import env_blocks, features_of, join_env_blocks


@given(
    envs=st.integers(1, 4),
    channels=st.integers(1, 5),
    size=st.integers(1, 4),
    channels_last=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_env_blocks_hand_back_each_env_s_channels_and_join_restores_the_wide_tensor(envs, channels, size, channels_last, seed) -> None:
    generator = torch.Generator().manual_seed(seed)
    wide = torch.randn(2, envs * channels, size, size, generator=generator)
    if channels_last:
        wide = wide.contiguous(memory_format=torch.channels_last)
    blocks = env_blocks(wide, envs)
    for e, block in enumerate(blocks.unbind(-2)):
        assert torch.equal(features_of(block), wide[:, e * channels : (e + 1) * channels])
    joined = join_env_blocks(blocks, wide)
    assert torch.equal(joined, wide)
    assert joined.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
