import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# Two lanes (`make test`: pytest-xdist, one worker per lane): each worker builds into a cache of
# its own, as two machines would; they share no build directory, wheelhouse or host record.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER and _WORKER != "gw0":
    os.environ["XDG_CACHE_HOME"] = str(Path.home() / ".cache" / f"flask-ops-lane-{_WORKER}")
# The end-to-end modules whose hosts are not staging1-3 (staging5 and up, or this machine), by
# the unit of work they make under pytest-xdist: those that share hosts share one.
OWN_HOSTS = {"test_e2e_bullseye": "bullseye", "test_e2e_trixie": "trixie",
             "test_e2e_upstart": "upstart", "test_e2e_docker": "docker", "test_e2e_local": "local",
             "test_e2e_real_apps": "corpus", "test_e2e_projects": "corpus",
             "test_e2e_own_app": "corpus"}
# Projects we did not write (the real apps, the guestbook, the shop) deploy to hosts of their
# own (corpus_hosts), one per front server.
NGINX_HOST, APACHE_HOST = "staging9", "staging10"
SAMPLE = ROOT / "sample_app"
sys.path.insert(0, str(SAMPLE))
# sample_app's description, as the repository's fabric.yaml gives it (one source of truth).
SAMPLE_DEPLOY = yaml.safe_load((ROOT / "fabric.yaml").read_text())["deploy"]
# tests/apps/notes: SQLite through its env, a migrating hook, a beat and a job worker.
NOTES = ROOT / "tests" / "apps" / "notes"
NOTES_DB = "/srv/notes/shared/data/notes.db"
NOTES_DEPLOY = {
    "app_name": "notes", "source": "app", "wsgi": "notes:app", "server_names": ["notes.test"],
    "processes": 2, "smoke": [{"path": "/", "status": 200}],
    "env": {"NOTES_DB": NOTES_DB},
    "hooks": {"before_switch": ["flask migrate"], "timeout": 60},
    "workers": {"beat": "python -m notes.worker beat",
                "jobs": {"command": "python -m notes.jobs", "stop_timeout": 30}},
}


def notes_project(root, description):
    """tests/apps/notes copied to `root` as a user's project: a fabfile, and `description`
    as its fabric.yaml."""
    import shutil

    shutil.copytree(NOTES, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "fabfile.py").write_text("from ops.tasks import ns  # noqa: F401\n")
    (root / "fabric.yaml").write_text(yaml.safe_dump({"deploy": description}))
    return root


def sample_settings(root=ROOT, **raw):
    """Settings for sample_app (under `root`) with `raw` keys on top."""
    from ops.config import settings

    return settings.load({**SAMPLE_DEPLOY, **raw}, project_root=root)


@pytest.fixture
def app():
    from app import create_app

    return create_app({"TESTING": True, "SECRET_KEY": "test", "UPLOAD_FOLDER": None})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def load():
    """Settings from a raw `deploy:` mapping, resolved against the repository."""
    return lambda **raw: sample_settings(**raw)


# ---------------------------------------------------------------- end-to-end fixtures

@pytest.fixture(scope="session")
def staging_hosts():
    """Two booted staging hosts: staging1 (nginx), staging2 (apache). Hosts the run boots are
    removed when it ends (pytest_sessionfinish, after every lane); hosts a developer already
    had up are reused and left up."""
    from ops import staging

    return {h.name: h for h in staging.up(count=2, log=lambda msg: None)}


@pytest.fixture(scope="session")
def corpus_hosts():
    """NGINX_HOST and APACHE_HOST, for the projects we did not write (test_e2e_real_apps,
    test_e2e_projects, test_e2e_own_app): booted once, removed when the run ends."""
    from ops import staging

    return {h.name: h for h in staging.up(count=2, first=9, log=lambda msg: None)}


def extra_host(first, **up):
    """Generator for a module fixture: staging<first> booted with `up` (release, engine), and
    removed afterwards unless it was already there."""
    from ops import staging

    name = f"staging{first}"
    had = staging.Host(name).dir.exists()
    staging.up(1, log=lambda m: None, first=first, **up)
    host = staging.remote(name)
    yield host
    host.close()
    if not had:
        staging.stop(name)


def remove_app(host, s):
    """Leave a staging host to the other tests as it was: no site (the load balancer's too),
    unit (workers' too), user, group, files or certbot certificate of this app."""
    name = s.app_name
    host.run(f"for u in /etc/systemd/system/{name}-worker-*.service; do [ -f \"$u\" ] || continue; "
             f"systemctl disable --now \"$(basename \"$u\")\" 2>/dev/null; rm -f \"$u\"; done; "
             f"systemctl disable --now {s.service}.socket {s.service} 2>/dev/null; "
             f"rm -f /etc/nginx/sites-*/{name}.conf /etc/nginx/sites-*/{name}-lb.conf "
             f"/etc/apache2/sites-*/{name}.conf "
             f"/etc/systemd/system/{s.service}.service /etc/systemd/system/{s.service}.socket; "
             f"rm -rf /etc/flask-ops/{name}; "
             f"rm -f /etc/flask-ops/acme-forward/*/{name}.*; "
             # Everything of the app but its content-addressed venvs and wheels (root's, keyed
             # by the requirements' digest): the next test's first deploy reuses them, as a
             # host deploying the same requirements again would.
             f"if [ -d {s.base} ]; then find {s.base} -mindepth 1 -maxdepth 1 ! -name shared "
             f"! -name .flask-ops -exec rm -rf {{}} +; find {s.base}/shared -mindepth 1 "
             f"-maxdepth 1 ! -name venvs ! -name wheelhouse -exec rm -rf {{}} + 2>/dev/null; "
             f"find {s.base}/.flask-ops -mindepth 1 -delete 2>/dev/null; fi; "
             f"certbot delete --non-interactive --cert-name {name} >/dev/null 2>&1; "
             f"userdel {name} 2>/dev/null; groupdel {name} 2>/dev/null; systemctl daemon-reload; "
             "systemctl reload nginx 2>/dev/null; systemctl reload apache2 2>/dev/null; true",
             "remove " + name, check=False)


def make_project(root, edits=None, config=None):
    """A throwaway project: a copy of sample_app with edits {relpath: (old, new)} (old None:
    a new file)."""
    import shutil

    shutil.copytree(SAMPLE, root / "sample_app",
                    ignore=shutil.ignore_patterns("__pycache__", "build"))
    for rel, (old, new) in (edits or {}).items():
        path = root / "sample_app" / rel
        if old is None:  # a new file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new)
            continue
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, 1))
    return sample_settings(root, **(config or {}))


@pytest.fixture(scope="module")
def host(staging_hosts):
    """staging1, provisioned for the sample app: the nginx + uWSGI host of the e2e tier."""
    from ops.deploy import provision
    from ops import staging

    r = staging.remote("staging1")
    provision.provision(sample_settings(), r)
    yield r
    r.close()


@pytest.fixture
def project(tmp_path):
    """Make throwaway projects: project(edits, **deploy_keys) -> Settings."""
    counter = iter(range(100))
    return lambda edits=None, **config: make_project(tmp_path / f"p{next(counter)}", edits, config)


def fab(*args, cwd=ROOT, env=None):
    """Run the installed `fab` as a user does, in cwd: the CompletedProcess, output merged."""
    import subprocess
    return subprocess.run([str(ROOT / ".venv/bin/fab"), *args], cwd=cwd, text=True, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def deploy_change_rollback(host, project, stack, after_first=None):
    """The sample app on `host` with `stack`: a first deploy, a code change, a rollback, each
    seen through the front server; the app is removed afterwards. after_first(s): more
    checks of the first deploy (it saves a deploy of their own)."""
    from ops.deploy import deploy, provision, smoke

    def hello(s):
        return smoke.request(deploy.target_for(s, host), "/hello").body

    s = project(stack=stack)
    try:
        provision.provision(s, host)
        first = deploy.deploy(s, host, out=lambda m: None)
        assert hello(s) == b"Hello, World!"
        if after_first:
            after_first(s)
        changed = project({"app.py": ("Hello, World!", "Hello, again!")}, stack=stack)
        second = deploy.deploy(changed, host, out=lambda m: None)
        assert second != first and hello(changed) == b"Hello, again!"
        assert deploy.rollback(changed, host, out=lambda m: None) == first
        assert hello(s) == b"Hello, World!"
    finally:
        remove_app(host, s)


def followed_request_id(target, host_for_log, log, forged="forged-by-the-client", json_log=False):
    """GET /whoami with a client's own X-Request-ID: the app must see the front server's id
    (not the client's), the client gets that id back, and `log` (an access log on
    `host_for_log`) has a line for it. Returns the id."""
    import json
    from ops.deploy import smoke

    import time
    # a URL of its own: a cache in front must not answer with another request's page
    resp = smoke.request(target, f"/whoami?rid={forged}-{time.time_ns()}",
                         headers={"X-Request-ID": forged})
    seen = json.loads(resp.body)["request_id"]
    assert seen and seen != forged and resp.header("X-Request-ID") == seen, (seen, resp.headers)
    # nginx writes the line once the response is sent: the client can be faster (a starved
    # worker wrote it after the client's next command ran), so the line is waited for.
    lines = host_for_log.run(f"for i in $(seq 50); do grep -F -- {seen} {log} && exit; "
                             "sleep 0.1; done; exit 1", "log").stdout.splitlines()
    assert len(lines) == 1 and "/whoami?rid=" in lines[0], lines
    if json_log:
        entry = json.loads(lines[0])
        assert entry["request_id"] == seen and entry["status"] == 200, entry
        assert float(entry["request_time"]) >= 0 and entry["uri"].startswith("/whoami")
    else:
        assert f" id={seen}" in lines[0] and " rt=" in lines[0], lines[0]
    return seen


def timed_get(address, path, host="sample.test", timeout=30):
    """(status, body, Content-Type, seconds) of one GET on its own connection."""
    import http.client
    import time
    start = time.monotonic()
    conn = http.client.HTTPConnection(address, 80, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return (response.status, response.read(), response.getheader("Content-Type"),
                time.monotonic() - start)
    finally:
        conn.close()


# Every forwarding header a proxy-aware app may believe, as a hostile client sends them.
FORGED_FORWARDING = {
    "X-Forwarded-Prefix": "//evil.example", "X-Forwarded-Port": "666",
    "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
    "X-Forwarded-Server": "evil.example", "X-Forwarded-Ssl": "on",
    "Forwarded": "for=6.6.6.6;host=evil.example;proto=https",
    "X-Original-URL": "/admin", "X-Rewrite-URL": "/admin",
}


def absolute_form_whoami(target, path, host_header):
    """/whoami asked as `GET http://SITE/PATH` with another Host header (what the app saw)."""
    import json
    conn = target.connection()
    try:
        scheme = "https" if target.tls else "http"
        conn.putrequest("GET", f"{scheme}://{target.host}{path}", skip_host=True)
        conn.putheader("Host", host_header)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        return response.status, (json.loads(body) if response.status == 200 else body)
    finally:
        conn.close()


def assert_forgeries_refused(target, scheme="http"):
    """A client's forwarding headers and Host never reach the app, nor a cache in front: the
    app (wrapped in ProxyFix as Flask's docs say) builds links to the site, and so does the
    page the next visitor gets, cached or not. `scheme`: what the app must believe."""
    import json
    import time
    from ops.deploy import smoke

    root = f"{scheme}://{target.host}/"
    path = f"/whoami?forged={time.time_ns()}"
    who = json.loads(smoke.request(target, path, headers=FORGED_FORWARDING).body)
    assert who["http_host"] == target.host, who
    assert set(who["forwarded"]) <= {"X-Forwarded-Host", "X-Forwarded-Proto"}, who
    assert who["forwarded"].get("X-Forwarded-Host", target.host) == target.host, who
    assert who["forwarded"].get("X-Forwarded-Proto", scheme) == scheme, who
    assert who["scheme"] == scheme and who["proxyfix_url_root"] == root, who
    # The next plain visitor of that URL (a HIT where the site caches) gets clean links
    # (http when it came without a trusted proxy's https).
    again = json.loads(smoke.request(target, path).body)
    assert again["proxyfix_url_root"] in (root, f"http://{target.host}/"), again
    status, raw = absolute_form_whoami(target, f"/whoami?absolute={time.time_ns()}",
                                       "evil.example")
    assert status == 200 and raw["http_host"] == target.host, raw
    return who


# Requirements whose environment markers select different packages on different Pythons:
# redis 5.0.8 needs async-timeout on Python <= 3.11.2 only (Debian 12's; this machine runs
# another 3.11.x), tomli only before 3.11.
MARKED_REQUIREMENTS = 'flask>=3.0,<4\nredis==5.0.8\ntomli>=2; python_version < "3.11"'


def installed_on_host(host, s, *modules):
    """{module: whether the host's venv of the current release imports it}."""
    script = "; ".join(f"print('{m}', importlib.util.find_spec('{m}') is not None)" for m in modules)
    out = host.run(f"{s.current}/venv/bin/python -c \"import importlib.util; {script}\"",
                   "imports").stdout.split()
    return {out[i]: out[i + 1] == "True" for i in range(0, len(out), 2)}


@pytest.fixture(scope="session")
def flask_ops_tool(tmp_path_factory):
    """flask-ops as a user installs it: this checkout built as a wheel, installed into a
    fresh venv (with its dependencies from the index). The path of its `flask-ops` script."""
    import subprocess
    import sys
    root = tmp_path_factory.mktemp("tool")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
                    str(root / "dist"), str(ROOT)], check=True, stdout=subprocess.DEVNULL)
    wheel = next((root / "dist").glob("flask_ops-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    subprocess.run([str(root / "venv/bin/pip"), "install", "--quiet", str(wheel)], check=True,
                   stdout=subprocess.DEVNULL)
    return root / "venv/bin/flask-ops"


def run_tool(tool, *args, cwd):
    """An installed console script (flask_ops_tool), as a user runs it: (exit status, output)."""
    import subprocess
    proc = subprocess.run([str(tool), *args], cwd=cwd, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    return proc.returncode, proc.stdout


class Terminal:
    """A command at a terminal of its own (a pty, its controlling terminal), driven as a
    person would: wait for text, type, wait for the exit status. Deadlines, never sleeps."""

    def __init__(self, argv, cwd):
        import os
        import pty

        self.pid, self.master = pty.fork()
        if self.pid == 0:
            os.chdir(cwd)
            os.execv(argv[0], argv)
        self.seen = b""

    def until(self, text, seconds=60):
        import os
        import select
        import time

        end = time.monotonic() + seconds
        while text not in self.seen and time.monotonic() < end:
            if select.select([self.master], [], [], 0.5)[0]:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:
                    break
        assert text in self.seen, self.seen.decode(errors="replace")

    def type(self, data):
        import os
        os.write(self.master, data)

    def exit_status(self, seconds=60):
        import os
        import select
        import time

        end, done, status = time.monotonic() + seconds, 0, None
        while not done and time.monotonic() < end:
            select.select([self.master], [], [], 0.2)
            try:
                self.seen += os.read(self.master, 4096)
            except OSError:
                pass
            done, status = os.waitpid(self.pid, os.WNOHANG)
        assert done, self.seen.decode(errors="replace")
        self.pid = None
        return os.waitstatus_to_exitcode(status)

    def close(self):
        import os
        if self.pid:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.master)


def pytest_collection_modifyitems(config, items):
    """A test that removes every staging host (the session's too) runs after all the others,
    whatever its file's name; the rest keep their order. In a lane (pytest-xdist) it cannot
    run beside the others: `make test` runs it alone, afterwards."""
    items.sort(key=lambda item: item.get_closest_marker("removes_staging") is not None)
    if hasattr(config, "workerinput"):
        for item in items:
            if item.get_closest_marker("removes_staging") is not None:
                item.add_marker(pytest.mark.skip(reason="removes every staging host: run it "
                                                        "alone (make test does, after the lanes)"))


def lane_of(nodeid):
    """The unit of work a test belongs to under pytest-xdist: every end-to-end module on
    staging1-3 is one (in one lane, in file order: they share those hosts), so are the modules
    on each set of hosts of their own (OWN_HOSTS: booted once), a fast test is its own."""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    if module in OWN_HOSTS:
        return OWN_HOSTS[module]
    if module.startswith("test_e2e_"):
        return "staging1-3"
    return nodeid


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent without it
def pytest_xdist_make_scheduler(config, log):
    """Lanes by lane_of: xdist's own scope scheduler, with our scopes (its loadgroup marks no
    longer reach the scheduler under pytest 9.2)."""
    from xdist.scheduler import LoadScopeScheduling

    class Lanes(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return lane_of(nodeid)

    return Lanes(config, log)


_HAD_HOSTS = pytest.StashKey[bool]()  # whether staging hosts were up when the run began
_RAN_E2E = pytest.StashKey[bool]()  # whether the run selected an end-to-end test


def _boots_hosts(config):
    """Whether this process decides what the run leaves behind: the only one, or xdist's
    controller (its workers end before it does)."""
    return not hasattr(config, "workerinput") and os.geteuid() == 0


def pytest_sessionstart(session):
    if _boots_hosts(session.config):
        from ops import staging
        session.config.stash[_HAD_HOSTS] = bool(staging.existing_hosts())


def pytest_collection_finish(session):
    """Whether this run may boot hosts at all: the fast tier never does, so it must never
    take down hosts that another run (an e2e run in another terminal) booted meanwhile."""
    e2e = any(item.get_closest_marker("e2e") for item in session.items)
    if hasattr(session.config, "workerinput"):
        session.config.workeroutput["e2e"] = e2e  # xdist hands it to the controller
    else:
        session.config.stash[_RAN_E2E] = e2e


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    if getattr(node, "workeroutput", {}).get("e2e"):
        node.config.stash[_RAN_E2E] = True


def pytest_sessionfinish(session):
    """Hosts this run booted go when it ends; a developer's own stay up, and so do hosts
    booted by another run while a fast-tier run went on."""
    config = session.config
    if _boots_hosts(config) and not config.stash.get(_HAD_HOSTS, True) \
            and config.stash.get(_RAN_E2E, False):
        from ops import staging
        if staging.existing_hosts():
            staging.down(log=lambda msg: None)
