#!/usr/bin/env python3
"""Reads calplanebot's .ics feeds with two independent consumers, for tests/feed.rs.

  feed_verify.py read URL
      GETs URL with urllib and parses it with PyPI icalendar. Prints JSON:
      {"status": 200, "headers": {...}, "calendar": {PROP: value}, "objects":
      [{"uid", "component", "props", "value_types"}]}; a non-200 answer gives only
      "status" and "headers".
  feed_verify.py vdirsyncer URL DIR
      Syncs the feed with vdirsyncer's read-only `http` storage into a `filesystem` storage
      at DIR (config and status under DIR/.vdirsyncer, nothing in $HOME); again with the
      same DIR, it syncs the changes. vdirsyncer's http storage replaces every UID with a
      hash of the item (its `_ignore_uids`, not configurable), so files are keyed by their
      X-PLANE-WORK-ITEM-ID. Prints JSON:
      {"files": {WORK_ITEM_ID: text}, "log": [vdirsyncer's lines]}.

Exit status 1 with a message on stderr when something fails, 2 when a needed module is
missing (the test then fails: a missing tool is never a pass).
"""

import datetime
import importlib.util
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 60


def need(module):
    if importlib.util.find_spec(module) is None:
        print(f"{module} is not installed for {sys.executable} (tests/requirements.txt)", file=sys.stderr)
        sys.exit(2)


def value_of(v):
    """(JSON value, value type) of one parsed property."""
    dt = getattr(v, "dt", None)
    if dt is not None:
        if isinstance(dt, datetime.datetime):
            return dt.isoformat(), "DATE-TIME"
        if isinstance(dt, datetime.date):
            return dt.isoformat(), "DATE"
        if isinstance(dt, datetime.timedelta):
            return int(dt.total_seconds()), "DURATION"
    cats = getattr(v, "cats", None)
    if cats is not None:
        return [str(c) for c in cats], None
    if isinstance(v, int):
        return int(v), None
    return str(v), None


def cmd_read(url):
    need("icalendar")
    import icalendar

    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
            status, headers, body = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        print(json.dumps({"status": e.code, "headers": dict(e.headers)}))
        return
    cal = icalendar.Calendar.from_ical(body)
    calendar = {}
    for name, v in cal.property_items(recursive=False):
        if name not in ("BEGIN", "END"):
            calendar[name] = value_of(v)[0]
    objects = []
    for c in cal.subcomponents:
        props, types = {}, {}
        for name, v in c.property_items(recursive=False):
            if name in ("BEGIN", "END"):
                continue
            value, vtype = value_of(v)
            if name == "CATEGORIES":
                props.setdefault(name, []).extend(value)
                continue
            props[name] = value
            if vtype:
                types[name] = vtype
        objects.append(
            {"uid": str(c.get("UID", "")), "component": c.name, "props": props, "value_types": types}
        )
    print(json.dumps({"status": status, "headers": headers, "calendar": calendar, "objects": objects}))


def cmd_vdirsyncer(url, d):
    need("vdirsyncer")
    state = os.path.join(d, ".vdirsyncer")
    os.makedirs(state, exist_ok=True)
    config = os.path.join(state, "config")
    with open(config, "w", encoding="utf-8") as f:
        f.write(
            "\n".join(
                [
                    "[general]",
                    f"status_path = {json.dumps(os.path.join(state, 'status'))}",
                    "",
                    "[pair feed]",
                    'a = "remote"',
                    'b = "local"',
                    "collections = null",
                    "",
                    "[storage remote]",
                    'type = "http"',
                    f"url = {json.dumps(url)}",
                    "",
                    "[storage local]",
                    'type = "filesystem"',
                    f"path = {json.dumps(d)}",
                    'fileext = ".ics"',
                    "",
                ]
            )
        )
    log = []
    for command in (["discover", "feed"], ["sync", "feed"]):
        p = subprocess.run(
            [sys.executable, "-m", "vdirsyncer", "-c", config, *command],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        lines = (p.stdout + p.stderr).splitlines()
        log += lines
        if p.returncode != 0:
            print(f"vdirsyncer {' '.join(command)} exited {p.returncode}: {lines[-5:]}", file=sys.stderr)
            sys.exit(1)
    need("icalendar")
    import icalendar

    files = {}
    for name in sorted(os.listdir(d)):
        if not name.endswith(".ics"):
            continue
        with open(os.path.join(d, name), encoding="utf-8") as f:
            text = f.read()
        cal = icalendar.Calendar.from_ical(text)
        ids = {str(c.get("X-PLANE-WORK-ITEM-ID")) for c in cal.subcomponents if "UID" in c}
        if len(ids) != 1:
            print(f"{name} holds {len(ids)} work items", file=sys.stderr)
            sys.exit(1)
        files[ids.pop()] = text
    print(json.dumps({"files": files, "log": log}))


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "read":
        cmd_read(args[1])
    elif len(args) == 3 and args[0] == "vdirsyncer":
        cmd_vdirsyncer(args[1], args[2])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
