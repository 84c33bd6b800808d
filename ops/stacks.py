"""Stacks: one object per way of serving the app, owning everything that differs between
them — the files it renders, its packages, paths and services, how its configs are checked
on the host, how it reloads, and how its app processes are found.

Adding a stack (Gunicorn behind nginx, say) means one class here and its templates.
"""

import dataclasses
import shlex
from pathlib import Path

from . import daytwo, inits, scripts, templating as t
from .errors import OpsError

q = shlex.quote

# Which front server provision set up on this host (port 80 has one): preflight compares it
# with the stack being deployed, so a switch of stack asks for provision instead of failing
# half way with the other server's config errors.
FRONT_MARKER = "/etc/flask-ops/front-server"


class Stack:
    """What every front server shares: sites-available/sites-enabled under `etc`."""

    name = front = etc = main_conf = candidate_kind = app_server = ""
    venv_requirement = ""  # an app server that runs from the app's venv: its requirement
    # Whether the app server must restart to run a new release (else its graceful reload does).
    restarts_to_switch = False
    packages = ()
    provision_script = ""

    def __init__(self, s):
        self.s = s
        self.init = inits.of(s)

    @property
    def sites_available(self):
        return f"{self.etc}/sites-available"

    @property
    def sites_enabled(self):
        return f"{self.etc}/sites-enabled"

    def catchall_name(self):
        return f"000-flask-ops-catchall-{self.s.listen_port}.conf"

    def catchall_file(self):
        """The host's default site (shared by every app): unknown names refused, ACME
        challenges answered."""
        return t.RenderedFile(f"{self.sites_available}/{self.catchall_name()}",
                              t.render(f"{self.candidate_kind}/catchall.conf.j2", self.s),
                              self.candidate_kind)

    # -- what the host runs
    def app_units(self):
        """Units of the app's own processes (restarted when their unit file changes)."""
        return []

    def worker_units(self):
        """The app's workers (ops.daytwo): restarted onto the new release at every deploy."""
        return [self.s.worker_unit(w) for w in self.s.workers]

    def units(self):
        return [self.front] + self.app_units() + self.worker_units()

    @property
    def two_tier(self):
        return False

    @property
    def caches(self):
        return False

    # Whether the front server's reload is what switches the app's code; else the front
    # server reloads only when its own config changed, and the app switches in place.
    front_reloads_the_app = True

    def in_place_reload(self):
        """The label of the app's own graceful reload when it is no unit's (mod_wsgi's
        daemons), run when the front server is not reloaded; None: the units' reloads do it."""
        return None

    # Whether a generator response reaches the client chunk by chunk only under the
    # `streaming` paths (nginx buffers every other uwsgi/proxy response).
    streams_only_listed = False

    # -- checks on the host
    def check_lines(self, meta, cand, sites):
        """Shell lines checking the configs under `meta`/etc (a release's) in the context of
        the host's whole server config: every other enabled site plus our `sites`."""
        return self.check_in_context(cand, [site.path.rsplit("/", 1)[1] for site in sites],
                                     [f"cp {q(meta + '/etc' + site.path)} {q(cand)}/sites/"
                                      for site in sites])

    def check_in_context(self, cand, names, add_sites):
        """Candidate sites dir = every enabled site but ours (`names`), then `add_sites` lines
        put ours in; the host's main config pointed at it; the server's checker on that."""
        return ([scripts.command("candidate_sites.sh", self.sites_enabled, f"{cand}/sites", *names)]
                + list(add_sites)
                + [scripts.command("candidate_main.py", self.candidate_kind, self.main_conf,
                                   f"{cand}/sites", f"{cand}/main.conf"),
                   " ".join(q(a) for a in self.test_command(f"{cand}/main.conf")) + " 2>&1"])

    @staticmethod
    def test_command(main_conf):
        """The server's own checker on a whole main config (argv)."""
        raise NotImplementedError

    # -- services
    def reload(self, unit):
        return [self.init.service("reload", unit)]

    def restart(self, unit):
        return self.init.restart(unit) if unit in self.app_units() + self.worker_units() \
            else self.init.service_restart(unit)

    def going_back(self, workers=None):
        """Services after returning to an earlier release: the app server and the workers
        (`workers`: that release's; default: the description's) restarted (they may be
        crash-looping on the failed code), the front server reloaded."""
        workers = self.worker_units() if workers is None else workers
        return [("restart", u) for u in self.process_units(workers)] + [("reload", self.front)]

    def process_units(self, workers=None):
        """The units that run the app's code (not its socket): the app server's and the
        workers' (`workers`; default: the description's)."""
        workers = self.worker_units() if workers is None else workers
        return [u for u in self.app_units() if not u.endswith(".socket")] + list(workers)

    def log_sources(self):
        """(journal units, log files): the app's and its workers' logs, then the front
        server's access and error logs for this site (mod_wsgi writes the app's stderr into
        the site's error log)."""
        s, units = self.s, self.process_units()
        files = [f"/var/log/{self.front}/{s.app_name}.access.log",
                 f"/var/log/{self.front}/{s.app_name}.error.log"]
        if s.init == "upstart":
            return [], files + [f"/var/log/upstart/{u}.log" for u in units]
        return units, files

    def entry_file(self):
        """The release's WSGI entry module (ops.wsgispec): env file, then the app."""
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

    # -- provision
    def provision_dirs(self):
        return []

    def provision_commands(self):
        return []

    def provisioned_files(self):
        """Files this version's configs rely on that only provision puts on a host: a host
        set up by an older flask-ops lacks them, and the deploy asks for provision first."""
        return [self.s.acme_webroot + "/.well-known/acme-challenge"]

    # -- verify
    def app_processes(self):
        """(shell command printing the app's pids, how many there must be, fail-fast command):
        the web app's (web_processes) and each worker's main process."""
        pids, expected, fail_fast = self.web_processes()
        for unit in self.worker_units():
            pids += f"; {self.init.worker_pid_command(unit)}"
            fail_fast += f" && {{ {self.init.fail_fast_command(unit)}; }}"
        return pids, expected + len(self.worker_units()), fail_fast

    def web_processes(self):
        raise NotImplementedError

    def wake_command(self):
        """A command that makes the app server notice a finished reload at once (verify runs
        it while it waits); by default nothing."""
        return "true"

    def remove_workers(self, units):
        """Stop and delete worker units (dropped from the description, or a failed first
        deploy's)."""
        lines = []
        for unit in units:
            lines += self.init.remove(unit) + [f"rm -f {q(self.init.unit_file_for(unit))}"]
        return lines + (self.init.before_restart() if units else [])


class NginxUwsgi(Stack):
    name, front, etc, main_conf, candidate_kind = (
        "nginx-uwsgi", "nginx", "/etc/nginx", "/etc/nginx/nginx.conf", "nginx")
    packages = ("nginx", "uwsgi-core", "uwsgi-plugin-python3", "python3-venv", "ssl-cert")
    provision_script = "front_nginx.sh"
    streams_only_listed = True
    front_reloads_the_app = False
    app_server = "uwsgi"
    UWSGI_PLUGIN = "python3"

    @property
    def two_tier(self):
        return self.s.nginx in ("proxy", "cache")

    @property
    def caches(self):
        return self.s.nginx == "cache"

    def app_units(self):
        return self.init.app_units(self.s)

    def files(self, fleet=None):
        """fleet: for an app host behind load balancers, their addresses (trusted for X-Real-IP)."""
        s = self.s
        return [
            self.catchall_file(),
            t.RenderedFile(f"{self.sites_available}/{s.app_name}.conf",
                           t.render("nginx/site.conf.j2", s, lb=None,
                                    trusted_proxies=(list(fleet.lb_addresses) if fleet else [])
                                    + list(s.trusted_proxies)),
                           t.NGINX),
            *self.app_server_files(),
            *self.init.unit_files(s),
            self.entry_file(),
            self.run_file(),
            self.maintenance_page(),
            *self.error_pages(),
        ] + self.init.worker_files(s)

    def app_server_files(self):
        """The app server's own config: uWSGI's ini (gunicorn takes flags in its unit)."""
        s = self.s
        return [t.RenderedFile(s.uwsgi_ini, t.render("uwsgi/uwsgi.ini.j2", s,
                                                     plugin=self.UWSGI_PLUGIN), t.UWSGI)]

    def check_lines(self, meta, cand, sites):
        lines = super().check_lines(meta, cand, sites) + self.app_server_check_lines(meta)
        command = self.init.check_command(
            [f"{meta}/etc{path}" for path in self.init.unit_paths(self.s).values()])
        return lines + ([command] if command else [])

    def app_server_check_lines(self, meta):
        """The app server's own checker on a release's config (uWSGI's strict parse)."""
        return [" ".join(q(a) for a in uwsgi_check_command(f"{meta}/etc{self.s.uwsgi_ini}"))
                + " >/dev/null"]

    @staticmethod
    def test_command(main_conf):
        return ["nginx", "-t", "-q", "-c", main_conf]

    def reload(self, unit):
        if unit == self.front:
            return [scripts.command("nginx_reload.sh", self.init.name)]
        return self.init.reload(unit)

    def provision_commands(self):
        # The kernel cuts the app socket's listen queue to net.core.somaxconn.
        return [scripts.command("ensure_somaxconn.sh", str(self.s.listen_queue)),
                scripts.command("ensure_nginx_names.sh", str(NAMES_HASH_BUCKET))]

    def provision_dirs(self):
        return [("/var/cache/nginx", "root", "root", "755"),
                (f"/etc/flask-ops/{self.s.app_name}", "root", "root", "755")]

    def web_processes(self):
        # The uWSGI master (the unit's main process) and its workers.
        unit = self.s.service
        return (self.init.main_pid_command(unit), self.s.processes + 1,
                self.init.fail_fast_command(unit))

    def wake_command(self):
        # A newline is no command for uWSGI's master FIFO, but it wakes the master's loop,
        # which reaps the workers a graceful reload stopped and re-executes: about 0.3 s
        # instead of the next 1 s check. Non-blocking: while the master re-executes nobody
        # reads the FIFO, and the write fails (ignored); never creates a file in its place.
        fifo = self.s.master_fifo
        if not fifo:
            return "true"
        return f"printf '\\n' | dd of={q(fifo)} oflag=nonblock conv=nocreat status=none 2>/dev/null || true"

    def remove_app(self):
        return [line for unit in reversed(self.app_units()) for line in self.init.remove(unit)]


class NginxGunicorn(NginxUwsgi):
    """nginx in front of gunicorn (gthread workers) on a systemd socket: what websockets
    (Flask-Sock) need. gunicorn runs from the release's venv, so it restarts onto each new
    release; requests wait in the socket's queue meanwhile, and in-flight ones finish first
    (SIGTERM: a graceful stop of up to drain_timeout)."""

    name, app_server = "nginx-gunicorn", "gunicorn"
    packages = ("nginx", "python3-venv", "ssl-cert")
    restarts_to_switch = True
    # Installed into the app's venv with its own requirements (pure Python, from the
    # wheelhouse like them), unless the project pins its own: the version our unit is written for.
    venv_requirement = "gunicorn==23.0.0"

    def app_server_files(self):
        return []

    def app_server_check_lines(self, meta):
        return []  # its unit, checked by the init's checker, is all of its config

    def wake_command(self):
        return "true"


# The module name of the release's entry for gunicorn (ops/templates/wsgi/entry.py.j2).
GUNICORN_ENTRY = "flask_ops_entry"


class ApacheModWsgi(Stack):
    name, front, etc, main_conf, candidate_kind = (
        "apache-modwsgi", "apache2", "/etc/apache2", "/etc/apache2/apache2.conf", "apache")
    app_server = "mod_wsgi"
    # ssl-cert: the self-signed certificate of the catch-all's 443 virtual host.
    packages = ("apache2", "libapache2-mod-wsgi-py3", "python3-venv", "ssl-cert")
    provision_script = "front_apache.sh"
    front_reloads_the_app = False

    def in_place_reload(self):
        return f"{self.s.app_name} mod_wsgi daemons"

    def reload(self, unit):
        if unit == self.in_place_reload():
            # mod_wsgi 4.1+: SIGUSR1 makes each daemon process take no new request, finish
            # those in flight (up to drain_timeout) and start again, from the release
            # `current` now points at. Apache's own reload would close its clients' idle
            # keep-alive connections and give requests in flight 3 s at most.
            return [f"pkill -USR1 -u {q(self.s.app_user)} -f {q('^[(]wsgi:')} || true"]
        return super().reload(unit)

    def files(self, fleet=None):
        s = self.s
        return [
            self.catchall_file(),
            t.RenderedFile(f"{self.sites_available}/{s.app_name}.conf",
                           t.render("apache/site.conf.j2", s,
                                    body_limit_bytes=t.size_bytes(s.client_max_body_size)), t.APACHE),
            self.entry_file(),
            self.run_file(),
            self.maintenance_page(),
            *self.error_pages(),
        ] + self.init.worker_files(s)

    @staticmethod
    def test_command(main_conf):
        # apache2ctl reads /etc/apache2/envvars (APACHE_LOG_DIR, APACHE_RUN_USER, ...) first.
        return ["apache2ctl", "-t", "-f", main_conf]

    def provisioned_files(self):
        # The catch-all's 443 virtual host needs mod_ssl and the host's self-signed pair.
        return super().provisioned_files() + [
            f"/etc/apache2/mods-enabled/{m}.load" for m in ("wsgi", "headers", "ssl", "http2",
                                                            "rewrite", "unique_id")] + [
            "/etc/ssl/private/ssl-cert-snakeoil.key"]

    def web_processes(self):
        # mod_wsgi daemon processes: "(wsgi:APP)" (display-name), run as the app's user.
        # mod_wsgi cuts the name to the length of Apache's own argv[0] (17 characters for
        # /usr/sbin/apache2), so an app name over 10 characters never matched in full.
        return (f"pgrep -u {q(self.s.app_user)} -f {q('^[(]wsgi:')}", self.s.processes, "true")

    def remove_app(self):
        return []  # the app lives inside Apache: taking the site out stops it


class LoadBalancer(NginxUwsgi):
    """nginx in front of a fleet's app hosts: the proxy (or cache) shape over their addresses."""

    name = "lb"
    packages = ("nginx", "ssl-cert")
    MAX_FAILS, FAIL_TIMEOUT, CONNECT_TIMEOUT = 3, "10s", "2s"

    def __init__(self, s):
        shape = s.nginx if s.nginx in ("proxy", "cache") else "proxy"
        super().__init__(dataclasses.replace(s, nginx=shape))

    def site_name(self):
        return f"{self.s.app_name}-lb.conf"

    def files(self, upstreams=()):
        s = self.s
        return [
            self.catchall_file(),
            t.RenderedFile(f"{self.sites_available}/{self.site_name()}",
                           t.render("nginx/site.conf.j2", s, lb=list(upstreams), trusted_proxies=[],
                                    lb_max_fails=self.MAX_FAILS, lb_fail_timeout=self.FAIL_TIMEOUT,
                                    lb_connect_timeout=self.CONNECT_TIMEOUT),
                           t.NGINX),
            self.maintenance_page(),
            *self.error_pages(),
        ]

    def app_units(self):
        return []

    def worker_units(self):
        return []

    def provision_commands(self):
        return [scripts.command("ensure_nginx_names.sh", str(NAMES_HASH_BUCKET))]

    @property
    def candidate_dir(self):
        return f"/etc/flask-ops/{self.s.app_name}/lb-candidate"


def _project_page(s, key, page):
    """A page the front server sends to anyone: an HTML file of the project, never one that
    is (or links to) a secret, and never one the release would leave out."""
    from . import safeio, tree

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


def uwsgi_check_command(ini):
    # --get parses the ini (strict: unknown option is fatal), loads its plugins, prints one
    # option and exits: nothing is bound, imported or written.
    return [inits.UWSGI_BIN, "--ini", ini, "--get", "socket"]


# nginx's server_names_hash_bucket_size: its default (64) refuses a server name longer than
# about 55 characters; provision sets this (front_nginx.sh) unless the host sets its own.
NAMES_HASH_BUCKET = 256

STACKS = {cls.name: cls for cls in (NginxUwsgi, NginxGunicorn, ApacheModWsgi)}
NAMES = tuple(STACKS)


def of(s):
    return STACKS[s.stack](s)
