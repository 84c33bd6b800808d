"""The app description: read once from Fabric's config, validated, then frozen.

Every value that reaches a config file passes a whitelist pattern here, so a
template never has to escape anything (a `;` or newline in a server name would
otherwise be config injection).
"""

import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Optional, Tuple

from ..errors import OpsError, SettingsError
from ..targets import daytwo, hostversions, inits, stacks
from . import configfile, localhooks, tlsconf, vcs, wsgispec
from .hostpaths import HostPaths

STACKS = stacks.NAMES
NGINX_SHAPES = ("default", "proxy", "cache")
ACCESS_LOG_FORMATS = ("main", "json")
INITS = tuple(inits.INITS)

_IDENT = re.compile(r"[a-z][a-z0-9_]{0,30}\Z")
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
_SSH_HOST = re.compile(r"(?:([a-z_][a-z0-9_-]*)@)?([A-Za-z0-9][A-Za-z0-9._-]*)(?::([0-9]{1,5}))?\Z")
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


@dataclass(frozen=True)
class Settings(HostPaths):
    """What to deploy and how; the single source of truth for every template."""

    # Required: what the app is and where it answers. Every other key has a default that
    # fits any Flask app (no health URL, no stream, smoke `/` for a non-error status).
    app_name: str
    source: str
    wsgi: str
    server_names: Tuple[str, ...]
    stack: str = "nginx-uwsgi"
    nginx: str = "default"
    init: str = "systemd"
    processes: int = 4
    # One thread per worker: uWSGI 2.0's graceful reload can leave a multi-threaded worker
    # hanging until drain_timeout, stalling requests mid-deploy (seen under load in tests).
    threads: int = 1
    user: Optional[str] = None  # default: app_name
    group: Optional[str] = None  # default: the user's name (a group of the app's own)
    base_dir: Optional[str] = None  # default: /srv/<app_name>
    static_url: str = "/static/"
    streaming: Tuple[str, ...] = ()  # URL prefixes whose responses stream (never buffered)
    # URL paths whose requests upgrade to a websocket (Flask-Sock): stack nginx-gunicorn only.
    websockets: Tuple[str, ...] = ()
    # The app's dependencies: a requirements file in source, or a pyproject.toml (PEP 621
    # [project] dependencies or Poetry's, pinned by uv.lock / poetry.lock beside it). None:
    # source/requirements.txt, else pyproject.toml in source or at the project root.
    requirements: Optional[str] = None
    # Where in the release Python imports the app from: "src" for a src/ layout shipped with
    # its project root (migrations, make_celery.py, alembic.ini beside it); "." the release.
    python_path: str = "."
    listen_port: int = 80
    upstream_port: int = 8001
    keep_releases: int = 5
    harakiri: int = 60
    drain_timeout: int = 15  # seconds a reload waits for in-flight requests before killing
    max_requests: int = 1000
    # The app socket's listen queue: connections waiting while every worker is busy or the
    # app server restarts. Provision checks net.core.somaxconn allows it.
    listen_queue: int = 1024
    client_max_body_size: str = "10m"
    cache_ttl: str = "10m"
    session_cookie: str = "session"
    healthz: Optional[str] = None  # a health URL: checked first, never cached
    python: str = "/usr/bin/python3"
    # Pages the smoke test fetches; without `status`, any status below 400 passes.
    smoke: Tuple[SmokePage, ...] = (SmokePage("/"),)
    smoke_stream: str = ""  # a URL under `streaming` that must arrive in pieces
    templates: Optional[str] = None  # a project directory whose templates override ours
    # The app's environment (ops.deploy.appenv): plain values from this file, and secrets whose values
    # come from the deploying machine (env var, file, command) or are generated on the host.
    env: Tuple[Tuple[str, str], ...] = ()  # (NAME, value)
    secrets: Tuple[Tuple[str, str, str], ...] = ()  # (NAME, kind, reference); see SECRET_KINDS
    roles: Optional[Roles] = None  # a fleet, rolled by `fab deploy`
    hosts: Tuple[str, ...] = ()  # app hosts without a load balancer: roles {app: hosts}
    # A jump host every SSH session goes through (OpenSSH's -J), unless ~/.ssh/config names
    # a ProxyJump or ProxyCommand for the host, which wins as it does for ssh.
    gateway: Optional[str] = None
    tls: Optional[tlsconf.Tls] = None  # HTTPS (ops.config.tlsconf); None: plain HTTP only
    # Proxies or TLS terminators in front of this host (addresses, networks) whose
    # X-Forwarded-Proto (and, on nginx, X-Real-IP) are believed; nobody else's are.
    trusted_proxies: Tuple[str, ...] = ()
    # Day two (ops.targets.daytwo): commands around the switch, background processes, the 503 page.
    hooks: daytwo.Hooks = daytwo.Hooks()
    workers: Tuple[daytwo.Worker, ...] = ()
    maintenance: daytwo.Maintenance = daytwo.Maintenance()
    # The front server's own 500/502/504 pages: (code, project file); ours for the others.
    error_pages: Tuple[Tuple[int, str], ...] = ()
    # The front server's access log: "main" (combined + timings and the request id) or "json".
    access_log: str = "main"
    exclude: Tuple[str, ...] = ()  # .gitignore-style patterns kept out of the release, besides ours
    # Paths inside the release the app writes (logs/, uploads/, a local config file): each is a
    # link to shared/linked/PATH on the host, made with the app's ownership, kept across
    # deploys and rollbacks, never shipped. Flask's instance folder is always one of them.
    # Commands on the deploying machine before and after a deploy, and when it fails.
    local_hooks: localhooks.LocalHooks = localhooks.LocalHooks()
    # A git branch, tag or commit to deploy (a stage can pin one); None: the working tree.
    ref: Optional[str] = None
    require_clean: bool = False  # refuse to deploy a working tree with uncommitted changes
    shared_dirs: Tuple[str, ...] = ()
    shared_files: Tuple[str, ...] = ()
    project_root: str = "."  # not a user key: where relative `source` is resolved
    # Not a user key: the URL prefixes where the app serves static files (its own and every
    # blueprint's), found by the build; None before a build (then: static_url alone).
    static_prefixes: Optional[Tuple[str, ...]] = None
    stage: Optional[str] = None  # not a user key: the stage chosen from `stages` (None: no stages)
    # Not a user key: what the target host's servers accept (ops.targets.hostversions), from the
    # versions it reported; Debian 12's by default.
    target: hostversions.Target = hostversions.Target()
    # Not a user key: Flask's instance folder relative to the release, found by the build
    # (app.instance_path); None before a build or when it lies outside the release.
    instance_dir: Optional[str] = None
    # Not a user key: worker units another app host runs, not this one (for_host).
    workers_elsewhere: Tuple[str, ...] = ()
    # Not a user key: what the app's answers depend on (its code and dependencies), in the
    # cache shape's cache key, so a deploy never serves the previous release's cached pages
    # (nginx has no purge); found by the build, "" before one.
    cache_generation: str = ""

    # ---- derived names and paths (one place, so templates and deploy agree) ----
    @property
    def app_user(self):
        return self.user or self.app_name

    @property
    def app_group(self):
        return self.group or self.app_user

    @property
    def web_group(self):
        """The front server's group (Debian and Ubuntu): it alone reaches the app's socket."""
        return "www-data"

    @property
    def shared_links(self):
        """(kind "dir" or "file", path in the release) of every shared path, the instance
        folder first when the build found it."""
        dirs = tuple(dict.fromkeys(((self.instance_dir,) if self.instance_dir else ())
                                   + self.shared_dirs))
        return tuple(("dir", d) for d in dirs) + tuple(("file", f) for f in self.shared_files)

    @property
    def app_server(self):
        """The program that runs the app's code: uwsgi, gunicorn or mod_wsgi (inside Apache)."""
        return stacks.app_server_of(self.stack).name

    @property
    def static_locations(self):
        """URL prefixes the front server serves from static_root (the tree mirrors URLs)."""
        return self.static_prefixes if self.static_prefixes is not None else (self.static_url,)

    @property
    def secret_sources(self):
        """Every secret with its source; SECRET_KEY is generated on the host unless declared."""
        declared = {name for name, _, _ in self.secrets} | {name for name, _ in self.env}
        implicit = () if "SECRET_KEY" in declared else (("SECRET_KEY", "generate", ""),)
        return implicit + self.secrets

    @property
    def generated_secrets(self):
        return tuple(name for name, kind, _ in self.secret_sources if kind == "generate")

    @property
    def wsgi_spec(self):
        return wsgispec.parse(self.wsgi)

    @property
    def source_dir(self):
        return Path(self.project_root, self.source).resolve()

    @property
    def requirements_file(self):
        if self.requirements:
            return self.source_dir / self.requirements
        root = Path(self.project_root).resolve()
        # setup.py last: its dependencies are known only to its build backend (ops.build.backendmeta)
        for path in (self.source_dir / "requirements.txt", self.source_dir / "pyproject.toml",
                     root / "pyproject.toml", self.source_dir / "setup.py"):
            if path.is_file():
                return path
        return self.source_dir / "requirements.txt"

    @property
    def templates_dir(self):
        return Path(self.project_root, self.templates).resolve() if self.templates else None

    @property
    def two_tier(self):
        return stacks.of(self).two_tier


NOT_USER_KEYS = ("project_root", "static_prefixes", "stage", "workers_elsewhere", "instance_dir",
                 "cache_generation",
                 "target")
USER_KEYS = tuple(f.name for f in fields(Settings) if f.name not in NOT_USER_KEYS) + ("stages",)
# Keys a stage may not set: they name the app itself, the same on every stage.
STAGE_FIXED = ("app_name", "source", "wsgi", "stages")
REQUIRED = {
    "app_name": "the app's name, e.g. 'shop' (its user, service and site are named after it)",
    "source": "the directory holding the app, relative to the project (e.g. '.' or 'src')",
    "wsgi": "the app as 'module:name' or an app factory 'module:create_app()', e.g. 'app:app'",
    "server_names": "the host names the site answers, e.g. [shop.example.com]",
}


def _fail(key, value, allowed):
    raise SettingsError(key, value, allowed)


def _string(key, value, pattern, allowed):
    if not isinstance(value, str) or not pattern.match(value):
        _fail(key, value, allowed)
    return value


def _choice(key, value, choices):
    if value not in choices:
        _fail(key, value, "one of " + ", ".join(choices))
    return value


def _int(key, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(key, value, f"an integer from {low} to {high}")
    return value


def _no_dot_segments(key, value, path, allowed):
    """`.` and `..` segments would let a path or URL point somewhere other than it says."""
    if any(part in (".", "..") for part in path.split("/")):
        _fail(key, value, allowed)
    return value


def _abs_path(key, value):
    allowed = "an absolute path of letters, digits, '.', '_', '-' without '.' or '..' parts"
    _string(key, value, _ABS_PATH, allowed)
    return _no_dot_segments(key, value, value, allowed).rstrip("/")


def _base_dir(key, value):
    value = _abs_path(key, value)
    inside = [t for t in SYSTEM_TREES + OTHER_SERVICES if value == t or value.startswith(t + "/")]
    home = value.startswith("/home/") and value.count("/") == 2  # a user's home itself
    if inside or home or value in SYSTEM_PARENTS:
        _fail(key, value, "a directory of the app's own, such as /srv/APP or /opt/APP "
                          "(not a system directory, another service's data or a user's home)")
    return value


def _account(key, value):
    _string(key, value, _UNIX_NAME, "a Unix user name")
    if value in RESERVED_USERS or value.startswith("systemd-"):
        _fail(key, value, "an unprivileged account of the app's own (not root, a system "
                          "account or the web server's)")
    return value


def _group(key, value):
    _string(key, value, _UNIX_NAME, "a Unix group name")
    if value in PRIVILEGED_GROUPS:
        _fail(key, value, "a group of the app's own (the default is the app user's name): "
                          f"{value} gives its members powers or files beyond the app's own")
    if value in RESERVED_USERS:
        _fail(key, value, "a group of the app's own (the default is the app user's name): "
                          "a shared group (www-data, ...) would let other apps on the host "
                          "read this one's data and socket; the web server reaches the socket "
                          "through its directory")
    return value


def _env_names(key, value):
    names = _list(key, value, _ENV_NAME, "environment variable names (letters, digits, _)")
    for name in names:
        if name in ALLOWED_PYTHON_ENV:
            continue
        if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES):
            _fail(key, name, "a name the app reads, not one that changes how its process runs "
                             "(" + ", ".join(p + "*" for p in RESERVED_ENV_PREFIXES) + ", PATH, "
                             "HOME, ... are reserved)")
    return names


def _wsgi(key, value):
    try:
        wsgispec.parse(value)
    except ValueError as exc:
        _fail(key, value, "the app's own 'module:name' (e.g. 'app:app') or app factory "
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
        _fail(key, value, "a mapping of NAME: value")
    pairs = []
    for name, item in value.items():
        _env_names(key, [name])
        if _SECRET_NAME.search(name):
            _fail(f"{key}.{name}", "********", "a secret's value does not belong in a file in "
                  "the repository: declare it under secrets: with env, file or command")
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, (int, float)):
            item = str(item)
        if not isinstance(item, str):
            _fail(f"{key}.{name}", item, "a string, number or true/false")
        problem = env_value_problem(item)
        if problem:
            _fail(f"{key}.{name}", item[:40] + "...", problem)
        pairs.append((name, item))
    return tuple(sorted(pairs))


def _secrets(key, value):
    """`secrets:` as a list of names (generated on the host) or a mapping NAME: source."""
    if value in (None, [], {}, ()):
        return ()
    if isinstance(value, (list, tuple, str)):
        return tuple((name, "generate", "") for name in _env_names(key, value))
    if not isinstance(value, dict):
        _fail(key, value, "a list of names to generate, or a mapping NAME: generate | "
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
            _fail(where, source, "generate, {env: VAR}, {file: PATH} or {command: CMD}")
        kind, ref = next(iter(source.items()))
        if kind == "env":
            _string(f"{where}.env", ref, _VAR_NAME, "an environment variable name")
        elif kind == "file":
            if not isinstance(ref, str) or not ref or "\0" in ref or "\n" in ref:
                _fail(f"{where}.file", ref, "a path on the deploying machine")
        else:
            import shlex
            try:
                argv = shlex.split(ref) if isinstance(ref, str) and "\n" not in ref else []
            except ValueError:
                argv = []
            if not argv or len(ref) > 1000:
                _fail(f"{where}.command", ref, "a command line (run without a shell, e.g. "
                                               "'pass show shop/stripe')")
        out.append((name, kind, ref))
    return tuple(out)


def _url_length(key, value):
    if isinstance(value, str) and len(value) > MAX_URL_PATH:
        _fail(key, value[:40] + "...", f"a URL path of at most {MAX_URL_PATH} characters")


def _url_prefix(key, value):
    allowed = "a URL path that starts and ends with '/', without '.' or '..' segments"
    _url_length(key, value)
    _string(key, value, _URL_PREFIX, allowed)
    return _no_dot_segments(key, value, value, allowed)


def _url_path(key, value, pattern=_URL_PATH, allowed="a URL path starting with '/'"):
    _url_length(key, value)
    _string(key, value, pattern, allowed)
    return _no_dot_segments(key, value, value.split("?")[0],
                            allowed + ", without '.' or '..' segments")


def _exclude(key, value):
    if value in (None, [], ()):
        return ()
    return _list(key, value, _EXCLUDE, ".gitignore-style patterns (letters, digits, "
                                      "'.', '_', '-', '/', '*', '?', '[]', a leading '!')")


def ssh_endpoint(host):
    """(host, port) an SSH host string names: `root@web1:22` and `web1` are one machine."""
    m = _SSH_HOST.match(host)
    return (m.group(2).lower(), int(m.group(3) or 22))


def _ssh_host(key, value):
    allowed = "an SSH host ([user@]host[:port], port 1-65535)"
    _string(key, value, _SSH_HOST, allowed)
    if not 1 <= ssh_endpoint(value)[1] <= 65535:
        _fail(key, value, allowed)
    return value


def _rel_path(key, value):
    allowed = "a relative path inside the project, without '..'"
    _string(key, value, _REL_PATH, allowed)
    if any(part == ".." for part in value.split("/")):
        _fail(key, value, allowed)
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
        _fail(key, value, "a directory of the release, relative (e.g. src): letters, digits, "
                          "'.', '_', '-', without '.' or '..' parts, not " + ", ".join(_RELEASE_OWN))
    return value.rstrip("/")


def _shared_paths(key, value):
    if value in (None, [], ()):
        return ()
    allowed = ("paths inside the release (e.g. logs, uploads, config/local.py): letters, "
               "digits, '.', '_', '-', without '.' or '..' parts, not " + ", ".join(_RELEASE_OWN))
    paths = _list(key, value, _REL_PATH, allowed)
    out = []
    for path in paths:
        if not is_release_path(path):
            _fail(key, path, allowed)
        out.append(path.rstrip("/"))
    return tuple(out)


MAX_SERVER_NAME = 240  # DNS allows 253; nginx's names hash is sized for this (stacks)
MAX_URL_PATH = 512  # a URL path in a description (health, stream, smoke, static prefixes)


def _server_name(key, value):
    _string(key, value, _SERVER_NAME, "host names (letters, digits, '-', '.')")
    if len(value) > MAX_SERVER_NAME:
        _fail(key, value[:40] + "...", f"a host name of at most {MAX_SERVER_NAME} characters")
    return value


def _list(key, value, pattern, allowed, check=None):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        _fail(key, value, f"a non-empty list of {allowed}")
    if check:
        return tuple(check(key, item) for item in value)
    return tuple(_string(key, item, pattern, allowed) for item in value)


def _smoke(key, value):
    allowed = "a list of {path, status, contains} mappings"
    if not isinstance(value, (list, tuple)):
        _fail(key, value, allowed)
    checks = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"path", "status", "contains"}:
            _fail(key, item, allowed)
        _url_path(f"{key}.path", item.get("path"), _URL_WITH_QUERY, "a URL path with an optional query")
        if "status" in item:
            _int(f"{key}.status", item["status"], 100, 599)
        contains = item.get("contains")
        if contains is not None and (not isinstance(contains, str) or len(contains) > 200):
            _fail(f"{key}.contains", contains, "a string of at most 200 characters")
        checks.append(SmokePage(item["path"], item.get("status"), contains))
    if not checks:
        _fail(key, value, "at least one page (the default is [{path: /}])")
    return tuple(checks)


def _roles(key, value):
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"lb", "app"} or not value.get("app"):
        _fail(key, value, "a mapping with 'app' (and optionally 'lb') lists of SSH hosts")
    roles = {role: _list(f"{key}.{role}", hosts, _SSH_HOST, "SSH hosts ([user@]host[:port])",
                         check=_ssh_host)
             for role, hosts in value.items() if hosts}
    seen = {}
    for role in ("lb", "app"):
        for h in roles.get(role, ()):
            endpoint = ssh_endpoint(h)
            if endpoint in seen:
                _fail(key, [seen[endpoint][1], h], "each host once, in one role: these name the "
                      f"same machine ({endpoint[0]}:{endpoint[1]})")
            seen[endpoint] = (role, h)
    return Roles(roles.get("lb", ()), roles["app"])


_VALIDATORS = {
    "app_name": lambda k, v: _string(k, v, _IDENT, "a lowercase identifier: [a-z][a-z0-9_]{0,30}"),
    "source": _rel_path,
    "python_path": lambda k, v: v if v == "." else _release_dir(k, v),
    "wsgi": _wsgi,
    "server_names": lambda k, v: _list(k, v, _SERVER_NAME, "host names (letters, digits, '-', "
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
    "static_url": _url_prefix,
    "streaming": lambda k, v: _list(k, v, _URL_PATH, "URL paths starting with '/'",
                                    check=_url_path) if v else (),
    "websockets": lambda k, v: _list(k, v, _URL_PATH, "URL paths starting with '/'",
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
    "client_max_body_size": lambda k, v: _string(k, v, _SIZE, "a size like '10m'"),
    "cache_ttl": lambda k, v: _string(k, v, _DURATION, "a duration like '10m' (s, m, h, d)"),
    "session_cookie": lambda k, v: _string(k, v, _COOKIE, "a cookie name: letters, digits, '_'"),
    "healthz": lambda k, v: _url_path(k, v) if v is not None else None,
    "python": _abs_path,
    "smoke": _smoke,
    "roles": _roles,
    "tls": tlsconf.parse,
    "trusted_proxies": lambda k, v: _networks(k, v) if v else (),
    "hosts": lambda k, v: _list(k, v, _SSH_HOST, "SSH hosts ([user@]host[:port])", check=_ssh_host),
    "gateway": lambda k, v: _ssh_host(k, v) if v else None,
    "secrets": _secrets,
    "env": _env,
    "exclude": _exclude,
    "shared_dirs": _shared_paths,
    "local_hooks": lambda k, v: localhooks.parse(k, v),
    "ref": lambda k, v: vcs.check_ref(k, v) if v is not None else None,
    "require_clean": lambda k, v: v if isinstance(v, bool) else _fail(k, v, "true or false"),
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


def load(raw=None, project_root=".", check_files=True, stage=None):
    """Validate a raw `deploy:` mapping into Settings; raise SettingsError on the first bad key.
    stage: one of its `stages`, laid over the shared keys (required when it has stages)."""
    if raw is not None and not isinstance(raw, dict):
        raise SettingsError("", raw, "a mapping of keys under 'deploy:'")
    raw = dict(raw or {})
    unknown = sorted((k for k in raw if k not in USER_KEYS), key=str)
    if unknown:
        _fail(unknown[0], raw[unknown[0]], "one of the documented keys: " + ", ".join(USER_KEYS))
    raw, stage = with_stage(raw, stage)
    for key, allowed in REQUIRED.items():
        if raw.get(key) is None:
            raise SettingsError.missing(key, allowed)
    values = {key: _VALIDATORS[key](key, value) for key, value in raw.items()}
    if values.get("hosts"):
        if values.get("roles"):
            _fail("hosts", raw["hosts"], "either hosts (app hosts, no load balancer) or roles, "
                  "not both")
        values["roles"] = Roles((), values["hosts"])
        _roles("hosts", {"app": list(values["hosts"])})  # each machine once
    settings = Settings(project_root=str(project_root), stage=stage, **values)
    if settings.user is None and settings.app_name in RESERVED_USERS:
        _fail("app_name", settings.app_name, "a name that is not a system account (it is also "
              "the app's user unless 'user' is set)")
    if settings.listen_port in (22, 443):
        _fail("listen_port", settings.listen_port, "a port other than 22 (sshd) and 443 (HTTPS: "
              "see tls)")
    if settings.listen_port == settings.upstream_port and settings.two_tier:
        _fail("upstream_port", settings.upstream_port, "a port other than listen_port")
    if settings.tls:
        _check_tls(settings)
    if settings.access_log == "json" and stacks.of(settings).front != "nginx":
        _fail("access_log", "json", "main on Apache: its log escaping (\\xhh) is not JSON; "
              "json needs an nginx stack")
    if settings.static_url == "/":
        _fail("static_url", settings.static_url, "a sub-path such as '/static/'")
    _check_app_server(settings)
    _check_conflicts(settings)
    _check_workers(settings)
    if check_files:
        _check_files(settings)
    return settings


def _check_app_server(s):
    """What only one app server can do, refused elsewhere with the reason."""
    app = stacks.app_server_of(s.stack)
    if s.websockets and not app.websockets:
        able = [name for name in stacks.NAMES if stacks.app_server_of(name).websockets]
        _fail("websockets", list(s.websockets), f"no websockets on stack {s.stack}: "
              f"{app.no_websockets}; set stack: {' or '.join(able)}")
    if s.init not in app.inits:
        _fail("init", s.init, f"{' or '.join(app.inits)} with stack {s.stack} ({app.why_inits})")
    overlap = set(s.websockets) & set(s.streaming)
    if overlap:
        _fail("websockets", sorted(overlap)[0], "paths that are not also under `streaming`")


def with_stage(raw, stage):
    """(the keys of `stage` laid over the shared ones, the stage's name).

    A stage replaces a shared key, except `env` and `secrets`, whose names it adds to or
    overrides one by one. Its keys are validated under their own names
    (stages.production.server_names), so an error points at the line to fix.
    """
    stages = raw.pop("stages", None)
    if stages in (None, {}):
        if stage:
            raise OpsError(f"stage {stage!r}: the app description has no stages (deploy.stages)")
        return raw, None
    if not isinstance(stages, dict):
        _fail("stages", stages, "a mapping of stage names to the keys that differ, e.g. "
              "{staging: {hosts: [...]}, production: {hosts: [...]}}")
    for name, keys in stages.items():
        _string("stages", name, _IDENT, "stage names: lowercase identifiers")
        if not isinstance(keys, dict):
            _fail(f"stages.{name}", keys, "a mapping of the keys that differ on this stage")
        for key in keys:
            if key not in USER_KEYS or key in STAGE_FIXED:
                _fail(f"stages.{name}.{key}", keys[key], "a key a stage may set: any documented "
                      "key except " + ", ".join(STAGE_FIXED))
    names = ", ".join(stages)
    if not stage:
        raise OpsError(f"deploy.stages defines {names}: choose one, e.g. `fab stage "
                       f"{next(iter(stages))} deploy` (or FLASK_OPS_STAGE={next(iter(stages))})")
    if stage not in stages:
        raise OpsError(f"stage {stage!r} does not exist: deploy.stages defines {names}")
    merged = dict(raw)
    for key, value in stages[stage].items():
        where = f"stages.{stage}.{key}"
        if value is not None:
            _VALIDATORS[key](where, value)
        if key in ("env", "secrets") and isinstance(value, dict) and isinstance(raw.get(key), dict):
            merged[key] = {**raw[key], **value}
        else:
            merged[key] = value
    return merged, stage


_IP_LIKE = re.compile(r"[0-9.]+\Z")


def _networks(key, value):
    import ipaddress
    items = _list(key, value, re.compile(r"[0-9a-fA-F.:/]+\Z"), "IP addresses or networks")
    out = []
    for item in items:
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            _fail(key, item, "IP addresses or networks (10.0.0.5, 10.0.0.0/24)")
        if net.prefixlen == 0:
            _fail(key, item, "the proxies' own addresses: a /0 network trusts every client")
        out.append(str(net) if net.num_addresses > 1 else str(net.network_address))
    return tuple(out)


def _check_tls(s):
    tls = s.tls
    if tls.ocsp_stapling and stacks.of(s).front_server.ocsp_needs_resolvers and not tls.resolvers:
        _fail("tls.resolvers", None, "the DNS servers nginx asks for the CA's OCSP host when "
              "ocsp_stapling is on (e.g. [127.0.0.53] with systemd-resolved)")
    for name in s.server_names:
        if _IP_LIKE.match(name) or "." not in name or name.endswith((".localhost", ".local")):
            _fail("server_names", name, "DNS names under a public suffix when tls is on: a "
                  "certificate names domains, not addresses or localhost")
        if tls.acme and name.startswith("*."):
            _fail("server_names", name, "names without '*' with tls.acme: HTTP-01 cannot "
                  "prove a wildcard (use tls.certificate)")


def url_under(path, prefix):
    """A URL path (query dropped) is `prefix` or below it, as a front server matches it."""
    path = path.split("?")[0]
    return path == prefix.rstrip("/") or path.startswith(prefix.rstrip("/") + "/")


def _static_conflict(s, prefix):
    """(key, value) of the health URL or streaming path that a static prefix would shadow:
    the front server answers there from files, never the app."""
    if s.healthz and url_under(s.healthz, prefix):
        return "healthz", s.healthz
    for path in s.streaming:
        if url_under(path, prefix) or url_under(prefix, path):
            return "streaming", path
    return None


def for_host(s, host):
    """The settings as app host `host` applies them: only the workers it runs (workers.NAME.hosts)."""
    here = ssh_endpoint(host) if _SSH_HOST.match(host) else (host, 22)
    mine = tuple(w for w in s.workers if not w.hosts or here in {ssh_endpoint(h) for h in w.hosts})
    if len(mine) == len(s.workers):
        return s
    return replace(s, workers=mine, workers_elsewhere=tuple(
        s.worker_unit(w) for w in s.workers if w not in mine))


def with_recorded_smoke(s, manifest):
    """The settings with the smoke checks a release recorded when it went live, for a
    rollback to it: its pages say what its code serves (a deploy that changed a `contains`
    must still be able to go back). The settings' own checks when it recorded none; a
    manifest is the host's, so it is read like input and ignored when it does not pass."""
    if not isinstance(manifest, dict) or "smoke" not in manifest:
        return s
    try:
        smoke = _smoke("smoke", manifest["smoke"])
        stream = manifest.get("smoke_stream") or ""
        if stream:
            _VALIDATORS["smoke_stream"]("smoke_stream", stream)
    except SettingsError:
        return s
    return replace(s, smoke=smoke, smoke_stream=stream)


def _check_workers(s):
    apps = {ssh_endpoint(h) for h in (s.roles.app if s.roles else ())}
    for w in s.workers:
        for h in w.hosts:
            _ssh_host(f"workers.{w.name}.hosts", h)
            if ssh_endpoint(h) not in apps:
                _fail(f"workers.{w.name}.hosts", h, "one of the app hosts (roles.app or hosts)")


def _check_conflicts(s):
    """Keys that are each valid but cannot work together; the error names both."""
    shared = [("shared_dirs", p) for p in s.shared_dirs] + [("shared_files", p) for p in s.shared_files]
    for i, (key, path) in enumerate(shared):
        for other_key, other in shared[i + 1:]:
            if path == other or other.startswith(path + "/") or path.startswith(other + "/"):
                _fail(other_key, other, f"a path apart from {key} {path}: one shared path "
                      "cannot hold another")
    both = sorted({n for n, _ in s.env} & {n for n, _, _ in s.secrets})
    if both:
        _fail(f"env.{both[0]}", "(also under secrets)", f"one place for a name: secrets."
              f"{both[0]} gives it too")
    conflict = _static_conflict(s, s.static_url)
    if conflict:
        _fail(*conflict, f"a URL outside static_url ({s.static_url}): the front server "
                         "answers there from files, never the app")
    for i, item in enumerate(s.smoke):
        if s.healthz and stacks.of(s).caches and item.path.split("?")[0] == s.healthz:
            _fail("healthz", s.healthz, f"a URL other than smoke[{i}].path: with nginx: cache "
                  "the health URL is never cached, so that page would never be cached either")
    stream = s.smoke_stream
    if stream and stacks.of(s).streams_only_listed and \
            not any(url_under(stream, path) for path in s.streaming):
        _fail("smoke_stream", stream, "a URL under one of the `streaming` paths "
              f"({', '.join(s.streaming) or 'none set'}): nginx buffers every other response")


def check_static_prefix(s, prefix):
    """A static URL prefix the app declared (found by the build), checked like a setting."""
    key = "static prefix"
    _url_prefix(key, prefix)
    if prefix == "/":
        _fail(key, prefix, "a sub-path: '/' would serve every URL from files")
    conflict = _static_conflict(s, prefix)
    if conflict:
        _fail(key, prefix, "a URL outside {} ({})".format(*conflict))
    return prefix


def _inside(path, root):
    """path resolved (symlinks followed) lies in root; a symlink loop is not inside anything."""
    try:
        resolved = path.resolve(strict=False)
    except (OSError, RuntimeError):
        return False
    return resolved == root or root in resolved.parents


def _check_files(settings):
    root = Path(settings.project_root).resolve()
    if not _inside(settings.source_dir, root) or not settings.source_dir.is_dir():
        _fail("source", settings.source, f"an existing directory inside the project ({root})")
    imports = settings.source_dir / settings.python_path
    if not (_inside(imports, settings.source_dir) and imports.is_dir()):
        _fail("python_path", settings.python_path,
              f"an existing directory inside source ({settings.source_dir})")
    if settings.templates and not (_inside(settings.templates_dir, root)
                                   and settings.templates_dir.is_dir()):
        _fail("templates", settings.templates, f"an existing directory inside the project ({root})")
    for name, kind, ref in settings.secrets:
        if kind == "file" and _inside(Path(root, Path(ref).expanduser()), root):
            _fail(f"secrets.{name}.file", ref, f"a file outside the project ({root}): a secret "
                  "never comes from the repository")
    if settings.tls and settings.tls.key and _inside(Path(root, Path(settings.tls.key).expanduser()), root):
        _fail("tls.certificate.key", settings.tls.key, f"a file outside the project ({root}): a "
              "private key never comes from the repository")
    pages = [("maintenance.page", settings.maintenance.page)] + [
        (f"error_pages.{code}", page) for code, page in settings.error_pages]
    for key, page in pages:
        if page and not (_inside(Path(root, page), root) and Path(root, page).is_file()):
            _fail(key, page, f"an existing HTML file inside the project ({root})")
    req = settings.requirements_file
    root = Path(settings.project_root).resolve()
    inside = _inside(req, settings.source_dir) or (req.name == "pyproject.toml"
                                                    and req.parent == root and _inside(req, root))
    if not inside or not req.is_file():
        if settings.requirements:
            _fail("requirements", settings.requirements,
                  f"a file inside source (looked for {req})")
        _fail("requirements", None, "the app's dependencies: requirements.txt in source "
              f"({settings.source_dir}), or a pyproject.toml in source or at the project root")


def from_config(config, stage=None):
    """Settings from a Fabric/Invoke config: its `deploy` section, relative to the fabfile's dir.

    A `-f FILE` that does not exist, or no `deploy:` section at all, is an error: deploying
    defaults to whatever host was named is never what the user meant.
    """
    project_dir, project_file, runtime = configfile.locations(config)
    if runtime and not Path(runtime).is_file():
        raise OpsError(f"{runtime}: no such config file (given with -f)")
    section = config.get("deploy", None)
    if section is None or (hasattr(section, "keys") and not list(section.keys())):
        where = [p for p in (project_file, runtime) if p]
        raise OpsError("no 'deploy:' section with the app's description in "
                       + (" or ".join(map(str, where)) if where else
                          "fabric.yaml (none found next to the fabfile)"))
    if not hasattr(section, "keys"):
        raise SettingsError("", _plain(section), "a mapping of keys under 'deploy:'")
    raw = {key: _plain(section[key]) for key in section.keys()}
    root = project_dir or "."
    return load(raw, project_root=root, stage=stage or chosen_stage(config))


STAGE_ENV = "FLASK_OPS_STAGE"


def chosen_stage(config):
    """The stage named by `fab stage NAME ...` (kept in the session's config), else by
    $FLASK_OPS_STAGE; None when neither names one."""
    return config.get("flask_ops_stage", None) or os.environ.get(STAGE_ENV) or None


def _plain(value):
    """Invoke's DataProxy wraps nested mappings; hand validators plain Python values."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "keys") and not isinstance(value, dict):
        return {k: _plain(value[k]) for k in value.keys()}
    return value
