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
# The bridge's own MAC, set once (locally administered). Left to the kernel, a bridge takes
# the lowest MAC of its ports and changes it whenever a host (a port) comes or goes; every
# host still holding the old one in its ARP cache then sends to nobody until that entry
# expires: a host waiting for a client's next packet lost its answers for up to a minute
# (measured: a 3 s command over SSH took 58 s when another host went away meanwhile).
BRIDGE_MAC = "02:46:4f:00:00:01"


def nspawn_address(index):
    """stagingN's IPv4 address on the bridge (an nspawn host's)."""
    return f"198.18.0.{10 + index}"


def bridge_is_up():
    return subprocess.run(["ip", "link", "show", BRIDGE], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def bridge_mac():
    """The bridge's MAC as the kernel has it now."""
    return Path(f"/sys/class/net/{BRIDGE}/address").read_text().strip()
