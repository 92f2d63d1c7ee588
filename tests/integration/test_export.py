"""`esper export`: the network an env grew, loaded back without the run machinery, gives the env model's
logits bit for bit; a manifest or tensor file that does not fit is refused naming the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from esper_core.cli import main
from esper_core.cli.run import config_from_checkpoint
from esper_core.plugins import load_registry
from esper_core.run.checkpoint import latest_checkpoint, load_checkpoint
from esper_core.run.export import ExportError, GrownSlot, export_env, load_grown_network, read_manifest
from esper_core.run.runner import Runner
from support.run_configs import BUSY_HEURISTIC, write_config

RUN = {"policy": {"name": "heuristic", "options": BUSY_HEURISTIC}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 8}}


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-round run whose final episode leaves seeds in the network, exported with the CLI."""
    root = tmp_path_factory.mktemp("export")
    config = str(write_config(root, RUN))
    for args in (["run", "--config", config, "--run-dir", str(root), "--name", "r", "--rounds", "1", "-q"], ["export", str(root / "r")]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    return root / "r"


def _replayed_runner(run: Path) -> Runner:
    path = latest_checkpoint(run / "checkpoints")
    payload = load_checkpoint(path)
    runner = Runner.build(config_from_checkpoint(payload), load_registry(environ={}))
    runner.restore(payload, str(path), announce=False)
    runner.evaluate()
    return runner


def test_the_loaded_network_gives_the_env_models_logits(grown: Path, tmp_path: Path) -> None:
    runner = _replayed_runner(grown)
    registry = load_registry(environ={})
    for env in runner.envs:
        folder = tmp_path / f"env{env.index}"
        manifest = export_env(env, folder, run_name="r", checkpoint="c", round_index=1, registry=registry)
        loaded = load_grown_network(folder, registry)
        in_network = [s for s in manifest.slots if s.in_network]
        assert in_network, "the heuristic should leave a blending or fossilized seed in the network"
        assert all(isinstance(loaded.network.slots[s.slot], GrownSlot) for s in in_network)
        assert all(isinstance(loaded.network.slots[s.slot], torch.nn.Identity) for s in manifest.slots if not s.in_network)
        images = env.data.val_x[:16]
        model = env.model.eval()
        with torch.no_grad():
            expected = model(env.normalise(images))
            actual = loaded(loaded.normalise(images))
        assert torch.allclose(actual, expected, rtol=0, atol=1e-5)
        with torch.no_grad():
            assert torch.equal(loaded(env.normalise(images)), expected)  # same input: bit for bit
        assert manifest.parameters == sum(p.numel() for p in loaded.network.parameters())

        # The CLI replayed the same episode: its export holds the same tensors.
        cli_state = torch.load(grown / "export" / "round_00001" / f"env{env.index}" / "state_dict.pt", weights_only=True)
        mine = torch.load(folder / "state_dict.pt", weights_only=True)
        assert cli_state.keys() == mine.keys() and all(torch.equal(cli_state[k], mine[k]) for k in mine)


def test_eval_json_and_the_manifest_describe_the_same_morphology(grown: Path) -> None:
    result = CliRunner().invoke(main, ["eval", str(grown)])
    assert result.exit_code == 0, result.output
    assert "final morphology per env" in result.output and "HOLDING" in result.output + "FOSSILIZED"
    evaluated = json.loads((grown / "eval.json").read_text())
    for row in evaluated["envs"]:
        manifest = read_manifest(grown / "export" / "round_00001" / f"env{row['env']}")
        assert [dict(slot=s.slot, stage=s.stage, blueprint=s.blueprint, style=s.style, alpha=s.alpha,
                     seed_params=s.seed_params, in_network=s.in_network) for s in manifest.slots] == row["slots"]
        assert manifest.test_acc == row["test_acc"] and manifest.host == "tiny_cnn"


def _copy(grown: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    folder.mkdir(parents=True)
    for name in ("manifest.json", "state_dict.pt"):
        (folder / name).write_bytes((grown / "export" / "round_00001" / "env0" / name).read_bytes())
    return folder


def test_a_manifest_that_does_not_fit_is_refused_naming_the_file_and_key(grown: Path, tmp_path: Path) -> None:
    folder = _copy(grown, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "hots": "x", "round": "1"}))
    with pytest.raises(ExportError) as info:
        read_manifest(folder)
    text = str(info.value)
    assert str(folder / "manifest.json") in text and "hots: unknown key; did you mean host?" in text
    assert "round: expected int" in text

    seeded = next(i for i, s in enumerate(manifest["slots"]) if s["in_network"])
    manifest["slots"][seeded]["blueprint"] = "conv_missing"
    manifest["plugins"]["blueprint:conv_missing"] = {"distribution": "seeds-galore", "version": "1.2"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match=r"needs blueprint 'conv_missing'.*seeds-galore 1\.2: install that"):
        load_grown_network(folder, load_registry(environ={}))


def test_tensors_that_do_not_fit_or_are_not_tensors_are_refused(grown: Path, tmp_path: Path) -> None:
    folder = _copy(grown, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    for slot in manifest["slots"]:
        slot["in_network"] = False  # the tensors hold seeds this manifest no longer describes
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="does not fit the network the manifest describes"):
        load_grown_network(folder, load_registry(environ={}))

    folder = _copy(grown, tmp_path / "again")
    (folder / "state_dict.pt").write_bytes(b"not a tensor file")
    with pytest.raises(ExportError, match="is not a tensor file Esper wrote"):
        load_grown_network(folder, load_registry(environ={}))
    with pytest.raises(ExportError, match="not an export directory"):
        read_manifest(tmp_path)


def test_export_refuses_an_env_the_run_does_not_have(grown: Path) -> None:
    result = CliRunner().invoke(main, ["export", str(grown), "--env", "7"])
    assert result.exit_code == 2 and "env(s) [7] not in this run" in result.output


def test_an_export_that_fails_midway_leaves_the_previous_one_whole_and_no_debris(
    grown: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash (or full disk) while the tensors are written: the earlier export stays loadable as it was."""
    runner = _replayed_runner(grown)
    registry = load_registry(environ={})
    env = runner.envs[0]
    folder = tmp_path / "env0"
    export_env(env, folder, run_name="r", checkpoint="c", round_index=1, registry=registry)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    def half_written(obj: object, handle: object, *args: object, **kwargs: object) -> None:
        handle.write(b"PK\x03\x04 half a zip")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(OSError, match="state_dict.pt"):  # the error names the file it was writing
        export_env(env, folder, run_name="r", checkpoint="c", round_index=2, registry=registry)
    monkeypatch.undo()
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert load_grown_network(folder, registry).manifest.round == 1
