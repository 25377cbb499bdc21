#!/usr/bin/env bash
# Size of the release binary: tests/bench/size.sh
#
# Builds `cargo build --release` (the [profile.release] in Cargo.toml: opt-level "z", LTO,
# one codegen unit, panic=abort, strip=true) and prints the size of the stripped binary in
# bytes and MiB, what `file` says about it, and its dynamic libraries. A release build takes
# one to two minutes on two cores.
#
# Then where the bytes are: the ELF sections (code, read-only data, unwind tables), and,
# when cargo-bloat is installed (`cargo install cargo-bloat`) and SIZE_BLOAT=1, the code
# per crate from a second, unstripped build (same profile, strip=false; cargo-bloat needs
# the symbols).
#   tests/bench/size.sh FILE        only the sections of an already built binary, e.g.
#                                   target/dist/calplanebot-aarch64-unknown-linux-musl
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/calplanebot

# Sections of at least 1 KiB, largest first (`size -A`: name, bytes, address).
sections() { # binary
    echo "sections of ${1#"$ROOT"/} (bytes):"
    size -A "$1" | awk '$2 >= 1024 && $1 ~ /^\./ { printf "  %-20s %9d\n", $1, $2 }' | sort -k2 -nr
}

if (($#)); then
    [[ -f $1 ]] || { echo "size.sh: no such file: $1" >&2; exit 2; }
    echo "$1: $(stat -c %s "$1") bytes"
    sections "$1"
    exit 0
fi

t0=$SECONDS
cargo build --release
echo "build: $((SECONDS - t0))s"

# The profile already strips; strip a copy anyway so the figure does not depend on it.
size=$(stat -c %s "$BIN")
stripped=$size
if command -v strip >/dev/null; then
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    strip -o "$tmp" "$BIN"
    stripped=$(stat -c %s "$tmp")
fi

ls -l "$BIN"
command -v file >/dev/null && file "$BIN"
if command -v ldd >/dev/null; then
    echo "dynamic libraries:"
    ldd "$BIN" 2>&1 | sed 's/^/  /' || true
fi
echo "rustc: $(rustc --version)"
awk -v s="$stripped" -v b="$size" 'BEGIN {
    printf "release binary: %d bytes (%.2f MiB); stripped: %d bytes (%.2f MiB)\n",
        b, b / 1048576, s, s / 1048576 }'
command -v size >/dev/null && sections "$BIN"
if [[ ${SIZE_BLOAT:-0} == 1 ]] && cargo bloat --version >/dev/null 2>&1; then
    echo "code per crate (cargo bloat, unstripped build):"
    CARGO_PROFILE_RELEASE_STRIP=false cargo bloat --release --bin calplanebot --crates -n 15 2>/dev/null |
        sed 's/^/  /'
fi
