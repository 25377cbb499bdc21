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

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BOT=$TARGET/release/calplanebot
ITEMS=${BENCH_ITEMS:-10000}
PROJECTS=4

[[ $ITEMS =~ ^[1-9][0-9]*$ ]] && ((ITEMS >= PROJECTS)) || die "BENCH_ITEMS must be a number >= $PROJECTS"
need_gnu_time
[[ -x $VENV/bin/radicale ]] || die "no Radicale in $VENV (tests/servers.sh install)"

bench_tmp calplanebot-memory
build_release

DAV_PORT=$(free_port)
PLANE_PORT=$(free_port)
start_radicale "$TMP/radicale" "$DAV_PORT" "$TMP/radicale.log"
start_fake_plane "$TMP/plane.log" "$PLANE_PORT" "$PROJECTS" $((ITEMS / PROJECTS)) --all-dated

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

bot_env "$PLANE_PORT" "http://$HOST:$DAV_PORT/" "$DAV_USER" "$TMP/state" warn >"$TMP/env"

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
