"""Smoke checks through the real front server, as a visitor would see it.

Each check is a small function returning (ok, detail); `run` gives one result per check.
"""

import base64
import hashlib
import http.client
import os
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

from ..config.settings import url_under
from ..targets import stacks

SECURITY_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")
FRONT_CACHE_CONTROL = "public"  # set only by the front server's static location (Flask: "no-cache")


@dataclass(frozen=True)
class Result:
    name: str
    ok: bool
    detail: str
    seconds: float


class _SiteHTTPS(http.client.HTTPSConnection):
    """HTTPS to an address, with the site's name for SNI and certificate verification (the
    name need not resolve here: staging hosts and hosts behind a balancer are reached by IP)."""

    def __init__(self, address, port, site, context, timeout):
        super().__init__(address, port, timeout=timeout, context=context)
        self._site = site

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._site)


@dataclass(frozen=True)
class Target:
    address: str
    port: int
    host: str  # Host header: the site's first server name
    timeout: float = 10.0
    tls: bool = False
    ca_file: Optional[str] = None  # CA bundle to verify the chain with (None: the system's)
    plain_port: Optional[int] = None  # with tls: the HTTP port that must redirect

    def context(self):
        ctx = ssl.create_default_context(cafile=os.path.expanduser(self.ca_file)
                                         if self.ca_file else None)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def connection(self):
        if self.tls:
            return _SiteHTTPS(self.address, self.port, self.host, self.context(), self.timeout)
        return http.client.HTTPConnection(self.address, self.port, timeout=self.timeout)

    def describe(self):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}/ (at {self.address})"


def target_from_url(url):
    """A Target for a public URL: no SSH, the URL's host is both address and Host header."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    tls = parts.scheme == "https"
    return Target(parts.hostname, parts.port or (443 if tls else 80), parts.hostname, tls=tls,
                  plain_port=80 if tls else None)


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())


def request(target, path, host=None, headers=None, method="GET"):
    """One HTTP/1.1 request on a fresh connection; None when the server closes it unanswered."""
    conn = target.connection()
    try:
        conn.request(method, path, headers={"Host": host or target.host, **(headers or {})})
        resp = conn.getresponse()
        body = resp.read()
        headers = {}
        for name, value in resp.getheaders():  # a header sent twice (Vary) keeps both values
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return Response(resp.status, headers, body)
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return None
    finally:
        conn.close()


def stream_timings(target, path):
    """(seconds to each piece of body as it arrives, total seconds, status)."""
    conn = target.connection()
    start = time.monotonic()
    try:
        conn.request("GET", path, headers={"Host": target.host})
        resp = conn.getresponse()
        arrivals = []
        while True:
            piece = resp.read1(65536)
            if not piece:
                break
            arrivals.append(time.monotonic() - start)
        return arrivals, time.monotonic() - start, resp.status
    finally:
        conn.close()


def _missing_headers(resp):
    return [h for h in SECURITY_HEADERS if not resp or not resp.header(h)]


def check_expected(target, path, status, contains):
    """status None: any status below 400 (a redirect to a login page is a working app)."""
    resp = request(target, path)
    if resp is None:
        return False, "connection closed without a response"
    if (resp.status != status) if status else resp.status >= 400:
        return False, f"expected {status or 'a status below 400'}, got {resp.status}: {resp.body[:200]!r}"
    if contains and contains.encode() not in resp.body:
        return False, f"body lacks {contains!r}: {resp.body[:200]!r}"
    return True, f"{resp.status}, {len(resp.body)} bytes"


def check_static(target, url, sha):
    """The front server (not Flask) answers `url` with the bytes Flask served at build time."""
    resp = request(target, url)
    if resp is None or resp.status != 200:
        return False, f"expected 200 for {url}, got {resp and resp.status}"
    cache = resp.header("Cache-Control") or ""
    if FRONT_CACHE_CONTROL not in cache:
        return False, f"{url} lacks the front server's Cache-Control (got {cache!r}): Flask served it?"
    if hashlib.sha256(resp.body).hexdigest() != sha:
        return False, f"{url} differs from the file Flask serves at that URL"
    return True, f"{url} served by the front server ({cache})"


def check_stream(target, path):
    arrivals, total, status = stream_timings(target, path)
    if status != 200:
        return False, f"expected 200, got {status}"
    if len(arrivals) < 2:
        return False, f"the body arrived in one piece after {total:.2f}s (buffered)"
    first = arrivals[0]
    if first > 1.5:
        return False, f"first chunk after {first:.2f}s (> 1.5s)"
    if total - first < 0.5:
        return False, f"first chunk at {first:.2f}s, end at {total:.2f}s: not streamed"
    return True, f"{len(arrivals)} chunks, first after {first:.2f}s, last after {total:.2f}s"


WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455


def check_websocket(target, path):
    """The opening handshake of a websocket (RFC 6455) through every tier: 101 with the
    accept key derived from ours; then the connection is dropped (no message is sent)."""
    key = base64.b64encode(os.urandom(16)).decode()
    conn = target.connection()
    try:
        conn.request("GET", path, headers={"Host": target.host, "Upgrade": "websocket",
                                           "Connection": "Upgrade", "Sec-WebSocket-Key": key,
                                           "Sec-WebSocket-Version": "13"})
        resp = conn.getresponse()
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        if resp.status != 101:
            return False, f"expected 101 Switching Protocols, got {resp.status}"
        if resp.getheader("Sec-WebSocket-Accept") != accept:
            return False, "101 without the accept key of our handshake"
        return True, f"{path} upgraded to a websocket"
    finally:
        conn.close()


def check_unknown_host(target):
    resp = request(target, "/", host="unknown-host.invalid")
    if resp is None:
        return True, "connection closed (444)"
    if resp.status >= 400:
        return True, f"refused with {resp.status}"
    return False, f"an unknown Host header was served: {resp.status}"


def check_refused(target, paths, leak=b"import "):
    """Nothing is served at these paths: no 2xx, nothing of the file. A redirect leaks nothing
    (an app that sends every unknown URL to its setup page passes)."""
    for path in paths:
        resp = request(target, path)
        if resp is not None and (resp.status < 300 or leak in resp.body):
            return False, f"{path} answered {resp.status}: {resp.body[:120]!r}"
    return True, "refused: " + ", ".join(paths)


def check_headers(target, paths):
    for path in paths:
        resp = request(target, path)
        missing = _missing_headers(resp)
        if missing:
            return False, f"{path} ({resp and resp.status}) lacks {', '.join(missing)}"
        if resp.header("Server") and any(c.isdigit() for c in resp.header("Server")):
            return False, f"{path} reveals the server version: {resp.header('Server')}"
    return True, "present on " + ", ".join(paths)


NOT_STORED = ("private", "no-store", "no-cache", "max-age=0")


def why_not_cached(resp):
    """Why nginx would not store this response (None: it would). Mirrors proxy_cache's rules:
    only 200s (proxy_cache_valid), never with Set-Cookie, Cache-Control that forbids it or
    Vary: *."""
    if resp is None:
        return "closed the connection"
    if resp.status != 200:
        return f"answered {resp.status}"
    if resp.header("Set-Cookie"):
        return "sets a cookie"
    control = (resp.header("Cache-Control") or "").lower()
    forbids = [d for d in NOT_STORED if d in control]
    if forbids:
        return f"sends Cache-Control: {forbids[0]}"
    if (resp.header("Vary") or "").strip() == "*":
        return "sends Vary: *"
    return None


def check_redirect(target, path="/flask-ops-probe?x=1"):
    """Plain HTTP answers with a permanent redirect to the same URL over HTTPS."""
    plain = Target(target.address, target.plain_port, target.host, target.timeout)
    resp = request(plain, path)
    want = f"https://{target.host}{'' if target.port == 443 else f':{target.port}'}{path}"
    if resp is None or resp.status != 301 or resp.header("Location") != want:
        return False, (f"http://{target.host}{path} answered {resp and resp.status} "
                       f"{resp and resp.header('Location')!r}, not 301 to {want}")
    return True, f"HTTP 301 to {want}"


def check_hsts(target, max_age):
    resp = request(target, "/")
    value = resp and resp.header("Strict-Transport-Security")
    if value != f"max-age={max_age}":
        return False, f"Strict-Transport-Security is {value!r}, not max-age={max_age}"
    return True, value


def certificate_days(target):
    """(days until the served certificate expires, its subject names), verified chain."""
    with socket.create_connection((target.address, target.port), timeout=target.timeout) as raw:
        with target.context().wrap_socket(raw, server_hostname=target.host) as tls:
            cert = tls.getpeercert()
    days = (ssl.cert_time_to_seconds(cert["notAfter"]) - time.time()) / 86400
    return days, [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]


def check_certificate(target, warn_days=14):
    """A chain valid for the name (verified against the CA bundle); under warn_days to
    expiry is a warning, not a failure: the site works, someone must renew."""
    days, names = certificate_days(target)
    detail = f"valid for {target.host}, {days:.0f} days left ({', '.join(names)})"
    return True, (f"WARNING: {detail}" if days < warn_days else detail)


def check_cache(target, paths, cookie):
    """The first of `paths` that the cache may store: a repeat is a HIT, a request with the
    session cookie is not. No such page: skipped, saying why for each."""
    skipped = []
    for path in paths:
        reason = why_not_cached(request(target, path))
        if reason:
            skipped.append(f"{path} {reason}")
            continue
        second = request(target, path)
        status = second and second.header("X-Cache-Status")
        if status != "HIT":
            return False, f"a repeated GET {path} was {status}, not HIT"
        if second.header("Set-Cookie"):
            return False, "a cached response carries Set-Cookie"
        with_cookie = request(target, path, headers={"Cookie": f"{cookie}=someone"})
        status = with_cookie and with_cookie.header("X-Cache-Status")
        if status == "HIT":
            return False, "a request with a session cookie was served from the cache"
        return True, f"repeat GET {path}: HIT; with a session cookie: {status}"
    return True, "skipped: no smoke page the cache may store (" + "; ".join(skipped) + ")"


def cache_candidates(s):
    """Smoke pages the cache could hold: not the health URL, not under a streaming path."""
    return [page.path for page in s.smoke
            if page.path.split("?")[0] != s.healthz
            and not any(url_under(page.path, p) for p in s.streaming)]


def check_maintenance(target, path):
    """Maintenance mode is on: the page must be the 503 with Retry-After."""
    resp = request(target, path)
    if resp is None:
        return False, "connection closed without a response"
    if resp.status != 503 or not resp.header("Retry-After"):
        return False, f"maintenance is on: expected 503 with Retry-After, got {resp.status}"
    return True, f"503 maintenance page, Retry-After {resp.header('Retry-After')}"


def checks_for(s, target, statics=(), maintenance=False):
    """The checks that apply to these settings, as (name, thunk). maintenance: the host is in
    maintenance mode, so pages must answer with its 503 (health and static files still pass)."""
    items = [("healthz", lambda: check_expected(target, s.healthz, 200, None))] if s.healthz else []
    for page in s.smoke:
        if maintenance:
            items.append((f"page {page.path} (maintenance)",
                          lambda page=page: check_maintenance(target, page.path)))
            continue
        items.append((f"page {page.path}", lambda page=page: check_expected(
            target, page.path, page.status, page.contains)))
    for url, sha in statics:
        items.append((f"static {url}", lambda url=url, sha=sha: check_static(target, url, sha)))
    if s.smoke_stream and not maintenance:
        items.append(("streaming", lambda: check_stream(target, s.smoke_stream)))
    if s.websockets and not maintenance:
        items.append(("websocket", lambda: check_websocket(target, s.websockets[0])))
    items += [
        ("unknown host refused", lambda: check_unknown_host(target)),
        ("traversal and dotfiles refused", lambda: check_refused(
            target, [s.static_url.rstrip("/") + "../app.py", "/.git/config",
                     s.static_url + ".env", "/.env"])),
        ("security headers", lambda: check_headers(
            target, ["/", "/no-such-page-flask-ops"] +
            [url for url, _ in statics[:1]])),
    ]
    if stacks.of(s).caches and not maintenance:
        items.append(("cache", lambda: check_cache(target, cache_candidates(s), s.session_cookie)))
    if target is not None and target.tls:
        items.append(("certificate", lambda: check_certificate(target)))
        if target.plain_port:
            items.append(("http redirects to https", lambda: check_redirect(target)))
        if s.tls and s.tls.hsts:
            items.append(("hsts", lambda: check_hsts(target, s.tls.hsts)))
    return items


PARALLEL = 8  # checks in flight at once: each on its own connection


def run(s, target, statics=(), maintenance=False):
    """Every check, results in the checks' order. The health check runs first, alone (it
    wakes the app); the others at once, so smoke costs about its slowest check (the stream),
    not the sum of all."""
    checks = checks_for(s, target, statics, maintenance)
    first = 1 if checks and checks[0][0] == "healthz" else 0
    results = [_timed(name, thunk) for name, thunk in checks[:first]]
    rest = checks[first:]
    if rest:
        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(rest))) as pool:
            results += list(pool.map(lambda check: _timed(*check), rest))
    return results


def _timed(name, thunk):
    start = time.monotonic()
    try:
        ok, detail = thunk()
    except (OSError, socket.timeout, http.client.HTTPException, ssl.SSLError) as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return Result(name, ok, detail, time.monotonic() - start)
