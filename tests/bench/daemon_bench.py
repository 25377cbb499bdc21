#!/usr/bin/env python3
"""Timing half of tests/bench/daemon.sh (stdlib only; not a test, prints figures).

  daemon_bench.py wait-cycle METRICS_URL TIMEOUT
      Polls the daemon's /api/v1/metrics until "cycles" >= 1; prints the metrics JSON.
  daemon_bench.py latency
      The webhook -> event-visible loop. Settings come from the environment (BENCH_*,
      see daemon.sh); prints a human summary on stderr and one JSON object on stdout.
  daemon_bench.py feeds URL_ALL URL_PROJECT
      Feed fetch latency: BENCH_FEED_FETCHES fetches each of a project's .ics feed and of
      all.ics, then as many repeats of all.ics with If-None-Match (304), each on a new
      connection as a calendar app's poll is; daemon CPU per fetch (BENCH_DAEMON_PID).
      One JSON object on stdout.
  daemon_bench.py smaps PID BINARY
      Where a process's resident memory is, from /proc/PID/smaps: one JSON object of
      KiB (Rss) by kind of mapping (see smaps()).

Why Python: the loop needs a persistent HTTP connection, HMAC signing and sub-millisecond
timestamps (time.perf_counter), which bash + curl cannot give without a fork per poll.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse


def die(msg):
    print(f"daemon_bench.py: ERROR: {msg}", file=sys.stderr)
    sys.exit(1)


class Conn:
    """One keep-alive connection; http.client reopens it when the server closed it."""

    def __init__(self, base, headers=None):
        u = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.headers = headers or {}

    def request(self, method, path, body=None, headers=None):
        h = dict(self.headers)
        h.update(headers or {})
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close" or r.version == 10:
                    self.conn.close()
                return r.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server dropped between requests: retry once.
                self.conn.close()
                if attempt == 2:
                    raise


def pct(sorted_ms, p):
    """Nearest-rank percentile (p in 0..100) of an ascending list."""
    k = max(1, -(-len(sorted_ms) * p // 100))  # ceil
    return sorted_ms[min(k, len(sorted_ms)) - 1]


def stats(ms):
    s = sorted(ms)
    return {
        "n": len(s),
        "p50": pct(s, 50),
        "p90": pct(s, 90),
        "p99": pct(s, 99),
        "max": s[-1],
        "min": s[0],
        "mean": statistics.fmean(s),
    }


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_cycle(url, timeout):
    conn = Conn(url)
    path = urllib.parse.urlsplit(url).path
    deadline = time.monotonic() + timeout
    while True:
        try:
            code, body = conn.request("GET", path)
            if code == 200:
                m = json.loads(body)
                if m.get("cycles", 0) >= 1:
                    print(json.dumps(m))
                    return
        except OSError:
            conn.conn.close()  # not listening yet
        if time.monotonic() > deadline:
            die(f"no finished sync cycle at {url} within {timeout:.0f}s")
        time.sleep(0.05)


def latency():
    env = os.environ
    plane = env["BENCH_PLANE_URL"]
    slug = env["BENCH_SLUG"]
    key = env["BENCH_API_KEY"]
    dav = env["BENCH_DAV_URL"]
    user, password = env["BENCH_DAV_USER"], env["BENCH_DAV_PASSWORD"]
    daemon = env["BENCH_DAEMON_URL"]
    secret = env["BENCH_SECRET"].encode()
    n = int(env.get("BENCH_WEBHOOKS", "100"))
    poll = float(env.get("BENCH_POLL_MS", "5")) / 1000
    give_up = float(env.get("BENCH_TIMEOUT_S", "10"))
    daemon_pid = int(env["BENCH_DAEMON_PID"])

    p = Conn(plane, {"X-API-Key": key, "Content-Type": "application/json"})
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    d = Conn(dav, {"Authorization": f"Basic {auth}"})
    hook = Conn(daemon)
    metrics = Conn(daemon)

    api = f"/api/v1/workspaces/{slug}"
    code, body = p.request("GET", f"{api}/projects/")
    if code != 200:
        die(f"fake Plane: GET projects: HTTP {code}")
    projects = json.loads(body)["results"]
    if not projects:
        die("fake Plane has no projects")
    project = projects[0]
    pid, ident = project["id"], project["identifier"]

    # The calendar: confirm the /{user}/plane-{identifier}/ scheme by listing the home.
    home = f"/{user}/"
    code, body = d.request("PROPFIND", home, headers={"Depth": "1"})
    if code != 207:
        die(f"CalDAV PROPFIND {home}: HTTP {code}")
    calendar = f"{home}plane-{ident.lower()}/"
    if f"<D:href>{calendar}</D:href>".encode() not in body and calendar.encode() not in body:
        die(f"calendar {calendar} not in the listing of {home}: {body[:500]!r}")

    items, cursor = [], None
    while True:
        q = "expand=state&per_page=100" + (f"&cursor={cursor}" if cursor else "")
        code, body = p.request("GET", f"{api}/projects/{pid}/work-items/?{q}")
        if code != 200:
            die(f"fake Plane: GET work items: HTTP {code} {body[:200]!r}")
        page = json.loads(body)
        items += page["results"]
        if not page.get("next_page_results"):
            break
        cursor = page["next_cursor"]
    open_dated = [
        i
        for i in items
        if i.get("target_date")
        and isinstance(i.get("state"), dict)
        and i["state"].get("group") not in ("completed", "cancelled")
    ]
    # Keep only items whose event is really there, and check the SUMMARY format once.
    candidates = []
    for i in open_dated:
        href = f"{calendar}plane-issue-{i['id']}%40calplanebot.ics"
        code, body = d.request("GET", href)
        if code == 200:
            want = f"SUMMARY:[{ident}-{i['sequence_id']}] "
            if want.encode() not in body:
                die(f"{href}: no line starting {want!r}:\n{body.decode(errors='replace')}")
            candidates.append((i, href))
    if not candidates:
        die(f"none of the {len(open_dated)} dated open items has an event in {calendar}")

    def one_round(k, done_when):
        """Rename an item, send its webhook, return ms until done_when() holds."""
        item, href = candidates[k % len(candidates)]
        name = f"bench {k + 1}"
        code, body = p.request(
            "PATCH",
            f"{api}/projects/{pid}/work-items/{item['id']}/",
            body=json.dumps({"name": name}),
        )
        if code != 200:
            die(f"fake Plane: PATCH {item['id']}: HTTP {code} {body[:200]!r}")
        payload = json.dumps(
            {
                "event": "issue",
                "action": "updated",
                "webhook_id": "w",
                "workspace_id": "ws",
                "data": {"id": item["id"], "project": pid},
            },
            separators=(",", ":"),
        ).encode()
        sig = hmac.new(secret, payload, hashlib.sha256).hexdigest()
        want = f"SUMMARY:[{ident}-{item['sequence_id']}] {name}\r\n".encode()
        t0 = time.perf_counter()
        code, body = hook.request(
            "POST",
            "/webhooks/plane",
            body=payload,
            headers={"Content-Type": "application/json", "X-Plane-Signature": sig},
        )
        t_ack = time.perf_counter()
        if code != 202:
            die(f"webhook: HTTP {code} {body[:200]!r}")
        polls = 0
        while True:
            polls += 1
            if done_when(href, want):
                t1 = time.perf_counter()
                return (t1 - t0) * 1000, (t_ack - t0) * 1000, polls
            if time.perf_counter() - t0 > give_up:
                die(f"round {k + 1}: {href} did not show {want!r} within {give_up}s")
            time.sleep(poll)

    get_ms = []

    def visible(href, want):
        t = time.perf_counter()
        code, body = d.request("GET", href)
        get_ms.append((time.perf_counter() - t) * 1000)
        return code == 200 and want in body

    def updated_counter():
        code, body = metrics.request("GET", "/api/v1/metrics")
        return json.loads(body)["items"]["updated"]

    # Warm-up round (connections, Radicale's caches), not counted. It uses the item the
    # first counted round does not: a second webhook about one item within 0.3 s of its
    # sync is the tail of a burst, which the daemon holds back on purpose.
    warm = n + 1000
    warm += (len(candidates) - 1 - warm) % len(candidates)
    one_round(warm, visible)

    cpu0 = cpu_seconds(daemon_pid)
    lat, acks, polls = [], [], []
    for k in range(n):
        ms, ack, np_ = one_round(k, visible)
        lat.append(ms)
        acks.append(ack)
        polls.append(np_)
    cpu_caldav = cpu_seconds(daemon_pid) - cpu0

    # Second method, same work: poll the daemon's own counter (cheap, Rust) instead of
    # Radicale, to see what the 5 ms CalDAV polling costs Radicale and thus the daemon.
    base = updated_counter()
    lat_m = []
    for k in range(n):
        target = base + k + 1
        ms, _, _ = one_round(n + k, lambda _h, _w: updated_counter() >= target)
        lat_m.append(ms)

    out = {
        "project": ident,
        "calendar": calendar,
        "items": len(items),
        "open_dated": len(open_dated),
        "candidates": len(candidates),
        "caldav_poll": stats(lat),
        "metrics_poll": stats(lat_m),
        "webhook_ack": stats(acks),
        "polls_mean": statistics.fmean(polls),
        "radicale_get": stats(get_ms),
        "daemon_cpu_ms_per_webhook": cpu_caldav * 1000 / n,
    }
    print(json.dumps(out))


def fetch(url, headers=None):
    """One GET on a new connection, body read to the end: (status, headers, body, ms)."""
    u = urllib.parse.urlsplit(url)
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", f"{u.path}?{u.query}", headers=headers or {})
        r = conn.getresponse()
        body = r.read()
    finally:
        conn.close()
    return r.status, r, body, (time.perf_counter() - t0) * 1000


def feed_round(url, n, pid, want, headers=None):
    """n fetches of url that must all answer `want`: latency stats, the daemon's CPU per
    fetch, and the last answer's body and ETag."""
    fetch(url, headers)  # warm-up: page cache, the first accept
    ms, body, etag = [], b"", None
    cpu0 = cpu_seconds(pid)
    for k in range(n):
        code, r, body, t = fetch(url, headers)
        if code != want:
            die(f"fetch {k + 1} of {url.split('?')[0]}: HTTP {code}, not {want}")
        if etag is not None and r.getheader("ETag") != etag:
            die(f"{url.split('?')[0]}: the ETag changed between fetches")
        etag = r.getheader("ETag")
        ms.append(t)
    cpu_ms = (cpu_seconds(pid) - cpu0) * 1000 / n
    return stats(ms), cpu_ms, body, etag


def feeds(url_all, url_project):
    n = int(os.environ.get("BENCH_FEED_FETCHES", "100"))
    pid = int(os.environ["BENCH_DAEMON_PID"])
    out = {"fetches": n}
    for key, url in (("project", url_project), ("all", url_all)):
        st, cpu_ms, body, etag = feed_round(url, n, pid, 200)
        if not body.startswith(b"BEGIN:VCALENDAR\r\n") or not body.endswith(b"END:VCALENDAR\r\n"):
            die(f"{url.split('?')[0]}: not an iCalendar object: {body[:80]!r}")
        out[key] = {
            "name": urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1],
            "stats": st,
            "cpu_ms": cpu_ms,
            "bytes": len(body),
            "events": body.count(b"\r\nBEGIN:VEVENT\r\n") + body.count(b"\r\nBEGIN:VTODO\r\n"),
            "etag": etag,
        }
    st, cpu_ms, body, _ = feed_round(url_all, n, pid, 304, {"If-None-Match": out["all"]["etag"]})
    if body:
        die(f"a 304 came with a body of {len(body)} bytes")
    out["not_modified"] = {"stats": st, "cpu_ms": cpu_ms}
    print(json.dumps(out))


def thread_stack_kib(pid, maps):
    """Resident KiB of the stacks of the threads other than the main one: for each, the
    pages from its guard page (the PROT_NONE mapping below its stack pointer) up to the page
    above its stack pointer, counted in /proc/PID/pagemap (a sleeping thread's frames end
    within a page or two of it). Not the Rss of the stack's mapping: the kernel merges a
    thread stack with the anonymous mapping next to it (musl's allocator puts its own there),
    so that Rss would count heap as stack. None when /proc does not tell."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        with open(f"/proc/{pid}/pagemap", "rb") as pm:
            for tid in tids:
                if tid == pid:
                    continue  # the main thread's stack is [stack]
                with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                    fields = f.read().split()
                if len(fields) < 3 or fields[0] == "running":
                    return None
                sp = int(fields[-2], 16)
                guards = [m for m in maps if m[1] <= sp and m[2].startswith("---")]
                if not guards:
                    return None
                lo = max(g[1] for g in guards)
                hi = (sp // page + 2) * page
                pm.seek(lo // page * 8)
                data = pm.read((hi - lo) // page * 8)
                present = sum(
                    1
                    for i in range(0, len(data), 8)
                    if int.from_bytes(data[i : i + 8], "little") >> 63
                )
                total += present * page // 1024
    except (OSError, ValueError):
        return None
    return total


def smaps(pid, binary):
    """Rss in KiB by kind of mapping, read from /proc/PID/smaps: binary (the executable's
    own mappings: text, rodata, data; file-backed, so shared with the page cache and
    reclaimable), libs (other files: libc, ld.so; shared with every process using them),
    heap ([heap], the brk area: glibc's main arena), stack ([stack], the main thread's),
    thread_stacks (see thread_stack_kib), anon (the other anonymous memory: mmap'd
    allocator arenas, musl's heap, large blocks such as HTTP buffers), other ([vdso]...).
    Also the total, the process's Pss (shared pages divided among their users) and the
    private dirty KiB of the anonymous kinds."""
    binary = os.path.realpath(binary)
    maps = []  # [start, end, perms, name, rss, private_dirty]
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 5)
            if "-" in first[0] and len(first) >= 5 and not first[0].endswith(":"):
                lo, hi = (int(x, 16) for x in first[0].split("-"))
                name = first[5].strip() if len(first) > 5 else ""
                maps.append([lo, hi, first[1], name, 0, 0])
            elif first[0] == "Rss:":
                maps[-1][4] = int(first[1])
            elif first[0] == "Private_Dirty:":
                maps[-1][5] = int(first[1])
    out = {k: 0 for k in ("binary", "libs", "heap", "stack", "thread_stacks", "anon", "other")}
    dirty = 0
    for lo, hi, perms, name, rss, pdirty in maps:
        if name in (binary, binary + " (deleted)"):
            kind = "binary"
        elif name.startswith("/"):
            kind = "libs"
        elif name in ("[heap]", "[stack]"):
            kind = name.strip("[]")
        elif name == "":
            kind = "anon"
        else:
            kind = "other"
        out[kind] += rss
        if kind in ("heap", "stack", "anon"):
            dirty += pdirty
    stacks = thread_stack_kib(pid, [(m[0], m[1], m[2]) for m in maps])
    out["thread_stacks"] = stacks if stacks is not None else -1
    out["anon"] -= max(stacks or 0, 0)
    out["total"] = sum(out[k] for k in out if out[k] > 0)
    out["anon_private_dirty"] = dirty
    with open(f"/proc/{pid}/smaps_rollup") as f:
        out["pss"] = next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
    with open(f"/proc/{pid}/status") as f:
        out["threads"] = next(int(l.split()[1]) for l in f if l.startswith("Threads:"))
    return out


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "wait-cycle" and len(sys.argv) == 4:
        wait_cycle(sys.argv[2], float(sys.argv[3]))
    elif sys.argv[1:] == ["latency"]:
        latency()
    elif len(sys.argv) == 4 and sys.argv[1] == "feeds":
        feeds(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "smaps":
        print(json.dumps(smaps(int(sys.argv[2]), sys.argv[3])))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
