"""Fabric tasks: a thin layer that reads settings once and calls the modules that do the work.

Use from any project with a two-line fabfile:

    from ops.tasks import ns  # noqa: F401
"""

import functools
import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fabric import task
from fabric.executor import Executor as FabricExecutor
from invoke import Collection
from invoke.exceptions import Exit

from fabric import Connection

from . import locks
from .build import build, release as release_mod
from .config import configfile, settings as settings_mod
from .deploy import (appenv, daytwo_cmds, deploy as deploy_mod, fleet, provision as provision_mod,
                     remote, smoke as smoke_mod)
from .deploy.steps import Prefixed
from .errors import OpsError
from .targets import checks, render


def _on_first_use(name):
    """Module `name`, executed when a task first reads one of its names (importlib's
    LazyLoader): the staging harness, the report and the scaffold cost every `fab` run their
    imports (urllib, xml.etree, ...), a deploy included, and most runs never use them."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


staging = _on_first_use("ops.staging")
report = _on_first_use("ops.deploy.report")
scaffold = _on_first_use("ops.build.scaffold")


def ops_task(*args, **kwargs):
    """A Fabric task whose OpsError becomes one clear line and exit status 1, not a traceback."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(c, *a, **kw):
            try:
                return fn(c, *a, **kw)
            except OpsError as exc:
                name = kwargs.get("name") or fn.__name__
                raise Exit(f"flask-ops: {name}: {exc}", code=1) from None

        return task(*args, **kwargs)(run)

    if len(args) == 1 and callable(args[0]) and not kwargs:
        fn, args = args[0], ()
        return wrap(fn)
    return wrap


def count_option(flag, value, default, high):
    """A positive whole number given on the command line (Invoke would raise a traceback)."""
    if value is None:
        return default
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= high:
        raise OpsError(f"{flag} {value!r}: a whole number from 1 to {high}")
    return int(text)


def report_path(flag, value, s):
    """Where a smoke report may be written: a new file, or a report written before; never a
    directory, a link, a project file or a file inside the app's source."""
    if value is None:
        return None
    path = Path(value)
    if not str(value).strip():
        raise OpsError(f"{flag}: an empty path")
    if path.is_symlink() or path.is_dir():
        raise OpsError(f"{flag} {value}: a directory or a link; name a file")
    if not path.parent.is_dir():
        raise OpsError(f"{flag} {value}: {path.parent} is not a directory")
    resolved = path.resolve()
    if resolved == s.source_dir or s.source_dir in resolved.parents:
        raise OpsError(f"{flag} {value}: inside the app's source; write reports elsewhere")
    if path.exists() and not report.is_report(path):
        raise OpsError(f"{flag} {value}: the file exists and is not a smoke report; refusing "
                       "to overwrite it")
    return path


def load_settings(c):
    """The app description, once per task; with stages, the task first says which it acts on."""
    s = settings_mod.from_config(c.config)
    if s.stage:
        print(f"stage {s.stage}")
    return s


@ops_task(name="stage")
def stage_(c, name):
    """Choose the stage the following tasks act on: fab stage production deploy."""
    settings_mod.from_config(c.config.clone(), stage=name)  # an unknown stage stops here
    c.config.flask_ops_stage = name  # kept in the session's config for the next tasks


@ops_task
def init(c):
    """Write a commented fabric.yaml and the two-line fabfile.py here, from importing the app;
    never overwrites (without a fabfile yet: python -m ops init)."""
    scaffold.write(Path.cwd(), scaffold.plan(Path.cwd()))


TARGET_HELP = {
    "target": "render for these server versions, e.g. nginx=1.18,uwsgi=2.0.19 (Ubuntu 22.04 / "
              "Debian 11); default: what the host named by -H last reported, else Debian 12's",
}


def for_target(c, s, target=None):
    """s rendered for --target versions, or for the -H host's last reported ones."""
    import dataclasses
    from .targets import hostversions
    if target:
        versions = hostversions.parse_option(target)
    else:
        host = getattr(c, "host", None)  # fab -H HOST render: a Connection
        versions = hostversions.recalled(host) if host else {}
    hostversions.refuse_too_old(versions)
    return dataclasses.replace(s, target=hostversions.Target.for_versions(versions))


@ops_task(name="render", help={"out": "directory to write into, mirroring the host's paths (default: rendered)",
                               **TARGET_HELP})
def render_(c, out="rendered", target=None):
    """Render every config file for the app, exactly as it will be installed on a host."""
    s = for_target(c, load_settings(c), target)
    files = render.render(s)  # all of it, before anything is written
    keep = (s.project_root, s.source_dir, Path.cwd())
    for path in render.write_tree(files, out, keep=keep, outside=(s.source_dir,)):
        print(path)


@ops_task(help={"out": "directory for the collected files (default: in ~/.cache/flask-ops/builds/APP-*/)"})
def collectstatic(c, out=None):
    """Collect the app's and its blueprints' static files with Flask-Collect."""
    s = load_settings(c)
    # The app is imported with its own environment (env: and secrets), as on the host.
    path, count, statics = build.collectstatic(s, out, env=build.app_environment(appenv.resolve(s)))
    print(f"collected {count} files into {path} (served at {', '.join(statics['prefixes'])}; "
          "the tree mirrors their URLs)")


@ops_task(name="env", help={"check": "also read every secret now (commands run), to prove "
                                      "the next deploy can; values are never shown"})
def env_(c, check=False):
    """List the app's environment: each name and where its value comes from, never a value."""
    s = load_settings(c)
    rows = appenv.sources(s)
    width = max(len(name) for name, _ in rows)
    for name, where in rows:
        print(f"{name:{width}}  {where}")
    if check:
        resolved = appenv.resolve(s)
        print(f"ok  {len(resolved.values)} values read on this machine, "
              f"{len(resolved.generate)} generated on the host")


@ops_task(help=TARGET_HELP)
def check(c, target=None):
    """Render the configs and run each server's own checker on them, here."""
    s = for_target(c, load_settings(c), target)
    skipped = []
    for kind in checks.check_local(render.render(s), s, skipped):
        print(f"ok  {kind}")
    if s.roles and s.roles.lb:
        # The fleet's shapes too; addresses are placeholders: the config is what is checked.
        lbs = [f"198.18.0.{i + 1}" for i in range(len(s.roles.lb))]
        apps = [render.Upstream(f"198.18.1.{i + 1}") for i in range(len(s.roles.app))]
        lb_s = fleet.lb_settings(s, len(lbs))
        for kind in checks.check_local(render.render_lb(lb_s, apps), lb_s, skipped):
            print(f"ok  {kind} (load balancer)")
        app_s = fleet.app_settings(s, lbs)  # what app hosts serve (TLS ends at the balancer)
        for kind in checks.check_local(render.render(app_s, render.Fleet(tuple(lbs))), app_s, skipped):
            print(f"ok  {kind} (app host behind the load balancer)")
    for why in dict.fromkeys(skipped):  # the host runs every checker before anything goes live
        print(f"skip  {why} (install it to check here; the host checks it before every deploy)")


@ops_task(help={"count": "how many hosts (staging1..stagingN); default 1",
                "release": "the hosts' Debian release: bookworm (default), trixie or bullseye",
                "first": "number of the first host (default 1): --release trixie --first 5",
                "engine": "nspawn (default) or docker (containers from ops/staging/recipes/Dockerfile)",
                "init": "systemd (default) or upstart (upstart 1.12 as PID 1, built from "
                        "vendor/upstart)"})
def up(c, count=1, release="", first=1, engine="nspawn", init="systemd"):
    """Boot local staging hosts (systemd-nspawn, or Docker) and write their SSH config."""
    for h in staging.up(int(count), release=release or staging.DEFAULT_RELEASE, first=int(first),
                        engine=engine, init=init):
        print(f"{h.name}  {h.address}  {h.release}  {h.init}  "
              f"ssh -F {staging.ssh_config_path()} {h.name}")


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
        print(f"{row['name']:10} {row['address']:15} {row['release']:9} {row['engine']:7} "
              f"{row['init']:8} "
              f"{'running' if row['running'] else 'stopped':8} ssh {'up' if row['ssh'] else 'down'}")
    if not rows:
        print("no staging hosts")


def connect(c, s):
    """The task's host (fab -H); a staging host is reached with the SSH config staging.up wrote."""
    return remote.connect(c, ssh_config_for(c, getattr(c, "original_host", None)), s.gateway)


def ssh_config_for(c, name):
    """staging.up's SSH config for its hosts, unless the SSH config Fabric read (`fab -S
    FILE`, ~/.ssh/config) names the host itself (a HostName): then that one, as for any host."""
    known = getattr(c.config, "base_ssh_config", None)  # Fabric's Config: what it read
    if name and known is not None and known.lookup(name).get("hostname", name) != name:
        return None
    return staging.ssh_config_for(name)


def app_hosts(c, s):
    """The task's host (fab -H), else every app host the description names (hosts, roles)."""
    if isinstance(c, Connection) or not s.roles:
        return [connect(c, s)]
    return role_hosts(c, s)[1]


def role_hosts(c, s):
    """(load balancers, app hosts) from `roles`, when no -H was given."""
    if isinstance(c, Connection) or not s.roles:
        return None
    return tuple([remote.open_host(h, c.config, ssh_config_for(c, h), s.gateway)
                  for h in hosts]
                 for hosts in (s.roles.lb, s.roles.app))


@ops_task
def provision(c):
    """Prepare the host (or every host in `roles`): packages, the app's user, directories,
    the front server. Idempotent."""
    s = load_settings(c)
    roles = role_hosts(c, s)
    for host in (roles[0] + roles[1]) if roles else [connect(c, s)]:
        changes = provision_mod.provision(s, host)
        for change in changes:
            print(f"  changed  {change}")
        print(f"provisioned {host.name}: {len(changes) or 'nothing'} changed")


@ops_task(name="deploy", help={
    "dry_run": "show the config diffs and commands; change nothing",
    "batch_size": "fleet: app hosts switched at a time (default 1)",
    "max_fail": "fleet: failed hosts tolerated before the roll stops (default 0)",
    "drain": "fleet: take hosts out of the balancers 'auto' (only when their switch needs it) "
             "or 'always' (a release failing its checks is never seen; balancer reloads)",
    "ref": "deploy this git branch, tag or commit (a clean checkout), not the working tree"})
def deploy_(c, dry_run=False, batch_size=1, max_fail=0, drain="auto", ref=None):
    """Build, upload, check on the host, switch atomically, smoke-test; roll back on failure.

    Without -H and with `roles` in the app description: a rolling deploy over the fleet.
    """
    from .config import localhooks
    s = deploy_mod.source_at(load_settings(c), ref)
    roles = role_hosts(c, s)
    if roles and dry_run:
        raise OpsError("--dry-run works per host: fab -H HOST deploy --dry-run")
    host = None if roles else connect(c, s)
    names = [h.name for h in roles[1]] if roles else [host.name]
    commit = s.commit or None  # source_at read it
    if not dry_run:  # a failing before_deploy stops here: no host was touched
        localhooks.run(s, "before_deploy", localhooks.environment(s, names, "started", commit=commit))
    try:
        released = _deploy(s, roles, host, dry_run, int(batch_size), int(max_fail), drain)
    except (OpsError, Exit) as exc:
        if not dry_run:
            _report_hook(s, "on_failure", localhooks.environment(
                s, names, "failed", commit=commit, error=str(exc)))
        raise
    if not dry_run:
        _report_hook(s, "after_deploy", localhooks.environment(s, names, "ok", released, commit))


def _report_hook(s, point, env):
    """after_deploy and on_failure hooks: a failure is said, never hides the deploy's outcome."""
    from .config import localhooks
    try:
        localhooks.run(s, point, env)
    except OpsError as exc:
        print(f"warning: {exc}", file=sys.stderr)


def _deploy(s, roles, host, dry_run, batch_size, max_fail, drain):
    if roles:
        lbs, apps = roles
        names = ", ".join(a.name for a in apps)
        print(f"rolling {s.app_name} over {len(apps)} app hosts behind {len(lbs)} load balancers"
              if lbs else f"deploying {s.app_name} to {names}, {batch_size} at a time")
        outcome = fleet.rolling_deploy(s, lbs, apps, batch_size, max_fail, drain=drain)
        if lbs:
            print(f"serving through http://{lbs[0].address}:{s.listen_port}/ (Host: {s.server_names[0]})")
        serving = {v.split(": ", 1)[1] for v in outcome.values() if v.startswith("ok: ")}
        return serving.pop() if len(serving) == 1 else None
    print(f"deploying {s.app_name} to {host.name}{' (dry run)' if dry_run else ''}")
    released = deploy_mod.deploy(s, host, dry_run=dry_run)
    if released and not dry_run:
        print(f"serving {released}: http://{host.address}:{s.listen_port}/ "
              f"(Host: {s.server_names[0]}; e.g. curl --resolve "
              f"{s.server_names[0]}:{s.listen_port}:{host.address} "
              f"http://{s.server_names[0]}:{s.listen_port}/)")
    return released


@ops_task(help={"release": "release id to go back to (default: the one before current)"})
def rollback(c, release=None):
    """Go back to an earlier release: its configs, services reloaded, verified, smoke-tested."""
    s = load_settings(c)
    for host in app_hosts(c, s):
        deploy_mod.rollback(s, host, release)


@ops_task
def releases(c):
    """List the releases on the host that can be rolled back to (* = current)."""
    s = load_settings(c)
    hosts = app_hosts(c, s)
    for host in hosts:
        current, names = deploy_mod.releases(s, host)
        lead = f"{host.name}: " if len(hosts) > 1 else ""
        for name in names:
            print(f"{lead}{'*' if name == current else ' '} {name}")
        if not names:
            print(f"{lead}no releases")


@ops_task(name="status")
def host_status(c):
    """Current release, service states, last deploy, lock."""
    s = load_settings(c)
    hosts = app_hosts(c, s)
    for host in hosts:
        if len(hosts) > 1:
            print(f"{host.name}:")
        for key, value in deploy_mod.status(s, host).items():
            print(f"{key:12} {value}")


@ops_task
def unlock(c):
    """Clear the host's deploy lock (use when `deploy` reports it STALE); says whose it was."""
    s = load_settings(c)
    for host in app_hosts(c, s):
        text = deploy_mod.unlock(s, host)
        print(f"{host.name}: " + (f"cleared: {text}" if text else "no lock held"))


@ops_task(name="smoke", help={
    "url": "check this public URL instead of a host over SSH (e.g. https://example.com/)",
    "junit": "also write the results as JUnit XML to this file",
    "json": "also write the results as JSON to this file"})
def smoke_(c, url=None, junit=None, json=None):
    """Run the smoke checks through the front server: one line per check; exit 1 on any failure."""
    s = load_settings(c)
    junit, json = report_path("--junit", junit, s), report_path("--json", json, s)
    if url:
        try:
            target = smoke_mod.target_from_url(url)
        except ValueError as exc:
            raise OpsError(str(exc)) from None
        statics = release_mod.static_pairs(build.collectstatic(
            s, env=build.app_environment(appenv.resolve(s)))[2]["samples"])
    else:
        hosts = app_hosts(c, s)
        if len(hosts) > 1:
            raise OpsError("smoke checks one host: fab -H HOST smoke (or --url for the site)")
        target = deploy_mod.target_for(s, hosts[0])
        statics = deploy_mod.current_statics(s, hosts[0])
    results = smoke_mod.run(s, target, statics)
    for r in results:
        print(f"{'ok  ' if r.ok else 'FAIL'}  {r.name:32} {r.seconds:5.2f}s  {r.detail}")
    failed = [r for r in results if not r.ok]
    if junit:
        junit.write_text(report.to_junit(results, target.describe()))
    if json:
        json.write_text(report.to_json(results, target.describe()))
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise Exit(code=1)


@ops_task(name="acme", help={"stop": "stop it instead"})
def staging_acme(c, stop=False):
    """Start a local ACME server (Pebble + its DNS) for the staging hosts; print the tls: to use."""
    from .staging import pebble
    if stop:
        pebble.down()
        print("staging ACME server stopped")
        return
    server = pebble.up()
    print(f"ACME directory {server.directory} (names resolve to staging1 unless pointed "
          "elsewhere)\nin the app description:\n"
          f"  tls:\n    acme: {{email: ops@example.com, directory: \"{server.directory}\", "
          f"ca_bundle: {server.ca_bundle}}}")


def remainder():
    """The words after `--` exactly as typed (Invoke joins them into one string)."""
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []


class Executor(FabricExecutor):
    """Fabric's executor, except that `exec -- CMD` owns its command: Fabric must not also
    run it raw on the hosts (what `fab -H HOST -- CMD` does without a task)."""

    def expand_calls(self, calls, apply_hosts=True):
        if not any(getattr(call, "called_as", None) == "exec" or call.task.name == "exec"
                   for call in calls):
            return super().expand_calls(calls, apply_hosts)
        saved, self.core.remainder = self.core.remainder, ""
        try:
            return super().expand_calls(calls, apply_hosts)
        finally:
            self.core.remainder = saved


def _several(hosts, every, what):
    if len(hosts) > 1 and not every:
        raise OpsError(f"{what} acts on one host: fab -H HOST {what} (or --all for "
                       f"{', '.join(h.name for h in hosts)})")


@ops_task(name="exec", help={"all": "every app host, one after another, output prefixed"})
def exec_(c, all=False):
    """Run a command in the current release as the app runs (its user, venv, environment):
    fab -H web1 exec -- flask routes. Interactive when a terminal is attached."""
    s = load_settings(c)
    script = daytwo_cmds.exec_script(s, remainder())
    hosts = app_hosts(c, s)
    _several(hosts, all, "exec")
    if len(hosts) == 1 and sys.stdin.isatty() and sys.stdout.isatty():
        status = hosts[0].interactive(script)
    else:
        status = 0
        for host in hosts:
            out = Prefixed(print, host.name) if len(hosts) > 1 else print
            result = host.run(script, "exec", check=False, echo=out, timeout=86400)
            status = status or result.exited
    if status:
        raise Exit(code=status)


@ops_task(help={"follow": "keep printing new lines until interrupted (Ctrl-C)",
                "since": "journal lines since then, e.g. '10 min ago', 'today'",
                "lines": "lines from each log (default 100)"})
def logs(c, follow=False, since=None, lines=None):
    """The app's logs (its units' journal, or Apache's error log for mod_wsgi), its workers',
    and the front server's access and error log for this site; per host in a fleet."""
    lines = count_option("--lines", lines, 100, 100_000)
    s = load_settings(c)
    script = daytwo_cmds.logs_script(s, lines, since, follow)
    hosts = app_hosts(c, s)

    def one(host):
        out = Prefixed(print, host.name) if len(hosts) > 1 else print
        host.run(script, "logs", check=False, echo=out, timeout=10**7 if follow else 120)

    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        for future in [pool.submit(one, h) for h in hosts]:
            future.result()


@ops_task(name="history", help={"n": "how many entries (default 20)"})
def history_(c, n=None):
    """Deploys, rollbacks, failed attempts and maintenance toggles on the host, newest first."""
    n = count_option("-n", n, 20, 100_000)
    s = load_settings(c)
    hosts = app_hosts(c, s)
    for host in hosts:
        rows = daytwo_cmds.history_rows(
            host.run(daytwo_cmds.history_script(s, n), "history").stdout)
        lead = f"{host.name}: " if len(hosts) > 1 else ""
        for row in rows or ["no history yet"]:
            print(lead + row)


@ops_task(help={"state": "on or off"})
def maintenance(c, state):
    """Maintenance mode on or off (the host, or the whole fleet with its load balancers): the
    site answers 503 with the maintenance page and Retry-After, except to maintenance.allow."""
    if state not in ("on", "off"):
        raise OpsError(f"maintenance {state!r}: on or off")
    s = load_settings(c)
    roles = role_hosts(c, s)
    hosts = (roles[0] + roles[1]) if roles else [connect(c, s)]
    script = daytwo_cmds.maintenance_script(s, state == "on", locks.who())
    for host in hosts:
        host.run(script, f"maintenance {state}")
        print(f"{host.name}: maintenance {state}")


TASKS = (init, stage_, render_, collectstatic, check, env_, provision, deploy_, rollback, releases,
         host_status, unlock, smoke_, exec_, logs, history_, maintenance)
staging_ns = Collection("staging", up, down, staging_status, staging_acme)
# A project's tasks. The local staging hosts (root, nspawn) are this repository's and a
# project's only when it asks: `from ops.tasks import ns_with_staging as ns`.
_COLLECTIONS = {"ns": Collection(*TASKS), "ns_with_staging": Collection(*TASKS, staging_ns)}
for _collection in _COLLECTIONS.values():
    _collection.configure({"deploy": {}})


def __getattr__(name):
    """`from ops.tasks import ns` (a fabfile's line) hands out the tasks, and first makes a
    running Fabric `fab` ours (adopt_fab)."""
    if name in _COLLECTIONS:
        adopt_fab()
        return _COLLECTIONS[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def adopt_fab():
    """Fabric's own `fab` made its stock Config before importing the fabfile; it reads the
    project's and the -f config files, and runs the tasks, after. Give that program (its
    public `config` and `executor_class`) our config class and executor, as the flask-ops
    program has them from the start: its files are then read strictly, `exec` owns its
    remainder, and nothing of Fabric's or Invoke's is replaced."""
    from fabric import Config
    from fabric.main import program

    if type(getattr(program, "config", None)) is Config:
        program.config.__class__ = configfile.StrictConfig
    if program.executor_class is FabricExecutor:
        program.executor_class = Executor

