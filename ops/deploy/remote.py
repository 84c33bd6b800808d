"""Running commands on a target: the one place that talks SSH and decides about sudo."""

import io
import os
import re
import shlex

import socket
import subprocess
import threading
import time

from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut
from invoke.watchers import Responder
from paramiko import (AutoAddPolicy, BadHostKeyException, MissingHostKeyPolicy, SFTPClient,
                      SSHConfig, SSHException)

from ..errors import RemoteError, Unreachable
from . import openssh

# What "the host could not be reached or logged into" looks like; anything else raised while
# running a command is a bug of ours and surfaces as one (a traceback), not as a network fault.
NETWORK_ERRORS = (OSError, EOFError, SSHException, socket.timeout)


def connect(c, ssh_config=None, gateway=None):
    """A Remote for the task's host (fab -H). ssh_config: an SSH config file to read first
    (the one staging.up writes), so `fab -H staging1 deploy` needs no ~/.ssh/config edit.
    gateway: the description's jump host ([user@]host[:port])."""
    if not isinstance(c, Connection):
        raise RemoteError("this task needs a target host: fab -H HOST TASK")
    if ssh_config:
        return open_host(c.original_host, c.config, ssh_config, gateway)
    return Remote(_through(c, gateway))


def open_host(name, config=None, ssh_config=None, gateway=None):
    """A Remote for a host by name, outside -H (roles, tests, benchmarks)."""
    if ssh_config:
        # That SSH config file alone (as `ssh -F`), every other value of `config` kept:
        # Fabric's documented Config(ssh_config=...), `config`'s values as its overrides.
        config = Config(ssh_config=SSHConfig.from_path(str(ssh_config)),
                        overrides=_values(config) if config is not None else None)
    else:
        config = (config or Config()).clone()
    return Remote(_through(Connection(name, config=config, connect_timeout=10), gateway))


def _values(data):
    """A config's values as plain dicts (Invoke hands out proxies of its nested sections)."""
    if hasattr(data, "keys"):
        return {key: _values(data[key]) for key in data.keys()}
    return data


def _through(connection, gateway):
    """The connection through `gateway` (a jump host, reached with the same SSH config), unless
    the SSH config already routes this host (ProxyJump, ProxyCommand): that wins, as for ssh."""
    if not gateway or connection.gateway:
        return connection
    jump = Connection(gateway, config=connection.config.clone(), connect_timeout=10)
    return Connection(connection.original_host, config=connection.config, gateway=jump,
                      connect_timeout=10)


class UnknownHostKey(SSHException):
    """First contact with a host whose key no known_hosts file holds."""


class _RefuseUnknown(MissingHostKeyPolicy):
    def __init__(self, files, host, port):
        self.files, self.host, self.port = files, host, port

    def missing_host_key(self, client, hostname, key):
        port = f"-p {self.port} " if self.port != 22 else ""
        raise UnknownHostKey(
            f"its host key ({key.get_name()} {key.fingerprint}) is in no known_hosts file "
            f"({', '.join(self.files)}); if that is the server's key, add it: `ssh-keyscan "
            f"{port}{self.host} >> ~/.ssh/known_hosts` (or `ssh` to it once), or set "
            "StrictHostKeyChecking accept-new for it in ~/.ssh/config")


class _AcceptNew(MissingHostKeyPolicy):
    """OpenSSH's accept-new: a first contact's key is recorded; a changed key is refused."""

    def __init__(self, path):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
        with open(self.path, "a", encoding="ascii") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


SUDO_PROMPT = "[sudo] flask-ops needs the password of the SSH user: "
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts ~/.ssh/known_hosts2"
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"


def check_host_keys(connection):
    """OpenSSH's host key rules, which Fabric leaves out (it accepts any key, changed ones
    too): the known_hosts files ssh_config names (or OpenSSH's defaults), and its
    StrictHostKeyChecking: yes or ask (the default) refuse a key no file holds, accept-new
    records it, no accepts it; a key that differs from the recorded one is always refused."""
    cfg = connection.ssh_config
    user_files = [os.path.expanduser(f) for f in
                  str(cfg.get("userknownhostsfile", DEFAULT_KNOWN_HOSTS)).split()]
    files = [os.path.expanduser(f) for f in
             str(cfg.get("globalknownhostsfile", GLOBAL_KNOWN_HOSTS)).split()] + user_files
    for path in files:
        if os.path.isfile(path):
            connection.client.load_system_host_keys(path)
    strict = str(cfg.get("stricthostkeychecking", "ask")).lower()
    if strict in ("no", "off"):
        policy = AutoAddPolicy()
    elif strict == "accept-new":
        policy = _AcceptNew(user_files[0])
    else:
        policy = _RefuseUnknown([f for f in user_files if not f.endswith("2")] or user_files,
                                connection.host, connection.port)
    connection.client.set_missing_host_key_policy(policy)
    if isinstance(connection.gateway, Connection):  # ProxyJump: each hop is checked too
        check_host_keys(connection.gateway)


class Remote:
    """A target host: runs shell scripts as root (via sudo when not root) and counts them."""

    UPLOAD_TIMEOUT = 20  # seconds without progress before an upload is abandoned
    _ahead = None  # the handshake connect_ahead started: (its thread, [its error])
    _openssh = None  # OpenSSH's argv to the host, when its SSH config shares connections

    def __init__(self, connection):
        check_host_keys(connection)
        self.c = connection
        self.commands = 0
        self._sftp_client = None
        # OpenSSH's client, when the host's SSH config shares connections (ControlMaster):
        # commands and uploads go through its master, which ControlPersist keeps between runs.
        self._openssh = openssh.wanted(connection)

    @property
    def transport(self):
        """Which client carries the bytes: "openssh" (a shared connection) or "paramiko"."""
        return "openssh" if self._openssh else "paramiko"

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

    @property
    def sudo_password(self):
        """Fabric's own sudo.password (`fab --prompt-for-sudo-password` asks for it once),
        when commands go through sudo; None otherwise."""
        if self.c.user == "root":
            return None
        return self.c.config.get("sudo", {}).get("password")

    def _wrap(self, script, terminal=False):
        """As root: the script. Otherwise through sudo: without a password (`-n`: never a
        prompt that would hang), or with Fabric's sudo password on the first line of its
        standard input (`-S`), or at the terminal when one is attached."""
        if self.c.user == "root":
            return script
        if terminal:  # sudo asks at the terminal; Fabric's password answers it when given
            return f"sudo -p {shlex.quote(SUDO_PROMPT)} bash -c " + shlex.quote(script)
        if self.sudo_password is not None:
            return "sudo -S -p '' bash -c " + shlex.quote(script)
        return "sudo -n bash -c " + shlex.quote(script)

    def _stdin(self, stdin):
        if self.sudo_password is not None:
            return _Whole(self.sudo_password + "\n" + (stdin or ""))
        return _Whole(stdin) if stdin is not None else False

    def _run_openssh(self, command, what, stdin, timeout, echo):
        if self.sudo_password is not None:
            stdin = self.sudo_password + "\n" + (stdin or "")
        self._open()
        try:
            return openssh.run(self._openssh, command, stdin, timeout, echo)
        except (openssh.SshFailed, OSError) as exc:
            raise Unreachable(f"{what}: cannot run on {self.name} ({self.login}): {exc}") from None
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{what}: still running on {self.name} after {timeout}s; "
                              "stopped") from None

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
            if self._openssh:
                result = self._run_openssh(self._wrap("set -o pipefail\n" + script), what,
                                           stdin, timeout or 600, echo)
            else:
                self._open()
                result = self.c.run(self._wrap("set -o pipefail\n" + script), warn=True,
                                    in_stream=self._stdin(stdin),
                                    timeout=timeout or 600, **streams)
        except NETWORK_ERRORS as exc:  # network, DNS, SSH, auth: "could not run it"
            raise Unreachable(f"{what}: cannot run on {self.name} ({self.login}): "
                              f"{_reason(exc)}") from None
        except CommandTimedOut as exc:
            raise RemoteError(f"{what}: still running on {self.name} after {exc.timeout}s; "
                              "stopped") from None
        if result.exited != 0 and self.c.user != "root":
            self._check_sudo(result.stderr, what)
        if check and result.exited != 0:
            output = (result.stderr.strip() or result.stdout.strip())[-3000:]
            raise RemoteError(f"{what} failed on {self.name} (exit {result.exited}):\n{output}")
        return result

    CONNECT_ATTEMPTS = 3

    def connect_ahead(self):
        """Start the SSH handshake now, in the background, so that it overlaps local work
        (the build): the first command waits for it, and its error, if any, is that
        command's, as if it had connected itself."""
        if self._ahead is not None or self.c.is_connected:
            return
        if self._openssh and openssh.master_listening(self._openssh):
            return
        error = []

        def handshake():
            if self._openssh:  # OpenSSH's master, started by a command that does nothing
                try:
                    openssh.run(self._openssh, "true", timeout=60)
                except (openssh.SshFailed, subprocess.SubprocessError, OSError):
                    pass  # the first command meets the same failure and says it itself
                return
            try:
                self._connect()
            except BaseException as exc:  # handed to the first command, raised there
                error.append(exc)
        thread = threading.Thread(target=handshake, name=f"ssh {self.name}", daemon=True)
        self._ahead = (thread, error)
        thread.start()

    def _open(self):
        """The session, before the first command: the one connect_ahead started, else now."""
        if self._ahead is not None:
            thread, error = self._ahead
            self._ahead = None
            thread.join()
            if error:
                raise error[0]
        if not self._openssh:
            self._connect()

    def _connect(self):
        """Open the session unless it is open. A server that closes it during the
        handshake or authentication (sshd dropping connections under MaxStartups, an sshd
        restarting) is tried again, twice, after 0.5 and 1 s; a refused key, a host key that
        does not match or a timeout is not."""
        for attempt in range(self.CONNECT_ATTEMPTS):
            if self.c.is_connected:
                return
            try:
                self.c.open()
                return
            except (SSHException, EOFError) as exc:
                closed = isinstance(exc, EOFError) or "saw EOF" in str(exc) \
                    or "Error reading SSH protocol banner" in str(exc)
                if not closed or attempt == self.CONNECT_ATTEMPTS - 1:
                    raise
                self.c.close()
                time.sleep(0.5 * (attempt + 1))

    def _check_sudo(self, stderr, what):
        """sudo's own refusals, as what to do about them (one line)."""
        if "sudo: a password is required" in stderr:
            raise RemoteError(f"{what}: {self.login}'s sudo asks for a password: run with "
                              "`fab --prompt-for-sudo-password ...` (asked once), or add "
                              f"`{self.c.user} ALL=(ALL) NOPASSWD: ALL` to "
                              f"/etc/sudoers.d/{self.c.user} on {self.name}, or connect as root")
        if "incorrect password attempt" in stderr:
            raise RemoteError(f"{what}: sudo on {self.name} refused the password given for "
                              f"{self.login} (--prompt-for-sudo-password)")

    def interactive(self, script):
        """Run a script with this terminal attached (a pty): `fab exec -- flask shell`.
        Returns its exit status."""
        self.commands += 1
        try:
            self._open()
            return self.c.run(self._wrap(script, terminal=True), pty=True, warn=True,
                              watchers=self._password_watchers()).exited
        except NETWORK_ERRORS as exc:
            raise Unreachable(f"cannot run on {self.name} ({self.login}): {_reason(exc)}") from None

    def _password_watchers(self):
        if self.sudo_password is None:
            return []
        return [Responder(pattern=re.escape(SUDO_PROMPT), response=self.sudo_password + "\n")]

    def put(self, local, remote, what):
        self.commands += 1
        try:
            self._open()
            if self._openssh:
                openssh.put(self._openssh, local, remote, timeout=600)
                return
            self._sftp().put(str(local), remote)
        except NETWORK_ERRORS + (openssh.SshFailed, subprocess.TimeoutExpired) as exc:
            # The session may be wedged (a cut link): drop it, so the next command reconnects
            # under connect_timeout instead of waiting on a dead channel.
            self.close()
            raise RemoteError(f"{what}: upload to {self.name} failed: {_reason(exc)}") from None

    def _sftp(self):
        """The session's SFTP channel. A dead link must fail an upload, not hang it: opening
        the channel (paramiko waits up to an hour for its answer) and every read and write on
        it time out after UPLOAD_TIMEOUT."""
        if self._sftp_client is None or self._sftp_client.get_channel().closed:
            channel = self.c.transport.open_session(timeout=self.UPLOAD_TIMEOUT)
            channel.settimeout(self.UPLOAD_TIMEOUT)
            channel.invoke_subsystem("sftp")
            self._sftp_client = SFTPClient(channel)
        return self._sftp_client

    def close(self):
        if self._ahead is not None:  # never close a session while it is being opened
            self._ahead[0].join()
            self._ahead = None
        self._sftp_client = None
        try:
            self.c.close()
        except Exception:
            pass


def _reason(exc):
    """What went wrong reaching a host, in one line; host keys say what to do about them."""
    if isinstance(exc, UnknownHostKey):
        return str(exc)
    if isinstance(exc, BadHostKeyException):
        return (f"its host key CHANGED ({exc.key.get_name()} {exc.key.fingerprint}, known_hosts "
                f"has {exc.expected_key.fingerprint}): refused; a rebuilt server needs its old "
                "line removed (`ssh-keygen -R HOST`), anything else may be a man in the middle")
    return f"{type(exc).__name__}: {exc}"


class _Whole(io.StringIO):
    """Text for a command's standard input, handed over in one read. Invoke reads a stream
    that is not a terminal one character at a time with a 10 ms pause after each: a 1.4 kB
    certificate took 14 s to reach the host."""

    def read(self, size=-1):
        return super().read()


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
