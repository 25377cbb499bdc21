#!/usr/bin/env python3
"""Table half of tests/bench/targets.sh (stdlib only; prints figures, judges nothing).

  targets_table.py RESULTS ITEMS BIG AARCH64_BINARY BUILD...

RESULTS is the JSON-lines file the run wrote: one record per measured `--once` (from
cycles_bench.py: tag = build, label = initial | idle | dry-run-big | ...) and one "daemon"
record per build (idle RSS, webhook latencies). Prints one row per figure of issue 10's
table, one column per build, and the target beside it; a figure over its target is marked
with "!" so a reader sees at a glance what is still missing.
"""

import json
import os
import sys

MIB = 1024 * 1024


def records(path):
    out = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            out[(r["tag"], r["label"])] = r
    return out


def cpu(r):
    return r["user_s"] + r["sys_s"]


def rows(items, big):
    """(what, value of a build's records or None, text, target, limit) per table row."""
    def cyc(label, f):
        return lambda rec: f(rec[label]) if label in rec else None

    return [
        (f"initial sync of {items} items: wall", cyc("initial", lambda r: r["wall_s"]),
         "{:.1f} s", "server-bound", None),
        ("initial sync: calplanebot CPU", cyc("initial", cpu), "{:.2f} s", "<= 0.6 s", 0.6),
        ("initial sync: CPU per event", cyc("initial", lambda r: cpu(r) * 1e3 / max(1, r["summary"].get("created", 0))),
         "{:.2f} ms", "", None),
        ("initial sync: Radicale's CPU (same run)", cyc("initial", lambda r: r["dav_cpu_s"]),
         "{:.1f} s", "", None),
        ("initial sync: peak RSS", cyc("initial", lambda r: r["maxrss_kib"] * 1024 / 1e6),
         "{:.1f} MB", "<= 8 MB", 8),
        ("no-change cycle: calplanebot CPU", cyc("idle", cpu), "{:.3f} s", "", None),
        (f"--once --dry-run, {big} items: peak RSS",
         cyc("dry-run-big", lambda r: r["maxrss_kib"] * 1024 / 1e6), "{:.1f} MB", "<= 20 MB", 20),
        (f"--once --dry-run, {big} items: CPU", cyc("dry-run-big", cpu), "{:.2f} s", "", None),
        ("webhook -> event in Radicale: p50", cyc("daemon", lambda r: r["webhook_ms"]["p50"]),
         "{:.0f} ms", "< 100 ms", 100),
        ("webhook -> event in Radicale: p90", cyc("daemon", lambda r: r["webhook_ms"]["p90"]),
         "{:.0f} ms", "", None),
        ("idle RSS of `run` after a sync", cyc("daemon", lambda r: r["idle_rss_kib"] / 1024),
         "{:.1f} MiB", "<= 4 MiB", 4),
    ]


def main():
    path, items, big, aarch64, *builds = sys.argv[1:]
    recs = records(path)
    by_build = {b: {label: r for (tag, label), r in recs.items() if tag == b} for b in builds}
    head = ["what"] + [f"x86_64 {b}" for b in builds] + ["target"]
    table = []
    for what, get, fmt, target, limit in rows(items, big):
        cells = []
        for b in builds:
            v = get(by_build[b])
            cell = "-" if v is None else fmt.format(v)
            if v is not None and limit is not None and v > limit:
                cell += " !"
            cells.append(cell)
        table.append([what] + cells + [target])
    if os.path.exists(aarch64):
        size = os.path.getsize(aarch64)
        mark = " !" if size > 1.6e6 else ""
        table.append(["aarch64 static binary"] + [f"{size:,} B{mark}"] + [""] * (len(builds) - 1)
                     + ["<= 1.6 MB"])
    else:
        table.append(["aarch64 static binary"] + ["not built"] + [""] * (len(builds) - 1)
                     + ["<= 1.6 MB"])
    widths = [max(len(r[i]) for r in table + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table:
        print(line(r))
    print("\n(! = over its target)")
    for b in builds:
        r = by_build[b].get("initial")
        if r:
            s = r["summary"]
            print(f"{b}: initial sync created {s.get('created')} events with "
                  f"{s['dav_requests']} CalDAV requests {s['dav_by_method']} and "
                  f"{s['plane_requests']} Plane requests")


if __name__ == "__main__":
    main()
