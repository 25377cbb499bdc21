#!/usr/bin/env bash
# Try calplanebot without Plane and without a calendar server, in one command:
#
#   tests/demo.sh          .ics feeds, then the CalDAV sync; stops everything at the end
#   tests/demo.sh --keep   the same, but leave the servers and the feed service running
#   tests/demo.sh --feeds  only the .ics feeds (no Radicale, no Python); also with --keep
#   tests/demo.sh --stop   stop what a --keep run left running
#
# What it does (everything lives under .tests/, nothing is installed system-wide):
#   1. the fake Plane from tests/fake_plane (3 projects, 40 work items each, two cycles and
#      two modules each: `fake-plane --timeline`) on :8090; SYNC_CYCLES and SYNC_MODULES
#      are on in both parts;
#   2. feeds, calplanebot's default without CALDAV_URL: .tests/demo/feed.env (PLANE_*, a
#      random FEED_TOKEN, HTTP_BIND), `calplanebot run` in the background on :8765, then
#      `feed-urls` and curl: fetches the printed URLs, counts the events in each feed and
#      repeats one fetch with If-None-Match (304);
#   3. CalDAV (not with --feeds): a Python venv at .tests/demo-venv with only Radicale (pip
#      from PyPI), reused later; Radicale on 127.0.0.1:5232, user demo / password demo,
#      data in .tests/demo/; .tests/demo/demo.env with the PLANE_* and CALDAV_* variables;
#      calplanebot test-plane, test-caldav, --once and list against them.
# Every run starts from a clean .tests/demo/ (the venv is kept).
#
# Environment:
#   DEMO_RADICALE_PORT=5232   DEMO_PLANE_PORT=8090   DEMO_FEED_PORT=8765
#                             change the ports when they are taken
#   DEMO_FEED_HOST=127.0.0.1  where the feed service listens; 0.0.0.0 lets a phone or
#                             another computer on your network subscribe (the URLs then
#                             name this machine's host name)
#   DEMO_READY_TIMEOUT=30     seconds to wait for each server
#   PYTHON3=python3           the Python that makes the venv
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DEMO=$ROOT/.tests/demo
VENV=$ROOT/.tests/demo-venv
PIDS=$ROOT/.tests/demo.pids # outside $DEMO, which every run wipes
HOST=127.0.0.1
RADICALE_PORT=${DEMO_RADICALE_PORT:-5232}
PLANE_PORT=${DEMO_PLANE_PORT:-8090}
FEED_PORT=${DEMO_FEED_PORT:-8765}
FEED_HOST=${DEMO_FEED_HOST:-$HOST}
READY_TIMEOUT=${DEMO_READY_TIMEOUT:-30}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BOT=$TARGET/debug/calplanebot
SHOWN_BOT=${BOT#"$ROOT"/} # as the commands are shown: relative unless CARGO_TARGET_DIR is elsewhere
FAKE_PLANE=$TARGET/debug/examples/fake-plane
ENV_FILE=$DEMO/demo.env
FEED_ENV=$DEMO/feed.env

log() { printf 'demo: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# shellcheck source=lib.sh
. "$ROOT/tests/lib.sh"

usage() { sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# alive PID — running and not a zombie (kill -0 also succeeds on a zombie).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 0
    [[ $st != Z ]]
}

# ours PID PATTERN — only signal a pid whose command line still matches (pids get reused).
ours() {
    [[ -r /proc/$1/cmdline ]] || return 0 # no /proc (macOS): trust the pid file
    tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

# stop_servers [quiet] — TERM what the pid file names, wait up to 5 s, then KILL.
stop_servers() {
    local name pid pattern pids=() names="" i left
    if [[ -f $PIDS ]]; then
        while read -r name pid pattern; do
            if [[ -n $pid ]] && alive "$pid" && ours "$pid" "$pattern"; then
                pids+=("$pid")
                names+=" $name($pid)"
            fi
        done <"$PIDS"
    fi
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            left=0
            for pid in "${pids[@]}"; do alive "$pid" && left=1; done
            ((left)) || break
            sleep 0.1
        done
        for pid in "${pids[@]}"; do
            alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
        done
        # Reap our own children quietly (no "Terminated" job messages).
        wait "${pids[@]}" 2>/dev/null || true
    fi
    rm -f "$PIDS"
    [[ ${1:-} == quiet ]] || log "stopped:${names:- nothing was running}"
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

check_port() { # what port
    if port_busy "$2"; then
        die "port $2 for $1 is already in use on $HOST (the test servers of tests/servers.sh? \
an earlier 'tests/demo.sh --keep'?). Stop that, or choose other ports:
    DEMO_RADICALE_PORT=15232 DEMO_PLANE_PORT=18091 DEMO_FEED_PORT=18766 tests/demo.sh"
    fi
}

# wait_ready NAME URL PID LOG — polls until the server answers HTTP at all.
wait_ready() {
    local name=$1 url=$2 pid=$3 logf=$4 code deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [[ $code == 000 || -z $code ]] || return 0
        if ! alive "$pid"; then
            tail -n 20 "$logf" >&2 || true
            die "$name exited during startup (log above: $logf)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$logf" >&2 || true
            die "$name did not answer at $url within ${READY_TIMEOUT}s (log: $logf)"
        fi
        sleep 0.1
    done
}

# spawn NAME PATTERN LOG CMD... — starts a server in the background, records its pid.
spawn() {
    local name=$1 pattern=$2 logf=$3
    shift 3
    "$@" </dev/null >"$logf" 2>&1 &
    echo "$name $! $pattern" >>"$PIDS"
    LAST_PID=$!
}

install_radicale() {
    # The same Radicale version the test suite is pinned to.
    local spec py=${PYTHON3:-python3}
    spec=$(grep -m1 '^radicale==' tests/requirements.txt 2>/dev/null || echo radicale)
    if [[ -x $VENV/bin/radicale && $(cat "$VENV/.spec" 2>/dev/null) == "$spec" ]]; then
        return 0
    fi
    command -v "$py" >/dev/null || die "$py not found: install Python 3 (or set PYTHON3)"
    log "installing $spec into $VENV (once; log: $DEMO/install.log)"
    rm -rf "$VENV"
    "$py" -m venv "$VENV" >>"$DEMO/install.log" 2>&1 ||
        die "cannot create a venv with $py (on Debian/Ubuntu: apt-get install python3-venv)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$spec" >>"$DEMO/install.log" 2>&1 ||
        die "pip install $spec failed (see $DEMO/install.log)"
    echo "$spec" >"$VENV/.spec"
}

start_radicale() {
    local d=$DEMO/radicale
    mkdir -p "$d"
    printf 'demo:demo\n' >"$d/users"
    write_radicale_conf "$d" "$HOST:$RADICALE_PORT"
    spawn radicale "$d/radicale.conf" "$d/radicale.log" "$VENV/bin/radicale" --config "$d/radicale.conf"
    RADICALE_PID=$LAST_PID
}

start_plane() {
    spawn fake-plane "fake-plane --addr $HOST:$PLANE_PORT" "$DEMO/fake-plane.log" \
        "$FAKE_PLANE" --addr "$HOST:$PLANE_PORT" --projects 3 --items 40 --timeline \
        --api-key demo-token --slug demo
    PLANE_PID=$LAST_PID
}

write_env() {
    cat >"$ENV_FILE" <<EOF
# Written by tests/demo.sh: the fake Plane and the demo Radicale.
PLANE_BASE_URL=http://$HOST:$PLANE_PORT
PLANE_API_TOKEN=demo-token
PLANE_WORKSPACE_SLUG=demo
CALDAV_URL=http://$HOST:$RADICALE_PORT/
CALDAV_USERNAME=demo
CALDAV_PASSWORD=demo
STATE_DIR=$DEMO/state
# Cycles (sprints) and modules as multi-day, read-only events next to the work items.
SYNC_CYCLES=true
SYNC_MODULES=true
EOF
}

# bot ARGS... — runs calplanebot with the demo env file, echoing the command first.
bot() {
    printf '\n$ %s --env-file .tests/demo/demo.env %s\n' "$SHOWN_BOT" "$*"
    "$BOT" --env-file "$ENV_FILE" "$@"
}

# --- the .ics feeds: no CALDAV_URL -----------------------------------------------------

# write_feed_env — feed.env: Plane and a FEED_TOKEN, no CALDAV_*. The token is random on
# every run, as a real one must be: DEMO_FEED_HOST=0.0.0.0 puts the feeds on the network.
write_feed_env() {
    local token
    token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    cat >"$FEED_ENV" <<EOF
# Written by tests/demo.sh: the fake Plane, .ics feeds and no CalDAV server.
PLANE_BASE_URL=http://$HOST:$PLANE_PORT
PLANE_API_TOKEN=demo-token
PLANE_WORKSPACE_SLUG=demo
FEED_TOKEN=$token
HTTP_BIND=$FEED_HOST:$FEED_PORT
SYNC_INTERVAL_SECONDS=60
STATE_DIR=$DEMO/feed-state
SYNC_CYCLES=true
SYNC_MODULES=true
EOF
}

# feed_bot ARGS... — runs calplanebot with feed.env, echoing the command first.
feed_bot() {
    printf '\n$ %s --env-file .tests/demo/feed.env %s\n' "$SHOWN_BOT" "$*"
    "$BOT" --env-file "$FEED_ENV" "$@"
}

# start_feed_service — `calplanebot run` in the background; waits until its first cycle
# has written the feeds (all.ics answers 200 instead of 503).
start_feed_service() {
    local logf=$DEMO/feed-service.log token
    printf '\n$ %s --env-file .tests/demo/feed.env run &    # log: .tests/demo/feed-service.log\n' "$SHOWN_BOT"
    spawn calplanebot "--env-file $FEED_ENV run" "$logf" "$BOT" --env-file "$FEED_ENV" run
    FEED_PID=$LAST_PID
    token=$(sed -n 's/^FEED_TOKEN=//p' "$FEED_ENV")
    wait_status "the feed service" "http://$HOST:$FEED_PORT/calendars/all.ics?token=$token" \
        200 "$FEED_PID" "$logf"
    echo "(pid $FEED_PID; its first cycle has written the feeds)"
}

# wait_status NAME URL CODE PID LOG — polls URL until it answers CODE.
wait_status() {
    local name=$1 url=$2 want=$3 pid=$4 logf=$5 code deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [[ $code != "$want" ]] || return 0
        if ! alive "$pid"; then
            tail -n 20 "$logf" >&2 || true
            die "$name exited during startup (log above: $logf)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$logf" >&2 || true
            die "$name did not answer $want at ${url%%\?*} within ${READY_TIMEOUT}s (last: $code; log: $logf)"
        fi
        sleep 0.1
    done
}

# events FILE — how many events (or to-dos) an .ics file holds.
events() { grep -c -E '^BEGIN:(VEVENT|VTODO)' "$1" || true; }

# show_feeds — fetches every URL `feed-urls` printed, as a calendar app would: the status,
# headers and first event of all.ics, the events per feed (the projects' add up to all.ics),
# and a repeat with If-None-Match, which must be 304.
show_feeds() {
    local urls=$DEMO/feed-urls.txt all line label url code n sum=0 etag
    feed_bot feed-urls | tee "$urls"
    all=$(sed -n 's/^  all projects: //p' "$urls")
    [[ -n $all ]] || die "feed-urls printed no URL for all projects"
    printf '\n$ curl -si "%s"    # headers, then the first event\n' "$all"
    code=$(curl -sS --max-time 10 -D "$DEMO/all.headers" -o "$DEMO/all.ics" -w '%{http_code}' "$all") ||
        die "cannot fetch $all (with DEMO_FEED_HOST=0.0.0.0: does this machine's host name resolve?)"
    [[ $code == 200 ]] || die "GET all.ics: HTTP $code"
    tr -d '\r' <"$DEMO/all.headers" | grep -i -E '^(HTTP/|content-type|content-length|etag|last-modified)'
    echo
    tr -d '\r' <"$DEMO/all.ics" | grep -m1 '^X-WR-CALNAME'
    tr -d '\r' <"$DEMO/all.ics" |
        awk '/^BEGIN:V(EVENT|TODO)/ { on = 1 } on { print } /^END:V(EVENT|TODO)/ && on { exit }'
    echo
    echo "Events per feed:"
    while IFS= read -r line; do
        [[ $line == "  "*": http"* ]] || continue
        label=${line%%: http*}
        label=${label#  }
        url=http${line#*: http}
        curl -sS --max-time 10 -o "$DEMO/one.ics" "$url" || die "cannot fetch the feed of $label"
        n=$(events "$DEMO/one.ics")
        printf '  %-28s %4d\n' "$label" "$n"
        [[ $label == "all projects" ]] || sum=$((sum + n))
    done <"$urls"
    n=$(events "$DEMO/all.ics")
    ((n > 0)) || die "all.ics holds no event"
    ((n == sum)) || die "all.ics holds $n events, the project feeds $sum"
    etag=$(tr -d '\r' <"$DEMO/all.headers" | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
    printf '\n$ curl -s -o /dev/null -w "%%{http_code}" -H '"'"'If-None-Match: %s'"'"' "…/all.ics?token=…"\n' "$etag"
    code=$(curl -s -o /dev/null --max-time 10 -w '%{http_code}' -H "If-None-Match: $etag" "$all")
    echo "$code    (not modified: a calendar app's repeat fetch costs a few bytes and no Plane request)"
    [[ $code == 304 ]] || die "a repeat fetch with If-None-Match answered $code, not 304"
}

# show_timeline — the cycles and modules in all.ics (SYNC_CYCLES, SYNC_MODULES): summary and
# days of each (DTEND is the day after the last day); there must be at least one of each.
show_timeline() {
    local n_cycles n_modules
    echo
    echo "Cycles and modules in all.ics (all-day events; DTEND is the day after the last day):"
    tr -d '\r' <"$DEMO/all.ics" | awk '
        /^BEGIN:VEVENT/ { s = ""; a = ""; b = "" }
        /^SUMMARY:(Cycle|Module): / { s = substr($0, 9) }
        function iso(d) { return substr(d, 1, 4) "-" substr(d, 5, 2) "-" substr(d, 7, 2) }
        /^DTSTART;VALUE=DATE:/ { a = iso(substr($0, 20)) }
        /^DTEND;VALUE=DATE:/ { b = iso(substr($0, 18)) }
        /^END:VEVENT/ && s != "" { printf "  %-28s %s .. %s\n", s, a, b }'
    n_cycles=$(tr -d '\r' <"$DEMO/all.ics" | grep -c '^SUMMARY:Cycle: ' || true)
    n_modules=$(tr -d '\r' <"$DEMO/all.ics" | grep -c '^SUMMARY:Module: ' || true)
    ((n_cycles > 0)) || die "all.ics holds no cycle (SYNC_CYCLES=true)"
    ((n_modules > 0)) || die "all.ics holds no module (SYNC_MODULES=true)"
}

KEEP=0
FEEDS_ONLY=0
for arg in "$@"; do
    case $arg in
    --keep) KEEP=1 ;;
    --feeds) FEEDS_ONLY=1 ;;
    --stop)
        stop_servers
        exit 0
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
done

t0=$SECONDS
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"
command -v curl >/dev/null || die "curl not found: install curl"

# Variables set in the environment win over the env file; a user's real PLANE_*/CALDAV_*
# settings must not leak into the demo.
for v in $(compgen -e); do
    case $v in
    PLANE_* | CALDAV_* | SYNC_* | CALPLANEBOT_* | STATE_DIR | STATE_DIRECTORY | LOG_LEVEL | \
        ITEM_KIND | DATE_MODE | COMPLETED_ITEMS | MAX_DELETE_FRACTION | HTTP_TIMEOUT_SECONDS | \
        FEED_TOKEN* | PUBLIC_URL | HTTP_BIND | LOG_FILE | ENABLE_SYNC | API_TOKEN*)
        log "ignoring $v from your environment"
        unset "$v"
        ;;
    esac
done

if [[ -f $PIDS ]]; then
    log "stopping the servers of an earlier --keep run"
    stop_servers quiet
fi
((FEEDS_ONLY)) || check_port Radicale "$RADICALE_PORT"
check_port "the fake Plane" "$PLANE_PORT"
check_port "the feed service" "$FEED_PORT"

rm -rf "$DEMO"
mkdir -p "$DEMO"

cleanup() {
    local rc=$?
    if ((rc != 0)); then
        log "failed; logs are in $DEMO/"
        stop_servers quiet
    elif ((!KEEP)); then
        stop_servers quiet
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Radicale's install and the Rust build are independent: run them side by side.
pip_pid=
if ((!FEEDS_ONLY)); then
    install_radicale &
    pip_pid=$!
fi
log "building calplanebot and the fake Plane (cargo build)"
cargo build --example fake-plane --bin calplanebot ||
    { [[ -z $pip_pid ]] || wait "$pip_pid" || true; die "cargo build failed"; }
[[ -z $pip_pid ]] || wait "$pip_pid" || exit 1

: >"$PIDS"
((FEEDS_ONLY)) || start_radicale
start_plane
wait_ready "fake Plane" "http://$HOST:$PLANE_PORT/api/v1/users/me/" "$PLANE_PID" "$DEMO/fake-plane.log"
log "fake Plane on http://$HOST:$PLANE_PORT/ (pid $PLANE_PID)"

echo
echo "=== 1. Subscribe without a CalDAV server: .ics feeds (no CALDAV_URL, a FEED_TOKEN) ==="
write_feed_env
feed_bot test-plane
start_feed_service
show_feeds
show_timeline

if ((!FEEDS_ONLY)); then
    wait_ready Radicale "http://$HOST:$RADICALE_PORT/" "$RADICALE_PID" "$DEMO/radicale/radicale.log"
    log "Radicale on http://$HOST:$RADICALE_PORT/ (pid $RADICALE_PID)"
    echo
    echo "=== 2. Two-way sync with a CalDAV server (Radicale) ==="
    write_env
    bot test-plane
    bot test-caldav
    bot --once | tee "$DEMO/once.txt"
    bot list
    # The same work items, two ways: the events --once created and those in all.ics.
    created=$(sed -n 's/^  Created: *\([0-9]*\).*/\1/p' "$DEMO/once.txt")
    n=$(events "$DEMO/all.ics")
    [[ $created == "$n" ]] || die "--once created $created events, all.ics holds $n"
    printf '\nThe feeds of part 1 hold the same %s events that --once wrote to Radicale' "$n"
    printf ' (the cycles and modules among them).\n'
fi

FEED_ALL=$(sed -n 's/^  all projects: //p' "$DEMO/feed-urls.txt")
cat <<EOF

Demo done in $((SECONDS - t0))s.
EOF
if ((KEEP)); then
    cat <<EOF
Running:
  feed service  pid $FEED_PID   http://$FEED_HOST:$FEED_PORT/   log .tests/demo/feed-service.log
  fake Plane    pid $PLANE_PID   http://$HOST:$PLANE_PORT/   log .tests/demo/fake-plane.log
EOF
    ((FEEDS_ONLY)) || cat <<EOF
  Radicale      pid $RADICALE_PID   http://$HOST:$RADICALE_PORT/   log .tests/demo/radicale/radicale.log
EOF
    cat <<EOF

Subscribe to the feed of all projects (or to one of the project URLs above):
  $FEED_ALL
  - Thunderbird: New Calendar… → On the Network → paste the URL (format iCalendar)
  - GNOME Calendar: Add Calendar → paste the URL; Apple Calendar: File → New Calendar
    Subscription; Google Calendar and Outlook need an address they can reach (PUBLIC_URL)
  The feed service re-reads the fake Plane every 60 s (SYNC_INTERVAL_SECONDS in
  .tests/demo/feed.env). Try more commands with its settings:
  $SHOWN_BOT --env-file .tests/demo/feed.env status
  $SHOWN_BOT --env-file .tests/demo/feed.env config
EOF
    if ((FEEDS_ONLY)); then
        cat <<EOF

Stop both with:  tests/demo.sh --stop
EOF
        exit 0
    fi
    cat <<EOF

Look at the calendars:
  - in a browser: http://$HOST:$RADICALE_PORT/ (Radicale's web UI), user demo, password demo
  - in any CalDAV client (Thunderbird, DAVx⁵, GNOME Calendar…): server
    http://$HOST:$RADICALE_PORT/, user demo, password demo

Try more commands with the same settings:
  $SHOWN_BOT --env-file .tests/demo/demo.env sync --dry-run
  $SHOWN_BOT --env-file .tests/demo/demo.env --once
  $SHOWN_BOT --env-file .tests/demo/demo.env sync-status
  $SHOWN_BOT --env-file .tests/demo/demo.env create-event "Dentist" --date $(date +%Y-%m-%d)
  $SHOWN_BOT --env-file .tests/demo/demo.env config
  $SHOWN_BOT --help

Stop all three with:  tests/demo.sh --stop
EOF
else
    again="tests/demo.sh --keep"
    ((!FEEDS_ONLY)) || again="tests/demo.sh --feeds --keep"
    cat <<EOF
Everything is stopped again. To subscribe to the feeds in a calendar app (and with the
CalDAV part, to look at Radicale's calendars) and to try more commands, run:
  $again
EOF
fi
