"""End to end with an app that is not the sample: an app factory, a blueprint under a
url_prefix with its own static folder, a JSON API, a stream, no health route, described by
the four required keys only. On every nginx shape and on Apache, on real staging hosts."""

import json
import shutil
from pathlib import Path

import pytest

from ops import deploy, provision, settings, smoke, staging

pytestmark = pytest.mark.e2e

SHOP = Path(__file__).parent / "apps" / "shop"
STATICS = {"/static/shop.css": "h1 { color: teal; }\n",
           "/admin/admin-static/admin.js": 'console.log("shop admin");\n'}


def shop(root, **extra):
    shutil.copytree(SHOP, root, dirs_exist_ok=True)
    return settings.load({"app_name": "shop", "source": "src", "wsgi": "wsgi:app",
                          "server_names": ["shop.test"], **extra}, project_root=root)


def remove_shop(host, s):
    """Leave the host to the other tests as it was: no shop site, unit, user or files."""
    host.run(f"systemctl disable --now {s.service} 2>/dev/null; "
             f"rm -f /etc/nginx/sites-*/shop.conf /etc/apache2/sites-*/shop.conf "
             f"/etc/systemd/system/{s.service}.service; rm -rf {s.base} /etc/flask-ops/shop; "
             "userdel shop 2>/dev/null; systemctl daemon-reload; "
             "systemctl reload nginx 2>/dev/null; systemctl reload apache2 2>/dev/null; true",
             "remove shop", check=False)


@pytest.fixture(scope="module")
def nginx_host(staging_hosts, tmp_path_factory):
    host = staging.remote("staging1")
    s = shop(tmp_path_factory.mktemp("shop"))
    provision.provision(s, host)
    yield host
    remove_shop(host, s)
    host.close()


@pytest.fixture(scope="module")
def apache_host(staging_hosts, tmp_path_factory):
    host = staging.remote("staging2")
    s = shop(tmp_path_factory.mktemp("shop"), stack="apache-modwsgi")
    provision.provision(s, host)
    yield host
    remove_shop(host, s)
    host.close()


def deployed_and_served(s, host):
    """Deploy with the neutral defaults, then what a visitor sees through the front server."""
    deploy.deploy(s, host, out=lambda m: None)
    target = deploy.target_for(s, host)
    results = {r.name: r for r in smoke.run(s, target, deploy.current_statics(s, host))}
    assert [r.detail for r in results.values() if not r.ok] == []
    assert "healthz" not in results and "streaming" not in results  # none configured
    for url, body in STATICS.items():
        assert results[f"static {url}"].ok  # the front server's, not Flask's, with Flask's bytes
        resp = smoke.request(target, url)
        assert resp.body.decode() == body and "max-age=604800" in resp.header("Cache-Control")
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


def test_own_app_on_apache(apache_host, tmp_path):
    deployed_and_served(shop(tmp_path, stack="apache-modwsgi"), apache_host)
