#!/usr/bin/env bash
# Daemon benchmark: tests/bench/daemon.sh   (prints figures; not a test, not run by CI)
#
# Runs `calplanebot run` (release build) against Radicale and the fake Plane and prints:
#   1. webhook -> event-visible latency over BENCH_WEBHOOKS webhooks (p50/p90/p99/max):
#      rename an item through the fake's REST API, POST a signed webhook, poll a plain
#      CalDAV GET of the event every 5 ms until its SUMMARY shows the new name. Each round
#      is a lone webhook, synced at once (only a burst's tail waits, src/daemon.rs
#      Coalescer). The same loop is then
#      repeated polling the daemon's own /api/v1/metrics instead of Radicale, for comparison;
#   2. the daemon's RSS (VmRSS, VmHWM) after startup + the first cycle of a small workspace
#      (1 project x 50 items) and after ~5 s idle, and where the idle RSS is: by kind of
#      mapping from /proc/PID/smaps (daemon_bench.py smaps: the binary's text and data,
#      shared libraries, heap, anonymous memory, stacks), with Pss;
#   3. RSS, wall and CPU time of the first full cycle of a fresh daemon over 2,000 items
#      (4 projects x 500), how many events it created (only dated, open items), and its
#      RSS after 5 s idle, by kind of mapping as in 2;
#   4. the .ics feeds without CALDAV_URL over the same 2,000 items (4 x 500, all dated,
#      COMPLETED_ITEMS=keep: one event each): wall and CPU of the first cycle that writes
#      them, their size, then fetch latency (p50/p90/p99/max, each fetch on a new
#      connection as a calendar app polls) of one project's feed, of all.ics and of a 304
#      repeat of all.ics (If-None-Match), the daemon's CPU per fetch, the Plane requests
#      the fetches caused (the fake Plane's request log: must be 0), and the daemon's RSS
#      after the cycle, idle, and after serving the fetches, by kind of mapping as in 2;
#   5. the machine, rustc version and date.
#
# Everything runs on 127.0.0.1 under a temp dir and is stopped on exit. Radicale comes from
# the venv `tests/servers.sh install` makes (.tests/venv). Takes about 2.5 minutes once built.
#
# Environment:
#   BENCH_RADICALE_PORT=15332 BENCH_PLANE_PORT=18190 BENCH_DAEMON_PORT=18865
#       (a default that is taken is replaced by a free port; a port you set must be free)
#   BENCH_WEBHOOKS=100   BENCH_POLL_MS=5   BENCH_BIG_PROJECTS=4   BENCH_BIG_ITEMS=500
#   BENCH_SKIP_BIG=1     skip part 3          BENCH_NO_BUILD=1   use the existing binaries
#   BENCH_SKIP_FEED=1    skip part 4          BENCH_FEED_FETCHES=100  fetches per feed in 4
#   BENCH_KEEP=1         keep the temp dir (logs, Radicale data) for inspection
#   BENCH_BOT=path       measure this calplanebot binary (e.g. the static musl build of
#                        cross/build.sh) instead of target/release/calplanebot
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BOT=${BENCH_BOT:-$TARGET/release/calplanebot}
HELPER=$ROOT/tests/bench/daemon_bench.py
WEBHOOKS=${BENCH_WEBHOOKS:-100}
FEED_FETCHES=${BENCH_FEED_FETCHES:-100}
FEED_TOKEN=bench-feed-token-0123456789 # the feeds' secret in part 4
BIG_PROJECTS=${BENCH_BIG_PROJECTS:-4}
BIG_ITEMS=${BENCH_BIG_ITEMS:-500}
SECRET=bench-webhook-secret

need_commands cargo curl python3 awk
[[ -r /proc/self/status ]] || die "/proc is needed (Linux) for the RSS and CPU figures"

# Real PLANE_*/CALDAV_* settings of the caller must not leak into the daemon.
for v in $(compgen -e); do
    case $v in
    PLANE_* | CALDAV_* | SYNC_* | CALPLANEBOT_* | STATE_DIR | STATE_DIRECTORY | LOG_LEVEL | \
        LOG_FILE | HTTP_BIND | ENABLE_SYNC | ITEM_KIND | DATE_MODE | COMPLETED_ITEMS | \
        MAX_DELETE_FRACTION | HTTP_TIMEOUT_SECONDS | FEED_TOKEN* | PUBLIC_URL)
        unset "$v"
        ;;
    esac
done

t_start=$SECONDS
RADICALE_PORT=$(pick_port BENCH_RADICALE_PORT 15332)
PLANE_PORT=$(pick_port BENCH_PLANE_PORT 18190)
DAEMON_PORT=$(pick_port BENCH_DAEMON_PORT 18865)

bench_tmp calplanebot-bench

# mem PID — "VmRSS VmHWM" in KiB.
mem() { awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print r, h }' "/proc/$1/status"; }
# cpu PID — utime + stime in seconds.
cpu() {
    local tck
    tck=$(getconf CLK_TCK)
    sed 's/.*) //' "/proc/$1/stat" | awk -v t="$tck" '{ printf "%.2f", ($12 + $13) / t }'
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
# json FILE EXPR — a value out of a JSON file (EXPR is Python, on `d`).
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# --- build and install --------------------------------------------------------------------
build_release
[[ -x $BOT && -x $FAKE_PLANE ]] || die "no binaries $BOT and $FAKE_PLANE (unset BENCH_NO_BUILD, check BENCH_BOT)"
install_servers radicale

# --- Radicale -----------------------------------------------------------------------------
# Quieter logs than the tests (warning): the benchmark reads none of them. Users bench (the
# small workspace) and big (the large one), each its own calendar home.
start_radicale "$TMP/radicale" "$RADICALE_PORT" "$TMP/radicale/radicale.log" warning bench big
RADICALE_PID=$LAST_PID

# start_plane PROJECTS ITEMS — the fake Plane (items with and without dates).
start_plane() {
    start_fake_plane "$TMP/fake-plane-$1x$2.log" "$PLANE_PORT" "$1" "$2"
    PLANE_PID=$LAST_PID
}

# start_daemon NAME DAV_USER — `calplanebot run` with a fresh state dir.
start_daemon() {
    mkdir -p "$TMP/$1/state"
    spawn "$TMP/$1/daemon.log" env \
        PLANE_BASE_URL="http://$HOST:$PLANE_PORT" PLANE_API_TOKEN="$API_KEY" \
        PLANE_WORKSPACE_SLUG="$SLUG" CALDAV_URL="http://$HOST:$RADICALE_PORT/" \
        CALDAV_USERNAME="$2" CALDAV_PASSWORD="$2" HTTP_BIND="$HOST:$DAEMON_PORT" \
        PLANE_WEBHOOK_SECRET="$SECRET" SYNC_INTERVAL_SECONDS=3600 \
        STATE_DIR="$TMP/$1/state" LOG_LEVEL=warn \
        "$BOT" --env-file /dev/null run
    DAEMON_PID=$LAST_PID
}

# wait_cycle NAME TIMEOUT — until the daemon's first cycle is done; metrics in NAME/metrics.json.
wait_cycle() {
    "$VENV/bin/python" "$HELPER" wait-cycle "http://$HOST:$DAEMON_PORT/api/v1/metrics" "$2" \
        >"$TMP/$1/metrics.json" || { tail -n 20 "$TMP/$1/daemon.log" >&2; die "daemon ($1) failed"; }
    kill -0 "$DAEMON_PID" 2>/dev/null || die "daemon ($1) exited (log: $TMP/$1/daemon.log)"
    [[ $(json "$TMP/$1/metrics.json" 'd["cycles_failed"]') == 0 ]] ||
        die "daemon ($1): first cycle failed: $(json "$TMP/$1/metrics.json" 'd["last_error"]')"
}

# --- 1 + 2: small workspace, idle RSS, webhook latency ---------------------------------------
log "small workspace: 1 project x 50 items"
start_plane 1 50
start_daemon small bench
wait_cycle small 60
read -r rss_first hwm_first < <(mem "$DAEMON_PID")
small_created=$(json "$TMP/small/metrics.json" 'd["items"]["created"]')
sleep 5
read -r rss_idle hwm_idle < <(mem "$DAEMON_PID")
"$VENV/bin/python" "$HELPER" smaps "$DAEMON_PID" "$BOT" >"$TMP/smaps-idle.json"

log "latency: $WEBHOOKS webhooks polled over CalDAV, then $WEBHOOKS polled via /api/v1/metrics"
BENCH_PLANE_URL="http://$HOST:$PLANE_PORT" BENCH_SLUG=$SLUG BENCH_API_KEY=$API_KEY \
    BENCH_DAV_URL="http://$HOST:$RADICALE_PORT" BENCH_DAV_USER=bench BENCH_DAV_PASSWORD=bench \
    BENCH_DAEMON_URL="http://$HOST:$DAEMON_PORT" BENCH_SECRET=$SECRET \
    BENCH_DAEMON_PID=$DAEMON_PID BENCH_WEBHOOKS=$WEBHOOKS \
    "$VENV/bin/python" "$HELPER" latency >"$TMP/latency.json" ||
    { tail -n 20 "$TMP/small/daemon.log" >&2; die "latency loop failed"; }
read -r rss_after_hooks hwm_after_hooks < <(mem "$DAEMON_PID")
stop "$DAEMON_PID"
stop "$PLANE_PID"

# --- 3: first full cycle over 2,000 items ----------------------------------------------------
if [[ -z ${BENCH_SKIP_BIG:-} ]]; then
    total=$((BIG_PROJECTS * BIG_ITEMS))
    log "large workspace: $BIG_PROJECTS projects x $BIG_ITEMS items = $total"
    start_plane "$BIG_PROJECTS" "$BIG_ITEMS"
    rad_cpu0=$(cpu "$RADICALE_PID")
    plane_cpu0=$(cpu "$PLANE_PID")
    t0=$(date +%s.%N)
    start_daemon big big
    wait_cycle big 1800
    t1=$(date +%s.%N)
    read -r rss_big hwm_big < <(mem "$DAEMON_PID")
    cpu_big=$(cpu "$DAEMON_PID")
    rad_cpu=$(awk -v a="$rad_cpu0" -v b="$(cpu "$RADICALE_PID")" 'BEGIN { printf "%.2f", b - a }')
    plane_cpu=$(awk -v a="$plane_cpu0" -v b="$(cpu "$PLANE_PID")" 'BEGIN { printf "%.2f", b - a }')
    wall_big=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    dur_big=$(json "$TMP/big/metrics.json" '"%.1f" % d["last_duration_seconds"]')
    big_created=$(json "$TMP/big/metrics.json" 'd["items"]["created"]')
    big_errors=$(json "$TMP/big/metrics.json" 'sum(d["errors"].values())')
    sleep 5
    read -r rss_big_idle _ < <(mem "$DAEMON_PID")
    "$VENV/bin/python" "$HELPER" smaps "$DAEMON_PID" "$BOT" >"$TMP/smaps-big-idle.json"
    stop "$DAEMON_PID"
    stop "$PLANE_PID"
fi

# --- 4: .ics feeds of 2,000 items, no CALDAV_URL ---------------------------------------------

# plane_requests LOG — how many requests the fake Plane (--verbose) has logged so far.
plane_requests() { grep -c -E '^(GET|POST|PATCH|PUT|DELETE|HEAD) ' "$1" || true; }

# feed_env DIR — the feed daemon's settings: no CALDAV_*, a FEED_TOKEN, every item kept.
feed_env() {
    cat <<EOF
PLANE_BASE_URL=http://$HOST:$PLANE_PORT
PLANE_API_TOKEN=$API_KEY
PLANE_WORKSPACE_SLUG=$SLUG
FEED_TOKEN=$FEED_TOKEN
HTTP_BIND=$HOST:$DAEMON_PORT
SYNC_INTERVAL_SECONDS=3600
COMPLETED_ITEMS=keep
STATE_DIR=$1/state
LOG_LEVEL=warn
EOF
}

if [[ -z ${BENCH_SKIP_FEED:-} ]]; then
    feed_items=$((BIG_PROJECTS * BIG_ITEMS))
    log "feeds without CALDAV_URL: $BIG_PROJECTS projects x $BIG_ITEMS items, all dated; $FEED_FETCHES fetches per feed"
    F=$TMP/feed
    mkdir -p "$F/state"
    feed_env "$F" >"$F/feed.env"
    start_fake_plane "$F/fake-plane.log" "$PLANE_PORT" "$BIG_PROJECTS" "$BIG_ITEMS" --all-dated --verbose
    PLANE_PID=$LAST_PID
    t0=$(date +%s.%N)
    spawn "$F/daemon.log" "$BOT" --env-file "$F/feed.env" run
    DAEMON_PID=$LAST_PID
    wait_cycle feed 600
    t1=$(date +%s.%N)
    feed_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    feed_cpu=$(cpu "$DAEMON_PID")
    feed_cycle_plane=$(plane_requests "$F/fake-plane.log")
    feed_disk=$(du -sb "$F/state/feeds" | cut -f1)
    read -r rss_feed hwm_feed < <(mem "$DAEMON_PID")
    sleep 5
    read -r rss_feed_idle _ < <(mem "$DAEMON_PID")
    # The URLs as a user gets them (this asks Plane for the project list, before counting).
    "$BOT" --env-file "$F/feed.env" feed-urls >"$F/urls.txt" || die "feed-urls failed"
    url_all=$(sed -n 's/^  all projects: //p' "$F/urls.txt")
    url_project=$(awk '/^  .*: http/ && !/^  all projects: / { sub(/.*: http/, "http"); print; exit }' "$F/urls.txt")
    [[ -n $url_all && -n $url_project ]] || die "feed-urls printed no URLs: $(cat "$F/urls.txt")"
    plane_before=$(plane_requests "$F/fake-plane.log")
    BENCH_FEED_FETCHES=$FEED_FETCHES BENCH_DAEMON_PID=$DAEMON_PID \
        "$VENV/bin/python" "$HELPER" feeds "$url_all" "$url_project" >"$TMP/feeds.json" ||
        { tail -n 20 "$F/daemon.log" >&2; die "feed fetch loop failed"; }
    feed_fetch_plane=$(($(plane_requests "$F/fake-plane.log") - plane_before))
    read -r rss_feed_served hwm_feed_served < <(mem "$DAEMON_PID")
    "$VENV/bin/python" "$HELPER" smaps "$DAEMON_PID" "$BOT" >"$TMP/smaps-feed.json"
    stop "$DAEMON_PID"
    stop "$PLANE_PID"
fi

# --- report ------------------------------------------------------------------------------------
L=$TMP/latency.json
row() { printf '  %-44s %s\n' "$1" "$2"; }
lat() { # KEY — "p50 / p90 / p99 / max" in ms
    json "$L" "'%.0f / %.0f / %.0f / %.0f ms' % tuple(d['$1'][k] for k in ('p50','p90','p99','max'))"
}

echo
echo "calplanebot daemon benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
row "machine" "$(machine)"
row "rustc" "$(rustc --version)"
row "binary" "$BOT, $(stat -c %s "$BOT") bytes, $(file -b "$BOT" 2>/dev/null | cut -d, -f1-2 || echo '?')"
row "Radicale" "$("$VENV/bin/radicale" --version 2>/dev/null || echo '?') (htpasswd plain, delay 0)"
echo
echo "1. webhook -> event visible (${WEBHOOKS} webhooks, 1 project x 50 items; ms)"
row "items / open+dated / with an event" "$(json "$L" '"%d / %d / %d" % (d["items"], d["open_dated"], d["candidates"])')"
row "latency, CalDAV GET poll p50/p90/p99/max" "$(lat caldav_poll)"
row "latency, daemon metrics poll p50/p90/p99/max" "$(lat metrics_poll)"
row "webhook POST -> 202, p50 / max" "$(json "$L" "'%.1f / %.1f ms' % (d['webhook_ack']['p50'], d['webhook_ack']['max'])")"
row "CalDAV polls per webhook (mean), GET p50" "$(json "$L" "'%.0f, %.1f ms' % (d['polls_mean'], d['radicale_get']['p50'])")"
row "daemon CPU per webhook" "$(json "$L" '"%.1f ms" % d["daemon_cpu_ms_per_webhook"]')"
echo
echo "2. daemon memory, small workspace ($small_created events)"
row "after startup + first cycle: VmRSS / VmHWM" "$(mib "$rss_first") / $(mib "$hwm_first")"
row "after 5 s idle: VmRSS / VmHWM" "$(mib "$rss_idle") / $(mib "$hwm_idle")"
row "  idle RSS by mapping (KiB, /proc/PID/smaps)" "$(json "$TMP/smaps-idle.json" '" ".join("%s %d" % (k, d[k]) for k in ("binary", "libs", "heap", "anon", "thread_stacks", "stack", "other"))')"
row "  Pss / anonymous private dirty / threads" "$(json "$TMP/smaps-idle.json" '"%d KiB / %d KiB / %d" % (d["pss"], d["anon_private_dirty"], d["threads"])')"
row "after the $((2 * WEBHOOKS + 1)) webhooks: VmRSS / VmHWM" "$(mib "$rss_after_hooks") / $(mib "$hwm_after_hooks")"
if [[ -z ${BENCH_SKIP_BIG:-} ]]; then
    echo
    echo "3. first full cycle, $BIG_PROJECTS projects x $BIG_ITEMS items = $total work items"
    row "events created / errors" "$big_created / $big_errors"
    row "wall: start -> cycle done (daemon's own)" "$wall_big s ($dur_big s)"
    row "daemon CPU (utime+stime)" "$cpu_big s"
    row "Radicale / fake Plane CPU meanwhile" "$rad_cpu s / $plane_cpu s"
    row "wall per event" "$(awk -v w="$wall_big" -v n="$big_created" 'BEGIN { printf "%.1f ms", n ? w * 1000 / n : 0 }')"
    row "VmRSS / VmHWM after the cycle" "$(mib "$rss_big") / $(mib "$hwm_big")"
    row "VmRSS after 5 s idle" "$(mib "$rss_big_idle")"
    row "  idle RSS by mapping (KiB)" "$(json "$TMP/smaps-big-idle.json" '" ".join("%s %d" % (k, d[k]) for k in ("binary", "libs", "heap", "anon", "thread_stacks", "stack", "other"))')"
fi
if [[ -z ${BENCH_SKIP_FEED:-} ]]; then
    FJ=$TMP/feeds.json
    fetch_row() { # KEY — "p50 / p90 / p99 / max ms, CPU per fetch"
        json "$FJ" "'%.1f / %.1f / %.1f / %.1f ms; daemon CPU %.2f ms per fetch' % (tuple(d['$1']['stats'][k] for k in ('p50','p90','p99','max')) + (d['$1']['cpu_ms'],))"
    }
    echo
    echo "4. .ics feeds without CALDAV_URL, $BIG_PROJECTS projects x $BIG_ITEMS items = $feed_items work items (all dated, kept)"
    row "events in all.ics / in $(json "$FJ" 'd["project"]["name"]')" "$(json "$FJ" '"%d / %d" % (d["all"]["events"], d["project"]["events"])')"
    row "first cycle: wall / CPU / Plane requests" "$feed_wall s / $feed_cpu s / $feed_cycle_plane"
    row "feed files on disk (STATE_DIR/feeds)" "$feed_disk bytes"
    row "GET $(json "$FJ" '"%s (%d bytes)" % (d["project"]["name"], d["project"]["bytes"])') p50/p90/p99/max" "$(fetch_row project)"
    row "GET $(json "$FJ" '"%s (%d bytes)" % (d["all"]["name"], d["all"]["bytes"])') p50/p90/p99/max" "$(fetch_row all)"
    row "GET all.ics + If-None-Match -> 304" "$(fetch_row not_modified)"
    row "Plane requests during the $((3 * FEED_FETCHES + 3)) fetches" "$feed_fetch_plane"
    row "VmRSS / VmHWM after the first cycle" "$(mib "$rss_feed") / $(mib "$hwm_feed")"
    row "VmRSS after 5 s idle" "$(mib "$rss_feed_idle")"
    row "VmRSS / VmHWM after the fetches" "$(mib "$rss_feed_served") / $(mib "$hwm_feed_served")"
    row "  RSS by mapping after the fetches (KiB)" "$(json "$TMP/smaps-feed.json" '" ".join("%s %d" % (k, d[k]) for k in ("binary", "libs", "heap", "anon", "thread_stacks", "stack", "other"))')"
fi
echo
echo "benchmark ran in $((SECONDS - t_start)) s"
