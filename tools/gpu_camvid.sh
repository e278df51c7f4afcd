#!/usr/bin/env bash
# One prepared GPU session (H100/H200 device machine, Python 3.12, torch preinstalled, no network):
#  1. bench/inference.py on CUDA (torch fp32 / fp16 / fp16 + CUDA graphs), bounded to BENCH_S seconds;
#  2. a 2-epoch probe of the two CamVid configs side by side, to size the epochs to the time left;
#  3. the two CamVid trainings side by side (the GPU is launch-bound for these small networks, so
#     three processes share it well), each packed to fp16 and returned with its history.
# Carried: .whl (smp, albumentations and their pure-Python or cp312 deps), data/camvid_jpg (CamVid train/val,
# images re-encoded as JPEG q95 to fit the transfer limit; labels untouched).
#   OUT=/tmp/out BUDGET_S=560 bash tools/gpu_camvid.sh
set -u
export PYTHONUNBUFFERED=1
start=$(date +%s)
BUDGET_S=${BUDGET_S:-560}
BENCH_S=${BENCH_S:-70}
OUT=${OUT:?set OUT to the folder for results}
[ -n "${SKIP_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD
python3 -c "import segmentation_models_pytorch, albumentations, semseg_ros.train.trainer, torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())" || exit 4
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
mkdir -p $OUT/logs
timeout $BENCH_S python3 bench/inference.py --models fpn,unet,student --runs 20 --batch 8 2>&1 | tee $OUT/logs/bench_inference_cuda.txt

runs="camvid_unet_mobilenet camvid_unet_mobilenet_sim"
common="--set data.root=data/camvid_jpg --set data.workers=5 ${EXTRA:-}"  # EXTRA: a dry run's tiny settings
for r in $runs; do
  python3 -m semseg_ros train config/train/$r.yaml $common --set train.epochs=2 --set train.val_every=2 \
    --set train.out_dir=/tmp/probe/$r > /tmp/probe_$r.log 2>&1 &
done
wait
epoch_s=$(python3 - <<'PY'
import json
worst = 0.0
for r in "camvid_unet_mobilenet camvid_unet_mobilenet_sim".split():
    rec = [e for e in map(json.loads, open(f"/tmp/probe/{r}/history.jsonl")) if e["event"] == "epoch"]
    worst = max(worst, rec[1]["elapsed_s"] - rec[0]["elapsed_s"])
print(worst)
PY
) || { cat /tmp/probe_*.log | tail -40; exit 5; }
now=$(date +%s)
left=$((BUDGET_S - (now - start) - 45))   # 45 s: start-up of the runs, packing, copying
[ "$left" -gt 60 ] || { echo "only ${left} s left after the probe: no training" >&2; exit 6; }
epochs=$(python3 -c "print(max(10, min(400, int(($left - 15) / ($epoch_s * 1.08)))))")
echo "probe: ${epoch_s} s per epoch (3 runs side by side); ${left} s left -> ${epochs} epochs" | tee $OUT/logs/plan.txt
for r in $runs; do
  timeout $((left + 5)) python3 -m semseg_ros train config/train/$r.yaml $common --set train.epochs=$epochs \
    --set train.out_dir=runs/$r > $OUT/logs/$r.log 2>&1 &
done
wait
for r in $runs; do
  tail -3 $OUT/logs/$r.log
  python3 -m semseg_ros pack runs/$r/best.pt $OUT/$r.pt --fp16
  cp runs/$r/history.jsonl $OUT/logs/$r.history.jsonl; cp runs/$r/config.yaml $OUT/logs/$r.config.yaml
  cp -r runs/$r/tensorboard $OUT/logs/$r.tensorboard 2>/dev/null
done
tar -czf $OUT/logs.tar.gz -C $OUT logs && rm -rf $OUT/logs
echo "total $(( $(date +%s) - start )) s"
