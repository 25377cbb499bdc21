#!/usr/bin/env bash
# Hostile-server benchmark, client side: tests/bench/hostile_client.sh
# (prints figures; not a test, not run by CI)
#
# The real release binary talks to tests/bench/hostile_caldav.py, a minimal CalDAV
# account whose answers are made huge or nasty, and GNU time reports calplanebot's peak
# RSS and CPU (user+sys) per case:
#   propfind-10m / propfind-60m   the Depth-1 PROPFIND of the calendar home is 10 / 60 MB
#                                 of object responses (`calplanebot test-caldav`)
#   report-10m / report-60m       every calendar-multiget answers 10 / 60 MB of calendar
#                                 objects of ~2 KB (`calplanebot --once` against fake-plane)
#   object-25m                    the multiget answers one object of 25 MB (an inline
#                                 attachment, base64 folded into 75-character lines)
#   attrs-80k                     the home listing holds one element with 80,000 attributes
#                                 (789 KB; `test-caldav`)
# and the same PROPFIND/REPORT cases sent chunked (no Content-Length). Per case: the
# answer's size, exit code, peak RSS, CPU seconds, RSS / body, and calplanebot's last line.
#
# Environment:
#   BENCH_NO_BUILD=1   use the existing release binaries
#   BENCH_CASES="..."  a subset of the case names above (chunked ones end in -chunked)
#   BENCH_KEEP=1       keep the temp dir (each run's output, the servers' logs)
#   BOT=path           another calplanebot binary (e.g. an older build, for before/after)
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BOT=${BOT:-$TARGET/release/calplanebot}
SERVER=$ROOT/tests/bench/hostile_caldav.py
CASES=${BENCH_CASES:-propfind-10m propfind-60m report-10m report-60m object-25m attrs-80k propfind-10m-chunked report-10m-chunked}

need_commands cargo python3
need_gnu_time

bench_tmp calplanebot-hostile
build_release
[[ -x $BOT && -x $FAKE_PLANE ]] || die "no release binaries in $TARGET/release (unset BENCH_NO_BUILD)"

# The fake Plane: one project of 5 dated items, for the --once cases.
PLANE_PORT=$(free_port)
start_fake_plane "$TMP/fake-plane.log" "$PLANE_PORT" 1 5 --all-dated

# run_case NAME SERVER-ARGS... — start a hostile server, run calplanebot once, print a row.
run_case() {
    local name=$1
    shift
    local chunked=() cmd=(test-caldav)
    [[ $name == *-chunked ]] && chunked=(--chunked)
    [[ $name == report-* || $name == object-* ]] && cmd=(--once)
    local slog=$TMP/$name.server.log
    python3 -u "$SERVER" --port 0 "$@" "${chunked[@]}" >"$slog" 2>&1 </dev/null &
    local spid=$!
    PIDS+=("$spid")
    local port="" i
    for ((i = 0; i < 600; i++)); do
        port=$(sed -n 's/^PORT //p' "$slog" 2>/dev/null || true)
        [[ -n $port ]] && break
        kill -0 "$spid" 2>/dev/null || die "hostile server exited: $(tail -n 5 "$slog")"
        sleep 0.1
    done
    [[ -n $port ]] || die "hostile server did not start"
    local state=$TMP/$name.state out=$TMP/$name.out tv=$TMP/$name.time
    local rc=0
    env -i PATH="$PATH" \
        PLANE_BASE_URL="http://$HOST:$PLANE_PORT" PLANE_API_TOKEN="$API_KEY" \
        PLANE_WORKSPACE_SLUG="$SLUG" CALDAV_URL="http://$HOST:$port/" \
        CALDAV_USERNAME= CALDAV_PASSWORD= STATE_DIR="$state" LOG_LEVEL=warn \
        HTTP_TIMEOUT_SECONDS=120 \
        /usr/bin/time -f '%M %U %S %e' -o "$tv" "$BOT" "${cmd[@]}" >"$out" 2>&1 || rc=$?
    stop "$spid"
    local body rss user sys wall last
    body=$(sed -n 's/^BODY //p' "$slog" 2>/dev/null | sort -n | tail -n 1 || true)
    read -r rss user sys wall < <(tail -n 1 "$tv")
    last=$(grep -v '^\s*$' "$out" | tail -n 1 | cut -c1-110)
    printf '%-22s %8s %4s %10s %8s %6s %7s  %s\n' "$name" \
        "$(awk -v b="${body:-0}" 'BEGIN{printf "%.1f", b/1e6}')" "$rc" \
        "$(awk -v r="$rss" 'BEGIN{printf "%.1f", r/1024}')" \
        "$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')" "$wall" \
        "$(awk -v r="$rss" -v b="${body:-0}" 'BEGIN{ if (b>0) printf "%.2f", r*1024/b; else print "-"}')" \
        "$last"
}

echo
echo "calplanebot $("$BOT" --version 2>/dev/null || echo '?') ($BOT)"
printf '%-22s %8s %4s %10s %8s %6s %7s  %s\n' case "body MB" exit "peak RSS MB" "CPU s" "wall s" "RSS/body" "last line"
for c in $CASES; do
    case ${c%-chunked} in
    propfind-10m) run_case "$c" --propfind-mb 10 ;;
    propfind-60m) run_case "$c" --propfind-mb 60 ;;
    report-10m) run_case "$c" --report-mb 10 ;;
    report-60m) run_case "$c" --report-mb 60 ;;
    object-25m) run_case "$c" --object-mb 25 ;;
    attrs-80k) run_case "$c" --attrs 80000 ;;
    *) die "unknown case $c" ;;
    esac
done
