#!/usr/bin/env bash
# Builds the TEST variant of the appliance image (default: target/lb-test-image): the same
# kernel, init and lbd as the real image, plus busybox (a debug shell on ttyS1 with its applets:
# ip, nsenter, unshare, httpd, wget, nc...) and ipvsadm with its shared libraries and the
# dynamic loader, so end-to-end tests can check what lbd programmed with an independent tool
# and send real traffic through the guest's IPVS. Never ship this image: it has a root shell.
#
# Usage: tools/build-test-image.sh [OUT_DIR]
# Needs busybox-static and ipvsadm on the host (tools/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/lb-test-image}

busybox=$(command -v busybox || true)
ipvsadm=$(command -v ipvsadm || echo /usr/sbin/ipvsadm)
for f in "$busybox" "$ipvsadm"; do
    if [ -z "$f" ] || [ ! -x "$f" ]; then
        echo "build-test-image: busybox and ipvsadm are needed on the host: run tools/setup.sh" >&2
        exit 1
    fi
done

# busybox as /bin/sh (the debug shell) and as /bin/busybox (the tests run
# `busybox --install -s` once to get the applets); ipvsadm where the tests call it.
adds="--add $busybox:/bin/sh --add $busybox:/bin/busybox --add $ipvsadm:/sbin/ipvsadm"
# The IPVS benchmark (static, built with lbd by build-image.sh below).
bench=target/x86_64-unknown-linux-gnu/release/ipvs-bench
adds="$adds --add $bench:/bin/ipvs-bench"
# ipvsadm's libraries and loader at the same paths as on the host (Debian's multiarch layout).
libs=$(ldd "$ipvsadm" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
if [ -z "$libs" ]; then
    echo "build-test-image: ldd found no libraries for $ipvsadm" >&2
    exit 1
fi
for lib in $libs; do
    adds="$adds --add $(readlink -f "$lib"):$lib"
done

echo "build-test-image: $out = appliance image + busybox + ipvsadm ($(echo "$libs" | wc -l) libraries) + ipvs-bench"
# build-image.sh compiles lbd's binaries (ipvs-bench among them) before assembling the image;
# compile first here so the --add path exists when the image is put together.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --target x86_64-unknown-linux-gnu -p lbd --bin ipvs-bench
IMAGE_ARGS="${IMAGE_ARGS:-} $adds" tools/build-image.sh "$out"
