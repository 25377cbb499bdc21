#!/usr/bin/env bash
# CPU profile of the initial sync: tests/bench/profile.sh   (prints figures; not a test, not CI)
#
# Builds calplanebot with the release flags plus symbols (`[profile.profiling]` in
# Cargo.toml: debug = 1, strip = false, output in target/profiling/, so the release build
# stays warm), starts the fake Plane and a private CalDAV server on free ports, and runs the
# first `calplanebot --once` of PROFILE_ITEMS work items (every item dated, so each becomes
# one calendar object) twice, each time against fresh servers and a fresh state directory:
#   1. timed:     user+sys CPU and peak RSS (GNU time), wall, requests — no profiler running
#   2. profiled:  under `perf record -e cpu-clock --call-graph dwarf` (software clock: the
#                 hardware counters are not available in containers and many VMs), then
#                 the top PROFILE_TOP symbols by self time and by self+children time.
# With PROFILE_CALLGRIND=1 a third run goes under `valgrind --tool=callgrind`: instruction
# counts do not depend on the machine's load, so they compare changes on a busy machine
# better than CPU seconds do (the client runs ~50x slower; the server waits for it).
#
# Environment:
#   PROFILE_ITEMS=500          work items (PROFILE_PROJECTS projects of ITEMS/PROJECTS each)
#   PROFILE_PROJECTS=4
#   PROFILE_SERVER=radicale    radicale (Basic auth) or xandikos (no auth)
#   PROFILE_CYCLE=initial      the cycle measured: initial (creates every object) or update
#                              (after an unmeasured initial sync, PLANE_WEB_URL changes and
#                              `--once --full` reads, merges and rewrites every object)
#   PROFILE_TOP=15             symbols listed per table
#   PROFILE_FREQ=2000          perf samples per second of CPU
#   PROFILE_RUNS=timed,perf    which runs: any of timed, perf, callgrind, strace (comma-
#                              separated; strace counts system calls); PROFILE_CALLGRIND=1
#                              adds callgrind
#   PROFILE_DAV_FSYNC=0        the servers' data lives under /dev/shm, where their fsync is
#                              free: faster runs, the same client CPU (the client only waits
#                              less). 1: under TMPDIR with the rest.
#   PROFILE_VENV=.tests/venv   where radicale/xandikos are installed (tests/servers.sh install)
#   PROFILE_NO_BUILD=1         use the existing binaries
#   PROFILE_BIN=path           profile this calplanebot binary instead (no build; e.g. a copy
#                              of an earlier build, to compare before and after)
#   PROFILE_KEEP=1             keep the temp dir (perf.data, outputs, server logs)
#   PROFILE_DAV_PORT, PROFILE_PLANE_PORT   ports (default: free ones)
# Needs: cargo, curl, python3, perf (for the perf run), valgrind (for callgrind), GNU time.
set -euo pipefail

LOG_TAG=profile
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BOT=${PROFILE_BIN:-$TARGET/profiling/calplanebot}
VENV=${PROFILE_VENV:-$VENV}
ITEMS=${PROFILE_ITEMS:-500}
PROJECTS=${PROFILE_PROJECTS:-4}
SERVER=${PROFILE_SERVER:-radicale}
TOP=${PROFILE_TOP:-15}
FREQ=${PROFILE_FREQ:-2000}
RUNS=${PROFILE_RUNS:-timed,perf}
CYCLE=${PROFILE_CYCLE:-initial}
[[ -n ${PROFILE_CALLGRIND:-} ]] && RUNS+=",callgrind"

[[ $ITEMS =~ ^[1-9][0-9]*$ && $PROJECTS =~ ^[1-9][0-9]*$ ]] ||
    die "PROFILE_ITEMS and PROFILE_PROJECTS must be positive numbers"
((ITEMS >= PROJECTS)) || die "PROFILE_ITEMS ($ITEMS) is fewer than PROFILE_PROJECTS ($PROJECTS)"
[[ $TOP =~ ^[1-9][0-9]*$ && $FREQ =~ ^[1-9][0-9]*$ ]] || die "PROFILE_TOP/PROFILE_FREQ: numbers"
case $SERVER in radicale | xandikos) ;; *) die "PROFILE_SERVER: radicale or xandikos" ;; esac
case $CYCLE in initial | update) ;; *) die "PROFILE_CYCLE: initial or update" ;; esac
for run in ${RUNS//,/ }; do
    case $run in timed | perf | callgrind | strace) ;; *) die "PROFILE_RUNS: unknown run '$run'" ;; esac
done
need_commands cargo curl python3
need_gnu_time
[[ $RUNS != *perf* ]] || command -v perf >/dev/null || die "perf not found (linux-perf)"
[[ $RUNS != *callgrind* ]] || command -v valgrind >/dev/null || die "valgrind not found"
[[ $RUNS != *strace* ]] || command -v strace >/dev/null || die "strace not found"
[[ -x $VENV/bin/$SERVER ]] ||
    die "no $VENV/bin/$SERVER (run tests/servers.sh install, or set PROFILE_VENV)"

BENCH_KEEP=${PROFILE_KEEP:-}
bench_tmp calplanebot-profile
# The servers' data on tmpfs, where their fsync costs nothing (Radicale has no switch for
# it); calplanebot's own state stays on disk under TMP: its fsyncs are part of its CPU.
DAV_DATA=$TMP
if [[ ${PROFILE_DAV_FSYNC:-0} != 1 && -d /dev/shm && -w /dev/shm ]]; then
    DAV_DATA=$(mktemp -d /dev/shm/calplanebot-profile.XXXXXX)
    TMP_DIRS+=("$DAV_DATA")
fi

DAV_PORT=${PROFILE_DAV_PORT:-$(free_port)}
PLANE_PORT=${PROFILE_PLANE_PORT:-$(free_port)}

if [[ -z ${PROFILE_NO_BUILD:-} && -z ${PROFILE_BIN:-} ]]; then
    log "cargo build --profile profiling --bin calplanebot; --release --example fake-plane"
    cargo build -q --profile profiling --bin calplanebot || die "cargo build failed"
    cargo build -q --release --example fake-plane || die "cargo build failed"
fi
[[ -x $BOT && -x $FAKE_PLANE ]] || die "no $BOT or $FAKE_PLANE (unset PROFILE_NO_BUILD)"

# start_servers DIR — a fresh CalDAV server and fake Plane with data under DIR; writes
# DIR/calplanebot.env. Sets DAV_PID, PLANE_PID.
start_servers() {
    local d=$1 per=$((ITEMS / PROJECTS)) dav=$DAV_DATA/${1##*/}-dav
    local login=
    mkdir -p "$d"
    case $SERVER in
    radicale)
        start_radicale "$dav" "$DAV_PORT" "$d/dav.log"
        login=$DAV_USER
        ;;
    xandikos) start_xandikos "$dav" "$DAV_PORT" "$d/dav.log" ;;
    esac
    DAV_PID=$LAST_PID
    start_fake_plane "$d/plane.log" "$PLANE_PORT" "$PROJECTS" "$per" --all-dated
    PLANE_PID=$LAST_PID
    bot_env "$PLANE_PORT" "http://$HOST:$DAV_PORT/" "$login" "$d/state" info >"$d/calplanebot.env"
}

# sync DIR CMD-PREFIX... — the measured `--once` under the given wrapper; output in DIR.
# For PROFILE_CYCLE=update, an unmeasured initial sync comes first, then the browser URL
# changes (PLANE_WEB_URL is in every object's URL and DESCRIPTION), so the measured
# `--once --full` reads, merges and rewrites every object.
sync() {
    local d=$1 t0 rc=0 args=(--once)
    shift
    if [[ $CYCLE == update ]]; then
        env -i PATH="$PATH" "$BOT" --env-file "$d/calplanebot.env" --once \
            >"$d/initial.txt" 2>&1 || { tail -n 20 "$d/initial.txt" >&2; die "initial sync failed"; }
        echo "PLANE_WEB_URL=http://plane.example.invalid" >>"$d/calplanebot.env"
        args+=(--full)
    fi
    t0=$(date +%s.%N)
    env -i PATH="$PATH" "$@" "$BOT" --env-file "$d/calplanebot.env" "${args[@]}" \
        >"$d/out.txt" 2>"$d/err.txt" || rc=$?
    WALL=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" \
        "$t0" "$(date +%s.%N)")
    ((rc == 0)) || { tail -n 20 "$d/err.txt" >&2; die "calplanebot --once exited $rc (see $d)"; }
    grep -E '^\s*(Created|Updated|Requests):' "$d/out.txt" | sed 's/^ */  /'
    stop "$PLANE_PID"
    stop "$DAV_PID"
}

run_timed() {
    local d=$TMP/timed user sys rss
    log "timed run: $ITEMS items against $SERVER"
    start_servers "$d"
    echo "== timed run (no profiler)"
    sync "$d" /usr/bin/time -f '%U %S %M' -o "$d/time.txt" --
    read -r user sys rss < <(tail -n 1 "$d/time.txt")
    printf '  CPU user+sys: %.2f s (user %s, sys %s), peak RSS %s KiB, wall %s s\n' \
        "$(python3 -c "print($user + $sys)")" "$user" "$sys" "$rss" "$WALL"
}

# Frames every sample of the main thread passes through (and the unwinder's end marker):
# left out of the tables, where they would only fill the top of the children list.
ROOT_FRAMES='0xffffffffffffffff| _start$| main$|__libc_start|std::rt::|std::sys::backtrace|'\
'FnOnce::call_once|calplanebot::main$|calplanebot::run$|calplanebot::cmd_|entry_SYSCALL|do_syscall_64'

# top_symbols PERF.DATA --no-children|--children — the top TOP symbols of a perf report
# ([k] marks kernel code; the unwinder's end marker 0xffffffffffffffff is left out). awk,
# not head: an early close would kill perf with SIGPIPE.
top_symbols() {
    perf report -i "$1" "$2" --stdio --sort symbol -g none --percent-limit 0.1 2>/dev/null |
        grep -E '^ +[0-9]+\.[0-9]+%' | sed -E 's/ +\[\.\] / /; s/ +\[k\] / [k] /; s/ +-  +- *$//' |
        grep -vE "$ROOT_FRAMES" | awk -v n="$TOP" 'NR <= n' | cut -c1-160
}

run_perf() {
    local d=$TMP/perf
    log "perf run: $ITEMS items against $SERVER"
    start_servers "$d"
    echo "== perf run (perf record -e cpu-clock -F $FREQ --call-graph dwarf)"
    sync "$d" perf record -q -e cpu-clock -F "$FREQ" --call-graph dwarf,16384 \
        -o "$d/perf.data" --
    echo "  samples: $(perf report -i "$d/perf.data" --stdio -n --no-children --sort dso \
        -g none 2>/dev/null | awk '/^ +[0-9]/ { n += $2 } END { print n }') at $FREQ Hz\
 (wall ${WALL} s)"
    echo "  by binary: $(perf report -i "$d/perf.data" --stdio --no-children --sort dso -g none \
        2>/dev/null | grep -E '^ +[0-9]' | awk '{printf "%s %s  ", $2, $1}')"
    echo "-- top $TOP by self time"
    top_symbols "$d/perf.data" --no-children
    echo "-- top $TOP by self + children (children, self, symbol; without main's frames)"
    top_symbols "$d/perf.data" --children
}

run_strace() {
    local d=$TMP/strace
    log "strace run: $ITEMS items against $SERVER"
    start_servers "$d"
    echo "== strace run (strace -c -f: system calls by count)"
    sync "$d" strace -c -f -S calls -o "$d/strace.txt"
    awk 'NR <= 2 || (/^ *[0-9]/ && n++ < '"$TOP"') || /total/' "$d/strace.txt" | cut -c1-100
}

run_callgrind() {
    local d=$TMP/callgrind
    log "callgrind run: $ITEMS items against $SERVER (slow)"
    start_servers "$d"
    echo "== callgrind run"
    sync "$d" valgrind --tool=callgrind --callgrind-out-file="$d/callgrind.out" -q
    echo "  instructions: $(callgrind_annotate "$d/callgrind.out" 2>/dev/null |
        sed -nE 's/^ *([0-9,]+) .*PROGRAM TOTALS.*/\1/p')"
    echo "-- top $TOP by self instructions"
    callgrind_annotate --threshold=100 "$d/callgrind.out" 2>/dev/null |
        grep -E '^ *[0-9,]+ \([ 0-9.]+%\) ' | awk -v n="$TOP" 'NR <= n' |
        sed -E 's#[^ ]*/(rustlib/src/rust/library|registry/src/[^/]+)/##' | cut -c1-150
    echo "-- top $TOP by inclusive instructions (without main's frames)"
    callgrind_annotate --inclusive=yes --threshold=100 "$d/callgrind.out" 2>/dev/null |
        grep -E '^ *[0-9,]+ \([ 0-9.]+%\) ' |
        grep -vE "$ROOT_FRAMES|PROGRAM TOTALS|below main|ld-linux|:main \[|calplanebot::(main|run) \[" | awk -v n="$TOP" 'NR <= n' |
        sed -E 's#[^ ]*/(rustlib/src/rust/library|registry/src/[^/]+)/##' | cut -c1-150
}

echo "calplanebot initial-sync profile — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs"
echo "  binary: $BOT, $(stat -c %s "$BOT") bytes (with symbols), \
$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
echo "  $ITEMS work items in $PROJECTS projects against $SERVER, COMPLETED_ITEMS=keep, $CYCLE cycle"
for run in ${RUNS//,/ }; do "run_$run"; done
