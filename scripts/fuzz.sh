#!/usr/bin/env bash
# Fuzz every target (or those named) for RUNS executions each, one after the other, with libFuzzer's
# memory limit; prints each target's last status line. Needs nightly and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz --locked
# Usage: scripts/fuzz.sh [RUNS] [TARGET...]     (default: 1000000 runs, every target)
# A crash leaves its input in fuzz/artifacts/<target>/ and stops the script with libFuzzer's status.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

# The targets, in fuzz/Cargo.toml order. Adding a target: a [[bin]] there, its name here.
TARGETS=(idx cifar tar config logs snapshot_views)

runs="${1:-1000000}"
shift || true
[ $# -gt 0 ] && TARGETS=("$@")

# Safe Rust throughout, so no sanitizer: panics, runaway allocation (-rss_limit_mb, -malloc_limit_mb)
# and hangs (-timeout) are what we look for, and ASan would cost half the executions. Debug
# assertions (-a) keep overflow checks on.
flags=(-O -a -s none)
cargo +nightly fuzz build "${flags[@]}"
for target in "${TARGETS[@]}"; do
    mkdir -p "corpus/$target"
    # Seed with the inputs kept from earlier runs.
    cp -n ../tests/fuzz-regressions/"$target"/* "corpus/$target/" 2>/dev/null || true
    start=$(date +%s)
    cargo +nightly fuzz run "${flags[@]}" "$target" -- \
        -runs="$runs" -max_len=8192 -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        2>&1 | tee "/tmp/fuzz-$target.log" | grep -E '^#[0-9]+.*(DONE|pulse)|^stat::|Done [0-9]+ runs|ERROR|panicked' \
        | tail -n 12
    status=${PIPESTATUS[0]}
    echo "$target: $(( $(date +%s) - start )) s, exit status $status (full log: /tmp/fuzz-$target.log)"
    [ "$status" -eq 0 ] || exit "$status"
done
