"""gixy-next (in its own venv) finds nothing of MEDIUM or HIGH severity in any nginx shape."""

import json
import subprocess

import pytest

from ops.config import keys, settings
from ops.targets import render

from conftest import ROOT

GIXY = ROOT / ".venv-gixy/bin/gixy"
# make test installs it (Makefile: .venv-gixy); a bare `pytest` on a fresh checkout skips.
pytestmark = pytest.mark.skipif(not GIXY.exists(), reason="gixy-next is not installed: make python-deps")
# A main config like Debian's, tuned so that only the rendered sites are under review.
MAIN = """worker_processes auto;
worker_rlimit_nofile 8192;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    include {sites}/*.conf;
}}
"""


TLS = {"acme": {"email": "ops@example.com"}, "ocsp_stapling": True, "resolvers": ["127.0.0.53"]}
TLS_SHAPES = [f"tls-{shape}" for shape in keys.NGINX_SHAPES] + ["tls-lb-cache"]


@pytest.mark.parametrize("shape", list(keys.NGINX_SHAPES) + ["lb-proxy", "lb-cache", "fleet-app"]
                         + TLS_SHAPES + [f"gunicorn-{shape}" for shape in keys.NGINX_SHAPES])
def test_no_medium_or_high_findings(load, tmp_path, shape):
    if not GIXY.exists():
        pytest.fail("gixy-next is not installed: run `make python-deps`")
    sites = tmp_path / "sites"
    sites.mkdir()
    tls = {}
    if shape.startswith("tls-"):
        shape, tls = shape[4:], {"tls": TLS, "server_names": ["sample.test"]}
    if shape.startswith("lb-"):
        files = render.render_lb(load(nginx=shape[3:], **tls), [render.Upstream("198.18.0.11"),
                                                                render.Upstream("198.18.0.12", True)])
    elif shape.startswith("gunicorn-"):
        files = render.render(load(stack="nginx-gunicorn", nginx=shape[9:], websockets=["/ws"],
                                   streaming=["/time"]))
    elif shape == "fleet-app":
        files = render.render(load(), render.Fleet(("198.18.0.13",)))
    else:
        files = render.render(load(nginx=shape, **tls))
    # As on a balancer that sends the ACME challenges of a shared certificate's names to
    # another (ops/scripts/acme_forward.sh): the catch-all's upstream then has a server.
    forward = tmp_path / "acme-forward" / "80"
    subprocess.run(["bash", str(ROOT / "ops/scripts/acme_forward.sh"), str(forward), "sample",
                    "198.18.0.12:80"], check=True, stdout=subprocess.DEVNULL)
    for f in files:
        if f.kind == render.NGINX:
            (sites / f.path.rsplit("/", 1)[1]).write_text(
                f.content.replace(settings.tlsconf.ACME_FORWARD_DIR, str(tmp_path / "acme-forward")))
    (tmp_path / "nginx.conf").write_text(MAIN.format(sites=sites))
    out = subprocess.run([str(GIXY), "-f", "json", str(tmp_path / "nginx.conf")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    findings = json.loads(out.stdout)
    assert findings is not None
    # The `streaming` paths are unbuffered on purpose (a generator's chunks reach the client
    # as they come); with uWSGI that is uwsgi_buffering, which gixy does not read.
    deliberate = {"proxy_buffering_off"} if shape.startswith("gunicorn-") else set()
    serious = [(f["plugin"], f["severity"], f.get("reason")) for f in findings
               if f["severity"] in ("MEDIUM", "HIGH") and f["plugin"] not in deliberate]
    assert serious == []


def test_gixy_does_flag_a_known_hole(tmp_path):
    """The harness is able to fail: an alias traversal is reported."""
    (tmp_path / "nginx.conf").write_text(MAIN.format(sites=tmp_path).replace(
        f"include {tmp_path}/*.conf;",
        "server { listen 80; location /static { alias /srv/x/static/; } }"))
    out = subprocess.run([str(GIXY), "-f", "json", str(tmp_path / "nginx.conf")],
                         stdout=subprocess.PIPE, text=True)
    assert "alias_traversal" in {f["plugin"] for f in json.loads(out.stdout)}
