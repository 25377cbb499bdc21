#!/usr/bin/env bash
# Size of the release binary: tests/bench/size.sh
#
# Builds `cargo build --release` (the [profile.release] in Cargo.toml: opt-level "z", LTO,
# one codegen unit, panic=abort, strip=true) and prints the size of the stripped binary in
# bytes and MiB, what `file` says about it, and its dynamic libraries. A release build takes
# one to two minutes on two cores.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/calplanebot

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
