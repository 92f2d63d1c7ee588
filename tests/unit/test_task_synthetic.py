"""The embedded synthetic task: contract, determinism, disjoint splits, class design, capacity."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from esper_core.data import CropFlip
from esper_core.protocols import Task
from esper_core.records import TaskData
from support.benchmark_scripts import load_benchmark_script
from esper_tasks.shapes import NUM_CLASSES, SHAPES, TEXTURES, _shape_mask, _texture_bits, class_parts, render
from esper_tasks.synthetic import SPEC, SyntheticOptions, generate_split

CPU = torch.device("cpu")
SMALL = SyntheticOptions(train_size=300, val_size=100, test_size=120)

#: The same probe models and loop as benchmarks/synthetic_capacity.py (they live beside it).
_probe = load_benchmark_script("capacity_probe")
param_count, probe_cnn, train_probe = _probe.param_count, _probe.probe_cnn, _probe.train_probe


def load(options: SyntheticOptions = SMALL, seed: int = 0) -> TaskData:
    return SPEC.factory(options).load(Path("unused"), CPU, seed)


def image_keys(x: torch.Tensor) -> set[bytes]:
    return {bytes(row) for row in x.flatten(1).numpy()}


def test_spec_and_task_follow_the_contract():
    assert SPEC.name == "synthetic" and SPEC.auto_priority == 0 and SPEC.options_type is SyntheticOptions
    task = SPEC.factory(SyntheticOptions())
    assert isinstance(task, Task)
    assert task.available(Path("/definitely/not/there"))


def test_loaded_data_has_the_promised_shapes_dtypes_and_statistics():
    data = load()
    info = data.info
    assert (info.name, info.in_channels, info.image_size, info.num_classes) == ("synthetic", 3, 32, 10)
    for x, y, n in ((data.train_x, data.train_y, 300), (data.val_x, data.val_y, 100), (data.test_x, data.test_y, 120)):
        assert x.shape == (n, 3, 32, 32) and x.dtype == torch.uint8 and x.device == CPU
        assert y.shape == (n,) and y.dtype == torch.int64
        assert int(y.min()) >= 0 and int(y.max()) < NUM_CLASSES
    assert set(Counter(data.train_y.tolist()).values()) == {30}  # exactly balanced
    assert len(data.mean) == len(data.std) == 3
    assert all(0.2 < m < 0.8 for m in data.mean) and all(0.1 < s < 0.5 for s in data.std)
    assert isinstance(data.augment, CropFlip)
    features = data.normalise(data.train_x)
    assert abs(float(features.mean())) < 0.1 and abs(float(features.std()) - 1.0) < 0.1


def test_same_seed_same_data_and_another_seed_other_data():
    first, again, other = load(seed=7), load(seed=7), load(seed=8)
    for name in ("train_x", "train_y", "val_x", "test_x"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert not torch.equal(first.train_x, other.train_x)
    assert not torch.equal(first.val_x, other.val_x)


def test_data_seed_fixes_the_dataset_whatever_the_run_seed():
    fixed = SyntheticOptions(train_size=50, val_size=20, test_size=20, data_seed=3)
    assert torch.equal(load(fixed, seed=0).train_x, load(fixed, seed=99).train_x)


def test_splits_are_disjoint_and_val_test_do_not_depend_on_train_size():
    data = load()
    train, val, test = image_keys(data.train_x), image_keys(data.val_x), image_keys(data.test_x)
    assert len(train) == 300 and len(val) == 100 and len(test) == 120  # no duplicates inside a split
    assert not (train & val) and not (train & test) and not (val & test)
    bigger = load(SyntheticOptions(train_size=500, val_size=100, test_size=120))
    assert torch.equal(bigger.val_x, data.val_x) and torch.equal(bigger.test_x, data.test_x)


def test_options_are_validated():
    with pytest.raises(ValueError, match="difficulty"):
        SyntheticOptions(difficulty=1.5)
    with pytest.raises(ValueError, match="train_size"):
        SyntheticOptions(train_size=0)
    with pytest.raises(ValueError, match="difficulty"):
        render(torch.zeros(2, dtype=torch.int64), -0.1, torch.Generator())


def test_each_shape_texture_pair_names_exactly_one_class_and_no_single_cue_suffices():
    labels = torch.arange(NUM_CLASSES).repeat(2000)
    shapes, textures = class_parts(labels, torch.Generator().manual_seed(0))
    classes_of_pair: dict[tuple[int, int], set[int]] = {}
    for label, shape, texture in zip(labels.tolist(), shapes.tolist(), textures.tolist()):
        classes_of_pair.setdefault((shape, texture), set()).add(label)
    assert len(classes_of_pair) == 25 and all(len(c) == 1 for c in classes_of_pair.values())

    def best_single_cue_accuracy(cue: torch.Tensor) -> float:
        joint = Counter(zip(cue.tolist(), labels.tolist()))
        best = {value: max(count for (v, _), count in joint.items() if v == value) for value in set(cue.tolist())}
        return sum(best.values()) / labels.numel()

    assert best_single_cue_accuracy(shapes) < 0.55
    assert best_single_cue_accuracy(textures) < 0.55


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_shapes_are_mirror_symmetric_so_a_horizontal_flip_keeps_the_label(shape):
    offsets = torch.arange(-15.5, 16.0)
    mask = _shape_mask(shape, offsets.view(1, 1, -1), offsets.view(1, -1, 1), torch.full((1, 1, 1), 10.0))
    assert bool(mask.any()) and torch.equal(mask, mask.flip(-1))


@pytest.mark.parametrize("texture", range(len(TEXTURES)))
def test_mirrored_textures_stay_in_their_texture_family(texture):
    """A mirrored fill equals the same texture at some other phase (the generator draws phases)."""
    u = torch.arange(32.0).view(1, 1, -1) + 0.5
    v = torch.arange(32.0).view(1, -1, 1) + 0.5
    period = torch.full((1, 1, 1), 4.3)
    mirrored = _texture_bits(texture, u, v, period).expand(1, 32, 32).flip(-1)
    phases = torch.arange(0.0, 8.6, 0.01)  # two periods (the fine stripes' and dots' are shorter)
    assert any(torch.equal(_texture_bits(texture, u + p, v, period).expand(1, 32, 32), mirrored) for p in phases)


def test_difficulty_adds_noise():
    labels = torch.arange(NUM_CLASSES).repeat(20)

    def roughness(difficulty: float) -> float:
        x = render(labels, difficulty, torch.Generator().manual_seed(0)).float()
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    assert roughness(1.0) > roughness(0.5) > roughness(0.0)


def test_generation_is_fast_loose_bound():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        generate_split(2000, 0.5, seed=1)
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    assert elapsed < 3.0, f"2000 images took {elapsed:.2f}s (budget: 10k in < 2 s; see the benchmark)"


@pytest.mark.slow
def test_capacity_matters_a_deeper_wider_cnn_beats_a_tiny_one_clearly():
    """Fast version of benchmarks/synthetic_capacity.py: same data, same budget, two model sizes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = load(SyntheticOptions(difficulty=0.0, train_size=1500, val_size=600, test_size=10, data_seed=0))
        tiny, bigger = probe_cnn(4, depth=1), probe_cnn(8, depth=2)
        assert param_count(tiny) < 2_000 < 15_000 < param_count(bigger)
        tiny_acc = train_probe(tiny, data, epochs=10, batch_size=64, seed=0)
        bigger_acc = train_probe(bigger, data, epochs=10, batch_size=64, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert tiny_acc < 0.68, tiny_acc
    assert bigger_acc > tiny_acc + 0.2, (tiny_acc, bigger_acc)
