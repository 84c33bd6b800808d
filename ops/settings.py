"""The app description: read once from Fabric's config, validated, then frozen.

Every value that reaches a config file passes a whitelist pattern here, so a
template never has to escape anything (a `;` or newline in a server name would
otherwise be config injection).
"""

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional, Tuple

from .errors import SettingsError

STACKS = ("nginx-uwsgi", "apache-modwsgi")
NGINX_SHAPES = ("default", "proxy", "cache")
INITS = ("systemd", "upstart")

_IDENT = re.compile(r"[a-z][a-z0-9_]{0,30}\Z")
_UNIX_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}\Z")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SERVER_NAME = re.compile(rf"(?:\*\.)?{_HOST_LABEL}(?:\.{_HOST_LABEL})*\Z")
_WSGI = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*\Z")
_ABS_PATH = re.compile(r"(?:/[A-Za-z0-9._-]+)+\Z")
_REL_PATH = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*/?\Z")
_URL_PREFIX = re.compile(r"/(?:[A-Za-z0-9._~-]+/)*\Z")
_URL_PATH = re.compile(r"/[A-Za-z0-9._~/-]*\Z")
_SIZE = re.compile(r"[0-9]{1,6}[kKmMgG]?\Z")
_DURATION = re.compile(r"[0-9]{1,6}[smhd]\Z")
_COOKIE = re.compile(r"[A-Za-z0-9_]{1,64}\Z")
_SSH_HOST = re.compile(r"(?:[a-z_][a-z0-9_-]*@)?[A-Za-z0-9][A-Za-z0-9._-]*(?::[0-9]{1,5})?\Z")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}\Z")
_URL_WITH_QUERY = re.compile(r"/[A-Za-z0-9._~/%-]*(?:\?[A-Za-z0-9._~%&=+-]*)?\Z")


@dataclass(frozen=True)
class Settings:
    """What to deploy and how; the single source of truth for every template."""

    app_name: str = "sample"
    source: str = "sample_app"
    wsgi: str = "app:app"
    server_names: Tuple[str, ...] = ("sample.test", "localhost")
    stack: str = "nginx-uwsgi"
    nginx: str = "default"
    init: str = "systemd"
    processes: int = 4
    # One thread per worker: uWSGI 2.0's graceful reload can leave a multi-threaded worker
    # hanging until drain_timeout, stalling requests mid-deploy (seen under load in tests).
    threads: int = 1
    user: Optional[str] = None  # default: app_name
    group: str = "www-data"
    base_dir: Optional[str] = None  # default: /srv/<app_name>
    static_url: str = "/static/"
    streaming: Tuple[str, ...] = ("/time",)
    requirements: str = "requirements.txt"
    listen_port: int = 80
    upstream_port: int = 8001
    keep_releases: int = 5
    harakiri: int = 60
    drain_timeout: int = 15  # seconds a reload waits for in-flight requests before killing
    max_requests: int = 1000
    client_max_body_size: str = "10m"
    cache_ttl: str = "10m"
    session_cookie: str = "session"
    healthz: str = "/healthz"
    python: str = "/usr/bin/python3"
    smoke: Tuple[dict, ...] = (
        {"path": "/", "status": 200, "contains": "Hello from the sample app"},
        {"path": "/api/sum?n=2&n=40", "status": 200, "contains": '"sum":42'},
    )
    smoke_stream: str = "/time?count=4&delay=0.5"
    templates: Optional[str] = None  # a project directory whose templates override ours
    secrets: Tuple[str, ...] = ()  # env names generated on the host besides SECRET_KEY
    roles: Optional[dict] = None  # {"lb": [hosts], "app": [hosts]}: a fleet, rolled by `fab deploy`
    project_root: str = "."  # not a user key: where relative `source` is resolved

    # ---- derived names and paths (one place, so templates and deploy agree) ----
    @property
    def base(self):
        return self.base_dir or f"/srv/{self.app_name}"

    @property
    def app_user(self):
        return self.user or self.app_name

    @property
    def current(self):
        return f"{self.base}/current"

    @property
    def releases(self):
        return f"{self.base}/releases"

    @property
    def shared(self):
        return f"{self.base}/shared"

    @property
    def socket(self):
        # upstart has no RuntimeDirectory= and its setuid applies to pre-start too, so the
        # socket lives in a directory that provisioning creates once.
        if self.init == "upstart":
            return f"{self.shared}/run/uwsgi.sock"
        return f"/run/{self.app_name}/uwsgi.sock"

    @property
    def service(self):
        return f"{self.app_name}-uwsgi"

    @property
    def uwsgi_ini(self):
        return f"/etc/flask-ops/{self.app_name}/uwsgi.ini"

    @property
    def static_root(self):
        """Where `flask collect` output lives in a release; the front server serves it."""
        return f"{self.current}/collected_static"

    @property
    def wsgi_file(self):
        return f"{self.current}/{self.app_name}.wsgi"

    @property
    def cache_dir(self):
        return f"/var/cache/nginx/{self.app_name}"

    @property
    def source_dir(self):
        return Path(self.project_root, self.source).resolve()

    @property
    def requirements_file(self):
        return self.source_dir / self.requirements

    @property
    def templates_dir(self):
        return Path(self.project_root, self.templates).resolve() if self.templates else None

    @property
    def two_tier(self):
        return self.stack == "nginx-uwsgi" and self.nginx in ("proxy", "cache")


USER_KEYS = tuple(f.name for f in fields(Settings) if f.name != "project_root")


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


def _abs_path(key, value):
    allowed = "an absolute path of letters, digits, '.', '_', '-' without '.' or '..' parts"
    _string(key, value, _ABS_PATH, allowed)
    if any(part in (".", "..") for part in value.split("/")):
        _fail(key, value, allowed)
    return value.rstrip("/")


def _rel_path(key, value):
    allowed = "a relative path inside the project, without '..'"
    _string(key, value, _REL_PATH, allowed)
    if any(part == ".." for part in value.split("/")):
        _fail(key, value, allowed)
    return value.rstrip("/") or "."


def _list(key, value, pattern, allowed):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        _fail(key, value, f"a non-empty list of {allowed}")
    return tuple(_string(key, item, pattern, allowed) for item in value)


def _smoke(key, value):
    allowed = "a list of {path, status, contains} mappings"
    if not isinstance(value, (list, tuple)):
        _fail(key, value, allowed)
    checks = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"path", "status", "contains"}:
            _fail(key, item, allowed)
        _string(f"{key}.path", item.get("path"), _URL_WITH_QUERY, "a URL path with an optional query")
        _int(f"{key}.status", item.get("status", 200), 100, 599)
        contains = item.get("contains")
        if contains is not None and (not isinstance(contains, str) or len(contains) > 200):
            _fail(f"{key}.contains", contains, "a string of at most 200 characters")
        checks.append({"status": 200, **item})
    return tuple(checks)


def _roles(key, value):
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"lb", "app"} or not value.get("app"):
        _fail(key, value, "a mapping with 'app' (and optionally 'lb') lists of SSH hosts")
    roles = {role: _list(f"{key}.{role}", hosts, _SSH_HOST, "SSH hosts ([user@]host[:port])")
             for role, hosts in value.items() if hosts}
    overlap = set(roles.get("lb", ())) & set(roles["app"])
    if overlap:
        _fail(key, sorted(overlap), "each host in one role: a load balancer is not an app host")
    return {"lb": roles.get("lb", ()), "app": roles["app"]}


_VALIDATORS = {
    "app_name": lambda k, v: _string(k, v, _IDENT, "a lowercase identifier: [a-z][a-z0-9_]{0,30}"),
    "source": _rel_path,
    "wsgi": lambda k, v: _string(k, v, _WSGI, "'module:callable', e.g. 'app:app'"),
    "server_names": lambda k, v: _list(k, v, _SERVER_NAME, "host names (letters, digits, '-', '.')"),
    "stack": lambda k, v: _choice(k, v, STACKS),
    "nginx": lambda k, v: _choice(k, v, NGINX_SHAPES),
    "init": lambda k, v: _choice(k, v, INITS),
    "processes": lambda k, v: _int(k, v, 1, 64),
    "threads": lambda k, v: _int(k, v, 1, 64),
    "user": lambda k, v: _string(k, v, _UNIX_NAME, "a Unix user name") if v is not None else None,
    "group": lambda k, v: _string(k, v, _UNIX_NAME, "a Unix group name"),
    "base_dir": lambda k, v: _abs_path(k, v) if v is not None else None,
    "static_url": lambda k, v: _string(k, v, _URL_PREFIX, "a URL path that starts and ends with '/'"),
    "streaming": lambda k, v: _list(k, v, _URL_PATH, "URL paths starting with '/'") if v else (),
    "requirements": _rel_path,
    "listen_port": lambda k, v: _int(k, v, 1, 65535),
    "upstream_port": lambda k, v: _int(k, v, 1, 65535),
    "keep_releases": lambda k, v: _int(k, v, 2, 100),
    "harakiri": lambda k, v: _int(k, v, 1, 86400),
    "drain_timeout": lambda k, v: _int(k, v, 1, 3600),
    "max_requests": lambda k, v: _int(k, v, 1, 10_000_000),
    "client_max_body_size": lambda k, v: _string(k, v, _SIZE, "a size like '10m'"),
    "cache_ttl": lambda k, v: _string(k, v, _DURATION, "a duration like '10m' (s, m, h, d)"),
    "session_cookie": lambda k, v: _string(k, v, _COOKIE, "a cookie name: letters, digits, '_'"),
    "healthz": lambda k, v: _string(k, v, _URL_PATH, "a URL path starting with '/'"),
    "python": _abs_path,
    "smoke": _smoke,
    "roles": _roles,
    "secrets": lambda k, v: _list(k, v, _ENV_NAME, "environment variable names (A-Z, 0-9, _)")
    if v else (),
    "templates": lambda k, v: _rel_path(k, v) if v is not None else None,
    "smoke_stream": lambda k, v: _string(k, v, _URL_WITH_QUERY, "a URL path with an optional query")
    if v else "",
}


def load(raw=None, project_root=".", check_files=True):
    """Validate a raw `deploy:` mapping into Settings; raise SettingsError on the first bad key."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(USER_KEYS))
    if unknown:
        _fail(unknown[0], raw[unknown[0]], "one of the documented keys: " + ", ".join(USER_KEYS))
    values = {key: _VALIDATORS[key](key, value) for key, value in raw.items()}
    settings = Settings(project_root=str(project_root), **values)
    if settings.listen_port == settings.upstream_port and settings.two_tier:
        _fail("upstream_port", settings.upstream_port, "a port other than listen_port")
    if settings.static_url == "/":
        _fail("static_url", settings.static_url, "a sub-path such as '/static/'")
    if check_files:
        if not settings.source_dir.is_dir():
            _fail("source", settings.source, f"an existing directory (looked in {settings.source_dir})")
        if settings.templates and not settings.templates_dir.is_dir():
            _fail("templates", settings.templates, f"an existing directory (looked in {settings.templates_dir})")
        if not settings.requirements_file.is_file():
            _fail("requirements", settings.requirements,
                  f"a file inside source (looked for {settings.requirements_file})")
    return settings


def from_config(config):
    """Settings from a Fabric/Invoke config: its `deploy` section, relative to the fabfile's dir."""
    section = config.get("deploy", None) or {}
    raw = {key: _plain(value) for key, value in dict(section).items()}
    root = getattr(config, "_project_prefix", None) or "."
    return load(raw, project_root=root)


def _plain(value):
    """Invoke's DataProxy wraps nested mappings; hand validators plain Python values."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "keys") and not isinstance(value, dict):
        return {k: _plain(value[k]) for k in value.keys()}
    return value
