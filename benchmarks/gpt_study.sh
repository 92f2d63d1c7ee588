#!/usr/bin/env bash
# A short growth study of the gpt host on pysource: static hosts at three widths, the impaired host
# grown by the heuristic and by ppo_v2, all arms at once as separate processes, then `esper eval` on each
# and `esper report` over all of them. Usage:
#   benchmarks/gpt_study.sh OUT [extra --set flags for every arm, e.g. --set run.rounds=2]
# GPU sizing (about 8 minutes on one H100 with the arms concurrent): the defaults below. CPU smoke test:
#   benchmarks/gpt_study.sh /tmp/gpt-smoke --preset cpu-quick --set run.rounds=1 --set run.episode_length=2 \
#     --set training.epoch_samples=32 --set task.options.max_train_bytes=100000
set -euo pipefail
OUT=${1:?usage: gpt_study.sh OUT [esper run flags for every arm]}
shift
ESPER=${ESPER:-esper}
mkdir -p "$OUT/runs"
OUT=$(cd "$OUT" && pwd)
COMMON=(--task pysource --envs 4 --set run.rounds=12 --set run.episode_length=20
        --set training.epoch_samples=4096 --set training.batch_size=64 --set training.val_samples=2048
        --set task.options.sequence_length=128 --set device.fused=off "$@")
declare -A ARMS=(
  [static-w64]="--host gpt --policy static --set host.options.width=64"
  [static-w128]="--host gpt --policy static --set host.options.width=128"
  [static-w256]="--host gpt --policy static --set host.options.width=256"
  [heuristic]="--host gpt_impaired --policy heuristic"
  [ppo_v2]="--host gpt_impaired --policy ppo_v2"
)
pids=()
for arm in "${!ARMS[@]}"; do
  # shellcheck disable=SC2086  # the arm's flags are meant to split
  "$ESPER" run ${ARMS[$arm]} "${COMMON[@]}" --name "$arm" --set run.run_dir="$OUT/runs" \
    > "$OUT/$arm.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[ "$status" -eq 0 ] || { echo "an arm failed; see $OUT/*.log" >&2; exit 1; }
for arm in "${!ARMS[@]}"; do
  "$ESPER" eval "$OUT/runs/$arm" --json > "$OUT/$arm.eval.json"
done
"$ESPER" report "$OUT"/runs/* > "$OUT/report.txt"
python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
summary = {p.name[: -len(".eval.json")]: json.loads(p.read_text()) for p in sorted(out.glob("*.eval.json"))}
(out / "study.json").write_text(json.dumps(summary, indent=2))
print(f"wrote {out / 'study.json'} and the comparison report ({out / 'report.txt'})")
PY
