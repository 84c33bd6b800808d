"""Each key of the `deploy:` description parsed on its own: a whitelist pattern or a closed
set per value, so that a template never has to escape anything (a `;` or newline in a server
name would otherwise be config injection). The description as a whole (keys that depend on
each other, files, stages) is ops.config.settings'.
"""

import re
from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import SettingsError
from ..targets import daytwo, inits, stacks
from . import localhooks, tlsconf, vcs, wsgispec

STACKS = stacks.NAMES
NGINX_SHAPES = ("default", "proxy", "cache")
ACCESS_LOG_FORMATS = ("main", "json")
INITS = tuple(inits.INITS)

IDENT = re.compile(r"[a-z][a-z0-9_]{0,30}\Z")
_UNIX_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}\Z")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SERVER_NAME = re.compile(rf"(?:\*\.)?{_HOST_LABEL}(?:\.{_HOST_LABEL})*\Z")
_ABS_PATH = re.compile(r"(?:/[A-Za-z0-9._-]+)+\Z")
_REL_PATH = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*/?\Z")
_URL_PREFIX = re.compile(r"/(?:[A-Za-z0-9._~-]+/)*\Z")
_URL_PATH = re.compile(r"/[A-Za-z0-9._~/-]*\Z")
_SIZE = re.compile(r"[0-9]{1,6}[kKmMgG]?\Z")
_DURATION = re.compile(r"[0-9]{1,6}[smhd]\Z")
_COOKIE = re.compile(r"[A-Za-z0-9_]{1,64}\Z")
SSH_HOST = re.compile(r"(?:([a-z_][a-z0-9_-]*)@)?([A-Za-z0-9][A-Za-z0-9._-]*)(?::([0-9]{1,5}))?\Z")
# Case kept: Flask's from_prefixed_env() maps FLASK_CELERY__broker_url to a lowercase key.
_ENV_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_URL_WITH_QUERY = re.compile(r"/[A-Za-z0-9._~/%-]*(?:\?[A-Za-z0-9._~%&=+-]*)?\Z")
_EXCLUDE = re.compile(r"!?[A-Za-z0-9._*?\[\]/-]{1,200}\Z")

# base_dir may not be (or be inside) a directory the system owns: provision would change its
# owner and mode (/tmp would lose its sticky bit, /root would become 0755).
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
                "/root", "/run", "/sbin", "/sys", "/tmp", "/usr", "/var/tmp", "/var/run",
                "/var/lock", "/var/log", "/var/cache", "/var/spool", "/var/mail", "/var/backups",
                "/var/lib/dpkg", "/var/lib/apt", "/var/lib/systemd", "/etc/nginx", "/etc/apache2")
SYSTEM_PARENTS = ("/", "/srv", "/opt", "/var", "/var/www", "/var/lib", "/home", "/mnt", "/media",
                  "/usr/local")
# Accounts the system, the web server or another service own: the app runs as its own
# unprivileged user, never as (or able to act as) one of theirs.
RESERVED_USERS = frozenset("""root daemon bin sys sync games man lp mail news uucp proxy www-data
    backup list irc gnats nobody nogroup sshd messagebus _apt systemd-network systemd-resolve
    systemd-timesync systemd-journal systemd-coredump polkitd syslog uuidd tss adm staff sudo
    wheel shadow disk kmem tty utmp postgres mysql mariadb redis memcache mongodb rabbitmq
    elasticsearch opensearch nginx apache apache2 httpd ubuntu debian admin ec2-user centos
    git gitlab gitlab-runner jenkins docker dnsmasq bind named postfix dovecot ntp chrony
    avahi colord lightdm gdm pulse rtkit usbmux sssd landscape pollinate fwupd-refresh
    tcpdump clamav vault consul nomad prometheus grafana influxdb""".split())
# Groups whose members are root in all but name (docker, lxd), read what they should not
# (adm: logs; shadow; ssl-cert: private keys) or reach devices; and groups shared by users.
PRIVILEGED_GROUPS = frozenset("""docker lxd lxc kvm libvirt libvirt-qemu disk adm sudo wheel shadow
    ssl-cert users staff video audio input render plugdev netdev dialout tty kmem systemd-journal
    systemd-network root www-data crontab mail operator lpadmin sambashare""".split())
# Directories of other packages and services: provision would make them root's, 0755.
OTHER_SERVICES = ("/var/lib/postgresql", "/var/lib/mysql", "/var/lib/mariadb",
                  "/var/lib/docker", "/var/lib/containerd", "/var/lib/lxd", "/var/lib/redis",
                  "/var/lib/mongodb", "/var/lib/rabbitmq", "/var/lib/elasticsearch",
                  "/var/lib/nginx", "/var/lib/apache2", "/var/lib/letsencrypt",
                  "/var/lib/snapd", "/var/lib/flask-ops", "/var/www/html", "/snap")
# Environment names that change how the process itself runs, not what the app reads.
# The loader's and libc's own (GLIBC_TUNABLES, GCONV_PATH: code loaded into the process) too.
RESERVED_ENV = frozenset("""PATH HOME USER LOGNAME SHELL IFS ENV TERM TMPDIR LANG LANGUAGE
    PWD OLDPWD SHLVL NOTIFY_SOCKET LISTEN_FDS LISTEN_PID INVOCATION_ID GLIBC_TUNABLES GCONV_PATH
    LOCPATH NLSPATH HOSTALIASES RES_OPTIONS LOCALDOMAIN TZDIR BASH_ENV PS4 PERL5LIB PERL5OPT
    RUBYOPT NODE_OPTIONS OPENSSL_CONF OPENSSL_ENGINES""".split())
RESERVED_ENV_PREFIXES = ("LD_", "PYTHON", "UWSGI_", "BASH_", "SYSTEMD_", "FLASK_OPS_", "MOD_WSGI",
                         "GLIBC_", "GCONV_", "MALLOC_")
# Python's own settings that only tune output and warnings: common in apps' docs.
ALLOWED_PYTHON_ENV = frozenset("""PYTHONUNBUFFERED PYTHONDONTWRITEBYTECODE PYTHONHASHSEED
    PYTHONWARNINGS PYTHONFAULTHANDLER PYTHONIOENCODING PYTHONUTF8 PYTHONDEVMODE""".split())



@dataclass(frozen=True)
class SmokePage:
    """A page the smoke test fetches: any status below 400 passes unless `status` names one;
    `contains`: text its body must hold."""

    path: str
    status: Optional[int] = None
    contains: Optional[str] = None

    def as_json(self):
        """As the description gave it (and a release's manifest records it)."""
        return {k: v for k, v in (("path", self.path), ("status", self.status),
                                  ("contains", self.contains)) if v is not None}


@dataclass(frozen=True)
class Roles:
    """A fleet's hosts, as SSH destinations ([user@]host[:port]): the load balancers (none:
    app hosts without one, `hosts:`) and the app hosts."""

    lb: Tuple[str, ...] = ()
    app: Tuple[str, ...] = ()



def fail(key, value, allowed):
    raise SettingsError(key, value, allowed)


def string(key, value, pattern, allowed):
    if not isinstance(value, str) or not pattern.match(value):
        fail(key, value, allowed)
    return value


def _choice(key, value, choices):
    if value not in choices:
        fail(key, value, "one of " + ", ".join(choices))
    return value


def _int(key, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        fail(key, value, f"an integer from {low} to {high}")
    return value


def _no_dot_segments(key, value, path, allowed):
    """`.` and `..` segments would let a path or URL point somewhere other than it says."""
    if any(part in (".", "..") for part in path.split("/")):
        fail(key, value, allowed)
    return value


def _abs_path(key, value):
    allowed = "an absolute path of letters, digits, '.', '_', '-' without '.' or '..' parts"
    string(key, value, _ABS_PATH, allowed)
    return _no_dot_segments(key, value, value, allowed).rstrip("/")


def _base_dir(key, value):
    value = _abs_path(key, value)
    inside = [t for t in SYSTEM_TREES + OTHER_SERVICES if value == t or value.startswith(t + "/")]
    home = value.startswith("/home/") and value.count("/") == 2  # a user's home itself
    if inside or home or value in SYSTEM_PARENTS:
        fail(key, value, "a directory of the app's own, such as /srv/APP or /opt/APP "
                          "(not a system directory, another service's data or a user's home)")
    return value


def _account(key, value):
    string(key, value, _UNIX_NAME, "a Unix user name")
    if value in RESERVED_USERS or value.startswith("systemd-"):
        fail(key, value, "an unprivileged account of the app's own (not root, a system "
                          "account or the web server's)")
    return value


def _group(key, value):
    string(key, value, _UNIX_NAME, "a Unix group name")
    if value in PRIVILEGED_GROUPS:
        fail(key, value, "a group of the app's own (the default is the app user's name): "
                          f"{value} gives its members powers or files beyond the app's own")
    if value in RESERVED_USERS:
        fail(key, value, "a group of the app's own (the default is the app user's name): "
                          "a shared group (www-data, ...) would let other apps on the host "
                          "read this one's data and socket; the web server reaches the socket "
                          "through its directory")
    return value


def _env_names(key, value):
    names = list_of(key, value, _ENV_NAME, "environment variable names (letters, digits, _)")
    for name in names:
        if name in ALLOWED_PYTHON_ENV:
            continue
        if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES):
            fail(key, name, "a name the app reads, not one that changes how its process runs "
                             "(" + ", ".join(p + "*" for p in RESERVED_ENV_PREFIXES) + ", PATH, "
                             "HOME, ... are reserved)")
    return names


def _wsgi(key, value):
    try:
        wsgispec.parse(value)
    except ValueError as exc:
        fail(key, value, "the app's own 'module:name' (e.g. 'app:app') or app factory "
                          f"'module:create_app()' with literal arguments only ({exc})")
    return value


SECRET_KINDS = {
    "generate": "generated on the host once, never leaves it",
    "env": "an environment variable on the deploying machine",
    "file": "a file on the deploying machine, outside the project",
    "command": "the output of a command run on the deploying machine",
}
# Names whose value is a secret: refused in `env:` (the file is in the repository).
_SECRET_NAME = re.compile(r"(?:SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIAL)", re.I)
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
MAX_ENV_VALUE = 8192


def env_value_problem(value):
    """Why a value cannot be one line of the env file (None when it can)."""
    if any(c in value for c in "\n\r\0"):
        return "a single line (no newline, carriage return or NUL)"
    if len(value) > MAX_ENV_VALUE:
        return f"at most {MAX_ENV_VALUE} characters"
    return None


def _env(key, value):
    if value in (None, {}):
        return ()
    if not isinstance(value, dict):
        fail(key, value, "a mapping of NAME: value")
    pairs = []
    for name, item in value.items():
        _env_names(key, [name])
        if _SECRET_NAME.search(name):
            fail(f"{key}.{name}", "********", "a secret's value does not belong in a file in "
                 "the repository: declare it under secrets: with env, file or command")
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, (int, float)):
            item = str(item)
        if not isinstance(item, str):
            fail(f"{key}.{name}", item, "a string, number or true/false")
        problem = env_value_problem(item)
        if problem:
            fail(f"{key}.{name}", item[:40] + "...", problem)
        pairs.append((name, item))
    return tuple(sorted(pairs))


def _secrets(key, value):
    """`secrets:` as a list of names (generated on the host) or a mapping NAME: source."""
    if value in (None, [], {}, ()):
        return ()
    if isinstance(value, (list, tuple, str)):
        return tuple((name, "generate", "") for name in _env_names(key, value))
    if not isinstance(value, dict):
        fail(key, value, "a list of names to generate, or a mapping NAME: generate | "
                          "{env: VAR} | {file: PATH} | {command: CMD}")
    out = []
    for name, source in value.items():
        _env_names(key, [name])
        where = f"{key}.{name}"
        if source == "generate":
            out.append((name, "generate", ""))
            continue
        if not isinstance(source, dict) or len(source) != 1 or \
                next(iter(source)) not in ("env", "file", "command"):
            fail(where, source, "generate, {env: VAR}, {file: PATH} or {command: CMD}")
        kind, ref = next(iter(source.items()))
        if kind == "env":
            string(f"{where}.env", ref, _VAR_NAME, "an environment variable name")
        elif kind == "file":
            if not isinstance(ref, str) or not ref or "\0" in ref or "\n" in ref:
                fail(f"{where}.file", ref, "a path on the deploying machine")
        else:
            import shlex
            try:
                argv = shlex.split(ref) if isinstance(ref, str) and "\n" not in ref else []
            except ValueError:
                argv = []
            if not argv or len(ref) > 1000:
                fail(f"{where}.command", ref, "a command line (run without a shell, e.g. "
                                               "'pass show shop/stripe')")
        out.append((name, kind, ref))
    return tuple(out)


def _url_length(key, value):
    if isinstance(value, str) and len(value) > MAX_URL_PATH:
        fail(key, value[:40] + "...", f"a URL path of at most {MAX_URL_PATH} characters")


def url_prefix(key, value):
    allowed = "a URL path that starts and ends with '/', without '.' or '..' segments"
    _url_length(key, value)
    string(key, value, _URL_PREFIX, allowed)
    return _no_dot_segments(key, value, value, allowed)


def _url_path(key, value, pattern=_URL_PATH, allowed="a URL path starting with '/'"):
    _url_length(key, value)
    string(key, value, pattern, allowed)
    return _no_dot_segments(key, value, value.split("?")[0],
                            allowed + ", without '.' or '..' segments")


def _exclude(key, value):
    if value in (None, [], ()):
        return ()
    return list_of(key, value, _EXCLUDE, ".gitignore-style patterns (letters, digits, "
                                      "'.', '_', '-', '/', '*', '?', '[]', a leading '!')")


def ssh_endpoint(host):
    """(host, port) an SSH host string names: `root@web1:22` and `web1` are one machine."""
    m = SSH_HOST.match(host)
    return (m.group(2).lower(), int(m.group(3) or 22))


def ssh_host(key, value):
    allowed = "an SSH host ([user@]host[:port], port 1-65535)"
    string(key, value, SSH_HOST, allowed)
    if not 1 <= ssh_endpoint(value)[1] <= 65535:
        fail(key, value, allowed)
    return value


def _rel_path(key, value):
    allowed = "a relative path inside the project, without '..'"
    string(key, value, _REL_PATH, allowed)
    if any(part == ".." for part in value.split("/")):
        fail(key, value, allowed)
    return value.rstrip("/") or "."


# Names a shared path may not take: the release's own parts.
_RELEASE_OWN = ("venv", ".flask-ops", "collected_static", "flask-ops-run.py")


def is_release_path(path):
    """A relative path inside a release, of safe characters, no '.'/'..' parts, not one of
    the release's own parts."""
    return bool(isinstance(path, str) and _REL_PATH.match(path)
                and not any(part in (".", "..") for part in path.split("/"))
                and path.rstrip("/").split("/")[0] not in _RELEASE_OWN)


def _release_dir(key, value):
    if not isinstance(value, str) or not is_release_path(value.rstrip("/")):
        fail(key, value, "a directory of the release, relative (e.g. src): letters, digits, "
                          "'.', '_', '-', without '.' or '..' parts, not " + ", ".join(_RELEASE_OWN))
    return value.rstrip("/")


def _shared_paths(key, value):
    if value in (None, [], ()):
        return ()
    allowed = ("paths inside the release (e.g. logs, uploads, config/local.py): letters, "
               "digits, '.', '_', '-', without '.' or '..' parts, not " + ", ".join(_RELEASE_OWN))
    paths = list_of(key, value, _REL_PATH, allowed)
    out = []
    for path in paths:
        if not is_release_path(path):
            fail(key, path, allowed)
        out.append(path.rstrip("/"))
    return tuple(out)


MAX_SERVER_NAME = 240  # DNS allows 253; nginx's names hash is sized for this (stacks)
MAX_URL_PATH = 512  # a URL path in a description (health, stream, smoke, static prefixes)


def _server_name(key, value):
    string(key, value, _SERVER_NAME, "host names (letters, digits, '-', '.')")
    if len(value) > MAX_SERVER_NAME:
        fail(key, value[:40] + "...", f"a host name of at most {MAX_SERVER_NAME} characters")
    return value


def list_of(key, value, pattern, allowed, check=None):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        fail(key, value, f"a non-empty list of {allowed}")
    if check:
        return tuple(check(key, item) for item in value)
    return tuple(string(key, item, pattern, allowed) for item in value)


def smoke(key, value):
    allowed = "a list of {path, status, contains} mappings"
    if not isinstance(value, (list, tuple)):
        fail(key, value, allowed)
    checks = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"path", "status", "contains"}:
            fail(key, item, allowed)
        _url_path(f"{key}.path", item.get("path"), _URL_WITH_QUERY, "a URL path with an optional query")
        if "status" in item:
            _int(f"{key}.status", item["status"], 100, 599)
        contains = item.get("contains")
        if contains is not None and (not isinstance(contains, str) or len(contains) > 200):
            fail(f"{key}.contains", contains, "a string of at most 200 characters")
        checks.append(SmokePage(item["path"], item.get("status"), contains))
    if not checks:
        fail(key, value, "at least one page (the default is [{path: /}])")
    return tuple(checks)


def roles(key, value):
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"lb", "app"} or not value.get("app"):
        fail(key, value, "a mapping with 'app' (and optionally 'lb') lists of SSH hosts")
    roles = {role: list_of(f"{key}.{role}", hosts, SSH_HOST, "SSH hosts ([user@]host[:port])",
                           check=ssh_host)
             for role, hosts in value.items() if hosts}
    seen = {}
    for role in ("lb", "app"):
        for h in roles.get(role, ()):
            endpoint = ssh_endpoint(h)
            if endpoint in seen:
                fail(key, [seen[endpoint][1], h], "each host once, in one role: these name the "
                     f"same machine ({endpoint[0]}:{endpoint[1]})")
            seen[endpoint] = (role, h)
    return Roles(roles.get("lb", ()), roles["app"])

IP_LIKE = re.compile(r"[0-9.]+\Z")


def _networks(key, value):
    import ipaddress
    items = list_of(key, value, re.compile(r"[0-9a-fA-F.:/]+\Z"), "IP addresses or networks")
    out = []
    for item in items:
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            fail(key, item, "IP addresses or networks (10.0.0.5, 10.0.0.0/24)")
        if net.prefixlen == 0:
            fail(key, item, "the proxies' own addresses: a /0 network trusts every client")
        out.append(str(net) if net.num_addresses > 1 else str(net.network_address))
    return tuple(out)


VALIDATORS = {
    "app_name": lambda k, v: string(k, v, IDENT, "a lowercase identifier: [a-z][a-z0-9_]{0,30}"),
    "source": _rel_path,
    "python_path": lambda k, v: v if v == "." else _release_dir(k, v),
    "wsgi": _wsgi,
    "server_names": lambda k, v: list_of(k, v, _SERVER_NAME, "host names (letters, digits, '-', "
                                         f"'.'), at most {MAX_SERVER_NAME} characters",
                                         check=_server_name),
    "stack": lambda k, v: _choice(k, v, STACKS),
    "nginx": lambda k, v: _choice(k, v, NGINX_SHAPES),
    "init": lambda k, v: _choice(k, v, INITS),
    "processes": lambda k, v: _int(k, v, 1, 64),
    "threads": lambda k, v: _int(k, v, 1, 64),
    "user": lambda k, v: _account(k, v) if v is not None else None,
    "group": lambda k, v: _group(k, v) if v is not None else None,
    "base_dir": lambda k, v: _base_dir(k, v) if v is not None else None,
    "static_url": url_prefix,
    "streaming": lambda k, v: list_of(k, v, _URL_PATH, "URL paths starting with '/'",
                                      check=_url_path) if v else (),
    "websockets": lambda k, v: list_of(k, v, _URL_PATH, "URL paths starting with '/'",
                                       check=_url_path) if v else (),
    "requirements": lambda k, v: _rel_path(k, v) if v is not None else None,
    "listen_port": lambda k, v: _int(k, v, 1, 65535),
    # The inner tier listens on loopback: never a privileged or well-known port.
    "upstream_port": lambda k, v: _int(k, v, 1024, 65535),
    "keep_releases": lambda k, v: _int(k, v, 2, 100),
    "harakiri": lambda k, v: _int(k, v, 1, 86400),
    "drain_timeout": lambda k, v: _int(k, v, 1, 3600),
    "listen_queue": lambda k, v: _int(k, v, 16, 65535),
    "max_requests": lambda k, v: _int(k, v, 1, 10_000_000),
    "client_max_body_size": lambda k, v: string(k, v, _SIZE, "a size like '10m'"),
    "cache_ttl": lambda k, v: string(k, v, _DURATION, "a duration like '10m' (s, m, h, d)"),
    "session_cookie": lambda k, v: string(k, v, _COOKIE, "a cookie name: letters, digits, '_'"),
    "healthz": lambda k, v: _url_path(k, v) if v is not None else None,
    "python": _abs_path,
    "smoke": smoke,
    "roles": roles,
    "tls": tlsconf.parse,
    "trusted_proxies": lambda k, v: _networks(k, v) if v else (),
    "hosts": lambda k, v: list_of(k, v, SSH_HOST, "SSH hosts ([user@]host[:port])", check=ssh_host),
    "gateway": lambda k, v: ssh_host(k, v) if v else None,
    "secrets": _secrets,
    "env": _env,
    "exclude": _exclude,
    "shared_dirs": _shared_paths,
    "local_hooks": lambda k, v: localhooks.parse(k, v),
    "ref": lambda k, v: vcs.check_ref(k, v) if v is not None else None,
    "require_clean": lambda k, v: v if isinstance(v, bool) else fail(k, v, "true or false"),
    "shared_files": _shared_paths,
    "hooks": daytwo.parse_hooks,
    "workers": daytwo.parse_workers,
    "maintenance": daytwo.parse_maintenance,
    "error_pages": daytwo.parse_error_pages,
    "access_log": lambda k, v: _choice(k, v, ACCESS_LOG_FORMATS),
    "templates": lambda k, v: _rel_path(k, v) if v is not None else None,
    "smoke_stream": lambda k, v: _url_path(k, v, _URL_WITH_QUERY, "a URL path with an optional query")
    if v else "",
}


