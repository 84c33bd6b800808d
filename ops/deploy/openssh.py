"""Commands carried by OpenSSH's own client through a shared connection, when the host's SSH
config asks for one (ControlMaster with a ControlPath), as `ssh` itself would.

Paramiko ignores those directives, so every `fab` run paid a new handshake (about 0.12 s
here) even where the user had told SSH to keep connections: with ControlPersist the master
outlives the run, and the next run's command costs a session on it (about 0.01 s). OpenSSH
then does what it does for `ssh`: host keys, ProxyJump, agent and keys, from the same config.
Fabric stays the task runner; only the bytes of `Remote.run` and `Remote.put` travel here.
"""

import os
import shlex
import shutil
import subprocess
import threading
from dataclasses import dataclass

# ControlMaster values that share a connection (OpenSSH's ssh_config(5)).
SHARING = ("yes", "auto", "ask", "autoask")
# What OpenSSH prints on its own failures (exit 255): anything else is the command's.
SSH_FAILED = 255
# Keys of a resolved config not given as `-o`: a file's structure (OpenSSH refuses Include
# and Match on the command line: Debian's /etc/ssh/ssh_config has an Include), and what -l,
# -p and -i below say (what `fab -H user@host:port` said wins, as in Fabric).
NOT_OPTIONS = frozenset({"host", "match", "include", "user", "port", "identityfile"})


@dataclass
class Result:
    """What Invoke's Result offers the callers of Remote.run."""

    stdout: str
    stderr: str
    exited: int


class SshFailed(Exception):
    """OpenSSH could not reach or log into the host (exit 255): its last line says why."""


def wanted(connection):
    """The argv prefix that reaches this host through OpenSSH's shared connection, or None
    when its config does not share connections, a password must be typed, the host is reached
    through a jump host (Paramiko asks, and routes, as before), or there is no `ssh` here.

    OpenSSH is given the config Fabric resolved for the host, key by key (`-F /dev/null`, then
    `-o` each): whichever files it came from (~/.ssh/config, staging's, Fabric's
    ssh_config_path), both clients see the same host, keys, known_hosts and ControlPath."""
    cfg = connection.ssh_config
    path = str(cfg.get("controlpath", "none"))
    if str(cfg.get("controlmaster", "no")).lower() not in SHARING or path.lower() == "none" \
            or connection.gateway is not None or cfg.get("proxyjump") or not shutil.which("ssh"):
        return None
    kwargs = dict(connection.connect_kwargs or {})
    keys = kwargs.pop("key_filename", None) or []
    if kwargs:  # a password, a passphrase, a pkey object: only Paramiko can use them
        return None
    argv = ["ssh", "-F", "/dev/null"]
    for key, value in sorted(cfg.items()):
        if key in NOT_OPTIONS:
            continue
        for one in value if isinstance(value, list) else [value]:
            argv += ["-o", f"{key}={one}"]
    for key in dict.fromkeys(([keys] if isinstance(keys, str) else list(keys))
                             + list(cfg.get("identityfile", []))):
        argv += ["-i", str(key)]
    argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(connection.connect_timeout or 10)}",
             "-p", str(connection.port), "-l", connection.user]
    return argv + [connection.original_host]


def master_listening(prefix):
    """Whether the ControlPath socket exists: a master holds the connection (a stale socket
    makes OpenSSH connect anew by itself)."""
    for option in prefix:
        if option.startswith("controlpath="):
            return os.path.exists(option[len("controlpath="):])
    return False


def stop_master(prefix):
    """Ask the master to exit now (ControlPersist would keep it): `ssh -O exit`."""
    subprocess.run(prefix[:-1] + ["-O", "exit", prefix[-1]], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=10, check=False)


def run(prefix, command, stdin=None, timeout=600, echo=None):
    """Run `command` (the remote shell's text) on the host: Result, SshFailed when OpenSSH
    failed, subprocess.TimeoutExpired when it ran past `timeout` (it is then stopped)."""
    proc = subprocess.Popen(prefix + ["--", command], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8",
                            errors="replace")  # as Invoke decodes: never a crash on a byte
    if echo is None:
        try:
            out, err = proc.communicate(stdin or "", timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    else:
        out, err = _echoed(proc, stdin, timeout, echo)
    if proc.returncode == SSH_FAILED:
        raise SshFailed(_last_line(err, "ssh failed"))
    return Result(out, err, proc.returncode)


def _last_line(text, otherwise):
    """What a failing ssh (or the command it ran) said last: the reason, in one line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else otherwise


def _echoed(proc, stdin, timeout, echo):
    """Each line handed to `echo` as it arrives, standard error too; both kept."""
    kept = {"out": [], "err": []}

    def pump(stream, name):
        for line in stream:
            kept[name].append(line)
            echo(line.rstrip("\n").rstrip("\r"))
    readers = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        proc.stdin.write(stdin or "")
        proc.stdin.close()
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    finally:
        for reader in readers:
            reader.join(timeout=5)
    return "".join(kept["out"]), "".join(kept["err"])


def put(prefix, local, remote_path, timeout):
    """Copy a local file to `remote_path` (as the login user, as SFTP writes it)."""
    with open(local, "rb") as f:
        proc = subprocess.run(prefix + ["--", f"cat > {shlex.quote(remote_path)}"], stdin=f,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if proc.returncode != 0:
        raise SshFailed(_last_line(proc.stderr.decode(errors="replace"), f"exit {proc.returncode}"))
