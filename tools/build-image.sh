#!/usr/bin/env bash
# Builds the appliance image: static init + lbd, then kernel + initramfs + iPXE script + manifest.
#
# Usage: tools/build-image.sh [OUT_DIR]      (default: target/lb-image)
# Needs the kernel package in .cache/kernel/ (tools/setup.sh fetches it).
# Extra arguments for `image build` can be passed in IMAGE_ARGS (e.g. IMAGE_ARGS="--compress zstd").
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/lb-image}
target=x86_64-unknown-linux-gnu

echo "build-image: compiling static init and lbd (release, $target, crt-static)"
# --target keeps RUSTFLAGS away from build scripts and proc-macros, which cannot be static.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --target "$target" -p init -p lbd
echo "build-image: assembling $out from the cached kernel package"
# shellcheck disable=SC2086 # IMAGE_ARGS is a list of words on purpose
cargo run --quiet --release -p image -- build --out "$out" ${IMAGE_ARGS:-}
