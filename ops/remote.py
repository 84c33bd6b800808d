"""Running commands on a target: the one place that talks SSH and decides about sudo."""

import io
import shlex

import socket

from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut
from paramiko import SSHConfig, SSHException

from .errors import RemoteError, Unreachable

# What "the host could not be reached or logged into" looks like; anything else raised while
# running a command is a bug of ours and surfaces as one (a traceback), not as a network fault.
NETWORK_ERRORS = (OSError, EOFError, SSHException, socket.timeout)


def connect(c, ssh_config=None):
    """A Remote for the task's host (fab -H). ssh_config: an SSH config file to read first
    (the one staging.up writes), so `fab -H staging1 deploy` needs no ~/.ssh/config edit."""
    if not isinstance(c, Connection):
        raise RemoteError("this task needs a target host: fab -H HOST TASK")
    if ssh_config:
        return open_host(c.original_host, c.config, ssh_config)
    return Remote(c)


def open_host(name, config=None, ssh_config=None):
    """A Remote for a host by name, outside -H (roles, tests, benchmarks)."""
    config = (config or Config()).clone()
    if ssh_config:
        config._set(base_ssh_config=SSHConfig.from_path(str(ssh_config)))
    return Remote(Connection(name, config=config, connect_timeout=10))


class Remote:
    """A target host: runs shell scripts as root (via sudo when not root) and counts them."""

    UPLOAD_TIMEOUT = 20  # seconds without progress before an upload is abandoned

    def __init__(self, connection):
        self.c = connection
        self.commands = 0

    @property
    def name(self):
        return self.c.original_host

    @property
    def address(self):
        return self.c.host

    @property
    def login(self):
        """user@host:port as SSH reaches it (what an error about reaching it must name)."""
        return f"{self.c.user}@{self.c.host}:{self.c.port}"

    def _wrap(self, script):
        if self.c.user == "root":
            return script
        return "sudo -n bash -c " + shlex.quote(script)

    def run(self, script, what, check=True, timeout=None, stdin=None, echo=None):
        """Run a bash script on the host; RemoteError (with its output) when it fails.
        stdin: text the script reads on its standard input (secrets travel this way, never
        in a command line another user on the host could see in `ps`). echo: called with
        each line of output as it arrives (a hook's), besides capturing it."""
        self.commands += 1
        streams = {"hide": True}
        if echo is not None:
            lines = _Lines(echo)
            streams = {"hide": False, "out_stream": lines, "err_stream": lines}
        try:
            result = self.c.run(self._wrap("set -o pipefail\n" + script), warn=True,
                                in_stream=io.StringIO(stdin) if stdin is not None else False,
                                timeout=timeout or 600, **streams)
        except NETWORK_ERRORS as exc:  # network, DNS, SSH, auth: "could not run it"
            raise Unreachable(f"{what}: cannot run on {self.name} ({self.login}): "
                              f"{type(exc).__name__}: {exc}") from None
        except CommandTimedOut as exc:
            raise RemoteError(f"{what}: still running on {self.name} after {exc.timeout}s; "
                              "stopped") from None
        if result.exited != 0 and self.c.user != "root" and \
                "sudo: a password is required" in result.stderr:
            raise RemoteError(f"{what}: {self.login} needs sudo without a password for "
                              f"flask-ops (it runs `sudo -n`): add `{self.c.user} ALL=(ALL) "
                              f"NOPASSWD: ALL` to /etc/sudoers.d/{self.c.user} on {self.name}, "
                              "or connect as root")
        if check and result.exited != 0:
            output = (result.stderr.strip() or result.stdout.strip())[-3000:]
            raise RemoteError(f"{what} failed on {self.name} (exit {result.exited}):\n{output}")
        return result

    def interactive(self, script):
        """Run a script with this terminal attached (a pty): `fab exec -- flask shell`.
        Returns its exit status."""
        self.commands += 1
        try:
            return self.c.run(self._wrap(script), pty=True, warn=True).exited
        except NETWORK_ERRORS as exc:
            raise Unreachable(f"cannot run on {self.name}: {type(exc).__name__}: {exc}") from None

    def put(self, local, remote, what):
        self.commands += 1
        try:
            sftp = self.c.sftp()
            # A dead link must fail the upload, not hang it: every SFTP read/write times out.
            sftp.get_channel().settimeout(self.UPLOAD_TIMEOUT)
            sftp.put(str(local), remote)
        except NETWORK_ERRORS as exc:
            # The session may be wedged (a cut link): drop it, so the next command reconnects
            # under connect_timeout instead of waiting on a dead channel.
            self.close()
            raise RemoteError(f"{what}: upload to {self.name} failed: {type(exc).__name__}: {exc}") from None

    def close(self):
        try:
            self.c.close()
        except Exception:
            pass


class _Lines:
    """A stream that hands complete lines to a callable (output shown as it arrives)."""

    def __init__(self, echo):
        self.echo, self.partial = echo, ""

    def write(self, text):
        self.partial += text
        *lines, self.partial = self.partial.split("\n")
        for line in lines:
            self.echo(line.rstrip("\r"))

    def flush(self):
        pass
