#!/usr/bin/env bash
# Journal benchmark: tests/bench/journal.sh   (prints figures; not a test, not run by CI)
#
# What the state journal costs an initial sync: `calplanebot --once` creates
# BENCH_ITEMS events (BENCH_PROJECTS projects, every item dated) in a private Xandikos, from
# the fake Plane, twice per binary: once under `strace -f -c` for the fsync/fdatasync and
# write(2) counts, once under GNU time for calplanebot's CPU (user+sys) and peak RSS
# (strace inflates CPU). Each run starts from an empty state directory and a new
# calendar home. Then it times `sync-status` (a replay of the journal and nothing else) on
# a journal of BENCH_REPLAY_ITEMS items, built by the same binary from a synthetic
# journal.
#
# BENCH_BOTS="path1 path2"  binaries to compare (default: this checkout's release build);
#                           e.g. the previous build copied aside, then the new one
# BENCH_ITEMS=1000 BENCH_PROJECTS=2 BENCH_REPLAY_ITEMS=10000 BENCH_REPEAT=3
# BENCH_NO_BUILD=1          use the existing release binaries
# BENCH_VENV=.tests/venv    where xandikos is (tests/servers.sh install)
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BOTS=${BENCH_BOTS:-$TARGET/release/calplanebot}
VENV=${BENCH_VENV:-$VENV}
ITEMS=${BENCH_ITEMS:-1000}
PROJECTS=${BENCH_PROJECTS:-2}
REPLAY_ITEMS=${BENCH_REPLAY_ITEMS:-10000}
REPEAT=${BENCH_REPEAT:-3}

need_commands cargo curl python3 strace
need_gnu_time
[[ -x $VENV/bin/xandikos ]] || die "no xandikos in $VENV (tests/servers.sh install, or set BENCH_VENV)"

bench_tmp calplanebot-journal
build_release
for b in $BOTS; do [[ -x $b ]] || die "no binary $b"; done

DAV_PORT=$(free_port)
PLANE_PORT=$(free_port)
DAV_PID=
# fresh_dav DIR — a new, empty Xandikos for one run (the previous one is stopped), so
# every run creates every event.
fresh_dav() {
    [[ -z $DAV_PID ]] || stop "$DAV_PID"
    start_xandikos "$1/dav" "$DAV_PORT" "$1/dav.log"
    DAV_PID=$LAST_PID
}
start_fake_plane "$TMP/plane.log" "$PLANE_PORT" "$PROJECTS" "$((ITEMS / PROJECTS))" --all-dated

# env_for DIR — settings of one run, with its own state directory and CalDAV server.
RUNS=0
env_for() {
    RUNS=$((RUNS + 1))
    mkdir -p "$1"
    fresh_dav "$1"
    bot_env "$PLANE_PORT" "http://$HOST:$DAV_PORT/" "" "$1/state" warn >"$1/env"
}

# count NAME FILE — calls of one syscall in an `strace -c` summary.
count() { awk -v n="$2" '$NF == n && !c { c = $4 } END { print c + 0 }' "$1"; }

printf '\n%-44s %8s %8s %8s %8s %9s %8s\n' binary created fsyncs writes "CPU s" "wall s" "RSS MB"
for bot in $BOTS; do
    d=$TMP/strace-$RUNS
    env_for "$d"
    strace -f -c -o "$d/strace" -e trace=fdatasync,fsync,write \
        "$bot" --env-file "$d/env" --once >"$d/out" 2>"$d/err" || die "$bot failed: $d/err"
    created=$(awk '/Created:/ { print $2 }' "$d/out")
    syncs=$(($(count "$d/strace" fdatasync) + $(count "$d/strace" fsync)))
    writes=$(count "$d/strace" write)
    for ((r = 1; r <= REPEAT; r++)); do
        d=$TMP/time-$RUNS
        env_for "$d"
        /usr/bin/time -f '%U %S %e %M' -o "$d/time" \
            "$bot" --env-file "$d/env" --once >"$d/out" 2>"$d/err" || die "$bot failed: $d/err"
        read -r user sys wall rss <"$d/time"
        printf '%-44s %8s %8s %8s %8.2f %9.1f %8.1f\n' "$bot" \
            "$(awk '/Created:/ { print $2 }' "$d/out")" "${syncs:-0}" "${writes:-0}" \
            "$(echo "$user + $sys" | bc)" "$wall" "$(echo "$rss / 1024" | bc -l)"
    done
    log "$bot: $created created under strace"
done

# --- replay: sync-status on a journal of REPLAY_ITEMS items -------------------------------
J=$TMP/replay/state
mkdir -p "$J"
python3 - "$J/state.jsonl" "$REPLAY_ITEMS" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    f.write('{"t":"header","format":1,"app":"calplanebot"}\n')
    f.write(json.dumps({"t": "cal", "project": "p1", "href": "/cal/plane-bench/",
                        "ctag": "c", "sync_token": "http://x/sync/1"}) + "\n")
    for i in range(n):
        uid = f"plane-issue-{i:08d}-0000-0000-0000-000000000000@calplanebot"
        f.write(json.dumps({"t": "item", "uid": uid, "work_item": uid[12:48],
            "project": "p1", "href": f"/cal/plane-bench/{uid}.ics", "etag": f'"{i:x}-etag"',
            "plane_updated_at": "2026-05-01T10:11:12.123456Z", "sequence": 1,
            "shadow": {"name": f"Work item number {i} with a name", "start_date": None,
                       "target_date": "2026-06-01", "state_group": "started",
                       "content_hash": "ab" * 32},
            "sent_to_plane": None, "sent_to_calendar": None}, separators=(",", ":")) + "\n")
PY
bot_env "$PLANE_PORT" "http://$HOST:$DAV_PORT/" "" "$J" warn >"$TMP/replay/env"
printf '\nsync-status on a journal of %s items (%s bytes), CPU s (user+sys), best of %s\n' \
    "$REPLAY_ITEMS" "$(stat -c %s "$J/state.jsonl")" "$REPEAT"
for bot in $BOTS; do
    best=
    for ((r = 1; r <= REPEAT; r++)); do
        /usr/bin/time -f '%U %S %M' -o "$TMP/replay/time" \
            "$bot" --env-file "$TMP/replay/env" sync-status >/dev/null 2>&1 || die "sync-status failed"
        read -r user sys rss <"$TMP/replay/time"
        cpu=$(echo "$user + $sys" | bc)
        if [[ -z $best ]] || (($(echo "$cpu < $best" | bc))); then best=$cpu; fi
    done
    printf '%-44s %8.2f s  %6.1f MB\n' "$bot" "$best" "$(echo "$rss / 1024" | bc -l)"
done
