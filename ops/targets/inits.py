"""Init systems: how an app server's unit is written, checked, started and watched.

One object per init system. Adding one (runit, say) means a class here and its template.
"""

import shlex

from .. import scripts
from ..errors import CheckError
from . import appservers, checkrun, templating, upstart

q = shlex.quote


class Init:
    name = worker_template = ""
    templates = {}  # is a socket unit -> the template of the app server's ({server}) unit

    def unit_paths(self, s):
        """{unit: its file} for the app server's units, in the order they start."""
        raise NotImplementedError

    def unit_files(self, s):
        # the file kind is the init's name: templating.SYSTEMD, templating.UPSTART
        return [templating.RenderedFile(path, templating.render(
                    self.template(s, unit.endswith(".socket")), s, uwsgi_bin=appservers.UWSGI_BIN), self.name)
                for unit, path in self.unit_paths(s).items()]

    def template(self, s, socket):
        """The template of the app server's unit (or its socket's): per app server."""
        return self.templates[socket].format(server=s.app_server)

    def app_units(self, s):
        return list(self.unit_paths(s))

    def logs_of(self, units):
        """(journal units, log files) where these units' output goes."""
        return list(units), []

    def worker_files(self, s):
        """One unit per worker (ops.targets.daytwo), started from the release's runner."""
        return [templating.RenderedFile(self.worker_path(s, w), templating.render(
            self.worker_template, s, w=w), self.name) for w in s.workers]

    def worker_path(self, s, worker):
        return self.unit_file_for(s.worker_unit(worker))

    def worker_glob(self, s):
        """Where the host's worker units of this app are (a dropped one is removed)."""
        return self.unit_file_for(f"{s.app_name}-worker-*")

    # -- the host's own services (nginx, apache2): host-side scripts include service.sh and
    # take the init's name as their first argument; these are the one-line forms.
    def service(self, action, name):
        """start, stop, restart or reload a host service."""
        raise NotImplementedError

    def service_is_active(self, name):
        raise NotImplementedError

    def service_restart(self, name):
        """Lines that enable a host service and restart it (a failed one too)."""
        raise NotImplementedError


class Systemd(Init):
    """uWSGI's listening socket is a socket unit of its own (socket activation): systemd
    creates it for the app's user and the web server's group, uWSGI never runs as root, and
    connections wait in its queue while the service restarts."""

    def check_here(self, files, workdir):
        """systemd-analyze verify, by the script the deploy runs on the host (any output from
        the verifier fails), on every unit at once: the app's service requires its socket."""
        checkrun.run(["bash", "-c", scripts.text("systemd_verify.sh"), "systemd_verify.sh",
                      *checkrun.write(files, workdir)], "systemd-analyze verify")


    name, worker_template = "systemd", "systemd/worker.service.j2"
    templates = {False: "systemd/{server}.service.j2", True: "systemd/{server}.socket.j2"}

    @staticmethod
    def unit_file_for(unit):
        return f"/etc/systemd/system/{unit if unit.endswith('.socket') else unit + '.service'}"

    def socket(self, s):
        # the socket unit makes /run/<app> (DirectoryMode=)
        return f"/run/{s.app_name}/{s.app_server}.sock"

    def master_fifo(self, s):
        # the service's own RuntimeDirectory= (APP:APP 0700): not the socket's directory,
        # which systemd would remove with the service
        return (f"/run/{s.service}/master.fifo"
                if appservers.APP_SERVERS[s.app_server].has_master_fifo else None)

    def unit_paths(self, s):
        socket = f"{s.service}.socket"
        return {socket: self.unit_file_for(socket), s.service: self.unit_file_for(s.service)}

    def check_command(self, paths):
        """The unit files, checked together (the service requires the socket) on the host as
        on the deploying machine."""
        return scripts.command("systemd_verify.sh", *paths)

    def before_restart(self):
        return ["systemctl daemon-reload"]

    def restart(self, unit):
        lines = [f"systemctl reset-failed {q(unit)} 2>/dev/null || true"]
        if unit.endswith(".socket"):
            # A new socket while the old uWSGI holds the old one would strand it: the service
            # stops first, and is started on the new socket right after (its own restart).
            lines.append(f"systemctl stop {q(unit[:-len('.socket')])}")
        return lines + [f"systemctl enable --quiet {q(unit)} && systemctl restart {q(unit)}"]

    def reload(self, unit):
        # A socket has nothing to reload: its service's reload keeps it.
        return [] if unit.endswith(".socket") else [f"systemctl reload {q(unit)}"]

    def main_pid_command(self, unit):
        return f"main=$(systemctl show -p MainPID --value {q(unit)}); " \
               f"[ \"$main\" = 0 ] || {{ echo \"$main\"; pgrep -P \"$main\"; }}"

    def worker_pid_command(self, unit):
        return f"main=$(systemctl show -p MainPID --value {q(unit)}); [ \"$main\" = 0 ] || echo \"$main\""

    def fail_fast_command(self, unit):
        """A unit in a restart loop (a crashing app) fails verify at once (its log follows
        in the failure message, secrets masked: ops/scripts/app_log.py)."""
        return (f"state=$(systemctl show -p ActiveState -p SubState --value {q(unit)} | "
                f"tr '\\n' ' '); case \"$state\" in failed*|*auto-restart*) "
                f"echo {q(unit)}\" is $state\" >&2; exit 1;; esac")

    def remove(self, unit):
        return [f"systemctl disable --now --quiet {q(unit)} 2>/dev/null || true"]

    def service(self, action, name):
        return f"systemctl {action} {q(name)}"

    def service_is_active(self, name):
        return f"systemctl is-active --quiet {q(name)}"

    def service_restart(self, name):
        return [f"systemctl reset-failed {q(name)} 2>/dev/null || true",
                f"systemctl enable --quiet {q(name)} && systemctl restart {q(name)}"]


class Upstart(Init):
    """Ubuntu 14.04's init, upstart 1.12. Its jobs are checked strictly by ops.targets.upstart before
    upload (no checker runs on the host) and run for real on the upstart staging host
    (ops.staging.upstart, tests/test_e2e_upstart.py)."""

    def check_here(self, files, workdir):
        """ops.targets.upstart's strict parse of each job (the host has no checker of its own)."""
        for f in files:
            try:
                upstart.check(f.content)
            except upstart.UpstartSyntaxError as exc:
                raise CheckError("upstart job check", f"{f.path}: {exc}") from None


    name, worker_template = "upstart", "upstart/worker.conf.j2"

    @staticmethod
    def unit_file_for(unit):
        return f"/etc/init/{unit}.conf"

    def socket(self, s):
        # upstart has no RuntimeDirectory= and its setuid applies to pre-start too, so the
        # socket lives in a directory that provisioning creates once.
        return f"{s.shared}/run/uwsgi.sock"

    def master_fifo(self, s):
        return None  # verify polls instead of waking uWSGI through its FIFO

    def logs_of(self, units):
        # upstart 1.12's `console log`: one file per job, no journal
        return [], [f"/var/log/upstart/{u}.log" for u in units]

    templates = {False: "upstart/{server}.conf.j2"}

    def unit_paths(self, s):
        return {s.service: self.unit_file_for(s.service)}

    def check_command(self, paths):
        return None  # no upstart checker on a systemd host; checked before upload instead

    def before_restart(self):
        return []

    def restart(self, unit):
        return [f"initctl reload-configuration && (initctl restart {q(unit)} || "
                f"initctl start {q(unit)})"]

    def reload(self, unit):
        return [f"initctl reload {q(unit)}"]

    def main_pid_command(self, unit):
        return (f"main=$(initctl status {q(unit)} | sed -n 's/.*process \\([0-9]*\\).*/\\1/p'); "
                f"[ -z \"$main\" ] || {{ echo \"$main\"; pgrep -P \"$main\"; }}")

    def worker_pid_command(self, unit):
        return f"initctl status {q(unit)} | sed -n 's/.*process \\([0-9]*\\).*/\\1/p'"

    def fail_fast_command(self, unit):
        """A job upstart gave up on (it exited as it started, `respawn limit` times) fails
        verify at once."""
        return (f"case \"$(initctl status {q(unit)} 2>&1)\" in *stop/waiting*|*'Unknown job'*) "
                f"echo {q(unit)}' stopped: it exits as soon as it starts' >&2; exit 1;; esac")

    def remove(self, unit):
        return [f"initctl stop {q(unit)} 2>/dev/null || true"]

    # The host's packaged services are sysv scripts under upstart (Ubuntu 14.04's nginx and
    # apache2 were): `service` runs them, update-rc.d links them into the runlevels.
    def service(self, action, name):
        return f"service {q(name)} {action}"

    def service_is_active(self, name):
        return f"service {q(name)} status >/dev/null 2>&1"

    def service_restart(self, name):
        return [f"update-rc.d {q(name)} enable >/dev/null && service {q(name)} restart"]


INITS = {cls.name: cls for cls in (Systemd, Upstart)}


def of(s):
    return INITS[s.init]()
