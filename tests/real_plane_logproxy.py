#!/usr/bin/env python3
"""Logging reverse proxy for manual checks against a REAL Plane server (see
/work/shared/plane-real.md): put it between calplanebot and Plane to see every request
calplanebot makes, with the bodies of its writes and the fields Plane answers.

    tests/real_plane_logproxy.py --listen 58001 --upstream http://127.0.0.1:58000 --log plane.log
    # then run calplanebot with PLANE_BASE_URL=http://127.0.0.1:58001 and
    # PLANE_WEB_URL=http://127.0.0.1:58000 (else the links in events change and every
    # event is rewritten)

One JSON line per request: time, method, path, status, the request body, and a summary of
the answer (lists: per item sequence_id/name/dates/updated_at; one item: the fields sync
cares about, including `updated_at`, so a write's answer can be compared with a later GET).
Headers are forwarded but never logged (X-API-Key is a secret). Plain HTTP upstream only;
standard library only, so the project venv is not needed.
"""
import argparse
import http.client
import http.server
import json
import time
import urllib.parse

# Fields of one work item worth logging (the rest of Plane's ~29 keys is noise here).
ITEM_FIELDS = ("id", "name", "start_date", "target_date", "state", "updated_at",
               "created_at", "external_id", "external_source", "completed_at", "sequence_id")
LIST_FIELDS = ("sequence_id", "name", "target_date", "start_date", "updated_at", "group")
# Request headers not forwarded: the proxy's own hop.
HOP_HEADERS = ("host", "connection")
# Answer headers not copied back: the proxy sets its own length and framing.
FRAMING_HEADERS = ("transfer-encoding", "connection", "content-length")


def summarize(body: bytes):
    """The part of an answer worth a log line: a JSON summary, else the first 300 bytes."""
    try:
        d = json.loads(body)
    except ValueError:
        return body[:300].decode("utf-8", "replace")
    if isinstance(d, dict) and "results" in d:
        return {"count": d.get("count"), "next_page_results": d.get("next_page_results"),
                "results": [{k: r.get(k) for k in LIST_FIELDS if k in r} for r in d["results"]]}
    if isinstance(d, dict) and "updated_at" in d:
        return {k: d.get(k) for k in ITEM_FIELDS if k in d} | {"_keys": len(d)}
    return d


def handler(upstream: urllib.parse.SplitResult, log):
    """A request handler class forwarding to `upstream` and logging to `log`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def forward(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port or 80, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for k, v in answer.getheaders():
                if k.lower() not in FRAMING_HEADERS:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            now = time.time()
            try:
                sent = json.loads(body) if body else None
            except ValueError:
                sent = body[:300].decode("utf-8", "replace")
            log.write(json.dumps({
                "t": time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}",
                "m": self.command, "path": self.path, "status": answer.status,
                "req": sent, "resp": summarize(data)}) + "\n")

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = forward

        def log_message(self, *args):
            pass

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    p.add_argument("--upstream", required=True, help="Plane's base URL, e.g. http://127.0.0.1:58000")
    p.add_argument("--log", required=True, help="JSON lines are appended here")
    a = p.parse_args()
    upstream = urllib.parse.urlsplit(a.upstream)
    with open(a.log, "a", buffering=1) as log:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", a.listen), handler(upstream, log))
        server.serve_forever()


if __name__ == "__main__":
    main()
