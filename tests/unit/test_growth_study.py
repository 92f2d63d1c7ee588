"""benchmarks/growth_study.py and its helper study_runs.py: which runs a study plans, how a second call
continues them (esper resume for the rounds still missing), and the statistics it reports."""

from __future__ import annotations

import json
import math
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from support.benchmark_scripts import BENCHMARKS, load_benchmark_script

study = load_benchmark_script("growth_study")
runs = load_benchmark_script("study_runs")


def test_the_plan_names_every_family_and_passes_overrides_to_the_right_runs() -> None:
    args = study.parse_args([
        "--out", "x", "--seeds", "2", "--rounds", "32", "--baseline-rounds", "3", "--widths", "4,8,16;8,16,32",
        "--set", "run.envs=4", "--ppo-set", "policy.options.lr=1e-4", "--variant", "vn:policy.options.value_norm=true",
    ])
    families = study.plan(args)
    assert list(families) == ["ppo_v2", "vn", "heuristic", "random", "static", "width-4-8-16", "width-8-16-32"]
    assert [r.name for r in families["ppo_v2"]] == ["ppo_v2-s0", "ppo_v2-s1"]
    assert all(r.rounds == 32 for r in families["vn"]) and families["static"][0].rounds == 3
    vn = families["vn"][1].args
    assert "policy.options.value_norm=true" in vn and "policy.options.lr=1e-4" in vn and "run.envs=4" in vn
    assert "policy.options.lr=1e-4" not in families["heuristic"][0].args
    assert "host.options.widths=[8,16,32]" in families["width-8-16-32"][0].args
    assert all("--reward" in r.args and "growth" in r.args for f in families.values() for r in f)


def test_unknown_arms_and_bad_variants_are_refused_clearly() -> None:
    with pytest.raises(SystemExit, match="unknown arm"):
        study.plan(study.parse_args(["--out", "x", "--arms", "ppo,static"]))
    with pytest.raises(SystemExit, match="NAME:KEY=VALUE"):
        study.plan(study.parse_args(["--out", "x", "--variant", "static:a=b"]))


def test_a_second_call_resumes_for_the_missing_rounds_and_skips_finished_runs(tmp_path) -> None:
    esper = ["esper"]
    run = runs.Planned("a", ("--policy", "static"), 5)
    assert runs.command_for(run, tmp_path, esper)[:2] == ["esper", "run"]
    checkpoints = tmp_path / "a" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "round_00003.pt").write_bytes(b"")
    assert runs.command_for(run, tmp_path, esper) == ["esper", "resume", str(tmp_path / "a"), "--rounds", "2", "--quiet"]
    (checkpoints / "round_00005.pt").write_bytes(b"")
    assert runs.command_for(run, tmp_path, esper) is None
    # A run killed before its first checkpoint is put aside and started afresh.
    (tmp_path / "b").mkdir()
    assert runs.command_for(runs.Planned("b", (), 1), tmp_path, esper)[:2] == ["esper", "run"]
    assert not (tmp_path / "b").exists() and list(tmp_path.glob("b.broken-*"))


@given(values=st.lists(st.floats(-10, 10), min_size=2, max_size=30))
def test_mean_and_standard_error(values) -> None:
    stat = runs.mean_se(values)
    mean = sum(values) / len(values)
    assert math.isclose(stat["mean"], mean, abs_tol=1e-9)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    assert math.isclose(stat["se"], math.sqrt(var / len(values)), abs_tol=1e-9)


@given(xs=st.lists(st.floats(-10, 10), min_size=3, max_size=30), a=st.floats(0.1, 5), b=st.floats(-5, 5))
def test_a_linear_relation_correlates_perfectly(xs, a, b) -> None:
    if max(xs) - min(xs) < 1e-3:
        return
    assert math.isclose(runs.pearson(xs, [a * x + b for x in xs]), 1.0, abs_tol=1e-6)
    assert math.isclose(runs.pearson(xs, [-a * x + b for x in xs]), -1.0, abs_tol=1e-6)


@pytest.mark.slow
def test_the_study_runs_evaluates_and_summarises_on_cpu(tmp_path) -> None:
    """Tiny hosts, one round: two static runs side by side, evaluated, summarised (about 20 s)."""
    out = tmp_path / "study"
    code = study.main([
        "--out", str(out), "--arms", "static,width", "--widths", "4,8,16", "--baseline-rounds", "1",
        "--preset", "cpu-quick", "--envs", "2", "--episode-length", "3", "--max-parallel", "2",
        "--set", "training.epoch_samples=32", "--set", "training.val_samples=32", "--set", "task.options.train_size=64",
        "--set", "task.options.val_size=32", "--set", "task.options.test_size=32", "--esper", f"{sys.executable} -m esper_core.cli",
    ])
    data = json.loads((out / "study.json").read_text())
    assert code == 0 and data["complete"], data["status"]
    static, narrow = data["families"]["static"], data["families"]["width-4-8-16"]
    assert static["test_acc"]["n"] == 2 and 0.0 <= static["test_acc"]["mean"] <= 1.0
    assert narrow["final_params"]["mean"] < static["final_params"]["mean"]
    assert static["episodes"] == 2 and static["params_added"]["mean"] == 0
    assert (out / "table.md").read_text().count("| width-4-8-16 |") == 1
    assert BENCHMARKS.exists()


# Two sizes whose logs are equal in floating point (found by the property): the upper one must still read
# its own accuracy.
@example(sizes=[1000.0, 1000.0000000000001], accs=[0.0, 1.0, 0.0, 0.0, 0.0, 0.0], where=0.0)
@given(
    sizes=st.lists(st.floats(1e3, 1e6), min_size=2, max_size=6, unique=True),
    accs=st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6),
    where=st.floats(0.0, 1.0),
)
def test_the_parameter_matched_accuracy_lies_between_its_two_nearest_static_hosts(sizes, accs, where) -> None:
    points = sorted(zip(sizes, accs))
    for p, a in points:
        assert math.isclose(study.frontier_at(points, p), a, abs_tol=1e-9)
    (p0, a0), (p1, a1) = points[0], points[1]
    matched = study.frontier_at(points, p0 + where * (p1 - p0))
    assert min(a0, a1) - 1e-9 <= matched <= max(a0, a1) + 1e-9
    # Outside the sweep there is no parameter-matched host: no number, rather than an extrapolated guess.
    assert study.frontier_at(points, points[0][0] * 0.5) is None
    assert study.frontier_at(points, points[-1][0] * 2.0) is None


def test_each_seed_is_measured_against_the_static_host_of_its_own_size() -> None:
    families = {
        "static": {"final_params": {"mean": 1000.0}, "test_acc": {"mean": 0.20}},
        "width-2": {"final_params": {"mean": 4000.0}, "test_acc": {"mean": 0.40}},
        "ppo_v2": {"final_params": {"mean": 3000.0}, "test_acc": {"mean": 0.5}},
    }
    points = study.frontier_points(families)
    assert points == [(1000.0, 0.20), (4000.0, 0.40)]  # growing families are not part of the frontier

    def row(acc: float, params: int, slots: list[dict]) -> dict:
        return {"test_acc": acc, "network_params": params, "grown": study.grown({"slots": slots})}

    fossil = {"slot": "r0c0", "blueprint": "norm", "stage": "FOSSILIZED"}
    pruned = {"slot": "r0c1", "blueprint": "mlp", "stage": "PRUNED"}
    runs = {
        "a": {"eval": [row(0.35, 2000, [fossil, pruned]), row(0.33, 2000, [fossil])]},  # matched: 0.30 at 2,000
        "b": {"eval": [row(0.25, 2000, [])]},
    }
    result = study.against_frontier(runs, points)
    a = result["per_seed"]["a"]
    assert math.isclose(a["parameter_matched_static_acc"], 0.30) and math.isclose(a["margin_over_matched"], 0.04)
    assert a["grown"] == {"r0c0:norm:FOSSILIZED": 2}  # the pruned seed is not part of the network
    assert math.isclose(result["min_margin_over_matched"], -0.05)  # the worst seed decides the bar


def test_what_a_family_grew_is_rated_by_the_sweep(tmp_path) -> None:
    sweep = tmp_path / "sweep.json"
    rows = [("none", 0.0), ("r0c0:norm", 0.07), ("r0c2:conv_small", 0.06), ("r0c1:attention", 0.03),
            ("r0c0:bottleneck", -0.07)]
    sweep.write_text(json.dumps({"summary": [{"plan": plan, "test_gain_over_none": {"mean": gain}} for plan, gain in rows]}))
    ratings = study.sweep_ratings(sweep)
    assert "none" not in ratings and ratings["r0c0:norm"] == 0.07

    def row(*grown: str) -> dict:
        return {"grown": list(grown)}

    runs = {"s0": {"eval": [row("r0c0:norm:FOSSILIZED", "r0c0:bottleneck:BLENDING"), row("r1c0:lora:HOLDING")]}}
    result = study.against_sweep(runs, ratings)
    assert result["seeds_held"] == 3 and result["unrated"] == 1  # a pair the sweep never measured
    assert math.isclose(result["mean_sweep_gain_of_chosen"], 0.0)  # (0.07 - 0.07) / 2
    assert math.isclose(result["mean_sweep_gain_of_all_pairs"], (0.07 + 0.06 + 0.03 - 0.07) / 4)
    assert math.isclose(result["share_in_sweep_top3"], 1 / 3)
    assert result["sweep_top"] == ["r0c0:norm", "r0c2:conv_small", "r0c1:attention"]


def test_a_file_that_is_not_a_sweep_is_refused_before_any_run(tmp_path) -> None:
    bad = tmp_path / "sweep.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(SystemExit, match="not a blueprint sweep"):
        study.main(["--out", str(tmp_path / "out"), "--arms", "", "--seeds", "0", "--sweep", str(bad)])
    assert not (tmp_path / "out" / "study.json").exists()
