#!/usr/bin/env bash
# Hostile-peer benchmark: tests/bench/hostile.sh (prints figures; not a test, not run by CI)
#
# Both halves in one run, each described in its own script:
#   service (hostile_service.sh): connections held at `ulimit -n 1024`, /health latency
#     while 1 stalled and 1,000 idle clients are connected, the daemon's RSS;
#   client (hostile_client.sh): calplanebot's peak RSS and CPU for 10 MB / 60 MB PROPFIND
#     and REPORT answers, a 25 MB object and an 80,000-attribute element.
# The release binaries are built once; the variables of both scripts apply.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
    (cd ../.. && cargo build --release --quiet --bin calplanebot --example fake-plane)
fi
echo "== service: hostile clients"
BENCH_NO_BUILD=1 ./hostile_service.sh
echo
echo "== client: hostile servers"
BENCH_NO_BUILD=1 ./hostile_client.sh
