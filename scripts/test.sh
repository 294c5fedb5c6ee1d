#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine: install what the tests need, then test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real data (Fashion-MNIST), software Vulkan for the GPU tests, a virtual display for the window test.
packages=(dataset-fashion-mnist mesa-vulkan-drivers libvulkan1 libegl1 libgl1-mesa-dri
          xvfb xauth libxkbcommon-x11-0 libxcursor1 libxi6 libfontconfig1)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Mesa wants a private runtime folder.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 0700 "$XDG_RUNTIME_DIR"

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked

# The real binary in a real window under Xvfb: one epoch on a small slice of the embedded set, then a
# screenshot of the whole window, which must exist and not be blank.
shot_dir="$(mktemp -d)"
timeout 600 xvfb-run -a -s "-screen 0 1280x800x24" \
    cargo run --locked --quiet -- gui --autostart --exit-after-epochs 1 \
    --screenshot "$shot_dir/window.png" --epochs 1 --limit-train 500 --limit-test 100 --batch-size 50 \
    --out "$shot_dir/run"
cargo run --locked --quiet --example check_screenshot -- "$shot_dir/window.png"

# The CUDA code paths type-checked and linted without a GPU (the toolkit from PyPI; see the script;
# without --lint-only it also compiles and links the CUDA binary).
./scripts/check-cuda-build.sh 90 --lint-only
