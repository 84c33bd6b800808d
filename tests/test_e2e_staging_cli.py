"""staging.up/status/down through the CLI; down leaves no namespace, veth or process.

It removes every staging host, the session's included: marked `removes_staging`, which
conftest runs after every other test, wherever this file sorts.
"""

import subprocess
from pathlib import Path

import pytest

from ops import staging

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
