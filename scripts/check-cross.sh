#!/usr/bin/env bash
# Check that `sla` compiles for the other desktop platforms, from a Debian x86-64 machine:
#   - macOS on Apple silicon with Metal: `cargo check --features metal --target aarch64-apple-darwin`
#     (type-checks every crate; nothing is linked, since Apple's SDK and linker are not on Debian);
#   - Windows: `cargo check --target x86_64-pc-windows-gnu`, with `--link` a full `cargo build`
#     linked by Debian's MinGW-w64 into a real sla.exe (dependencies at opt-level 3: long on 2 cores).
# Usage: scripts/check-cross.sh [--link] [macos|windows]... (default: both). Installs the Rust targets with
# rustup and, for Windows, Debian's gcc-mingw-w64-x86-64; C code in dependencies is compiled with
# clang for macOS (which needs no SDK for what our dependencies compile) and MinGW's gcc for Windows.
set -euo pipefail
cd "$(dirname "$0")/.."

link=false
platforms=()
for arg in "$@"; do
    case "$arg" in
        --link) link=true ;;
        *) platforms+=("$arg") ;;
    esac
done
[ ${#platforms[@]} -gt 0 ] || platforms=(macos windows)

need_package() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" && return
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$1"
}

status=0
for platform in "${platforms[@]}"; do
    case "$platform" in
        macos)
            target=aarch64-apple-darwin
            need_package clang
            rustup target add "$target"
            echo "== cargo check --features metal --target $target"
            if CC_aarch64_apple_darwin=clang cargo check --locked --features metal --target "$target" --all-targets; then
                echo "macOS (Metal): compiles"
            else
                echo "macOS (Metal): FAILED" >&2
                status=1
            fi
            ;;
        windows)
            target=x86_64-pc-windows-gnu
            need_package gcc-mingw-w64-x86-64
            rustup target add "$target"
            if $link; then command=(build --bins); else command=(check --all-targets); fi
            echo "== cargo ${command[*]} --target $target"
            if CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
                CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc \
                cargo "${command[@]}" --locked --target "$target"; then
                if $link; then ls -l "target/$target/debug/sla.exe"; fi
                echo "Windows: ${command[0]} passes"
            else
                echo "Windows: FAILED" >&2
                status=1
            fi
            ;;
        *)
            echo "usage: $0 [--link] [macos|windows]..." >&2
            exit 2
            ;;
    esac
done
exit $status
