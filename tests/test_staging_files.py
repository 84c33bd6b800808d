"""The Docker and Vagrant staging files, linted (test_e2e_docker.py boots the Docker ones;
no Vagrant provider runs here, so `vagrant validate` is as far as Vagrant goes)."""

import dataclasses
import re
import subprocess

import yaml

from ops import staging

from conftest import ROOT, sample_settings

STAGING = ROOT / "ops/staging/recipes"


def test_dockerfile_passes_hadolint():
    # DL3008 (pin apt versions) is declined on purpose: a staging image follows the release.
    out = subprocess.run([str(ROOT / ".venv/bin/hadolint"), "--ignore", "DL3008",
                          str(STAGING / "Dockerfile")], text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert out.returncode == 0, out.stdout


def dockerfile_packages():
    """The packages the Dockerfile's `apt-get install` names (its continued lines joined)."""
    text = (STAGING / "Dockerfile").read_text().replace("\\\n", " ")
    command = re.search(r"apt-get install ([^&;]*)", text).group(1).split()
    return {word for word in command if not word.startswith("-")}


def vagrantfile_packages():
    return set(re.search(r"PACKAGES = %w\[(.*?)\]", (STAGING / "Vagrantfile").read_text(),
                         re.S).group(1).split())


def test_docker_and_vagrant_targets_have_what_every_stack_installs():
    """The targets have no network: every package a stack's provision (or a balancer's, or
    certbot for ACME) would install must already be in them, as in our own image."""
    from ops.targets import stacks
    s = sample_settings()
    needed = {p for name in stacks.NAMES
              for p in stacks.of(dataclasses.replace(s, stack=name)).packages}
    needed |= set(stacks.LoadBalancer(s).packages) | {"certbot", "openssl", "openssh-server"}
    for have in (dockerfile_packages(), vagrantfile_packages(), set(staging.IMAGE_PACKAGES)):
        assert needed <= have, sorted(needed - have)
    assert 'CMD ["/sbin/init"]' in (STAGING / "Dockerfile").read_text()


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
