"""The sample app served on this machine through the rendered nginx `cache` shape and a real
uWSGI: streaming arrives in pieces over time, a repeated GET is a cache HIT, and static files
come from nginx (they are still served with uWSGI stopped)."""

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from ops import scripts, staging
from ops.build import build, release
from ops.deploy import smoke
from ops.errors import OpsError
from ops.targets import checkrun, render, templating

from conftest import assert_forgeries_refused, make_project

pytestmark = pytest.mark.e2e
APP = "localtest"
USER = "flaskops-localtest"  # an account of its own: system accounts are refused as app users


_taken = set()


def free_port():
    """A free port below the kernel's ephemeral range: a port bind(0) hands out can be taken
    by any outgoing connection on the machine before nginx binds it (it was, twice)."""
    low, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for port in random.sample(range(max(1024, low - 12000), low), 200):
        if port in _taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture
def served(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: uWSGI drops to the app user, nginx to www-data")
    # Not under /tmp: base_dir there is refused (provision would change /tmp's mode).
    parent = Path("/var/lib/flask-ops-test")
    parent.mkdir(mode=0o755, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix="local-", dir=parent))
    stage.chmod(0o755)  # nginx (www-data) and the app (its own user) read from here
    # The app's account as provision makes it (its own group, not the web server's).
    subprocess.run(scripts.command("ensure_account.sh", USER, USER, "/nonexistent"), shell=True,
                   executable="/bin/bash", check=True, stdout=subprocess.DEVNULL)
    run_dir = Path(f"/run/{APP}")
    procs = []
    try:
        s = make_project(tmp_path / "project", config={
            "app_name": APP, "nginx": "cache", "base_dir": str(stage / "srv"),
            "listen_port": free_port(), "upstream_port": free_port(), "user": USER})
        tree, _, files, _, _ = release.stage_tree(s)
        rel = Path(s.releases) / "r1"
        shutil.copytree(tree, rel, symlinks=True)
        venv = Path(s.shared) / "venv"
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-index", "--find-links",
                        str(build.wheelhouse(s)), "-r", str(rel / ".flask-ops/requirements.txt")],
                       check=True)
        (rel / "venv").symlink_to(venv)
        Path(s.current).symlink_to(rel)
        subprocess.run(["chmod", "-R", "go+rX", str(stage)], check=True)
        env_file = Path(s.shared) / "env"  # what provision makes: the entry module needs it
        env_file.write_text("SECRET_KEY=local-test\n")
        shutil.chown(env_file, USER)
        env_file.chmod(0o600)
        run_dir.mkdir(exist_ok=True)
        run_dir.chmod(0o755)  # as systemd's RuntimeDirectory= makes it
        fifo_dir = Path(s.master_fifo).parent  # the service's RuntimeDirectory=: APP 0700
        fifo_dir.mkdir(exist_ok=True)
        shutil.chown(fifo_dir, USER, USER)
        fifo_dir.chmod(0o700)

        for f in files:
            (stage / Path(f.path).name).write_text(f.content)
            if f.kind == templating.PAGE:  # the front server's own pages, where the site has them
                Path(f.path).parent.mkdir(parents=True, exist_ok=True)
                Path(f.path).write_text(f.content)
        sites = stage / "sites"
        sites.mkdir()
        for f in files:
            if f.kind == render.NGINX:
                (sites / Path(f.path).name).write_text(f.content)
        (stage / "nginx.conf").write_text(
            f"user www-data;\nworker_processes 1;\npid {stage}/nginx.pid;\n"
            f"error_log {stage}/nginx-error.log;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n  include /etc/nginx/mime.types;\n  include {sites}/*.conf;\n}}\n")

        # What systemd does for the rendered ini on a host: the socket unit makes the socket
        # USER:www-data 0660, and the service starts uWSGI as USER.
        uwsgi = subprocess.Popen(["uwsgi", "--ini", str(stage / "uwsgi.ini"), f"--uid={USER}",
                                  f"--gid={USER}", f"--chown-socket={USER}:www-data",
                                  "--chmod-socket=660"],
                                 stdout=open(stage / "uwsgi.log", "w"), stderr=subprocess.STDOUT,
                                 start_new_session=True)
        procs.append(uwsgi)
        staging.wait_until(lambda: Path(s.socket).exists() or uwsgi.poll() is not None, 30,
                           "uWSGI's socket")
        assert uwsgi.poll() is None, (stage / "uwsgi.log").read_text()
        nginx = subprocess.Popen(checkrun.isolated(["nginx", "-c", str(stage / "nginx.conf"), "-g",
                                                  "daemon off;"], isolate=("/var/log", "/var/cache")),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        procs.append(nginx)
        target = smoke.Target("127.0.0.1", s.listen_port, s.server_names[0])
        probe = smoke.Target("127.0.0.1", s.listen_port, s.server_names[0], timeout=2)

        def answers():
            for name, proc, log in (("uWSGI", uwsgi, "uwsgi.log"), ("nginx", nginx, "nginx-error.log")):
                if proc.poll() is not None:  # fail now, with the reason, not at the deadline
                    path = stage / log
                    raise AssertionError(f"{name} exited ({proc.returncode}): "
                                         f"{path.read_text()[-2000:] if path.exists() else ''}")
            try:
                response = smoke.request(probe, s.healthz)
            except OSError:
                return False
            return response is not None and response.status == 200

        try:
            staging.wait_until(answers, 90, "nginx + uWSGI to answer")
        except OpsError as exc:
            logs = {n: (stage / n).read_text()[-1500:] for n in ("uwsgi.log", "nginx-error.log")
                    if (stage / n).exists()}
            raise AssertionError(f"{exc}; logs: {logs}") from None
        yield s, target, uwsgi
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(Path(s.master_fifo).parent, ignore_errors=True)
        shutil.rmtree(f"/etc/flask-ops/{APP}", ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir("/etc/flask-ops")  # only if this test made it (empty)


def test_cache_shape_serves_streams_caches_and_static(served):
    s, target, uwsgi = served

    arrivals, total, status = smoke.stream_timings(target, "/time?count=4&delay=0.5")
    assert status == 200
    assert len(arrivals) >= 3, arrivals  # several pieces, not one buffered body
    assert arrivals[0] < 1.0 and total >= 1.4 and arrivals[-1] - arrivals[0] >= 1.0

    first = smoke.request(target, "/hello")
    second = smoke.request(target, "/hello")
    assert first.header("X-Cache-Status") in ("MISS", "EXPIRED")
    assert second.header("X-Cache-Status") == "HIT" and second.body == b"Hello, World!"
    assert smoke.request(target, "/hello", headers={"Cookie": "session=x"}).header(
        "X-Cache-Status") == "BYPASS"
    assert smoke.request(target, s.healthz).header("X-Cache-Status") is None  # never cached

    css = smoke.request(target, "/static/reports/reports.css")
    assert css.status == 200 and b".report" in css.body
    # Seen again at the next page load once changed (revalidated), a 304 while unchanged;
    # only a name that carries its digest is kept for a year.
    assert css.header("Cache-Control") == "public, no-cache"
    assert css.header("X-Content-Type-Options") == "nosniff"
    again = smoke.request(target, "/static/reports/reports.css",
                          headers={"If-None-Match": css.header("ETag")})
    assert again.status == 304 and again.body == b""
    vendor = smoke.request(target, "/static/js/vendor.5d41402a.js")
    assert vendor.header("Cache-Control") == "public, max-age=31536000, immutable"
    assert vendor.header("X-Frame-Options") == "SAMEORIGIN"

    # A path that merely starts like a streaming one (/timeline, /time is streamed) is
    # cached like any page.
    smoke.request(target, "/timeline")
    assert smoke.request(target, "/timeline").header("X-Cache-Status") == "HIT"
    # Forged forwarding headers and Host reach neither the app nor the cache.
    assert_forgeries_refused(target)

    stop(uwsgi)  # the app server is gone; nginx still serves the static files
    assert smoke.request(target, "/static/css/site.css").status == 200
    assert smoke.request(target, "/api/sum?n=1").status == 502
