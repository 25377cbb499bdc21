#!/usr/bin/env bash
# Memory benchmark: tests/bench/memory.sh   (prints figures; not a test, not run by CI)
#
# Peak RSS of `calplanebot --once --dry-run` (release build) for a workspace of
# BENCH_ITEMS work items in 4 projects, every item dated, against empty calendars in a
# Radicale of its own: the plan is BENCH_ITEMS creates and nothing is written, so the
# figure is the client's planning memory (Plane pages, rendered fields, the plan) without
# waiting for a server to store thousands of objects. With BENCH_DHAT=1 it also runs the
# same cycle under `valgrind --tool=dhat` (load-independent) and prints the allocation
# sites that hold the most at the heap's peak, grouped by the first calplanebot frames
# (build with symbols for readable names:
#   CARGO_PROFILE_RELEASE_DEBUG=1 CARGO_PROFILE_RELEASE_STRIP=false).
# The real initial sync and idle cycles are measured by tests/bench/cycles.sh.
#
# Environment:
#   BENCH_ITEMS=10000   work items (4 projects of BENCH_ITEMS/4)
#   BENCH_DHAT=1        also profile with DHAT (needs valgrind)
#   BENCH_NO_BUILD=1    use the existing release binaries
#   BENCH_KEEP=1        keep the temp dir
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HOST=127.0.0.1
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BOT=$TARGET/release/calplanebot
FAKE_PLANE=$TARGET/release/examples/fake-plane
VENV=$ROOT/.tests/venv
ITEMS=${BENCH_ITEMS:-10000}
PROJECTS=4
API_KEY=bench-api-key
SLUG=bench
DAV_USER=bench

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# shellcheck source=../lib.sh
. "$ROOT/tests/lib.sh"

[[ $ITEMS =~ ^[1-9][0-9]*$ ]] && ((ITEMS >= PROJECTS)) || die "BENCH_ITEMS must be a number >= $PROJECTS"
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is needed for the peak RSS"
[[ -x $VENV/bin/radicale ]] || die "no Radicale in $VENV (tests/servers.sh install)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/calplanebot-memory.XXXXXX")
# shellcheck source=lib.sh
. "$ROOT/tests/bench/lib.sh"

if [[ -z ${BENCH_NO_BUILD:-} ]]; then
    log "cargo build --release --bin calplanebot --example fake-plane"
    cargo build -q --release --bin calplanebot --example fake-plane || die "cargo build failed"
fi

DAV_PORT=$(free_port)
PLANE_PORT=$(free_port)
mkdir -p "$TMP/radicale"
printf '%s:%s\n' "$DAV_USER" "$DAV_USER" >"$TMP/radicale/users"
write_radicale_conf "$TMP/radicale" "$HOST:$DAV_PORT"
spawn "$TMP/radicale.log" "$VENV/bin/radicale" --config "$TMP/radicale/radicale.conf"
wait_http Radicale "http://$HOST:$DAV_PORT/" "$LAST_PID" "$TMP/radicale.log"
spawn "$TMP/plane.log" "$FAKE_PLANE" --addr "$HOST:$PLANE_PORT" --projects "$PROJECTS" \
    --items $((ITEMS / PROJECTS)) --api-key "$API_KEY" --slug "$SLUG" --rate-limit 1000000 --all-dated
wait_http "fake Plane" "http://$HOST:$PLANE_PORT/api/v1/users/me/" "$LAST_PID" "$TMP/plane.log"

# Empty calendars named as calplanebot names them, so the dry run plans every create.
curl -s -H "X-API-Key: $API_KEY" "http://$HOST:$PLANE_PORT/api/v1/workspaces/$SLUG/projects/" |
    python3 -c '
import json, sys
from xml.sax.saxutils import escape
for i, p in enumerate(json.load(sys.stdin)["results"]):
    name = escape(p["name"])
    print(f"cal{i}\tPlane: {name}")' >"$TMP/calendars" || die "could not list the fake projects"
while IFS=$'\t' read -r slug name; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -u "$DAV_USER:$DAV_USER" -X MKCALENDAR \
        -H 'Content-Type: application/xml' "http://$HOST:$DAV_PORT/$DAV_USER/$slug/" \
        --data "<?xml version=\"1.0\"?><C:mkcalendar xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\"><D:set><D:prop><D:displayname>$name</D:displayname></D:prop></D:set></C:mkcalendar>")
    [[ $code == 201 ]] || die "MKCALENDAR $slug answered $code"
done <"$TMP/calendars"

cat >"$TMP/env" <<ENV
PLANE_BASE_URL=http://$HOST:$PLANE_PORT
PLANE_API_TOKEN=$API_KEY
PLANE_WORKSPACE_SLUG=$SLUG
CALDAV_URL=http://$HOST:$DAV_PORT/
CALDAV_USERNAME=$DAV_USER
CALDAV_PASSWORD=$DAV_USER
STATE_DIR=$TMP/state
COMPLETED_ITEMS=keep
HTTP_BIND=
LOG_LEVEL=warn
ENV

for run in 1 2 3; do
    rm -rf "$TMP/state"
    /usr/bin/time -f '%M %U %S' -o "$TMP/time" "$BOT" --env-file "$TMP/env" --once --dry-run >"$TMP/out" 2>&1 ||
        die "the dry run failed: $(tail -n 5 "$TMP/out")"
    planned=$(grep -c ': + create' "$TMP/out" || true)
    read -r kib user sys <"$TMP/time"
    printf 'dry run of %d items, run %d: peak RSS %.1f MiB, CPU %s s user + %s s sys, %d creates planned\n' \
        "$ITEMS" "$run" "$(echo "$kib / 1024" | bc -l)" "$user" "$sys" "$planned"
done

if [[ -n ${BENCH_DHAT:-} ]]; then
    command -v valgrind >/dev/null || die "BENCH_DHAT needs valgrind"
    rm -rf "$TMP/state"
    valgrind --tool=dhat --dhat-out-file="$TMP/dhat.json" "$BOT" --env-file "$TMP/env" \
        --once --dry-run >/dev/null 2>"$TMP/dhat.log" || die "valgrind failed: $(tail -n 5 "$TMP/dhat.log")"
    grep -E 't-gmax' "$TMP/dhat.log" | sed 's/^==[0-9]*== /dhat: /'
    python3 - "$TMP/dhat.json" <<'PY'
import collections, json, re, sys
d = json.load(open(sys.argv[1]))
def name(i):
    m = re.search(r": (.*) \((?:[^()]*/)?([^/()]+:\d+)", d["ftbl"][i])
    return f"{m.group(1)[:80]} @{m.group(2)}" if m else d["ftbl"][i][:90]
held, blocks = collections.Counter(), collections.Counter()
for pp in d["pps"]:
    if pp.get("gb"):
        frames = [name(i) for i in pp["fs"]]
        ours = [f for f in frames if "calplanebot" in f] or frames[1:3]
        key = " <- ".join(ours[:2])
        held[key] += pp["gb"]
        blocks[key] += pp.get("gbk", 0)
total = sum(held.values())
print(f"heap at its peak: {total:,} B; the sites holding most:")
for k, v in held.most_common(15):
    print(f"{v:>11,} B {blocks[k]:>7,} blocks {100 * v / total:5.1f}%  {k}")
PY
fi
