"""HTTPS as rendered: every stack and shape with TLS passes the real nginx -t / apache2ctl -t
(mod_ssl, mod_http2 loaded), with the Mozilla intermediate profile, HTTP -> HTTPS except ACME
challenges, HSTS everywhere a header is set; bad TLS input is one clear line."""

import re

import pytest

from ops.config import keys, settings
from ops.errors import SettingsError
from ops.targets import checks, render

from conftest import ROOT

ACME = {"acme": {"email": "ops@example.com"}}
FILES = {"certificate": {"chain": "/etc/certs/sample.pem", "key": "/etc/certs/sample.key"}}
NAMES = ["sample.test", "www.sample.test"]


def tls_settings(load, tls=ACME, **raw):
    return load(tls=tls, server_names=NAMES, **raw)


def content(files, suffix):
    return next(f.content for f in files if f.path.endswith(suffix))


@pytest.mark.parametrize("shape", keys.NGINX_SHAPES)
@pytest.mark.parametrize("tls", [ACME, FILES], ids=["acme", "files"])
def test_nginx_with_tls_passes_nginx_t_in_every_shape(load, shape, tls):
    s = tls_settings(load, tls, nginx=shape)
    files = render.render(s)
    assert "nginx" in checks.check_local(files, s)
    site = content(files, "/sample.conf")
    assert "listen 443 ssl http2;" in site and "ssl_protocols TLSv1.2 TLSv1.3;" in site
    assert f"ssl_certificate {s.tls_cert};" in site and "ssl_session_tickets off;" in site
    assert s.tls_cert == ("/etc/letsencrypt/live/sample/fullchain.pem" if tls is ACME
                          else "/etc/flask-ops/sample/tls/fullchain.pem")
    # Port 80: challenges from the webroot, everything else 301 to the same name over HTTPS.
    http = re.search(r"server \{\n    listen 80;.*?\n\}", site, re.S).group(0)
    assert "location ^~ /.well-known/acme-challenge/ {\n        root /var/lib/flask-ops/acme;" in http
    assert "return 301 https://$host$request_uri;" in http and "uwsgi_pass" not in http
    # HSTS wherever the security headers are set (an add_header in a location drops them).
    hsts = 'add_header Strict-Transport-Security "max-age=63072000" always;'
    assert site.count(hsts) == site.count('add_header X-Frame-Options "SAMEORIGIN" always;') >= 1
    # Unknown names on 443: the handshake is refused, no certificate shown.
    assert "ssl_reject_handshake on;" in content(files, "catchall-80.conf")


@pytest.mark.parametrize("tls", [ACME, FILES], ids=["acme", "files"])
def test_apache_with_tls_passes_apache2ctl_t(load, tls):
    s = tls_settings(load, tls, stack="apache-modwsgi")
    files = render.render(s)
    assert "apache" in checks.check_local(files, s)
    site = content(files, "/sample.conf")
    assert "<VirtualHost *:443>" in site and "SSLEngine on" in site
    assert "SSLProtocol -all +TLSv1.2 +TLSv1.3" in site and "Protocols h2 http/1.1" in site
    assert 'Header always set Strict-Transport-Security "max-age=63072000"' in site
    assert "RewriteCond %{REQUEST_URI} !^/\\.well-known/acme-challenge/" in site
    assert 'RequestHeader set X-Forwarded-Proto "https"' in site


def test_without_tls_every_site_still_answers_acme_challenges(load):
    for stack in keys.STACKS:
        files = render.render(load(stack=stack))
        site = content(files, "/sample.conf")
        assert "/.well-known/acme-challenge/" in site and "443" not in site.replace(
            "ssl_reject_handshake", "")


def test_hsts_zero_sends_no_hsts(load):
    s = tls_settings(load, {**ACME, "hsts": 0})
    assert "Strict-Transport-Security" not in content(render.render(s), "/sample.conf")


BASE = {"app_name": "shop", "source": "sample_app", "wsgi": "app:app", "server_names": NAMES}


@pytest.mark.parametrize("raw, key", [
    ({"tls": ACME, "server_names": ["198.18.0.11"]}, "server_names"),
    ({"tls": ACME, "server_names": ["localhost"]}, "server_names"),
    ({"tls": ACME, "server_names": ["*.sample.test"]}, "server_names"),
    ({"tls": {"acme": {"email": "not an address"}}}, "tls.acme.email"),
    ({"tls": {"acme": {"email": "a@b.test", "directory": "http://acme.test/dir"}}},
     "tls.acme.directory"),
    ({"tls": {**ACME, **FILES}}, "tls"),
    ({"tls": {"certificate": {"chain": "x.pem"}}}, "tls.certificate"),
    ({"tls": {"certificate": {"chain": "/x.pem", "key": "sample_app/app.py"}}},
     "tls.certificate.key"),
    ({"tls": {**ACME, "hsts": "long"}}, "tls.hsts"),
    ({"listen_port": 443}, "listen_port"),
    ({"tls": {**ACME, "ocsp_stapling": True}}, "tls.resolvers"),
    ({"tls": {**ACME, "ocsp_stapling": True, "resolvers": ["8.8.8.8; x"]}}, "tls.resolvers"),
])
def test_bad_tls_input_is_refused_naming_the_key(raw, key):
    with pytest.raises(SettingsError) as err:
        settings.load({**BASE, **raw}, project_root=ROOT)
    assert err.value.key == key and "\n" not in str(err.value)


@pytest.mark.parametrize("stack", keys.STACKS)
def test_behind_a_tls_terminator_its_scheme_is_believed_from_it_alone(load, stack):
    s = load(stack=stack, trusted_proxies=["10.0.0.5", "10.1.0.0/16"])
    files = render.render(s)
    assert checks.check_local(files, s)
    site = content(files, "/sample.conf")
    if stack.startswith("nginx-"):
        assert "geo $realip_remote_addr $sample_from_lb {" in site
        assert "    10.0.0.5 1;\n    10.1.0.0/16 1;" in site
        assert ("uwsgi_param HTTPS $sample_lb_https if_not_empty;" if stack == "nginx-uwsgi"
                else "proxy_set_header X-Forwarded-Proto $sample_lb_proto;") in site
        assert "set_real_ip_from 10.1.0.0/16;" in site
    else:
        assert "<If \"! -R '10.0.0.5' && ! -R '10.1.0.0/16'\">" in site
        assert "SetEnvIfExpr \"(-R '10.0.0.5' || -R '10.1.0.0/16') && req('X-Forwarded-Proto') == 'https'\" HTTPS=on" in site


@pytest.mark.parametrize("value", [["0.0.0.0/0"], ["10.0.0.5; allow all"], ["not-an-ip"], "::/0"])
def test_trusted_proxies_are_addresses_and_never_everyone(value):
    with pytest.raises(SettingsError) as err:
        settings.load({**BASE, "trusted_proxies": value}, project_root=ROOT)
    assert err.value.key == "trusted_proxies"


@pytest.mark.parametrize("stack", keys.STACKS)
def test_ocsp_stapling_when_asked_and_only_then(load, stack):
    s = tls_settings(load, {**ACME, "ocsp_stapling": True, "resolvers": ["127.0.0.53"]},
                     stack=stack)
    files = render.render(s)
    assert checks.check_local(files, s)
    site = content(files, "/sample.conf")
    assert ("ssl_stapling on;" in site and "ssl_stapling_verify on;" in site) \
        if stack.startswith("nginx-") else "SSLUseStapling on" in site
    plain = content(render.render(tls_settings(load, ACME, stack=stack)), "/sample.conf")
    assert "stapling on" not in plain.lower()


def test_a_balancer_re_encrypts_to_app_hosts_only_when_asked(load):
    files_tls = {**FILES, "to_app_hosts": True}
    s = tls_settings(load, files_tls, nginx="proxy")
    lb = render.render_lb(s, [render.Upstream("198.18.0.11")])
    assert checks.check_local(lb, s) == ["nginx"]
    conf = lb[1].content
    assert "server 198.18.0.11:443 " in conf and "proxy_pass https://sample_app;" in conf
    assert "proxy_ssl_verify on;" in conf and "proxy_ssl_name $host;" in conf
    plain = render.render_lb(tls_settings(load, FILES, nginx="proxy"),
                             [render.Upstream("198.18.0.11")])[1].content
    assert "server 198.18.0.11:80 " in plain and "proxy_pass http://sample_app;" in plain
    with pytest.raises(SettingsError) as err:
        tls_settings(load, {**ACME, "to_app_hosts": True})
    assert err.value.key == "tls.to_app_hosts"
