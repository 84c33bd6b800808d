"""The app description: read once from Fabric's config, validated, then frozen. Each key is
parsed by ops.config.keys; here the keys that depend on each other, the project's files and
the stages are checked, and `Settings` holds the result.
"""

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Optional, Tuple

from ..errors import OpsError, SettingsError
from ..targets import daytwo, hostversions, stacks
from . import configfile, keys, localhooks, tlsconf, wsgispec
from .hostpaths import HostPaths
from .keys import Roles, SmokePage

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
    # Not a user key: the source's commit as deploy.source_at read it ("" without git), read
    # once per deploy (each `git status` of a large repository costs tens of ms).
    commit: Optional[str] = None
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
                 "cache_generation", "commit",
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



def load(raw=None, project_root=".", check_files=True, stage=None):
    """Validate a raw `deploy:` mapping into Settings; raise SettingsError on the first bad key.
    stage: one of its `stages`, laid over the shared keys (required when it has stages)."""
    if raw is not None and not isinstance(raw, dict):
        raise SettingsError("", raw, "a mapping of keys under 'deploy:'")
    raw = dict(raw or {})
    unknown = sorted((k for k in raw if k not in USER_KEYS), key=str)
    if unknown:
        keys.fail(unknown[0], raw[unknown[0]], "one of the documented keys: " + ", ".join(USER_KEYS))
    raw, stage = with_stage(raw, stage)
    for key, allowed in REQUIRED.items():
        if raw.get(key) is None:
            raise SettingsError.missing(key, allowed)
    values = {key: keys.VALIDATORS[key](key, value) for key, value in raw.items()}
    if values.get("hosts"):
        if values.get("roles"):
            keys.fail("hosts", raw["hosts"], "either hosts (app hosts, no load balancer) or roles, "
                      "not both")
        values["roles"] = Roles((), values["hosts"])
        keys.roles("hosts", {"app": list(values["hosts"])})  # each machine once
    settings = Settings(project_root=str(project_root), stage=stage, **values)
    if settings.user is None and settings.app_name in keys.RESERVED_USERS:
        keys.fail("app_name", settings.app_name, "a name that is not a system account (it is also "
                  "the app's user unless 'user' is set)")
    if settings.listen_port in (22, 443):
        keys.fail("listen_port", settings.listen_port, "a port other than 22 (sshd) and 443 (HTTPS: "
                  "see tls)")
    if settings.listen_port == settings.upstream_port and settings.two_tier:
        keys.fail("upstream_port", settings.upstream_port, "a port other than listen_port")
    if settings.tls:
        _check_tls(settings)
    if settings.access_log == "json" and stacks.of(settings).front != "nginx":
        keys.fail("access_log", "json", "main on Apache: its log escaping (\\xhh) is not JSON; "
                  "json needs an nginx stack")
    if settings.static_url == "/":
        keys.fail("static_url", settings.static_url, "a sub-path such as '/static/'")
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
        keys.fail("websockets", list(s.websockets), f"no websockets on stack {s.stack}: "
                  f"{app.no_websockets}; set stack: {' or '.join(able)}")
    if s.init not in app.inits:
        keys.fail("init", s.init, f"{' or '.join(app.inits)} with stack {s.stack} ({app.why_inits})")
    overlap = set(s.websockets) & set(s.streaming)
    if overlap:
        keys.fail("websockets", sorted(overlap)[0], "paths that are not also under `streaming`")


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
        keys.fail("stages", stages, "a mapping of stage names to the keys that differ, e.g. "
                  "{staging: {hosts: [...]}, production: {hosts: [...]}}")
    for name, overrides in stages.items():
        keys.string("stages", name, keys.IDENT, "stage names: lowercase identifiers")
        if not isinstance(overrides, dict):
            keys.fail(f"stages.{name}", overrides, "a mapping of the keys that differ on this stage")
        for key in overrides:
            if key not in USER_KEYS or key in STAGE_FIXED:
                keys.fail(f"stages.{name}.{key}", overrides[key], "a key a stage may set: any documented "
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
            keys.VALIDATORS[key](where, value)
        if key in ("env", "secrets") and isinstance(value, dict) and isinstance(raw.get(key), dict):
            merged[key] = {**raw[key], **value}
        else:
            merged[key] = value
    return merged, stage




def _check_tls(s):
    tls = s.tls
    if tls.ocsp_stapling and stacks.of(s).front_server.ocsp_needs_resolvers and not tls.resolvers:
        keys.fail("tls.resolvers", None, "the DNS servers nginx asks for the CA's OCSP host when "
                  "ocsp_stapling is on (e.g. [127.0.0.53] with systemd-resolved)")
    for name in s.server_names:
        if keys.IP_LIKE.match(name) or "." not in name or name.endswith((".localhost", ".local")):
            keys.fail("server_names", name, "DNS names under a public suffix when tls is on: a "
                      "certificate names domains, not addresses or localhost")
        if tls.acme and name.startswith("*."):
            keys.fail("server_names", name, "names without '*' with tls.acme: HTTP-01 cannot "
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
    here = keys.ssh_endpoint(host) if keys.SSH_HOST.match(host) else (host, 22)
    mine = tuple(w for w in s.workers if not w.hosts or here in {keys.ssh_endpoint(h) for h in w.hosts})
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
        smoke = keys.smoke("smoke", manifest["smoke"])
        stream = manifest.get("smoke_stream") or ""
        if stream:
            keys.VALIDATORS["smoke_stream"]("smoke_stream", stream)
    except SettingsError:
        return s
    return replace(s, smoke=smoke, smoke_stream=stream)


def _check_workers(s):
    apps = {keys.ssh_endpoint(h) for h in (s.roles.app if s.roles else ())}
    for w in s.workers:
        for h in w.hosts:
            keys.ssh_host(f"workers.{w.name}.hosts", h)
            if keys.ssh_endpoint(h) not in apps:
                keys.fail(f"workers.{w.name}.hosts", h, "one of the app hosts (roles.app or hosts)")


def _check_conflicts(s):
    """Keys that are each valid but cannot work together; the error names both."""
    shared = [("shared_dirs", p) for p in s.shared_dirs] + [("shared_files", p) for p in s.shared_files]
    for i, (key, path) in enumerate(shared):
        for other_key, other in shared[i + 1:]:
            if path == other or other.startswith(path + "/") or path.startswith(other + "/"):
                keys.fail(other_key, other, f"a path apart from {key} {path}: one shared path "
                          "cannot hold another")
    both = sorted({n for n, _ in s.env} & {n for n, _, _ in s.secrets})
    if both:
        keys.fail(f"env.{both[0]}", "(also under secrets)", f"one place for a name: secrets."
                  f"{both[0]} gives it too")
    conflict = _static_conflict(s, s.static_url)
    if conflict:
        keys.fail(*conflict, f"a URL outside static_url ({s.static_url}): the front server "
                         "answers there from files, never the app")
    for i, item in enumerate(s.smoke):
        if s.healthz and stacks.of(s).caches and item.path.split("?")[0] == s.healthz:
            keys.fail("healthz", s.healthz, f"a URL other than smoke[{i}].path: with nginx: cache "
                      "the health URL is never cached, so that page would never be cached either")
    stream = s.smoke_stream
    if stream and stacks.of(s).streams_only_listed and \
            not any(url_under(stream, path) for path in s.streaming):
        keys.fail("smoke_stream", stream, "a URL under one of the `streaming` paths "
                  f"({', '.join(s.streaming) or 'none set'}): nginx buffers every other response")


def check_static_prefix(s, prefix):
    """A static URL prefix the app declared (found by the build), checked like a setting."""
    key = "static prefix"
    keys.url_prefix(key, prefix)
    if prefix == "/":
        keys.fail(key, prefix, "a sub-path: '/' would serve every URL from files")
    conflict = _static_conflict(s, prefix)
    if conflict:
        keys.fail(key, prefix, "a URL outside {} ({})".format(*conflict))
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
        keys.fail("source", settings.source, f"an existing directory inside the project ({root})")
    imports = settings.source_dir / settings.python_path
    if not (_inside(imports, settings.source_dir) and imports.is_dir()):
        keys.fail("python_path", settings.python_path,
                  f"an existing directory inside source ({settings.source_dir})")
    if settings.templates and not (_inside(settings.templates_dir, root)
                                   and settings.templates_dir.is_dir()):
        keys.fail("templates", settings.templates, f"an existing directory inside the project ({root})")
    for name, kind, ref in settings.secrets:
        if kind == "file" and _inside(Path(root, Path(ref).expanduser()), root):
            keys.fail(f"secrets.{name}.file", ref, f"a file outside the project ({root}): a secret "
                      "never comes from the repository")
    if settings.tls and settings.tls.key and _inside(Path(root, Path(settings.tls.key).expanduser()), root):
        keys.fail("tls.certificate.key", settings.tls.key, f"a file outside the project ({root}): a "
                  "private key never comes from the repository")
    pages = [("maintenance.page", settings.maintenance.page)] + [
        (f"error_pages.{code}", page) for code, page in settings.error_pages]
    for key, page in pages:
        if page and not (_inside(Path(root, page), root) and Path(root, page).is_file()):
            keys.fail(key, page, f"an existing HTML file inside the project ({root})")
    req = settings.requirements_file
    root = Path(settings.project_root).resolve()
    inside = _inside(req, settings.source_dir) or (req.name == "pyproject.toml"
                                                    and req.parent == root and _inside(req, root))
    if not inside or not req.is_file():
        if settings.requirements:
            keys.fail("requirements", settings.requirements,
                      f"a file inside source (looked for {req})")
        keys.fail("requirements", None, "the app's dependencies: requirements.txt in source "
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
