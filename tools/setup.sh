#!/usr/bin/env bash
# Prepares a Debian host to build and test the load-balancer appliance: installs the Debian
# packages named in tools/programs.txt (the one list of every program the build, the image, the
# demo and the tests use), checks the Rust target, and fetches the Debian cloud kernel package
# the image and the QEMU tests boot.
#
# It also installs cargo-fuzz (cargo install) for the fuzz targets.
#
# Idempotent and non-interactive (fine with CI=true and no stdin): a second run installs and
# downloads nothing.
#
# Usage: tools/setup.sh [--check] [--refresh] [--help]
#   --check     install nothing: print every listed program that is missing (with the package
#               that provides it) and whether the kernel package is cached; exit 1 if anything
#               is missing. Needs no root. Programs are looked up on PATH.
#   --refresh   re-resolve the kernel ABI package from the meta-package and download it if the
#               cached .deb is not the current one (otherwise a cached .deb is reused as is).
# Environment:
#   LB_CACHE_DIR   cache directory (default: <repo>/.cache); the kernel goes to $LB_CACHE_DIR/kernel
#
# Prints one line per step; the last line is the path of the kernel .deb.
set -euo pipefail

# The kernel the appliance and the tests boot: the meta-package names the current ABI package.
KERNEL_META=linux-image-cloud-amd64
KERNEL_GLOB='linux-image-*-cloud-amd64_*_amd64.deb'
RUST_TARGET=x86_64-unknown-linux-gnu
# apt package lists older than this are refreshed.
APT_LISTS_MAX_AGE_SECS=86400
# Where Debian's python3 keeps the modules its packages install.
PY_DIST=/usr/lib/python3/dist-packages

step() { printf 'setup: %s\n' "$*"; }
die() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}

CHECK=0
REFRESH=0
for arg in "$@"; do
    case "$arg" in
    --check) CHECK=1 ;;
    --refresh) REFRESH=1 ;;
    -h | --help)
        while IFS= read -r line; do
            [[ $line == '#!'* ]] && continue
            [[ $line == '#'* ]] || break
            line=${line#\#}
            printf '%s\n' "${line# }"
        done <"$0"
        exit 0
        ;;
    *) die "unknown argument '$arg' (try --help)" ;;
    esac
done

SCRIPT_DIR=$(cd "${BASH_SOURCE[0]%/*}" && pwd)
REPO_ROOT=${SCRIPT_DIR%/*}
[[ -f "$REPO_ROOT/Cargo.toml" ]] || die "cannot find the repository root (no Cargo.toml in $REPO_ROOT)"
PROGRAMS_LIST=$SCRIPT_DIR/programs.txt
[[ -f "$PROGRAMS_LIST" ]] || die "the program list $PROGRAMS_LIST is missing"
CACHE_DIR=${LB_CACHE_DIR:-$REPO_ROOT/.cache}
KERNEL_DIR=$CACHE_DIR/kernel

# --- the program list ----------------------------------------------------------------------
# Parsed with bash alone, so --check works on a machine (or a PATH) that lacks everything else.
LIST_PROGRAMS=()
LIST_PACKAGES=()
lineno=0
while IFS= read -r line || [[ -n "$line" ]]; do
    lineno=$((lineno + 1))
    line=${line%%#*}
    read -r prog pkg _ <<<"$line" || true
    [[ -z "${prog:-}" ]] && continue
    [[ -n "${pkg:-}" ]] || die "$PROGRAMS_LIST:$lineno: '$prog' names no package (write '-' for the Rust toolchain)"
    LIST_PROGRAMS+=("$prog")
    LIST_PACKAGES+=("$pkg")
done <"$PROGRAMS_LIST"

# True when the listed program (a name on PATH, an absolute path or glob, or py:MODULE) exists.
program_present() {
    local prog=$1 f
    case "$prog" in
    py:*)
        prog=${prog#py:}
        [[ -e "$PY_DIST/$prog" || -e "$PY_DIST/$prog.py" ]]
        ;;
    /*)
        for f in $prog; do
            [[ -e "$f" ]] && return 0
        done
        return 1
        ;;
    *) command -v "$prog" >/dev/null 2>&1 ;;
    esac
}

kernel_cached() {
    local f
    for f in "$KERNEL_DIR"/$KERNEL_GLOB; do
        [[ -f "$f" ]] && return 0
    done
    return 1
}

if ((CHECK)); then
    missing=0
    for i in "${!LIST_PROGRAMS[@]}"; do
        prog=${LIST_PROGRAMS[$i]} pkg=${LIST_PACKAGES[$i]}
        program_present "$prog" && continue
        missing=$((missing + 1))
        if [[ "$pkg" == - ]]; then
            printf 'missing: %s (the Rust toolchain: install rustup from https://rustup.rs)\n' "$prog"
        else
            printf 'missing: %s (package %s: apt-get install %s)\n' "$prog" "$pkg" "$pkg"
        fi
    done
    if kernel_cached; then
        step "kernel package is cached in $KERNEL_DIR"
    else
        missing=$((missing + 1))
        printf 'missing: the Debian cloud kernel package in %s (tools/setup.sh downloads it)\n' "$KERNEL_DIR"
    fi
    if ((missing)); then
        step "$missing of $((${#LIST_PROGRAMS[@]} + 1)) missing; run tools/setup.sh (as root) to install them"
        exit 1
    fi
    step "all ${#LIST_PROGRAMS[@]} listed programs and the kernel package are present"
    exit 0
fi

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

[[ $EUID -eq 0 ]] || die "must run as root to install packages; run it as root (for example: sudo $0 $*), or use --check"

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# --- apt package lists -------------------------------------------------------------------------
# The lists' own mtimes are the mirror's Last-Modified, not when we fetched them, so freshness is
# judged by Debian's standard success stamp (apt.systemd.daily uses the same file), which we touch.
APT_UPDATE_STAMP=/var/lib/apt/periodic/update-success-stamp

apt_lists_present() {
    local f
    for f in /var/lib/apt/lists/*_Packages*; do
        [[ -f "$f" ]] && return 0
    done
    return 1
}

apt_update() {
    run_quiet "apt-get update" apt-get update
    mkdir -p "${APT_UPDATE_STAMP%/*}" && touch "$APT_UPDATE_STAMP"
}

APT_LISTS_CHECKED=0
ensure_apt_lists() {
    ((APT_LISTS_CHECKED)) && return 0
    APT_LISTS_CHECKED=1
    if ! apt_lists_present; then
        step "apt package lists are missing: apt-get update"
        apt_update
    elif [[ ! -f "$APT_UPDATE_STAMP" ]]; then
        step "apt package lists have no update stamp: apt-get update"
        apt_update
    else
        local age
        age=$(($(date +%s) - $(stat -c %Y "$APT_UPDATE_STAMP")))
        if ((age > APT_LISTS_MAX_AGE_SECS)); then
            step "apt package lists are $((age / 3600)) h old: apt-get update"
            apt_update
        else
            step "apt package lists are fresh (updated $((age / 60)) min ago): no update"
        fi
    fi
}

# --- system packages ---------------------------------------------------------------------------
is_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

packages=()
for pkg in "${LIST_PACKAGES[@]}"; do
    [[ "$pkg" == - ]] && continue
    [[ " ${packages[*]} " == *" $pkg "* ]] || packages+=("$pkg")
done
missing=()
for pkg in "${packages[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
    step "all ${#packages[@]} packages of tools/programs.txt are installed"
else
    ensure_apt_lists
    step "installing ${missing[*]}"
    # tshark asks whether non-root users may capture; answer "no" without a prompt.
    echo 'wireshark-common wireshark-common/install-setcap boolean false' | debconf-set-selections ||
        die "debconf-set-selections failed"
    run_quiet "installing packages" apt-get install "${APT_OPTS[@]}" --no-install-recommends "${missing[@]}"
    for pkg in "${missing[@]}"; do
        is_installed "$pkg" || die "package $pkg is still not installed after apt-get install"
    done
fi
# Packages can be installed and their program still absent (a file removed by hand, a diversion):
# say which, with the package to reinstall.
absent=()
for i in "${!LIST_PROGRAMS[@]}"; do
    [[ "${LIST_PACKAGES[$i]}" == - ]] && continue
    prog=${LIST_PROGRAMS[$i]}
    # Listed programs live in the system's directories, which a non-login root shell may lack.
    PATH="$PATH:/usr/sbin:/sbin" program_present "$prog" || absent+=("$prog (apt-get install --reinstall ${LIST_PACKAGES[$i]})")
done
((${#absent[@]} == 0)) || die "installed packages lack these programs: ${absent[*]}"

# --- Rust target -------------------------------------------------------------------------------
run_as_invoker() {
    # rustup is per user: when run through sudo, ask the invoking user's toolchain.
    if [[ -n "${SUDO_USER:-}" && "$SUDO_USER" != root ]]; then
        runuser -u "$SUDO_USER" -- bash -lc '"$@"' _ "$@"
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

# cargo-fuzz runs the fuzz targets on the stable toolchain (tools/fuzz.sh, and a bounded run in
# the test suite).
CARGO_FUZZ_VERSION=0.13.2
if run_as_invoker cargo fuzz --version 2>/dev/null | grep -q "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    step "cargo-fuzz $CARGO_FUZZ_VERSION is installed"
else
    step "installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo install, about a minute)"
    run_quiet "installing cargo-fuzz" run_as_invoker cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# --- kernel package ----------------------------------------------------------------------------
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
    step "kernel package is cached: ${deb##*/} (use --refresh to re-resolve)"
else
    ensure_apt_lists
    pkg=$(resolve_kernel_package)
    [[ -n "$pkg" ]] || die "cannot resolve the kernel package from $KERNEL_META (apt-cache depends found none; is the Debian main archive in the apt sources?)"
    # apt prints "'URL' FILENAME SIZE HASH"; the file name says which version is current.
    file=""
    read -r _ file _ < <(apt-get download --print-uris "$pkg" 2>/dev/null) || true
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
        [[ -f "$old" && "${old##*/}" != "$file" ]] || continue
        step "removing superseded ${old##*/}"
        rm -f "$old"
    done
    deb=$KERNEL_DIR/$file
fi

# The cache belongs to whoever owns the checkout, not to root after a sudo run.
if [[ -n "${SUDO_UID:-}" && -n "${SUDO_GID:-}" ]]; then
    chown -R "$SUDO_UID:$SUDO_GID" "$CACHE_DIR" 2>/dev/null || true
fi

step "done; kernel package:"
echo "$deb"
