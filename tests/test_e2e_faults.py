"""The fault suite: whatever fails, the host ends up serving a good release and the next
deploy succeeds. Real processes are killed, the real link is cut, a real disk fills up."""

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from ops import staging
from ops.deploy import deploy, remote, smoke, steps
from ops.errors import DeployError, LockError, OpsError, RemoteError

from conftest import ROOT, SAMPLE_DEPLOY

pytestmark = pytest.mark.e2e
HOST = "staging1"


def ship(s, host):
    return deploy.deploy(s, host, out=lambda line: None)


def serving(host, s):
    """The release the host serves, after checking that every smoke check passes."""
    failed = [r for r in smoke.run(s, deploy.target_for(s, host)) if not r.ok]
    assert failed == []
    return json.loads(smoke.request(deploy.target_for(s, host), "/healthz").body)["cwd"].rsplit("/", 1)[1]


def sh(host, command):
    return host.run(command, "test").stdout.strip()


def healthy(host, s):
    try:
        return smoke.request(deploy.target_for(s, host), "/healthz").status == 200
    except OSError:
        return False


def test_systemctl_stop_leaves_no_process_and_the_socket_starts_it_again(host, project):
    """Stopping the service stops every uWSGI process; systemd keeps the socket, so the next
    request starts uWSGI again. Stopping the socket too removes its file: nothing is left."""
    s = project()
    ship(s, host)
    host.run("systemctl stop sample-uwsgi", "stop")
    try:
        assert sh(host, "pgrep -u sample -c uwsgi || true") == "0"
        assert serving(host, s)  # socket activation: the request started it
        host.run("systemctl stop sample-uwsgi sample-uwsgi.socket", "stop both")
        assert sh(host, "pgrep -u sample -c uwsgi || true") == "0"
        assert sh(host, "ls /run/sample/uwsgi.sock 2>&1 || true").endswith("No such file or directory")
    finally:
        host.run("systemctl start sample-uwsgi.socket sample-uwsgi", "start")
    staging.wait_until(lambda: healthy(host, s), 15, "uWSGI to come back")


def test_a_killed_worker_is_replaced(host, project):
    s = project()
    ship(s, host)
    master = sh(host, "systemctl show -p MainPID --value sample-uwsgi")
    worker = sh(host, f"pgrep -P {master} | head -n 1")
    host.run(f"kill -KILL {worker}", "kill worker")
    staging.wait_until(lambda: worker not in sh(host, f"pgrep -P {master}").split()
                       and len(sh(host, f"pgrep -P {master}").split()) == s.processes, 10,
                       "uWSGI to respawn the worker")
    assert serving(host, s)


def test_a_killed_master_is_restarted_by_systemd(host, project):
    s = project()
    release = ship(s, host)
    master = sh(host, "systemctl show -p MainPID --value sample-uwsgi")
    host.run(f"kill -KILL {master}", "kill master")
    staging.wait_until(lambda: sh(host, "systemctl show -p MainPID --value sample-uwsgi")
                       not in ("0", master) and healthy(host, s), 15, "systemd to restart uWSGI")
    assert serving(host, s) == release


@pytest.mark.parametrize("step", ["upload", "stage", "switch", "verify", "smoke"])
def test_a_deploy_failing_at_any_step_leaves_the_old_release(host, project, step, monkeypatch):
    s = project()
    before = ship(s, host)
    monkeypatch.setenv(steps.FAIL_AT_ENV, step)
    with pytest.raises(DeployError) as err:
        ship(project({"app.py": ("Hello, World!", "Hello, half-done")}), host)
    assert err.value.step == step
    monkeypatch.delenv(steps.FAIL_AT_ENV)
    assert serving(host, s) == before
    assert smoke.request(deploy.target_for(s, host), "/hello").body == b"Hello, World!"
    assert sh(host, "ls /srv/sample/releases | grep -c partial || true") == "0"
    after = ship(project({"app.py": ("Hello, World!", "Hello, next")}), host)
    assert serving(host, s) == after


def changed_cli_project(project, greeting):
    """A project directory with a fabfile and a code change: `fab deploy` there has work to do."""
    s = project({"app.py": ("Hello, World!", greeting)})
    Path(s.project_root, "fabfile.py").write_text("from ops.tasks import ns  # noqa: F401\n")
    # A deploy: section is required (defaults are never deployed silently); these are the sample's.
    Path(s.project_root, "fabric.yaml").write_text(yaml.safe_dump({"deploy": SAMPLE_DEPLOY}))
    return Path(s.project_root)


def fab_deploy(env=None, cwd=ROOT, *args):
    return subprocess.Popen([str(ROOT / ".venv/bin/fab"), "-H", HOST, "deploy", *args], cwd=cwd,
                            env={**os.environ, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_killed_deploy_leaves_a_stale_lock_that_unlock_clears(host, project):
    s = project()
    before = ship(s, host)
    proc = fab_deploy({steps.FAIL_AT_ENV: "stage:kill"}, changed_cli_project(project, "Hello, killed"))
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert serving(host, s) == before
    with pytest.raises(LockError, match=r"STALE.*fab -H staging1 unlock"):
        ship(s, host)
    unlock = subprocess.run([str(ROOT / ".venv/bin/fab"), "-H", HOST, "unlock"], cwd=ROOT,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert unlock.returncode == 0 and "cleared: locked by" in unlock.stdout
    after = ship(project({"app.py": ("Hello, World!", "Hello, after")}), host)
    assert serving(host, s) == after


def test_two_deploys_at_once_the_second_is_refused(host, project):
    s = project()
    ship(s, host)
    first = fab_deploy({steps.FAIL_AT_ENV: "upload:pause"}, changed_cli_project(project, "Hello, first"))
    marker = Path(tempfile.gettempdir(), f"flask-ops-paused-{first.pid}")
    try:
        staging.wait_until(marker.exists, 60, "the first deploy to hold the lock")
        second = fab_deploy(None, changed_cli_project(project, "Hello, second"))
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 1
        assert "locked by" in out and f"(pid {first.pid})" in out and "STALE" not in out
    finally:
        marker.unlink(missing_ok=True)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    assert serving(host, s)


def test_the_link_cut_mid_upload_fails_clearly_and_switches_nothing(host, project, monkeypatch):
    s = project()
    before = ship(s, host)
    big = project({"app.py": ("Hello, World!", "Hello, big")})
    Path(big.source_dir, "static", "blob.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    veth = staging.Host(HOST).veth
    original = remote.Remote.put

    def cut_then_put(self, local, path, what):
        subprocess.run(["ip", "link", "set", veth, "down"], check=True)
        return original(self, local, path, what)

    monkeypatch.setattr(remote.Remote, "put", cut_then_put)
    monkeypatch.setattr(remote.Remote, "UPLOAD_TIMEOUT", 5)
    cut = staging.remote(HOST)  # a session whose SFTP channel is not open yet: opening it hung
    try:
        with pytest.raises(DeployError) as err:
            ship(big, cut)
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    assert err.value.step == "upload" and "upload to staging1 failed" in str(err.value)
    monkeypatch.undo()
    fresh = staging.remote(HOST)
    staging.wait_until(lambda: healthy(fresh, s), 20, "the link to come back")
    assert serving(fresh, s) == before
    if sh(fresh, f"ls -d {s.base}/.flask-ops/lock 2>/dev/null || true"):
        deploy.unlock(s, fresh)  # the lock of a deploy that lost its host: cleared as documented
    ship(project(), fresh)
    fresh.close()
    cut.close()


def test_a_full_disk_during_upload_fails_clearly_and_removes_the_partial_release(host, project):
    s = project()
    before = ship(s, host)
    # The release tree on a tiny filesystem: the releases already there fit, a big one does not.
    host.run("set -e; cp -a /srv/sample/releases /tmp/releases-copy; "
             "mount -t tmpfs -o size=6m flask-ops-test /srv/sample/releases; "
             "cp -a /tmp/releases-copy/. /srv/sample/releases/", "small fs")
    try:
        big = project({"app.py": ("Hello, World!", "Hello, big")})
        Path(big.source_dir, "static", "blob.bin").write_bytes(os.urandom(8 * 1024 * 1024))
        with pytest.raises(DeployError) as err:
            ship(big, host)
        assert err.value.step == "stage" and "No space left on device" in str(err.value)
        assert sh(host, "ls /srv/sample/releases") == sh(host, "ls /tmp/releases-copy")
        assert serving(host, s) == before
    finally:
        host.run("umount /srv/sample/releases; rm -rf /tmp/releases-copy", "cleanup")
    ship(project(), host)


def test_releases_that_cannot_start_are_caught(host, project):
    s = project()
    before = ship(s, host)
    # Caught by the build (it imports the app to collect static files): the host is untouched.
    for edits, wsgi, message in [
        ({"app.py": ("def create_app(", "def create_app(:")}, "app:app", "SyntaxError"),
        (None, "app:no_such_callable", "no attribute 'no_such_callable'"),
    ]:
        host.commands = 0
        with pytest.raises(OpsError, match=message):
            ship(project(edits, wsgi=wsgi), host)
        assert host.commands == 0
    # Starts, but its health check fails: rolled back after the switch.
    failing = project({"app.py": ('return jsonify(status="ok", release=RELEASE, cwd=os.getcwd())',
                                  'return jsonify(status="failing"), 500')})
    with pytest.raises(DeployError) as err:
        ship(failing, host)
    assert err.value.step == "smoke" and "healthz" in str(err.value)
    assert serving(host, s) == before


def test_hostile_hosts_fail_clearly_and_change_nothing(host, project, tmp_path):
    s = project()
    before = ship(s, host)
    from fabric import Connection
    unreachable = remote.Remote(Connection("198.18.0.99", user="root", connect_timeout=3))
    with pytest.raises(RemoteError, match="cannot run on 198.18.0.99"):
        ship(s, unreachable)
    key = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    by_address = Connection(staging.Host(HOST).address, user="root", connect_timeout=5,
                            connect_kwargs={"key_filename": [str(key)], "look_for_keys": False,
                                            "allow_agent": False})
    by_address.ssh_config["userknownhostsfile"] = str(staging.STATE_DIR / "known_hosts")
    wrong = remote.Remote(by_address)  # a known host, a key it refuses
    with pytest.raises(RemoteError, match="AuthenticationException"):
        ship(s, wrong)
    assert serving(host, s) == before
