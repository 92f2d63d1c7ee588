#!/usr/bin/env bash
# One device session: the run-loop throughput benchmark, then the policy comparison on resnet_impaired
# (ppo_v2 vs heuristic vs static, same seed/config, run side by side on one GPU for a fixed wall time).
# Usage (on a CUDA machine, esper installed): bash benchmarks/gpu_study.sh OUT_DIR [THROUGHPUT_S] [STUDY_S]
set -uo pipefail
out=${1:?output dir}; tp_s=${2:-60}; study_s=${3:-360}
mkdir -p "$out"; runs=$(mktemp -d)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
if [ "$tp_s" -gt 0 ]; then
  python3 benchmarks/run_throughput.py --seconds "$tp_s" --envs 6 --device cuda --out "$out/throughput.json" 2>&1 | tail -5
fi
common=(--task synthetic --host resnet_impaired --preset gpu --seed 0 --run-dir "$runs" --quiet
        --envs 4 --episode-length 20 --rounds 10000 --set training.epoch_samples="${EPOCH_SAMPLES:-5000}")
for policy in ppo_v2 heuristic static; do
  timeout -s INT "$study_s" esper run "${common[@]}" --policy "$policy" --name "$policy" > "$runs/$policy.log" 2>&1 &
done
wait
for policy in ppo_v2 heuristic static; do tail -n 15 "$runs/$policy.log"; done
tar -czf "$out/study.tgz" -C "$runs" --exclude checkpoints .
