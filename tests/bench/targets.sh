#!/usr/bin/env bash
# Small-board targets benchmark: tests/bench/targets.sh   (prints figures; not a test, not CI)
#
# Prints, in one run, issue 10's table for two builds of calplanebot side by side: the
# x86_64 glibc release build (target/release) and the static musl build that ships
# (cross/build.sh x86_64), plus the size of the aarch64 static binary:
#   - initial sync of BENCH_ITEMS work items (4 projects, every item dated, so one event per
#     item) into an empty private Radicale: wall, calplanebot CPU (user+sys), peak RSS, and
#     Radicale's own CPU for the same run (so ratios can be compared between machines);
#   - the no-change cycle after it (the second idle `--once`: the first reads back its writes);
#   - `--once --dry-run` over BENCH_BIG work items against an empty calendar: peak RSS, CPU;
#   - webhook -> event visible in Radicale over BENCH_WEBHOOKS webhooks (p50, p90), and the
#     RSS of `calplanebot run` after its first sync (1 project x 50 items) and 5 s idle;
#   - the aarch64 static binary's size.
# Every server is our own, on free ports under a temp dir, started fresh for each part.
# Takes about 10 minutes at 2,000 items (Radicale's PUTs are the wall time), plus the cross
# builds when they are not built yet.
#
# Environment:
#   BENCH_ITEMS=2000  BENCH_BIG=10000  BENCH_WEBHOOKS=50  BENCH_PROJECTS=4
#   BENCH_BUILDS="glibc musl"   which builds to measure (columns)
#   BENCH_NO_BUILD=1   use the binaries already built (target/release, target/dist)
#   BENCH_KEEP=1       keep the temp dir (logs, results.jsonl)
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PY=$VENV/bin/python
CYCLE=$ROOT/tests/bench/cycles_bench.py
DAEMON=$ROOT/tests/bench/daemon_bench.py
TABLE=$ROOT/tests/bench/targets_table.py
ITEMS=${BENCH_ITEMS:-2000}
BIG=${BENCH_BIG:-10000}
WEBHOOKS=${BENCH_WEBHOOKS:-50}
PROJECTS=${BENCH_PROJECTS:-4}
BUILDS=${BENCH_BUILDS:-glibc musl}
SECRET=bench-webhook-secret

# binary_of BUILD — the calplanebot binary of one column.
binary_of() {
    case $1 in
    glibc) echo "$TARGET/release/calplanebot" ;;
    musl) echo "$TARGET/dist/calplanebot-x86_64-unknown-linux-musl" ;;
    *) die "BENCH_BUILDS: '$1' is not glibc or musl" ;;
    esac
}

need_commands cargo curl python3
need_gnu_time
[[ -r /proc/self/stat ]] || die "/proc is needed (Linux) for the CPU and RSS figures"
for n in "$ITEMS" "$BIG" "$WEBHOOKS" "$PROJECTS"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_ITEMS/BIG/WEBHOOKS/PROJECTS must be positive numbers"
done
for b in $BUILDS; do binary_of "$b" >/dev/null; done

t_start=$SECONDS
bench_tmp calplanebot-targets
RESULTS=$TMP/results.jsonl

# --- build ---------------------------------------------------------------------------------
build_release
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
    log "cross/build.sh x86_64 aarch64 (static musl builds)"
    cross/build.sh x86_64 aarch64 >"$TMP/cross.log" 2>&1 ||
        { tail -n 20 "$TMP/cross.log" >&2; die "cross/build.sh failed"; }
fi
for b in $BUILDS; do
    [[ -x $(binary_of "$b") ]] || die "no $b binary at $(binary_of "$b") (unset BENCH_NO_BUILD)"
done
[[ -x $FAKE_PLANE ]] || die "no $FAKE_PLANE (unset BENCH_NO_BUILD)"
install_servers radicale

# --- servers ---------------------------------------------------------------------------------
# start_dav DIR — an empty Radicale in DIR (info log: cycles_bench.py counts requests).
start_dav() {
    DAV_PORT=$(free_port)
    start_radicale "$1" "$DAV_PORT" "$1/server.log" info
    DAV_PID=$LAST_PID DAV_LOG=$1/server.log DAV_URL=http://$HOST:$DAV_PORT/
}

# start_plane DIR PROJECTS ITEMS_PER_PROJECT [ARGS...] — the fake Plane, verbose log.
start_plane() {
    PLANE_PORT=$(free_port)
    start_fake_plane "$1/plane.log" "$PLANE_PORT" "$2" "$3" --verbose "${@:4}"
    PLANE_PID=$LAST_PID PLANE_URL=http://$HOST:$PLANE_PORT
}

# write_env DIR — calplanebot's settings for the servers just started.
write_env() {
    bot_env "$PLANE_PORT" "$DAV_URL" "$DAV_USER" "$1/state" info >"$1/calplanebot.env"
}

# once BUILD DIR LABEL [ARGS...] — one measured `--once` (a JSON line in RESULTS).
once() {
    local build=$1 dir=$2 label=$3
    shift 3
    mkdir -p "$dir/cycles"
    BENCH_TAG=$build BENCH_CYCLE_DIR=$dir/cycles BENCH_PLANE_LOG=$dir/plane.log \
        BENCH_PLANE_PID=$PLANE_PID BENCH_DAV_LOG=$DAV_LOG BENCH_DAV_PID=$DAV_PID \
        "$PY" "$CYCLE" cycle "$RESULTS" "$label" -- \
        "$BOT" --env-file "$dir/calplanebot.env" --once "$@" ||
        die "$build: cycle $label failed (output in $dir/cycles/)"
}

# cycles BUILD — the initial sync, its idle cycles, and the big dry run.
cycles() {
    local d=$TMP/$1/sync per=$((ITEMS / PROJECTS))
    log "$1: initial sync of $((per * PROJECTS)) work items into an empty Radicale"
    start_dav "$d/radicale"
    start_plane "$d" "$PROJECTS" "$per" --all-dated
    write_env "$d"
    once "$1" "$d" initial
    once "$1" "$d" idle-first
    once "$1" "$d" idle
    stop "$PLANE_PID"
    stop "$DAV_PID"

    d=$TMP/$1/dry
    per=$((BIG / PROJECTS))
    log "$1: --once --dry-run over $((per * PROJECTS)) work items"
    start_dav "$d/radicale"
    start_plane "$d" "$PROJECTS" "$per" --all-dated
    write_env "$d"
    once "$1" "$d" dry-run-big --dry-run
    stop "$PLANE_PID"
    stop "$DAV_PID"
}

# rss PID — VmRSS in KiB.
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# daemon BUILD — `run`: RSS after the first sync and 5 s idle, then the webhook loop.
daemon() {
    local d=$TMP/$1/daemon port pid
    log "$1: calplanebot run, 1 project x 50 items, $WEBHOOKS webhooks"
    start_dav "$d/radicale"
    start_plane "$d" 1 50
    port=$(free_port)
    mkdir -p "$d/state"
    spawn "$d/daemon.log" env -i PATH="$PATH" PLANE_BASE_URL="$PLANE_URL" \
        PLANE_API_TOKEN="$API_KEY" PLANE_WORKSPACE_SLUG="$SLUG" CALDAV_URL="$DAV_URL" \
        CALDAV_USERNAME="$DAV_USER" CALDAV_PASSWORD="$DAV_USER" HTTP_BIND="$HOST:$port" \
        PLANE_WEBHOOK_SECRET="$SECRET" SYNC_INTERVAL_SECONDS=3600 STATE_DIR="$d/state" \
        LOG_LEVEL=warn "$BOT" --env-file /dev/null run
    pid=$LAST_PID
    "$PY" "$DAEMON" wait-cycle "http://$HOST:$port/api/v1/metrics" 120 >"$d/metrics.json" ||
        { tail -n 20 "$d/daemon.log" >&2; die "$1: the daemon's first cycle failed"; }
    sleep 5
    kill -0 "$pid" 2>/dev/null || die "$1: the daemon exited (log: $d/daemon.log)"
    local idle_kib
    idle_kib=$(rss "$pid")
    BENCH_PLANE_URL=$PLANE_URL BENCH_SLUG=$SLUG BENCH_API_KEY=$API_KEY BENCH_DAV_URL=${DAV_URL%/} \
        BENCH_DAV_USER=$DAV_USER BENCH_DAV_PASSWORD=$DAV_USER \
        BENCH_DAEMON_URL="http://$HOST:$port" BENCH_SECRET=$SECRET BENCH_DAEMON_PID=$pid \
        BENCH_WEBHOOKS=$WEBHOOKS "$PY" "$DAEMON" latency >"$d/latency.json" 2>"$d/latency.err" ||
        { cat "$d/latency.err" >&2; die "$1: the webhook loop failed"; }
    "$PY" - "$RESULTS" "$1" "$idle_kib" "$d/latency.json" <<'PY'
import json, sys
results, build, idle_kib, latency = sys.argv[1:]
lat = json.load(open(latency))
rec = {"tag": build, "label": "daemon", "idle_rss_kib": int(idle_kib),
       "webhook_ms": lat["caldav_poll"], "daemon_cpu_ms_per_webhook": lat.get("daemon_cpu_ms_per_webhook")}
open(results, "a").write(json.dumps(rec) + "\n")
PY
    stop "$pid"
    stop "$PLANE_PID"
    stop "$DAV_PID"
}

for build in $BUILDS; do
    BOT=$(binary_of "$build")
    cycles "$build"
    daemon "$build"
done

# --- report ------------------------------------------------------------------------------------
echo
echo "calplanebot small-board targets — $(date -u '+%Y-%m-%d %H:%M UTC'), $(git describe --always --dirty 2>/dev/null || echo '?')"
echo "  machine:  $(machine)"
echo "  Radicale: $("$VENV/bin/radicale" --version 2>/dev/null || echo '?') (Basic auth, fsync per write); fake Plane, $PROJECTS projects, every item dated"
for b in $BUILDS; do echo "  $b: $(binary_of "$b"), $(stat -c %s "$(binary_of "$b")") bytes"; done
echo
"$PY" "$TABLE" "$RESULTS" "$ITEMS" "$BIG" "$TARGET/dist/calplanebot-aarch64-unknown-linux-musl" $BUILDS
echo
echo "benchmark ran in $((SECONDS - t_start)) s"
