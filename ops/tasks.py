"""Fabric tasks: a thin layer that reads settings once and calls the modules that do the work.

Use from any project with a two-line fabfile:

    from ops.tasks import ns  # noqa: F401
"""

import functools
import sys

from fabric import task
from invoke import Collection
from invoke.exceptions import Exit

from . import build, checks, render, settings as settings_mod, staging
from .errors import OpsError


def ops_task(*args, **kwargs):
    """A Fabric task whose OpsError becomes one clear line and exit status 1, not a traceback."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(c, *a, **kw):
            try:
                return fn(c, *a, **kw)
            except OpsError as exc:
                raise Exit(f"flask-ops: {fn.__name__}: {exc}", code=1) from None

        return task(*args, **kwargs)(run)

    if len(args) == 1 and callable(args[0]) and not kwargs:
        fn, args = args[0], ()
        return wrap(fn)
    return wrap


def load_settings(c):
    return settings_mod.from_config(c.config)


@ops_task(name="render", help={"out": "directory to write into, mirroring the host's paths (default: rendered)"})
def render_(c, out="rendered"):
    """Render every config file for the app, exactly as it will be installed on a host."""
    s = load_settings(c)
    for path in render.write_tree(render.render(s), out):
        print(path)


@ops_task(help={"out": "directory for the collected files (default: build/APP/collected_static)"})
def collectstatic(c, out=None):
    """Collect the app's and its blueprints' static files with Flask-Collect."""
    s = load_settings(c)
    path, count = build.collectstatic(s, out)
    print(f"collected {count} files into {path} (served at {s.static_url})")


@ops_task
def check(c):
    """Render the configs and run each server's own checker on them, here."""
    s = load_settings(c)
    files = render.render(s)
    for kind in checks.check_local(files, s):
        print(f"ok  {kind}")


@ops_task(help={"count": "how many hosts (staging1..stagingN); default 1"})
def up(c, count=1):
    """Boot local staging hosts (systemd-nspawn) and write their SSH config."""
    for h in staging.up(int(count)):
        print(f"{h.name}  {h.address}  ssh -F {staging.ssh_config_path()} {h.name}")


@ops_task
def down(c):
    """Remove every staging host, network namespace, veth and process staging.up made."""
    staging.down()
    print("no staging hosts left")


@ops_task(name="status")
def staging_status(c):
    """List staging hosts: address, whether running, whether sshd answers."""
    rows = staging.status()
    for row in rows:
        print(f"{row['name']:10} {row['address']:15} "
              f"{'running' if row['running'] else 'stopped':8} ssh {'up' if row['ssh'] else 'down'}")
    if not rows:
        print("no staging hosts")


staging_ns = Collection("staging", up, down, staging_status)
ns = Collection(render_, collectstatic, check, staging_ns)
ns.configure({"deploy": {}})


def main():  # pragma: no cover - convenience for `python -m ops.tasks`
    from fabric.main import program
    sys.exit(program.run())
