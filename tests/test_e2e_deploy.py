"""End to end on a real systemd host over real SSH: nginx + uWSGI in every shape."""

import concurrent.futures
import http.client
import json
import time
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
import yaml

from ops import staging
from ops.deploy import deploy, openssh, plan, provision, remote, smoke
from ops.errors import DeployError, LockError, OpsError

import loadgen
from conftest import (MARKED_REQUIREMENTS, ROOT, SAMPLE_DEPLOY, Terminal, assert_forgeries_refused,
                      fab, followed_request_id, installed_on_host, remove_app, timed_get)

pytestmark = pytest.mark.e2e
HOST = "staging1"


def ship(s, host):
    lines = []
    release = deploy.deploy(s, host, out=lines.append)
    return release, "\n".join(lines)


def get(host, s, path, **headers):
    return smoke.request(deploy.target_for(s, host), path, headers=headers)


def sh(host, command):
    return host.run(command, "test").stdout.strip()


def current(host, s):
    return deploy.releases(s, host)[0]


@pytest.mark.parametrize("shape", ["default", "proxy", "cache"])
def test_each_nginx_shape_deploys_and_passes_smoke(host, project, shape):
    fmt = "json" if shape == "cache" else "main"
    s = project(nginx=shape, access_log=fmt)
    release, _ = ship(s, host)
    assert current(host, s) == release
    results = smoke.run(s, deploy.target_for(s, host), deploy.current_statics(s, host))
    assert [r.name for r in results if not r.ok] == []
    names = {r.name for r in results}
    assert {"streaming", "static /static/css/site.css", "static /static/reports/reports.css",
            "unknown host refused"} <= names
    assert ("cache" in names) == (shape == "cache")
    # Forged proxy headers never reach the app as if nginx had set them.
    who = json.loads(get(host, s, "/whoami", **{"X-Forwarded-For": "6.6.6.6",
                                                "X-Forwarded-Proto": "https"}).body)
    assert "6.6.6.6" not in (who["forwarded_for"] or "")
    assert who["forwarded_for"] == staging.BRIDGE_ADDR
    assert who["forwarded_proto"] == "http"
    # ...nor any other forwarding header, nor a Host other than the site's; the app runs in
    # a UTF-8 locale.
    assert assert_forgeries_refused(deploy.target_for(s, host))["fs_encoding"] == "utf-8"
    # One request id, from nginx to the app, back to the client, in the access log.
    followed_request_id(deploy.target_for(s, host), host, "/var/log/nginx/sample.access.log",
                        json_log=fmt == "json")
    bearer = json.loads(get(host, s, "/whoami", Authorization="Bearer t0ken").body)
    assert bearer["authorization"] == "Bearer"
    # Bodies over client_max_body_size are refused by nginx before the app sees them.
    conn = http.client.HTTPConnection(host.address, 80, timeout=10)
    conn.request("POST", "/echo", headers={"Host": "sample.test", "Content-Length": str(20 * 2**20)})
    too_big = conn.getresponse()
    assert too_big.status == 413 and too_big.getheader("X-Frame-Options") == "SAMEORIGIN"
    conn.close()
    if shape == "cache":
        # A gzip answer is never cached for clients that did not ask for it.
        probe = f"/?gz={time.time_ns()}"
        zipped = get(host, s, probe, **{"Accept-Encoding": "gzip"})
        assert zipped.header("Content-Encoding") == "gzip" and "Accept-Encoding" in (
            zipped.header("Vary") or "")
        plain = get(host, s, probe)
        assert plain.header("X-Cache-Status") == "HIT" and not plain.header("Content-Encoding")
        assert b"<html" in plain.body.lower()
    if shape == "cache":  # a cached answer carries the security headers too, never a cookie
        get(host, s, "/hello")
        hit = get(host, s, "/hello")
        assert hit.header("X-Cache-Status") == "HIT"
        assert hit.header("X-Content-Type-Options") == "nosniff" and not hit.header("Set-Cookie")
        # A code change is seen at once, not after cache_ttl: the new build has its own cache
        # (its smoke checks for the new text). Rolling back, with those same settings, checks
        # what the old release recorded (its own text) and finds its cached pages again.
        changed = project({"app.py": ('return "Hello, World!"', 'return "Hello, v2!"')},
                          nginx=shape, access_log=fmt,
                          smoke=[{"path": "/hello", "contains": "Hello, v2!"}])
        ship(changed, host)
        assert get(host, s, "/hello").body == b"Hello, v2!"
        deploy.rollback(changed, host, out=lambda line: None)
        back = get(host, s, "/hello")
        assert back.body == b"Hello, World!" and back.header("X-Cache-Status") == "HIT"


def test_every_shape_answers_over_ipv6(host, project):
    """The staging bridge has IPv6 (a ULA range of our own): nginx listens on [::] too, and a
    page, a static file, a stream and the unknown-Host refusal are the same over it."""
    address6 = staging.Host(HOST).address6
    for shape in ("default", "cache"):
        s = project(nginx=shape)
        release, _ = ship(s, host)
        v6 = smoke.Target(address6, 80, "sample.test")
        page = smoke.request(v6, "/hello")
        assert page.status == 200 and page.body == b"Hello, World!"
        assert page.header("X-Frame-Options") == "SAMEORIGIN"
        results = {r.name: r for r in smoke.run(s, v6, deploy.current_statics(s, host))}
        assert [r.detail for r in results.values() if not r.ok] == []
        assert {"streaming", "static /static/css/site.css", "unknown host refused"} <= set(results)
    ship(project(), host)  # the module's baseline again


def test_a_deploy_user_with_sudo_deploys_and_one_whose_sudo_asks_is_told_what_to_do(host, project):
    """As on a VPS: log in as `deploy` (sudo without a password) and everything works; as
    `asker` (sudo wants a password) the first command stops with one line saying what to set."""
    setup = ("for u in deploy asker; do id -u $u >/dev/null 2>&1 || useradd -m -s /bin/bash $u; "
             "install -d -o $u -g $u -m 700 /home/$u/.ssh; "
             "install -o $u -g $u -m 600 /root/.ssh/authorized_keys /home/$u/.ssh/; done; "
             "echo 'asker:not-known-to-flask-ops' | chpasswd; "
             "echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy; "
             "echo 'asker ALL=(ALL) ALL' > /etc/sudoers.d/asker; chmod 440 /etc/sudoers.d/*")
    sh(host, setup)
    s = project(app_name="viasudo", server_names=["viasudo.test"])
    config = staging.ssh_config_for(HOST)
    deploy_user = remote.open_host(f"deploy@{HOST}", ssh_config=config)
    asker = remote.open_host(f"asker@{HOST}", ssh_config=config)
    try:
        provision.provision(s, deploy_user)
        release, _ = ship(s, deploy_user)
        assert smoke.request(deploy.target_for(s, host), "/hello").body == b"Hello, World!"
        assert sh(host, "stat -c %U /srv/viasudo/releases") == "root"  # root's, via sudo
        with pytest.raises(OpsError) as err:
            provision.provision(s, asker)
        message = str(err.value)
        assert "asker@" in message and "sudo asks for a password" in message
        assert "--prompt-for-sudo-password" in message and "NOPASSWD" in message
        assert "\n" not in message
        # Fabric's sudo password (what --prompt-for-sudo-password asks for) goes to sudo -S,
        # then the script's own input: a deploy, its secrets included, works as that user.
        from fabric import Config
        with_password = remote.open_host(
            f"asker@{HOST}", Config(overrides={"sudo": {"password": "not-known-to-flask-ops"}}),
            ssh_config=config)
        changed = project({"app.py": ('return "Hello, World!"', 'return "Hello, asker"')},
                          app_name="viasudo", server_names=["viasudo.test"],
                          env={"DEPLOYED_BY": "asker"})
        release, _ = ship(changed, with_password)
        assert current(host, s) == release
        assert smoke.request(deploy.target_for(s, host), "/hello").body == b"Hello, asker"
        assert "DEPLOYED_BY=asker" in sh(host, "cat /srv/viasudo/shared/env")
        with_password.close()
        # At a terminal, as a user types it: fab asks for the sudo password once; `fab exec`
        # answers sudo's own prompt with it on the host's pty, then the command is the user's.
        root = Path(changed.project_root)
        (root / "fabfile.py").write_text("from ops.tasks import ns  # noqa: F401\n")
        (root / "fabric.yaml").write_text(yaml.safe_dump({"deploy": {
            **SAMPLE_DEPLOY, "app_name": "viasudo", "server_names": ["viasudo.test"],
            "env": {"DEPLOYED_BY": "asker"}}}))
        term = Terminal([str(ROOT / ".venv/bin/fab"), "--prompt-for-sudo-password", "-S",
                         str(config), "-H", f"asker@{HOST}", "exec", "--", "python", "-c",
                         "import os; print(input('name? ').upper(), os.environ['DEPLOYED_BY'])"],
                        root)
        try:
            term.until(b"sudo.password")
            term.type(b"not-known-to-flask-ops\n")
            term.until(b"name? ")
            term.type(b"ada\n")
            term.until(b"ADA asker")
            assert term.exit_status() == 0
            assert b"not-known-to-flask-ops" not in term.seen.split(b"sudo.password", 1)[1]
        finally:
            term.close()
        wrong = remote.open_host(f"asker@{HOST}", Config(overrides={"sudo": {"password": "nope"}}),
                                 ssh_config=config)
        with pytest.raises(OpsError, match="refused the password"):
            provision.provision(s, wrong)
        wrong.close()
    finally:
        deploy_user.close()
        asker.close()
        remove_app(host, s)
        sh(host, "rm -f /etc/sudoers.d/deploy /etc/sudoers.d/asker; userdel -r deploy; "
                 "userdel -r asker; true")


def test_host_keys_are_checked_as_openssh_checks_them(host, tmp_path):
    """First contact with a key no known_hosts file holds is refused, saying what to do;
    StrictHostKeyChecking accept-new records it; a changed key is refused whatever the
    setting (Fabric alone accepts any key)."""
    known = tmp_path / "known_hosts"

    def reach(strict=None):
        config = tmp_path / f"ssh_config-{strict}"
        config.write_text(f"Host keyed\n  HostName {host.address}\n  User root\n"
                          f"  IdentityFile {staging.key_path()}\n  IdentitiesOnly yes\n"
                          f"  UserKnownHostsFile {known}\n"
                          + (f"  StrictHostKeyChecking {strict}\n" if strict else ""))
        target = remote.open_host("keyed", ssh_config=config)
        try:
            return target.run("hostname", "probe").stdout.strip()
        finally:
            target.close()

    with pytest.raises(OpsError) as err:
        reach()
    message = str(err.value)
    assert f"root@{host.address}:22" in message and "\n" not in message
    assert f"ssh-keyscan {host.address} >> ~/.ssh/known_hosts" in message and "SHA256:" in message
    assert not known.exists()
    assert reach("accept-new") == HOST
    assert known.read_text().startswith(f"{host.address} ssh-ed25519 ")
    assert reach() == HOST  # recorded: the default accepts it from now on

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
                   check=True)
    other = (tmp_path / "other.pub").read_text().split()[:2]
    known.write_text(f"{host.address} {' '.join(other)}\n")
    for strict in (None, "accept-new"):
        with pytest.raises(OpsError, match="host key CHANGED .*refused"):
            reach(strict)


def test_a_custom_ssh_port_and_a_jump_host_from_the_ssh_config(host, staging_hosts, tmp_path):
    """sshd on another port, reached as user@host:port; staging2 reached through staging1
    (ProxyJump in the SSH config, every hop's host key checked): the session on staging2
    comes from staging1's address."""
    config_text = staging.ssh_config_path().read_text()
    sh(host, "mkdir -p /etc/ssh/sshd_config.d; printf 'Port 22\\nPort 2299\\n' "
             "> /etc/ssh/sshd_config.d/flask-ops-test.conf; systemctl reload ssh")
    try:
        config = tmp_path / "ssh_config"
        config.write_text(config_text + f"\nHost jumped\n    HostName {staging.Host('staging2').address}\n"
                          f"    User root\n    ProxyJump {HOST}\n    IdentityFile {staging.key_path()}\n"
                          f"    UserKnownHostsFile {staging.STATE_DIR / 'known_hosts'}\n")
        staging.wait_until(lambda: sh(host, "ss -ltn | grep -c ':2299 ' || true") != "0", 10, "port 2299")
        # OpenSSH keys a host on another port as [address]:port in known_hosts.
        key = next(line.split(None, 1)[1] for line in
                   (staging.STATE_DIR / "known_hosts").read_text().splitlines()
                   if line.startswith(f"{HOST},"))
        (tmp_path / "known_hosts").write_text(f"[{host.address}]:2299 {key}\n")
        config.write_text(config.read_text() + f"\nHost ported\n    HostName {host.address}\n"
                          f"    IdentityFile {staging.key_path()}\n"
                          f"    UserKnownHostsFile {tmp_path / 'known_hosts'}\n")
        on_port = remote.open_host("root@ported:2299", ssh_config=config)
        jumped = remote.open_host("jumped", ssh_config=config)
        try:
            assert on_port.run("echo $SSH_CONNECTION", "probe").stdout.split()[-1] == "2299"
            assert on_port.login == f"root@{host.address}:2299"
            assert jumped.run("echo $SSH_CLIENT", "probe").stdout.split()[0] == host.address
        finally:
            on_port.close()
            jumped.close()
    finally:
        sh(host, "rm -f /etc/ssh/sshd_config.d/flask-ops-test.conf; systemctl reload ssh")


def test_the_gateway_setting_reaches_a_host_through_its_jump_host(host, staging_hosts, tmp_path):
    """`gateway: staging1` in the description: `fab -H staging2 ...` goes through staging1, as
    `ssh -J` would (staging2's sshd sees the session come from staging1's address)."""
    (tmp_path / "fabfile.py").write_text("from ops.tasks import ns  # noqa: F401\n")
    shutil.copytree(ROOT / "sample_app", tmp_path / "app")
    (tmp_path / "fabric.yaml").write_text(
        "deploy:\n  app_name: jumped\n  source: app\n  wsgi: 'app:app'\n"
        "  server_names: [jumped.test]\n  gateway: staging1\n")
    other = staging.remote("staging2")
    try:
        since = other.run("date +%s", "clock").stdout.strip()
        result = fab("-H", "staging2", "releases", cwd=tmp_path)
        assert result.returncode == 0 and result.stdout == "no releases\n", result.stdout
        log = other.run(f"journalctl -u ssh --since @{since} -o cat", "sshd log").stdout
        assert f"Accepted publickey for root from {host.address} " in log, log
    finally:
        other.close()


def test_app_runs_unprivileged_behind_a_0660_socket(host, project):
    s = project()
    ship(s, host)
    # systemd's socket unit owns the socket; uWSGI never runs as root, not even to start.
    assert sh(host, "stat -c '%a %U:%G' /run/sample/uwsgi.sock") == "660 sample:www-data"
    assert sh(host, "systemctl is-active sample-uwsgi.socket") == "active"
    assert sh(host, "id -Gn sample") == "sample"  # not in the web server's group
    users = sh(host, "ps -o user= -p $(systemctl show -p MainPID --value sample-uwsgi) "
                     "--ppid $(systemctl show -p MainPID --value sample-uwsgi)").split()
    assert users and set(users) == {"sample"}
    result = host.run("su -s /bin/sh sample -c 'touch /srv/sample/current/x'", "t", check=False)
    assert result.exited != 0  # release files are not writable by the app
    # The host's own systemd scores the running unit (0 locked down .. 10 exposed).
    score = sh(host, "systemd-analyze security sample-uwsgi.service | tail -1")
    assert float(score.split(":")[1].split()[0]) <= 2.0, score
    # The listen queue is listen_queue, not the kernel's default of 128 (uWSGI's 100).
    assert sh(host, "ss -Hlx src /run/sample/uwsgi.sock").split()[3] == "1024"
    # uWSGI's master FIFO (a deploy wakes the master through it): the app's and root's only.
    assert sh(host, "stat -c '%F %U' /run/sample-uwsgi/master.fifo") == "fifo sample"
    assert sh(host, "stat -c '%a %U' /run/sample-uwsgi") == "700 sample"


def test_keepalive_clients_lose_nothing_while_code_changes_deploy(host, project):
    """Clients that keep their connection (browsers, API clients), GETs and POSTs mixed, while
    two code changes deploy: nginx is not reloaded (that would close their idle connections
    under their next request), uWSGI reloads gracefully, its socket queues; no request fails."""
    ship(project(), host)
    # A connection that sits idle across a deploy is still open after it (an nginx reload
    # would have closed it: the next request on it would fail).
    idle = http.client.HTTPConnection(host.address, 80, timeout=10)
    idle.request("GET", "/hello", headers={"Host": "sample.test"})
    assert idle.getresponse().read() == b"Hello, World!"
    with loadgen.Load(host.address, 80, "sample.test", path="/echo", concurrency=8,
                      keepalive=True, post_every=3, max_requests=100000,
                      max_seconds=120) as traffic:
        traffic.wait_for(200)
        for greeting in ("Hello, keep-alive one", "Hello, keep-alive two"):
            _, output = ship(project({"app.py": ("Hello, World!", greeting)}), host)
            switch = next(line for line in output.splitlines() if line.split()[:1] == ["switch"])
            assert "reload sample-uwsgi" in switch and "nginx" not in switch, switch
        traffic.wait_for(traffic.result.sent + 200)
    assert traffic.result.failed == 0, traffic.result.errors
    assert traffic.result.sent > 400
    idle.request("GET", "/hello", headers={"Host": "sample.test"})
    assert idle.getresponse().read() == b"Hello, keep-alive two"
    idle.close()


def test_a_site_disabled_by_hand_is_served_again_by_the_next_deploy(host, project):
    """Its file unchanged but its link gone: the deploy links it again and reloads nginx
    (nginx reloads only for a changed site, and this is one)."""
    s = project()
    ship(s, host)
    sh(host, "rm /etc/nginx/sites-enabled/sample.conf && systemctl reload nginx")
    # nginx's old workers finish first: then the catch-all answers the name (no answer)
    staging.wait_until(lambda: get(host, s, "/hello") is None, 15, "the site to be gone")
    ship(s, host)
    assert get(host, s, "/hello").body == b"Hello, World!"


def test_uploads_land_in_the_data_dir_the_sandbox_leaves_writable(host, project):
    """The app sees the filesystem read-only but for shared/data (FLASK_OPS_DATA_DIR); an
    upload through nginx is written there, group-readable at most (UMask=0027)."""
    s = project()
    ship(s, host)
    name = f"e2e-{time.time_ns()}.txt"
    boundary = "flaskopsboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: text/plain\r\n\r\nhello data dir\r\n--{boundary}--\r\n").encode()
    conn = http.client.HTTPConnection(host.address, 80, timeout=10)
    conn.request("POST", "/upload", body=body, headers={
        "Host": "sample.test", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 302, response.status
    path = f"/srv/sample/shared/data/uploads/{name}"
    assert sh(host, f"cat {path}") == "hello data dir"
    assert sh(host, f"stat -c '%a %U' {path}") == "640 sample"
    # The data directory outlives releases: the next deploy still has the file.
    ship(project({"app.py": ("Hello, World!", "Hello, uploads!")}), host)
    assert sh(host, f"cat {path}") == "hello data dir"


def test_requests_arriving_while_uwsgi_is_down_wait_in_the_socket_queue(host, project):
    """A burst larger than uWSGI's default listen queue (100) arrives while the app server is
    stopped: systemd holds the socket, starts uWSGI on the first connection, and every
    request is answered (none refused with a 502)."""
    s = project()
    ship(s, host)
    sh(host, "systemctl stop sample-uwsgi")
    assert sh(host, "systemctl is-active sample-uwsgi || true") == "inactive"
    count = 300
    start = threading.Barrier(count)

    def one(_):
        start.wait(timeout=30)
        conn = http.client.HTTPConnection(host.address, 80, timeout=30)
        try:
            conn.request("GET", "/hello", headers={"Host": "sample.test"})
            return conn.getresponse().status
        except OSError as exc:
            return type(exc).__name__
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(one, range(count)))
    assert {status: statuses.count(status) for status in set(statuses)} == {200: count}
    assert sh(host, "systemctl is-active sample-uwsgi") == "active"


STUCK = ('    def hello():\n', '    def hello():\n'
         '        if request.args.get("stuck"):\n'
         '            with open(os.path.join(DATA_DIR, "stuck.log"), "a") as log:\n'
         '                log.write("ran\\n")\n'
         '            time.sleep(12)\n')


@pytest.mark.parametrize("shape", ["default", "proxy"])
def test_a_get_killed_by_harakiri_runs_once(host, project, shape):
    """nginx lists the uWSGI socket twice (a retry for connections a reloading worker drops),
    but a request that ran until harakiri killed it is not sent again: the client gets its
    error after about harakiri, not twice that, and the app ran it once."""
    # nginx's own 502 is a page: the project's (default shape), or ours (from the inner tier
    # through the public one, in the proxy shape).
    edits = {"app.py": STUCK, "errors/502.html": (None, "<h1>Our own 502</h1>\n")}
    pages = {"error_pages": {502: "sample_app/errors/502.html"}} if shape == "default" else {}
    s = project(edits, harakiri=3, nginx=shape, **pages)
    ship(s, host)
    sh(host, "rm -f /srv/sample/shared/data/stuck.log")
    status, body, content_type, took = timed_get(host.address, "/hello?stuck=1")
    assert status == 502 and took < 6, (status, took)
    assert sh(host, "cat /srv/sample/shared/data/stuck.log") == "ran"
    assert body == b"<h1>Our own 502</h1>\n" if shape == "default" else b"Error 502" in body
    assert content_type == "text/html"
    assert get(host, s, "/hello").body == b"Hello, World!"
    # A stream (a `streaming` path) may outlive harakiri: 5 s of lines, one a second.
    status, body, _, took = timed_get(host.address, "/time?count=6&delay=1")
    assert status == 200 and len(body.splitlines()) == 6 and took > 4.5, (status, body, took)


def test_code_change_is_served_after_redeploy(host, project):
    ship(project(), host)
    s = project({"app.py": ("Hello, World!", "Hello, release two!")})
    release, output = ship(s, host)
    assert get(host, s, "/hello").body == b"Hello, release two!"
    health = json.loads(get(host, s, "/healthz").body)
    assert health["cwd"] == f"/srv/sample/releases/{release}"
    assert "reload sample-uwsgi" in output


def test_a_deploy_through_a_shared_openssh_connection(host, project):
    """Where the host's SSH config shares connections (ControlMaster, ControlPersist, as many
    users and Ansible set it), commands and the upload travel through OpenSSH's master: a
    code change and a no-op work as over Paramiko, and the master outlives the deploy."""
    control = Path(tempfile.mkdtemp(prefix="fo-cm-", dir="/tmp"))
    config = control / "ssh_config"
    config.write_text(staging.ssh_config_path().read_text() + "\nHost *\n    ControlMaster auto\n"
                      f"    ControlPath {control}/%C\n    ControlPersist 30s\n")
    shared = remote.open_host("staging1", ssh_config=config)
    try:
        assert shared.transport == "openssh"
        ship(project(), shared)
        s = project({"app.py": ("Hello, World!", "Hello over OpenSSH!")})
        release, output = ship(s, shared)
        assert get(host, s, "/hello").body == b"Hello over OpenSSH!"
        assert [p for p in control.iterdir() if p.is_socket()]  # the master stays
        shared.commands = 0
        again, output = ship(s, shared)
        assert again == release and "no change" in output and shared.commands == 1
    finally:
        openssh.stop_master(shared._openssh)
        shutil.rmtree(control)


def test_noop_redeploy_touches_nothing(host, project):
    """The same build again is one SSH command: the host compares its facts with those it had
    when the deploy finished, records the no-op and releases its lock. Anything changed on the
    host since (here: a live config edited by hand) makes it a full deploy that repairs it."""
    s = project()
    first, _ = ship(s, host)
    host.commands = 0
    again, output = ship(s, host)
    assert again == first and "no change" in output
    assert host.commands == 1
    last = json.loads(sh(host, f"tail -1 {s.history_file}"))
    assert last["result"] == "no change" and last["previous"] == first
    assert "lock" not in sh(host, f"ls {s.base}/.flask-ops")
    site = f"/etc/nginx/sites-available/{s.app_name}.conf"
    sh(host, f"echo '# edited by hand' >> {site}")
    host.commands = 0
    third, output = ship(s, host)
    assert "no change" not in output and host.commands > 1
    assert "edited by hand" not in sh(host, f"cat {site}")
    assert get(host, s, "/hello").status == 200


def test_import_error_release_rolls_back_by_itself(host, project):
    good = project()
    before, _ = ship(good, host)
    # Imports locally (the build env has Flask-Collect) but not on the host, where only the
    # requirements are installed: the classic "forgot to add it to requirements.txt".
    bad = project({"app.py": ("import datetime", "import flask_collect\nimport datetime")})
    with pytest.raises(DeployError) as err:
        ship(bad, host)
    assert err.value.step == "verify"
    assert "No module named 'flask_collect'" in str(err.value)  # the app's own log, quoted
    assert current(host, good) == before
    assert deploy.releases(good, host)[1][-1] == before  # the failed release is gone
    assert [r for r in smoke.run(good, deploy.target_for(good, host)) if not r.ok] == []


def test_an_app_that_cannot_start_says_why_with_its_secrets_masked(host, project):
    """A first deploy whose app dies at import on the host: the deploy fails at the switch
    (systemd's "Job for ... failed"), and its message ends with the app's own traceback, the
    env file's values masked (a traceback may quote a database URL)."""
    secret = "postgresql://shop:hunter2-not-for-logs@db.internal/shop"
    bad = project({"app.py": ("import datetime", "import os\nif os.environ.get('FLASK_OPS_"
                              "RELEASE'):\n    raise RuntimeError('cannot reach ' + "
                              "os.environ['DATABASE_URL'])\nimport datetime")},
                  app_name="nostart", server_names=["nostart.test"],
                  env={"DATABASE_URL": secret})
    provision.provision(bad, host)
    try:
        with pytest.raises(DeployError) as err:
            ship(bad, host)
        message = str(err.value)
        assert err.value.step == "switch", message
        assert "the app's last log lines on staging1" in message, message
        assert "RuntimeError: cannot reach ***" in message, message
        assert "hunter2" not in message
    finally:
        remove_app(host, bad)


def test_dependencies_are_resolved_for_the_hosts_own_python(host, project):
    """The host runs Python 3.11.2, this machine another 3.11.x: redis 5.0.8 needs
    async-timeout on the host only (python_full_version < "3.11.3"). Resolved here, its
    offline install failed ("No matching distribution found for async-timeout")."""
    s = project({"requirements.txt": ("flask>=3.0,<4", MARKED_REQUIREMENTS),
                 "app.py": ("import datetime", "import redis  # noqa: F401\nimport datetime")})
    ship(s, host)
    assert installed_on_host(host, s, "redis", "async_timeout", "tomli") == {
        "redis": True, "async_timeout": True, "tomli": False}
    ship(project(), host)  # the module's baseline again


def test_app_that_cannot_import_here_fails_the_build_before_the_host(host, project):
    s = project()
    before, _ = ship(s, host)
    host.commands = 0
    with pytest.raises(OpsError, match="cannot load the app from app:app: ModuleNotFoundError"):
        ship(project({"app.py": ("import datetime", "import no_such_module\nimport datetime")}), host)
    assert host.commands == 0
    assert current(host, s) == before


def test_config_failing_the_servers_check_never_goes_live(host, project):
    s = project(nginx="proxy")
    before, _ = ship(s, host)
    live = sh(host, "sha256sum /etc/nginx/sites-available/sample.conf")
    # Another site on the host already defines our upstream: fine alone, fatal together.
    host.run("echo 'upstream sample_app { server 127.0.0.1:9; }' > /etc/nginx/sites-enabled/zz-other",
             "conflict")
    try:
        changed = project({"app.py": ("Hello, World!", "Hello, never!")}, nginx="proxy",
                          client_max_body_size="20m")
        with pytest.raises(DeployError) as err:
            ship(changed, host)
        assert err.value.step == "stage"
        assert "duplicate upstream" in str(err.value)
        assert sh(host, "sha256sum /etc/nginx/sites-available/sample.conf") == live
        assert current(host, s) == before
        assert get(host, s, "/hello").body == b"Hello, World!"
    finally:
        host.run("rm -f /etc/nginx/sites-enabled/zz-other", "cleanup")


def test_rollback_goes_back_and_forth(host, project):
    a, _ = ship(project({"app.py": ("Hello, World!", "Hello A")}), host)
    s = project({"app.py": ("Hello, World!", "Hello B")})
    b, _ = ship(s, host)
    assert get(host, s, "/hello").body == b"Hello B"
    assert deploy.rollback(s, host, out=lambda m: None) == a
    assert get(host, s, "/hello").body == b"Hello A"
    assert json.loads(get(host, s, "/healthz").body)["cwd"].endswith(a)
    deploy.rollback(s, host, b, out=lambda m: None)
    assert get(host, s, "/hello").body == b"Hello B"
    with pytest.raises(OpsError, match="no release nope"):
        deploy.rollback(s, host, "nope", out=lambda m: None)


def test_a_failing_rollback_puts_back_what_served(host, project):
    """Rollback is as thorough as a deploy: when the older release no longer starts, the
    release that served before the rollback serves again (it once restored nothing)."""
    a, _ = ship(project({"app.py": ("Hello, World!", "Hello A")}), host)
    s = project({"app.py": ("Hello, World!", "Hello B")})
    b, _ = ship(s, host)
    # The older release breaks on the host (say a file went missing on disk).
    host.run(f"echo 'raise RuntimeError(\"gone\")' >> {plan.release_dir(s, a)}/app.py", "break")
    lines = []
    with pytest.raises(DeployError) as err:
        deploy.rollback(s, host, a, out=lines.append)
    # uWSGI cannot load the older code, so its restart (the rollback's switch) fails, and the
    # failure shows the app's own last words
    assert err.value.step == "switch" and 'RuntimeError("gone")' in str(err.value)
    assert any(f"back on {b}" in line for line in lines), lines
    assert current(host, s) == b
    assert get(host, s, "/hello").body == b"Hello B"
    assert deploy.status(s, host)["lock"] == "unlocked"


def test_dry_run_prints_diffs_and_changes_nothing(host, project):
    s = project()
    before, _ = ship(s, host)
    lines = []
    deploy.deploy(project(nginx="cache"), host, dry_run=True, out=lines.append)
    text = "\n".join(lines)
    assert "--- /etc/nginx/sites-available/sample.conf (live)" in text
    assert "+        proxy_cache sample_cache;" in text
    assert "nothing was changed" in text
    assert "left out of the release (defaults and deploy.exclude): " in text
    assert current(host, s) == before
    assert "proxy_cache" not in sh(host, "cat /etc/nginx/sites-available/sample.conf")


def test_lock_refuses_a_second_deploy_and_reports_stale_ones(host, project):
    s = project()
    ship(s, host)
    lock = plan.lock_dir(s)
    live = {"user": "ci", "host": __import__("socket").gethostname(), "pid": os.getpid(),
            "started": __import__("time").time()}
    host.run(f"mkdir -p {lock} && echo '{json.dumps(live)}' > {lock}/info.json", "lock")
    with pytest.raises(LockError) as err:
        ship(project({"app.py": ("Hello, World!", "Hello, locked")}), host)
    assert "locked by ci@" in str(err.value) and "STALE" not in str(err.value)
    dead = dict(live, pid=2**22 + 1)  # above pid_max's default: never alive
    host.run(f"echo '{json.dumps(dead)}' > {lock}/info.json", "lock")
    with pytest.raises(LockError, match=r"STALE \(that process is gone\).*fab -H staging1 unlock"):
        ship(s, host)
    assert "locked by ci@" in deploy.unlock(s, host)
    assert deploy.status(s, host)["lock"] == "unlocked"
    ship(project({"app.py": ("Hello, World!", "Hello, unlocked")}), host)
    assert get(host, s, "/hello").body == b"Hello, unlocked"


def test_upstart_job_is_refused_on_a_systemd_host(host, project):
    s = project()
    before, _ = ship(s, host)
    with pytest.raises(OpsError, match="upstart"):
        ship(project(init="upstart"), host)
    assert current(host, s) == before
    assert deploy.status(s, host)["lock"] == "unlocked"


def test_fab_tasks_end_to_end(host):
    """The CLI a user types: fab -H staging1 deploy / smoke / releases / status."""
    fab = [str(ROOT / ".venv/bin/fab"), "-H", HOST]
    run = lambda *a: subprocess.run(fab + list(a), cwd=ROOT, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deployed = run("deploy")
    assert deployed.returncode == 0, deployed.stdout
    assert "serving " in deployed.stdout and "http://198.18.0.11:80/" in deployed.stdout
    smoked = run("smoke")
    assert smoked.returncode == 0, smoked.stdout
    assert smoked.stdout.strip().splitlines()[-1].endswith("passed, 0 failed")
    assert "current" in run("status").stdout
    assert run("releases").stdout.count("*") == 1


def test_url_only_smoke_with_reports(host, tmp_path):
    """`fab smoke --url` needs no SSH: the pipeline's view of a deployed host."""
    import xml.etree.ElementTree as ET
    config = tmp_path / "url.yaml"
    config.write_text("deploy:\n  server_names: [198.18.0.11, sample.test]\n")
    fab = [str(ROOT / ".venv/bin/fab"), "-f", str(config)]
    run = lambda *a: subprocess.run(fab + list(a), cwd=ROOT, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deployed = run("-H", HOST, "deploy")
    assert deployed.returncode == 0, deployed.stdout
    junit, report = tmp_path / "smoke.xml", tmp_path / "smoke.json"
    smoked = run("smoke", "--url", "http://198.18.0.11/", "--junit", str(junit), "--json", str(report))
    assert smoked.returncode == 0, smoked.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "0" and int(suite.get("tests")) >= 8
    assert json.loads(report.read_text())["ok"] is True
    broken = run("smoke", "--url", "http://198.18.0.11:81/", "--junit", str(junit))
    assert broken.returncode == 1
    failures = ET.parse(junit).getroot().find("testsuite").findall("testcase/failure")
    assert failures and "ConnectionRefusedError" in failures[0].get("message")


def test_release_on_the_host_holds_no_secrets_and_keeps_modes(host, project):
    """A `.env`, a key and `instance/` never reach the host; a 0600 file is not world-readable
    there; the app (its group) can still read it; the front server publishes none of it."""
    s = project()
    src = s.source_dir
    (src / ".env").write_text("SECRET_KEY=hunter2-local\n")
    (src / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (src / "instance").mkdir()
    (src / "instance/config.py").write_text("SECRET_KEY = 'hunter2-instance'\n")
    (src / "private_settings.py").write_text("TOKEN = 'not-secret-but-private'\n")
    (src / "private_settings.py").chmod(0o600)
    release, _ = ship(s, host)
    rel = plan.release_dir(s, release)
    found = sh(host, f"cd {rel} && ls -a . instance 2>&1; grep -rl hunter2 . || true")
    assert ".env" not in found and "id_rsa" not in found and "hunter2" not in found
    # instance/ was not shipped: the release links the host's own, persistent one
    assert "config.py" not in found
    assert sh(host, f"readlink {rel}/instance") == f"{s.linked_dir}/instance"
    mode = sh(host, f"stat -c '%a %U:%G' {rel}/private_settings.py")
    assert mode == f"640 root:{s.app_group}", mode
    assert sh(host, f"setpriv --reuid={s.app_user} --regid={s.app_group} --init-groups "
                    f"cat {rel}/private_settings.py") == "TOKEN = 'not-secret-but-private'"
    for path in ("/static/../.env", "/.env", "/static/.env", "/instance/config.py"):
        response = get(host, s, path)
        assert response is None or b"hunter2" not in response.body
