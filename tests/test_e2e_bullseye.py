"""A Debian bullseye target: the servers of Ubuntu 22.04's generation (nginx 1.18, uWSGI
2.0.19, Python 3.9, systemd 247, mod_wsgi 4.7), the oldest flask-ops renders for. The files
are rendered for the versions the host reports (no ssl_reject_handshake, no uWSGI fork hooks)
and pass the host's own checkers; on each stack a first deploy, a code change and a rollback,
and HTTPS."""

import json
import socket
import ssl

import pytest

from certfiles import own_certificate
from conftest import ROOT, deploy_change_rollback, extra_host, remove_app, sample_settings
from ops import scripts
from ops.deploy import deploy, provision, smoke

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bullseye():
    """staging7 booted from a bullseye image (the bridge is the session's)."""
    yield from extra_host(7, release="bullseye")


def test_the_host_carries_the_old_servers(bullseye):
    out = bullseye.run("nginx -v 2>&1; dpkg-query -W -f '${Version}' uwsgi-core; echo; "
                       "python3 -c 'import sys; print(sys.version_info[:2])'", "versions").stdout
    assert "nginx/1.18" in out and "2.0.19" in out and "(3, 9)" in out, out


def rendered_for_the_hosts_versions(host, stack):
    """The files the host got were rendered for its versions (no ssl_reject_handshake, no
    uWSGI fork hooks) and the app runs in a UTF-8 locale there."""
    def check(s):
        if stack == "nginx-uwsgi":
            ini = host.run("cat /etc/flask-ops/sample/uwsgi.ini", "ini").stdout
            assert "py-call-osafterfork = true" in ini and "py-call-uwsgi-fork-hooks = true" not in ini
            catchall = host.run("cat /etc/nginx/sites-enabled/000-flask-ops-catchall-80.conf",
                                "catchall").stdout
            assert "ssl_reject_handshake on;" not in catchall and "ssl-cert-snakeoil" in catchall
            # nginx 1.18 pads its workers' titles: the reload still sees its new workers start
            # (it waited its full 10 s, every deploy, when it did not).
            reload = host.run(scripts.command("nginx_reload.sh", "systemd"), "reload")
            assert reload.stderr == "", reload.stderr
        who = json.loads(smoke.request(deploy.target_for(s, host), "/whoami").body)
        assert who["fs_encoding"] == "utf-8"
    return check


@pytest.mark.parametrize("stack", ["nginx-uwsgi", "apache-modwsgi"])
def test_deploy_a_change_and_roll_back_on_bullseye(bullseye, project, stack):
    deploy_change_rollback(bullseye, project, stack, rendered_for_the_hosts_versions(bullseye, stack))


def test_https_on_bullseye(bullseye, tmp_path):
    """The site's own certificate on nginx 1.18; a name no site serves never gets it."""
    s = sample_settings(ROOT, app_name="oldtls", server_names=["old.test"],
                        tls=own_certificate(tmp_path, ["old.test"]))
    try:
        provision.provision(s, bullseye)
        deploy.deploy(s, bullseye, out=lambda m: None)  # smoke over TLS, HTTP redirecting
        target = deploy.target_for(s, bullseye)
        assert smoke.request(target, "/hello").body == b"Hello, World!"
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection((bullseye.address, 443), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="unknown.test") as tls:
                served = tls.getpeercert(binary_form=True)
        assert served and b"old.test" not in served
    finally:
        remove_app(bullseye, s)
