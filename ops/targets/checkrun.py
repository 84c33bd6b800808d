"""Running a server's own checker on this machine: in a private mount namespace when root
(nginx -t writes logs and cache directories even when it only checks; accounts that exist
only on the target are added to private copies of /etc/passwd and /etc/group), its refusal
a CheckError. The roles' `check_here` use it; ops.targets.checks runs them.
"""

import os
import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath

from ..errors import CheckError, OpsError

q = shlex.quote


def isolated(argv, isolate=(), users=(), workdir=None):
    """argv wrapped to run in a private mount namespace (when root), leaving no trace.

    isolate: directories covered by an empty tmpfs, each with an empty nginx/ inside (nginx
    creates log files and cache directories even for -t). users: (user, group) accounts that
    exist only on the target, added to private copies of /etc/passwd and /etc/group (written in
    workdir, which the caller removes) so the checker resolves them exactly as the target will.
    """
    if not (isolate or users) or os.geteuid() != 0 or not shutil.which("unshare"):
        return list(argv)
    steps = [f"mount -t tmpfs flask-ops-check {q(p)} && mkdir -p {q(p + '/nginx')}"
             for p in isolate if os.path.isdir(p)]
    for name, text in (("group", _group_with(users)), ("passwd", _passwd_with(users))):
        if text is not None and workdir is not None:
            copy = Path(workdir, name)
            copy.write_text(text)
            steps.append(f"mount --bind {q(str(copy))} /etc/{name}")
    script = " && ".join(steps + ['exec "$@"'])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


FAKE_GID = 64999


def _group_with(users):
    """/etc/group plus the app groups it lacks (they exist only on the target); None when it
    lacks none."""
    import grp
    lines = []
    for _, group in users:
        try:
            grp.getgrnam(group)
        except KeyError:
            lines.append(f"{group}:x:{FAKE_GID}:")
    if not lines:
        return None
    return Path("/etc/group").read_text().rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def _passwd_with(users):
    """/etc/passwd plus the (user, group) accounts it lacks; None when it lacks none."""
    import grp
    import pwd
    lines = []
    for user, group in users:
        try:
            pwd.getpwnam(user)
            continue
        except KeyError:
            pass
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            gid = FAKE_GID  # added to the private /etc/group by _group_with
        lines.append(f"{user}:x:64999:{gid}::/nonexistent:/usr/sbin/nologin")
    if not lines:
        return None
    return Path("/etc/passwd").read_text().rstrip("\n") + "\n" + "\n".join(lines) + "\n"


class MissingChecker(OpsError):
    """This machine lacks a server (or its main config) whose checker a file needs."""


def run(argv, checker, isolate=(), users=(), workdir=None):
    """argv (isolated); its output. MissingChecker when this machine lacks the program,
    CheckError (with its output) when it refuses."""
    if not shutil.which(argv[0]):
        raise MissingChecker(f"{checker}: {argv[0]} is not installed here")
    proc = subprocess.run(isolated(argv, isolate, users, workdir), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise CheckError(checker, proc.stdout)
    return proc.stdout


def write(files, root):
    """Each file under root by its base name; the paths written."""
    paths = []
    for f in files:
        path = Path(root) / PurePosixPath(f.path).name
        path.write_text(f.content)
        paths.append(str(path))
    return paths
