"""Stacks: a front server (ops.targets.frontservers) paired with an app server (ops.targets.appservers),
run by the host's init system (ops.targets.inits). A stack renders every file a host gets and turns
the three roles' knowledge into the lines a plan runs: checks, reloads, restarts, the app's
processes, provisioning.

Adding a pairing is a line in STACKS; adding a front or app server is a class in its module
(and its templates); adding an init system is a class in ops.targets.inits.
"""

import dataclasses
import shlex
from pathlib import Path
from typing import NamedTuple

from ..errors import OpsError
from . import appservers, daytwo, frontservers, inits, templating as t

q = shlex.quote

# Which front server provision set up on this host (port 80 has one): preflight compares it
# with the stack being deployed, so a switch of stack asks for provision instead of failing
# half way with the other server's config errors.
FRONT_MARKER = "/etc/flask-ops/front-server"


class Action(NamedTuple):
    """What a deploy does to one unit: `restart` it or `reload` it (a tuple: plans compare
    and unpack them as pairs)."""

    verb: str
    unit: str

    @property
    def restarts(self):
        return self.verb == "restart"


def restart(unit):
    return Action("restart", unit)


def reload(unit):
    return Action("reload", unit)


class Stack:
    """One app's front server, app server and init system, as one host runs them."""

    def __init__(self, s, name, front, app_server):
        self.s, self.name = s, name
        self.front_server, self.app = front, app_server
        self.init = inits.of(s)

    # -- what the roles say, under the names plans use
    @property
    def front(self):
        """The front server's service name (nginx, apache2)."""
        return self.front_server.name

    @property
    def app_server(self):
        return self.app.name if self.app else ""

    @property
    def venv_requirement(self):
        return self.app.venv_requirement if self.app else ""

    @property
    def restarts_to_switch(self):
        return bool(self.app and self.app.restarts_to_switch)

    @property
    def streams_only_listed(self):
        return self.front_server.streams_only_listed

    @property
    def sites_enabled(self):
        return self.front_server.sites_enabled

    @property
    def main_conf(self):
        return self.front_server.main_conf

    @property
    def packages(self):
        # the front server, the app server (in the app's venv: python3-venv), ssl-cert for
        # the catch-all's self-signed 443
        front = self.front_server.packages
        app = self.app.packages + ("python3-venv",) if self.app else ()
        return front[:1] + app + front[1:]

    def test_command(self, main_conf):
        return self.front_server.test_command(main_conf)

    def catchall_name(self):
        return self.front_server.catchall_name(self.s)

    def catchall_file(self):
        return self.front_server.catchall_file(self.s)

    @property
    def two_tier(self):
        return self.s.nginx in self.front_server.two_tier_shapes

    @property
    def caches(self):
        return self.s.nginx in self.front_server.caching_shapes

    # -- files
    def site_file(self, fleet=None):
        """fleet: for an app host behind load balancers, their addresses (trusted for X-Real-IP)."""
        s = self.s
        if self.front_server.kind == t.APACHE:
            content = t.render("apache/site.conf.j2", s,
                               body_limit_bytes=t.size_bytes(s.client_max_body_size))
        else:
            content = t.render("nginx/site.conf.j2", s, lb=None, app_protocol=self.app.protocol,
                               app_server_name=self.app.name, trusted_proxies=(list(fleet.lb_addresses) if fleet else [])
                               + list(s.trusted_proxies))
        return t.RenderedFile(self.front_server.site_path(f"{s.app_name}.conf"), content,
                              self.front_server.kind)

    def files(self, fleet=None):
        s = self.s
        units = self.init.unit_files(s) if self.app.has_units else []
        return [
            self.catchall_file(),
            self.site_file(fleet),
            *self.app.config_files(s),
            *units,
            self.entry_file(),
            self.run_file(),
            self.maintenance_page(),
            *self.error_pages(),
        ] + self.init.worker_files(s)

    def entry_file(self):
        """The release's WSGI entry module (ops.config.wsgispec): env file, then the app."""
        s = self.s
        return t.RenderedFile(s.wsgi_file, t.render("wsgi/entry.py.j2", s, spec=s.wsgi_spec),
                              t.WSGI, in_release=True)

    def maintenance_page(self):
        """The 503 page of maintenance mode: the project's own file, verbatim, or ours."""
        s = self.s
        content = (_project_page(s, "maintenance.page", s.maintenance.page) if s.maintenance.page
                   else t.render("maintenance.html.j2", s))
        return t.RenderedFile(s.maintenance_page, content, t.PAGE)

    def error_pages(self):
        """The front server's own 500/502/504 pages (the app's own errors pass as they are):
        the project's files, verbatim, or ours."""
        s, own = self.s, dict(self.s.error_pages)
        return [t.RenderedFile(f"{s.error_pages_dir}/{code}.html",
                               _project_page(s, f"error_pages.{code}", own[code]) if code in own
                               else t.render("error.html.j2", s, code=code), t.PAGE)
                for code in daytwo.ERROR_CODES]

    def run_file(self):
        """The release's command runner: hooks, `fab exec` and workers run as the app does."""
        return t.RenderedFile(self.s.run_file, t.render("wsgi/run.py.j2", self.s), t.WSGI,
                              0o755, in_release=True)

    # -- what the host runs
    def app_units(self):
        """Units of the app server (restarted when their unit file changes)."""
        return self.init.app_units(self.s) if self.app and self.app.has_units else []

    def worker_units(self):
        """The app's workers (ops.targets.daytwo): restarted onto the new release at every deploy."""
        return [self.s.worker_unit(w) for w in self.s.workers]

    def units(self):
        return [self.front] + self.app_units() + self.worker_units()

    def in_place_reload(self):
        return self.app.in_place_reload(self.s) if self.app else None

    def process_units(self, workers=None):
        """The units that run the app's code (not its socket): the app server's and the
        workers' (`workers`; default: the description's)."""
        workers = self.worker_units() if workers is None else workers
        return [u for u in self.app_units() if not u.endswith(".socket")] + list(workers)

    def log_sources(self):
        """(journal units, log files): the app's and its workers' logs, then the front
        server's access and error logs for this site (mod_wsgi writes the app's stderr into
        the site's error log)."""
        journal, files = self.init.logs_of(self.process_units())
        return journal, self.front_server.log_files(self.s) + files

    # -- checks on the host
    def check_lines(self, meta, cand, sites):
        """Shell lines checking the configs under `meta`/etc (a release's) in the context of
        the host's whole server config: every other enabled site plus our `sites`; then the
        app server's own checker and the init's on the app's units."""
        lines = self.front_server.check_in_context(
            cand, [site.path.rsplit("/", 1)[1] for site in sites],
            [f"cp {q(meta + '/etc' + site.path)} {q(cand)}/sites/" for site in sites])
        if not self.app_units():
            return lines
        lines += self.app.check_lines(self.s, meta)
        command = self.init.check_command(
            [f"{meta}/etc{path}" for path in self.init.unit_paths(self.s).values()])
        return lines + ([command] if command else [])

    def check_in_context(self, cand, names, add_sites):
        return self.front_server.check_in_context(cand, names, add_sites)

    # -- services
    def reload(self, unit):
        if unit == self.front:
            return self.front_server.reload(self.init)
        if unit == self.in_place_reload():
            return self.app.in_place_reload_lines(self.s)
        return self.init.reload(unit)

    def restart(self, unit):
        return self.init.restart(unit) if unit in self.app_units() + self.worker_units() \
            else self.init.service_restart(unit)

    def going_back(self, workers=None):
        """Services after returning to an earlier release: the app server and the workers
        (`workers`: that release's; default: the description's) restarted (they may be
        crash-looping on the failed code), the front server reloaded."""
        workers = self.worker_units() if workers is None else workers
        return [restart(u) for u in self.process_units(workers)] + [reload(self.front)]

    # -- provision
    def provision_lines(self):
        """The front server's provisioning script, the app server's host settings, then the
        front server's own."""
        front = self.front_server.provision_lines(self.s, self.init)
        app = self.app.provision_lines(self.s) if self.app else []
        return front[:1] + app + front[1:]

    def provision_dirs(self):
        return self.front_server.provision_dirs(self.s)

    def provisioned_files(self):
        """Files this version's configs rely on that only provision puts on a host: a host
        set up by an older flask-ops lacks them, and the deploy asks for provision first."""
        return [self.s.acme_webroot + "/.well-known/acme-challenge"] \
            + self.front_server.provisioned_files()

    # -- verify
    def app_processes(self):
        """(shell command printing the app's pids, how many there must be, fail-fast command):
        the app server's and each worker's main process."""
        pids, expected, fail_fast = self.app.processes(self.s, self.init)
        for unit in self.worker_units():
            pids += f"; {self.init.worker_pid_command(unit)}"
            fail_fast += f" && {{ {self.init.fail_fast_command(unit)}; }}"
        return pids, expected + len(self.worker_units()), fail_fast

    def wake_command(self):
        return self.app.wake_command(self.s)

    def remove_workers(self, units):
        """Stop and delete worker units (dropped from the description, or a failed first
        deploy's)."""
        lines = []
        for unit in units:
            lines += self.init.remove(unit) + [f"rm -f {q(self.init.unit_file_for(unit))}"]
        return lines + (self.init.before_restart() if units else [])

    def remove_app(self):
        """Stop the app server's units (mod_wsgi's daemons stop with the site)."""
        return [line for unit in reversed(self.app_units()) for line in self.init.remove(unit)]


class LoadBalancer(Stack):
    """nginx in front of a fleet's app hosts: the proxy (or cache) shape over their
    addresses, with no app server of its own."""

    MAX_FAILS, FAIL_TIMEOUT, CONNECT_TIMEOUT = 3, "10s", "2s"

    def __init__(self, s):
        shape = s.nginx if s.nginx in ("proxy", "cache") else "proxy"
        super().__init__(dataclasses.replace(s, nginx=shape), "lb", frontservers.Nginx(), None)

    def site_name(self):
        return f"{self.s.app_name}-lb.conf"

    def files(self, upstreams=()):
        s = self.s
        return [
            self.catchall_file(),
            t.RenderedFile(self.front_server.site_path(self.site_name()),
                           t.render("nginx/site.conf.j2", s, lb=list(upstreams), trusted_proxies=[],
                                    lb_max_fails=self.MAX_FAILS, lb_fail_timeout=self.FAIL_TIMEOUT,
                                    lb_connect_timeout=self.CONNECT_TIMEOUT),
                           t.NGINX),
            self.maintenance_page(),
            *self.error_pages(),
        ]

    def worker_units(self):
        return []

    @property
    def candidate_dir(self):
        return f"/etc/flask-ops/{self.s.app_name}/lb-candidate"


def _project_page(s, key, page):
    """A page the front server sends to anyone: an HTML file of the project, never one that
    is (or links to) a secret, and never one the release would leave out."""
    from .. import safeio, tree

    root = Path(s.project_root).resolve()
    path = Path(s.project_root, page)
    if not page.lower().endswith((".html", ".htm")):
        raise OpsError(f"deploy.{key}: {page} is not an .html file; the front server sends this "
                       "page to anyone")
    if safeio.secret_name(page) or tree.spec(s.exclude).match_file(page):
        raise OpsError(f"deploy.{key}: {page} is a path the release leaves out (a secret or an "
                       "excluded file); name an HTML page")
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise OpsError(f"deploy.{key}: cannot read {path}") from None
    if root not in resolved.parents:
        raise OpsError(f"deploy.{key}: {page} leads out of the project ({resolved})")
    data = safeio.read_regular(path, f"deploy.{key}", limit=1024 * 1024)
    if safeio.secret_content(data):
        raise OpsError(f"deploy.{key}: {page} holds a private key or a credential")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise OpsError(f"deploy.{key}: {page} is not UTF-8 text") from None


# name -> (front server, app server): the pairings a description's `stack` names.
STACKS = {
    "nginx-uwsgi": (frontservers.Nginx, appservers.Uwsgi),
    "nginx-gunicorn": (frontservers.Nginx, appservers.Gunicorn),
    "apache-modwsgi": (frontservers.Apache, appservers.ModWsgi),
}
NAMES = tuple(STACKS)


def app_server_of(name):
    """The app server a stack's name pairs (settings asks it for names and refusals)."""
    return STACKS[name][1]()


def of(s):
    front, app = STACKS[s.stack]
    return Stack(s, s.stack, front(), app())
