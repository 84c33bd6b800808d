"""HTTPS end to end: certificates from a real ACME server (Pebble, on the staging bridge)
through certbot on the staging hosts, served by nginx and Apache with HTTP/2, HTTP redirecting,
HSTS; renewed under load without a failed request; kept across deploys and rollbacks; a second
site's first certificate costs the first site nothing; and the user's own certificate files."""

import json
import subprocess

import pytest

from conftest import ROOT, assert_forgeries_refused, remove_app, sample_settings
from certfiles import own_certificate
from loadgen import Load
from ops import staging
from ops.deploy import deploy, fleet, provision, smoke
from ops.errors import OpsError
from ops.staging import pebble

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def acme(staging_hosts):
    server = pebble.up()
    yield server
    pebble.down()


def secure(acme, app_name="secure", names=("secure.test", "www.secure.test"), **raw):
    return sample_settings(ROOT, app_name=app_name, server_names=list(names),
                           **{"tls": acme.settings(), **raw})


def curl(*args):
    """curl on this machine: (exit status, stdout)."""
    proc = subprocess.run(["curl", "-sS", "--max-time", "10", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    return proc.returncode, proc.stdout


def over_http2(acme, name, address, path="/hello"):
    """(curl's exit status, "STATUS HTTP-VERSION") for an HTTP/2 GET of name at address."""
    return curl("--http2", "--cacert", acme.ca_bundle, "--resolve", f"{name}:443:{address}",
                "-o", "/dev/null", "-w", "%{http_code} %{http_version}", f"https://{name}{path}")


def sh(host, command):
    return host.run(command, command).stdout.strip()


def serial(target):
    import socket
    with socket.create_connection((target.address, target.port), timeout=10) as raw:
        with target.context().wrap_socket(raw, server_hostname=target.host) as tls:
            der = tls.getpeercert(binary_form=True)
    from cryptography import x509
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture(scope="module")
def nginx_site(acme):
    host = staging.remote("staging1")
    s = secure(acme)
    provision.provision(s, host)
    yield host, s
    remove_app(host, s)
    host.close()


def test_an_acme_certificate_serves_https_with_http2_hsts_and_a_redirect(acme, nginx_site):
    host, s = nginx_site
    deploy.deploy(s, host, out=lambda m: None)  # smoke: chain, 301, HSTS, every page over TLS
    resolve = ["--resolve", f"secure.test:443:{host.address}", "--resolve",
               f"secure.test:80:{host.address}"]
    code, out = over_http2(acme, "secure.test", host.address)
    assert (code, out) == (0, "200 2"), out
    code, out = curl(*resolve, "-D", "-", "-o", "/dev/null", "http://secure.test/a?b=1")
    assert " 301" in out.splitlines()[0] and "location: https://secure.test/a?b=1" in out.lower()
    code, out = curl("--cacert", acme.ca_bundle, *resolve, "-D", "-", "-o", "/dev/null",
                     "https://secure.test/")
    assert "strict-transport-security: max-age=63072000" in out.lower()
    # The app knows it is served over HTTPS (url_for, secure cookies).
    whoami = json.loads(smoke.request(deploy.target_for(s, host), "/whoami").body)
    assert whoami["scheme"] == "https"
    # Certificates are not served for names no site has; a name must match.
    code, out = curl("--cacert", acme.ca_bundle, "--resolve", f"other.test:443:{host.address}",
                     "https://other.test/")
    assert code != 0
    status = deploy.status(s, host)["certificate"]
    assert "Pebble" in status and "secure.test" in status and "days left" in status


@pytest.mark.parametrize("shape", ["proxy", "cache"])
def test_the_two_tier_shapes_serve_the_certificate_and_tell_the_app(acme, nginx_site, shape):
    host, s = nginx_site
    shaped = secure(acme, nginx=shape)
    deploy.deploy(shaped, host, out=lambda m: None)  # smoke over HTTPS, the cache check too
    target = deploy.target_for(shaped, host)
    whoami = json.loads(smoke.request(target, "/whoami").body)
    assert whoami["scheme"] == "https" and whoami["forwarded_proto"] == "https"
    if shape == "cache":
        smoke.request(target, "/hello")
        assert smoke.request(target, "/hello").header("X-Cache-Status") == "HIT"
    deploy.deploy(s, host, out=lambda m: None)  # back to the default shape for the others


def stapled(acme, name, address):
    """Whether the handshake carries a good OCSP answer (curl --cert-status checks it)."""
    code, _ = curl("--cert-status", "--cacert", acme.ca_bundle, "--resolve",
                   f"{name}:443:{address}", "-o", "/dev/null", f"https://{name}/hello")
    return code == 0


def test_ocsp_stapling_when_asked(acme, nginx_site):
    host, s = nginx_site
    stapling = secure(acme, tls={**acme.settings(), "ocsp_stapling": True,
                                 "resolvers": [f"{pebble.HOST}:{pebble.DNS_PORT}"]})
    assert not stapled(acme, "secure.test", host.address)  # off unless asked
    deploy.deploy(stapling, host, out=lambda m: None)
    # nginx fetches the answer on the first handshake after a reload and staples it after.
    staging.wait_until(lambda: stapled(acme, "secure.test", host.address), 20,
                       "a stapled OCSP answer")
    deploy.deploy(s, host, out=lambda m: None)


def test_a_tls_scanner_finds_nothing_weak(acme, nginx_site, tmp_path):
    """sslyze, as an auditor would run it: no protocol below TLS 1.2, only forward-secret AEAD
    ciphers, no compression, a chain valid for the name against the ACME server's root."""
    host, s = nginx_site
    report = tmp_path / "sslyze.json"
    proc = subprocess.run(
        [str(ROOT / ".venv-sslyze/bin/python"), "-m", "sslyze", "--json_out", str(report),
         "--sslv2", "--sslv3", "--tlsv1", "--tlsv1_1", "--tlsv1_2", "--tlsv1_3",
         "--compression", "--certinfo", "--certinfo_ca_file", acme.ca_bundle,
         "--mozilla_config", "disable", f"secure.test:443{{{host.address}}}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert report.exists(), proc.stdout
    scan = json.loads(report.read_text())["server_scan_results"][0]["scan_result"]

    def accepted(command):
        return [c["cipher_suite"]["name"] for c in scan[command]["result"]["accepted_cipher_suites"]]

    for old in ("ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites",
                "tls_1_1_cipher_suites"):
        assert accepted(old) == [], old
    tls12 = accepted("tls_1_2_cipher_suites")
    assert tls12 and all("ECDHE" in c and ("GCM" in c or "CHACHA20" in c) for c in tls12), tls12
    assert accepted("tls_1_3_cipher_suites")
    assert scan["tls_compression"]["result"]["supports_compression"] is False
    deployment = scan["certificate_info"]["result"]["certificate_deployments"][0]
    custom = [r for r in deployment["path_validation_results"]
              if r["trust_store"]["path"] == acme.ca_bundle]
    assert custom and custom[0]["was_validation_successful"], deployment["path_validation_results"]
    assert deployment["received_chain_has_valid_order"]


def test_forced_renewal_under_load_serves_a_new_serial_without_a_failed_request(nginx_site):
    host, s = nginx_site
    target = deploy.target_for(s, host)
    before = serial(target)
    with Load(host.address, 443, "secure.test", path="/hello", concurrency=4,
              max_requests=20000, max_seconds=60, connect=target.connection) as load:
        load.wait_for(50)
        # As the renewal timer runs it (with the private CA the drop-in gives it); the
        # deploy hook certbot recorded reloads nginx gracefully.
        host.run("REQUESTS_CA_BUNDLE=/etc/flask-ops/acme-ca-bundle.pem certbot renew "
                 "--force-renewal --cert-name secure --no-random-sleep-on-renew -q", "renew")
        staging.wait_until(lambda: serial(target) != before, 30, "the renewed certificate")
        sent = load.result.sent
        load.wait_for(sent + 50)
    assert load.result.failed == 0, load.result.errors
    assert load.result.sent > 100


def test_a_second_sites_first_certificate_costs_the_first_nothing(acme, nginx_site):
    host, s = nginx_site
    other = secure(acme, app_name="second", names=("second.test",))
    target = deploy.target_for(s, host)
    provision.provision(other, host)
    try:
        with Load(host.address, 443, "secure.test", path="/hello", concurrency=4,
                  max_requests=20000, max_seconds=120, connect=target.connection) as load:
            load.wait_for(50)
            deploy.deploy(other, host, out=lambda m: None)
            load.wait_for(load.result.sent + 50)
        assert load.result.failed == 0, load.result.errors
        assert b"Hello" in smoke.request(deploy.target_for(other, host), "/hello").body
    finally:
        remove_app(host, other)


def test_a_redeploy_and_a_rollback_keep_the_certificate(acme, nginx_site, tmp_path):
    from conftest import make_project
    host, s = nginx_site
    target = deploy.target_for(s, host)
    before = serial(target)
    changed = make_project(tmp_path, {"app.py": ("Hello", "Howdy")},
                           config={"app_name": "secure", "server_names": list(s.server_names),
                                   "tls": acme.settings(),
                                   "smoke": [{"path": "/", "status": 200}]})
    deploy.deploy(changed, host, out=lambda m: None)
    assert b"Howdy" in smoke.request(target, "/hello").body and serial(target) == before
    deploy.rollback(s, host, out=lambda m: None)
    assert b"Hello" in smoke.request(target, "/hello").body and serial(target) == before
    provision.provision(s, host)  # re-provisioning leaves certbot's certificates alone
    assert serial(target) == before


def test_an_acme_server_that_refuses_the_challenge_leaves_the_live_site_serving(acme,
                                                                                 nginx_site):
    host, s = nginx_site
    pebble.point("refused.test", "198.18.0.99")  # no host there: the challenge cannot pass
    bad = secure(acme, app_name="refused", names=("refused.test",))
    provision.provision(bad, host)
    unreachable = sample_settings(ROOT, app_name="refused", server_names=["refused.test"],
                                  tls={"acme": {**acme.settings()["acme"],
                                                "directory": "https://198.18.0.1:14999/dir"}})
    try:
        for app in (bad, unreachable):
            with pytest.raises(OpsError, match="step 'certificate' failed"):
                deploy.deploy(app, host, out=lambda m: None)
            assert smoke.request(deploy.target_for(s, host), "/hello").status == 200
    finally:
        remove_app(host, bad)


def test_apache_serves_an_acme_certificate_with_http2(acme, staging_hosts):
    host = staging.remote("staging2")
    s = secure(acme, app_name="secureapache", names=("apache.secure.test",),
               stack="apache-modwsgi", tls={**acme.settings(), "ocsp_stapling": True})
    pebble.point("apache.secure.test", host.address)
    provision.provision(s, host)
    try:
        deploy.deploy(s, host, out=lambda m: None)
        code, out = over_http2(acme, "apache.secure.test", host.address)
        assert (code, out) == (0, "200 2"), out
        whoami = json.loads(smoke.request(deploy.target_for(s, host), "/whoami").body)
        assert whoami["scheme"] == "https"
        staging.wait_until(lambda: stapled(acme, "apache.secure.test", host.address), 20,
                           "a stapled OCSP answer from Apache")
    finally:
        remove_app(host, s)
        host.close()


def test_the_users_own_certificate_files_are_installed_0600_and_served(staging_hosts,
                                                                        tmp_path_factory):
    host = staging.remote("staging1")
    files = tmp_path_factory.mktemp("own-cert")
    s = sample_settings(ROOT, app_name="owncert", server_names=["own.test"],
                        tls=own_certificate(files, ["own.test"]))
    provision.provision(s, host)
    try:
        output = []
        deploy.deploy(s, host, out=output.append)
        key = (files / "key.pem").read_text()
        assert not [line for line in output if "PRIVATE KEY" in line]
        assert host.run(f"stat -c '%a %U' {s.tls_key}; stat -c '%a' {s.tls_dir}",
                        "stat").stdout.split() == ["600", "root", "700"]
        assert host.run(f"cat {s.tls_key}", "key").stdout.strip() == key.strip()
        assert host.run(f"grep -rl 'PRIVATE KEY' {s.base} 2>/dev/null || true",
                        "grep").stdout.strip() == ""  # never in a release
        assert smoke.request(deploy.target_for(s, host), "/hello").status == 200
    finally:
        remove_app(host, s)
        host.close()


def test_two_balancers_share_one_certificate_and_terminate_tls_for_a_plain_app_host(acme, staging_hosts):
    """The name resolves to the second balancer: the ACME server's validation reaches it,
    it sends the challenge to the first (which runs certbot), and both serve the one
    certificate. A renewal on the first reaches the second at the next deploy."""
    staging.up(3, log=lambda m: None)
    first, second = staging.remote("staging2"), staging.remote("staging3")
    app = staging.remote("staging1")
    s = secure(acme, app_name="edge", names=("edge.test",),
               roles={"lb": ["staging2", "staging3"], "app": ["staging1"]})
    pebble.point("edge.test", second.address)
    lbs = [first, second]
    for host in lbs + [app]:
        provision.provision(s, host)
    lb_s = fleet.lb_settings(s, 2)
    try:
        fleet.rolling_deploy(s, lbs, [app], out=lambda m: None)  # smoke through each lb: TLS
        for lb in lbs:
            code, out = over_http2(acme, "edge.test", lb.address)
            assert (code, out) == (0, "200 2"), out
        issued = {lb.name: serial(deploy.target_for(lb_s, lb)) for lb in lbs}
        assert issued[first.name] == issued[second.name]
        assert sh(first, "ls /etc/letsencrypt/live") == "README\nedge"
        assert sh(second, "ls /etc/letsencrypt/live 2>/dev/null || true") == ""
        through = json.loads(smoke.request(deploy.target_for(lb_s, second), "/whoami").body)
        assert through["scheme"] == "https"
        # The app host: plain HTTP on the private network, no certificate, no redirect; a
        # forged X-Forwarded-Proto from anyone but a balancer changes nothing.
        direct = smoke.Target(app.address, 80, "edge.test")
        assert smoke.request(direct, "/hello").status == 200
        forged = json.loads(smoke.request(direct, "/whoami",
                                          headers={"X-Forwarded-Proto": "https"}).body)
        assert forged["scheme"] == "http" and forged["forwarded_proto"] == "http"
        # Renewed as the first's timer runs it: validated through the second's site, copied
        # by the deploy hook; the second serves it once a deploy (a no-op) has run.
        first.run("REQUESTS_CA_BUNDLE=/etc/flask-ops/acme-ca-bundle.pem certbot renew "
                  "--force-renewal --cert-name edge --no-random-sleep-on-renew -q", "renew")
        staging.wait_until(lambda: serial(deploy.target_for(lb_s, first)) != issued[first.name],
                           30, "the renewed certificate on the first balancer")
        assert serial(deploy.target_for(lb_s, second)) == issued[second.name]
        fleet.rolling_deploy(s, lbs, [app], out=lambda m: None)
        assert serial(deploy.target_for(lb_s, second)) == serial(deploy.target_for(lb_s, first))
    finally:
        for host in lbs + [app]:
            remove_app(host, s)
            host.close()


@pytest.mark.parametrize("shape", ["default", "proxy", "cache"])
def test_behind_a_tls_terminator_only_its_scheme_is_believed(staging_hosts, shape):
    host, other = staging.remote("staging1"), staging.remote("staging2")
    # This machine (198.18.0.1 on the staging bridge) plays the terminator.
    s = sample_settings(ROOT, app_name="behind", server_names=["behind.test"], nginx=shape,
                        trusted_proxies=[staging.BRIDGE_ADDR])
    provision.provision(s, host)
    try:
        deploy.deploy(s, host, out=lambda m: None)
        target = deploy.target_for(s, host)
        trusted = json.loads(smoke.request(target, "/whoami",
                                           headers={"X-Forwarded-Proto": "https"}).body)
        assert trusted["scheme"] == "https"
        # Its scheme, and nothing else it did not set (every tier, the cache key included).
        assert_forgeries_refused(target, scheme="https")
        forged = json.loads(other.run(
            f"curl -sS -H 'Host: behind.test' -H 'X-Forwarded-Proto: https' "
            f"http://{host.address}/whoami", "forged").stdout)
        assert forged["scheme"] == "http" and forged["forwarded_proto"] == "http"
    finally:
        remove_app(host, s)
        host.close()
        other.close()


def test_the_balancer_re_encrypts_to_app_hosts_when_asked(staging_hosts, tmp_path_factory):
    staging.up(3, log=lambda m: None)
    lb, apps = staging.remote("staging3"), [staging.remote("staging1"), staging.remote("staging2")]
    files = own_certificate(tmp_path_factory.mktemp("edge-cert"), ["edge2.test"])
    tls = {"certificate": files["certificate"], "to_app_hosts": True}
    s = sample_settings(ROOT, app_name="edgetwo", server_names=["edge2.test"], tls=tls,
                        roles={"lb": ["staging3"], "app": ["staging1", "staging2"]})
    for host in [lb] + apps:
        provision.provision(s, host)
    try:
        fleet.rolling_deploy(s, [lb], apps, out=lambda m: None)  # smoke: lb and each app host
        assert smoke.request(deploy.target_for(s, lb), "/hello").status == 200
        # The app hosts answer plain HTTP only with a redirect: what the balancer served came
        # over TLS, verified for the site's name against the user's CA.
        plain = smoke.request(smoke.Target(apps[0].address, 80, "edge2.test"), "/hello")
        assert plain.status == 301
        direct = json.loads(smoke.request(deploy.target_for(s, apps[0]), "/whoami").body)
        assert direct["scheme"] == "https"
    finally:
        for host in [lb] + apps:
            remove_app(host, s)
            host.close()
