"""End to end with Apache + mod_wsgi (daemon mode) on its own staging host."""

import http.client
import json
from pathlib import Path

import pytest

from ops import staging
from ops.deploy import deploy, provision, smoke
from ops.errors import DeployError, OpsError

from conftest import assert_forgeries_refused, followed_request_id, make_project, sample_settings, timed_get

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def host(staging_hosts):
    r = staging.remote("staging2")
    provision.provision(sample_settings(stack="apache-modwsgi"), r)
    yield r
    r.close()


@pytest.fixture
def project(tmp_path):
    counter = iter(range(100))
    return lambda edits=None, **config: make_project(tmp_path / f"p{next(counter)}", edits,
                                                     {"stack": "apache-modwsgi", **config})


def test_apache_deploy_smoke_redeploy_and_failed_release(host, project):
    s = project()
    first = deploy.deploy(s, host, out=lambda m: None)
    assert [r.name for r in smoke.run(s, deploy.target_for(s, host), deploy.current_statics(s, host))
            if not r.ok] == []
    assert host.run("ps -o user= -C apache2 | sort -u; pgrep -u sample -f '^.wsgi:sample.' "
                    "| wc -l", "t").stdout.split()[-1] == str(s.processes)

    conn = http.client.HTTPConnection(host.address, 80, timeout=10)
    conn.request("POST", "/echo", headers={"Host": "sample.test", "Content-Length": str(20 * 2**20)})
    too_big = conn.getresponse()
    assert too_big.status == 413 and too_big.getheader("X-Frame-Options") == "SAMEORIGIN"
    conn.close()
    who = json.loads(smoke.request(deploy.target_for(s, host), "/whoami",
                                   headers={"X-Forwarded-For": "6.6.6.6"}).body)
    assert who["forwarded_for"] is None and who["remote_addr"] == "198.18.0.1"
    assert assert_forgeries_refused(deploy.target_for(s, host))["fs_encoding"] == "utf-8"
    # Apache's *:80 takes IPv6 too.
    v6 = smoke.Target(staging.Host("staging2").address6, 80, "sample.test")
    assert smoke.request(v6, "/hello").body == b"Hello, World!"
    # Authorization reaches the app (WSGIPassAuthorization), as under uWSGI.
    who = json.loads(smoke.request(deploy.target_for(s, host), "/whoami",
                                   headers={"Authorization": "Bearer t0ken"}).body)
    assert who["authorization"] == "Bearer"
    # mod_unique_id's request id, from Apache to the app, back to the client, in the log.
    followed_request_id(deploy.target_for(s, host), host, "/var/log/apache2/sample.access.log")

    changed = project({"app.py": ("Hello, World!", "Hello from Apache")})
    second = deploy.deploy(changed, host, out=lambda m: None)
    target = deploy.target_for(s, host)
    assert smoke.request(target, "/hello").body == b"Hello from Apache"
    health = json.loads(smoke.request(target, "/healthz").body)
    assert health["cwd"] == f"/srv/sample/releases/{second}"

    broken = project({"app.py": ("import datetime", "import flask_collect\nimport datetime")})
    with pytest.raises(DeployError) as err:
        deploy.deploy(broken, host, out=lambda m: None)
    # Why: the daemon's import error, from the site's error log (mod_wsgi writes it there).
    assert "No module named 'flask_collect'" in str(err.value), str(err.value)
    assert deploy.releases(s, host)[0] == second
    assert smoke.request(target, "/hello").body == b"Hello from Apache"
    assert first != second


def test_a_deploy_for_the_other_stack_asks_for_provision_and_changes_nothing(host, project):
    """The host serves the Apache stack; a deploy with the nginx stack is refused before
    anything changes, and says what to run (it once failed at stage with Apache's errors)."""
    s = project()
    before = deploy.releases(s, host)
    other = sample_settings(Path(s.project_root), stack="nginx-uwsgi")
    with pytest.raises(OpsError, match=r"staging2 was provisioned for apache2, but stack "
                                       r"nginx-uwsgi needs nginx: run `fab -H staging2 provision`"):
        deploy.deploy(other, host, out=lambda m: None)
    assert deploy.releases(s, host) == before
    assert deploy.status(s, host)["lock"] == "unlocked"


def test_a_request_over_harakiri_is_cut_on_apache_too(host, project):
    """harakiri is mod_wsgi's request-timeout: a request stuck for 12 s is cut after about 3."""
    s = project({"app.py": ('    def hello():\n', '    def hello():\n        if request.args.get("stuck"):\n'
                                                  '            time.sleep(12)\n')}, harakiri=3)
    deploy.deploy(s, host, out=lambda m: None)
    status, body, _, took = timed_get(host.address, "/hello?stuck=1")
    assert status >= 500 and took < 10, (status, took)
    # Apache's own error is our page, not Apache's
    assert f"Error {status}".encode() in body and b"Apache" not in body, body
    assert smoke.request(deploy.target_for(s, host), "/hello").body == b"Hello, World!"


SLOW = ('    def hello():\n', '    def hello():\n'
        '        if request.args.get("slow"):\n'
        '            open(os.path.join(DATA_DIR, "slow.started"), "w").close()\n'
        '            time.sleep(float(request.args["slow"]))\n'
        '            return "slow done"\n')


@pytest.mark.parametrize("seconds, finishes", [(4, True), (25, False)])
def test_a_deploy_on_apache_waits_drain_timeout_for_a_request_in_flight(host, project, seconds,
                                                                       finishes):
    """drain_timeout is mod_wsgi's graceful-timeout: a code change restarts the app's daemon
    processes in place (SIGUSR1; Apache itself is not reloaded), and a request already
    running finishes if it needs less than drain_timeout (8 s here); a longer one is cut
    about then, and the deploy does not wait for it any longer."""
    import threading
    import time
    edits = {"app.py": SLOW}
    s = project(edits, drain_timeout=8, harakiri=60)
    deploy.deploy(s, host, out=lambda m: None)
    host.run("rm -f /srv/sample/shared/data/slow.started", "clean")
    got = {}

    def slow():
        conn = http.client.HTTPConnection(host.address, 80, timeout=60)
        try:
            conn.request("GET", f"/hello?slow={seconds}", headers={"Host": "sample.test"})
            response = conn.getresponse()
            got["status"], got["body"] = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            got["status"], got["body"] = type(exc).__name__, b""
        got["at"] = time.monotonic()
        conn.close()

    reader = threading.Thread(target=slow)
    reader.start()
    deadline = time.monotonic() + 15
    while host.run("test -e /srv/sample/shared/data/slow.started", "started",
                   check=False).exited != 0:
        assert time.monotonic() < deadline, "the slow request never started"
    start = time.monotonic()
    changed = project({"app.py": SLOW, "reports/__init__.py": ('"""A', '"""Changed: a')},
                      drain_timeout=8, harakiri=60)
    before = deploy.releases(s, host)[0]
    assert deploy.deploy(changed, host, out=lambda m: None) != before  # Apache reloaded
    reader.join(70)
    if finishes:
        assert (got["status"], got["body"]) == (200, b"slow done"), got
    else:
        # cut after drain_timeout (8 s) and 2 s of shutdown-timeout, not after its 25 s
        assert got["status"] != 200 and got["at"] - start < 8 + 2 + 8, (got, got["at"] - start)
