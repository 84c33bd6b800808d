"""The Docker and Vagrant staging files, linted (test_e2e_docker.py boots the Docker ones;
no Vagrant provider runs here, so `vagrant validate` is as far as Vagrant goes)."""

import subprocess

import yaml

from ops import staging

from conftest import ROOT

STAGING = ROOT / "staging"


def test_dockerfile_passes_hadolint():
    # DL3008 (pin apt versions) is declined on purpose: a staging image follows the release.
    out = subprocess.run([str(ROOT / ".venv/bin/hadolint"), "--ignore", "DL3008",
                          str(STAGING / "Dockerfile")], text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert out.returncode == 0, out.stdout


def test_docker_and_vagrant_targets_carry_the_staging_packages():
    dockerfile = (STAGING / "Dockerfile").read_text()
    vagrantfile = (STAGING / "Vagrantfile").read_text()
    for package in ("nginx", "apache2", "libapache2-mod-wsgi-py3", "uwsgi-core",
                    "uwsgi-plugin-python3", "python3-venv"):
        assert package in staging.IMAGE_PACKAGES
        assert package in dockerfile and package in vagrantfile
    assert 'CMD ["/sbin/init"]' in dockerfile and "openssh-server" in dockerfile


def test_compose_file_publishes_ssh_and_http_on_loopback_only():
    compose = yaml.safe_load((STAGING / "compose.yaml").read_text())
    target = compose["services"]["target"]
    assert "privileged" not in target and target["cap_add"] == ["SYS_ADMIN", "SYS_PTRACE"]
    assert target["ports"] == ["127.0.0.1:2222:22", "127.0.0.1:8080:80"]
    assert compose["networks"]["staging"]["ipam"]["config"][0]["subnet"].startswith("198.19.")


def test_vagrantfile_validates():
    """`vagrant validate` reads the Vagrantfile as Vagrant does; no provider is needed."""
    import shutil
    import pytest
    if not shutil.which("vagrant"):
        pytest.skip("vagrant is not installed: make docker-deps")
    out = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=STAGING, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                         env={**__import__("os").environ, "VAGRANT_CHECKPOINT_DISABLE": "1"})
    assert out.returncode == 0 and "Vagrantfile validated successfully" in out.stdout, out.stdout
