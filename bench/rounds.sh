#!/bin/bash
# Side-by-side rounds for docs/performance.md: each `sla` binary given (default: the release build)
# and PyTorch (NCHW, then channels_last), alternating, three rounds, 2 threads: the ResNet-20 SLA step
# and evaluation on 1×28×28 images, the ResNet-32 SLA step and the ResNet-32 baseline step.
# Quote medians of the rounds' medians. PYTHON picks the interpreter with torch (default python3).
#
# Usage: bench/rounds.sh [SLA_BINARY ...]  > rounds.log
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BINARIES=("$@")
[ ${#BINARIES[@]} -eq 0 ] && BINARIES=(./target/release/sla)
REFERENCE=shared/bench/torch_resnet32_step.py
[ -f "$REFERENCE" ] || REFERENCE=../shared/bench/torch_resnet32_step.py
for round in 1 2 3; do
  echo "=== round $round: ResNet-20 28x28x1 SLA + eval 2000"
  for bin in "${BINARIES[@]}"; do
    echo "--- $bin"
    "$bin" bench --model resnet20 --image-size 28 --channels 1 --mode sla --steps 5 --warmup 1 \
      --threads 2 --eval --eval-images 2000
  done
  for layout in "" --channels-last; do
    echo "--- torch ${layout:-NCHW}"
    "$PYTHON" bench/torch_step.py --blocks 3 --image-size 28 --channels 1 --steps 5 --eval 2000 $layout
  done
  for mode in sla base; do
    echo "=== round $round: ResNet-32 32x32x3 $mode"
    for bin in "${BINARIES[@]}"; do
      echo "--- $bin"
      "$bin" bench --model resnet32 --mode "${mode/base/baseline}" --batch-size 128 --steps 6 \
        --warmup 2 --threads 2
    done
    for channels_last in 0 1; do
      echo "--- torch channels_last=$channels_last"
      "$PYTHON" "$REFERENCE" "$mode" 6 2 2 "$channels_last"
    done
  done
done
