"""Fleets and zero downtime, proven under a bounded load on the project's own staging hosts:
staging3 balances staging1 and staging2."""

import http.client
import json
import subprocess
import threading
import time

import pytest

from ops import staging
from ops.deploy import deploy, fleet, provision, smoke
from ops.errors import DeployError

import loadgen
from conftest import followed_request_id, make_project

pytestmark = pytest.mark.e2e
CONFIG = {"app_name": "fleet", "server_names": ["fleet.test"],
          "roles": {"lb": ["staging3"], "app": ["staging1", "staging2"]}}


@pytest.fixture(scope="module")
def hosts(staging_hosts, tmp_path_factory):
    staging.up(3, log=lambda m: None)
    lbs = [staging.remote("staging3")]
    apps = [staging.remote("staging1"), staging.remote("staging2")]
    s = make_project(tmp_path_factory.mktemp("fleet"), config=CONFIG)
    for host in lbs + apps:
        provision.provision(s, host)
    fleet.rolling_deploy(s, lbs, apps, out=lambda m: None)
    yield lbs, apps
    for host in lbs + apps:
        host.close()


@pytest.fixture
def project(tmp_path):
    counter = iter(range(100))
    return lambda greeting, **extra: make_project(
        tmp_path / f"p{next(counter)}", {"app.py": ("Hello, World!", greeting)}, {**CONFIG, **extra})


def sh(host, command):
    return host.run(command, "test").stdout.strip()


def releases(apps, s):
    return {a.name: json.loads(smoke.request(deploy.target_for(s, a), "/healthz").body)["cwd"]
            .rsplit("/", 1)[1] for a in apps}


def through(lb, **kwargs):
    return loadgen.Load(lb.address, 80, "fleet.test", **{
        "concurrency": 4, "max_requests": 100000, "max_seconds": 90, **kwargs})


@pytest.mark.parametrize("clients", ["new connection per request", "keep-alive, GET and POST"])
def test_rolling_deploy_under_load_loses_nothing(hosts, project, clients):
    """A code change rolls with uWSGI's graceful reload on each app host: no balancer reloads
    (a reload would close keep-alive connections under a client's next request), no request
    lost, whether clients reconnect for each request or keep their connection as browsers
    and API clients do."""
    lbs, apps = hosts
    s = project(f"Hello, rolled ({clients})")
    lines = []
    keepalive = clients.startswith("keep-alive")
    # A client's connection to the balancer, idle during the roll, still works after it.
    idle = http.client.HTTPConnection(lbs[0].address, 80, timeout=10)
    idle.request("GET", "/hello", headers={"Host": "fleet.test"})
    idle.getresponse().read()
    with through(lbs[0], path="/echo", keepalive=keepalive, post_every=3 if keepalive else 0,
                 concurrency=8 if keepalive else 4) as traffic:
        traffic.wait_for(100)
        outcome = fleet.rolling_deploy(s, lbs, apps, out=lines.append)
        traffic.wait_for(traffic.result.sent + 100)
    idle.request("GET", "/hello", headers={"Host": "fleet.test"})
    assert idle.getresponse().read() == f"Hello, rolled ({clients})".encode()
    idle.close()
    assert traffic.result.failed == 0, traffic.result.errors
    assert traffic.result.sent > 200
    assert sum("stay in (uWSGI's graceful reload only)" in line for line in lines) == 2, lines
    assert not [line for line in lines if "drained" in line], lines
    new = {text.split(": ", 1)[1] for name, text in outcome.items() if text.startswith("ok")}
    assert len(new) == 1 and set(releases(apps, s).values()) == new
    assert smoke.request(smoke.Target(lbs[0].address, 80, "fleet.test"),
                         "/hello").body == f"Hello, rolled ({clients})".encode()


def test_a_noop_rolling_deploy_reloads_nothing_and_runs_no_check(hosts, project):
    """The same build again: every app host says so, no balancer reloads (its nginx workers
    are the same processes), no smoke through the balancer, and it costs a few commands per
    host, as a single-host no-op does."""
    lbs, apps = hosts
    s = project("Hello, twice")
    first = fleet.rolling_deploy(s, lbs, apps, out=lambda m: None)
    workers = {h.name: sh(h, "pgrep -P $(cat /run/nginx.pid) | sort") for h in lbs + apps}
    for h in lbs + apps:
        h.commands = 0
    lines = []
    again = fleet.rolling_deploy(s, lbs, apps, out=lines.append)
    commands = {h.name: h.commands for h in lbs + apps}
    assert again == {n: t for n, t in first.items() if "(lb)" not in n}
    assert workers == {h.name: sh(h, "pgrep -P $(cat /run/nginx.pid) | sort") for h in lbs + apps}
    assert not [line for line in lines if "lb " in line or "smoke" in line], lines
    # each app host: facts, which record the no-op and release the lock themselves (the
    # host's facts are those its deploy finished with); each balancer: its config compared
    assert commands == {**{a.name: 1 for a in apps}, **{lb.name: 1 for lb in lbs}}, commands


def test_one_request_id_from_the_balancer_through_the_app_host_into_the_app(hosts, project):
    """The balancer makes the id (a client's own is not believed); the app host keeps it, as
    it comes from its balancer; the app, the client and both access logs see the same one."""
    lbs, apps = hosts
    s = project("Hello, ids")
    fleet.rolling_deploy(s, lbs, apps, out=lambda m: None)
    rid = followed_request_id(smoke.Target(lbs[0].address, 80, "fleet.test"), lbs[0],
                              "/var/log/nginx/fleet.access.log")
    deadline = time.monotonic() + 5  # the app host's line may follow the balancer's
    while True:
        found = [a.name for a in apps
                 if a.run(f"grep -cF -- 'id={rid}' /var/log/nginx/fleet.access.log || true",
                          "log").stdout.strip() == "1"]
        if found or time.monotonic() > deadline:
            break
    assert len(found) == 1, found
    # Straight to an app host (not from its balancer), a client's id is replaced there too.
    followed_request_id(deploy.target_for(s, apps[0]), apps[0], "/var/log/nginx/fleet.access.log")


def test_an_app_host_cut_off_mid_load_costs_no_request_and_at_most_the_bounded_wait(hosts, project):
    """staging2's link goes down under load. New connections to it fail after the balancer's
    connect timeout (2 s) and go to staging1; a request already sent to it waits the read
    timeout (harakiri + 15 s), then goes to staging1 once. No GET is lost, and no request
    waits longer than those bounds (nginx's defaults: 60 s to connect, then 60 s again)."""
    lbs, apps = hosts
    s = project("Hello, failover", harakiri=3)
    fleet.rolling_deploy(s, lbs, apps, out=lambda m: None)
    bound = 2 + s.harakiri + 15 + 2  # connect, then read, timeouts; 2 s of slack
    cut = staging.Host("staging2").veth
    with through(lbs[0], path="/hello", expect=b"Hello, failover", timeout=bound + 10) as traffic:
        traffic.wait_for(200)
        subprocess.run(["ip", "link", "set", cut, "down"], check=True)
        try:
            traffic.wait_for(traffic.result.sent + 500, timeout=bound + 30)
        finally:
            subprocess.run(["ip", "link", "set", cut, "up"], check=True)
        after = traffic.result.sent
    assert traffic.result.failed == 0, traffic.result.errors
    assert after > 700
    assert max(traffic.result.latencies) <= bound, max(traffic.result.latencies)


@pytest.mark.parametrize("drain, batch_size, max_fail", [("always", 1, 0), ("auto", 2, 1)])
def test_a_failing_first_batch_stops_the_roll_and_no_request_fails(hosts, project, drain,
                                                                   batch_size, max_fail):
    """With --drain always the failed release is never seen: clients get the old page only.
    With auto (uWSGI's graceful reload, no balancer reload) the failed host serves it until
    it is restored: the roll still stops and no request fails. The first host is a canary:
    alone, and its failure stops the roll whatever --batch-size and --max-fail say."""
    lbs, apps = hosts
    s = project("Hello, steady")
    fleet.rolling_deploy(s, lbs, apps, out=lambda m: None)
    before = releases(apps, s)
    broken = make_project(
        __import__("pathlib").Path(s.project_root).parent / "broken",
        {"app.py": ('return jsonify(status="ok", release=RELEASE, cwd=os.getcwd())',
                    'return jsonify(status="failing"), 500')}, CONFIG)
    lines = []
    with through(lbs[0], path="/hello",
                 expect=b"Hello, steady" if drain == "always" else b"Hello") as traffic:
        traffic.wait_for(100)
        with pytest.raises(DeployError, match="the roll stopped"):
            fleet.rolling_deploy(broken, lbs, apps, out=lines.append, drain=drain,
                                 batch_size=batch_size, max_fail=max_fail)
        traffic.wait_for(traffic.result.sent + 100)
    assert traffic.result.failed == 0, traffic.result.errors
    summary = "\n".join(lines)
    assert "staging1     FAILED, rolled back" in summary
    assert "staging2     untouched (old release kept)" in summary
    assert releases(apps, s) == before


def test_single_host_deploy_under_load_loses_nothing(hosts, project):
    lbs, apps = hosts
    host = apps[0]
    s = project("Hello, single", roles=None)
    with loadgen.Load(host.address, 80, "fleet.test", path="/hello", concurrency=4,
                   max_requests=100000, max_seconds=90) as traffic:
        traffic.wait_for(100)
        deploy.deploy(s, host, out=lambda m: None)
        traffic.wait_for(traffic.result.sent + 100)
    assert traffic.result.failed == 0, traffic.result.errors
    assert smoke.request(deploy.target_for(s, host), "/hello").body == b"Hello, single"


def test_a_stream_in_progress_finishes_during_a_rolling_deploy(hosts, project):
    lbs, apps = hosts
    target = smoke.Target(lbs[0].address, 80, "fleet.test", timeout=30)
    got = {}

    def stream():
        resp = smoke.request(target, "/time?count=20&delay=0.5")  # 10 s: spans both batches
        got["status"], got["lines"] = resp.status, resp.body.decode().splitlines()

    reader = threading.Thread(target=stream)
    reader.start()
    fleet.rolling_deploy(project("Hello, streamed"), lbs, apps, out=lambda m: None)
    reader.join(60)
    assert got["status"] == 200
    assert [line.split()[0] for line in got["lines"]] == [str(i) for i in range(20)]


def test_a_before_switch_hook_runs_once_and_a_failing_one_switches_no_host(hosts, project):
    lbs, apps = hosts
    mark = "/srv/fleet/shared/data/migrated"
    for a in apps:
        a.run(f"rm -f {mark}", "clean")
    s = project("Hello, migrated", hooks={"before_switch": [f"touch {mark}"]},
                workers={"idle": {"command": "sleep infinity", "hosts": ["staging2"]}})
    lines = []
    fleet.rolling_deploy(s, lbs, apps, out=lines.append)
    ran = [a.name for a in apps if a.run(f"test -f {mark}", "probe", check=False).exited == 0]
    assert ran == ["staging1"], "\n".join(lines)  # once, on the first app host
    # The worker runs where its hosts say, and only there.
    units = {a.name: a.run("systemctl is-active fleet-worker-idle; ls /etc/systemd/system/",
                           "probe", check=False).stdout for a in apps}
    assert units["staging2"].startswith("active") and "fleet-worker-idle.service" in units["staging2"]
    assert "fleet-worker-idle.service" not in units["staging1"]
    before = releases(apps, s)
    failing = project("Hello, never", hooks={"before_switch": ["false"]})
    lines = []
    with pytest.raises(DeployError, match="the roll stopped"):
        fleet.rolling_deploy(failing, lbs, apps, out=lines.append)
    summary = "\n".join(lines)
    assert "staging1     FAILED before switching (before_switch hook)" in summary
    assert "staging2     untouched (old release kept)" in summary
    assert releases(apps, s) == before
    assert smoke.request(smoke.Target(lbs[0].address, 80, "fleet.test"), "/hello").body == \
        b"Hello, migrated"
    fleet.rolling_deploy(project("Hello, no workers"), lbs, apps, out=lambda m: None)
    assert "fleet-worker-idle" not in apps[1].run("ls /etc/systemd/system/", "probe").stdout


def test_maintenance_on_the_load_balancer(hosts, project):
    """`fab maintenance on` without -H toggles the balancers too: they answer the 503 page
    themselves (app hosts in maintenance would count as failed upstreams)."""
    from ops.deploy import daytwo_cmds
    from ops import locks
    lbs, apps = hosts
    s = project("Hello, maintained")
    fleet.rolling_deploy(s, lbs, apps, out=lambda m: None)
    target = smoke.Target(lbs[0].address, 80, "fleet.test")
    for host in lbs + apps:
        host.run(daytwo_cmds.maintenance_script(s, True, locks.who()), "maintenance on")
    try:
        resp = smoke.request(target, "/hello")
        assert resp.status == 503 and resp.header("Retry-After") == "300"
        assert b"Down for maintenance" in resp.body
        assert smoke.request(target, "/healthz").status == 200  # health checks still pass
    finally:
        for host in lbs + apps:
            host.run(daytwo_cmds.maintenance_script(s, False, locks.who()), "maintenance off")
    assert smoke.request(target, "/hello").body == b"Hello, maintained"


@pytest.mark.parametrize("shape", ["proxy", "cache"])
def test_every_shape_streams_through_the_balancer(hosts, project, shape):
    """The app hosts' public tier passes "X-Accel-Buffering: no" on to the balancer, so a
    stream arrives chunk by chunk through both tiers; behind a caching balancer the app hosts
    do not cache again."""
    lbs, apps = hosts
    s = project(f"Hello, {shape}", nginx=shape)
    outcome = fleet.rolling_deploy(s, lbs, apps, out=lambda m: None)
    assert outcome["staging3 (lb)"] == "smoke ok", outcome  # its stream check included
    target = smoke.Target(lbs[0].address, 80, "fleet.test")
    arrivals, total, status = smoke.stream_timings(target, "/time?count=4&delay=1")
    assert status == 200 and len(arrivals) >= 3, arrivals
    assert arrivals[0] < 1.0 and total > 2.5, (arrivals, total)  # the first line came first
    for app in apps:
        site = app.run("cat /etc/nginx/sites-enabled/fleet.conf", "site").stdout
        assert "proxy_cache_path" not in site and "proxy_pass_header X-Accel-Buffering;" in site
    if shape == "cache":
        lb_site = lbs[0].run("cat /etc/nginx/sites-enabled/fleet-lb.conf", "site").stdout
        assert "proxy_cache fleet_cache;" in lb_site
