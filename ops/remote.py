"""Running commands on a target: the one place that talks SSH and decides about sudo."""

import time

from fabric import Config, Connection
from paramiko import SSHConfig

from . import staging
from .errors import RemoteError


def connect(c):
    """A Connection for the task's host; staging hosts use the SSH config staging.up wrote.

    So `fab -H staging1 deploy` works without editing ~/.ssh/config.
    """
    if not isinstance(c, Connection):
        raise RemoteError("this task needs a target host: fab -H HOST TASK")
    if staging.NAME.match(c.original_host) and staging.ssh_config_path().exists():
        return for_staging(c.original_host, c.config.clone())
    return Remote(c)


def for_host(name, config):
    """A Remote for a host named in the app description (roles), outside -H."""
    if staging.NAME.match(name) and staging.ssh_config_path().exists():
        return for_staging(name, config.clone())
    return Remote(Connection(name, config=config.clone(), connect_timeout=10))


def for_staging(name, config=None):
    """A Remote for a staging host, outside a Fabric task too (tests, benchmarks)."""
    config = config or Config()
    config._set(base_ssh_config=SSHConfig.from_path(str(staging.ssh_config_path())))
    return Remote(Connection(name, config=config, connect_timeout=10))


class Remote:
    """A target host: runs shell scripts as root (via sudo when not root) and counts them."""

    UPLOAD_TIMEOUT = 20  # seconds without progress before an upload is abandoned

    def __init__(self, connection):
        self.c = connection
        self.commands = 0
        self.log = []  # (seconds, first line of the command)

    @property
    def name(self):
        return self.c.original_host

    @property
    def address(self):
        return self.c.host

    def _wrap(self, script):
        if self.c.user == "root":
            return script
        return "sudo -n bash -c " + _quote(script)

    def run(self, script, what, check=True, timeout=600):
        """Run a bash script on the host; RemoteError (with its output) when it fails."""
        start = time.monotonic()
        self.commands += 1
        try:
            result = self.c.run(self._wrap("set -o pipefail\n" + script), hide=True, warn=True,
                                in_stream=False, timeout=timeout)
        except Exception as exc:  # network, auth, timeout: all mean "could not run it"
            raise RemoteError(f"{what}: cannot run on {self.name}: {type(exc).__name__}: {exc}") from None
        finally:
            self.log.append((time.monotonic() - start, what))
        if check and result.exited != 0:
            output = (result.stderr.strip() or result.stdout.strip())[-3000:]
            raise RemoteError(f"{what} failed on {self.name} (exit {result.exited}):\n{output}")
        return result

    def put(self, local, remote, what):
        start = time.monotonic()
        self.commands += 1
        try:
            sftp = self.c.sftp()
            # A dead link must fail the upload, not hang it: every SFTP read/write times out.
            sftp.get_channel().settimeout(self.UPLOAD_TIMEOUT)
            sftp.put(str(local), remote)
        except Exception as exc:
            # The session may be wedged (a cut link): drop it, so the next command reconnects
            # under connect_timeout instead of waiting on a dead channel.
            self.close()
            raise RemoteError(f"{what}: upload to {self.name} failed: {type(exc).__name__}: {exc}") from None
        finally:
            self.log.append((time.monotonic() - start, what))

    def close(self):
        try:
            self.c.close()
        except Exception:
            pass


def _quote(text):
    import shlex
    return shlex.quote(text)
