"""The fused-path benchmarks run on the CPU at tiny sizes and report what they measure as JSON."""

from __future__ import annotations

import json

from click.testing import CliRunner

from support.benchmark_scripts import load_benchmark_script


def test_seed_cost_measures_each_asked_row(tmp_path) -> None:
    module = load_benchmark_script("seed_cost")
    out = tmp_path / "seed_cost.json"
    args = ["--tiny", "--device", "cpu", "--envs", "2", "--epochs", "1", "--only", "none,norm,mixed", "--out", str(out)]
    result = CliRunner().invoke(module.main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    slot = report["slot"]
    assert set(report["images_per_s"]) == {"none", f"norm@{slot}:training", f"norm@{slot}:blending", "mixed"}
    assert all(rate > 0 for rate in report["images_per_s"].values())
    assert report["envs"] == 2 and report["samples_per_epoch_per_env"] == 64
