"""A bounded load generator: fixed request count, fixed time limit, stops by itself.

Only for the project's own hosts (loopback, staging addresses): the caller names the target.
"""

import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    sent: int = 0
    failed: int = 0
    latencies: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)

    def percentile(self, p):
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Load:
    """Keeps `concurrency` clients sending GETs until stop(), max_requests or max_seconds."""

    def __init__(self, address, port, host, path="/hello", concurrency=4,
                 max_requests=20000, max_seconds=120, expect=b"", connect=None, timeout=10,
                 keepalive=False, post_every=0):
        """connect: makes each request's connection (HTTPS: ops.deploy.smoke.Target.connection).
        keepalive: each client keeps its connection for every request, as browsers and API
        clients do (a connection the server closes is a failed request, as in wrk); else one
        connection per request. post_every: every Nth request is a POST of a small form to
        `path` (0: GETs only)."""
        self.args = (address, port, host, path)
        self.connect = connect
        self.concurrency, self.max_requests, self.max_seconds = concurrency, max_requests, max_seconds
        self.expect, self.timeout, self.keepalive, self.post_every = expect, timeout, keepalive, post_every
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []

    def _record(self, ok, latency, error=None):
        with self._lock:
            self.result.sent += 1
            if ok:
                self.result.latencies.append(latency)
            else:
                self.result.failed += 1
                self.result.errors[error] = self.result.errors.get(error, 0) + 1
            if self.result.sent >= self.max_requests:
                self._stop.set()

    def _connection(self):
        """Without keep-alive the connection closes with a reset, not a FIN: tens of thousands
        of closed connections from one address to one port would otherwise sit in TIME_WAIT
        for a minute and use up this machine's ephemeral ports (EADDRNOTAVAIL), which real
        clients, each from its own address, never do."""
        address, port, _, _ = self.args
        conn = self.connect() if self.connect else http.client.HTTPConnection(
            address, port, timeout=self.timeout)
        if not self.keepalive:
            conn.connect()
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return conn

    def _client(self):
        _, _, host, path = self.args
        deadline = time.monotonic() + self.max_seconds
        conn, n = None, 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            start = time.monotonic()
            n += 1
            try:
                conn = conn or self._connection()
                if self.post_every and n % self.post_every == 0:
                    conn.request("POST", path, body=f"n={n}", headers={
                        "Host": host, "Content-Type": "application/x-www-form-urlencoded"})
                else:
                    conn.request("GET", path, headers={"Host": host})
                resp = conn.getresponse()
                body = resp.read()
                ok = resp.status == 200 and self.expect in body
                self._record(ok, time.monotonic() - start, None if ok else f"HTTP {resp.status}")
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                self._record(False, 0, type(exc).__name__)
                if conn:
                    conn.close()
                conn = None
            if not self.keepalive and conn:
                conn.close()
                conn = None
        if conn:
            conn.close()

    def __enter__(self):
        for _ in range(self.concurrency):
            thread = threading.Thread(target=self._client, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wait_for(self, count, timeout=30):
        """Until `count` requests have been sent (so a deploy starts under real load)."""
        deadline = time.monotonic() + timeout
        while self.result.sent < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
