#!/usr/bin/env bash
# The policy comparison on resnet_impaired, run side by side on one GPU for a fixed wall time: ppo_v2
# (two seeds), heuristic and static (no growth), same task, host, env sizes and seed 0 for the baselines.
#
# Usage (on a CUDA machine, esper installed):
#   bash benchmarks/gpu_study.sh OUT_DIR STUDY_S [RUNS_DIR] [THROUGHPUT_S]
# A run whose directory already holds a checkpoint is *resumed* (esper resume), so calling this again with
# the same RUNS_DIR continues the same runs: a study longer than one command's time limit is a few calls.
# Every run is stopped with SIGINT at STUDY_S (it finishes its step and writes a checkpoint). OUT_DIR gets
# gpu.txt, gpu_util.csv (utilisation every 5 s), the logs and study.tgz (run dirs without checkpoints).
# Env: EPOCH_SAMPLES (host samples per env step, default 2500), PPO_SETS (extra --set for ppo_v2 runs, e.g.
# "policy.options.max_grad_norm=4 policy.options.lr=1e-4"),
# EVAL=1 (then `esper eval` every run: one deterministic episode per env, held-out test accuracy, eval.json),
# MATCHED_WIDTHS=9,18,38 (adds static-matched-s0: a static host that wide, e.g. as many parameters as a
# grown one ends with; 9,18,38 gives 26,853 against 19,954 for the default 8,16,32).
set -uo pipefail
out=${1:?output dir}; study_s=${2:?seconds}; runs=${3:-.study/runs}; tp_s=${4:-0}
mkdir -p "$out" "$runs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 5 > "$out/gpu_util.csv" &
monitor=$!
if [ "$tp_s" -gt 0 ]; then
  python3 benchmarks/run_throughput.py --seconds "$tp_s" --envs 6 --device cuda --out "$out/throughput.json" 2>&1 | tail -5
fi
common=(--task synthetic --host resnet_impaired --preset gpu --run-dir "$runs" --quiet
        --envs 4 --episode-length 20 --rounds 10000 --set training.epoch_samples="${EPOCH_SAMPLES:-2500}")
read -r -a ppo_sets <<< "${PPO_SETS:-}"
pids=()
declare -A args=(
  [ppo_v2-s0]="--policy ppo_v2 --seed 0"
  [ppo_v2-s1]="--policy ppo_v2 --seed 1"
  [heuristic-s0]="--policy heuristic --seed 0"
  [static-s0]="--policy static --seed 0"
)
[ -n "${MATCHED_WIDTHS:-}" ] && args[static-matched-s0]="--policy static --seed 0 --set host.options.widths=[$MATCHED_WIDTHS]"
for name in "${!args[@]}"; do
  if compgen -G "$runs/$name/checkpoints/*.pt" > /dev/null; then
    echo "resuming $name"
    timeout -k 60 -s INT "$study_s" esper resume "$runs/$name" --quiet >> "$out/$name.log" 2>&1 &
    pids+=($!)
  else
    echo "starting $name"
    extra=()
    [[ $name == ppo_v2* ]] && for s in "${ppo_sets[@]}"; do extra+=(--set "$s"); done
    set -f  # ${args[$name]} is split into words on purpose; [9,18,38] must not glob
    # shellcheck disable=SC2086
    timeout -k 60 -s INT "$study_s" esper run "${common[@]}" ${args[$name]} "${extra[@]}" --name "$name" \
      >> "$out/$name.log" 2>&1 &
    pids+=($!)
    set +f
  fi
done
wait "${pids[@]}"
if [ "${EVAL:-0}" = 1 ]; then
  for name in "${!args[@]}"; do esper eval "$runs/$name" > "$out/$name.eval.log" 2>&1 & done
  wait
  for name in "${!args[@]}"; do echo "== eval $name"; tail -n 2 "$out/$name.eval.log"; done
fi
kill "$monitor" 2>/dev/null
for name in "${!args[@]}"; do echo "== $name"; tail -n 4 "$out/$name.log"; done
tar -czf "$out/study.tgz" -C "$runs" --exclude checkpoints .
