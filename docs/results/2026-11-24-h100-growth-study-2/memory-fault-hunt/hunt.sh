#!/bin/bash
# GPU memory-fault hunt: the study's ppo_v2 config, four variants at once for 540 s.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /tmp/nocudnn && echo 'import torch; torch.backends.cudnn.enabled = False' > /tmp/nocudnn/sitecustomize.py
C="--task synthetic --host resnet_impaired --reward growth --preset gpu --envs 32 --episode-length 15 --set training.epoch_samples=1024 --set training.val_samples=512 --set task.options.data_seed=0 --set run.keep_checkpoints=1 --policy ppo_v2 --set policy.options.critic_lr=0.003 --set policy.options.critic_max_grad_norm=1.0 --set policy.options.prob_floors.blueprint=0.05 --rounds 40 --run-dir /tmp/hunt --quiet"
PYTHONPATH=/tmp/site CUDA_LAUNCH_BLOCKING=1 timeout 530 python3 -m esper_core.cli --debug run $C --seed 2 --name blocking > $OUT/blocking.log 2>&1 &
PYTHONPATH=/tmp/nocudnn:/tmp/site timeout 530 python3 -m esper_core.cli --debug run $C --seed 2 --name nocudnn > $OUT/nocudnn.log 2>&1 &
PYTHONPATH=/tmp/site timeout 530 python3 -m esper_core.cli --debug run $C --seed 2 --set device.channels_last=false --name nchw > $OUT/nchw.log 2>&1 &
PYTHONPATH=/tmp/site timeout 530 python3 -m esper_core.cli --debug run $C --seed 0 --name control > $OUT/control.log 2>&1 &
wait
for r in blocking nocudnn nchw control; do echo "== $r: $(python3 -c "import json;d=json.load(open('/tmp/hunt/$r/summary.json'));print(d['status'],d['rounds_completed'])" 2>&1 | tail -1)"; grep -n "Error\|error" $OUT/$r.log | head -5 | cut -c1-300; done
