#!/usr/bin/env python3
"""The dates a team sees for a Plane cycle, computed with Python's zoneinfo, for tests/timeline.rs.

  timeline_verify.py local-dates START END ZONE
      START and END are the cycle's UTC instants as Plane stores them (RFC 3339, e.g.
      2026-12-06T15:00:00Z), ZONE an IANA name (the cycle's `timezone`). Prints JSON:
      {"first_day": "2026-12-07", "last_day": "2026-12-20", "dtend": "2026-12-21"}:
      the local dates of both instants in ZONE and the exclusive end date of an all-day
      event covering them (RFC 5545: DTEND;VALUE=DATE is the day after the last day).

It is an oracle independent of calplanebot's own zone code (src/tz.rs): the test compares
the events on the CalDAV server with its answer. Exit status 1 with a message on stderr
when an argument is malformed, 2 when zoneinfo (or its tz database) is missing, so a broken
setup fails the test instead of passing it.
"""

import datetime
import importlib.util
import json
import sys


def need(module):
    if importlib.util.find_spec(module) is None:
        print(f"{module} is not available for {sys.executable}", file=sys.stderr)
        sys.exit(2)


def instant(text):
    """An RFC 3339 UTC instant ("Z" or an offset) as an aware datetime."""
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        print(f"not an RFC 3339 instant: {text!r}", file=sys.stderr)
        sys.exit(1)
    if value.tzinfo is None:
        print(f"instant without a zone: {text!r}", file=sys.stderr)
        sys.exit(1)
    return value


def cmd_local_dates(start, end, zone):
    need("zoneinfo")
    import zoneinfo

    try:
        tz = zoneinfo.ZoneInfo(zone)
    except zoneinfo.ZoneInfoNotFoundError:
        print(f"zone {zone!r} is not in the tz database", file=sys.stderr)
        sys.exit(2)
    first = instant(start).astimezone(tz).date()
    last = instant(end).astimezone(tz).date()
    print(
        json.dumps(
            {
                "first_day": first.isoformat(),
                "last_day": last.isoformat(),
                "dtend": (last + datetime.timedelta(days=1)).isoformat(),
            }
        )
    )


def main():
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "local-dates":
        cmd_local_dates(args[1], args[2], args[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
