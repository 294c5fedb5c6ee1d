#!/bin/sh
# The few-shot evidence of docs/results-fewshot.md: Conv-4 on Fashion-MNIST (Debian's package) with
# the usual class split (base 0–4, novel 5–9), 5-way 1-shot and 5-way 5-shot, ProtoNet and ridge,
# baseline and SLA (rotations), for each seed; every run evaluated on 1,000 test episodes.
#
# Usage: scripts/fewshot-results.sh OUT [SEEDS] [EPISODES]
#   OUT       folder of the run folders (one per method × shots × mode × seed)
#   SEEDS     space-separated seeds (default "0 1")
#   EPISODES  training episodes per run (default 500)
# Complete runs are skipped and interrupted ones resumed, so the script can be run again after a
# stop; `sla fewshot eval` then prints the table from the finished runs.
set -eu
out=${1:?usage: scripts/fewshot-results.sh OUT [SEEDS] [EPISODES]}
seeds=${2:-0 1}
episodes=${3:-500}
sla=${SLA:-target/release/sla}
mkdir -p "$out"
for seed in $seeds; do
  for shots in 1 5; do
    for method in protonet ridge; do
      for mode in baseline sla; do
        run="$out/$method-${shots}shot-$mode-seed$seed"
        if [ -f "$run/metrics.jsonl" ] && grep -q "\"step\":$episodes," "$run/metrics.jsonl"; then
          echo "complete: $run"
          continue
        fi
        if [ -f "$run/config.json" ]; then
          "$sla" fewshot train --resume "$run"
        else
          "$sla" fewshot train --dataset fashion-mnist --backbone conv4 --method "$method" \
            --mode "$mode" --ways 5 --shots "$shots" --queries 15 --test-queries 15 \
            --episodes "$episodes" --eval-every "$episodes" --eval-episodes 1000 \
            --checkpoint-every 50 --seed "$seed" --out "$run"
        fi
      done
    done
  done
done
