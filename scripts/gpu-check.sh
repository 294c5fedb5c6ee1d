#!/usr/bin/env bash
# The CUDA build checked on a real NVIDIA GPU, on a machine with the driver and no Rust toolchain.
# Build the binary first, here: scripts/check-cuda-build.sh COMPUTE_CAP --release (it leaves
# target/cuda-sla); carry it to the GPU machine with this repository and run this script there.
#
# Usage: scripts/gpu-check.sh [BINARY]   (default: target/cuda-sla)
# Writes logs, run folders and rendered views under $OUT (or gpu-check-out/), and prints:
#   1. the GPU, its driver and compute capability;
#   2. `sla bench --device cuda:0` for the baseline and the SLA step of ResNet-32 (batch 128), with
#      the GPU memory nvidia-smi saw at its highest during each, and the PyTorch reference's same
#      steps on the same GPU (bench/torch_step.py --device cuda), where python3 has torch;
#   3. the same short `sla train` on fashion-mini (with a validation set and the best weights kept)
#      on the CPU and on cuda:0, and their final loss and accuracies side by side (they differ by
#      float rounding in other kernels, so agree within noise, not bit for bit);
#   4. `sla eval` of the CUDA run on cuda:0 and on the CPU (the same weights: the same accuracies
#      within rounding), and `sla bench --eval` on cuda:0;
#   5. a short few-shot run and its `sla fewshot eval` on cuda:0, and a short imbalanced run
#      (ρ = 10, class-balanced loss weights);
#   6. `sla render` of the CUDA run on the machine's own wgpu adapter.
set -uo pipefail
cd "$(dirname "$0")/.."

binary="${1:-target/cuda-sla}"
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
status=0
fail() { echo "FAILED: $*" >&2; status=1; }

echo "== 1. the GPU"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv || fail "nvidia-smi"

# cuBLAS, cuRAND, NVRTC and the runtime of CUDA 13 (the binary is linked against them): the CUDA 13 wheels of
# a Python environment, a toolkit under /usr/local/cuda, or whatever LD_LIBRARY_PATH already has.
lib_dirs=()
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    $(python3 -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13", "lib"))' 2>/dev/null) \
    target/cuda-venv/lib/python3*/site-packages/nvidia/cu13/lib; do
    [ -e "$dir/libcublasLt.so.13" ] && lib_dirs+=("$dir")
done
if [ ${#lib_dirs[@]} -gt 0 ]; then
    export LD_LIBRARY_PATH="$(IFS=:; echo "${lib_dirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if ! missing="$(ldd "$binary" | grep 'not found')"; then
    echo "libraries: all found ($(ldd "$binary" | grep -oE 'lib(cublasLt|cuda)\.so[^ ]* => [^ ]*' | tr '\n' ' '))"
else
    echo "$missing" >&2
    fail "the CUDA 13 libraries above are missing: pip install nvidia-cublas==13.0.* nvidia-curand==10.4.* nvidia-cuda-nvrtc==13.0.* nvidia-cuda-runtime==13.0.* and run again"
    exit 1
fi

# Highest GPU memory in use while a command runs, sampled every 100 ms.
with_gpu_memory() {
    local log="$1"; shift
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$log.memory" 2>/dev/null &
    local sampler=$!
    "$@" > "$log" 2>&1
    local result=$?
    kill "$sampler" 2>/dev/null
    cat "$log"
    echo "  GPU memory in use at most: $(sort -n "$log.memory" | tail -1) MiB"
    return $result
}

echo "== 2. sla bench on cuda:0"
for mode in baseline sla; do
    with_gpu_memory "$out/bench-$mode.txt" "$binary" bench --device cuda:0 --model resnet32 \
        --mode "$mode" --batch-size 128 --steps 20 --warmup 3 || fail "bench $mode"
done

if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    echo "-- the PyTorch reference on the same GPU (bench/torch_step.py), NCHW then channels_last"
    for mode in base sla; do
        for layout in "" --channels-last; do
            python3 bench/torch_step.py --device cuda --blocks 5 --mode "$mode" --steps 20 \
                --warmup 3 $layout || fail "torch reference $mode $layout"
        done
    done
else
    echo "-- no PyTorch with CUDA here: no reference beside the bench"
fi

echo "== 3. the same short run on the CPU and on cuda:0"
train_args=(train --dataset fashion-mini --model resnet20 --mode sla --epochs 2 --batch-size 64
    --limit-train 2000 --limit-test 500 --validation 200 --keep-best --seed 3)
for device in cpu cuda:0; do
    name="${device%%:*}"
    rm -rf "$out/run-$name"
    with_gpu_memory "$out/train-$name.txt" "$binary" "${train_args[@]}" --device "$device" \
        --out "$out/run-$name" || fail "train on $device"
done
for name in cpu cuda; do
    printf '%-5s ' "$name"
    tail -1 "$out/run-$name/metrics.jsonl" | python3 -c 'import json,sys; m=json.load(sys.stdin); print("train loss %.4f  test loss %.4f  single %.2f%%  aggregated %.2f%%  %.0f s" % (m["train_loss"], m["eval_loss"], 100*m["single_acc"], 100*(m.get("agg_acc") or 0), m["elapsed_s"]))' \
        || fail "reading the $name run's metrics"
done

echo "== 4. sla eval of the CUDA run on cuda:0 and on the CPU, and the evaluation's bench"
for device in cuda:0 cpu; do
    "$binary" eval --run "$out/run-cuda" --device "$device" > "$out/eval-${device%%:*}.txt" 2>&1 \
        || fail "eval on $device"
    echo "-- $device"; cat "$out/eval-${device%%:*}.txt"
done
with_gpu_memory "$out/bench-eval.txt" "$binary" bench --device cuda:0 --model resnet20 \
    --image-size 28 --channels 1 --mode sla --steps 10 --warmup 2 --eval --eval-images 2000 \
    || fail "bench --eval"

echo "== 5. a few-shot run and its evaluation, and an imbalanced run, on cuda:0"
rm -rf "$out/run-fewshot"
with_gpu_memory "$out/fewshot-train.txt" "$binary" fewshot train --dataset fashion-mini \
    --backbone conv4 --method protonet --mode sla --transforms rotation --ways 5 --shots 1 \
    --queries 5 --episodes 60 --eval-every 30 --eval-episodes 50 --seed 0 --device cuda:0 \
    --out "$out/run-fewshot" || fail "fewshot train"
"$binary" fewshot eval --run "$out/run-fewshot" --episodes 100 --device cuda:0 || fail "fewshot eval"

echo "-- an imbalanced run on cuda:0"
rm -rf "$out/run-imbalanced"
"$binary" train --dataset fashion-mini --model resnet20 --mode sla --epochs 1 --batch-size 64 \
    --imbalance 10 --class-weights effective --limit-test 500 --seed 3 --device cuda:0 \
    --out "$out/run-imbalanced" || fail "imbalanced train"

echo "== 6. sla render on this machine's adapter"
"$binary" render --run "$out/run-cuda" --out "$out/views" || fail "render"
ls -l "$out/views" 2>/dev/null

[ $status -eq 0 ] && echo "GPU check passed" || echo "GPU check: some steps failed (above)"
exit $status
