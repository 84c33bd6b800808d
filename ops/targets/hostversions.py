"""The server versions of a target host, and what each means for the files rendered for it.

Hosts older than ours refuse directives ours accept: nginx before 1.19.4 has no
`ssl_reject_handshake`, uWSGI 2.0.19 no `py-call-uwsgi-fork-hooks` (and `strict = true` makes
an unknown option fatal); nginx 1.25.1 deprecates `listen ... http2` for `http2 on;`. The facts
round trip reports the versions (dpkg's), `Target` turns them into the choices templates make,
and each host's last report is kept here so the next build renders for it from the start.
"""

import json
import re
from dataclasses import asdict, dataclass, fields

from .. import cachedir
from ..errors import OpsError

# Packages whose version decides what is rendered; facts.py asks dpkg for them.
PACKAGES = {"nginx": ("nginx", "nginx-core", "nginx-full", "nginx-light", "nginx-extras"),
            "uwsgi": ("uwsgi-core",), "apache": ("apache2",), "mod_wsgi": ("libapache2-mod-wsgi-py3",),
            "systemd": ("systemd",)}
# The oldest of each that flask-ops renders for (Ubuntu 22.04 / Debian 11 and newer).
OLDEST = {"nginx": (1, 18), "uwsgi": (2, 0, 19), "apache": (2, 4, 41), "mod_wsgi": (4, 6),
          "systemd": (245,), "python": (3, 8)}
_NUMBERS = re.compile(r"(?:\d+:)?(\d+(?:\.\d+)*)")


def parse_version(text):
    """(1, 22, 1) from a Debian version such as '1.22.1-9+deb12u2' or '2.0.21-debian'."""
    m = _NUMBERS.match(text or "")
    return tuple(int(n) for n in m.group(1).split(".")) if m else None


def versions_from_facts(facts):
    """{name: version tuple} of what the host has installed (absent: not installed/unknown)."""
    raw = facts.versions
    out = {}
    for name, packages in PACKAGES.items():
        found = [parse_version(raw.get(p)) for p in packages if raw.get(p)]
        found = [v for v in found if v]
        if found:
            out[name] = max(found)
    python = parse_version(facts.python)
    if python:
        out["python"] = python
    if facts.ipv6 is not None:  # kept with the versions: (1,) the host has IPv6, (0,) it has none
        out["ipv6"] = (1,) if facts.ipv6 else (0,)
    return out


def describe(versions):
    return ", ".join(f"{name} {'.'.join(map(str, v))}" for name, v in sorted(versions.items())
                     if name != "ipv6")


def refuse_too_old(versions, where=""):
    """OpsError naming the first server older than flask-ops renders for (where: the host)."""
    for name, oldest in OLDEST.items():
        v = versions.get(name)
        if v is not None and v < oldest:
            raise OpsError(f"{where + ' runs ' if where else ''}{name} {'.'.join(map(str, v))}"
                           f"{'' if where else ' is too old'}; flask-ops renders for {name} "
                           f"{'.'.join(map(str, oldest))} and newer")


@dataclass(frozen=True)
class Target:
    """What the rendered files may use on the host (default: the servers of Debian 12)."""

    nginx_reject_handshake: bool = True  # ssl_reject_handshake (nginx 1.19.4+)
    nginx_http2_directive: bool = False  # `http2 on;` instead of `listen ... http2` (1.25.1+)
    uwsgi_fork_hooks: bool = True  # py-call-uwsgi-fork-hooks (uWSGI 2.0.20+)
    ipv6: bool = True  # the host has IPv6: every public listener is on [::] too

    @classmethod
    def for_versions(cls, versions):
        nginx, uwsgi = versions.get("nginx"), versions.get("uwsgi")
        default = cls()
        return cls(
            nginx_reject_handshake=nginx >= (1, 19, 4) if nginx else default.nginx_reject_handshake,
            nginx_http2_directive=nginx >= (1, 25, 1) if nginx else default.nginx_http2_directive,
            uwsgi_fork_hooks=uwsgi >= (2, 0, 20) if uwsgi else default.uwsgi_fork_hooks,
            ipv6=versions.get("ipv6", (1,)) >= (1,))

    def common(self, other):
        """What both hosts support (a fleet renders one set of files)."""
        return Target(**{f.name: getattr(self, f.name) and getattr(other, f.name)
                         for f in fields(self)})


def parse_option(text):
    """`--target nginx=1.18,uwsgi=2.0.19` (render, check): {name: version tuple}."""
    versions = {}
    for item in (text or "").split(","):
        name, sep, value = item.strip().partition("=")
        version = parse_version(value.strip())
        if not sep or name not in {**PACKAGES, "python": ()} or not version:
            raise OpsError(f"--target {text!r}: name=version pairs, e.g. nginx=1.18,uwsgi=2.0.19 "
                           f"(names: {', '.join(list(PACKAGES) + ['python'])})")
        versions[name] = version
    return versions


# ------------------------------------------------------------- what each host last reported

def _records():
    return cachedir.cache_root() / "hosts"


def _record_path(host):
    safe = re.sub(r"[^A-Za-z0-9_.@:-]", "_", host)[:200]
    return _records() / f"{safe}.json"


def remember(host, versions):
    """Keep the versions `host` reported (facts, provision) for the next build."""
    # a read-only cache: the next build renders for the default, then corrects
    cachedir.keep(_record_path(host), json.dumps({k: list(v) for k, v in versions.items()}))


def recalled(host):
    """The versions `host` last reported, {} when unknown."""
    try:
        data = json.loads(_record_path(host).read_text())
        return {k: tuple(v) for k, v in data.items() if isinstance(v, list)}
    except (OSError, ValueError, TypeError):
        return {}


def target_for_hosts(hosts):
    """The Target every named host supports, from what each last reported."""
    target = None
    for host in hosts:
        t = Target.for_versions(recalled(host))
        target = t if target is None else target.common(t)
    return target or Target()


def as_dict(target):
    return asdict(target)
