#!/usr/bin/env bash
# Prepares a Debian host to build and test the load-balancer appliance: installs the Debian
# packages named in tools/programs.txt (the one list of every program the build, the image, the
# demo and the tests use), checks the Rust target, and fetches the Debian kernel packages the
# image and the QEMU tests boot (the generic flavour, which has the NIC drivers of real servers,
# and the cloud flavour of the `cloud` profile and the harness's own tests), and the Debian
# firmware packages those NIC drivers need (from the non-free-firmware component, read through a
# private apt configuration under the cache: the host's apt sources are not changed), and the
# Debian packages of BIRD (bird2 and the library packages it depends on), whose files the image
# carries as its BGP speaker; and Debian's source package of the generic kernel's exact version
# (linux-source-X.Y), from which `image build` rebuilds that kernel's boot stub for an lz4 payload.
#
# It also installs cargo-fuzz (cargo install) for the fuzz targets.
#
# Idempotent and non-interactive (fine with CI=true and no stdin): a second run installs and
# downloads nothing.
#
# Usage: tools/setup.sh [--check] [--refresh] [--help]
#   --check     install nothing: print every listed program that is missing (with the package
#               that provides it) and whether the kernel and firmware packages are cached; exit 1 if anything
#               is missing. Needs no root. Programs are looked up on PATH.
#   --refresh   re-resolve the kernel ABI packages from the meta-packages, and the firmware
#               packages, and download what is not current (otherwise cached .debs are reused).
# Environment:
#   LB_CACHE_DIR   cache directory (default: <repo>/.cache); kernels go to $LB_CACHE_DIR/kernel,
#                  firmware packages to $LB_CACHE_DIR/firmware, BIRD's to $LB_CACHE_DIR/bird
#
# Prints one line per step; the last line is the path of the generic kernel .deb.
set -euo pipefail

# The kernels: each meta-package names the current ABI package of its flavour. The generic one
# is the default image's (bare metal); the cloud one is the `cloud` profile's.
KERNEL_METAS=(linux-image-amd64 linux-image-cloud-amd64)
# Firmware the default NIC driver list requests (image/drivers/bare-metal.txt): bnx2, bnx2x,
# qed/qede, e100, ice (DDP), tg3, r8169. `image build` reports any requested file none has.
FIRMWARE_PACKAGES=(firmware-bnx2 firmware-bnx2x firmware-qlogic firmware-misc-nonfree firmware-realtek)
FIRMWARE_COMPONENT=non-free-firmware
# The image's BGP speaker. Its library packages are found by following the Depends of bird2
# through library packages (lib*, zlib1g): those are the dpkg-shlibdeps dependencies; the rest
# (adduser, ucf) serve the package's maintainer scripts, which the image does not run. The image
# builder takes exactly the shared objects that bird's ELF DT_NEEDED closure names.
BIRD_PACKAGE=bird2
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
FIRMWARE_DIR=$CACHE_DIR/firmware
BIRD_DIR=$CACHE_DIR/bird

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

# The cached .deb glob of a kernel meta-package's flavour.
kernel_glob() {
    case "$1" in
    linux-image-amd64) echo 'linux-image-[0-9]*-amd64_*_amd64.deb' ;;
    linux-image-cloud-amd64) echo 'linux-image-*-cloud-amd64_*_amd64.deb' ;;
    *) die "no glob for kernel meta-package $1" ;;
    esac
}

# The cached files matching a glob; generic kernels' glob also matches cloud ones, so those
# are filtered out by name.
cached_kernels() {
    local meta=$1 f
    for f in "$KERNEL_DIR"/$(kernel_glob "$meta"); do
        [[ -f "$f" ]] || continue
        [[ "$meta" == linux-image-amd64 && "${f##*/}" == *-cloud-amd64_* ]] && continue
        echo "$f"
    done
}

firmware_cached() {
    local f
    for f in "$FIRMWARE_DIR/$1"_*.deb; do
        [[ -f "$f" ]] && return 0
    done
    return 1
}

# True when every package named in $BIRD_DIR/packages.txt (written by the last download) has its
# .deb in $BIRD_DIR.
bird_cached() {
    local pkg f found
    [[ -f "$BIRD_DIR/packages.txt" ]] || return 1
    while IFS= read -r pkg; do
        [[ -n "$pkg" ]] || continue
        found=0
        for f in "$BIRD_DIR/$pkg"_*.deb; do
            [[ -f "$f" ]] && found=1
        done
        ((found)) || return 1
    done <"$BIRD_DIR/packages.txt"
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
    for meta in "${KERNEL_METAS[@]}"; do
        if [[ -n "$(cached_kernels "$meta")" ]]; then
            step "kernel package of $meta is cached in $KERNEL_DIR"
        else
            missing=$((missing + 1))
            printf 'missing: the kernel package of %s in %s (tools/setup.sh downloads it)\n' "$meta" "$KERNEL_DIR"
        fi
    done
    source_found=0
    for f in "$KERNEL_DIR"/linux-source-*_all.deb; do
        [[ -f "$f" ]] && source_found=1
    done
    if ((source_found)); then
        step "a kernel source package is cached in $KERNEL_DIR"
    else
        missing=$((missing + 1))
        printf 'missing: the generic kernel'"'"'s source package (linux-source-X.Y) in %s (tools/setup.sh downloads it)\n' "$KERNEL_DIR"
    fi
    for fw in "${FIRMWARE_PACKAGES[@]}"; do
        firmware_cached "$fw" && continue
        missing=$((missing + 1))
        printf 'missing: firmware package %s in %s (tools/setup.sh downloads it)\n' "$fw" "$FIRMWARE_DIR"
    done
    if [[ -f "$BIRD_DIR/packages.txt" ]] && bird_cached; then
        step "BIRD packages are cached in $BIRD_DIR"
    else
        missing=$((missing + 1))
        printf 'missing: the BIRD packages (%s and its libraries) in %s (tools/setup.sh downloads them)\n' "$BIRD_PACKAGE" "$BIRD_DIR"
    fi
    total=$((${#LIST_PROGRAMS[@]} + ${#KERNEL_METAS[@]} + ${#FIRMWARE_PACKAGES[@]} + 2))
    if ((missing)); then
        step "$missing of $total missing; run tools/setup.sh (as root) to install them"
        exit 1
    fi
    step "all ${#LIST_PROGRAMS[@]} listed programs, the kernel packages, the firmware packages and the BIRD packages are present"
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

# bird2 starts a host-wide BIRD (bird.service, /etc/bird/bird.conf) on a machine that runs
# systemd, and enables it for every boot. Nothing here wants it: the tests start their own BIRD
# routers in network namespaces, each with its own config and control socket. Masking the unit
# before the install keeps it from starting now and at boot (the package's postinst unmasks only
# masks it made itself). Without systemd (a container) the package starts nothing.
BIRD_UNIT=/etc/systemd/system/bird.service
if [[ -d "${BIRD_UNIT%/*}" && ! -e "$BIRD_UNIT" && ! -L "$BIRD_UNIT" ]]; then
    step "masking $BIRD_UNIT: the host needs bird2's programs, not its service"
    ln -s /dev/null "$BIRD_UNIT" || die "cannot mask $BIRD_UNIT"
fi

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

# --- kernel packages ---------------------------------------------------------------------------
mkdir -p "$KERNEL_DIR" || die "cannot create $KERNEL_DIR"

newest_cached_deb() {
    # Newest cached kernel .deb of a flavour by Debian version order, or nothing.
    local f best="" best_ver="" ver
    while IFS= read -r f; do
        [[ -n "$f" ]] || continue
        ver=$(dpkg-deb -f "$f" Version 2>/dev/null) || continue
        if [[ -z "$best" ]] || dpkg --compare-versions "$ver" gt "$best_ver"; then
            best=$f
            best_ver=$ver
        fi
    done < <(cached_kernels "$1")
    [[ -n "$best" ]] && echo "$best"
    return 0
}

resolve_kernel_package() {
    # The ABI package the meta-package depends on, e.g. linux-image-6.1.0-56-cloud-amd64.
    apt-cache depends "$1" 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}

# Downloads package $2 into directory $1 with apt-get download (extra apt options after), moving
# it into place only when complete, so an interrupted run never leaves a truncated .deb that
# later runs would reuse. Prints the file name.
download_deb() {
    local dir=$1 pkg=$2 partial file
    shift 2
    file=""
    read -r _ file _ < <(apt-get "$@" download --print-uris "$pkg" 2>/dev/null) || true
    [[ -n "$file" ]] || die "apt-get cannot locate a download for $pkg"
    if [[ -f "$dir/$file" ]] && dpkg-deb -I "$dir/$file" >/dev/null 2>&1; then
        echo "$file"
        return 0
    fi
    step "downloading $file into $dir" >&2
    partial=$(mktemp -d "$dir/.partial.XXXXXX")
    (cd "$partial" && run_quiet "downloading $pkg" apt-get "$@" -o APT::Sandbox::User=root download "$pkg")
    [[ -f "$partial/$file" ]] || {
        rm -rf "$partial"
        die "apt-get download did not produce $file"
    }
    dpkg-deb -I "$partial/$file" >/dev/null || {
        rm -rf "$partial"
        die "downloaded $file is not a valid .deb"
    }
    mv -f "$partial/$file" "$dir/$file"
    rm -rf "$partial"
    echo "$file"
}

generic_deb=""
for meta in "${KERNEL_METAS[@]}"; do
    deb=""
    if ((REFRESH == 0)); then
        deb=$(newest_cached_deb "$meta")
    fi
    if [[ -n "$deb" ]]; then
        step "kernel package of $meta is cached: ${deb##*/} (use --refresh to re-resolve)"
    else
        ensure_apt_lists
        pkg=$(resolve_kernel_package "$meta")
        [[ -n "$pkg" ]] || die "cannot resolve the kernel package from $meta (apt-cache depends found none; is the Debian main archive in the apt sources?)"
        file=$(download_deb "$KERNEL_DIR" "$pkg")
        step "$meta resolves to $pkg; cached: $file"
        # Keep one kernel per flavour in the cache so nothing picks a stale one by accident.
        while IFS= read -r old; do
            [[ -n "$old" && "${old##*/}" != "$file" ]] || continue
            step "removing superseded ${old##*/}"
            rm -f "$old"
        done < <(cached_kernels "$meta")
        deb=$KERNEL_DIR/$file
    fi
    [[ "$meta" == linux-image-amd64 ]] && generic_deb=$deb
done

# --- the generic kernel's source package ---------------------------------------------------------
# `image build` rebuilds the generic kernel's boot stub for an lz4 payload (image/src/restub.rs)
# from Debian's source of exactly the kernel package's version.
source_version=$(dpkg-deb -f "$generic_deb" Version) || die "cannot read the version of $generic_deb"
source_pkg=linux-source-$(sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p' <<<"$source_version")
if [[ -f "$KERNEL_DIR/${source_pkg}_${source_version}_all.deb" ]]; then
    step "kernel source $source_pkg $source_version is cached"
else
    ensure_apt_lists
    file=$(download_deb "$KERNEL_DIR" "$source_pkg=$source_version")
    step "kernel source cached: $file"
fi
for old in "$KERNEL_DIR"/linux-source-*.deb; do
    [[ -f "$old" && "${old##*/}" != "${source_pkg}_${source_version}_all.deb" ]] || continue
    step "removing superseded ${old##*/}"
    rm -f "$old"
done

# --- firmware packages -------------------------------------------------------------------------
# Debian keeps NIC firmware in its non-free-firmware component, which hosts' apt sources often
# leave out. A private apt configuration (its own sources list and package lists under the
# cache, the host's archive keyring) reads just that component, so the host's sources stay as
# they are and signatures are still checked.
mkdir -p "$FIRMWARE_DIR" || die "cannot create $FIRMWARE_DIR"
need_firmware=()
for fw in "${FIRMWARE_PACKAGES[@]}"; do
    if ((REFRESH)) || ! firmware_cached "$fw"; then
        need_firmware+=("$fw")
    fi
done
if ((${#need_firmware[@]} == 0)); then
    step "all ${#FIRMWARE_PACKAGES[@]} firmware packages are cached in $FIRMWARE_DIR"
else
    apt_dir=$CACHE_DIR/apt-firmware
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [[ -f "$keyring" ]] || die "$keyring is missing (apt-get install debian-archive-keyring)"
    # The suite of the host (bookworm), from the system's own release file.
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
    [[ -n "$codename" ]] || die "cannot tell the Debian release from /etc/os-release"
    {
        for suite in "$codename" "$codename-updates"; do
            echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite $FIRMWARE_COMPONENT"
        done
        echo "deb [signed-by=$keyring] http://deb.debian.org/debian-security $codename-security $FIRMWARE_COMPONENT"
    } >"$apt_dir/sources.list"
    fw_apt=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
    step "reading the $FIRMWARE_COMPONENT package lists (private apt configuration in $apt_dir)"
    run_quiet "apt-get update of $FIRMWARE_COMPONENT" apt-get "${fw_apt[@]}" -o APT::Sandbox::User=root update
    for fw in "${need_firmware[@]}"; do
        file=$(download_deb "$FIRMWARE_DIR" "$fw" "${fw_apt[@]}")
        step "firmware package $fw: $file"
        # One version per package: the image build reads every .deb in the directory.
        for old in "$FIRMWARE_DIR/$fw"_*.deb; do
            [[ -f "$old" && "${old##*/}" != "$file" ]] || continue
            step "removing superseded ${old##*/}"
            rm -f "$old"
        done
    done
fi

# --- BIRD packages -----------------------------------------------------------------------------
# bird2 and, transitively, the library packages it depends on; packages.txt names them, so a
# later run (and --check) knows the set is complete. One version per package is kept: the image
# build reads every .deb in the directory.
bird_library_closure() {
    local queue=("$BIRD_PACKAGE") seen=" $BIRD_PACKAGE " pkg dep
    local i=0
    while ((i < ${#queue[@]})); do
        pkg=${queue[$i]}
        i=$((i + 1))
        while IFS= read -r dep; do
            [[ "$dep" == lib* || "$dep" == zlib1g ]] || continue
            [[ "$seen" == *" $dep "* ]] && continue
            seen="$seen$dep "
            queue+=("$dep")
        done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances "$pkg" 2>/dev/null |
            sed -n 's/^ *\(Pre\)\{0,1\}Depends: \([a-z0-9][a-z0-9.+-]*\)$/\2/p')
    done
    printf '%s\n' "${queue[@]}"
}

mkdir -p "$BIRD_DIR" || die "cannot create $BIRD_DIR"
if ((REFRESH == 0)) && bird_cached; then
    step "BIRD packages are cached in $BIRD_DIR ($(grep -c . "$BIRD_DIR/packages.txt") packages)"
else
    ensure_apt_lists
    mapfile -t bird_packages < <(bird_library_closure)
    ((${#bird_packages[@]} > 1)) || die "cannot resolve the packages of $BIRD_PACKAGE (apt-cache depends found no libraries; is the Debian main archive in the apt sources?)"
    for pkg in "${bird_packages[@]}"; do
        file=$(download_deb "$BIRD_DIR" "$pkg")
        for old in "$BIRD_DIR/$pkg"_*.deb; do
            [[ -f "$old" && "${old##*/}" != "$file" ]] || continue
            step "removing superseded ${old##*/}"
            rm -f "$old"
        done
    done
    # A package that left the closure (a --refresh after Debian changed a dependency) must not
    # stay among the .debs the image build reads.
    for old in "$BIRD_DIR"/*.deb; do
        [[ -f "$old" ]] || continue
        name=${old##*/}
        [[ " ${bird_packages[*]} " == *" ${name%%_*} "* ]] && continue
        step "removing $name: no longer a package of $BIRD_PACKAGE"
        rm -f "$old"
    done
    printf '%s\n' "${bird_packages[@]}" >"$BIRD_DIR/packages.txt"
    step "BIRD packages cached in $BIRD_DIR: ${bird_packages[*]}"
fi

# The cache belongs to whoever owns the checkout, not to root after a sudo run.
if [[ -n "${SUDO_UID:-}" && -n "${SUDO_GID:-}" ]]; then
    chown -R "$SUDO_UID:$SUDO_GID" "$CACHE_DIR" 2>/dev/null || true
fi

step "done; generic kernel package:"
echo "$generic_deb"
