#!/usr/bin/env bash
# A stand-in for `nvidia-smi --query-gpu=index,power.draw,utilization.gpu,memory.used,clocks.sm
# --format=csv,noheader,nounits --loop-ms=N` on a machine without GPUs: a line per GPU every
# N ms, forever, at a constant power. STANDIN_GPUS (default 8) and STANDIN_WATTS (default 250)
# set them. Used by the GPU telemetry test and benchmark (`SWEEP_NVIDIA_SMI=<this script>`).
ms=1000
for arg in "$@"; do
  case $arg in --loop-ms=*) ms=${arg#--loop-ms=} ;; esac
done
gpus=${STANDIN_GPUS:-8}
watts=${STANDIN_WATTS:-250}
pause=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
while :; do
  for ((i = 0; i < gpus; i++)); do
    echo "$i, $watts.00, 87, 30000, 1980"
  done
  sleep "$pause"
done
