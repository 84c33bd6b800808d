"""An upstart host for real: upstart 1.12.1 (Ubuntu 14.04's init) as PID 1 on staging8, built
from vendor/upstart. tests/apps/notes goes there through `fab` as a user types it, with
`init: upstart`: provision, a first deploy whose app and workers read the env file, a code
change (the master reloaded in place onto the new release), a killed master respawned, a
release that cannot start caught at once with the old one serving, a rollback, `fab status`
and `fab logs`, a stopped job leaving nothing behind; then the same host switched to Apache,
and HTTPS there.

The tests run in order and build on each other (one app, one host)."""

import json
import time

import pytest
import yaml

from certfiles import own_certificate
from conftest import NOTES_DEPLOY, extra_host, fab, notes_project
from ops.config import settings
from ops.deploy import deploy, smoke
from ops.staging.upstart import JOBS

pytestmark = pytest.mark.e2e

HOST, ADDRESS = "staging8", "198.18.0.18"
DESCRIPTION = {**NOTES_DEPLOY, "init": "upstart"}
SOCKET = "/srv/notes/shared/run/uwsgi.sock"


@pytest.fixture(scope="module")
def upstart_host():
    yield from extra_host(8, init="upstart")


@pytest.fixture(scope="module")
def project(upstart_host, tmp_path_factory):
    return notes_project(tmp_path_factory.mktemp("notes-upstart"), DESCRIPTION)


def run(root, *args):
    return fab("-H", HOST, *args, cwd=root)


def ok(result):
    assert result.returncode == 0, result.stdout
    return result.stdout


def served():
    resp = smoke.request(smoke.Target(ADDRESS, 80, "notes.test"), "/")
    assert resp.status == 200, resp.body[:300]
    return json.loads(resp.body)


def serving():
    """What the app serves, or None while it does not answer (a job starting)."""
    resp = smoke.request(smoke.Target(ADDRESS, 80, "notes.test"), "/")
    return json.loads(resp.body) if resp.status == 200 else None


def on_host(host, script):
    return host.run(script, "probe", check=False).stdout


def job_pid(host, job):
    out = on_host(host, f"initctl status {job}")
    return int(out.split("process ")[1].split()[0]) if "start/running, process" in out else None


def wait_for(condition, what, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def heartbeat(host, release):
    def fresh():
        seen = on_host(host, "cat /srv/notes/shared/data/heartbeat-beat 2>/dev/null").split()
        return seen and seen[0] == release and time.time() - float(seen[1]) < 5
    wait_for(fresh, f"the beat worker's heartbeat from {release}")


def edit(root, old, new):
    path = root / "app" / "notes" / "__init__.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_pid_1_is_upstart(upstart_host):
    out = on_host(upstart_host, "initctl version; readlink -f /proc/1/exe; "
                                "test -d /run/systemd/system && echo SYSTEMD")
    assert "upstart 1.12.1" in out and "/usr/sbin/init" in out and "SYSTEMD" not in out, out


def test_systemd_units_for_this_host_are_refused_before_anything_changes(upstart_host,
                                                                         tmp_path):
    root = notes_project(tmp_path / "systemd", NOTES_DEPLOY)  # no `init:`: systemd
    result = run(root, "deploy")
    assert result.returncode == 1
    assert "init is 'systemd' but staging8 runs upstart" in result.stdout
    assert "Set init: upstart for this host." in result.stdout
    assert on_host(upstart_host, "ls /etc/init; test -e /srv/notes && echo NOTES").split() \
        == sorted(JOBS)


def test_provision_and_a_first_deploy_with_its_env_and_workers(upstart_host, project):
    out = ok(run(project, "provision"))
    assert "started nginx" in out
    # nginx is a sysv service under upstart, linked into the runlevels as on Ubuntu 14.04
    assert on_host(upstart_host, "ls /etc/rc2.d").split().count("S01nginx") == 1
    out = ok(run(project, "deploy"))
    assert "before_switch | migration 1" in out
    body = served()  # the app reads NOTES_DB from the env file: a KeyError without it
    assert body["reads"] == ["id", "body"] and body["release"]
    assert smoke.request(smoke.Target(ADDRESS, 80, "notes.test"), "/notes",
                         method="POST").status == 201
    assert served()["notes"] == [[1, "hello"]]
    heartbeat(upstart_host, body["release"])
    # upstart's jobs: uWSGI's master, and the worker as the app's user in the release
    master, beat = job_pid(upstart_host, "notes-uwsgi"), job_pid(upstart_host, "notes-worker-beat")
    info = on_host(upstart_host, f"stat -c %U /proc/{master} /proc/{beat}; "
                                 f"readlink /proc/{beat}/cwd").split()
    assert info == ["notes", "notes", f"/srv/notes/releases/{body['release']}"]


def test_a_code_change_reloads_the_master_in_place(upstart_host, project):
    before, master = served()["release"], job_pid(upstart_host, "notes-uwsgi")
    edit(project, 'READS = ["id", "body"]', 'READS = ["id", "body"]  # changed')
    out = ok(run(project, "deploy"))
    assert "reload notes-uwsgi" in out
    after = served()
    assert after["release"] != before and after["notes"] == [[1, "hello"]]
    assert job_pid(upstart_host, "notes-uwsgi") == master  # `initctl reload`: no restart
    heartbeat(upstart_host, after["release"])


def test_a_job_in_hand_finishes_when_a_deploy_restarts_its_worker(upstart_host, project):
    """upstart signals the job's main process only (the worker), which stops taking jobs and
    waits for the one its child runs: the job started before the restart is done after it."""
    def jobs():
        lines = on_host(upstart_host, "cat /srv/notes/shared/data/jobs.log 2>/dev/null")
        return [line.split() for line in lines.splitlines() if line.strip()]

    wait_for(lambda: any(kind == "started" for kind, _ in jobs()), "a job to start")
    worker = [name for kind, name in jobs() if kind == "started"][-1].split("-")[0]
    edit(project, '"""A small app', '"""A small app (a job worker too)')
    ok(run(project, "deploy"))
    lines = jobs()
    started = {n for kind, n in lines if kind == "started" and n.startswith(worker + "-")}
    assert started and started <= {n for kind, n in lines if kind == "done"}, lines


def test_a_killed_master_is_respawned(upstart_host, project):
    release, master = served()["release"], job_pid(upstart_host, "notes-uwsgi")
    on_host(upstart_host, f"kill -9 {master}")
    wait_for(lambda: job_pid(upstart_host, "notes-uwsgi") not in (None, master),
             "upstart to respawn uWSGI")
    assert wait_for(lambda: (serving() or {}).get("release") == release, "the app to serve again")


BREAK_UNDER_UWSGI = ("import sqlite3", "import sqlite3\ntry:\n    import uwsgi  # noqa: F401\n"
                     "except ImportError:\n    pass\nelse:\n"
                     "    raise RuntimeError('not under uWSGI')")


def test_a_release_that_cannot_start_is_caught_at_once(upstart_host, project):
    """The app fails to load in uWSGI only (its hook and workers import it fine): upstart gives
    up on the reloaded master, verify says so in a second or two (not at its timeout), and
    the old release serves again."""
    serving = served()
    edit(project, *BREAK_UNDER_UWSGI)
    started = time.monotonic()
    result = run(project, "deploy")
    assert result.returncode == 1, result.stdout
    assert time.monotonic() - started < 20, result.stdout
    assert "notes-uwsgi stopped: it exits as soon as it starts" in result.stdout
    assert "RuntimeError: not under uWSGI" in result.stdout  # from the job's upstart log
    assert f"restore    back on {serving['release']}" in result.stdout
    assert served() == serving
    heartbeat(upstart_host, serving["release"])
    edit(project, *reversed(BREAK_UNDER_UWSGI))


def test_rollback_status_and_logs(upstart_host, project):
    releases = on_host(upstart_host, "ls /srv/notes/releases").split()
    current = served()["release"]
    previous = releases[releases.index(current) - 1]
    ok(run(project, "rollback"))
    assert served()["release"] == previous
    heartbeat(upstart_host, previous)
    status = ok(run(project, "status"))
    assert f"current      {previous}" in status
    for unit in ("nginx", "notes-uwsgi", "notes-worker-beat", "notes-worker-jobs"):
        assert f"'{unit}': 'active'" in status, status
    probe = f"/?probe={time.time()}"
    assert smoke.request(smoke.Target(ADDRESS, 80, "notes.test"), probe).status == 200
    logs = ok(run(project, "logs", "--lines", "200"))
    assert f"GET {probe}" in logs  # nginx's access log for the site
    assert "==> /var/log/upstart/notes-worker-beat.log <==" in logs
    assert f"worker beat started in /srv/notes/releases/{previous}" in logs
    assert "No journal files" not in logs  # no journal on an upstart host


def test_a_stopped_job_leaves_no_process_nor_socket(upstart_host, project):
    on_host(upstart_host, "initctl stop notes-uwsgi")
    left = on_host(upstart_host, f"pgrep -u notes -f 'uWSGI' ; test -e {SOCKET} && echo SOCKET")
    assert left.strip() == "", left  # uWSGI removed its own socket: its directory is the app's
    on_host(upstart_host, "initctl start notes-uwsgi")
    assert wait_for(lambda: (serving() or {}).get("notes") == [[1, "hello"]], "the app after a start")


def test_the_same_host_on_apache(upstart_host, project):
    (project / "fabric.yaml").write_text(
        yaml.safe_dump({"deploy": {**DESCRIPTION, "stack": "apache-modwsgi"}}))
    out = ok(run(project, "provision"))
    assert "disabled nginx (apache serves port 80)" in out and "started apache2" in out
    assert on_host(upstart_host, "ls /etc/rc2.d; service nginx status >/dev/null || "
                                 "echo NGINX-STOPPED").split()[-1] == "NGINX-STOPPED"
    ok(run(project, "deploy"))
    first = served()
    assert first["notes"] == [[1, "hello"]]
    heartbeat(upstart_host, first["release"])
    status = ok(run(project, "status"))
    for unit in ("apache2", "notes-worker-beat", "notes-worker-jobs"):
        assert f"'{unit}': 'active'" in status, status
    # A release whose app cannot load under mod_wsgi: the previous one serves again.
    edit(project, BREAK_UNDER_UWSGI[0], BREAK_UNDER_UWSGI[1].replace("uwsgi", "mod_wsgi"))
    result = run(project, "deploy")
    assert result.returncode == 1 and "restore    back on" in result.stdout, result.stdout
    assert served() == first
    edit(project, BREAK_UNDER_UWSGI[1].replace("uwsgi", "mod_wsgi"), BREAK_UNDER_UWSGI[0])
    edit(project, 'READS = ["id", "body"]  # changed', 'READS = ["id", "body"]  # on apache')
    ok(run(project, "deploy"))
    second = served()["release"]
    assert second != first["release"]
    heartbeat(upstart_host, second)
    ok(run(project, "rollback"))
    assert served()["release"] == first["release"]
    probe = f"/?probe={time.time()}"
    assert smoke.request(smoke.Target(ADDRESS, 80, "notes.test"), probe).status == 200
    logs = ok(run(project, "logs", "--lines", "100"))
    assert f"GET {probe}" in logs and "/var/log/apache2/notes.access.log" in logs


def test_https_on_the_upstart_host(upstart_host, project, tmp_path):
    """The site's own certificate on Apache under upstart: mod_ssl enabled and Apache
    restarted through `service`, HTTP redirected, the app served over TLS."""
    tls = own_certificate(tmp_path, ["notes.test"])
    (project / "fabric.yaml").write_text(yaml.safe_dump(
        {"deploy": {**DESCRIPTION, "stack": "apache-modwsgi", "tls": tls}}))
    ok(run(project, "provision"))
    ok(run(project, "deploy"))  # its smoke checks go over TLS, HTTP redirecting
    s = settings.load({**DESCRIPTION, "stack": "apache-modwsgi", "tls": tls}, project_root=project)
    page = smoke.request(deploy.target_for(s, upstart_host), "/")
    assert page.status == 200 and json.loads(page.body)["notes"] == [[1, "hello"]]
    plain = smoke.request(smoke.Target(ADDRESS, 80, "notes.test"), "/")
    assert plain.status == 301 and plain.header("Location") == "https://notes.test/"

