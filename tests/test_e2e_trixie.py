"""A Debian trixie target next to the bookworm ones: Python 3.13 (this machine has 3.11, so
the deploy ships wheels built for the host's own CPython), nginx 1.26, Apache 2.4.6x and
systemd 257. On each stack: a first deploy, a code change, a rollback."""

import pytest

from conftest import MARKED_REQUIREMENTS, deploy_change_rollback, extra_host, installed_on_host

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trixie():
    """staging5 booted from a trixie image (the bridge is the session's)."""
    yield from extra_host(5, release="trixie")


def test_the_host_runs_trixie(trixie):
    assert "trixie" in trixie.run("cat /etc/os-release", "os").stdout
    assert trixie.run("python3 -c 'import sys; print(sys.version_info[:2])'",
                      "python").stdout.strip() == "(3, 13)"


@pytest.mark.parametrize("stack", ["nginx-uwsgi", "apache-modwsgi"])
def test_deploy_a_change_and_roll_back_on_trixie(trixie, project, stack):
    deploy_change_rollback(trixie, project, stack)


def test_the_venv_holds_wheels_built_for_the_hosts_python(trixie, project):
    """MarkupSafe's C speedups are cp313 (this machine builds cp311), and the requirements'
    markers are evaluated for 3.13: redis without async-timeout, no tomli."""
    from ops.deploy import deploy, provision
    s = project({"requirements.txt": ("flask>=3.0,<4", MARKED_REQUIREMENTS)})
    try:
        provision.provision(s, trixie)
        deploy.deploy(s, trixie, out=lambda m: None)
        found = trixie.run("ls /srv/sample/current/venv/lib/python3.13/site-packages/markupsafe/",
                           "wheels").stdout
        assert "_speedups.cpython-313" in found, found
        assert installed_on_host(trixie, s, "redis", "async_timeout", "tomli") == {
            "redis": True, "async_timeout": False, "tomli": False}
    finally:
        from conftest import remove_app
        remove_app(trixie, s)
