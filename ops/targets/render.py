"""Settings -> the exact files a host gets. Pure: no I/O besides reading templates.

Which files a host gets is the stack's knowledge (ops.targets.stacks); this is the entry point for
the tasks and tests that want all of them, and the writer of a rendered tree.
"""

from dataclasses import dataclass
from pathlib import PurePosixPath

from .. import outdir
from . import stacks
from .templating import APACHE, MANAGED, NGINX, RenderedFile, SYSTEMD, UPSTART, UWSGI, WSGI

# The file kinds and record live in ops.targets.templating; callers may name them from here.
__all__ = ["APACHE", "MANAGED", "NGINX", "SYSTEMD", "UPSTART", "UWSGI", "WSGI", "RenderedFile",
           "Fleet", "Upstream", "render", "render_lb", "write_tree"]


@dataclass(frozen=True)
class Fleet:
    """Addresses of a fleet's load balancers, as its app hosts see them (trusted for X-Real-IP)."""

    lb_addresses: tuple = ()


@dataclass(frozen=True)
class Upstream:
    address: str
    down: bool = False  # drained: the load balancer sends it nothing new


def render(settings, fleet=None):
    """Every file the settings call for, in install order."""
    return stacks.of(settings).files(fleet)


def render_lb(settings, upstreams):
    """A load balancer's nginx files: the proxy (or cache) shape over the app hosts."""
    return stacks.LoadBalancer(settings).files(upstreams)


def write_tree(files, out_dir, keep=(), outside=()):
    """Write rendered files under out_dir, mirroring their host paths. Returns the paths.

    out_dir is emptied first only if flask-ops wrote it (see ops.outdir); nothing is written
    through a symlink.
    """
    root = outdir.prepare(out_dir, "rendered configs", keep=keep, outside=outside)
    return [outdir.write_file(root, PurePosixPath(f.path).relative_to("/"), f.content, f.mode)
            for f in files]
