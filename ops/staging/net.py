"""Where the staging hosts live on this machine: their state directory and their bridge.

A leaf shared by the staging harness and the services that run on its bridge (Pebble), so
that `staging.down` can stop those services without the two importing each other.
"""

import os
import subprocess
from pathlib import Path

STATE_DIR = Path(os.environ.get("FLASK_OPS_STAGING_DIR", "/var/lib/flask-ops/staging"))
BRIDGE, BRIDGE_ADDR, PREFIX = "fo-br0", "198.18.0.1", 24
# IPv6 on the same bridge, from a unique local range of the project's own (RFC 4193).
BRIDGE_ADDR6, PREFIX6 = "fd46:6f70:7300::1", 64


def nspawn_address(index):
    """stagingN's IPv4 address on the bridge (an nspawn host's)."""
    return f"198.18.0.{10 + index}"


def bridge_is_up():
    return subprocess.run(["ip", "link", "show", BRIDGE], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0
