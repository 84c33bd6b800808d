"""App servers: the program that runs the app's code (uWSGI, gunicorn, mod_wsgi inside
Apache). One object per server owns what differs between them: its unit's name, its own
config and checker, the release's entry module, how it switches to a new release (graceful
reload, restart, or an in-place reload with no unit), how its processes are counted and woken
during verify, and what it cannot do (websockets, init systems).

A stack (ops.targets.stacks) pairs one of these with a front server (ops.targets.frontservers); the init
system (ops.targets.inits) writes and drives its units.
"""

import shlex

from .. import scripts
from . import checkrun, templating as t, upstart

q = shlex.quote
UWSGI_BIN = "/usr/bin/uwsgi"
# The module name of the release's entry for gunicorn (ops/templates/wsgi/entry.py.j2).
GUNICORN_ENTRY = "flask_ops_entry"


class AppServer:
    name = ""
    packages = ()  # Debian packages it needs (the app's venv is always python3-venv's)
    venv_requirement = ""  # a server that runs from the app's venv: its requirement
    # Whether it must restart to run a new release (else its graceful reload does).
    restarts_to_switch = False
    # Whether its units are the init's (False: it lives inside the front server).
    has_units = True
    # Whether it can hand a connection over to the app (Flask-Sock's websockets).
    websockets = False
    inits = ("systemd", "upstart")  # the init systems its units are written for
    why_inits = ""  # why only those
    no_websockets = ""  # why it has none (the refusal of `websockets:` says it)
    # What a front server speaks to it: "uwsgi" (nginx's uwsgi_pass), "http" (proxy_pass to
    # its socket); None when it runs inside the front server.
    protocol = None
    # Whether it has a command FIFO a deploy writes to (uWSGI's master FIFO: wake_command).
    has_master_fifo = False

    def unit(self, s):
        """The name of its service unit (with `.socket`: its socket's)."""
        return f"{s.app_name}-{self.name}"

    def entry_path(self, s):
        """The release's entry module (wsgi/entry.py.j2): env file, then the app."""
        return f"{s.current}/{s.app_name}.wsgi"

    def config_files(self, s):
        """Its own config files (beside its unit)."""
        return []

    def check_lines(self, s, meta):
        """Its own checker on a release's config (under `meta`/etc)."""
        return []

    def loses_env(self, s, unit, files_by_path):
        """Why the app started by `unit` (its rendered unit file) would run without its env
        file (ops.targets.checks' app-environment check), or None."""
        return None

    def provision_lines(self, s):
        return []

    # -- switching and watching
    def in_place_reload(self, s):
        """The label of its own graceful reload when it is no unit's (mod_wsgi's daemons),
        run when the front server is not reloaded; None: the units' reloads do it."""
        return None

    def in_place_reload_lines(self, s):
        raise NotImplementedError

    def processes(self, s, init):
        """(shell command printing its pids, how many there must be, fail-fast command)."""
        unit = self.unit(s)
        # The server's main process (its unit's) and its workers.
        return init.main_pid_command(unit), s.processes + 1, init.fail_fast_command(unit)

    def wake_command(self, s):
        """A command that makes it notice a finished reload at once (verify runs it while it
        waits); by default nothing."""
        return "true"


class SocketServer(AppServer):
    """A server on a unix socket the front server passes requests to."""

    def provision_lines(self, s):
        # The kernel cuts the socket's listen queue to net.core.somaxconn.
        return [scripts.command("ensure_somaxconn.sh", str(s.listen_queue))]


class Uwsgi(SocketServer):
    name, protocol = "uwsgi", "uwsgi"
    has_master_fifo = True
    packages = ("uwsgi-core", "uwsgi-plugin-python3")
    PLUGIN = "python3"
    no_websockets = ("nginx cannot upgrade a connection through uwsgi_pass, and Flask-Sock "
                     "does not run under uWSGI")

    def ini(self, s):
        return f"/etc/flask-ops/{s.app_name}/uwsgi.ini"

    def config_files(self, s):
        return [t.RenderedFile(self.ini(s), t.render("uwsgi/uwsgi.ini.j2", s, plugin=self.PLUGIN),
                               t.UWSGI)]

    def check_lines(self, s, meta):
        return [" ".join(q(a) for a in check_command(f"{meta}/etc{self.ini(s)}")) + " >/dev/null"]

    def check_here(self, files, workdir):
        """uWSGI's own strict parse of each ini on this machine (it imports nothing)."""
        for path in checkrun.write(files, workdir):
            checkrun.run(check_command(path), "uwsgi (strict)")

    def loses_env(self, s, unit, files_by_path):
        # unit -> the ini it starts -> the entry module, which loads the env file
        ini = files_by_path.get(started_ini(unit) or "")
        if ini is None:
            return f"{unit.path} does not start uWSGI with the rendered ini"
        if ini_option(ini.content, "wsgi-file") != s.wsgi_file:
            return (f"{ini.path} does not run {s.wsgi_file}, so the app would start without "
                    f"{s.env_file}")
        return None

    def wake_command(self, s):
        # A newline is no command for uWSGI's master FIFO, but it wakes the master's loop,
        # which reaps the workers a graceful reload stopped and re-executes: about 0.3 s
        # instead of the next 1 s check. Non-blocking: while the master re-executes nobody
        # reads the FIFO, and the write fails (ignored); never creates a file in its place.
        fifo = s.master_fifo
        if not fifo:
            return "true"
        return f"printf '\\n' | dd of={q(fifo)} oflag=nonblock conv=nocreat status=none 2>/dev/null || true"


class Gunicorn(SocketServer):
    """gunicorn (gthread workers) on a systemd socket: what websockets (Flask-Sock) need.
    It runs from the release's venv, so it restarts onto each new release; requests wait in
    the socket's queue meanwhile, and in-flight ones finish first (SIGTERM: a graceful stop
    of up to drain_timeout)."""

    name, protocol = "gunicorn", "http"
    restarts_to_switch = True
    websockets = True
    inits = ("systemd",)
    why_inits = ("its socket unit keeps requests waiting while gunicorn restarts onto a new "
                 "release")
    # Installed into the app's venv with its own requirements (pure Python, from the
    # wheelhouse like them), unless the project pins its own: the version our unit is written for.
    venv_requirement = "gunicorn==23.0.0"

    def entry_path(self, s):
        # gunicorn imports the entry by module name
        return f"{s.current}/{GUNICORN_ENTRY}.py"

    # Its config is its unit's flags, checked by the init's checker: no file, no checker.

    def loses_env(self, s, unit, files_by_path):
        # the unit runs gunicorn through the release's runner, on the entry module
        if f" {s.run_file} -- gunicorn " not in unit.content \
                or f" {GUNICORN_ENTRY}:application" not in unit.content:
            return (f"{unit.path} does not start gunicorn on {s.wsgi_file}, so the app would "
                    f"start without {s.env_file}")
        return None


class ModWsgi(AppServer):
    name = "mod_wsgi"
    packages = ("libapache2-mod-wsgi-py3",)
    has_units = False
    no_websockets = "mod_wsgi cannot hand a connection over to the app"

    def unit(self, s):
        return f"{s.app_name}-uwsgi"  # none runs; the name the settings always had

    def in_place_reload(self, s):
        return f"{s.app_name} mod_wsgi daemons"

    def in_place_reload_lines(self, s):
        # mod_wsgi 4.1+: SIGUSR1 makes each daemon process take no new request, finish
        # those in flight (up to drain_timeout) and start again, from the release
        # `current` now points at. Apache's own reload would close its clients' idle
        # keep-alive connections and give requests in flight 3 s at most.
        return [f"pkill -USR1 -u {q(s.app_user)} -f {q('^[(]wsgi:')} || true"]

    def processes(self, s, init):
        # mod_wsgi daemon processes: "(wsgi:APP)" (display-name), run as the app's user.
        # mod_wsgi cuts the name to the length of Apache's own argv[0] (17 characters for
        # /usr/sbin/apache2), so an app name over 10 characters never matched in full.
        return f"pgrep -u {q(s.app_user)} -f {q('^[(]wsgi:')}", s.processes, "true"


def ini_option(text, option):
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == option:
            return value.strip()
    return None


def started_ini(unit):
    """The uWSGI ini an init unit starts (`uwsgi --ini PATH`), or None."""
    if unit.kind == t.UPSTART:
        commands = upstart.check(unit.content).get("exec", [])
    else:
        commands = [line.split("=", 1)[1] for line in unit.content.splitlines()
                    if line.startswith("ExecStart=")]
    for command in commands:
        argv = shlex.split(command)
        if "--ini" in argv[:-1]:
            return argv[argv.index("--ini") + 1]
    return None


def check_command(ini):
    # --get parses the ini (strict: unknown option is fatal), loads its plugins, prints one
    # option and exits: nothing is bound, imported or written.
    return [UWSGI_BIN, "--ini", ini, "--get", "socket"]


APP_SERVERS = {cls.name: cls for cls in (Uwsgi, Gunicorn, ModWsgi)}
