"""Hostile clients for tests/bench/hostile_service.sh (standard library only).

  flood HOST PORT N HOLD   open N idle TCP connections, hold them HOLD seconds, print how
                           many were established and how many the server had closed by then
  abuse HOST PORT N SECS   keep N idle connections and one stalled request (headers with
                           Content-Length: 5000, no body) open, re-opening what the server
                           drops, while timing GET /health on fresh connections for SECS
                           seconds; print latency percentiles and how long the stalled
                           request was kept
"""

import socket
import sys
import threading
import time


def connect(host, port, timeout=5.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setblocking(False)
    return s


def is_closed(s):
    try:
        s.recv(4096)  # EOF, or a 408 before it: either way the server gave up on it
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def flood(host, port, n, hold):
    socks, failed = [], 0
    for _ in range(n):
        try:
            socks.append(connect(host, port))
        except OSError:
            failed += 1
    time.sleep(hold)
    closed = sum(1 for s in socks if is_closed(s))
    print(f"established={len(socks)} refused={failed} closed_by_server={closed}")
    for s in socks:
        s.close()


class Pressure:
    """Idle connections and one stalled request, re-opened when the server drops them."""

    def __init__(self, host, port, n):
        self.host, self.port, self.n = host, port, n
        self.stop = False
        self.stalled_kept = []  # seconds each stalled request stayed open
        self.reopened = 0

    def stalled(self):
        s = connect(self.host, self.port)
        s.sendall(b"POST /webhooks/plane HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        return s, time.monotonic()

    def run(self):
        idle = [connect(self.host, self.port) for _ in range(self.n)]
        stall, since = self.stalled()
        while not self.stop:
            for i, s in enumerate(idle):
                if is_closed(s):
                    s.close()
                    try:
                        idle[i] = connect(self.host, self.port)
                        self.reopened += 1
                    except OSError:
                        pass
            if is_closed(stall):
                self.stalled_kept.append(time.monotonic() - since)
                stall.close()
                stall, since = self.stalled()
            time.sleep(0.05)
        for s in idle + [stall]:
            s.close()


def health(host, port):
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=15) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    ok = data.startswith(b"HTTP/1.1 200")
    return time.monotonic() - started, ok


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def abuse(host, port, n, secs):
    pressure = Pressure(host, port, n)
    t = threading.Thread(target=pressure.run, daemon=True)
    t.start()
    time.sleep(2)  # let the connections open
    times, failures = [], 0
    until = time.monotonic() + secs
    while time.monotonic() < until:
        try:
            took, ok = health(host, port)
            times.append(took)
            failures += 0 if ok else 1
        except OSError:
            failures += 1
        time.sleep(0.05)
    pressure.stop = True
    t.join()
    ms = [t * 1000 for t in times]
    kept = pressure.stalled_kept
    print(
        f"health_requests={len(ms)} failed={failures} p50_ms={pct(ms, 50):.2f} "
        f"p99_ms={pct(ms, 99):.2f} max_ms={max(ms):.2f} "
        f"stalled_dropped_after_s={max(kept) if kept else float('nan'):.1f} "
        f"stalled_drops={len(kept)} idle_reopened={pressure.reopened}"
    )


if __name__ == "__main__":
    cmd, host, port, n, arg = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    {"flood": flood, "abuse": abuse}[cmd](host, port, n, arg)
