"""Settings -> the exact files a host gets. Pure: no I/O besides reading templates."""

import functools
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import jinja2
import jinja2.sandbox

from . import outdir
from .errors import OpsError

MANAGED = "Managed by flask-ops: local edits are overwritten on the next deploy."
UWSGI_BIN = "/usr/bin/uwsgi"
UWSGI_PLUGIN = "python3"

# What each rendered file is, so checks and reloads can pick theirs.
NGINX, APACHE, UWSGI, SYSTEMD, UPSTART, WSGI = "nginx", "apache", "uwsgi", "systemd", "upstart", "wsgi"

@functools.lru_cache(maxsize=None)
def environment(override_dir=None):
    """Our templates, with a project's own directory searched first when it has one."""
    loader = jinja2.PackageLoader("ops", "templates")
    if override_dir:
        loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(override_dir)), loader])
    # Sandboxed: a project's override template is data, and must not reach Python internals
    # (`{{ s.__class__.__init__.__globals__ }}`) or run commands on the deploying machine.
    return jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # config files, not HTML; every value is whitelisted in settings
    )


@dataclass(frozen=True)
class RenderedFile:
    """One file as it will be installed on the host."""

    path: str  # absolute path on the host
    content: str
    kind: str
    mode: int = 0o644
    in_release: bool = False  # travels inside the release (under current/), not in /etc


def _size_bytes(size):
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    suffix = size[-1].lower()
    return int(size[:-1]) * units[suffix] if suffix in units else int(size)


def _render(template, settings, **extra):
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


@dataclass(frozen=True)
class Fleet:
    """Addresses of a fleet's hosts, as the other hosts reach them."""

    lb_addresses: tuple = ()
    app_addresses: tuple = ()


@dataclass(frozen=True)
class Upstream:
    address: str
    down: bool = False  # drained: the load balancer sends it nothing new


LB_MAX_FAILS, LB_FAIL_TIMEOUT = 3, "10s"


def lb_site_name(settings):
    return f"{settings.app_name}-lb.conf"


def render_lb(settings, upstreams):
    """A load balancer's nginx files: the proxy (or cache) shape over the app hosts."""
    import dataclasses
    s = settings if settings.nginx in ("proxy", "cache") else dataclasses.replace(settings, nginx="proxy")
    return [
        RenderedFile(f"/etc/nginx/sites-available/{catchall_name(s)}",
                     _render("nginx/catchall.conf.j2", s), NGINX),
        RenderedFile(f"/etc/nginx/sites-available/{lb_site_name(s)}",
                     _render("nginx/site.conf.j2", s, lb=list(upstreams), trusted_proxies=[],
                             lb_max_fails=LB_MAX_FAILS, lb_fail_timeout=LB_FAIL_TIMEOUT), NGINX),
    ]


def catchall_name(settings):
    return f"000-flask-ops-catchall-{settings.listen_port}.conf"


def render(settings, fleet=None):
    """Every file the settings call for, in install order.

    fleet: for an app host behind load balancers, their addresses (trusted for X-Real-IP).
    """
    s = settings
    if s.stack == "apache-modwsgi":
        module, callable_ = s.wsgi.split(":")
        return [
            RenderedFile(f"/etc/apache2/sites-available/{catchall_name(s)}",
                         _render("apache/catchall.conf.j2", s), APACHE),
            RenderedFile(f"/etc/apache2/sites-available/{s.app_name}.conf",
                         _render("apache/site.conf.j2", s,
                                 body_limit_bytes=_size_bytes(s.client_max_body_size)), APACHE),
            RenderedFile(s.wsgi_file, _render("apache/app.wsgi.j2", s, module=module,
                                              callable=callable_), WSGI, in_release=True),
        ]
    files = [
        RenderedFile(f"/etc/nginx/sites-available/{catchall_name(s)}",
                     _render("nginx/catchall.conf.j2", s), NGINX),
        RenderedFile(f"/etc/nginx/sites-available/{s.app_name}.conf",
                     _render("nginx/site.conf.j2", s, lb=None,
                             trusted_proxies=list(fleet.lb_addresses) if fleet else []), NGINX),
        RenderedFile(s.uwsgi_ini, _render("uwsgi/uwsgi.ini.j2", s, plugin=UWSGI_PLUGIN), UWSGI),
    ]
    if s.init == "systemd":
        files.append(RenderedFile(f"/etc/systemd/system/{s.service}.service",
                                  _render("systemd/uwsgi.service.j2", s, uwsgi_bin=UWSGI_BIN),
                                  SYSTEMD))
    else:
        files.append(RenderedFile(f"/etc/init/{s.service}.conf",
                                  _render("upstart/uwsgi.conf.j2", s, uwsgi_bin=UWSGI_BIN),
                                  UPSTART))
    return files


def write_tree(files, out_dir, keep=()):
    """Write rendered files under out_dir, mirroring their host paths. Returns the paths.

    out_dir is emptied first only if flask-ops wrote it (see ops.outdir); nothing is written
    through a symlink.
    """
    root = outdir.prepare(out_dir, "rendered configs", keep=keep)
    return [outdir.write_file(root, PurePosixPath(f.path).relative_to("/"), f.content, f.mode)
            for f in files]
