"""What an observer hears from `esper run`, `esper resume` and `esper eval`: where the run directory is,
which round a resume redoes, evaluation results with the grown morphology, and nothing undocumented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import esper_core.plugins.loader as loader
from esper_core.cli import main
from esper_core.events import EVENT_CLASSES, METRICS_TYPE
from esper_core.hookspecs import hookimpl
from esper_core.plugins import registry_from_plugins
from esper_core.run.telemetry import read_jsonl
from esper_core.specs import ObserverSpec
from support.run_configs import BUSY_HEURISTIC, write_config

RUN = {"policy": {"name": "heuristic", "options": BUSY_HEURISTIC}, "host": {"name": "tiny_cnn"}, "run": {"episode_length": 4}}


class Probe:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.closed = 0

    def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed += 1

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


class ProbePlugin:
    def __init__(self) -> None:
        self.sessions: list[Probe] = []

    def make(self, options: Any) -> Probe:
        self.sessions.append(Probe())
        return self.sessions[-1]

    @hookimpl
    def esper_observers(self) -> list[ObserverSpec]:
        return [ObserverSpec(name="probe", description="records every event", factory=self.make)]


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> ProbePlugin:
    """Every CLI command in the test sees the built-ins plus the probe observer."""
    plugin = ProbePlugin()
    monkeypatch.setattr(loader, "load_registry", lambda strict=False, **_: registry_from_plugins(plugin, builtins=True))
    return plugin


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_run_resume_and_eval_tell_observers_where_and_what(probe: ProbePlugin, tmp_path: Path) -> None:
    config = str(write_config(tmp_path, RUN))
    _cli("run", "--config", config, "--run-dir", str(tmp_path), "--name", "r", "--rounds", "2", "--observer", "probe", "-q")
    run = (tmp_path / "r").resolve()
    (fresh,) = probe.sessions
    start = fresh.events[0]
    assert start["type"] == "run_start" and start["run_dir"] == str(run) and start["run_name"] == "r"
    assert start["resumed_at_round"] is None and start["config"]["observers"]["enabled"] == ["probe"]
    assert fresh.types()[-2:] == ["run_end", "report_written"] and fresh.closed == 1
    assert fresh.types().count("round_end") == 2 and fresh.types().count(METRICS_TYPE) == 2
    report = fresh.events[-1]  # the run's report, to observers only: its figures are on disk
    assert report["round"] == 2 and set(report["figures"]) >= {"curves", "lifecycle", "morphology"}
    assert all(Path(path).is_file() and Path(path).parent == run / "report" for path in report["figures"].values())
    written = read_jsonl(run / "events.jsonl")
    observed = [e for e in fresh.events if e["type"] not in (METRICS_TYPE, "report_written")]
    assert observed == written  # the file and the observer agree

    (run / "checkpoints" / "round_00002.pt").unlink()  # as if the run had died during its second round
    _cli("resume", str(run), "--rounds", "1", "-q")
    resumed = probe.sessions[1]
    assert resumed.events[0]["type"] == "run_start" and resumed.events[0]["resumed_at_round"] == 1
    assert [e["round"] for e in resumed.events if e["type"] == "round_end"] == [1]

    events_before = (run / "events.jsonl").read_bytes()
    output = _cli("eval", str(run))
    evaluated = probe.sessions[2]
    assert evaluated.types() == ["eval_start", "eval_result", "eval_result", "eval_end"] and evaluated.closed == 1
    assert evaluated.events[0]["run_dir"] == str(run) and evaluated.events[0]["round"] == 2
    result = evaluated.events[1]
    assert [s["slot"] for s in result["slots"]] == ["r0c0", "r0c1"]  # every slot of tiny_cnn, described
    assert set(result["slots"][0]) == {"slot", "stage", "blueprint", "style", "alpha", "seed_params", "in_network"}
    assert (run / "events.jsonl").read_bytes() == events_before  # eval writes no events
    assert "final morphology per env" in output

    documented = {cls.type for cls in EVENT_CLASSES} | {METRICS_TYPE}
    seen = {e["type"] for session in probe.sessions for e in session.events}
    assert seen <= documented, seen - documented


def test_resume_can_switch_observers_for_one_session(probe: ProbePlugin, tmp_path: Path) -> None:
    config = str(write_config(tmp_path, RUN))
    _cli("run", "--config", config, "--run-dir", str(tmp_path), "--name", "r", "--rounds", "1", "--observer", "probe", "-q")
    _cli("resume", str(tmp_path / "r"), "--rounds", "1", "--no-observers", "-q")
    assert len(probe.sessions) == 1  # the second session built no observer
    result = CliRunner().invoke(main, ["resume", str(tmp_path / "r"), "--rounds", "1", "--observer", "nope"])
    assert result.exit_code == 2 and "observers.enabled: unknown observer 'nope'" in result.output
