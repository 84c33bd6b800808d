"""What a host is now, as `scripts/facts.py` reports it: parsed once, at the seam, into one
typed value that every decision reads (plans, preflight, status, host versions)."""

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Optional, Tuple

from ..errors import OpsError


@dataclass(frozen=True)
class HostFacts:
    init: str = "unknown"  # systemd, upstart or unknown
    python: str = ""  # the host's interpreter, X.Y.Z
    arch: str = ""  # os.uname().machine
    libc: Optional[str] = None  # glibc's version; None on another C library
    versions: dict = field(default_factory=dict)  # {Debian package: version} of the servers
    ipv6: Optional[bool] = None  # None: not reported
    user: bool = False  # the app's user exists
    provisioned: bool = False  # base/shared and base/releases exist
    current: Optional[str] = None  # the release `current` points at
    releases: Tuple[str, ...] = ()  # every complete release, oldest first
    manifest: Optional[dict] = None  # current's manifest
    manifests: dict = field(default_factory=dict)  # {release: manifest} asked for
    live: dict = field(default_factory=dict)  # {config path: sha256 or None}
    enabled: dict = field(default_factory=dict)  # {site name: linked in sites-enabled}
    wheelhouse: bool = False  # this requirements digest's wheelhouse is complete
    venv: bool = False  # and its venv
    main_conf: bool = False  # the front server's main config exists
    front: Optional[str] = None  # the front server provision set up (stacks.FRONT_MARKER)
    active: dict = field(default_factory=dict)  # {unit: its init's word for its state}
    state: dict = field(default_factory=dict)  # the app's state.json (pending, env digest, ...)
    lock: Optional[dict] = None  # the deploy lock's holder, when locked
    tls: Optional[dict] = None  # the served certificate: issuer, names, not_after, sha256
    unprovisioned: Tuple[str, ...] = ()  # files this version needs that provision makes
    workers: Tuple[str, ...] = ()  # this app's worker units on the host
    maintenance: bool = False
    now: float = 0  # the host's clock
    digest: str = ""  # every fact above but the clock and the lock, as one sha256
    noop: bool = False  # the host confirmed the no-op the deployer expected (ops.deploy.noop)

    @classmethod
    def from_json(cls, data):
        """From facts.py's JSON object (a missing key takes its default: an empty host's)."""
        if not isinstance(data, dict):
            raise OpsError(f"facts: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OpsError(f"facts: unknown key {unknown[0]!r} (facts.py and this flask-ops "
                           "disagree)")
        values = dict(data)
        for name in ("releases", "unprovisioned", "workers"):
            if name in values:
                values[name] = tuple(values[name] or ())
        for name in ("versions", "manifests", "live", "enabled", "active", "state"):
            if name in values and values[name] is None:
                values[name] = {}
        return cls(**values)

    @classmethod
    def parse(cls, line):
        try:
            return cls.from_json(json.loads(line))
        except ValueError as exc:
            raise OpsError(f"facts: not JSON ({exc})") from None

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)
