"""A Docker-backed staging host (ops/staging/recipes/Dockerfile FROM the imported staging root
filesystem, systemd as PID 1 without --privileged) gets the same deploys as the nspawn
hosts; ops/staging/recipes/compose.yaml brings the same target up with docker-compose."""

import os
import subprocess

import pytest

from conftest import ROOT, deploy_change_rollback, extra_host
from ops import staging
from ops.staging import docker as staging_docker

pytestmark = pytest.mark.e2e
NAME = "staging6"


@pytest.fixture(scope="module")
def docker_host():
    yield from extra_host(6, engine="docker")


def test_the_container_is_a_systemd_host_on_its_own_network(docker_host):
    assert docker_host.address == "198.19.0.16"
    state = docker_host.run("systemctl is-system-running; cat /proc/1/comm", "state").stdout.split()
    assert state == ["running", "systemd"]
    inspect = subprocess.run(["docker", "inspect", "-f", "{{.HostConfig.Privileged}}",
                              staging_docker.container(NAME)], capture_output=True, text=True)
    assert inspect.stdout.strip() == "false"
    rows = [r for r in staging.status() if r["name"] == NAME]
    assert rows and rows[0]["engine"] == "docker" and rows[0]["running"] and rows[0]["ssh"]


@pytest.mark.parametrize("stack", ["nginx-uwsgi", "apache-modwsgi"])
def test_deploy_a_change_and_roll_back_on_docker(docker_host, project, stack):
    deploy_change_rollback(docker_host, project, stack)


def test_compose_brings_up_the_same_target(docker_host):
    """docker-compose (Debian's 1.29) with the imported base: sshd answers on loopback."""
    base = f"flask-ops/staging-base:{staging.image_path().name}"
    env = dict(os.environ, FLASK_OPS_BASE=base, FLASK_OPS_BUILD_NETWORK="none",
               FLASK_OPS_SSH_PUBKEY=f"{staging.key_path()}.pub")
    compose = ["docker-compose", "-p", "flaskopstest", "-f", str(ROOT / "ops/staging/recipes/compose.yaml")]
    try:
        up = subprocess.run(compose + ["up", "-d", "--build"], env=env, capture_output=True,
                            text=True, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        ssh = ["ssh", "-p", "2222", "-i", str(staging.key_path()), "-o", "BatchMode=yes",
               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "ConnectTimeout=5", "root@127.0.0.1"]
        staging.wait_until(lambda: subprocess.run(ssh + ["true"], capture_output=True,
                                                  timeout=30).returncode == 0, 90, "compose sshd")
        state = subprocess.run(ssh + ["systemctl is-system-running --wait; "
                                      "dpkg-query -W -f='${Status}' nginx"],
                               capture_output=True, text=True, timeout=120).stdout
        assert state.startswith("running") and "install ok installed" in state, state
    finally:
        subprocess.run(compose + ["down", "--rmi", "local", "-v"], env=env, capture_output=True,
                       timeout=300)
