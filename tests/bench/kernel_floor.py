"""The kernel's share of the initial sync's pattern, without calplanebot.

kernel_floor.py URL USER PASSWORD N [CALENDARS] — N PUTs of a ~750-byte event into CALENDARS
(default 4) new calendars, one after the other as calplanebot fills one calendar per
project (Radicale slows down as a calendar grows), each PUT on its own TCP connection (as against Radicale, which closes the connection after every
answer), with nothing else done per request. Prints this process's user and system CPU for
the PUTs: the system part is what any client pays in the kernel for that pattern, the floor
under calplanebot's own `sys` figure in tests/bench/targets.sh. Run by kernel_floor.sh.
"""

import base64
import os
import socket
import sys
import urllib.parse


def request(host, port, auth, method, path, body=b"", extra=""):
    """One request on a new connection; the status code as bytes."""
    s = socket.create_connection((host, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Basic {auth}\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode()
    s.sendall(head + body)
    data = b""
    while True:
        chunk = s.recv(16384)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.split(b" ", 2)[1] if data else b"(no answer)"


def event(i):
    """An event shaped like calplanebot's (same size and properties)."""
    uid = f"plane-issue-{i:08d}-0000-0000-0000-000000000000@calplanebot"
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calplanebot//floor//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261202T000000Z\r\nSUMMARY:[WEB-{i}] Some task name here\r\n"
        "DESCRIPTION:State: Todo\\nPriority: High\\n\\nDetails for this task.\\n\\n"
        "http://plane.example/ws/browse/WEB-1/\r\n"
        "DTSTART;VALUE=DATE:20261124\r\nDTEND;VALUE=DATE:20261125\r\n"
        "URL:http://plane.example/ws/browse/WEB-1/\r\nPRIORITY:3\r\nCOLOR:orange\r\n"
        "TRANSP:TRANSPARENT\r\nX-PLANE-WORK-ITEM-ID:abc\r\nX-PLANE-PROJECT-ID:def\r\n"
        "SEQUENCE:0\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    return uid, text.encode()


def main():
    url, user, password, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    calendars = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    u = urllib.parse.urlsplit(url)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    cals = [f"/{user}/kernel-floor-{c}/" for c in range(calendars)]
    for cal in cals:
        status = request(u.hostname, u.port, auth, "MKCALENDAR", cal)
        if status != b"201":
            sys.exit(f"kernel_floor: MKCALENDAR {cal} answered {status.decode()}")
    per_calendar = -(-n // calendars)
    t0 = os.times()
    for i in range(n):
        cal = cals[i // per_calendar]
        uid, body = event(i)
        path = cal + urllib.parse.quote(uid) + ".ics"
        extra = "Content-Type: text/calendar\r\nIf-None-Match: *\r\n"
        status = request(u.hostname, u.port, auth, "PUT", path, body, extra)
        if status != b"201":
            sys.exit(f"kernel_floor: PUT {i} answered {status.decode()}")
    t1 = os.times()
    print(f"{n} one-connection PUTs: client user {t1.user - t0.user:.2f} s, "
          f"sys {t1.system - t0.system:.2f} s")


if __name__ == "__main__":
    main()
