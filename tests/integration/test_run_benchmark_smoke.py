"""benchmarks/run_throughput.py runs on the CPU at tiny sizes and reports both measurements as JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from click.testing import CliRunner

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run_throughput.py"


def test_throughput_benchmark_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("run_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "throughput.json"
    args = ["--tiny", "--seconds", "1.5", "--device", "cpu", "--host", "tiny_cnn", "--policy", "random",
            "--set", "device.threads=1", "--out", str(out)]
    result = CliRunner().invoke(module.main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["esper"]["env_steps_per_s"] > 0 and report["esper"]["runner_steps_counted"] >= 1
    assert report["esper"]["seconds_per_host_epoch_per_env"] > 0
    assert report["plain"]["seconds_per_epoch_train"] > 0 and report["plain"]["epochs_counted"] >= 1
    assert report["epoch_samples"] == 128 and report["esper"]["envs"] == 2
