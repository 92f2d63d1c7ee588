"""benchmarks/run_throughput.py runs on the CPU at tiny sizes and reports both measurements as JSON."""

from __future__ import annotations

import json

from click.testing import CliRunner

from support.benchmark_scripts import load_benchmark_script


def test_throughput_benchmark_smoke(tmp_path):
    module = load_benchmark_script("run_throughput")
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
