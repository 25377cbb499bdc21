#!/usr/bin/env python3
"""Manual check of issue 12 against the REAL Plane CE API server (../shared/plane-real.md):
a cycle and a module created through Plane's API appear in a CalDAV calendar with the
dates Plane's web app shows.

  $PYTHON tests/real_plane_timeline.py [--keep]

Environment: PLANE_BASE_URL, PLANE_API_TOKEN, PLANE_WORKSPACE_SLUG, PLANE_PROJECT_ID (what
tools/real-plane.sh prints), CALDAV_URL, CALDAV_USERNAME, CALDAV_PASSWORD (a Radicale of
tests/servers.sh; better a user no test uses, e.g. RADICALE_USER2), CALPLANEBOT (the
binary, default target/debug/calplanebot).

Steps: POST a cycle (14–18 December) and a module (9–23 December) with unique names; run
`calplanebot --once` with SYNC_CYCLES=true SYNC_MODULES=true PLANE_PROJECTS=<project>;
read the project calendar back with tests/caldav_verify.py (PyPI caldav + icalendar);
compare. The cycle's expected days come from Python's zoneinfo applied to the instants
Plane stored, in the project's zone, and must be the days that were asked for. Then the
cycle, the module and the calendar are deleted again (unless --keep). The token is never
printed. Exit 0 when everything matched, 1 otherwise.
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
import uuid
import zoneinfo

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = 60
CYCLE_DAYS = ("2026-12-14", "2026-12-18")
MODULE_DAYS = ("2026-12-09", "2026-12-23")


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set (see the docstring)")
    return value


def plane(method, path, body=None):
    """One request to Plane's v1 API; the decoded JSON answer (None for 204)."""
    url = f"{env('PLANE_BASE_URL')}/api/v1/workspaces/{env('PLANE_WORKSPACE_SLUG')}/{path}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("X-API-Key", env("PLANE_API_TOKEN"))
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
        text = r.read()
    return json.loads(text) if text else None


def verifier(*args):
    cmd = [sys.executable, os.path.join(HERE, "caldav_verify.py"), *args]
    cmd += ["--user", env("CALDAV_USERNAME"), "--password", env("CALDAV_PASSWORD")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    if p.returncode != 0:
        sys.exit(f"caldav_verify.py {args[0]} failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


def local_day(instant, zone):
    value = datetime.datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return value.astimezone(zoneinfo.ZoneInfo(zone)).date()


def day_after(day):
    return (datetime.date.fromisoformat(day) + datetime.timedelta(days=1)).isoformat()


def run_once(project, state_dir):
    binary = os.environ.get("CALPLANEBOT") or os.path.join(HERE, "..", "target/debug/calplanebot")
    names = ["PLANE_BASE_URL", "PLANE_API_TOKEN", "PLANE_WORKSPACE_SLUG", "CALDAV_URL",
             "CALDAV_USERNAME", "CALDAV_PASSWORD"]
    vars_ = {n: env(n) for n in names}
    vars_.update(PATH=os.environ.get("PATH", ""), PLANE_PROJECTS=project, STATE_DIR=state_dir,
                 SYNC_CYCLES="true", SYNC_MODULES="true", LOG_LEVEL="info")
    print(f"$ SYNC_CYCLES=true SYNC_MODULES=true PLANE_PROJECTS={project} calplanebot --once")
    p = subprocess.run([binary, "--once"], env=vars_, capture_output=True, text=True,
                       timeout=10 * TIMEOUT_S)
    print(p.stdout.rstrip())
    print(p.stderr.rstrip())
    if p.returncode != 0:
        sys.exit(f"calplanebot --once exited {p.returncode}")


def check(label, got, want, failures):
    mark = "ok" if got == want else "MISMATCH"
    print(f"  {label:<28} {got!s:<44} want {want!s:<28} {mark}")
    if got != want:
        failures.append(label)


def main():
    keep = "--keep" in sys.argv[1:]
    pid = env("PLANE_PROJECT_ID")
    project = plane("GET", f"projects/{pid}/")
    zone = project.get("timezone") or "UTC"
    print(f"project {project['identifier']} ({project['name']}), timezone {zone}, "
          f"cycle_view {project.get('cycle_view')}, module_view {project.get('module_view')}")
    tag = uuid.uuid4().hex[:6]
    cycle = plane("POST", f"projects/{pid}/cycles/", {
        "name": f"e2e sprint {tag}", "start_date": CYCLE_DAYS[0], "end_date": CYCLE_DAYS[1],
        "project_id": pid})
    module = plane("POST", f"projects/{pid}/modules/", {
        "name": f"e2e milestone {tag}", "start_date": MODULE_DAYS[0],
        "target_date": MODULE_DAYS[1], "status": "in-progress"})
    print(f"cycle {cycle['id']}: start_date {cycle['start_date']} end_date {cycle['end_date']} "
          f"timezone {cycle.get('timezone')}")
    print(f"module {module['id']}: start_date {module['start_date']} "
          f"target_date {module['target_date']}")
    failures = []
    cal_url = None
    try:
        with tempfile.TemporaryDirectory(prefix="calplanebot-real-") as state:
            run_once(project["identifier"], state)
        name = f"Plane: {project['name']}"
        cals = [c for c in verifier("dump", "--url", env("CALDAV_URL"))["calendars"]
                if c["name"] == name]
        if len(cals) != 1:
            sys.exit(f"{len(cals)} calendars named {name!r}")
        cal_url = cals[0]["url"]
        objects = {o["uid"]: o for o in cals[0]["objects"]}
        first = local_day(cycle["start_date"], zone).isoformat()
        last = local_day(cycle["end_date"], zone).isoformat()
        print("in the calendar (PyPI icalendar):")
        check("zoneinfo: cycle days", (first, last), CYCLE_DAYS, failures)
        for uid, summary, dates in [
            (f"plane-cycle-{cycle['id']}@calplanebot", f"Cycle: {cycle['name']}",
             (CYCLE_DAYS[0], day_after(CYCLE_DAYS[1]))),
            (f"plane-module-{module['id']}@calplanebot", f"Module: {module['name']}",
             (MODULE_DAYS[0], day_after(MODULE_DAYS[1]))),
        ]:
            o = objects.get(uid)
            if o is None:
                print(f"  {uid}: MISSING")
                failures.append(uid)
                continue
            props = o["props"]
            check(f"{summary[:6]} SUMMARY", props.get("SUMMARY"), summary, failures)
            check(f"{summary[:6]} DTSTART..DTEND", (props.get("DTSTART"), props.get("DTEND")),
                  dates, failures)
            check(f"{summary[:6]} value type", o["value_types"].get("DTSTART"), "DATE", failures)
            print(f"  {summary[:6]} DESCRIPTION {props.get('DESCRIPTION')!r}")
    finally:
        if not keep:
            plane("DELETE", f"projects/{pid}/cycles/{cycle['id']}/")
            plane("DELETE", f"projects/{pid}/modules/{module['id']}/")
            if cal_url:
                verifier("delete", "--url", cal_url)
            print("deleted the cycle, the module and the calendar again")
    print("FAILED: " + ", ".join(failures) if failures else "OK")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
