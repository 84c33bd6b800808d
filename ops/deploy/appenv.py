"""The app's environment: `env:` values and `secrets:` read on the deploying machine.

Secret values are read at deploy time, held in a Resolved whose repr shows names only, and
travel to the host on the stdin of one SSH command (never in a command line, the plan's
printed scripts, the release or the output). The host keeps them in one 0600 file that the
release's entry module loads (ops/templates/wsgi/entry.py.j2).
"""

import hashlib
import hmac
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

from .. import safeio
from ..config import keys
from ..errors import OpsError

COMMAND_TIMEOUT = 60  # seconds a secret's command may take (it may ask for a passphrase)
MAX_SECRET_FILE = 64 * 1024  # a secret is a line, a key or a certificate, not a disk image


@dataclass(frozen=True)
class Resolved:
    """What the deploy sets in the host's env file. `values`: (NAME, value) from this machine;
    `generate`: names the host generates once and keeps."""

    values: Tuple[Tuple[str, str], ...]
    generate: Tuple[str, ...]

    def __repr__(self):
        return (f"Resolved(values=[{', '.join(n for n, _ in self.values)}: not shown], "
                f"generate={list(self.generate)})")

    __str__ = __repr__

    @property
    def names(self):
        return sorted([n for n, _ in self.values] + list(self.generate))

    def payload(self, key):
        """The JSON the host's env_write.py reads on stdin."""
        return json.dumps({"set": dict(self.values), "generate": list(self.generate), "key": key})

    def digest(self, key):
        """A keyed digest (the key is the host's, kept root-only): tells whether the host has
        this environment without storing or printing anything that can be reversed."""
        canonical = json.dumps([sorted(self.values), sorted(self.generate)], separators=(",", ":"))
        return hmac.new(key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def sources(s):
    """(NAME, where its value comes from) for `fab env`: never a value."""
    rows = [(name, "env: in the app description") for name, _ in s.env]
    for name, kind, ref in s.secret_sources:
        rows.append((name, {
            "generate": "secret: generated on the host (never leaves it)",
            "env": f"secret: environment variable {ref} on this machine",
            "file": f"secret: file {ref} on this machine",
            "command": f"secret: output of `{ref}` on this machine",
        }[kind]))
    return sorted(rows)


def resolve(s, environ=None):
    """Every value, read now on this machine; OpsError naming the secret when one is missing."""
    environ = os.environ if environ is None else environ
    values = list(s.env)
    for name, kind, ref in s.secrets:
        if kind == "generate":
            continue
        where = f"deploy.secrets.{name}"
        if kind == "env":
            if ref not in environ:
                raise OpsError(f"{where}: environment variable {ref} is not set on this machine")
            value = environ[ref]
        elif kind == "file":
            value = _read_file(where, Path(s.project_root), ref)
        else:
            value = _run_command(where, ref, s.project_root)
        problem = keys.env_value_problem(value)
        if problem:
            raise OpsError(f"{where}: its value must be {problem} (value not shown)")
        if value == "":
            raise OpsError(f"{where}: its value is empty")
        values.append((name, value))
    return Resolved(tuple(sorted(values)), s.generated_secrets)


def _read_file(where, root, ref):
    path = Path(root, Path(ref).expanduser())
    data = safeio.read_regular(path, where, limit=MAX_SECRET_FILE, follow=True)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OpsError(f"{where}: {path} is not UTF-8 text") from None
    # One trailing newline is how editors end a file, not part of the secret.
    return text[:-1] if text.endswith("\n") else text


def _run_command(where, ref, cwd):
    argv = shlex.split(ref)
    proc = safeio.run_bounded(argv, f"{where}: `{ref}`", COMMAND_TIMEOUT, cwd=cwd)
    if proc.returncode != 0:
        # Its error output is not shown: a failing command may print the value it read.
        raise OpsError(f"{where}: `{ref}` exited {proc.returncode} (its output is not shown: "
                       "it may hold the secret; run it yourself to see why)")
    try:
        text = proc.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise OpsError(f"{where}: `{ref}` printed something that is not UTF-8 text") from None
    return text[:-1] if text.endswith("\n") else text
