#!/usr/bin/env bash
# Set up a Debian bookworm machine for building and testing Spate.
#
# Installs the system packages the workspace, its tests and its benchmarks need, and checks that
# the Rust toolchain has the components CI uses. Idempotent: when everything is already installed
# it runs no apt command at all, so a developer's rerun takes well under a second.
#
# Used by scripts/run.sh and scripts/test.sh; safe to run on its own.
set -euo pipefail

# clang-19, lld-19, wasi-libc, libclang-rt-19-dev-wasm32: build C programs to wasm32-wasi
#   (test programs and the compile benchmark's large module).
# llvm-19-dev, libpolly-19-dev, libclang-dev: the LLVM tier (llvm-sys / inkwell against LLVM 19;
#   its prefetch pass is C++, built with clang-19's clang++ against llvm-19-dev's headers).
# libopenmpi-dev, openmpi-bin: the MPI host functions and their tests.
# python3: the benchmark's C program generator.
PACKAGES=(
    clang-19
    lld-19
    wasi-libc
    libclang-rt-19-dev-wasm32
    llvm-19-dev
    libpolly-19-dev
    libclang-dev
    libopenmpi-dev
    openmpi-bin
    python3
)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

command -v dpkg-query >/dev/null 2>&1 || die "this script supports Debian (bookworm) only"

missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
# Node runs the V8 Liftoff comparison in the compile benchmark. Machines of this kind ship it;
# fall back to Debian's package where it is absent.
if ! command -v node >/dev/null 2>&1 && ! installed nodejs; then
    missing+=(nodejs)
fi

if ((${#missing[@]} > 0)); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "system packages already installed"
fi

# The tools the rest of the scripts rely on, by the names they use.
for tool in clang-19 wasm-ld-19 llvm-config-19 mpicc; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found after installing packages"
done
[[ -f /usr/include/wasm32-wasi/stdio.h ]] || die "wasi-libc headers not found under /usr/include/wasm32-wasi"

# Rust: the workspace pins rust-version 1.95; CI also runs rustfmt and clippy.
if [[ -f "$HOME/.cargo/env" ]] && ! command -v cargo >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install the Rust 1.95 stable toolchain"
for component in fmt clippy; do
    if ! cargo "$component" --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null 2>&1; then
            log "adding rustup component for cargo $component"
            rustup component add "$([[ $component == fmt ]] && echo rustfmt || echo clippy)"
        else
            die "cargo $component is not available"
        fi
    fi
done

log "ok ($(clang-19 --version | head -n1); LLVM $(llvm-config-19 --version); $(cargo --version))"
