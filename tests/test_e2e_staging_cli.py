"""staging.up/status/down through the CLI; down leaves no namespace, veth or process.

It removes every staging host, the session's included: marked `removes_staging`, which
conftest runs after every other test, wherever this file sorts.
"""

import subprocess
import time
from pathlib import Path

import pytest

from ops import staging
from ops.staging.net import BRIDGE, bridge_mac

from conftest import fab

pytestmark = [pytest.mark.e2e, pytest.mark.removes_staging]


def leftovers():
    netns = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], stdout=subprocess.PIPE, text=True).stdout
    procs = subprocess.run(["pgrep", "-af", "systemd-nspawn"], stdout=subprocess.PIPE,
                           text=True).stdout
    mounts = Path("/proc/mounts").read_text()
    return {
        "netns": [l for l in netns.splitlines() if l.startswith("flask-ops-")],
        "links": [l for l in links.splitlines() if " fo-" in l],
        "nspawn": [l for l in procs.splitlines() if str(staging.STATE_DIR) in l],
        "mounts": [l for l in mounts.splitlines() if str(staging.STATE_DIR) in l],
    }


def test_a_host_coming_and_going_never_cuts_another_off():
    """A port with a lower MAC joins the bridge, then goes (a host another test boots and
    removes) while staging1 runs a command that waits: the bridge keeps its MAC and the
    command's answer arrives at once. Left to the kernel, the bridge took the lowest MAC of its
    ports and staging1 sent that answer to a MAC nobody had for up to a minute."""
    host = staging.up(1, log=lambda m: None)[0]
    port = "fo-probe"
    subprocess.run(["ip", "link", "add", port, "address", "02:00:00:00:00:01", "type", "veth",
                    "peer", "name", port + "c"], check=True)
    try:
        subprocess.run(["ip", "link", "set", port, "master", BRIDGE, "up"], check=True)
        mac = bridge_mac()
        command = subprocess.Popen(
            ["ssh", "-F", str(staging.STATE_DIR / "ssh_config"), host.name,
             "echo started; sleep 2; echo done"], stdout=subprocess.PIPE, text=True)
        assert command.stdout.readline() == "started\n"
        start = time.monotonic()
        subprocess.run(["ip", "link", "del", port], check=True)
        assert bridge_mac() == mac
        assert command.stdout.readline() == "done\n"
        assert time.monotonic() - start < 8
        assert command.wait(10) == 0
    finally:
        subprocess.run(["ip", "link", "del", port], stderr=subprocess.DEVNULL)


def test_up_is_idempotent_and_down_leaves_nothing():
    up = fab("staging.up", "--count", "3")
    assert up.returncode == 0, up.stdout
    assert "staging3  198.18.0.13" in up.stdout
    status = fab("staging.status").stdout
    assert "staging3   198.18.0.13     bookworm  nspawn  systemd  running  ssh up" in status
    staging.ssh(staging.Host("staging3"), "systemctl is-active sshd")
    again = fab("staging.up", "--count", "3")
    assert "booting" not in again.stdout  # nothing rebooted

    down = fab("staging.down")
    assert down.returncode == 0, down.stdout
    assert leftovers() == {"netns": [], "links": [], "nspawn": [], "mounts": []}
    assert fab("staging.status").stdout.strip() == "no staging hosts"
    assert fab("staging.down").returncode == 0  # idempotent
