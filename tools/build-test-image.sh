#!/usr/bin/env bash
# Builds the TEST variant of the appliance image (default: target/lb-test-image): the same
# kernel, init and lbd as the real image, plus busybox (a debug shell on ttyS1 with its applets:
# ip, nsenter, unshare, httpd, wget, nc...) and ipvsadm with its shared libraries and the
# dynamic loader, so end-to-end tests can check what lbd programmed with an independent tool
# and send real traffic through the guest's IPVS; and keepalived (the host's Debian binary and
# its libraries), so the check benchmark can run keepalived's checker beside lbd's in the same
# guest. Never ship this image: it has a root shell.
#
# Usage: tools/build-test-image.sh [OUT_DIR]
# Needs busybox-static, ipvsadm and keepalived on the host (tools/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/lb-test-image}

busybox=$(command -v busybox || true)
ipvsadm=$(command -v ipvsadm || echo /usr/sbin/ipvsadm)
keepalived=$(command -v keepalived || echo /usr/sbin/keepalived)
for f in "$busybox" "$ipvsadm" "$keepalived"; do
    if [ -z "$f" ] || [ ! -x "$f" ]; then
        echo "build-test-image: busybox, ipvsadm and keepalived are needed on the host: run tools/setup.sh" >&2
        exit 1
    fi
done

# busybox as /bin/sh (the debug shell) and as /bin/busybox (the tests run
# `busybox --install -s` once to get the applets); ipvsadm where the tests call it.
adds="--add $busybox:/bin/sh --add $busybox:/bin/busybox --add $ipvsadm:/sbin/ipvsadm"
adds="$adds --add $keepalived:/sbin/keepalived"
# The IPVS benchmark and lbctl (static, built below), so tests can drive lbd's API on its
# Unix socket from the guest's shell (`lbctl drain --node`, `lbctl status`).
bench=target/x86_64-unknown-linux-gnu/release/ipvs-bench
lbctl=target/x86_64-unknown-linux-gnu/release/lbctl
adds="$adds --add $bench:/bin/ipvs-bench --add $lbctl:/bin/lbctl"
# The programs' libraries and loader at the same paths as on the host (Debian's multiarch
# layout), each library once. Where the default image already carries the same library there
# (BIRD's libc, loader, libgcrypt... from Debian's packages), the builder keeps the package's
# file and says so: BIRD in the test image is the default image's, and these programs run
# with it.
libs=""
for prog in "$ipvsadm" "$keepalived"; do
    # "libx.so => /path (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
    found=$(ldd "$prog" | sed -n -e 's|^[[:space:]]*[^ ]* => \(/[^ ]*\) .*|\1|p' -e 's|^[[:space:]]*\(/[^ ]*\) .*|\1|p')
    if [ -z "$found" ]; then
        echo "build-test-image: ldd found no libraries for $prog" >&2
        exit 1
    fi
    libs="$libs $found"
done
libs=$(echo "$libs" | tr ' ' '\n' | grep . | sort -u)
for lib in $libs; do
    adds="$adds --add $(readlink -f "$lib"):$lib"
done

echo "build-test-image: $out = appliance image + busybox + ipvsadm + keepalived ($(echo "$libs" | wc -l) libraries) + ipvs-bench + lbctl"
# The IPVS benchmark and lbctl are built static too, before the image is assembled, so the
# --add paths exist when the image is put together.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --target x86_64-unknown-linux-gnu -p lb-bench --bin ipvs-bench -p lbctl --bin lbctl
# Fast compression: a test image is built many times a day (each keyed or next-release variant
# is a build of its own) and never shipped; the real image keeps the best.
IMAGE_ARGS="--effort fast ${IMAGE_ARGS:-} $adds" tools/build-image.sh "$out"
