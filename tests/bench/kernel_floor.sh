#!/usr/bin/env bash
# The kernel floor of the initial sync: tests/bench/kernel_floor.sh   (prints figures)
#
# Against Radicale every PUT is a new TCP connection. This starts an empty Radicale of its
# own and has a bare Python socket client (kernel_floor.py) send BENCH_ITEMS (2000) event
# PUTs into BENCH_PROJECTS (4) calendars the same way, doing nothing else, and prints that client's user and system CPU and
# Radicale's CPU for the same PUTs. The client's system CPU is what the pattern costs in
# the kernel whoever sends it: compare it with calplanebot's `sys` in tests/bench/targets.sh
# (results.jsonl, BENCH_KEEP=1) — run both on the same quiet machine.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ITEMS=${BENCH_ITEMS:-2000}
PROJECTS=${BENCH_PROJECTS:-4}
for n in "$ITEMS" "$PROJECTS"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_ITEMS and BENCH_PROJECTS must be positive numbers"
done
need_commands curl
install_servers radicale
bench_tmp calplanebot-floor
port=$(free_port)
start_radicale "$TMP/radicale" "$port" "$TMP/radicale.log"
radicale_pid=$LAST_PID
cpu_of() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + sys, clock ticks
ticks=$(getconf CLK_TCK)
before=$(cpu_of "$radicale_pid")
log "$ITEMS one-connection PUTs into Radicale on :$port"
"$VENV/bin/python" tests/bench/kernel_floor.py "http://$HOST:$port/" "$DAV_USER" "$DAV_USER" "$ITEMS" "$PROJECTS"
after=$(cpu_of "$radicale_pid")
awk -v b="$before" -v a="$after" -v t="$ticks" 'BEGIN { printf "Radicale CPU for them: %.1f s\n", (a - b) / t }'
echo "machine: $(machine)"
