"""Rendering for the host's server versions, without a host: the versions facts report (real
dpkg output of Debian 11, 12 and 13), what each means for the files, and the refusals."""

import pytest

from ops.deploy import deploy
from ops.deploy.hostfacts import HostFacts
from ops.errors import OpsError
from ops.targets import checks, hostversions, render

# facts.py's "versions" and "python" as real hosts report them.
BULLSEYE = HostFacts.from_json({"python": "3.9.2", "versions": {
    "nginx": "1.18.0-6.1+deb11u3", "nginx-core": "1.18.0-6.1+deb11u3", "uwsgi-core": "2.0.19.1-7.1",
    "apache2": "2.4.62-1~deb11u1", "libapache2-mod-wsgi-py3": "4.7.1-3+deb11u1",
    "systemd": "247.3-7+deb11u6"}})
BOOKWORM = HostFacts.from_json({"python": "3.11.2", "versions": {
    "nginx": "1.22.1-9+deb12u11", "uwsgi-core": "2.0.21-5.1", "apache2": "2.4.71-1~deb12u1",
    "libapache2-mod-wsgi-py3": "4.9.4-1+b2", "systemd": "252.39-1~deb12u2"}})
TRIXIE = HostFacts.from_json({"python": "3.13.5", "versions": {
    "nginx": "1.26.3-3+deb13u1", "uwsgi-core": "2.0.28-10", "apache2": "2.4.65-2",
    "systemd": "257.8-1~deb13u2"}})


def test_versions_from_real_facts():
    assert hostversions.versions_from_facts(BULLSEYE) == {
        "nginx": (1, 18, 0), "uwsgi": (2, 0, 19, 1), "apache": (2, 4, 62), "mod_wsgi": (4, 7, 1),
        "systemd": (247, 3), "python": (3, 9, 2)}
    assert hostversions.versions_from_facts(HostFacts(python="3.11.2")) == {
        "python": (3, 11, 2)}


@pytest.mark.parametrize("facts, expected", [
    (BULLSEYE, hostversions.Target(nginx_reject_handshake=False, nginx_http2_directive=False,
                                   uwsgi_fork_hooks=False)),
    (BOOKWORM, hostversions.Target()),
    (TRIXIE, hostversions.Target(nginx_http2_directive=True)),
])
def test_each_host_gets_the_directives_its_servers_know(facts, expected):
    assert hostversions.Target.for_versions(hostversions.versions_from_facts(facts)) == expected


def test_a_fleet_renders_what_every_host_supports():
    old = hostversions.Target.for_versions(hostversions.versions_from_facts(BULLSEYE))
    new = hostversions.Target.for_versions(hostversions.versions_from_facts(TRIXIE))
    assert new.common(old) == old.common(new) == old


@pytest.mark.parametrize("facts, present, absent", [
    (BULLSEYE, ["py-call-osafterfork = true", "ssl-cert-snakeoil", "listen 443 ssl http2;"],
     ["py-call-uwsgi-fork-hooks = true", "ssl_reject_handshake on;", "http2 on;"]),
    (TRIXIE, ["py-call-uwsgi-fork-hooks = true", "ssl_reject_handshake on;", "http2 on;"],
     ["py-call-osafterfork = true", "listen 443 ssl http2;"]),
])
def test_rendered_files_follow_the_target_and_pass_the_checkers(load, facts, present, absent):
    s = load(server_names=["sample.example.com"], tls={"certificate": {
        "chain": "/dev/null", "key": "/dev/null"}})
    s = deploy.dataclasses.replace(s, target=hostversions.Target.for_versions(
        hostversions.versions_from_facts(facts)))
    files = render.render(s)
    text = "\n".join(f.content for f in files)
    assert [p for p in present if p not in text] == []
    assert [a for a in absent if a in text] == []
    if facts is BULLSEYE:  # this machine's nginx (1.22) takes the older syntax, not `http2 on;`
        checks.check_local(files, s)


class FakeRemote:
    name = "old-host"


def test_servers_older_than_supported_are_refused_and_a_release_for_newer_is_rebuilt(load, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    s = load()
    ancient = HostFacts(python="3.7.3", versions={"nginx": "1.14.2-2+deb10u5"})
    with pytest.raises(OpsError, match="old-host runs nginx 1.14.2; flask-ops renders for nginx 1.18"):
        deploy.check_versions(s, ancient, FakeRemote())
    with pytest.raises(deploy.RenderedForAnother, match="old-host runs"):
        deploy.check_versions(s, BULLSEYE, FakeRemote())
    # remembered: the next build renders for it, and then the check passes
    rebuilt = deploy.for_hosts(s, ["old-host"])
    assert rebuilt.target == hostversions.Target.for_versions(hostversions.versions_from_facts(BULLSEYE))
    deploy.check_versions(rebuilt, BULLSEYE, FakeRemote())
    deploy.check_versions(s, BOOKWORM, FakeRemote())


@pytest.mark.parametrize("text", ["nginx", "nginx=abc", "nginx=1.18,colour=2", "=1.2"])
def test_a_bad_target_option_is_one_line(text):
    with pytest.raises(OpsError, match="--target"):
        hostversions.parse_option(text)


def test_ipv6_listeners_follow_the_host_and_ipv6_networks_are_accepted(load):
    s = load(trusted_proxies=["2001:db8::10", "fd46:6f70:7300::/64"],
             maintenance={"allow": ["2001:db8::/32", "198.18.0.0/24"]})
    files = render.render(s)
    site = next(f.content for f in files if f.path.endswith("/sample.conf"))
    assert "listen [::]:80;" in site and "set_real_ip_from 2001:db8::10;" in site
    assert "2001:db8::/32 1;" in site
    checks.check_local(files, s)
    without = deploy.dataclasses.replace(s, target=hostversions.Target.for_versions(
        hostversions.versions_from_facts(HostFacts(ipv6=False))))
    assert not [f for f in render.render(without) if "[::]" in f.content]
