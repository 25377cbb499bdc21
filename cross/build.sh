#!/usr/bin/env bash
# Fully static, stripped release binaries of calplanebot for Linux on ARM and x86_64 (musl).
#
#   cross/build.sh aarch64          Raspberry Pi 3/4/5 64-bit, aarch64 Synology, arm64 routers
#   cross/build.sh armv7            Raspberry Pi 2/3 32-bit, armv7 Synology/NAS, OpenWrt armv7
#   cross/build.sh x86_64           any x86_64 Linux, x86_64 Synology
#   cross/build.sh all              all three (full triples work as well)
#
# Results: target/dist/calplanebot-<triple>; for each the script prints path, size in bytes
# and `file` output, and fails unless `file` says static and the right architecture.
#
# Everything comes from package registries and is installed only when missing:
#   - Debian: `file` (apt-get update runs only when something must be installed);
#   - PyPI, into the venv .tests/cross-venv: ziglang (the C compiler, linker and musl libc
#     for every target) and cargo-zigbuild (drives cargo with zig as the linker);
#   - rustup: rust-src. std is built from source for every target with -Zbuild-std on the
#     stable toolchain (RUSTC_BOOTSTRAP=1): armv7 has no prebuilt musl std at all, and for
#     aarch64/x86_64 a std built with panic=abort and without unwind tables cuts ~330 KB
#     (aarch64: 1,932,400 -> 1,596,520 B). The prebuilt std can unwind, so every function
#     calling into it keeps unwind tables and abort landing pads; ours never unwinds
#     (panic = "abort"), and panic messages are still printed.
# Why zig for all three: one toolchain, no per-target gcc/musl packages, and ring's C code
# (rustls' crypto) needs a C compiler for the target, which zig is.
#
# Environment:
#   CROSS_VENV=.tests/cross-venv    where the Python venv lives
#   PYTHON3=python3                 the Python that makes the venv
#   CROSS_TOOLCHAIN=stable          the rustup toolchain used (nightly works too)
#   CROSS_JOBS                      cargo -j (default: cargo's choice)
#   CROSS_STD_FEATURES              std features for -Zbuild-std-features (default none;
#                                   "backtrace" brings symbolized panic backtraces back)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${CROSS_VENV:-$ROOT/.tests/cross-venv}
TOOLCHAIN=${CROSS_TOOLCHAIN:-stable}
DIST=$ROOT/target/dist
LOGDIR=$ROOT/target/cross-logs
# Pinned: the versions this script was checked with (bump together, re-run all targets).
ZIG_SPEC=ziglang==0.17.1
ZIGBUILD_SPEC=cargo-zigbuild==0.24.0

log() { printf 'cross: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# shellcheck source=../tests/lib.sh
. "$ROOT/tests/lib.sh"

usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# What `file` must say about each target's binary.
file_arch() {
    case $1 in
    aarch64-*) echo 'ARM aarch64' ;;
    armv7-*) echo 'ARM, EABI5' ;;
    x86_64-*) echo 'x86-64' ;;
    esac
}



install_venv() {
    local spec="$ZIG_SPEC $ZIGBUILD_SPEC"
    if [[ -x $VENV/bin/cargo-zigbuild && -f $VENV/.spec &&
        $(cat "$VENV/.spec" 2>/dev/null) == "$spec" ]]; then
        return 0
    fi
    local py=${PYTHON3:-python3}
    command -v "$py" >/dev/null || apt_need "$LOGDIR/install.log" python3 python3 python3-venv
    command -v "$py" >/dev/null || py=python3
    log "installing $spec into $VENV"
    mkdir -p "$LOGDIR"
    rm -rf "$VENV"
    if ! "$py" -m venv "$VENV" >>"$LOGDIR/install.log" 2>&1; then
        # Debian's own python3 needs python3-venv for ensurepip.
        rm -rf "$VENV"
        apt_need "$LOGDIR/install.log" __no_such_cmd__ python3-venv
        "$py" -m venv "$VENV" >>"$LOGDIR/install.log" 2>&1 || die "cannot create a venv with $py"
    fi
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q --disable-pip-version-check $spec >>"$LOGDIR/install.log" 2>&1 ||
        die "pip install $spec failed (see $LOGDIR/install.log)"
    echo "$spec" >"$VENV/.spec"
}

install_rust() { # triple
    command -v rustup >/dev/null || die "rustup not found: install Rust from https://rustup.rs"
    rustup toolchain list | grep -q "^$TOOLCHAIN" ||
        { log "rustup toolchain install $TOOLCHAIN"; rustup toolchain install --profile minimal "$TOOLCHAIN"; }
    rustup component list --installed --toolchain "$TOOLCHAIN" | grep -q '^rust-src' ||
        { log "rustup component add rust-src"; rustup component add rust-src --toolchain "$TOOLCHAIN"; }
}

build_one() { # triple
    local t=$1 tdir=$ROOT/target/cross/$1 args=() t0=$SECONDS out
    local -a envs=("PATH=$VENV/bin:$PATH" "CARGO_TARGET_DIR=$tdir")
    # std from rust-src (see the header for why). zig supplies musl's crt files, libc.a and
    # libunwind; without link-self-contained=no rustc passes its own (absent) crt1.o.
    # force-unwind-tables=no: nothing unwinds in a panic=abort build with an abort std.
    # location-detail=none: a panic (a bug) still prints its message, but not the source
    # file and line, whose strings cost ~3 % of the binary (x86_64: 1,969,784 -> 1,909,064).
    # -Zbuild-std-features empty: cargo's default set adds std's `backtrace` feature, which
    # links a DWARF symbolizer (gimli, addr2line, miniz_oxide, rustc-demangle: aarch64
    # 1,637,064 -> 1,524,808 B) that could only ever print "<unknown>" frames in a stripped
    # binary. A panic still prints its message; RUST_BACKTRACE is ignored.
    args=(-Zbuild-std=std,panic_abort "-Zbuild-std-features=${CROSS_STD_FEATURES-}")
    envs+=(RUSTC_BOOTSTRAP=1 "RUSTFLAGS=-C link-self-contained=no -C force-unwind-tables=no \
-Zlocation-detail=none ${RUSTFLAGS:-}")
    # rustc warns about the missing (never used) target lib dir; create it to silence that.
    mkdir -p "$(rustc +"$TOOLCHAIN" --print sysroot)/lib/rustlib/$t/lib" 2>/dev/null || true
    log "building $t (log: $LOGDIR/$t.log)"
    mkdir -p "$LOGDIR"
    if ! env "${envs[@]}" cargo +"$TOOLCHAIN" zigbuild --release --locked --bin calplanebot \
        --target "$t" ${CROSS_JOBS:+-j "$CROSS_JOBS"} "${args[@]}" >"$LOGDIR/$t.log" 2>&1; then
        tail -n 30 "$LOGDIR/$t.log" >&2
        die "build for $t failed (full log: $LOGDIR/$t.log)"
    fi
    mkdir -p "$DIST"
    out=$DIST/calplanebot-$t
    cp "$tdir/$t/release/calplanebot" "$out"
    local secs=$((SECONDS - t0)) size desc arch
    size=$(stat -c %s "$out")
    desc=$(file -b "$out")
    arch=$(file_arch "$t")
    printf '%s\n  size: %s bytes\n  file: %s\n  built in %ss\n' "${out#"$ROOT"/}" "$size" "$desc" "$secs"
    [[ $desc == *"statically linked"* || $desc == *"static-pie linked"* ]] ||
        die "$out is not statically linked"
    [[ $desc == *"$arch"* ]] || die "$out is not a $arch binary"
    [[ $desc != *"not stripped"* ]] || die "$out is not stripped"
}

(($#)) || { usage >&2; exit 2; }
TRIPLES=()
for a in "$@"; do
    case $a in
    -h | --help) usage; exit 0 ;;
    all) TRIPLES+=(aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf x86_64-unknown-linux-musl) ;;
    *)
        t=$(triple_of "$a") || die "unknown target '$a' (aarch64, armv7, x86_64, all)"
        TRIPLES+=("$t")
        ;;
    esac
done

apt_need "$LOGDIR/install.log" file file
install_venv
for t in "${TRIPLES[@]}"; do install_rust "$t"; done
for t in "${TRIPLES[@]}"; do build_one "$t"; done
