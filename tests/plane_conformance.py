#!/usr/bin/env python3
"""Conformance check of the fake Plane (tests/fake_plane) against a REAL Plane CE server.

Sends the same list of requests -- the ones calplanebot and its tests rely on -- to two
Plane API servers and prints one table row per request: the status each gave and what
differs in the answers (key sets at the top level and of the first list element, nested
objects included; error bodies; page envelopes; rate-limit headers). Rows that differ are
flagged `!!`. A manual tool: CI cannot run real Plane (see /work/shared/plane-real.md).

    # real Plane: MIRROR=<git dir of github:makeplane/plane> ../shared/tools/real-plane.sh
    # fake:       cargo run --example fake-plane -- --addr 127.0.0.1:8091 --slug acme \
    #                 --api-key K --projects 1 --items 5 --timeline
    tests/plane_conformance.py --slug acme \
        --real http://127.0.0.1:58000 plane_api_... [--real-project UUID] \
        --fake http://127.0.0.1:8091 K [--fake-project UUID]

Each side gets its own project (default: the first one listed). The run creates one work
item per side (external_source "conformance"), then deletes it. Both servers should have
the same rate limit (real default 60/min, fake-plane's default too): the script paces
itself on X-RateLimit-Remaining. `--exhaust` ends by running into the limit (429) on both
sides, which costs a minute of waiting. The API key is sent, never printed.
Standard library only.
"""
import argparse
import http.client
import json
import re
import sys
import time
import urllib.parse
import uuid

# A list inside an item (labels[0], assignees[0]), not the page's results[0].
NESTED_LIST_RE = re.compile(r"\.(?!results\[)\w+\[0\]")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Seconds to wait after a write before checking that `updated_at` moved (real Plane's
# Celery bump lands ~60 ms after the answer; a busy worker is slower).
BUMP_WAIT = 2.0
# Pace when this few requests are left in the rate-limit window.
PACE_AT = 3
# Longest error body shown in the table.
BODY_SHOWN = 90
# Requests sent at most while looking for the 429 (`--exhaust`).
EXHAUST_MAX = 400


class Side:
    """One server: where it is, its key, its project and what the run learned on it."""

    def __init__(self, label, base, key, slug, project):
        self.label, self.key, self.slug, self.project = label, key, slug, project
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/") + "/api/v1/"
        self.vars = {}

    def request(self, method, path, body=None, headers=None, key=True, pace=True):
        """One exchange on a fresh connection; redirects are not followed."""
        hdrs = {"Accept": "application/json"}
        if key is True:
            hdrs["X-API-Key"] = self.key
        elif key:
            hdrs["X-API-Key"] = key
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, self.prefix + path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            answer = Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()
        if pace:
            self.pace(answer)
        return answer

    def pace(self, answer):
        """Sleeps out the rate-limit window when it is nearly used up, like calplanebot."""
        rem, reset = answer.headers.get("x-ratelimit-remaining"), answer.headers.get("x-ratelimit-reset")
        if rem is not None and reset is not None and int(rem) <= PACE_AT:
            wait = max(0, int(reset) - int(time.time())) + 1
            print(f"   ({self.label}: {rem} requests left, pausing {wait} s)", file=sys.stderr)
            time.sleep(wait)


class Answer:
    """Status, lower-cased headers and the decoded JSON body (None when not JSON)."""

    def __init__(self, status, headers, raw):
        self.status, self.headers, self.raw = status, headers, raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def kind(self):
        ctype = self.headers.get("content-type", "")
        if not self.raw:
            return "empty"
        return "json" if self.json is not None else ctype.split(";")[0] or "?"


def fill(side, text):
    """Replaces {slug} {pid} {item} {created} {key} … with what this side learned."""
    values = dict(side.vars, slug=side.slug, pid=side.project)
    return text.format(**values)


# One step: (label, method, path template, body, options). Options: key=False|"wrong",
# headers={…}, raw=bytes body, keep=name to remember the answer's id, after=callable.
P = "workspaces/{slug}/projects/{pid}/"
WI = P + "work-items/"
CAL = "&order_by=-updated_at&expand=state,labels,assignees"
EXT = "conformance"


def steps(ext_id):
    """The request list, in order; later steps use ids learned by earlier ones."""
    return read_steps() + timeline_steps() + routing_steps() + write_steps(ext_id)


def read_steps():
    """Listings and reads: pagination, expand/fields, order_by."""
    return [
        ("users/me", "GET", "users/me/", None, {}),
        ("members", "GET", "workspaces/{slug}/members/", None, {}),
        ("projects per_page=100", "GET", "workspaces/{slug}/projects/?per_page=100", None, {}),
        ("project detail", "GET", P, None, {}),
        ("states per_page=100", "GET", P + "states/?per_page=100", None, {}),
        ("labels per_page=100", "GET", P + "labels/?per_page=100", None, {}),
        ("project members", "GET", P + "members/", None, {}),
        ("items calplanebot query", "GET", WI + "?per_page=100" + CAL, None, {"keep_first": "item"}),
        ("items no params (page size)", "GET", WI, None, {}),
        ("items per_page=1", "GET", WI + "?per_page=1", None, {"keep_cursor": "next"}),
        ("items per_page=1 cursor=next", "GET", WI + "?per_page=1&cursor={next}", None, {}),
        ("items page past end", "GET", WI + "?per_page=2&cursor=2:99:0", None, {}),
        ("items cursor page -1", "GET", WI + "?per_page=2&cursor=2:-1:0", None, {}),
        ("items cursor 1:2:0 per_page=2", "GET", WI + "?per_page=2&cursor=1:2:0&fields=id", None,
         {"ids": True}),
        ("items cursor 1:1:1 per_page=2", "GET", WI + "?per_page=2&cursor=1:1:1&fields=id", None,
         {"ids": True}),
        ("items cursor garbage", "GET", WI + "?cursor=abc", None, {}),
        ("items fields=id,name", "GET", WI + "?fields=id,name", None, {}),
        ("items expand=state only", "GET", WI + "?expand=state", None, {}),
        ("items order_by=bogus", "GET", WI + "?order_by=bogus", None, {}),
        ("items order_by=target_date", "GET", WI + "?order_by=target_date&fields=id", None, {}),
        ("items per_page=0", "GET", WI + "?per_page=0", None, {}),
        ("items per_page=1000", "GET", WI + "?per_page=1000", None, {}),
        ("items per_page=1001", "GET", WI + "?per_page=1001", None, {}),
        ("items per_page=abc", "GET", WI + "?per_page=abc", None, {}),
        ("items per_page=-1", "GET", WI + "?per_page=-1", None, {}),
    ]


def timeline_steps():
    """Cycles and modules (issue 12): lists, views, details, unknown ids and projects. The
    project needs cycles and modules on both sides (fake-plane --timeline)."""
    unknown = "workspaces/{slug}/projects/{random}/"
    return [
        ("cycles per_page=100", "GET", P + "cycles/?per_page=100", None, {"keep_id": "cycle"}),
        ("cycles no params (page size)", "GET", P + "cycles/", None, {}),
        ("cycles cycle_view=current", "GET", P + "cycles/?cycle_view=current", None, {}),
        ("cycles cycle_view=draft", "GET", P + "cycles/?cycle_view=draft", None, {}),
        ("cycle detail", "GET", P + "cycles/{cycle}/", None, {}),
        ("cycle unknown uuid", "GET", P + "cycles/{random}/", None, {}),
        ("cycles of unknown project", "GET", unknown + "cycles/", None, {}),
        ("modules per_page=100", "GET", P + "modules/?per_page=100", None, {"keep_id": "module"}),
        ("module detail", "GET", P + "modules/{module}/", None, {}),
        ("module unknown uuid", "GET", P + "modules/{random}/", None, {}),
        ("modules of unknown project", "GET", unknown + "modules/", None, {}),
    ]


def routing_steps():
    """One item, unknown ids and projects, slashes, keys and slugs."""
    return [
        ("issues/ alias list", "GET", P + "issues/?per_page=1", None, {}),
        ("item GET expand", "GET", WI + "{item}/?expand=state,labels,assignees", None, {}),
        ("item GET plain", "GET", WI + "{item}/", None, {}),
        ("item by key IDENT-seq", "GET", "workspaces/{slug}/work-items/{key}/", None, {}),
        ("item id not a uuid", "GET", WI + "not-a-uuid/", None, {}),
        ("item unknown uuid", "GET", WI + "{random}/", None, {}),
        ("project unknown uuid", "GET", "workspaces/{slug}/projects/{random}/", None, {}),
        ("items of unknown project", "GET", "workspaces/{slug}/projects/{random}/work-items/", None, {}),
        ("item of unknown project", "GET", "workspaces/{slug}/projects/{random}/work-items/{item}/", None, {}),
        ("states of unknown project", "GET", "workspaces/{slug}/projects/{random}/states/", None, {}),
        ("labels of unknown project", "GET", "workspaces/{slug}/projects/{random}/labels/", None, {}),
        ("members of unknown project", "GET", "workspaces/{slug}/projects/{random}/members/", None, {}),
        ("by key, unknown project", "GET", "workspaces/{slug}/work-items/NOPE-1/", None, {}),
        ("by key, unknown sequence", "GET", "workspaces/{slug}/work-items/{ident}-99999/", None, {}),
        ("unknown route", "GET", "workspaces/{slug}/nothing-here/", None, {}),
        ("list no trailing slash", "GET", WI.rstrip("/"), None, {}),
        ("item no trailing slash", "GET", WI + "{item}", None, {}),
        ("PATCH no trailing slash", "PATCH", WI + "{item}", {"priority": "low"}, {}),
        ("POST no trailing slash", "POST", WI.rstrip("/"), {"name": "x"}, {}),
        ("wrong key", "GET", "users/me/", None, {"key": "plane_api_00000000000000000000000000000000"}),
        ("missing key", "GET", "users/me/", None, {"key": False}),
        ("missing key, wrong slug", "GET", "workspaces/nope-slug/projects/", None, {"key": False}),
        ("wrong slug projects", "GET", "workspaces/nope-slug/projects/", None, {}),
        ("wrong slug members", "GET", "workspaces/nope-slug/members/", None, {}),
        ("wrong slug items", "GET", "workspaces/nope-slug/projects/{pid}/work-items/", None, {}),
        ("wrong slug project detail", "GET", "workspaces/nope-slug/projects/{pid}/", None, {}),
        ("wrong slug by key", "GET", "workspaces/nope-slug/work-items/{key}/", None, {}),
    ]


def write_steps(ext_id):
    """Create (twice), PATCH variants, bad bodies, PUT, archive/draft, DELETE."""
    new = {"name": "Conformance probe", "external_id": ext_id, "external_source": EXT,
           "target_date": "2030-01-10", "labels": ["{label}"], "assignees": ["{me}"]}
    by_ext = WI + f"?external_id={ext_id}&external_source={EXT}"
    listed = {"listed": "created"}
    return [
        ("POST create ext id", "POST", WI, new, {"keep": "created"}),
        ("POST same ext id again", "POST", WI, new, {}),
        ("GET created expand", "GET", WI + "{created}/?expand=state,labels,assignees", None, {}),
        ("GET by external_id", "GET", by_ext, None, {}),
        ("GET by external_id only", "GET", WI + f"?external_id={ext_id}&fields=id", None, {}),
        ("GET by unknown external_id", "GET", WI + f"?external_id=nope-{ext_id}&external_source={EXT}", None, {}),
        ("PATCH partial name", "PATCH", WI + "{created}/", {"name": "Conformance probe 2"}, {"bump": True}),
        ("PATCH start>target same body", "PATCH", WI + "{created}/",
         {"start_date": "2030-02-01", "target_date": "2030-01-01"}, {}),
        ("PATCH start>stored target", "PATCH", WI + "{created}/", {"start_date": "2030-03-01"}, {}),
        ("PATCH clear dates", "PATCH", WI + "{created}/", {"start_date": None, "target_date": None}, {}),
        ("PATCH bad label uuid", "PATCH", WI + "{created}/", {"labels": ["{random}"]}, {}),
        ("PATCH bad assignee uuid", "PATCH", WI + "{created}/", {"assignees": ["{random}"]}, {}),
        ("PATCH label not a string", "PATCH", WI + "{created}/", {"labels": [7]}, {}),
        ("PATCH bad state uuid", "PATCH", WI + "{created}/", {"state": "{random}"}, {}),
        ("PATCH bad parent uuid", "PATCH", WI + "{created}/", {"parent": "{random}"}, {}),
        ("PATCH is_draft not bool", "PATCH", WI + "{created}/", {"is_draft": "maybe"}, {}),
        ("PATCH bad priority", "PATCH", WI + "{created}/", {"priority": "huge"}, {}),
        ("PATCH empty name", "PATCH", WI + "{created}/", {"name": ""}, {}),
        ("PATCH body not JSON", "PATCH", WI + "{created}/", None,
         {"raw": b"{nope", "headers": {"Content-Type": "application/json"}}),
        ("PATCH empty body no C-Type", "PATCH", WI + "{created}/", None, {"raw": b""}),
        ("PATCH text/plain", "PATCH", WI + "{created}/", None,
         {"raw": b'{"name":"x"}', "headers": {"Content-Type": "text/plain"}}),
        ("PATCH no Content-Type", "PATCH", WI + "{created}/", None, {"raw": b'{"name":"x"}'}),
        ("POST text/plain", "POST", WI, None,
         {"raw": b'{"name":"x"}', "headers": {"Content-Type": "text/plain"}}),
        ("POST without name", "POST", WI, {"priority": "low"}, {}),
        ("POST JSON array", "POST", WI, None,
         {"raw": b"[]", "headers": {"Content-Type": "application/json"}}),
        ("PUT detail", "PUT", WI + "{created}/", {"name": "put"}, {}),
        ("PUT list", "PUT", WI, {"name": "put"}, {}),
        ("POST on detail", "POST", WI + "{created}/", {"name": "x"}, {}),
        ("list shows created", "GET", WI + "?fields=id", None, listed),
        ("PATCH archived_at (archive)", "PATCH", WI + "{created}/", {"archived_at": "{today}"}, {}),
        ("GET archived", "GET", WI + "{created}/", None, {}),
        ("list hides archived", "GET", WI + "?fields=id", None, listed),
        ("GET by ext id, archived", "GET", by_ext + "&fields=id,archived_at", None, {}),
        ("POST same ext id, archived", "POST", WI, new, {}),
        ("PATCH archived item", "PATCH", WI + "{created}/", {"priority": "high"}, {}),
        ("PATCH archived_at null", "PATCH", WI + "{created}/", {"archived_at": None}, {}),
        ("GET unarchived", "GET", WI + "{created}/?fields=id,archived_at,priority", None, {}),
        ("PATCH is_draft true", "PATCH", WI + "{created}/", {"is_draft": True}, {}),
        ("GET draft", "GET", WI + "{created}/", None, {}),
        ("PATCH is_draft false", "PATCH", WI + "{created}/", {"is_draft": False}, {}),
        ("DELETE item", "DELETE", WI + "{created}/", None, {}),
        ("GET after DELETE", "GET", WI + "{created}/", None, {}),
        ("PATCH after DELETE", "PATCH", WI + "{created}/", {"name": "x"}, {}),
        ("DELETE again", "DELETE", WI + "{created}/", None, {}),
        ("list hides deleted", "GET", WI + "?fields=id", None, listed),
        ("GET by ext id after DELETE", "GET", by_ext, None, {}),
        ("POST same ext id after DELETE", "POST", WI, new, {"keep": "recreated"}),
        ("DELETE recreated", "DELETE", WI + "{recreated}/", None, {}),
    ]


def fill_value(side, v):
    """[`fill`] applied to every string of a JSON body."""
    if isinstance(v, str):
        return fill(side, v)
    if isinstance(v, list):
        return [fill_value(side, x) for x in v]
    if isinstance(v, dict):
        return {k: fill_value(side, x) for k, x in v.items()}
    return v


def run_step(side, step):
    """Sends one step on one side; remembers what later steps need."""
    label, method, path, body, opt = step
    path = fill(side, path)
    body = fill_value(side, body)
    if "raw" in opt:
        body = opt["raw"]
    ans = side.request(method, path, body=body, headers=opt.get("headers"), key=opt.get("key", True))
    learn(side, opt, ans)
    if opt.get("bump") and ans.status == 200:
        ans.note = check_bump(side, path, ans)
    if opt.get("listed") and isinstance(ans.json, dict):
        ids = [r.get("id") for r in ans.json.get("results", [])]
        ans.note = "listed" if side.vars[opt["listed"]] in ids else "not listed"
    if opt.get("ids") and isinstance(ans.json, dict):
        ans.note = "positions " + ",".join(str(side.vars["order"].index(r.get("id")))
                                          for r in ans.json.get("results", [])
                                          if r.get("id") in side.vars["order"])
    return ans


def learn(side, opt, ans):
    j = ans.json if isinstance(ans.json, dict) else {}
    if opt.get("keep_first") and j.get("results"):
        first = j["results"][0]
        side.vars[opt["keep_first"]] = first["id"]
        side.vars["seq"] = first.get("sequence_id")
    if opt.get("keep_id"):
        side.vars[opt["keep_id"]] = (j.get("results") or [{"id": "none"}])[0]["id"]
    if opt.get("keep_cursor"):
        side.vars[opt["keep_cursor"]] = j.get("next_cursor", "")
    if opt.get("keep"):
        side.vars[opt["keep"]] = j.get("id") or "00000000-0000-4000-8000-000000000000"


def check_bump(side, path, ans):
    """Whether `updated_at` moved after the write had answered (real Plane: yes)."""
    before = ans.json.get("updated_at")
    time.sleep(BUMP_WAIT)
    later = side.request("GET", path).json or {}
    moved = later.get("updated_at") != before
    return "updated_at moved after the answer" if moved else "updated_at NOT moved after the answer"


def keysets(v, where="body"):
    """{place: set of keys} for a JSON value: the top object, the first element of lists
    (`results[0]` of pages, `[0]` of bare arrays) and objects nested in those."""
    out = {}
    if isinstance(v, list):
        if v and isinstance(v[0], dict):
            out.update(keysets(v[0], where + "[0]"))
        return out
    if not isinstance(v, dict):
        return out
    out[where] = set(v)
    for k, x in v.items():
        if isinstance(x, dict):
            out[f"{where}.{k}"] = set(x)
        elif isinstance(x, list) and x and isinstance(x[0], dict):
            out.update(keysets(x[0], f"{where}.{k}[0]"))
    return out


def envelope(ans):
    """The parts of a page that should match whatever the data: cursors and flags."""
    j = ans.json
    if not (isinstance(j, dict) and "results" in j and isinstance(j["results"], list)):
        return None
    per = j.get("next_cursor", "").split(":")[0]
    return f"next={j.get('next_cursor')} prev={j.get('prev_cursor')} per={per}"


def shown_body(ans):
    text = ans.raw.decode("utf-8", "replace")
    text = UUID_RE.sub("<uuid>", text)
    if ans.kind() not in ("json", "empty"):
        text = f"<{ans.kind()}>"
    return text if len(text) <= BODY_SHOWN else text[:BODY_SHOWN] + "…"


def rl_headers(ans):
    h = ans.headers
    return "".join(c for c, k in (("R", "x-ratelimit-remaining"), ("T", "x-ratelimit-reset"),
                                  ("A", "retry-after"), ("L", "location")) if k in h)


def compare(real, fake):
    """Human-readable differences between the two answers (empty list = same shape)."""
    diffs = []
    if real.kind() != fake.kind():
        diffs.append(f"body kind {real.kind()} vs {fake.kind()}")
    if rl_headers(real) != rl_headers(fake):
        diffs.append(f"headers[{rl_headers(real)}] vs [{rl_headers(fake)}]")
    rl, fl = (UUID_RE.sub("<uuid>", a.headers.get("location", "")) for a in (real, fake))
    if rl != fl:
        diffs.append(f"Location {rl} vs {fl}")
    ra, fa = keysets(real.json), keysets(fake.json)
    for place in sorted(set(ra) | set(fa)):
        r, f = ra.get(place), fa.get(place)
        if (r is None or f is None) and NESTED_LIST_RE.search(place):
            # A nested list empty on one side: the data differ, not the shape.
            diffs.append(f"({place}: only in {'real' if f is None else 'fake'}, data)")
        elif r is None or f is None:
            diffs.append(f"{place}: only in {'real' if f is None else 'fake'}")
        elif r != f:
            extra = ",".join(sorted(f - r))
            missing = ",".join(sorted(r - f))
            diffs.append(f"{place}: fake lacks [{missing}] has extra [{extra}]")
    if envelope(real) != envelope(fake):
        diffs.append(f"page {envelope(real)} vs {envelope(fake)}")
    if real.status >= 300 or fake.status >= 300:
        rb, fb = shown_body(real), shown_body(fake)
        if rb != fb:
            diffs.append(f"body real {rb!r} fake {fb!r}")
    rn, fn = getattr(real, "note", None), getattr(fake, "note", None)
    if rn != fn:
        diffs.append(f"{rn} vs {fn}")
    elif rn:
        diffs.append(f"(both: {rn})")
    return diffs


def exhaust(side):
    """Requests until a 429; the 429 answer and how many requests it took."""
    for n in range(1, EXHAUST_MAX + 1):
        ans = side.request("GET", "users/me/", pace=False)
        if ans.status == 429:
            return ans, n
    return ans, EXHAUST_MAX


def prepare(side):
    """Finds the project (first listed unless given) and a work item key."""
    if not side.project:
        page = side.request("GET", f"workspaces/{side.slug}/projects/").json
        side.project = page["results"][0]["id"]
    base = f"workspaces/{side.slug}/projects/{side.project}/"
    proj = side.request("GET", base).json
    me = side.request("GET", "users/me/").json
    labels = side.request("GET", base + "labels/").json["results"]
    order = side.request("GET", base + "work-items/?fields=id").json["results"]
    side.vars.update(random=str(uuid.uuid4()), next="", item="none", created="none",
                     cycle="none", module="none",
                     recreated="none", seq=0, ident=proj["identifier"], me=me["id"],
                     label=labels[0]["id"] if labels else "none",
                     order=[r["id"] for r in order], today=time.strftime("%Y-%m-%d"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", nargs=2, metavar=("URL", "KEY"), required=True)
    ap.add_argument("--fake", nargs=2, metavar=("URL", "KEY"), required=True)
    ap.add_argument("--slug", default="acme")
    ap.add_argument("--real-project")
    ap.add_argument("--fake-project")
    ap.add_argument("--exhaust", action="store_true", help="end by running into the 429")
    a = ap.parse_args()
    real = Side("real", a.real[0], a.real[1], a.slug, a.real_project)
    fake = Side("fake", a.fake[0], a.fake[1], a.slug, a.fake_project)
    for side in (real, fake):
        prepare(side)
    ext_id = f"conformance-{uuid.uuid4()}"
    mismatches = 0
    print(f"{'request':34} {'real':>4} {'fake':>4}  differences (real vs fake)")
    for step in steps(ext_id):
        for side in (real, fake):
            side.vars["key"] = f"{side.vars['ident']}-{side.vars['seq']}"
        r, f = run_step(real, step), run_step(fake, step)
        diffs = compare(r, f)
        bad = r.status != f.status or any(not d.startswith("(") for d in diffs)
        mismatches += bad
        flag = "!!" if bad else "  "
        print(f"{flag}{step[0]:32} {r.status:>4} {f.status:>4}  {'; '.join(diffs)}")
    if a.exhaust:
        (r, rn), (f, fn) = exhaust(real), exhaust(fake)
        diffs = compare(r, f)
        bad = r.status != f.status or any(not d.startswith("(") for d in diffs)
        mismatches += bad
        label = f"429 after {rn}/{fn} requests"
        print(f"{'!!' if bad else '  '}{label:32} {r.status:>4} {f.status:>4}  {'; '.join(diffs)}")
    print(f"{mismatches} request(s) differ")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
