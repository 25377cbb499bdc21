#!/usr/bin/env python3
"""vdirsyncer round trip for the integration tests: a calendar as a user's directory of .ics files.

A second independent client beside caldav_verify.py: PyPI vdirsyncer syncs ONE CalDAV
collection with a local directory, a test edits a file there as a user with a text editor
would, and vdirsyncer sends the change back. Run it with the test venv (tests/requirements.txt).

Commands (each prints ONE JSON document on stdout; exit 0 = ok, 1 = failure, 2 = usage;
errors are one line on stderr):

  pull --url CAL_URL --dir D [--user U --password P] [--auth auto|basic|digest] [--ca PEM]
       [--conflict error|remote-wins|local-wins]
      Writes the vdirsyncer config and status under D/.vdirsyncer/ (nothing in $HOME), then
      runs `vdirsyncer discover` and `vdirsyncer sync`. CAL_URL is used as the collection
      itself (collections = null: no principal discovery); a PROPFIND first checks that it is
      a calendar the credentials can read (vdirsyncer alone syncs a missing collection as an
      empty one and exits 0). D is created if missing. --auth auto takes the server's 401
      challenge: Digest if it offers Digest and not Basic, else Basic.
      The password never lands in a file: the config fetches it from an environment variable
      vdirsyncer inherits from this process.
  edit-date --dir D --uid UID --to YYYY-MM-DD
      Edits the .ics file of UID in D like a user in a text editor: only the date digits of
      DTSTART/DTEND/DUE of the main component change (VEVENT: DTSTART goes to the date and
      DTEND follows; VTODO: DUE, or DTSTART without DUE, goes there and the other follows);
      every other byte stays as it was (no new DTSTAMP, SEQUENCE, folding or line ends).
      Prints {"file", "uid", "from", "to", "changed": [property names]}.
  push --dir D [--user U --password P] [--conflict ...]
      `vdirsyncer sync` again with the URL and auth stored by pull, so local edits go back.

pull and push print {"dir", "files": [{"file", "uid", "component", "ical"}], "log": [...]}
("log" is vdirsyncer's own output, e.g. "Copying (updating) item UID to remote").

--conflict (when the server and the file both changed since the last sync): "error" (the
default, vdirsyncer's own) fails the sync and changes neither side, so a test sees the
conflict instead of one side silently winning; "remote-wins" / "local-wins" are vdirsyncer's
"a wins" / "b wins" (a = the server, b = the directory).
"""

import argparse
import datetime as dt
import importlib.util
import json
import os
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from xml.etree import ElementTree

STATE = ".vdirsyncer"  # under D; vdirsyncer's filesystem storage ignores it (no .ics suffix)
PAIR = "cal"
PASSWORD_ENV = "VDIR_ROUNDTRIP_PASSWORD"
VDIRSYNCER_TIMEOUT_S = 120
PROBE_TIMEOUT_S = 10
CONFLICT = {"error": None, "remote-wins": "a wins", "local-wins": "b wins"}
DATE_PROPS = ("DTSTART", "DTEND", "DUE")
MAIN_COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")


class Failure(Exception):
    """The step failed (exit 1); `result`, if any, still goes to stdout."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


class UsageError(Exception):
    """Wrong or missing arguments or state (exit 2)."""


# --- vdirsyncer config and runs ------------------------------------------------------------


def state_path(d, *parts):
    return os.path.join(os.path.abspath(d), STATE, *parts)


def load_settings(d):
    """What pull stored (url, user, auth, ca): never the password."""
    try:
        with open(state_path(d, "settings.json"), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{d} has no vdirsyncer state: run pull first") from None


def save_settings(d, settings):
    os.makedirs(state_path(d, "status"), exist_ok=True)
    with open(state_path(d, "settings.json"), "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1)


PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/></d:prop></d:propfind>'
)
CALDAV_CALENDAR = "{urn:ietf:params:xml:ns:caldav}calendar"


def propfind(url, ca, auth_handler=None):
    """(status, body, auth schemes challenged) of a Depth-0 PROPFIND of DAV:resourcetype."""
    handlers = (
        [urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca))] if ca else []
    )
    opener = urllib.request.build_opener(*handlers, *([auth_handler] if auth_handler else []))
    headers = {"Depth": "0", "Content-Type": "application/xml; charset=utf-8"}
    req = urllib.request.Request(url, data=PROPFIND_BODY, method="PROPFIND", headers=headers)
    try:
        with opener.open(req, timeout=PROBE_TIMEOUT_S) as r:
            return r.status, r.read(), []
    except urllib.error.HTTPError as e:
        challenges = e.headers.get_all("WWW-Authenticate") or []
        return e.code, b"", [c.split(None, 1)[0].lower() for c in challenges if c.strip()]
    except (urllib.error.URLError, OSError) as e:
        raise Failure(f"cannot reach {url}: {getattr(e, 'reason', e)}") from None


def probe(url, user, password, ca):
    """Checks that `url` is a calendar the credentials can read; returns the auth scheme the
    server challenged with ("digest" if it offers Digest and not Basic, "basic", or None)."""
    status, body, schemes = propfind(url, ca)
    scheme = None
    if status == 401:
        if not user:
            raise Failure(
                f"{url} asks for credentials ({', '.join(schemes)}): give --user and --password"
            )
        scheme = "digest" if "digest" in schemes and "basic" not in schemes else "basic"
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, url, user, password)
        handler = (
            urllib.request.HTTPDigestAuthHandler
            if scheme == "digest"
            else urllib.request.HTTPBasicAuthHandler
        )(passwords)
        status, body, _ = propfind(url, ca, handler)
    if status == 401:
        raise Failure(f"{url} refused the credentials of {user} ({scheme})")
    if status != 207:
        raise Failure(f"PROPFIND {url} -> HTTP {status}")
    try:
        calendar = ElementTree.fromstring(body).find(f".//{{DAV:}}resourcetype/{CALDAV_CALENDAR}")
    except ElementTree.ParseError as e:
        raise Failure(f"PROPFIND {url}: unreadable answer: {e}") from None
    if calendar is None:
        raise Failure(f"{url} is not a calendar collection")
    return scheme


def config_text(d, settings, user, conflict):
    """The vdirsyncer config (values are JSON, as vdirsyncer parses them)."""
    q = json.dumps
    remote = [f"url = {q(settings['url'])}"]
    if user:
        remote += [
            f"username = {q(user)}",
            f'password.fetch = ["command", "printenv", {q(PASSWORD_ENV)}]',
        ]
    if user and settings.get("auth"):
        remote.append(f"auth = {q(settings['auth'])}")
    if settings.get("ca"):
        remote.append(f"verify = {q(settings['ca'])}")
    return "\n".join(
        [
            "[general]",
            f"status_path = {q(state_path(d, 'status'))}",
            "",
            f"[pair {PAIR}]",
            'a = "remote"',
            'b = "local"',
            "collections = null",
            f"conflict_resolution = {q(CONFLICT[conflict])}",
            "",
            "[storage remote]",
            'type = "caldav"',
            *remote,
            "",
            "[storage local]",
            'type = "filesystem"',
            f"path = {q(os.path.abspath(d))}",
            'fileext = ".ics"',
            "",
        ]
    )


def run_vdirsyncer(d, password, *command):
    """Runs `vdirsyncer -c CONFIG COMMAND` with no terminal; returns its output lines."""
    env = dict(os.environ)
    env.pop(PASSWORD_ENV, None)
    if password:
        env[PASSWORD_ENV] = password
    argv = [sys.executable, "-m", "vdirsyncer", "-c", state_path(d, "config"), *command]
    try:
        p = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=VDIRSYNCER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise Failure(
            f"vdirsyncer {' '.join(command)} took over {VDIRSYNCER_TIMEOUT_S} s"
        ) from None
    lines = [l for l in (p.stdout + p.stderr).splitlines() if l.strip()]
    if password:  # vdirsyncer does not print it, but never risk it in a test log
        lines = [l.replace(password, "***") for l in lines]
    if p.returncode != 0:
        first_error = next(
            (l for l in lines if l.startswith("error:")), lines[-1] if lines else "no output"
        )
        raise Failure(
            f"vdirsyncer {' '.join(command)} exited {p.returncode}: {first_error}", {"log": lines}
        )
    return lines


def user_of(args, settings):
    """The user name to log in with (--user, else the one pull stored); checks --password."""
    if args.password is not None and not args.user:
        raise UsageError("--password needs --user")
    user = args.user or settings.get("user")
    if user and args.password is None:
        raise UsageError(f"{user} at {settings['url']} needs --password")
    if importlib.util.find_spec("vdirsyncer") is None:
        raise UsageError(
            f"vdirsyncer is not installed for {sys.executable} (tests/requirements.txt)"
        )
    return user


def sync(d, settings, user, args):
    """Writes the config, then `discover` (cheap, and needed after any config change) + `sync`."""
    with open(state_path(d, "config"), "w", encoding="utf-8") as f:
        f.write(config_text(d, settings, user, args.conflict))
    log = []
    try:
        log += run_vdirsyncer(d, args.password, "discover", PAIR)
        log += run_vdirsyncer(d, args.password, "sync", PAIR)
    except Failure as e:
        log += (e.result or {}).get("log", [])
        e.result = {"dir": os.path.abspath(d), "files": list_files(d), "log": log}
        raise
    return {"dir": os.path.abspath(d), "files": list_files(d), "log": log}


def list_files(d):
    out = []
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if name.endswith(".ics") and os.path.isfile(path):
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
            block = next((b for b in main_blocks(text.split("\n"))), None)
            out.append(
                {
                    "file": name,
                    "uid": block and block["uid"],
                    "component": block and block["name"],
                    "ical": text,
                }
            )
    return out


def cmd_pull(args):
    if not re.match(r"https?://", args.url):
        raise UsageError(f"--url must be an http(s) URL: {args.url!r}")
    url = args.url if args.url.endswith("/") else args.url + "/"
    user_of(args, {"url": url})
    os.makedirs(args.dir, exist_ok=True)
    if os.path.exists(state_path(args.dir, "settings.json")):
        old = load_settings(args.dir)
        if old["url"] != url:
            raise UsageError(f"{args.dir} already syncs {old['url']}, not {url}")
    challenged = probe(url, args.user, args.password, args.ca)
    auth = challenged if args.auth == "auto" else args.auth
    settings = {"url": url, "user": args.user, "auth": auth if args.user else None, "ca": args.ca}
    save_settings(args.dir, settings)
    return sync(args.dir, settings, args.user, args)


def cmd_push(args):
    if not os.path.isdir(args.dir):
        raise UsageError(f"no such directory: {args.dir}")
    settings = load_settings(args.dir)
    user = user_of(args, settings)
    probe(settings["url"], user, args.password, settings.get("ca"))
    return sync(args.dir, settings, user, args)


# --- editing a file as text -----------------------------------------------------------------


def logical_lines(physical):
    """[(first physical index, last physical index, unfolded text without CR)]."""
    out = []
    for i, line in enumerate(physical):
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t") and out:
            first, _, text = out[-1]
            out[-1] = (first, i, text + line[1:])
        else:
            out.append((i, i, line))
    return out


def main_blocks(physical):
    """The components directly under VCALENDAR: {"name", "uid", "rid", "props": {NAME: (first,
    last, text)}} with only their own properties (not those of VALARM etc.)."""
    stack, block = [], None
    for first, last, text in logical_lines(physical):
        name, _, value = text.partition(":")
        key = name.split(";", 1)[0].upper()
        if key == "BEGIN":
            stack.append(value.strip().upper())
            if len(stack) == 2 and stack[1] in MAIN_COMPONENTS:
                block = {"name": stack[1], "uid": None, "rid": False, "props": {}}
        elif key == "END":
            if len(stack) == 2 and block is not None:
                yield block
                block = None
            if stack:
                stack.pop()
        elif block is not None and len(stack) == 2:
            block["props"].setdefault(key, (first, last, text))
            if key == "UID":
                block["uid"] = value
            elif key == "RECURRENCE-ID":
                block["rid"] = True


DATE_LINE = re.compile(r"(?i)((?:DTSTART|DTEND|DUE)(?:;[^:\r]*)?:)(\d{8})((?:T\d{6}Z?)?\r?)$")


def shift_line(line, delta):
    """The same physical line with its date digits moved by `delta` (nothing else touched)."""
    m = DATE_LINE.match(line)
    if not m:
        raise Failure(f"cannot edit this line as a plain date: {line.rstrip()!r}")
    day = dt.datetime.strptime(m.group(2), "%Y%m%d").date() + delta
    return f"{m.group(1)}{day:%Y%m%d}{m.group(3)}"


def move_dates(text, uid, to):
    """(new text, old anchor date, changed property names) for UID's main component."""
    physical = text.split("\n")
    block = next((b for b in main_blocks(physical) if b["uid"] == uid and not b["rid"]), None)
    if block is None:
        raise Failure(f"no main component with UID {uid}")
    order = ("DUE", "DTSTART") if block["name"] == "VTODO" else ("DTSTART",)
    anchor = next((n for n in order if n in block["props"]), None)
    if anchor is None:
        raise Failure(f"the {block['name']} {uid} has no {' or '.join(order)}")
    changed = [n for n in DATE_PROPS if n in block["props"]]
    for name in changed:
        first, last, _ = block["props"][name]
        if first != last:
            raise Failure(f"{name} of {uid} is folded over several lines: edit it by hand")
    anchor_line = physical[block["props"][anchor][0]]
    old = DATE_LINE.match(anchor_line)
    if not old:
        raise Failure(f"{anchor} of {uid} is not a plain date: {anchor_line.rstrip()!r}")
    start = dt.datetime.strptime(old.group(2), "%Y%m%d").date()
    for name in changed:
        i = block["props"][name][0]
        physical[i] = shift_line(physical[i], to - start)
    return "\n".join(physical), start, changed


def find_file(d, uid):
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if not (name.endswith(".ics") and os.path.isfile(path)):
            continue
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        if any(b["uid"] == uid for b in main_blocks(text.split("\n"))):
            return path, text
    raise Failure(f"no .ics file in {d} has UID {uid}")


def cmd_edit_date(args):
    if not os.path.isdir(args.dir):
        raise UsageError(f"no such directory: {args.dir}")
    path, text = find_file(args.dir, args.uid)
    new, start, changed = move_dates(text, args.uid, args.to)
    tmp = path + ".edit.tmp"  # replace, like editors do: a new inode, so vdirsyncer sees it
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(new)
    os.replace(tmp, path)
    return {
        "file": path,
        "uid": args.uid,
        "from": start.isoformat(),
        "to": args.to.isoformat(),
        "changed": changed,
    }


# --- command line ---------------------------------------------------------------------------


def date_arg(text):
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def build_parser():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the top of this file for the output and the --conflict choice.",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    def add_sync(name, fn, help):
        p = sub.add_parser(name, help=help)
        p.add_argument("--dir", required=True, help="the local directory of .ics files")
        p.add_argument("--user")
        p.add_argument("--password", help="passed to vdirsyncer through its environment only")
        p.add_argument("--conflict", choices=sorted(CONFLICT), default="error")
        p.set_defaults(fn=fn)
        return p

    p = add_sync("pull", cmd_pull, "configure vdirsyncer for one calendar and sync it into --dir")
    p.add_argument("--url", required=True, help="the calendar collection URL")
    p.add_argument("--auth", choices=("auto", "basic", "digest"), default="auto")
    p.add_argument("--ca", help="PEM file of the CA for an https URL")
    add_sync("push", cmd_push, "sync --dir again (local edits go to the server)")
    p = sub.add_parser("edit-date", help="move the dates in one .ics file as a text editor would")
    p.add_argument("--dir", required=True)
    p.add_argument("--uid", required=True)
    p.add_argument("--to", required=True, type=date_arg, help="YYYY-MM-DD")
    p.set_defaults(fn=cmd_edit_date)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        result = args.fn(args)
    except UsageError as e:
        print(f"vdir_roundtrip {args.cmd}: {e}", file=sys.stderr)
        return 2
    except Failure as e:
        print(f"vdir_roundtrip {args.cmd}: {e}", file=sys.stderr)
        if e.result is not None:
            json.dump(e.result, sys.stdout, indent=1, ensure_ascii=False)
            sys.stdout.write("\n")
        return 1
    except OSError as e:
        print(f"vdir_roundtrip {args.cmd}: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
