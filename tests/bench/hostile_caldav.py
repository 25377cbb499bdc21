#!/usr/bin/env python3
"""A hostile CalDAV server for tests/bench/hostile_client.sh: a working minimal CalDAV
account (discovery, MKCALENDAR, PUT, GET, DELETE, PROPFIND, calendar-multiget) whose
answers are made huge or nasty on request, so the real calplanebot binary can be measured
against them (peak RSS, CPU).

    hostile_caldav.py --port 0 [--propfind-mb N] [--report-mb N] [--attrs N] [--chunked]

--propfind-mb N  the Depth-1 PROPFIND of the calendar home answers N MB of object responses
--report-mb N    the calendar lists 100 objects of N/100 MB each, so the calendar-multiget
                 of all of them answers N MB
--object-mb N    every calendar-multiget answers one object of N MB (an inline attachment)
--attrs N        the home listing carries one element with N attributes
--chunked        send bodies chunked (no Content-Length: the client cannot size its buffer)

Prints "PORT <n>" on stdout once listening. Standard library only.
"""

import argparse
import http.server
import re
import socketserver
import sys

HOME = "/cal/"
NS = 'xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/"'
OK = "<d:status>HTTP/1.1 200 OK</d:status>"


def multistatus(responses):
    return ('<?xml version="1.0" encoding="utf-8"?>\n<d:multistatus %s>' % NS
            + "".join(responses) + "</d:multistatus>").encode()


def response(href, props):
    return ("<d:response><d:href>%s</d:href><d:propstat><d:prop>%s</d:prop>%s</d:propstat>"
            "</d:response>\n" % (href, props, OK))


def collection(href, name, calendar):
    rt = "<d:collection/><c:calendar/>" if calendar else "<d:collection/>"
    comps = ('<c:supported-calendar-component-set><c:comp name="VEVENT"/>'
             '<c:comp name="VTODO"/></c:supported-calendar-component-set>' if calendar else "")
    return response(href, "<d:resourcetype>%s</d:resourcetype><d:displayname>%s</d:displayname>"
                    "<cs:getctag>1</cs:getctag>%s" % (rt, name, comps))


def filler(size, make):
    """Responses made by make(i) until they add up to `size` bytes."""
    out, total, i = [], 0, 0
    while total < size:
        r = make(i)
        out.append(r)
        total += len(r)
        i += 1
    return out


def object_ics(i, size=2000):
    pad = ("Hostile filler text %06d. " % i) * max(1, size // 27)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//hostile//EN", "BEGIN:VEVENT",
             "UID:hostile-%06d@example.com" % i, "DTSTAMP:20260101T000000Z",
             "DTSTART;VALUE=DATE:20261124", "SUMMARY:Foreign event %d" % i]
    desc = "DESCRIPTION:" + pad
    lines += [desc[j:j + 74] if j == 0 else " " + desc[j:j + 73] for j in range(0, len(desc), 74)]
    lines += ["END:VEVENT", "END:VCALENDAR", ""]
    return "&#13;\n".join(lines)


def big_ics(mb):
    """One event with an inline base64 attachment of about `mb` MB, folded as RFC 5545 says."""
    value = "QUJD" * int(mb * 1e6 / 4)
    prop = "ATTACH;ENCODING=BASE64;VALUE=BINARY;FMTTYPE=application/octet-stream:" + value
    folded = [prop[:75]] + [" " + prop[j:j + 74] for j in range(75, len(prop), 74)]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//hostile//EN", "BEGIN:VEVENT",
             "UID:hostile-big@example.com", "DTSTAMP:20260101T000000Z",
             "DTSTART;VALUE=DATE:20261124", "SUMMARY:Big attachment"] + folded + [
             "END:VEVENT", "END:VCALENDAR", ""]
    return "&#13;\n".join(lines)


class World:
    def __init__(self, args):
        self.args = args
        self.calendars = {}  # href -> name
        self.objects = {}  # href -> (etag, bytes)
        self.etag = 0
        self.home_extra = []
        if args.propfind_mb:
            self.home_extra = filler(int(args.propfind_mb * 1e6), lambda i: response(
                "%sobj-%07d.ics" % (HOME, i),
                '<d:getetag>"etag-%07d"</d:getetag><d:resourcetype/>'
                "<d:displayname>object %d</d:displayname>" % (i, i)))
        if args.attrs:
            attrs = " ".join('a%d="%d"' % (i, i) for i in range(args.attrs))
            self.home_extra.append(response(HOME + "attrs.ics", "<d:getetag %s>\"x\"</d:getetag>" % attrs))
        self.report = None
        self.big = big_ics(args.object_mb) if args.object_mb else None
        self.listed = []
        if args.report_mb:
            self.listed = ["obj-%03d.ics" % i for i in range(100)]
        if args.object_mb:
            self.listed = ["big.ics"]

    def hostile_object(self, href):
        name = href.rsplit("/", 1)[-1]
        if name == "big.ics":
            data = self.big
        elif name in self.listed:
            data = object_ics(int(name[4:7]), int(self.args.report_mb * 1e6 / 100))
        else:
            return None
        return response(href, '<d:getetag>"%s"</d:getetag><c:calendar-data>%s</c:calendar-data>'
                        % (name, data))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    world = None

    def log_message(self, *a):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, body=b"", ctype="application/xml; charset=utf-8", headers=()):
        if body:
            print("BODY %d" % len(body), flush=True)
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if body:
            self.send_header("Content-Type", ctype)
        if self.world.args.chunked and body:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            step = 1 << 16
            for i in range(0, len(body), step):
                part = body[i:i + step]
                self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_PROPFIND(self):
        self.body()
        w, path, depth = self.world, self.path, self.headers.get("Depth", "0")
        if path in ("/", ""):
            return self.send(207, multistatus([response(path, (
                "<d:current-user-principal><d:href>/principal/</d:href></d:current-user-principal>"
                "<c:calendar-home-set><d:href>%s</d:href></c:calendar-home-set>"
                "<d:resourcetype><d:collection/></d:resourcetype>") % HOME)]))
        if path == HOME:
            rs = [collection(HOME, "home", False)]
            if depth != "0":
                rs += [collection(h, n, True) for h, n in w.calendars.items()] + w.home_extra
            return self.send(207, multistatus(rs))
        if path in w.calendars:
            rs = [collection(path, w.calendars[path], True)]
            if depth != "0":
                rs += [response(h, '<d:getetag>"%s"</d:getetag><d:resourcetype/>' % e)
                       for h, (e, _) in w.objects.items() if h.startswith(path)]
                rs += [response(path + n, '<d:getetag>"%s"</d:getetag><d:resourcetype/>' % n)
                       for n in w.listed]
            return self.send(207, multistatus(rs))
        if path in w.objects:
            return self.send(207, multistatus([response(path, '<d:getetag>"%s"</d:getetag>' % w.objects[path][0])]))
        self.send(404)

    def do_REPORT(self):
        req = self.body().decode("utf-8", "replace")
        w = self.world
        if "sync-collection" in req:
            return self.send(403, b'<d:error xmlns:d="DAV:"><d:supported-report/></d:error>')
        hrefs = re.findall(r"<d:href>([^<]*)</d:href>", req)
        rs = []
        for h in hrefs:
            hostile = w.hostile_object(h)
            if hostile:
                rs.append(hostile)
            elif h in w.objects:
                e, data = w.objects[h]
                rs.append(response(h, '<d:getetag>"%s"</d:getetag><c:calendar-data>%s</c:calendar-data>'
                                   % (e, data.decode().replace("&", "&amp;").replace("<", "&lt;")
                                      .replace("\r", "&#13;"))))
        self.send(207, multistatus(rs))

    def do_MKCALENDAR(self):
        req = self.body().decode("utf-8", "replace")
        m = re.search(r"<d:displayname>([^<]*)</d:displayname>", req)
        self.world.calendars[self.path] = m.group(1) if m else "calendar"
        self.send(201)

    def do_PUT(self):
        data = self.body()
        w = self.world
        if self.headers.get("If-None-Match") == "*" and self.path in w.objects:
            return self.send(412)
        w.etag += 1
        w.objects[self.path] = ("e%d" % w.etag, data)
        self.send(201, headers=[("ETag", '"e%d"' % w.etag)])

    def do_GET(self):
        o = self.world.objects.get(self.path)
        if not o:
            return self.send(404)
        self.send(200, o[1], "text/calendar; charset=utf-8", [("ETag", '"%s"' % o[0])])

    def do_DELETE(self):
        self.send(204 if self.world.objects.pop(self.path, None) else 404)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--propfind-mb", type=float, default=0)
    p.add_argument("--report-mb", type=float, default=0)
    p.add_argument("--object-mb", type=float, default=0)
    p.add_argument("--attrs", type=int, default=0)
    p.add_argument("--chunked", action="store_true")
    args = p.parse_args()
    Handler.world = World(args)
    srv = Server(("127.0.0.1", args.port), Handler)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
