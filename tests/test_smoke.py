"""The smoke checks' own logic against a small local server that answers as told: what
passes with the neutral defaults, and how the cache check picks a page or says why not."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ops.config import settings
from ops.deploy import smoke

from conftest import ROOT

PAGES = {  # path -> (status, headers)
    "/": (302, {"Location": "/login"}),
    "/login": (200, {"Set-Cookie": "session=x"}),
    "/private": (200, {"Cache-Control": "private, max-age=60"}),
    "/about": (200, {}),
    "/broken": (500, {}),
}


class Handler(BaseHTTPRequestHandler):
    seen = {}

    def do_GET(self):
        status, headers = PAGES.get(self.path, (404, {}))
        cached = self.path in Handler.seen and "Cookie" not in self.headers and \
            smoke.why_not_cached(smoke.Response(status, {k.lower(): v for k, v in headers.items()},
                                                b"")) is None
        Handler.seen[self.path] = True
        body = b"page"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("X-Cache-Status", "HIT" if cached else "MISS")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def target():
    Handler.seen = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield smoke.Target("127.0.0.1", server.server_address[1], "shop.test", timeout=5)
    server.shutdown()
    server.server_close()


def test_a_page_without_an_expected_status_passes_below_400(target):
    assert smoke.check_expected(target, "/", None, None)[0]  # a redirect to a login page
    ok, detail = smoke.check_expected(target, "/broken", None, None)
    assert not ok and "a status below 400, got 500" in detail
    assert not smoke.check_expected(target, "/", 200, None)[0]  # an explicit status is exact


def test_the_cache_check_uses_the_first_page_the_cache_may_store(target):
    ok, detail = smoke.check_cache(target, ["/", "/login", "/private", "/about"], "session")
    assert ok and detail.startswith("repeat GET /about: HIT"), detail


def test_the_cache_check_skips_and_says_why_when_no_page_can_be_cached(target):
    ok, detail = smoke.check_cache(target, ["/", "/login", "/private"], "session")
    assert ok and detail.startswith("skipped"), detail
    for why in ("/ answered 302", "/login sets a cookie", "/private sends Cache-Control: private"):
        assert why in detail


def test_the_cache_check_never_uses_a_stream():
    s = settings.load({"app_name": "shop", "source": "sample_app", "wsgi": "app:app",
                       "server_names": ["shop.test"], "nginx": "cache", "healthz": "/up",
                       "streaming": ["/feed"],
                       "smoke": [{"path": "/feed/x"}, {"path": "/about"}]},
                      project_root=ROOT)
    assert smoke.cache_candidates(s) == ["/about"]
    names = [name for name, _ in smoke.checks_for(s, None)]
    assert names[0] == "healthz" and "cache" in names and "streaming" not in names


def test_no_health_check_without_a_health_url(load):
    s = load(healthz=None)
    assert "healthz" not in [name for name, _ in smoke.checks_for(s, None)]


def test_a_smoke_page_without_a_status_passes_on_a_redirect(target):
    """The neutral default `{path: /}` means "below 400", not "exactly 200": an app whose
    home page redirects to its login page is working."""
    s = settings.load({"app_name": "shop", "source": "sample_app", "wsgi": "app:app",
                       "server_names": ["shop.test"]}, project_root=ROOT)
    page = dict(smoke.checks_for(s, target))["page /"]
    assert page() == (True, "302, 4 bytes")


def test_checks_run_at_once_and_report_in_order(load):
    """Two pages that answer only when both are being asked for at the same time: checks run
    one after another would see both time out. The results keep the checks' order."""
    both = threading.Barrier(2, timeout=5)

    class Together(BaseHTTPRequestHandler):
        def do_GET(self):
            status = 200
            if self.path in ("/a", "/b"):
                try:
                    both.wait()
                except threading.BrokenBarrierError:
                    status = 504
            self.send_response(status if self.path in ("/a", "/b") else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Together)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        s = load(smoke=[{"path": "/a", "status": 200}, {"path": "/b", "status": 200}])
        target = smoke.Target("127.0.0.1", server.server_address[1], "shop.test", timeout=10)
        results = smoke.run(s, target)
    finally:
        server.shutdown()
        server.server_close()
    assert [r.name for r in results] == [name for name, _ in smoke.checks_for(s, target)]
    pages = {r.name: r for r in results if r.name.startswith("page ")}
    assert pages["page /a"].ok and pages["page /b"].ok, pages


def test_hostile_paths_pass_when_redirected_and_fail_when_served(target):
    """A setup wizard that redirects every unknown URL leaks nothing; a 2xx does."""
    PAGES["/.env"] = (302, {"Location": "/setup"})
    PAGES["/.git/config"] = (200, {})
    try:
        assert smoke.check_refused(target, ["/.env", "/no-such-page"])[0]
        ok, detail = smoke.check_refused(target, ["/.env", "/.git/config"])
        assert not ok and detail.startswith("/.git/config answered 200")
    finally:
        del PAGES["/.env"], PAGES["/.git/config"]
