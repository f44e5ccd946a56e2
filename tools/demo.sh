#!/usr/bin/env bash
# The main job, for a newcomer: set up the host, build the appliance image, and boot a demo
# balancer in QEMU that fetches tools/examples/demo.toml over TFTP and starts lbd.
#
# Usage: tools/demo.sh [--check]
#   (default)  boot and show the console; Ctrl-C powers the guest off the orderly way
#              (ACPI power button → init stops lbd → power-off) and exits.
#   --check    boot, wait for "lbd running", power off, exit 0 (or 1 with the console tail).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}

say() { printf '\ndemo: %s\n' "$*"; }

say "1/4 setting up the host (packages, Rust target, Debian cloud kernel package)"
tools/setup.sh

say "2/4 building the image into target/lb-image"
tools/build-image.sh target/lb-image
cargo run --quiet --release -p image -- inspect target/lb-image | sed 's/^/  /' || true

work=$(mktemp -d "${TMPDIR:-/tmp}/lb-demo.XXXXXX")
qemu_pid=
cleanup() {
    [[ -n "$qemu_pid" ]] && kill "$qemu_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cp tools/examples/demo.toml "$work/demo.toml"

say "3/4 the config this balancer will fetch (tftp://10.0.2.2/demo.toml, served by QEMU's own TFTP server):"
sed 's/^/  | /' tools/examples/demo.toml
cargo run --quiet -p lbd --bin lbd -- check "$work/demo.toml" | sed 's/^/  /'

accel=(-accel tcg -cpu max)
if [[ "${LB_ACCEL:-}" == kvm ]]; then accel=(-accel kvm -cpu host); fi

cmdline="console=ttyS0 panic=10 lb.config=tftp://10.0.2.2/demo.toml lb.poll=5s"
say "4/4 booting: qemu-system-x86_64 ${accel[*]} -kernel vmlinuz -initrd initrd.img -append \"$cmdline\""
say "    user networking: the guest is 10.0.2.15 by DHCP, the host is 10.0.2.2"
[[ "$mode" == --check ]] || say "    Ctrl-C: orderly power-off (power button → init stops lbd → poweroff)"

qemu-system-x86_64 "${accel[@]}" -m 512 -nodefaults -display none -no-reboot \
    -serial "file:$work/console.log" -qmp "unix:$work/qmp.sock,server=on,wait=off" \
    -kernel target/lb-image/vmlinuz -initrd target/lb-image/initrd.img -append "$cmdline" \
    -netdev "user,id=n0,tftp=$work" -device virtio-net-pci,netdev=n0 &
qemu_pid=$!

qmp() {
    python3 - "$work/qmp.sock" "$1" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
f.readline()
for cmd in ("qmp_capabilities", sys.argv[2]):
    f.write(json.dumps({"execute": cmd}) + "\n"); f.flush()
    while "return" not in json.loads(f.readline()): pass
PY
}

power_off() {
    say "pressing the power button (QMP system_powerdown)"
    qmp system_powerdown || true
    for _ in $(seq 1 300); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=
}

touch "$work/console.log"
if [[ "$mode" == --check ]]; then
    for _ in $(seq 1 1200); do
        grep -q "lbd running" "$work/console.log" && break
        kill -0 "$qemu_pid" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q "lbd running" "$work/console.log"; then
        grep -E " (init|lbd): " "$work/console.log"
        power_off
        grep -E "power button|lbd stopped|reboot: Power down" "$work/console.log" || true
        say "ok: the demo balancer booted, fetched its config and ran lbd"
        exit 0
    fi
    tail -n 60 "$work/console.log"
    say "failed: no \"lbd running\" on the console"
    exit 1
fi

trap 'power_off' INT
tail -n +1 -f "$work/console.log" --pid "$qemu_pid" || true
wait "$qemu_pid" 2>/dev/null || true
