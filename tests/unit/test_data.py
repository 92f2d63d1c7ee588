"""Device-side data helpers: CropFlip, epoch_batches, splits, statistics, layout conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from esper_core.data import (
    CropFlip,
    channel_stats,
    epoch_batches,
    eval_slices,
    labels_to_device,
    nhwc_to_device,
    split_indices,
)


def random_images(batch: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # Values from 1 so that padding zeros never match image content by accident.
    return torch.randint(1, 256, (batch, channels, height, width), generator=generator, dtype=torch.uint8)


def matching_windows(
    original: torch.Tensor, cropped: torch.Tensor, pad: int, flips: bool
) -> list[tuple[int, int, bool]]:
    """Every (dy, dx, flipped) for which ``cropped`` is that window of the zero-padded ``original``."""
    height, width = original.shape[-2:]
    padded = F.pad(original, (pad, pad, pad, pad))
    found = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            window = padded[:, dy : dy + height, dx : dx + width]
            for flipped in (False, True) if flips else (False,):
                if torch.equal(window.flip(-1) if flipped else window, cropped):
                    found.append((dy, dx, flipped))
    return found


# --- CropFlip ---------------------------------------------------------------------------------------


@given(
    batch=st.integers(1, 6),
    channels=st.integers(1, 3),
    height=st.integers(3, 9),
    width=st.integers(3, 9),
    pad=st.integers(0, 4),
    flip=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_every_output_is_a_shifted_window_of_the_zero_padded_input(batch, channels, height, width, pad, flip, seed):
    x = random_images(batch, channels, height, width, seed)
    out = CropFlip(pad=pad, flip=flip)(x, torch.Generator().manual_seed(seed))
    assert out.shape == x.shape and out.dtype == torch.uint8
    for original, cropped in zip(x, out):
        assert matching_windows(original, cropped, pad, flips=flip), "output is no window of the padded input"


def test_offsets_and_flips_cover_their_whole_range_evenly():
    pad, batch = 2, 3000
    x = random_images(1, 3, 6, 6).expand(batch, -1, -1, -1).contiguous()
    out = CropFlip(pad=pad, flip=True)(x, torch.Generator().manual_seed(1))
    seen: dict[tuple[int, int, bool], int] = {}
    for cropped in out:
        (key,) = matching_windows(x[0], cropped, pad, flips=True)  # distinct pixels: exactly one match
        seen[key] = seen.get(key, 0) + 1
    assert len(seen) == (2 * pad + 1) ** 2 * 2
    expected = batch / len(seen)
    assert all(0.5 * expected < count < 1.6 * expected for count in seen.values())


def test_flip_only_mirrors_columns_and_keeps_the_rest():
    x = random_images(400, 3, 5, 7)
    out = CropFlip(pad=0, flip=True)(x, torch.Generator().manual_seed(2))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 120 < int(mirrored.sum()) < 280


def test_no_pad_and_no_flip_is_the_identity():
    x = random_images(4, 3, 8, 8)
    assert torch.equal(CropFlip(pad=0, flip=False)(x, None), x)


def test_augmentation_changes_images_but_not_shape_dtype_or_order_of_samples():
    x = random_images(64, 3, 32, 32)
    out = CropFlip()(x, torch.Generator().manual_seed(3))
    assert out.shape == x.shape and out.dtype == torch.uint8 and out.device == x.device
    changed = (out != x).flatten(1).any(1)
    assert int(changed.sum()) > 50
    # Sample b of the output comes from sample b of the input (labels stay aligned).
    for b in range(0, 64, 9):
        assert matching_windows(x[b], out[b], 4, flips=True)


def test_same_generator_state_gives_the_same_augmentation_and_another_seed_differs():
    x = random_images(32, 3, 16, 16)
    augment = CropFlip()
    first = augment(x, torch.Generator().manual_seed(5))
    second = augment(x, torch.Generator().manual_seed(5))
    other = augment(x, torch.Generator().manual_seed(6))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_works_with_the_default_generator_and_empty_batches():
    assert CropFlip()(random_images(2, 3, 8, 8), None).shape == (2, 3, 8, 8)
    assert CropFlip()(torch.zeros(0, 3, 8, 8, dtype=torch.uint8), None).shape == (0, 3, 8, 8)


def test_rejects_bad_input_and_bad_padding():
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        CropFlip()(torch.zeros(3, 8, 8, dtype=torch.uint8), None)
    with pytest.raises(ValueError, match="pad"):
        CropFlip(pad=-1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_with_a_cuda_generator_and_matches_the_window_property():
    x = random_images(8, 3, 8, 8).cuda()
    out = CropFlip(pad=2)(x, torch.Generator(device="cuda").manual_seed(0))
    assert out.device.type == "cuda"
    for original, cropped in zip(x.cpu(), out.cpu()):
        assert matching_windows(original, cropped, 2, flips=True)


# --- epoch_batches -----------------------------------------------------------------------------------


@given(
    n=st.integers(1, 300),
    batch_size=st.integers(1, 64),
    samples=st.one_of(st.none(), st.integers(0, 900)),
    seed=st.integers(0, 2**31 - 1),
)
def test_an_epoch_has_the_requested_samples_in_batches_and_each_pass_is_a_permutation(n, batch_size, samples, seed):
    batches = list(epoch_batches(n, batch_size, torch.Generator().manual_seed(seed), "cpu", samples=samples))
    total = n if samples is None else samples
    order = torch.cat(batches) if batches else torch.zeros(0, dtype=torch.int64)
    assert order.dtype == torch.int64 and order.numel() == total
    assert all(b.numel() == batch_size for b in batches[:-1])
    assert all(0 < b.numel() <= batch_size for b in batches)
    for start in range(0, total, n):  # every full pass is a permutation, a partial one has no repeats
        part = order[start : start + n]
        assert part.unique().numel() == part.numel()
        assert bool(((part >= 0) & (part < n)).all())
    if total >= n:
        assert torch.equal(order[:n].sort().values, torch.arange(n))


def test_drop_last_skips_only_the_short_final_batch():
    kept = list(epoch_batches(10, 4, torch.Generator().manual_seed(0), "cpu", drop_last=True))
    assert [b.numel() for b in kept] == [4, 4]
    assert [b.numel() for b in epoch_batches(8, 4, None, "cpu", drop_last=True)] == [4, 4]


def test_epoch_order_follows_the_generator():
    def order(seed: int) -> torch.Tensor:
        return torch.cat(list(epoch_batches(100, 16, torch.Generator().manual_seed(seed), "cpu")))

    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))


def test_epoch_batches_rejects_impossible_requests():
    with pytest.raises(ValueError, match="n > 0"):
        next(epoch_batches(0, 4, None, "cpu"))
    with pytest.raises(ValueError, match="batch_size"):
        next(epoch_batches(5, 0, None, "cpu"))
    with pytest.raises(ValueError, match="samples"):
        next(epoch_batches(5, 2, None, "cpu", samples=-1))


@given(n=st.integers(0, 50), batch_size=st.integers(1, 20))
def test_eval_slices_cover_the_range_in_order(n, batch_size):
    covered = [i for part in eval_slices(n, batch_size) for i in range(n)[part]]
    assert covered == list(range(n))


# --- splits, statistics, layout ----------------------------------------------------------------------


@given(n=st.integers(2, 500), data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_split_indices_partition_the_range_deterministically(n, data, seed):
    held = data.draw(st.integers(0, n - 1))
    kept, held_out = split_indices(n, held, seed)
    assert held_out.numel() == held and kept.numel() == n - held
    assert torch.equal(torch.cat([kept, held_out]).sort().values, torch.arange(n))
    assert bool((kept[1:] > kept[:-1]).all()) and bool((held_out[1:] > held_out[:-1]).all())
    again = split_indices(n, held, seed)
    assert torch.equal(again[0], kept) and torch.equal(again[1], held_out)


def test_split_depends_on_the_seed_and_rejects_holding_out_everything():
    assert not torch.equal(split_indices(1000, 100, 0)[1], split_indices(1000, 100, 1)[1])
    with pytest.raises(ValueError, match="hold out"):
        split_indices(10, 10, 0)


def test_channel_stats_match_a_float_computation_in_unit_range():
    x = random_images(50, 3, 8, 8)
    x[:, 1] //= 2
    mean, std = channel_stats(x)
    reference = x.double() / 255.0
    assert np.allclose(mean, reference.mean(dim=(0, 2, 3)).numpy(), atol=1e-9)
    assert np.allclose(std, reference.std(dim=(0, 2, 3), correction=0).numpy(), atol=1e-9)
    assert mean[1] < mean[0]
    with pytest.raises(ValueError, match="uint8"):
        channel_stats(x.float())


def test_nhwc_to_device_transposes_to_nchw_and_labels_become_int64():
    images = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    out = nhwc_to_device(images, "cpu")
    assert out.shape == (4, 3, 5, 6) and out.dtype == torch.uint8 and out.is_contiguous()
    assert out[2, 1, 3, 4] == images[2, 3, 4, 1]
    labels = labels_to_device(np.array([1, 2, 3], dtype=np.uint8), "cpu")
    assert labels.dtype == torch.int64 and labels.tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="uint8"):
        nhwc_to_device(images.astype(np.float32), "cpu")


@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 3), st.booleans(), st.integers(0, 2**31))
def test_cropflip_many_is_each_batch_augmented_with_its_own_generator(groups, size, pad, flip, seed) -> None:
    """A fused group augments every env's batch at once: same pixels, same draws from each generator."""
    augment = CropFlip(pad=pad, flip=flip)
    x = torch.randint(0, 256, (groups * size, 3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    together = [torch.Generator().manual_seed(seed + g) for g in range(groups)]
    apart = [torch.Generator().manual_seed(seed + g) for g in range(groups)]
    many = augment.many(x, together)
    one_by_one = torch.cat([augment(x[g * size : (g + 1) * size], apart[g]) for g in range(groups)])
    assert torch.equal(many, one_by_one)
    assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(together, apart))
