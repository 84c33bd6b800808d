"""End to end with an app that is not the sample: an app factory, a blueprint under a
url_prefix with its own static folder, a JSON API, a stream, no health route, described by
what `fab init` wrote with only the server name and host filled in. On every nginx shape
and on Apache, on real staging hosts; with another app on the same host."""

import hashlib
import json
import re
import secrets
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import APACHE_HOST, NGINX_HOST, fab, remove_app, sample_settings
from ops import staging
from ops.build import scaffold
from ops.config import settings
from ops.deploy import deploy, provision, smoke
from ops.errors import OpsError

pytestmark = pytest.mark.e2e

SHOP = Path(__file__).parent / "apps" / "shop"
STATICS = {"/static/shop.css": "h1 { color: teal; }\n",
           "/admin/admin-static/admin.js": 'console.log("shop admin");\n'}


def shop_project(root, host=NGINX_HOST):
    """The shop as a new user deploys it: `fab init` wrote its fabric.yaml, then only the
    server name and the host were filled in."""
    shutil.copytree(SHOP, root, dirs_exist_ok=True)
    if not (root / "fabric.yaml").exists():
        scaffold.write(root, scaffold.plan(root), out=lambda m: None)
        text = (root / "fabric.yaml").read_text()
        text = re.sub(r"^  server_names: *", "  server_names: [shop.test] ", text, count=1, flags=re.M)
        text = re.sub(r"^  # hosts: \[[^]]*\]", f"  hosts: [{host}]", text, count=1, flags=re.M)
        (root / "fabric.yaml").write_text(text)
    return root


def shop(root, **extra):
    """Settings from the project's fabric.yaml, with the keys a test varies on top."""
    raw = yaml.safe_load((shop_project(root) / "fabric.yaml").read_text())["deploy"]
    return settings.load({**raw, **extra}, project_root=root)


@pytest.fixture(scope="module")
def nginx_host(corpus_hosts, tmp_path_factory):
    host = staging.remote(NGINX_HOST)
    s = shop(tmp_path_factory.mktemp("shop"))
    provision.provision(s, host)
    yield host
    remove_app(host, s)
    host.close()


@pytest.fixture(scope="module")
def apache_host(corpus_hosts, tmp_path_factory):
    host = staging.remote(APACHE_HOST)
    s = shop(tmp_path_factory.mktemp("shop"), stack="apache-modwsgi")
    provision.provision(s, host)
    yield host
    remove_app(host, s)
    host.close()


def deployed_and_served(s, host):
    """Deploy with the neutral defaults, then what a visitor sees through the front server."""
    deploy.deploy(s, host, out=lambda m: None)
    target = deploy.target_for(s, host)
    results = {r.name: r for r in smoke.run(s, target, deploy.current_statics(s, host))}
    assert [r.detail for r in results.values() if not r.ok] == []
    assert "healthz" not in results  # the shop has none, and fab init found none
    assert results["streaming"].ok  # fab init found /feed and made it the stream check
    for url, body in STATICS.items():
        assert results[f"static {url}"].ok  # the front server's, not Flask's, with Flask's bytes
        resp = smoke.request(target, url)
        assert resp.body.decode() == body and "public, no-cache" == resp.header("Cache-Control")
    api = smoke.request(target, "/api/items")
    assert json.loads(api.body) == {"items": ["tea", "cake"], "secret_key_set": True}
    # The app's own "X-Accel-Buffering: no" streams the response through every tier.
    ok, detail = smoke.check_stream(target, "/feed")
    assert ok, detail
    assert smoke.request(target, "/admin/").body == b"the shop's admin"
    return results


@pytest.mark.parametrize("shape", ["default", "proxy", "cache"])
def test_own_app_on_each_nginx_shape(nginx_host, tmp_path, shape):
    results = deployed_and_served(shop(tmp_path, nginx=shape), nginx_host)
    if shape == "cache":
        assert results["cache"].detail.startswith("repeat GET /: HIT"), results["cache"].detail


def test_own_app_on_apache(apache_host, tmp_path, monkeypatch):
    token = "tok-" + secrets.token_hex(12)
    monkeypatch.setenv("SHOP_DEPLOY_TOKEN", token)
    s = shop(tmp_path, stack="apache-modwsgi", env={"SHOP_GREETING": "hello from apache"},
             secrets={"SHOP_TOKEN": {"env": "SHOP_DEPLOY_TOKEN"}})
    deployed_and_served(s, apache_host)
    # mod_wsgi has no EnvironmentFile=: the release's entry module loaded it
    assert app_config(s, apache_host) == {"greeting": "hello from apache",
                                          "token_sha256": sha256(token)}


def test_a_project_made_by_fab_init_deploys_with_fab_and_no_host_flag(nginx_host, tmp_path):
    root = shop_project(tmp_path, host=NGINX_HOST)
    result = fab("provision", "deploy", cwd=root)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"deploying shop to {NGINX_HOST}, 1 at a time" in result.stdout
    assert f"{NGINX_HOST}     ok: " in result.stdout
    target = deploy.target_for(shop(tmp_path), nginx_host)
    assert b"The shop" in smoke.request(target, "/").body
    status = fab("status", cwd=root)
    assert status.returncode == 0 and "current" in status.stdout, status.stdout


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def sh(host, command):
    return host.run(command, "test").stdout.strip()


def app_config(s, host):
    return json.loads(smoke.request(deploy.target_for(s, host), "/api/config").body)


def test_env_and_a_secret_from_this_machine_reach_the_app_and_nothing_else(nginx_host, tmp_path,
                                                                            monkeypatch):
    token = "tok-" + secrets.token_hex(12)
    monkeypatch.setenv("SHOP_DEPLOY_TOKEN", token)
    s = shop(tmp_path, env={"SHOP_GREETING": "hello from staging"},
             secrets={"SHOP_TOKEN": {"env": "SHOP_DEPLOY_TOKEN"}})
    output = []
    deploy.deploy(s, nginx_host, dry_run=True, out=output.append)
    deploy.deploy(s, nginx_host, out=output.append)
    assert app_config(s, nginx_host) == {"greeting": "hello from staging",
                                         "token_sha256": sha256(token)}
    assert not [line for line in output if token in line]
    # Only in the app's 0600 env file: not in a release, a config, the state or /tmp.
    assert sh(nginx_host, f"grep -rl {token} /srv/shop /etc /tmp /var/log 2>/dev/null || true") \
        == "/srv/shop/shared/env"
    assert sh(nginx_host, "stat -c '%a %U' /srv/shop/shared/env") == "600 shop"

    # Only the environment changes: deployed (not "no change"), and a graceful reload makes
    # the app see the new value and lose the removed secret.
    changed = shop(tmp_path, env={"SHOP_GREETING": "hello again"})
    output = []
    deploy.deploy(changed, nginx_host, out=output.append)
    assert any(line.split()[:2] == ["env", "ok"] for line in output), output
    assert any("reload shop-uwsgi" in line for line in output), output
    assert app_config(changed, nginx_host) == {"greeting": "hello again", "token_sha256": None}

    # A deploy whose smoke test fails puts the previous environment back with the release.
    failing = shop(tmp_path, env={"SHOP_GREETING": "never served"},
                   smoke=[{"path": "/", "status": 201}])
    with pytest.raises(OpsError, match="step 'smoke' failed"):
        deploy.deploy(failing, nginx_host, out=lambda m: None)
    assert app_config(changed, nginx_host)["greeting"] == "hello again"
    assert sh(nginx_host, "ls /srv/shop/shared/ | grep -c '^env' || true") == "1"


def test_a_secret_missing_on_this_machine_refuses_before_the_host_is_touched(nginx_host,
                                                                             tmp_path,
                                                                             monkeypatch):
    monkeypatch.delenv("SHOP_DEPLOY_TOKEN", raising=False)
    s = shop(tmp_path, secrets={"SHOP_TOKEN": {"env": "SHOP_DEPLOY_TOKEN"}})
    before = nginx_host.commands
    with pytest.raises(OpsError, match=r"deploy.secrets.SHOP_TOKEN: environment variable "
                                       r"SHOP_DEPLOY_TOKEN is not set on this machine"):
        deploy.deploy(s, nginx_host, out=lambda m: None)
    assert nginx_host.commands == before


def denied(host, user, command):
    """Whether `command` run as `user` on the host fails (exit status), with its output."""
    result = host.run(f"runuser -u {user} -- {command}", "as " + user, check=False)
    return result.exited != 0


CONNECT = "python3 -c \"import socket; socket.socket(socket.AF_UNIX).connect('{}')\""


def test_two_apps_on_one_host_cannot_reach_each_other_and_a_failed_first_deploy_of_a_third_harms_neither(
        nginx_host, tmp_path):
    sample = sample_settings()
    provision.provision(sample, nginx_host)
    deploy.deploy(sample, nginx_host, out=lambda m: None)
    s = shop(tmp_path / "shop")
    deploy.deploy(s, nginx_host, out=lambda m: None)

    for me, other in ((s, sample), (sample, s)):
        # Its own env, data and socket: yes (the checks below can fail).
        assert not denied(nginx_host, me.app_user, f"cat {me.env_file}")
        assert not denied(nginx_host, me.app_user, f"ls {me.shared}/data")
        # The other app's: no.
        assert denied(nginx_host, me.app_user, f"cat {other.env_file}")
        assert denied(nginx_host, me.app_user, f"ls {other.shared}/data")
        assert denied(nginx_host, me.app_user, CONNECT.format(other.socket))
        # The front server reaches both sockets, and neither app's data or environment.
        assert not denied(nginx_host, "www-data", CONNECT.format(other.socket))
        assert denied(nginx_host, "www-data", f"ls {other.shared}/data")
        assert denied(nginx_host, "www-data", f"cat {other.env_file}")

    # A third app whose first deploy fails (its smoke test) leaves both serving only their names.
    broken = shop(tmp_path / "broken", app_name="broken", server_names=["broken.test"],
                  smoke=[{"path": "/", "status": 201}])
    provision.provision(broken, nginx_host)
    try:
        with pytest.raises(OpsError, match="step 'smoke' failed"):
            deploy.deploy(broken, nginx_host, out=lambda m: None)
        target = deploy.target_for(s, nginx_host)
        assert b"The shop" in smoke.request(target, "/").body
        assert b"Hello from the sample app" in smoke.request(target, "/", host="sample.test").body
        for name in ("broken.test", "unknown.test"):
            assert smoke.request(target, "/", host=name) is None  # the catch-all: no answer
    finally:
        remove_app(nginx_host, broken)
