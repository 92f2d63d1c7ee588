"""Checkpoint I/O: atomic files, weights_only-safe payloads, exact RNG round trips, clear mismatch diffs."""

from __future__ import annotations


import pytest
import torch

from esper_core.run.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    check_compatible,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    remove_old_checkpoints,
    save_checkpoint,
    version_changes,
)

LAYOUT = {"op": ["WAIT", "GERMINATE"], "blueprint": ["noop", "conv_small", "conv_light"], "style": ["linear_add"]}
PLUGINS = {"policy:heuristic": {"distribution": "esper", "version": "0.1.0"}}


def test_round_trip_with_weights_only(tmp_path):
    payload = {"round": 3, "policy": {"w": torch.arange(4.0)}, "rng": {"torch_cpu": torch.get_rng_state()}, "names": ("a", "b")}
    path = save_checkpoint(checkpoint_path(tmp_path, 3), payload)
    loaded = load_checkpoint(path)
    assert loaded["round"] == 3
    assert torch.equal(loaded["policy"]["w"], torch.arange(4.0))


def test_unsafe_payload_is_refused_at_save_naming_the_key(tmp_path):
    with pytest.raises(TypeError, match=r"\['policy'\]\['opts'\].*weights_only"):
        save_checkpoint(tmp_path / "round_00001.pt", {"policy": {"opts": object()}})
    assert list_checkpoints(tmp_path) == []


def test_torn_temporary_files_are_ignored_and_latest_wins(tmp_path):
    for index in (0, 1, 2):
        save_checkpoint(checkpoint_path(tmp_path, index), {"round": index})
    (tmp_path / ".round_00003.pt.123.tmp").write_bytes(b"half a file")
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 2)
    remove_old_checkpoints(tmp_path, keep=2)
    assert [r for r, _ in list_checkpoints(tmp_path)] == [1, 2]


def test_a_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "round_00001.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_changed_layout_is_refused_with_a_diff():
    saved = {"action_layout": LAYOUT, "plugins": PLUGINS}
    changed = dict(LAYOUT, blueprint=["noop", "conv_small", "my_blueprint"])
    with pytest.raises(CheckpointMismatchError) as info:
        check_compatible("ck.pt", saved, changed, PLUGINS)
    text = str(info.value)
    assert "'blueprint'" in text and "checkpoint only: ['conv_light']" in text and "this run only: ['my_blueprint']" in text


def test_reordered_layout_is_refused():
    saved = {"action_layout": LAYOUT, "plugins": PLUGINS}
    reordered = dict(LAYOUT, blueprint=["noop", "conv_light", "conv_small"])
    with pytest.raises(CheckpointMismatchError, match="other order"):
        check_compatible("ck.pt", saved, reordered, PLUGINS)


def test_changed_plugin_set_is_refused_with_a_diff():
    saved = {"action_layout": LAYOUT, "plugins": PLUGINS}
    now = {"policy:random": {"distribution": "esper", "version": "0.1.0"}}
    with pytest.raises(CheckpointMismatchError) as info:
        check_compatible("ck.pt", saved, LAYOUT, now)
    assert "policy:heuristic" in str(info.value) and "policy:random" in str(info.value)


def test_plugin_from_another_distribution_is_refused_but_a_version_bump_is_only_reported():
    saved = {"action_layout": LAYOUT, "plugins": PLUGINS}
    other = {"policy:heuristic": {"distribution": "someone-else", "version": "0.1.0"}}
    with pytest.raises(CheckpointMismatchError, match="someone-else"):
        check_compatible("ck.pt", saved, LAYOUT, other)
    bumped = {"policy:heuristic": {"distribution": "esper", "version": "0.2.0"}}
    check_compatible("ck.pt", saved, LAYOUT, bumped)
    assert version_changes(saved, bumped) == ["plugin policy:heuristic: version 0.1.0 in the checkpoint, 0.2.0 now"]
