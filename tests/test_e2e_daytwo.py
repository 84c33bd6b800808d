"""Day two on a real staging host, through `fab` as a user types it: a before-switch hook that
migrates an SQLite database in the app's data directory, a failing migration that leaves the
old release serving, `fab exec`, `fab logs`, a worker restarted onto each release and removed
when dropped, maintenance mode seen through the front server, and `fab history`.

The tests of this module run in order and build on each other (one app, one host)."""

import json
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import NOTES_DB, NOTES_DEPLOY, Terminal, fab, notes_project, remove_app
from ops import staging
from ops.config import settings
from ops.deploy import smoke

pytestmark = pytest.mark.e2e

HOST, ADDRESS = "staging1", "198.18.0.11"
DB = NOTES_DB
DESCRIPTION = {
    **NOTES_DEPLOY,
    # staging2 may see the app while it is down for maintenance; this machine may not.
    "maintenance": {"allow": ["198.18.0.12"], "retry_after": 120},
}


def describe(root, **changes):
    (root / "fabric.yaml").write_text(yaml.safe_dump({"deploy": {**DESCRIPTION, **changes}}))


def edit(root, old, new):
    path = root / "app" / "notes" / "__init__.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def project(staging_hosts, tmp_path_factory):
    root = notes_project(tmp_path_factory.mktemp("notes"), DESCRIPTION)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "notes"], check=True)
    yield root
    s = settings.load(DESCRIPTION, project_root=root)
    host = staging.remote(HOST)
    remove_app(host, s)
    host.close()


def run(root, *args, host=HOST):
    return fab("-H", host, *args, cwd=root)


def ok(result):
    assert result.returncode == 0, result.stdout
    return result.stdout


def page(path="/", address=ADDRESS):
    return smoke.request(smoke.Target(address, 80, "notes.test"), path)


def served():
    resp = page()
    assert resp.status == 200, resp.body[:300]
    return json.loads(resp.body)


def on_host(script, name=HOST):
    host = staging.remote(name)
    try:
        return host.run(script, "probe", check=False)
    finally:
        host.close()


def heartbeat(release, deadline=30):
    """Wait until the worker's heartbeat names `release` (and is fresh)."""
    end = time.monotonic() + deadline
    seen = None
    while time.monotonic() < end:
        seen = on_host("cat /srv/notes/shared/data/heartbeat-beat 2>/dev/null").stdout.split()
        if seen and seen[0] == release and time.time() - float(seen[1]) < 5:
            return
        time.sleep(0.2)
    raise AssertionError(f"worker heartbeat {seen} never named {release}")


def status_seen_from(name, address):
    """The status of GET / for notes.test as another staging host sees it."""
    return on_host(f"python3 -c 'import urllib.request as u, urllib.error as e\n"
                   f"try: print(u.urlopen(u.Request(\"http://{address}/\", headers="
                   f"{{\"Host\": \"notes.test\"}})).status)\n"
                   f"except e.HTTPError as x: print(x.code)'", name).stdout.strip()


def test_first_deploy_migrates_before_the_switch(project):
    ok(run(project, "provision"))
    out = ok(run(project, "deploy"))
    assert "before_switch | migration 1: CREATE TABLE notes" in out
    body = served()
    assert body["reads"] == ["id", "body"] and body["release"]
    assert page("/notes").status == 405  # GET is not the app's; POST is
    assert smoke.request(smoke.Target(ADDRESS, 80, "notes.test"), "/notes",
                         method="POST").status == 201
    assert served()["notes"] == [[1, "hello"]]
    heartbeat(body["release"])
    # The worker runs as the app's user from the release's directory.
    info = on_host("pid=$(systemctl show -p MainPID --value notes-worker-beat); "
                   "stat -c %U /proc/$pid; readlink /proc/$pid/cwd").stdout.split()
    assert info == ["notes", f"/srv/notes/releases/{body['release']}"]


def test_a_job_in_hand_finishes_when_a_deploy_restarts_its_worker(project):
    """The worker's warm shutdown (SIGTERM to it alone: KillMode=mixed) lets the job in its
    child process finish; with systemd's default, the child got SIGTERM too and died."""
    def jobs():
        lines = on_host("cat /srv/notes/shared/data/jobs.log 2>/dev/null").stdout.splitlines()
        return [line.split() for line in lines if line.strip()]

    end = time.monotonic() + 30
    while not any(kind == "started" for kind, _ in jobs()) and time.monotonic() < end:
        time.sleep(0.2)
    old_worker = [name for kind, name in jobs() if kind == "started"][-1].split("-")[0]
    edit(project, '"""A small app', '"""A small app (a job worker too)')
    ok(run(project, "deploy"))  # every deploy restarts the workers onto the new release
    lines = jobs()
    started = {name for kind, name in lines if kind == "started" and name.startswith(old_worker + "-")}
    done = {name for kind, name in lines if kind == "done"}
    assert started and started <= done, lines  # the job in hand at the restart finished


def test_a_migration_ships_with_the_code_it_serves(project):
    before = served()["release"]
    edit(project, '    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",\n',
         '    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",\n'
         '    "ALTER TABLE notes ADD COLUMN tag TEXT NOT NULL DEFAULT \'none\'",\n')
    edit(project, 'READS = ["id", "body"]', 'READS = ["id", "body", "tag"]')
    out = ok(run(project, "deploy"))
    assert "migration 2: ALTER TABLE notes ADD COLUMN tag" in out
    body = served()
    assert body["release"] != before
    assert body["reads"] == ["id", "body", "tag"] and body["notes"] == [[1, "hello", "none"]]
    heartbeat(body["release"])  # restarted onto the new release


def test_a_failing_migration_switches_nothing(project):
    serving = served()
    edit(project, 'READS = ["id", "body", "tag"]', 'READS = ["id", "body", "tag", "x"]')
    edit(project, "]\nREADS", '    "ALTER TABLE no_such_table ADD COLUMN x TEXT",\n]\nREADS')
    result = run(project, "deploy")
    assert result.returncode == 1, result.stdout
    assert "before_switch" in result.stdout and "no such table: no_such_table" in result.stdout
    assert served() == serving  # the old release serves, with the data it had
    heartbeat(serving["release"])
    state = on_host("readlink /srv/notes/current; ls /srv/notes/releases; "
                    "test -d /srv/notes/.flask-ops/lock && echo LOCKED").stdout
    assert state.split()[0].endswith(serving["release"]) and "LOCKED" not in state
    # Put the code back to what serves, for the tests that follow.
    edit(project, '    "ALTER TABLE no_such_table ADD COLUMN x TEXT",\n', "")
    edit(project, 'READS = ["id", "body", "tag", "x"]', 'READS = ["id", "body", "tag"]')


def test_exec_runs_in_the_current_release_as_the_app(project):
    out = ok(run(project, "exec", "--", "flask", "routes"))
    assert "index" in out and "/notes" in out and "POST" in out
    out = ok(run(project, "exec", "--", "python", "-c",
                 "import os, getpass; print(getpass.getuser(), os.getcwd(), os.environ['NOTES_DB'])"))
    assert out.split()[-3:] == ["notes", f"/srv/notes/releases/{served()['release']}", DB]
    failed = run(project, "exec", "--", "python", "-c", "import sys; sys.exit(3)")
    assert failed.returncode == 3, failed.stdout
    missing = run(project, "exec")
    assert missing.returncode == 1 and "needs a command after `--`" in missing.stdout


def test_logs_show_a_request_just_made(project):
    probe = secrets.token_hex(6)
    assert page(f"/?probe={probe}").status == 200
    out = ok(run(project, "logs", "--lines", "300"))
    assert f"GET /?probe={probe}" in out  # the front server's access log for this site
    assert "worker beat started in /srv/notes/releases/" in out  # the worker's journal


def test_maintenance_mode_through_the_front_server(project):
    ok(run(project, "maintenance", "on"))
    try:
        resp = page("/")
        assert resp.status == 503 and resp.header("Retry-After") == "120"
        assert b"Down for maintenance" in resp.body
        assert resp.header("X-Content-Type-Options") == "nosniff"
        assert page("/static/notes.css").status == 200  # static files still served
        # An allowed address (staging2) still gets the app.
        assert status_seen_from("staging2", ADDRESS) == "200"
        assert "maintenance  ON" in ok(run(project, "status"))
        # A deploy while down for maintenance: its smoke checks expect the 503 page (health
        # and static files still pass), and the site stays down until turned back on.
        edit(project, "app = Flask(__name__)", "app = Flask(__name__)  # deployed in maintenance")
        ok(run(project, "deploy"))
        assert page("/").status == 503
        assert status_seen_from("staging2", ADDRESS) == "200"
    finally:
        ok(run(project, "maintenance", "off"))
    assert page("/").status == 200
    assert "maintenance  off" in ok(run(project, "status"))


def test_a_dropped_worker_is_stopped_and_removed(project):
    describe(project, workers={})
    ok(run(project, "deploy"))
    state = on_host("systemctl is-active notes-worker-beat; "
                    "ls /etc/systemd/system/notes-worker-beat.service").stdout
    assert "inactive" in state or "unknown" in state
    assert "notes-worker-beat.service" not in state.split("\n", 1)[1]
    assert served()["reads"] == ["id", "body", "tag"]


def test_history_lists_deploys_failures_and_rollbacks(project):
    ok(run(project, "rollback"))
    rows = ok(run(project, "history", "-n", "20")).splitlines()
    rows = [r for r in rows if r[:4].isdigit()]
    assert "rollback" in rows[0] and " ok " in rows[0]
    failed = [r for r in rows if "failed at before_switch" in r]
    assert failed and "no such table" in failed[0]
    assert any("maintenance on" in r for r in rows) and any("maintenance off" in r for r in rows)
    deploys = [r for r in rows if r.split()[2] == "deploy" and " ok " in r]
    assert len(deploys) >= 3 and all("by " in r and "commit " in r for r in deploys)
    assert deploys[-1].split("commit ")[1].split()[0] == subprocess.run(
        ["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True,
        text=True).stdout.strip()[:12]  # the first deploy: the committed tree, not dirty
    # It survives pruning: outside the releases directory.
    assert on_host("test -f /srv/notes/.flask-ops/history.jsonl && echo yes").stdout.strip() == "yes"


def test_exec_without_a_task_host_list_is_not_run_raw(project):
    """`fab exec -- CMD` runs CMD once, through exec; Fabric must not run it raw as well."""
    out = ok(run(project, "exec", "--", "sh", "-c", "echo ran-as-$(id -un)"))
    assert out.count("ran-as-") == 1 and "ran-as-notes" in out



def test_exec_with_a_terminal_is_interactive(project):
    """`fab exec -- flask shell` at a terminal: a pty on the host, the user's keystrokes in."""
    fab_bin = str(Path(__file__).parent.parent / ".venv/bin/fab")
    term = Terminal([fab_bin, "-H", HOST, "exec", "--", "flask", "shell"], project)
    try:
        term.until(b">>> ")  # the remote REPL is up: type into it
        term.type(b"print(app.name, 6 * 7)\n")
        term.until(b"notes 42")
        term.type(b"exit()\n")
        term.until(b"exit()")
        assert term.exit_status() == 0
    finally:
        term.close()


@pytest.fixture(scope="module")
def apache_project(staging_hosts, tmp_path_factory):
    changes = {"stack": "apache-modwsgi", "maintenance": {"allow": [ADDRESS], "retry_after": 60}}
    root = notes_project(tmp_path_factory.mktemp("notes-apache"), {**DESCRIPTION, **changes})
    yield root
    host = staging.remote("staging2")
    remove_app(host, settings.load({**DESCRIPTION, **changes}, project_root=root))
    host.close()


def test_on_apache_hooks_workers_exec_logs_and_maintenance(apache_project):
    root, apache = apache_project, "198.18.0.12"
    ok(run(root, "provision", host="staging2"))
    assert "before_switch | migration 1" in ok(run(root, "deploy", host="staging2"))
    release = json.loads(page(address=apache).body)["release"]
    assert ok(run(root, "exec", "--", "id", "-un", host="staging2")).strip() == "notes"
    info = on_host("pid=$(systemctl show -p MainPID --value notes-worker-beat); "
                   "readlink /proc/$pid/cwd", "staging2").stdout.strip()
    assert info == f"/srv/notes/releases/{release}"
    probe = secrets.token_hex(6)
    page(f"/?probe={probe}", address=apache)
    assert f"GET /?probe={probe}" in ok(run(root, "logs", "--lines", "50", host="staging2"))
    ok(run(root, "maintenance", "on", host="staging2"))
    try:
        resp = page(address=apache)
        assert resp.status == 503 and resp.header("Retry-After") == "60", resp.body[:300]
        assert b"Down for maintenance" in resp.body and resp.header("X-Frame-Options")
        assert page("/static/notes.css", address=apache).status == 200
        assert status_seen_from("staging1", apache) == "200"  # allowed
    finally:
        ok(run(root, "maintenance", "off", host="staging2"))
    assert page(address=apache).status == 200
