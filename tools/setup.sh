#!/usr/bin/env bash
# Prepares a Debian host to build and test the load-balancer appliance:
# installs the system packages the builds and the end-to-end tests use, checks the Rust target,
# and fetches the Debian cloud kernel package the image and the QEMU tests boot.
#
# Idempotent and non-interactive (fine with CI=true and no stdin): a second run installs and
# downloads nothing.
#
# Usage: tools/setup.sh [--refresh] [--help]
#   --refresh   re-resolve the kernel ABI package from the meta-package and download it if the
#               cached .deb is not the current one (otherwise a cached .deb is reused as is).
# Environment:
#   LB_CACHE_DIR   cache directory (default: <repo>/.cache); the kernel goes to $LB_CACHE_DIR/kernel
#
# Prints one line per step; the last line is the path of the kernel .deb.
set -euo pipefail

# Everything the project installs from apt, in one place.
APT_PACKAGES=(
    qemu-system-x86 # QEMU guests for the end-to-end tests (TCG; KVM where it works)
    ipxe-qemu       # QEMU's PXE option ROMs (-boot n)
    ipxe            # undionly.kpxe / ipxe.efi that pxe serves over TFTP to firmware without iPXE
    busybox-static  # tiny initramfs for harness self-tests and guest tooling
    cpio            # initramfs archives
    xz-utils        # .deb payloads, compressed initramfs
    zstd            # compressed initramfs / kernel modules
    dnsmasq-base    # DHCP/TFTP peer in network-namespace tests
    tftp-hpa        # TFTP client peer for the pxe server tests
    atftp           # TFTP client with blksize/tsize options, for the pxe server tests
    ipvsadm         # independent check of the IPVS table inside guests
    python3         # python3 -m http.server as a static HTTP peer
    iproute2        # ip netns / link / addr for the test topologies
    iputils-ping    # ping from inside test namespaces
    curl            # HTTP client peer
    tshark          # packet captures of VRRP/ARP in tests
    keepalived      # reference implementation for side-by-side benchmarks
    openssl         # self-signed certificates for the HTTPS check tests
    nginx-light     # HTTPS (SNI) peer for the health-check tests
    python3-aiosmtpd # SMTP peer for the health-check tests
    postgresql      # PostgreSQL peer for the health-check tests
    mariadb-server  # MySQL/MariaDB peer for the health-check tests
    socat           # remote syslog collector (UDP and TCP) in the logging tests
)
# The kernel the appliance and the tests boot: the meta-package names the current ABI package.
KERNEL_META=linux-image-cloud-amd64
KERNEL_GLOB='linux-image-*-cloud-amd64_*_amd64.deb'
RUST_TARGET=x86_64-unknown-linux-gnu
# apt package lists older than this are refreshed.
APT_LISTS_MAX_AGE_SECS=86400

step() { printf 'setup: %s\n' "$*"; }
die() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}
# Runs a noisy command with its output kept in a log; on failure shows the log's tail and dies.
run_quiet() {
    local what=$1 log status=0
    shift
    log=$(mktemp "${TMPDIR:-/tmp}/lb-setup.XXXXXX")
    "$@" >"$log" 2>&1 </dev/null || status=$?
    if ((status != 0)); then
        tail -n 30 "$log" | sed 's/^/setup:   | /' >&2
        rm -f "$log"
        die "$what failed (exit $status): $*"
    fi
    rm -f "$log"
}

REFRESH=0
for arg in "$@"; do
    case "$arg" in
    --refresh) REFRESH=1 ;;
    -h | --help)
        sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$arg' (try --help)" ;;
    esac
done

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
[[ -f "$REPO_ROOT/Cargo.toml" ]] || die "cannot find the repository root (no Cargo.toml in $REPO_ROOT)"

if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        step "not root: re-running with sudo"
        # -n: never prompt (CI has no stdin); -E keeps LB_CACHE_DIR and friends.
        exec sudo -n -E -- "$0" "$@" || die "sudo failed; run this script as root"
    fi
    die "must run as root to install packages, and sudo is not available; run: su -c '$0 $*'"
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# --- apt package lists -------------------------------------------------------------------------
# The lists' own mtimes are the mirror's Last-Modified, not when we fetched them, so freshness is
# judged by Debian's standard success stamp (apt.systemd.daily uses the same file), which we touch.
APT_UPDATE_STAMP=/var/lib/apt/periodic/update-success-stamp

apt_lists_present() {
    find /var/lib/apt/lists -maxdepth 1 -type f -name '*_Packages*' -print -quit 2>/dev/null | grep -q .
}

apt_update() {
    run_quiet "apt-get update" apt-get update
    mkdir -p "$(dirname "$APT_UPDATE_STAMP")" && touch "$APT_UPDATE_STAMP"
}

if ! apt_lists_present; then
    step "apt package lists are missing: apt-get update"
    apt_update
elif [[ ! -f "$APT_UPDATE_STAMP" ]]; then
    step "apt package lists have no update stamp: apt-get update"
    apt_update
else
    age=$(($(date +%s) - $(stat -c %Y "$APT_UPDATE_STAMP")))
    if ((age > APT_LISTS_MAX_AGE_SECS)); then
        step "apt package lists are $((age / 3600)) h old: apt-get update"
        apt_update
    else
        step "apt package lists are fresh (updated $((age / 60)) min ago): no update"
    fi
fi

# --- system packages ---------------------------------------------------------------------------
is_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
    step "all ${#APT_PACKAGES[@]} packages are installed"
else
    step "installing ${missing[*]}"
    # tshark asks whether non-root users may capture; answer "no" without a prompt.
    echo 'wireshark-common wireshark-common/install-setcap boolean false' | debconf-set-selections ||
        die "debconf-set-selections failed"
    run_quiet "installing packages" apt-get install "${APT_OPTS[@]}" --no-install-recommends "${missing[@]}"
    for pkg in "${missing[@]}"; do
        is_installed "$pkg" || die "package $pkg is still not installed after apt-get install"
    done
fi

# --- Rust target -------------------------------------------------------------------------------
run_as_invoker() {
    # rustup is per user: when sudo re-ran us, ask the invoking user's toolchain.
    if [[ -n "${SUDO_USER:-}" && "$SUDO_USER" != root ]]; then
        sudo -n -H -u "$SUDO_USER" -- bash -lc '"$@"' _ "$@"
    else
        "$@"
    fi
}

if run_as_invoker bash -c 'command -v rustup' >/dev/null 2>&1; then
    if run_as_invoker rustup target list --installed | grep -qx "$RUST_TARGET"; then
        step "rust target $RUST_TARGET is installed"
    else
        step "adding rust target $RUST_TARGET"
        run_quiet "adding the rust target" run_as_invoker rustup target add "$RUST_TARGET"
    fi
elif run_as_invoker bash -c 'command -v rustc' >/dev/null 2>&1; then
    host=$(run_as_invoker rustc -vV | sed -n 's/^host: //p')
    [[ "$host" == "$RUST_TARGET" ]] ||
        die "rustc's host is '$host' and rustup is missing; install rustup and the $RUST_TARGET target"
    step "rust (no rustup) builds for $RUST_TARGET"
else
    die "no Rust toolchain found; install rustup (https://rustup.rs) with the $RUST_TARGET target"
fi

# --- kernel package ----------------------------------------------------------------------------
CACHE_DIR=${LB_CACHE_DIR:-$REPO_ROOT/.cache}
KERNEL_DIR=$CACHE_DIR/kernel
mkdir -p "$KERNEL_DIR" || die "cannot create $KERNEL_DIR"

newest_cached_deb() {
    # Newest cached kernel .deb by Debian version order, or nothing.
    local f best="" best_ver="" ver
    for f in "$KERNEL_DIR"/$KERNEL_GLOB; do
        [[ -f "$f" ]] || continue
        ver=$(dpkg-deb -f "$f" Version 2>/dev/null) || continue
        if [[ -z "$best" ]] || dpkg --compare-versions "$ver" gt "$best_ver"; then
            best=$f
            best_ver=$ver
        fi
    done
    [[ -n "$best" ]] && echo "$best"
    return 0
}

resolve_kernel_package() {
    # The ABI package the meta-package depends on, e.g. linux-image-6.1.0-56-cloud-amd64.
    apt-cache depends "$KERNEL_META" 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[^ ]*-cloud-amd64\)$/\1/p' | head -n 1
}

deb=""
if ((REFRESH == 0)); then
    deb=$(newest_cached_deb)
fi
if [[ -n "$deb" ]]; then
    step "kernel package is cached: $(basename "$deb") (use --refresh to re-resolve)"
else
    pkg=$(resolve_kernel_package)
    [[ -n "$pkg" ]] || die "cannot resolve the kernel package from $KERNEL_META (apt-cache depends found none; is the Debian main archive in the apt sources?)"
    # apt prints "'URL' FILENAME SIZE HASH"; the file name says which version is current.
    file=$(apt-get download --print-uris "$pkg" 2>/dev/null | awk 'NR==1 {print $2}')
    [[ -n "$file" ]] || die "apt-get cannot locate a download for $pkg"
    step "$KERNEL_META resolves to $pkg ($file)"
    if [[ -f "$KERNEL_DIR/$file" ]] && dpkg-deb -I "$KERNEL_DIR/$file" >/dev/null 2>&1; then
        step "kernel package is cached and current: $file"
    else
        step "downloading $file into $KERNEL_DIR"
        partial=$(mktemp -d "$KERNEL_DIR/.partial.XXXXXX")
        trap 'rm -rf "$partial"' EXIT
        # Download beside the cache and move into place only when complete, so an interrupted
        # run never leaves a truncated .deb that later runs would reuse.
        (cd "$partial" && run_quiet "downloading the kernel" apt-get download -o APT::Sandbox::User=root "$pkg")
        [[ -f "$partial/$file" ]] || die "apt-get download did not produce $file"
        dpkg-deb -I "$partial/$file" >/dev/null || die "downloaded $file is not a valid .deb"
        mv -f "$partial/$file" "$KERNEL_DIR/$file"
        rm -rf "$partial"
        trap - EXIT
    fi
    # Keep one kernel in the cache so nothing picks a stale one by accident.
    for old in "$KERNEL_DIR"/$KERNEL_GLOB; do
        [[ -f "$old" && "$(basename "$old")" != "$file" ]] || continue
        step "removing superseded $(basename "$old")"
        rm -f "$old"
    done
    deb=$KERNEL_DIR/$file
fi

# The cache belongs to whoever owns the checkout, not to root after a sudo re-run.
if [[ -n "${SUDO_UID:-}" && -n "${SUDO_GID:-}" ]]; then
    chown -R "$SUDO_UID:$SUDO_GID" "$CACHE_DIR" 2>/dev/null || true
fi

step "done; kernel package:"
echo "$deb"
