#!/usr/bin/env bash
# Sync-cycle benchmark: tests/bench/cycles.sh   (prints figures; not a test, not run by CI)
#
# For each workspace size N (BENCH_SIZES; BENCH_PROJECTS projects of N/BENCH_PROJECTS work
# items, every item dated, completed ones kept, so each item becomes one calendar object)
# it runs `calplanebot --once` (release build) against the fake Plane and a CalDAV server
# of its own, fresh for each size, and measures these cycles in this order:
#   initial             the first sync: creates every calendar and object
#   idle-first          right after it (pays for listing our own writes once)
#   idle-second, idle-steady   two more idle cycles (the steady state)
#   rename-in-plane     one item renamed through the fake's REST API beforehand
#   idle-after-rename
#   move-in-calendar    one event moved a week by a "calendar app" beforehand
#                       (tests/caldav_verify.py edit: GET, change DTSTART/DTEND, PUT If-Match)
#   idle-after-move     (the fake bumps updated_at after our PATCH, like Plane does)
#   full                `--once --full`, the hourly full reconcile
# Per cycle it prints: wall seconds, calplanebot's user+sys CPU (wait4 rusage) and peak RSS
# (GNU time: a child of Python would report Python's RSS), Plane requests (calplanebot's
# count; methods from the fake's request log), CalDAV requests by method (the "Requests:"
# line), the CalDAV server's CPU meanwhile, what was written; with `perf stat -e
# instructions:u` working, instructions too. At the end:
# one compact table, the checks against the target (an idle cycle costs 1 Plane request
# per project and at most 1 CalDAV request per calendar, writes nothing, takes milliseconds
# of CPU), and the request lines of the idle cycles as the servers logged them.
#
# Everything runs on 127.0.0.1 under a temp dir and is stopped on exit. Radicale and
# Xandikos come from the venv `tests/servers.sh install` makes (.tests/venv). The initial
# cycle is bound by the server: both fsync every PUT, and in both a PUT costs more the more
# objects the calendar holds (Radicale checks the new UID against every object, Xandikos
# commits to git). Measured here on 2 busy cores, per PUT into a calendar of 0 -> 500
# objects: Radicale ~50 -> ~200 ms, Xandikos ~50 -> ~100 ms. 2,000 items (4 calendars of
# 500) take Radicale ~4.5 min; 10,000 (4 x 2,500) would take it over an hour, so the
# default runs that size against Xandikos (~35 min). The whole default run: ~40 min.
#
# Environment:
#   BENCH_SIZES="2000 10000:xandikos"
#                              sizes; "N:radicale" / "N:xandikos" picks the server per size
#   BENCH_SERVER=radicale      server for sizes without one: radicale (Basic auth) or xandikos
#   BENCH_PROJECTS=4           projects per workspace
#   BENCH_DAV_PORT=15333 BENCH_PLANE_PORT=18191
#       (a default that is taken is replaced by a free port; a port you set must be free)
#   BENCH_NO_BUILD=1   use the existing release binaries
#   BENCH_KEEP=1       keep the temp dir (calplanebot's output per cycle, server logs, journal)
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BOT=$TARGET/release/calplanebot
PY=$VENV/bin/python
HELPER=$ROOT/tests/bench/cycles_bench.py
VERIFY=$ROOT/tests/caldav_verify.py
SIZES=${BENCH_SIZES:-2000 10000:xandikos}
DEFAULT_SERVER=${BENCH_SERVER:-radicale}
PROJECTS=${BENCH_PROJECTS:-4}

need_commands cargo curl python3
[[ -r /proc/self/stat ]] || die "/proc is needed (Linux) for the servers' CPU figures"
need_gnu_time
[[ $PROJECTS =~ ^[1-9][0-9]*$ ]] || die "BENCH_PROJECTS must be a positive number, not '$PROJECTS'"
# Check every size before anything starts: a typo should not surface after 10 minutes.
for spec in $SIZES; do
    [[ $spec =~ ^[1-9][0-9]*(:(radicale|xandikos))?$ ]] ||
        die "BENCH_SIZES: '$spec' is not N or N:radicale or N:xandikos"
    ((${spec%%:*} >= PROJECTS)) || die "BENCH_SIZES: $spec is fewer items than $PROJECTS projects"
done
case $DEFAULT_SERVER in
radicale | xandikos) ;;
*) die "BENCH_SERVER must be radicale or xandikos, not '$DEFAULT_SERVER'" ;;
esac

t_start=$SECONDS
DAV_PORT=$(pick_port BENCH_DAV_PORT 15333)
PLANE_PORT=$(pick_port BENCH_PLANE_PORT 18191)

bench_tmp calplanebot-cycles
RESULTS=$TMP/results.jsonl

# --- build and install --------------------------------------------------------------------
build_release
[[ -x $BOT && -x $FAKE_PLANE ]] || die "no release binaries in $TARGET/release (unset BENCH_NO_BUILD)"
install_servers radicale xandikos

# `perf stat` needs hardware counters, which containers and many VMs do not expose.
PERF=0
if command -v perf >/dev/null &&
    perf stat -x, -e instructions:u -o "$TMP/perf-probe" -- true 2>/dev/null &&
    grep -Eq '^[0-9]+,.*instructions' "$TMP/perf-probe"; then
    PERF=1
else
    log "perf stat -e instructions:u is not supported here: no instruction counts"
fi

# start_dav SERVER DIR — our own CalDAV server with data under DIR; sets DAV_PID, DAV_LOG,
# DAV_URL, DAV_HOME (path of the calendar home) and DAV_AUTH (caldav_verify.py options).
start_dav() {
    DAV_LOG=$2/server.log
    DAV_URL=http://$HOST:$DAV_PORT/
    case $1 in
    radicale)
        # info: one line per request, which the idle-cycle listing shows.
        start_radicale "$2" "$DAV_PORT" "$DAV_LOG" info
        DAV_HOME=/$DAV_USER/
        DAV_AUTH=(--user "$DAV_USER" --password "$DAV_USER")
        ;;
    xandikos)
        start_xandikos "$2" "$DAV_PORT" "$DAV_LOG"
        DAV_HOME=/user/calendars/
        DAV_AUTH=()
        ;;
    esac
    DAV_PID=$LAST_PID
}

# start_plane DIR ITEMS_PER_PROJECT — the fake Plane; its --verbose request log is
# DIR/plane.log.
start_plane() {
    start_fake_plane "$1/plane.log" "$PLANE_PORT" "$PROJECTS" "$2" --all-dated --verbose
    PLANE_PID=$LAST_PID
}

# write_env DIR SERVER — calplanebot's settings for this run (defaults for everything the
# benchmark does not need to set).
write_env() {
    local login=
    [[ $2 != radicale ]] || login=$DAV_USER
    bot_env "$PLANE_PORT" "$DAV_URL" "$login" "$1/state" info >"$1/calplanebot.env"
}

# once LABEL [ARGS...] — one measured `calplanebot --once`.
once() {
    local label=$1
    shift
    "$PY" "$HELPER" cycle "$RESULTS" "$label" -- \
        "$BOT" --env-file "$RUN_DIR/calplanebot.env" --once "$@" ||
        die "$BENCH_TAG: cycle $label failed (output in $RUN_DIR/cycles/)"
}

# field JSON KEY — one value of a flat JSON object.
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# run_size N SERVER — all cycles for one workspace size.
run_size() {
    local n=$1 server=$2 per=$(($1 / PROJECTS)) pick ident
    RUN_DIR=$TMP/$n-$server
    mkdir -p "$RUN_DIR/cycles"
    log "$((per * PROJECTS)) work items ($PROJECTS x $per) against $server"
    start_dav "$server" "$RUN_DIR/$server"
    start_plane "$RUN_DIR" "$per"
    write_env "$RUN_DIR" "$server"
    export BENCH_TAG="$((per * PROJECTS))/$server" BENCH_CYCLE_DIR=$RUN_DIR/cycles \
        BENCH_PLANE_LOG=$RUN_DIR/plane.log BENCH_PLANE_PID=$PLANE_PID \
        BENCH_DAV_LOG=$DAV_LOG BENCH_DAV_PID=$DAV_PID BENCH_PERF=$PERF

    once initial
    once idle-first
    once idle-second
    once idle-steady

    pick=$("$PY" "$HELPER" pick "http://$HOST:$PLANE_PORT" "$SLUG" "$API_KEY") ||
        die "could not pick work items to edit"
    "$PY" "$HELPER" rename "http://$HOST:$PLANE_PORT" "$SLUG" "$API_KEY" \
        "$(field "$pick" project)" "$(field "$pick" rename)" "renamed by the benchmark" ||
        die "rename in the fake Plane failed"
    once rename-in-plane
    once idle-after-rename

    ident=$(field "$pick" identifier)
    event=plane-${ident,,}/plane-issue-$(field "$pick" move)%40calplanebot.ics
    "$PY" "$VERIFY" edit "${DAV_AUTH[@]}" --move-to "$(field "$pick" move_to)" \
        --url "http://$HOST:$DAV_PORT$DAV_HOME$event" >"$RUN_DIR/move.json" ||
        die "moving the event failed: $(cat "$RUN_DIR/move.json")"
    once move-in-calendar
    once idle-after-move
    once full --full

    stop "$PLANE_PID"
    stop "$DAV_PID"
}

for spec in $SIZES; do
    server=$DEFAULT_SERVER
    [[ $spec == *:* ]] && server=${spec#*:}
    run_size "${spec%%:*}" "$server"
done

# --- report ------------------------------------------------------------------------------------
commit=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')
radicale=$("$VENV/bin/radicale" --version 2>/dev/null || echo '?')
xandikos=$("$PY" -c 'import xandikos; print(".".join(map(str, xandikos.__version__)))' ||
    echo '?')
echo
echo "calplanebot sync-cycle benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  machine:  $(machine)"
echo "  binary:   target/release/calplanebot, $(stat -c %s "$BOT") bytes, $commit"
echo "  servers:  Radicale $radicale (Basic auth, fsync per write), Xandikos $xandikos (no auth)"
echo "  Plane:    fake-plane, $PROJECTS projects, every item dated, COMPLETED_ITEMS=keep"
echo
"$PY" "$HELPER" table "$RESULTS"
echo
echo "benchmark ran in $((SECONDS - t_start)) s"
