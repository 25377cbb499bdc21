#!/usr/bin/env python3
"""Independent CalDAV verifier for the integration tests.

Talks to a CalDAV server with PyPI `caldav` (transport, Basic/Digest negotiated from the
server's challenge, principal discovery) and parses with PyPI `icalendar`, so the Rust tests
can check what really landed on a server without trusting calplanebot's own codecs.
Run it with the test venv: `$PYTHON tests/caldav_verify.py COMMAND ...` (see servers.env).

Common options: --url URL  [--user NAME --password PW]  [--insecure] (skip TLS verification)

Commands (each prints ONE JSON document on stdout; exit 0 = ok, 1 = failure, 2 = usage):

  dump --url U
      U is a calendar collection (only that one is dumped) or any other URL of the server
      (root, principal, home: all calendars of the principal are dumped).
  put --url CAL_URL --ics FILE [--href NAME.ics] [--overwrite]
      Plain PUT like a user's client would do (FILE may be "-" for stdin; LF line ends are
      sent as CRLF). NAME defaults to "<UID>.ics". Without --overwrite it sends
      If-None-Match: *. Prints {"url", "href", "status", "etag"}, also when it fails
      (exit 1 unless 2xx, e.g. "status": 412 for an existing object).
  mkcal --url HOME --name NAME [--slug SLUG] [--components VEVENT,VTODO]
      MKCALENDAR HOME/SLUG/ (SLUG defaults to NAME made URL-safe). Prints {"url", "status"};
      fails unless 201.
  delete --url OBJECT_OR_CAL_URL [--if-match ETAG]
      Prints {"url", "status"}; fails unless 2xx.
  cleanup --url CAL_URL [--also CAL_URL]...
      DELETEs each (a finished test's calendars). Prints {"deleted": [{"url", "status"}]};
      fails unless each answer is 2xx or 404.
  edit --url OBJECT_URL [--summary TEXT] [--move-to YYYY-MM-DD] [--timed HH:MM [--tzid ZONE | --utc]]
       [--complete | --uncomplete] [--rewrite-only] [--keep-stamps] [--if-match ETAG]
      Edits one object like a user's calendar app: GET (with its ETag), change the main
      component, PUT back with If-Match (a 412 fails loudly: the object changed since the GET).
      The options combine and are applied in this order:
        --summary       replaces SUMMARY.
        --move-to       moves the anchor to that date and the other dates by the same number of
                        days (VEVENT: anchor DTSTART, DTEND follows; VTODO: anchor DUE, or
                        DTSTART without DUE); DATE stays DATE, times keep their wall clock.
        --timed         makes the (moved) dates one-hour timed: VEVENT DTSTART at HH:MM on its
                        date and DTEND one hour later (DURATION dropped); VTODO DUE (and
                        DTSTART) at HH:MM on their dates. --tzid adds TZID and a VTIMEZONE built
                        from zoneinfo, --utc writes "Z" times, neither writes floating times.
        --complete      VTODO: STATUS:COMPLETED, COMPLETED:<now UTC>, PERCENT-COMPLETE:100.
        --uncomplete    VTODO: STATUS:NEEDS-ACTION, COMPLETED and PERCENT-COMPLETE removed.
        --rewrite-only  what apps do on "save" without a change: properties of the main
                        component in reverse order, X-CLIENT-SEEN:1 added, CATEGORIES split
                        into one property per value, lines refolded at 40 octets.
      Only the main component is edited (overrides with RECURRENCE-ID stay as they are).
      Always (unless --keep-stamps): SEQUENCE+1, DTSTAMP and LAST-MODIFIED set to now (UTC).
      --if-match sends that ETag instead of the GET's: an app saving a copy it read earlier.
      Always: PRODID replaced by this tool's. Other properties, components and VALARMs are
      kept (re-serialised by icalendar, properties in their order unless --rewrite-only).
      Prints {"url", "href", "status", "etag_before", "etag_after"} (also on failure).
      Exit 2 for an edit that does not fit the object (e.g. --complete on a VEVENT).
  new --url CAL_URL --uid UID --summary TEXT --date YYYY-MM-DD [--todo] [--href NAME.ics]
      PUTs (If-None-Match: *) a minimal object as a foreign app would create it: an all-day
      VEVENT on that date (DTEND the day after), or with --todo a VTODO with DUE;VALUE=DATE
      and STATUS:NEEDS-ACTION. Prints what `put` prints.
  smoke --url U
      Self-test used by tests/infra_smoke.sh: mkcal + put (VEVENT with VALARM, VTODO) + dump,
      checks the dump, deletes the calendar. Prints {"ok": true, "server": U, ...}.

Shape of `dump` (lists are sorted by url/href; absent values are null or missing keys):

  {"calendars": [{
      "url": "http://127.0.0.1:5232/alice/work/",    absolute URL of the collection
      "name": "Work",                                DAV:displayname (null if none)
      "components": ["VEVENT", "VTODO"],             supported-calendar-component-set (null if not reported)
      "ctag": "...", "sync_token": "...", "color": "#ff0000",   raw property text or null
      "objects": [{
          "href": "/alice/work/x.ics",               path as the server lists it
          "url": "http://.../x.ics",                 absolute
          "etag": "\\"abc\\"",                       getetag as sent (quotes kept)
          "content_type": "text/calendar; ...",
          "ical": "BEGIN:VCALENDAR\\r\\n...",          body of a GET, exactly as served
          "uid": "...", "component": "VEVENT",       the main component (the first one that is
                                                     not VTIMEZONE, preferring one without RECURRENCE-ID)
          "instances": 1,                            number of components with that UID (overrides)
          "props": {NAME: value, ...},               every property of the main component:
              text -> string (unescaped); INTEGER (PRIORITY, SEQUENCE, ...) -> number;
              CATEGORIES -> flat list of strings over all CATEGORIES lines;
              DATE -> "2026-11-24"; DATE-TIME UTC -> "2026-11-24T10:00:00Z";
              DATE-TIME with TZID -> local "2026-11-24T10:00:00" (zone in "tzids");
              floating -> "2026-11-24T10:00:00"; DURATION/RRULE/other -> iCalendar text;
              a property that occurs more than once (other than CATEGORIES) -> list of values
          "value_types": {"DTSTART": "DATE", "DUE": "DATE-TIME", ...},   for every date-ish prop
          "tzids": {"DTSTART": "Europe/Berlin"},     TZID parameters
          "params": {"RELATED-TO": {"RELTYPE": "PARENT"}, ...},   parameters (first occurrence)
          "alarms": 1,                               number of VALARM subcomponents
          "alarm_triggers": ["-PT15M"], "alarm_actions": ["DISPLAY"],
          "parse_error": "..."                       only when icalendar could not parse "ical"
      }]
  }]}
"""

import argparse
import datetime as dt
import json
import re
import sys
import time
import uuid
import zoneinfo
from urllib.parse import unquote, urljoin, urlparse

import caldav
import icalendar

DAV = "DAV:"
CALDAV_NS = "urn:ietf:params:xml:ns:caldav"
CS_NS = "http://calendarserver.org/ns/"
APPLE_NS = "http://apple.com/ns/ical/"

DATE_TYPES = (dt.date, dt.datetime)


# Radicale answers a Depth-1 PROPFIND with 500 when another client (a test running beside
# this one) deletes a sibling calendar while it lists: such a listing is asked again.
RACE_WAITS = (0.5, 1.0, 2.0)


class Failure(Exception):
    """A check or request failed: the message goes to stderr, `result` (if any) still to
    stdout, so a test can assert e.g. the 412 of a refused PUT; the exit code is 1."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


class Gone(Failure):
    """A 404: the resource vanished (tests run in parallel and delete their calendars)."""


def client_for(args):
    return caldav.DAVClient(
        args.url,
        username=args.user,
        password=args.password,
        ssl_verify_cert=not args.insecure,
        timeout=30,
    )


def propfind(client, url, props, depth):
    """PROPFIND `props` (XML snippets) and return [(absolute url, {tag: element})] of 200 props."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<d:propfind xmlns:d="{DAV}" xmlns:c="{CALDAV_NS}" xmlns:cs="{CS_NS}" xmlns:ic="{APPLE_NS}">'
        f"<d:prop>{''.join(props)}</d:prop></d:propfind>"
    )
    headers = {"Depth": str(depth), "Content-Type": 'application/xml; charset="utf-8"'}
    r = client.request(url, "PROPFIND", body, headers)
    for wait in RACE_WAITS:
        if r.status != 500:
            break
        time.sleep(wait)
        r = client.request(url, "PROPFIND", body, headers)
    if r.status == 404:
        raise Gone(f"PROPFIND {url} -> HTTP 404")
    if r.status != 207 or r.tree is None:
        raise Failure(f"PROPFIND {url} -> HTTP {r.status}")
    out = []
    for resp in r.tree.iter(f"{{{DAV}}}response"):
        href = (resp.findtext(f"{{{DAV}}}href") or "").strip()
        found = {}
        for ps in resp.findall(f"{{{DAV}}}propstat"):
            status = ps.findtext(f"{{{DAV}}}status") or ""
            prop = ps.find(f"{{{DAV}}}prop")
            if " 200" not in status or prop is None:
                continue
            for p in prop:
                found[p.tag] = p
        out.append((href, urljoin(url, href), found))
    return out


def same_path(a, b):
    return unquote(urlparse(a).path).rstrip("/") == unquote(urlparse(b).path).rstrip("/")


def text_of(el):
    if el is None:
        return None
    t = "".join(el.itertext()).strip()
    return t or None


def is_calendar(el):
    return el is not None and el.find(f"{{{CALDAV_NS}}}calendar") is not None


def find_calendars(client, url):
    """The calendar URLs to dump: `url` itself if it is a calendar, else the principal's."""
    (_, _, props), *_ = propfind(client, url, ["<d:resourcetype/>"], 0)
    if is_calendar(props.get(f"{{{DAV}}}resourcetype")):
        return [url]
    for wait in (*RACE_WAITS, None):
        try:
            return [str(c.url) for c in client.principal().calendars()]
        except caldav.lib.error.DAVError as e:
            if wait is None or "500" not in str(e):
                raise
            time.sleep(wait)


def fmt_date(value, params):
    """(text, value type) of a date or date-time as documented at the top."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and "TZID" not in params and value.utcoffset() == dt.timedelta(0):
            return value.strftime("%Y-%m-%dT%H:%M:%SZ"), "DATE-TIME"
        return value.replace(tzinfo=None).isoformat(), "DATE-TIME"
    return value.isoformat(), "DATE"


def prop_value(name, v):
    """Returns (json value, value type or None)."""
    params = getattr(v, "params", {}) or {}
    if isinstance(v, icalendar.prop.vCategory):
        return [str(c) for c in v.cats], None
    inner = getattr(v, "dt", None)
    if isinstance(inner, DATE_TYPES):
        return fmt_date(inner, params)
    if isinstance(v, DATE_TYPES):
        return fmt_date(v, params)
    if isinstance(v, icalendar.prop.vDDDLists):
        vals = [fmt_date(d.dt, params) for d in v.dts]
        return ",".join(t for t, _ in vals), (vals[0][1] if vals else None)
    if isinstance(v, bool):
        return v, None
    if isinstance(v, int):
        return int(v), None
    if isinstance(v, float):
        return float(v), None
    if isinstance(v, str):
        return str(v), None
    try:
        return v.to_ical().decode("utf-8", "replace"), None
    except Exception:  # unknown value class: keep something readable
        return str(v), None


def main_component(cal):
    comps = [c for c in cal.subcomponents if c.name != "VTIMEZONE"]
    if not comps:
        return None, 0
    masters = [c for c in comps if "RECURRENCE-ID" not in c]
    main = (masters or comps)[0]
    uid = str(main.get("UID", ""))
    return main, sum(1 for c in comps if str(c.get("UID", "")) == uid)


def describe_ical(text):
    """The parsed part of an object entry (see the docstring)."""
    out = {}
    try:
        cal = icalendar.Calendar.from_ical(text)
    except Exception as e:
        return {"parse_error": f"{type(e).__name__}: {e}"}
    main, instances = main_component(cal)
    if main is None:
        return {"parse_error": "no component besides VTIMEZONE"}
    props, types, tzids, params, counts = {}, {}, {}, {}, {}
    for name, v in main.property_items(recursive=False):
        if name in ("BEGIN", "END"):
            continue
        value, vtype = prop_value(name, v)
        p = dict(getattr(v, "params", {}) or {})
        if name == "CATEGORIES":
            props.setdefault(name, []).extend(value)
            continue
        counts[name] = counts.get(name, 0) + 1
        if counts[name] == 1:
            props[name] = value
            if vtype:
                types[name] = vtype
            if "TZID" in p:
                tzids[name] = str(p["TZID"])
            if p:
                params[name] = {k: str(pv) for k, pv in p.items()}
        elif counts[name] == 2:
            props[name] = [props[name], value]
        else:
            props[name].append(value)
    alarms = [c for c in main.subcomponents if c.name == "VALARM"]
    out.update(
        uid=str(main.get("UID")) if "UID" in main else None,
        component=main.name,
        instances=instances,
        props=props,
        value_types=types,
        tzids=tzids,
        params=params,
        alarms=len(alarms),
        alarm_triggers=[
            a["TRIGGER"].to_ical().decode() if "TRIGGER" in a else None for a in alarms
        ],
        alarm_actions=[str(a.get("ACTION")) if "ACTION" in a else None for a in alarms],
    )
    return out


def get_body(client, url):
    r = client.request(url, "GET")
    if r.status == 404:
        raise Gone(f"GET {url} -> HTTP 404")
    if r.status != 200:
        raise Failure(f"GET {url} -> HTTP {r.status}")
    # _raw_body keeps the bytes as served; the public .raw has CRLF folded to LF.
    raw = getattr(r, "_raw_body", b"") or (r.raw.encode() if r.raw else b"")
    return raw.decode("utf-8", "replace"), r.headers.get("ETag")


def dump_calendar(client, url):
    props_wanted = [
        "<d:displayname/>",
        "<d:resourcetype/>",
        "<c:supported-calendar-component-set/>",
        "<cs:getctag/>",
        "<d:sync-token/>",
        "<ic:calendar-color/>",
    ]
    (_, _, p), *_ = propfind(client, url, props_wanted, 0)
    comp_set = p.get(f"{{{CALDAV_NS}}}supported-calendar-component-set")
    components = None
    if comp_set is not None:
        components = sorted(c.get("name") for c in comp_set.findall(f"{{{CALDAV_NS}}}comp"))
    cal = {
        "url": url,
        "name": text_of(p.get(f"{{{DAV}}}displayname")),
        "components": components,
        "ctag": text_of(p.get(f"{{{CS_NS}}}getctag")),
        "sync_token": text_of(p.get(f"{{{DAV}}}sync-token")),
        "color": text_of(p.get(f"{{{APPLE_NS}}}calendar-color")),
        "objects": [],
    }
    listing = propfind(
        client, url, ["<d:getetag/>", "<d:getcontenttype/>", "<d:resourcetype/>"], 1
    )
    for href, abs_url, props in sorted(listing, key=lambda x: x[1]):
        rt = props.get(f"{{{DAV}}}resourcetype")
        if same_path(abs_url, url) or (rt is not None and rt.find(f"{{{DAV}}}collection") is not None):
            continue
        try:
            body, get_etag = get_body(client, abs_url)
        except Gone:
            continue  # deleted since the listing
        obj = {
            "href": href,
            "url": abs_url,
            "etag": text_of(props.get(f"{{{DAV}}}getetag")) or get_etag,
            "content_type": text_of(props.get(f"{{{DAV}}}getcontenttype")),
            "ical": body,
        }
        obj.update(describe_ical(body))
        cal["objects"].append(obj)
    return cal


def cmd_dump(args):
    client = client_for(args)
    urls = find_calendars(client, args.url)
    calendars = []
    for u in sorted(urls):
        try:
            calendars.append(dump_calendar(client, u))
        except Gone:
            pass  # another test deleted its calendar since the listing
    return {"calendars": calendars}


def crlf(text):
    return re.sub(r"\r?\n", "\r\n", text)


def put_ics(client, cal_url, text, href=None, overwrite=False):
    text = crlf(text)
    if href is None:
        try:
            main, _ = main_component(icalendar.Calendar.from_ical(text))
            uid = str(main["UID"])
        except Exception:
            uid = str(uuid.uuid4())
        href = re.sub(r"[^A-Za-z0-9._@-]", "_", uid) + ".ics"
    url = urljoin(cal_url if cal_url.endswith("/") else cal_url + "/", href)
    headers = {"Content-Type": "text/calendar; charset=utf-8"}
    if not overwrite:
        headers["If-None-Match"] = "*"
    r = client.request(url, "PUT", text, headers)
    res = {"url": url, "href": urlparse(url).path, "status": r.status, "etag": r.headers.get("ETag")}
    if not 200 <= r.status < 300:
        raise Failure(f"PUT {url} -> HTTP {r.status}", res)
    return res


def cmd_put(args):
    text = sys.stdin.read() if args.ics == "-" else open(args.ics, encoding="utf-8").read()
    return put_ics(client_for(args), args.url, text, args.href, args.overwrite)


def mkcal(client, home, name, slug=None, components="VEVENT,VTODO"):
    slug = slug or re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or str(uuid.uuid4())
    url = urljoin(home if home.endswith("/") else home + "/", slug + "/")
    comps = "".join(f'<c:comp name="{c.strip()}"/>' for c in components.split(",") if c.strip())
    esc = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<c:mkcalendar xmlns:d="{DAV}" xmlns:c="{CALDAV_NS}"><d:set><d:prop>'
        f"<d:displayname>{esc}</d:displayname>"
        f"<c:supported-calendar-component-set>{comps}</c:supported-calendar-component-set>"
        "</d:prop></d:set></c:mkcalendar>"
    )
    r = client.request(url, "MKCALENDAR", body, {"Content-Type": 'application/xml; charset="utf-8"'})
    res = {"url": url, "status": r.status}
    if r.status != 201:
        raise Failure(f"MKCALENDAR {url} -> HTTP {r.status}", res)
    return res


def cmd_mkcal(args):
    return mkcal(client_for(args), args.url, args.name, args.slug, args.components)


def cmd_delete(args):
    headers = {"If-Match": args.if_match} if args.if_match else {}
    r = client_for(args).request(args.url, "DELETE", "", headers)
    res = {"url": args.url, "status": r.status}
    if not 200 <= r.status < 300:
        raise Failure(f"DELETE {args.url} -> HTTP {r.status}", res)
    return res


def cmd_cleanup(args):
    """DELETE --url and every --also (a test's calendars); ones already gone are fine."""
    client = client_for(args)
    out = []
    for url in [args.url, *args.also]:
        r = client.request(url, "DELETE", "", {})
        if not (200 <= r.status < 300 or r.status == 404):
            raise Failure(f"DELETE {url} -> HTTP {r.status}", {"deleted": out})
        out.append({"url": url, "status": r.status})
    return {"deleted": out}


class UsageError(Exception):
    """The request does not fit the object or the options (exit 2, one line on stderr)."""


PRODID = "-//calplanebot tests//caldav_verify edit//EN"
REFOLD_OCTETS = 40  # shorter than icalendar's 75, so every long line folds elsewhere
UTC = dt.timezone.utc


def now_utc():
    return dt.datetime.now(UTC).replace(microsecond=0)


def date_arg(text):
    """argparse type for YYYY-MM-DD."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def time_arg(text):
    """argparse type for HH:MM."""
    if re.fullmatch(r"\d\d:\d\d", text):
        try:
            return dt.time.fromisoformat(text)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"not a HH:MM time: {text!r}")


def etag_of(client, url):
    """getetag by PROPFIND, for servers that send no ETag header on GET or PUT."""
    (_, _, props), *_ = propfind(client, url, ["<d:getetag/>"], 0)
    return text_of(props.get(f"{{{DAV}}}getetag"))


def day_of(value):
    """The calendar date of a DATE or DATE-TIME value (local date for a zoned time)."""
    return value.date() if isinstance(value, dt.datetime) else value


def set_date(comp, name, value, keep_tzid=False):
    """Replaces a date property in place (same position). `keep_tzid`: the value kept its
    zone, so keep the TZID text as written (a custom name icalendar would not reproduce)."""
    old = comp.get(name)
    new = icalendar.vDDDTypes(value)
    old_tzid = getattr(old, "params", {}).get("TZID") if old is not None else None
    if keep_tzid and old_tzid and "TZID" in new.params:
        new.params["TZID"] = old_tzid
    comp[name] = new


def move_to(comp, day):
    """--move-to: shift the anchor to `day` and the other dates by the same delta."""
    order = ("DUE", "DTSTART") if comp.name == "VTODO" else ("DTSTART",)
    anchor = next((n for n in order if n in comp), None)
    if anchor is None:
        raise UsageError(f"--move-to: the {comp.name} has no {' or '.join(order)}")
    delta = day - day_of(comp[anchor].dt)
    for name in ("DTSTART", "DTEND", "DUE"):
        if name in comp:
            set_date(comp, name, comp[name].dt + delta, keep_tzid=True)


def timed(comp, at, tz):
    """--timed: one-hour timed event (or timed DUE/DTSTART of a task) at `at` in `tz`."""
    def on(name):
        return dt.datetime.combine(day_of(comp[name].dt), at, tzinfo=tz)

    if comp.name == "VTODO":
        names = [n for n in ("DUE", "DTSTART") if n in comp]
        if not names:
            raise UsageError("--timed: the VTODO has no DUE or DTSTART")
        for name in names:
            set_date(comp, name, on(name))
        return
    if "DTSTART" not in comp:
        raise UsageError(f"--timed: the {comp.name} has no DTSTART")
    start = on("DTSTART")
    set_date(comp, "DTSTART", start)
    comp.pop("DURATION", None)
    if "DTEND" in comp:
        set_date(comp, "DTEND", start + dt.timedelta(hours=1))
    else:
        comp.add("DTEND", start + dt.timedelta(hours=1))


def complete(comp, done):
    """--complete / --uncomplete on a VTODO."""
    if comp.name != "VTODO":
        raise UsageError(f"--{'' if done else 'un'}complete needs a VTODO, not a {comp.name}")
    comp["STATUS"] = icalendar.vText("COMPLETED" if done else "NEEDS-ACTION")
    if done:
        comp["COMPLETED"] = icalendar.vDDDTypes(now_utc())
        comp["PERCENT-COMPLETE"] = icalendar.vInt(100)
    else:
        comp.pop("COMPLETED", None)
        comp.pop("PERCENT-COMPLETE", None)


def bump_stamps(comp):
    """What every client does on save: SEQUENCE+1, fresh DTSTAMP and LAST-MODIFIED."""
    comp["SEQUENCE"] = icalendar.vInt(int(comp.get("SEQUENCE", 0)) + 1)
    comp["DTSTAMP"] = icalendar.vDDDTypes(now_utc())
    comp["LAST-MODIFIED"] = icalendar.vDDDTypes(now_utc())


def rewrite(comp):
    """--rewrite-only (minus the refolding): reorder, mark as seen, split CATEGORIES."""
    items = list(comp.items())
    comp.clear()
    for name, value in reversed(items):
        if name == "CATEGORIES":
            cats = [c for v in (value if isinstance(value, list) else [value]) for c in v.cats]
            value = [icalendar.vCategory([str(c)]) for c in cats]
        comp[name] = value
    comp["X-CLIENT-SEEN"] = icalendar.vInt(1)


def refold(text, width=REFOLD_OCTETS):
    """Unfolds every line and folds it again after `width` octets (UTF-8 safe)."""
    out = []
    for line in re.sub(r"\r\n[ \t]", "", text).split("\r\n"):
        raw = line.encode("utf-8")
        chunks, start = [], 0
        while len(raw) - start > width:
            end = start + width
            while end > start and (raw[end] & 0xC0) == 0x80:  # not inside a UTF-8 sequence
                end -= 1
            chunks.append(raw[start:end])
            start = end
        chunks.append(raw[start:])
        out.append(b"\r\n ".join(chunks).decode("utf-8"))
    return "\r\n".join(out)


def zone_arg(args):
    """The tzinfo for --timed: ZoneInfo(--tzid), UTC (--utc) or None (floating)."""
    if args.utc:
        return UTC
    if not args.tzid:
        return None
    try:
        return zoneinfo.ZoneInfo(args.tzid)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tzid: unknown time zone {args.tzid!r}") from None


def apply_edit(text, args, tz=None):
    """The edited iCalendar text of `text` (the options are documented at the top)."""
    try:
        cal = icalendar.Calendar.from_ical(text)
    except Exception as e:
        raise Failure(f"cannot parse the object: {type(e).__name__}: {e}") from None
    comp, _ = main_component(cal)
    if comp is None:
        raise Failure("the object has no component besides VTIMEZONE")
    if args.summary is not None:
        comp["SUMMARY"] = icalendar.vText(args.summary)
    if args.move_to:
        move_to(comp, args.move_to)
    if args.timed:
        timed(comp, args.timed, tz)
    if args.complete or args.uncomplete:
        complete(comp, args.complete)
    if not args.keep_stamps:
        bump_stamps(comp)
    if args.rewrite_only:
        rewrite(comp)
    cal["PRODID"] = icalendar.vText(PRODID)
    if args.tzid and args.timed:
        year = day_of(comp.get("DTSTART", comp.get("DUE")).dt).year
        cal.add_missing_timezones(dt.date(year - 1, 1, 1), dt.date(year + 2, 1, 1))
    out = cal.to_ical(sorted=False).decode("utf-8")
    return refold(out) if args.rewrite_only else out


def cmd_edit(args):
    changes = args.move_to or args.timed or args.complete or args.uncomplete or args.rewrite_only
    if args.summary is None and not changes:
        raise UsageError(
            "nothing to edit: give --summary, --move-to, --timed, --complete, --uncomplete"
            " or --rewrite-only"
        )
    if (args.tzid or args.utc) and not args.timed:
        raise UsageError("--tzid and --utc only go with --timed")
    tz = zone_arg(args)
    client = client_for(args)
    body, etag = get_body(client, args.url)
    etag = args.if_match or etag or etag_of(client, args.url)
    if not etag:
        raise Failure(f"GET {args.url}: the server gave no ETag, cannot send If-Match")
    text = apply_edit(body, args, tz)
    headers = {"Content-Type": "text/calendar; charset=utf-8", "If-Match": etag}
    r = client.request(args.url, "PUT", text, headers)
    res = {"url": args.url, "href": urlparse(args.url).path, "status": r.status}
    res.update(etag_before=etag, etag_after=None)
    if r.status == 412:
        why = f"the object changed since the GET (If-Match {etag})"
        raise Failure(f"PUT {args.url} -> HTTP 412: {why}", res)
    if not 200 <= r.status < 300:
        raise Failure(f"PUT {args.url} -> HTTP {r.status}", res)
    res["etag_after"] = r.headers.get("ETag") or etag_of(client, args.url)
    return res


NEW_OBJECT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//calplanebot tests//foreign app//EN
BEGIN:{comp}
UID:{uid}
DTSTAMP:{stamp}
{dates}
SUMMARY:{summary}
END:{comp}
END:VCALENDAR
"""


def cmd_new(args):
    if args.todo:
        dates = f"DUE;VALUE=DATE:{args.date:%Y%m%d}\nSTATUS:NEEDS-ACTION"
    else:
        end = args.date + dt.timedelta(days=1)
        dates = f"DTSTART;VALUE=DATE:{args.date:%Y%m%d}\nDTEND;VALUE=DATE:{end:%Y%m%d}"
    text = NEW_OBJECT.format(
        comp="VTODO" if args.todo else "VEVENT",
        uid=args.uid,
        stamp=now_utc().strftime("%Y%m%dT%H%M%SZ"),
        dates=dates,
        summary=icalendar.vText(args.summary).to_ical().decode("utf-8"),
    )
    return put_ics(client_for(args), args.url, text, args.href)


SMOKE_EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//calplanebot tests//caldav_verify//EN
BEGIN:VEVENT
UID:{uid}-ev
DTSTAMP:20261101T120000Z
DTSTART;VALUE=DATE:20261124
DTEND;VALUE=DATE:20261125
SUMMARY:Smoke\\, event
CATEGORIES:plane,smoke
X-PLANE-WORK-ITEM-ID:wi-1
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:reminder
TRIGGER:-PT15M
END:VALARM
END:VEVENT
END:VCALENDAR
"""

SMOKE_TODO = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//calplanebot tests//caldav_verify//EN
BEGIN:VTODO
UID:{uid}-todo
DTSTAMP:20261101T120000Z
DUE:20261124T100000Z
SUMMARY:Smoke todo
PRIORITY:5
STATUS:NEEDS-ACTION
END:VTODO
END:VCALENDAR
"""


def cmd_smoke(args):
    client = client_for(args)
    home = client.principal().calendar_home_set.url
    uid = uuid.uuid4().hex[:12]
    cal = mkcal(client, str(home), f"Smoke {uid}", f"smoke-{uid}")
    put_ics(client, cal["url"], SMOKE_EVENT.format(uid=uid))
    put_ics(client, cal["url"], SMOKE_TODO.format(uid=uid))
    dumped = [c for c in cmd_dump(args)["calendars"] if same_path(c["url"], cal["url"])]
    if len(dumped) != 1:
        raise Failure(f"calendar {cal['url']} not found by discovery")
    objs = {o["uid"]: o for o in dumped[0]["objects"]}
    ev, todo = objs.get(f"{uid}-ev"), objs.get(f"{uid}-todo")
    expect = [
        (dumped[0]["name"], f"Smoke {uid}"),
        (ev and ev["component"], "VEVENT"),
        (ev and ev["props"].get("SUMMARY"), "Smoke, event"),
        (ev and ev["props"].get("DTSTART"), "2026-11-24"),
        (ev and ev["value_types"].get("DTSTART"), "DATE"),
        (ev and ev["props"].get("CATEGORIES"), ["plane", "smoke"]),
        (ev and ev["props"].get("X-PLANE-WORK-ITEM-ID"), "wi-1"),
        (ev and ev["alarms"], 1),
        (ev and ev["alarm_triggers"], ["-PT15M"]),
        (ev and bool(ev["etag"]), True),
        (todo and todo["component"], "VTODO"),
        (todo and todo["props"].get("DUE"), "2026-11-24T10:00:00Z"),
        (todo and todo["props"].get("PRIORITY"), 5),
    ]
    bad = [(got, want) for got, want in expect if got != want]
    if bad:
        raise Failure(f"smoke check mismatches (got, want): {bad}")
    client.request(cal["url"], "DELETE")
    return {"ok": True, "server": args.url, "calendar": cal["url"], "objects": len(objs)}


def build_parser():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the top of this file for each command's output.",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    def add(name, fn, help):
        p = sub.add_parser(name, help=help)
        p.add_argument("--url", required=True)
        p.add_argument("--user")
        p.add_argument("--password")
        p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
        p.set_defaults(fn=fn)
        return p

    add("dump", cmd_dump, "every object of a calendar (or of all calendars) as JSON")
    p = add("put", cmd_put, "PUT an iCalendar file into a calendar")
    p.add_argument("--ics", required=True, help='iCalendar file, or "-" for stdin')
    p.add_argument("--href", help="object name inside the calendar (default: <UID>.ics)")
    p.add_argument("--overwrite", action="store_true", help="do not send If-None-Match: *")
    p = add("mkcal", cmd_mkcal, "MKCALENDAR under a calendar home")
    p.add_argument("--name", required=True)
    p.add_argument("--slug")
    p.add_argument("--components", default="VEVENT,VTODO")
    p = add("delete", cmd_delete, "DELETE an object or a calendar")
    p.add_argument("--if-match")
    p = add("cleanup", cmd_cleanup, "DELETE a test's calendars (404 is fine)")
    p.add_argument("--also", action="append", default=[], help="one more URL to delete")
    p = add("edit", cmd_edit, "edit one object like a calendar app (GET, change, PUT If-Match)")
    add_edit_args(p)
    p = add("new", cmd_new, "create a minimal all-day VEVENT or VTODO as a foreign app would")
    p.add_argument("--uid", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--date", required=True, type=date_arg, help="YYYY-MM-DD")
    p.add_argument("--todo", action="store_true", help="a VTODO with DUE instead of a VEVENT")
    p.add_argument("--href", help="object name inside the calendar (default: <UID>.ics)")
    add("smoke", cmd_smoke, "self-test against one server (tests/infra_smoke.sh)")
    return ap


def add_edit_args(p):
    flag = {"action": "store_true"}
    p.add_argument("--summary", help="new SUMMARY")
    p.add_argument("--move-to", type=date_arg, metavar="YYYY-MM-DD", help="move, keep durations")
    p.add_argument("--timed", type=time_arg, metavar="HH:MM", help="one-hour timed event at HH:MM")
    zone = p.add_mutually_exclusive_group()
    zone.add_argument("--tzid", metavar="ZONE", help="with --timed: in this zone (Europe/Berlin)")
    zone.add_argument("--utc", **flag, help="with --timed: UTC time")
    done = p.add_mutually_exclusive_group()
    done.add_argument("--complete", **flag, help="VTODO: mark completed")
    done.add_argument("--uncomplete", **flag, help="VTODO: mark needs-action again")
    p.add_argument("--rewrite-only", **flag, help="reorder, mark seen, split CATEGORIES, refold")
    p.add_argument("--keep-stamps", **flag, help="leave SEQUENCE, DTSTAMP, LAST-MODIFIED alone")
    p.add_argument("--if-match", metavar="ETAG", help="send this ETag, not the GET's (a stale app)")


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        result = args.fn(args)
    except UsageError as e:
        print(f"caldav_verify {args.cmd}: {e}", file=sys.stderr)
        return 2
    except Failure as e:
        print(f"caldav_verify {args.cmd}: {e}", file=sys.stderr)
        if e.result is not None:
            json.dump(e.result, sys.stdout, indent=1, ensure_ascii=False)
            sys.stdout.write("\n")
        return 1
    except Exception as e:  # caldav/network errors: report, do not dump a traceback
        print(f"caldav_verify {args.cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
