"""Reading what a user names, and running what a user gives, without being led astray.

One list of secret-shaped names and contents, applied to releases, collected static files and
pages; reads of regular files only (a FIFO or a device never blocks or floods a read), with a
size limit and without following a final symlink; user commands in their own process group,
killed whole at a deadline.
"""

import errno
import functools
import os
import re
import signal
import stat
import subprocess
import threading
import time

from .errors import OpsError

# Names of files that hold secrets: never shipped, collected or served (gitignore syntax).
SECRET_PATTERNS = (
    ".env", ".env.*", ".envrc", "*.env", "instance/", "id_rsa*", "id_dsa*", "id_ecdsa*",
    "id_ed25519*", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.ppk", "*.keystore", ".netrc",
    ".pypirc", ".npmrc", ".htpasswd", ".ssh/", ".aws/", ".gnupg/", ".docker/", "secrets/",
    ".git-credentials", ".gitcredentials", ".pgpass", ".my.cnf", ".mylogin.cnf",
    "service-account*.json", "*-service-account.json", "credentials.json", "client_secret*.json",
    "*.tfstate", "*.tfstate.*", "*.tfvars", "secring.*", "*.kdbx", ".vault-token", ".boto",
    ".s3cfg",
)


@functools.lru_cache(maxsize=None)
def _secret_spec():
    import pathspec  # here: compiling its patterns costs every run that never asks
    return pathspec.GitIgnoreSpec.from_lines(SECRET_PATTERNS)


# Contents that are secrets whatever the file is called.
_SECRET_CONTENT = re.compile(
    rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    rb"|\"type\"\s*:\s*\"service_account\""
    rb"|aws_secret_access_key\s*="
    rb"|xox[baprs]-[0-9A-Za-z-]{10,}")
CONTENT_PROBE = 64 * 1024  # bytes of a file looked at for secret contents


def secret_name(rel):
    """A relative path whose name says it holds a secret."""
    return _secret_spec().match_file(rel)


def secret_content(data):
    """Bytes that hold a private key or a cloud credential."""
    return bool(_SECRET_CONTENT.search(data[:CONTENT_PROBE]))


def read_regular(path, what, limit=1024 * 1024, follow=False):
    """The bytes of a regular file (at most `limit`); OpsError naming `what` for a FIFO, a
    device, a directory, a symlink (unless follow), a file too large or one that is missing.
    what=None: messages without a prefix (the caller names the file)."""
    what = f"{what}: " if what else ""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OpsError(f"{what}{path} is a symlink; name the file itself") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise OpsError(f"{what}the file name is too long") from None
        raise OpsError(f"{what}cannot read {path} ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, socket or device)"
            raise OpsError(f"{what}{path} is {kind}")
        if st.st_size > limit:
            raise OpsError(f"{what}{path} is larger than {limit // 1024} KiB")
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise OpsError(f"{what}{path} is larger than {limit // 1024} KiB")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def run_bounded(argv, what, timeout, cwd=None, env=None, stdin=subprocess.DEVNULL):
    """Run a user's command in its own process group; at `timeout` the whole group is killed.
    Once the command itself has exited, a child it left holding its output gets 2 s, then the
    group is killed: the output so far is the command's. Returns a CompletedProcess (bytes)."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except FileNotFoundError:
        raise OpsError(f"{what}: command not found: {argv[0]}") from None
    except OSError as exc:
        raise OpsError(f"{what}: cannot run {argv[0]} ({exc.strerror})") from None
    chunks = {proc.stdout: [], proc.stderr: []}

    def drain(pipe):
        for block in iter(lambda: pipe.read1(65536), b""):
            chunks[pipe].append(block)

    readers = [threading.Thread(target=drain, args=(p,), daemon=True) for p in chunks]
    for reader in readers:
        reader.start()
    # A blocking wait returns the moment the command exits; Popen.wait(timeout) polls, and
    # noticed an app's import (every code change's collect) up to 50 ms late. The timeout is
    # a timer that kills the group.
    expired = threading.Event()
    timer = threading.Timer(timeout, lambda: (expired.set(), _kill_group(proc)))
    timer.daemon = True
    timer.start()
    try:
        proc.wait()
        if expired.is_set():
            raise OpsError(f"{what}: still running after {timeout}s; stopped")
    finally:
        timer.cancel()
        deadline = time.monotonic() + 2
        for reader in readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        _kill_group(proc)  # whatever it left behind
        for reader in readers:
            reader.join(5)
        for pipe in chunks:
            pipe.close()
    return subprocess.CompletedProcess(argv, proc.returncode, b"".join(chunks[proc.stdout]),
                                       b"".join(chunks[proc.stderr]))


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + 5
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
