"""Templates -> text: the sandboxed Jinja2 environment and the RenderedFile record.

The stack and init objects (ops.targets.stacks, ops.targets.inits) decide which templates a host gets;
this module only knows how to render one.
"""

import functools
from dataclasses import dataclass
from pathlib import Path

from ..cachedir import cache_root
from ..errors import OpsError

MANAGED = "Managed by flask-ops: local edits are overwritten on the next deploy."

# What each rendered file is, so checks and reloads can pick theirs.
NGINX, APACHE, UWSGI, SYSTEMD, UPSTART, WSGI = "nginx", "apache", "uwsgi", "systemd", "upstart", "wsgi"
PAGE = "page"  # a static page the front server sends itself (maintenance)
SITE_KINDS = (NGINX, APACHE)  # front-server sites: installed in sites-available, linked enabled


def _bytecode_cache():
    """Compiled templates kept between runs (keyed by each source's checksum, so an edited
    template compiles again): compiling them is most of a no-op deploy's build step."""
    path = cache_root() / "jinja"
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return None  # a read-only home: compile every time
    import jinja2
    return jinja2.FileSystemBytecodeCache(str(path))


@functools.lru_cache(maxsize=None)
def _override_loader():
    """OverrideLoader, defined on first use: importing Jinja2 costs every run that renders
    nothing (a no-op whose build is recognised, ops.build.buildcache)."""
    import jinja2

    class OverrideLoader(jinja2.FileSystemLoader):
        """A project's template directory, read as data: regular files inside it only, never
        through a symlink (an `{% include %}` of a link to ../.env would render the secret
        into a config), never a FIFO or a device, never larger than a template is."""

        get_source = _override_source
    return OverrideLoader


def _override_source(self, environment, template):
    """OverrideLoader.get_source: the checks above, then the file as Jinja2 wants it."""
    import jinja2

    from .. import safeio

    root = Path(self.searchpath[0])
    pieces = jinja2.loaders.split_template_path(template)
    path = root.joinpath(*pieces)
    if not path.exists() and not path.is_symlink():
        raise jinja2.TemplateNotFound(template)
    for part in [path, *path.parents]:
        if part == root:
            break
        if part.is_symlink():
            raise OpsError(f"template {template}: {part} is a symlink; an override "
                           "template is a regular file inside its directory")
    try:
        data = safeio.read_regular(path, f"template {template}", limit=256 * 1024)
        source = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OpsError(f"template {template}: not UTF-8 text") from None
    mtime = path.stat().st_mtime
    return source, str(path), lambda: path.exists() and path.stat().st_mtime == mtime


@functools.lru_cache(maxsize=None)
def environment(override_dir=None):
    """Our templates, with a project's own directory searched first when it has one."""
    import jinja2.sandbox

    loader = jinja2.PackageLoader("ops", "templates")
    if override_dir:
        loader = jinja2.ChoiceLoader([_override_loader()(str(override_dir)), loader])
    # Sandboxed: a project's override template is data, and must not reach Python internals
    # (`{{ s.__class__.__init__.__globals__ }}`) or run commands on the deploying machine.
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # config files, not HTML; every value is whitelisted in settings
        bytecode_cache=_bytecode_cache(),
    )
    env.globals["stream_matches"] = stream_matches
    env.globals["dropped_forwarding"] = DROPPED_FORWARDING
    return env


# Forwarding headers a proxy-aware app believes (Flask's ProxyFix, ...) for which no tier has
# a value of its own: every front server drops the client's copies (nginx and Apache alike).
DROPPED_FORWARDING = ("X-Forwarded-Prefix", "X-Forwarded-Port", "X-Forwarded-Server",
                      "X-Forwarded-Ssl", "X-Forwarded-Protocol", "X-Url-Scheme", "Forwarded",
                      "X-Original-URL", "X-Rewrite-URL")


def stream_matches(path):
    """The nginx locations of a streaming path: the path itself and what lies below it, never
    a mere prefix (`location /time` would also unbuffer, and never cache, /timeline)."""
    if path.endswith("/"):
        return [path]
    return [f"= {path}", f"{path}/"]


@dataclass(frozen=True)
class RenderedFile:
    """One file as it will be installed on the host."""

    path: str  # absolute path on the host
    content: str
    kind: str
    mode: int = 0o644
    in_release: bool = False  # travels inside the release (under current/), not in /etc

    @property
    def is_site(self):
        return self.kind in SITE_KINDS


def render(template, settings, **extra):
    import jinja2

    env = environment(settings.templates_dir)
    try:
        return env.get_template(template).render(s=settings, managed=MANAGED, **extra)
    except jinja2.TemplateError as exc:
        # An override template is the user's file: name it and the problem, no traceback.
        where = getattr(exc, "filename", None) or template
        line = getattr(exc, "lineno", None)
        what = type(exc).__name__
        raise OpsError(f"template {where}{f' line {line}' if line else ''}: {what}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def size_bytes(size):
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    suffix = size[-1].lower()
    return int(size[:-1]) * units[suffix] if suffix in units else int(size)
