"""Seeds and RNG states: derived seeds are stable and independent, forked generators leave the global
streams untouched, and captured states restore every generator exactly (what exact resume rests on)."""

from __future__ import annotations

import random

import numpy as np
import torch
from hypothesis import given, strategies as st

from esper_core.run.checkpoint import load_checkpoint, save_checkpoint
from esper_core.run.seeding import capture_rng_state, derived_seed, forked_rng, restore_rng_state, seed_everything

parts = st.lists(st.integers(0, 2**62), min_size=1, max_size=4)


@given(parts)
def test_derived_seeds_are_deterministic_63_bit_integers(values: list[int]) -> None:
    seed = derived_seed(*values)
    assert seed == derived_seed(*values) and 0 <= seed < 2**63


@given(parts, st.data())
def test_changing_any_part_gives_another_stream(values: list[int], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(values) - 1))
    changed = list(values)
    changed[index] = data.draw(st.integers(0, 2**62).filter(lambda v: v != values[index]))
    assert derived_seed(*values) != derived_seed(*changed)


def test_parts_are_not_length_prefixed_so_each_stream_uses_a_fixed_number_of_parts() -> None:
    """numpy's SeedSequence drops trailing zero words: (a, b) and (a, b, 0) are one stream. Every caller
    therefore derives a given stream from a fixed number of parts (env: (run, 100, i); policy: (run, 200);
    episode host: (env, 3, episode)). Kept as is: changing it would change every seeded run."""
    assert derived_seed(7, 100) == derived_seed(7, 100, 0)
    assert derived_seed(7, 100, 1) != derived_seed(7, 100)


def test_forked_rng_leaves_the_global_stream_as_it_was_and_is_seeded_alike_whatever_came_before() -> None:
    torch.manual_seed(5)
    expected_global = torch.rand(4)
    torch.manual_seed(5)
    with forked_rng(123):
        first = torch.rand(4)
    assert torch.equal(torch.rand(4), expected_global)
    torch.rand(100)  # other work drew from the global stream meanwhile
    with forked_rng(123):
        assert torch.equal(torch.rand(4), first)


def test_seed_everything_seeds_torch_python_and_numpy() -> None:
    seed_everything(7)
    drawn = (torch.rand(2), random.random(), np.random.rand())
    seed_everything(7)
    assert torch.equal(torch.rand(2), drawn[0]) and random.random() == drawn[1] and np.random.rand() == drawn[2]


def test_rng_round_trip_through_a_checkpoint_restores_every_generator(tmp_path) -> None:
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(3)
    path = save_checkpoint(tmp_path / "round_00001.pt", {"rng": capture_rng_state()})  # weights_only-safe
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    restore_rng_state(load_checkpoint(path)["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert random.random() == expected[1]
    assert np.random.rand() == expected[2]
