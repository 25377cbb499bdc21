#!/usr/bin/env python3
"""Measuring half of tests/bench/cycles.sh (stdlib only; not a test, prints figures).

  cycles_bench.py cycle RESULTS LABEL -- CMD...
      Runs one `calplanebot --once` (CMD) with an empty environment but PATH (its settings
      come from --env-file, so the caller's PLANE_*/CALDAV_* cannot leak in) and appends one
      JSON line to RESULTS: wall seconds, the child's user/sys CPU (wait4 rusage), its peak
      RSS (GNU time's %M, see below), its summary ("Requests:" line by method, created/updated/… counts), the
      requests the fake Plane and the CalDAV server logged meanwhile (by method, and the
      request lines themselves), and the CalDAV server's and the fake's CPU meanwhile.
      Fails if calplanebot fails. Settings from the environment:
        BENCH_CYCLE_DIR  where LABEL.out / LABEL.err go (calplanebot's stdout, stderr)
        BENCH_PLANE_LOG  the fake's --verbose log     BENCH_PLANE_PID  its pid
        BENCH_DAV_LOG    the CalDAV server's log      BENCH_DAV_PID    its pid
        BENCH_PERF=1     wrap CMD in `perf stat -e instructions:u` (only when supported)
        BENCH_TAG        copied into the record (size and server, for the table)
  cycles_bench.py pick PLANE_URL SLUG API_KEY
      Picks two open, dated work items of one project (the first that has two on its
      first page): one to rename in Plane, one whose event is moved in the calendar.
      Prints them as JSON.
  cycles_bench.py rename PLANE_URL SLUG API_KEY PROJECT_ID ITEM_ID NAME
      Renames a work item through the fake's REST API (PATCH), like a Plane user.
  cycles_bench.py table RESULTS
      Prints the compact table of every record in RESULTS, then the checks against the
      target (idle cycle: one Plane request per project, at most one CalDAV request per
      calendar, no writes, milliseconds of CPU) and the idle cycles' request lines.

Why Python: wait4() gives the child's CPU with microsecond resolution, and the log
bookkeeping is easier than in bash. Why /usr/bin/time for the peak RSS: Linux keeps a
process's high-water RSS across execve, so a child forked from Python reports Python's
~15-20 MiB however little calplanebot uses; GNU time is a small C process, so its child's
figure is calplanebot's own (at least time's ~2 MiB). wait4 CPU includes time's own
(well under a millisecond).
"""

import datetime
import http.client
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse

# Writes, by side: what an idle cycle must not send.
DAV_WRITES = ("PUT", "DELETE", "MKCALENDAR", "MOVE", "PROPPATCH")
PLANE_WRITES = ("PATCH", "POST", "PUT", "DELETE")

# "Milliseconds of CPU" for an idle cycle, made a number: process start, config, journal
# replay and a few small requests fit well under this.
CPU_TARGET_MS = 100

# One request line in the server logs: Radicale's "PUT request for '/x/'" or an access-log
# line '"PUT /x/ HTTP/1.1"' (Xandikos/aiohttp); the fake's --verbose "PUT /x/?q -> 200".
RADICALE_RE = re.compile(r"\] (\w+) request for '([^']*)'")
ACCESS_RE = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+"')
FAKE_RE = re.compile(r"^(\w+) (\S+) -> (\d+)$")


def die(msg):
    print(f"cycles_bench.py: ERROR: {msg}", file=sys.stderr)
    sys.exit(1)


def cpu_seconds(pid):
    """utime + stime of a running process, in seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_size(path):
    return os.path.getsize(path) if path and os.path.exists(path) else 0


def read_from(path, offset):
    """The text appended to a log since `offset` (bytes)."""
    if not path:
        return ""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def count(methods):
    out = {}
    for m in methods:
        out[m] = out.get(m, 0) + 1
    return dict(sorted(out.items()))


def dav_requests(text):
    """[(method, path)] of the CalDAV server's log lines."""
    out = []
    for line in text.splitlines():
        m = RADICALE_RE.search(line) or ACCESS_RE.search(line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def plane_requests(text):
    """[(method, path with query, status)] of the fake's --verbose lines."""
    out = []
    for line in text.splitlines():
        m = FAKE_RE.match(line.strip())
        if m:
            out.append((m.group(1), m.group(2), int(m.group(3))))
    return out


def parse_summary(stdout):
    """calplanebot's `--once` summary as a dict (missing lines stay missing)."""
    s = {}
    for key in ("Projects", "Created", "Updated", "Skipped", "Unchanged", "Conflicts", "Errors"):
        m = re.search(rf"^\s*{key}:\s+(\d+)", stdout, re.M)
        if m:
            s[key.lower()] = int(m.group(1))
    m = re.search(r"^\s*Deleted:\s+(\d+)", stdout, re.M)
    if m:
        s["deleted"] = int(m.group(1))
    m = re.search(r"To Plane:\s+(\d+) updated, (\d+) created", stdout)
    if m:
        s["to_plane_updated"], s["to_plane_created"] = int(m.group(1)), int(m.group(2))
    m = re.search(r"Requests:\s+Plane (\d+), CalDAV (\d+) \(([^)]*)\)", stdout)
    if not m:
        die(f"no 'Requests:' line in calplanebot's output:\n{stdout}")
    s["plane_requests"] = int(m.group(1))
    s["dav_requests"] = int(m.group(2))
    s["dav_by_method"] = {
        k: int(v) for k, v in (p.rsplit(" ", 1) for p in m.group(3).split(", ") if p)
    }
    return s


def peak_rss(path):
    """KiB from GNU time's `-f %M` output (its last line: earlier ones may be warnings)."""
    try:
        with open(path) as f:
            return int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        die(f"no peak RSS in {path} (GNU time's output)")


def perf_instructions(path):
    """instructions:u out of `perf stat -x,` output, or None."""
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[2].startswith("instructions") and parts[0].isdigit():
                    return int(parts[0])
    except OSError:
        pass
    return None


def cycle(results, label, cmd):
    env = os.environ
    outdir = env["BENCH_CYCLE_DIR"]
    plane_log, dav_log = env.get("BENCH_PLANE_LOG"), env.get("BENCH_DAV_LOG")
    plane_pid, dav_pid = env.get("BENCH_PLANE_PID"), env.get("BENCH_DAV_PID")
    perf_out = os.path.join(outdir, f"{label}.perf")
    rss_out = os.path.join(outdir, f"{label}.rss")
    cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_out, "--"] + cmd
    if env.get("BENCH_PERF") == "1":
        # Outside time: perf's own memory must not count as calplanebot's.
        cmd = ["perf", "stat", "-x,", "-e", "instructions:u", "-o", perf_out, "--"] + cmd
    p0, d0 = log_size(plane_log), log_size(dav_log)
    plane_cpu0 = cpu_seconds(plane_pid) if plane_pid else 0.0
    dav_cpu0 = cpu_seconds(dav_pid) if dav_pid else 0.0
    out_path = os.path.join(outdir, f"{label}.out")
    err_path = os.path.join(outdir, f"{label}.err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        child = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env={"PATH": env["PATH"]}
        )
        _, status, ru = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen quiet
    stdout = open(out_path, encoding="utf-8", errors="replace").read()
    if child.returncode != 0:
        tail = open(err_path, encoding="utf-8", errors="replace").read()[-3000:]
        die(f"{label}: calplanebot exited {child.returncode}\n{stdout}\n{tail}")
    plane = plane_requests(read_from(plane_log, p0))
    dav = dav_requests(read_from(dav_log, d0))
    rec = {
        "tag": env.get("BENCH_TAG", ""),
        "label": label,
        "wall_s": wall,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "maxrss_kib": peak_rss(rss_out),
        "instructions": perf_instructions(perf_out) if env.get("BENCH_PERF") == "1" else None,
        "summary": parse_summary(stdout),
        "plane_log": count(m for m, _, _ in plane),
        "plane_lines": [f"{m} {p} -> {s}" for m, p, s in plane],
        "dav_log": count(m for m, _ in dav),
        "dav_lines": [f"{m} {p}" for m, p in dav],
        "plane_cpu_s": (cpu_seconds(plane_pid) - plane_cpu0) if plane_pid else None,
        "dav_cpu_s": (cpu_seconds(dav_pid) - dav_cpu0) if dav_pid else None,
    }
    with open(results, "a") as f:
        f.write(json.dumps(rec) + "\n")
    s = rec["summary"]
    print(
        f"bench: {rec['tag']} {label}: {wall:.2f} s wall, "
        f"{(ru.ru_utime + ru.ru_stime) * 1000:.0f} ms CPU, "
        f"Plane {s['plane_requests']}, CalDAV {s['dav_requests']} {s['dav_by_method']}",
        file=sys.stderr,
    )


class Plane:
    """The fake Plane's REST API over one keep-alive connection."""

    def __init__(self, base, slug, key):
        u = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.api = f"/api/v1/workspaces/{slug}"
        self.headers = {"X-API-Key": key, "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        self.conn.request(method, self.api + path, body=body, headers=self.headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            die(f"fake Plane: {method} {path}: HTTP {r.status} {data[:200]!r}")
        return json.loads(data)


def pick(base, slug, key):
    plane = Plane(base, slug, key)
    for project in plane.call("GET", "/projects/")["results"]:
        path = f"/projects/{project['id']}/work-items/?expand=state&per_page=100"
        open_dated = [
            i
            for i in plane.call("GET", path)["results"]
            if i.get("target_date") and i["state"]["group"] not in ("completed", "cancelled")
        ]
        if len(open_dated) >= 2:
            break
    else:
        die("no project has 2 open dated work items on its first page (workspace too small?)")
    rename, move = open_dated[0], open_dated[1]
    moved_to = datetime.date.fromisoformat(move["target_date"]) + datetime.timedelta(days=7)
    print(
        json.dumps(
            {
                "project": project["id"],
                "identifier": project["identifier"],
                "rename": rename["id"],
                "move": move["id"],
                "move_to": moved_to.isoformat(),
            }
        )
    )


def rename(base, slug, key, project, item, name):
    body = json.dumps({"name": name})
    Plane(base, slug, key).call("PATCH", f"/projects/{project}/work-items/{item}/", body)


def fmt_methods(d):
    return " ".join(f"{m} {n}" for m, n in d.items()) or "-"


def writes(r):
    """Writes of one cycle as the servers saw them: (CalDAV writes, Plane writes)."""
    dav = sum(n for m, n in r["dav_log"].items() if m in DAV_WRITES)
    plane = sum(n for m, n in r["plane_log"].items() if m in PLANE_WRITES)
    return dav, plane


def table(path):
    recs = [json.loads(line) for line in open(path) if line.strip()]
    if not recs:
        die(f"no records in {path}")
    head = (
        f"{'run':<16} {'cycle':<18} {'wall s':>8} {'CPU ms':>8} {'RSS MiB':>7}"
        f" {'Plane req':<18} {'CalDAV req (method n)':<36} {'srv CPU s':>9}  result"
    )
    print(head)
    print("-" * len(head))
    tag = None
    for r in recs:
        if r["tag"] != tag and tag is not None:
            print()
        tag = r["tag"]
        s = r["summary"]
        cpu_ms = (r["user_s"] + r["sys_s"]) * 1000
        plane = f"{s['plane_requests']} ({fmt_methods(r['plane_log'])})"
        dav = f"{s['dav_requests']} ({fmt_methods(s['dav_by_method'])})"
        result = (
            f"+{s.get('created', 0)} ~{s.get('updated', 0)} -{s.get('deleted', 0)}"
            f" ={s.get('unchanged', 0)}; to Plane {s.get('to_plane_updated', 0)}"
        )
        if s.get("errors"):
            result += f"; {s['errors']} errors"
        if r.get("instructions"):
            result += f"; {r['instructions'] / 1e6:.1f} M instr"
        srv = r["dav_cpu_s"]
        print(
            f"{r['tag']:<16} {r['label']:<18} {r['wall_s']:>8.3f} {cpu_ms:>8.0f}"
            f" {r['maxrss_kib'] / 1024:>7.1f} {plane:<18} {dav:<36}"
            f" {srv if srv is not None else float('nan'):>9.2f}  {result}"
        )
    print()
    print("CPU ms = calplanebot user+sys; RSS = its peak; Plane req = calplanebot's count")
    print("(methods as the fake logged them); srv CPU = the CalDAV server's CPU meanwhile.")
    print("result: +created ~updated -deleted =unchanged calendar objects; to Plane = PATCHes.")
    checks(recs)


def checks(recs):
    """The target, checked per run: an idle cycle costs at most one Plane request per
    project and one CalDAV request per calendar, writes nothing, takes milliseconds of CPU;
    the move cycle sends exactly one PATCH."""
    print()
    print(
        "Checks (target for an idle cycle: <= 1 Plane request per project, <= 1 CalDAV"
        f" request per calendar, 0 writes, CPU < {CPU_TARGET_MS} ms):"
    )
    by_tag = {}
    for r in recs:
        by_tag.setdefault(r["tag"], {})[r["label"]] = r
    for tag, rs in by_tag.items():
        for label in ("idle-first", "idle-steady"):
            if label in rs:
                check_idle(f"{tag} {label}", rs[label])
        if "move-in-calendar" in rs:
            check_move(f"{tag} move-in-calendar", rs["move-in-calendar"])


def check_idle(name, r):
    """Prints the verdict of one idle cycle and its requests as the servers logged them."""
    s = r["summary"]
    limit = s["projects"]  # one calendar per project, too
    dav_w, plane_w = writes(r)
    cpu_ms = (r["user_s"] + r["sys_s"]) * 1000
    conditions = (
        (f"Plane {s['plane_requests']} > {limit}", s["plane_requests"] <= limit),
        (f"CalDAV {s['dav_requests']} > {limit}", s["dav_requests"] <= limit),
        (f"{dav_w + plane_w} writes", dav_w + plane_w == 0),
        (f"CPU {cpu_ms:.0f} ms >= {CPU_TARGET_MS} ms", cpu_ms < CPU_TARGET_MS),
    )
    misses = [what for what, ok in conditions if not ok]
    verdict = f"MISSES the target: {'; '.join(misses)}" if misses else "meets the target"
    print(
        f"  {name}: Plane {s['plane_requests']}, CalDAV {s['dav_requests']},"
        f" writes {dav_w + plane_w}, CPU {cpu_ms:.0f} ms -> {verdict}"
    )
    for line in r["plane_lines"]:
        print(f"      Plane  {shorten(line)}")
    for line in r["dav_lines"]:
        print(f"      CalDAV {line}")


def check_move(name, r):
    """The calendar edit must reach Plane as exactly one PATCH, seen by both ends."""
    patches = r["plane_log"].get("PATCH", 0)
    told = r["summary"].get("to_plane_updated")
    verdict = "OK" if patches == 1 and told == 1 else "UNEXPECTED"
    print(
        f"  {name}: fake Plane saw {patches} PATCH,"
        f" calplanebot says 'To Plane: {told} updated' -> {verdict}"
    )


def shorten(line):
    """A fake log line with UUIDs cut to 8 characters (the table stays readable)."""
    return re.sub(r"([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", r"\1…", line)


def main():
    a = sys.argv[1:]
    if len(a) >= 5 and a[0] == "cycle" and a[3] == "--":
        cycle(a[1], a[2], a[4:])
    elif len(a) == 4 and a[0] == "pick":
        pick(*a[1:])
    elif len(a) == 7 and a[0] == "rename":
        rename(*a[1:])
    elif len(a) == 2 and a[0] == "table":
        table(a[1])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
