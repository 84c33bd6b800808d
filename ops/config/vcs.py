"""The app source's version control: the commit a deploy records, and a git ref checked out
cleanly for `fab deploy --ref` (git only; None when the source is not in a repository)."""

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from ..errors import OpsError

_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@^~+-]{0,199}\Z")


def _git(where, *args, timeout=60):
    return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                          timeout=timeout)


def commit(source_dir):
    """'1a2b3c4d5e6f' or '1a2b3c4d5e6f+dirty' (uncommitted changes shipped); None without git."""
    try:
        head = _git(source_dir, "rev-parse", "--verify", "-q", "HEAD", timeout=10)
        if head.returncode != 0:
            return None
        dirty = _git(source_dir, "status", "--porcelain", "--untracked-files=no",
                     timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip()[:12] + ("+dirty" if dirty else "")


def check_ref(key, value):
    """A git revision as a user names one (branch, tag, commit), never an option or a range."""
    if not isinstance(value, str) or not _REF.match(value) or ".." in value or value.endswith(".lock"):
        from ..errors import SettingsError
        raise SettingsError(key, value, "a git branch, tag or commit, e.g. v1.4.2 or main")
    return value


def checkout(project_root, ref, cache):
    """The project as it is at `ref`: a clean checkout (its own clone sharing the repository's
    objects), never the working tree. Returns (the project's directory in it, commit)."""
    root = Path(project_root).resolve()
    try:
        top = _git(root, "rev-parse", "--show-toplevel")
        if top.returncode != 0:
            raise OpsError(f"--ref {ref}: {root} is not in a git repository")
        top = Path(top.stdout.strip())
        found = _git(top, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
        if found.returncode != 0:
            raise OpsError(f"--ref {ref}: no such branch, tag or commit in {top}")
        sha = found.stdout.strip()
        dest = Path(cache) / f"{hashlib.sha256(str(top).encode()).hexdigest()[:12]}-{sha[:16]}"
        done = dest.with_name(dest.name + ".complete")
        if not done.exists():
            shutil.rmtree(dest, ignore_errors=True)
            dest.parent.mkdir(parents=True, exist_ok=True)
            for args in (("clone", "--quiet", "--shared", "--no-checkout", str(top), str(dest)),
                         ("-C", str(dest), "checkout", "--quiet", "--detach", sha)):
                proc = subprocess.run(["git", *args], capture_output=True, text=True, timeout=300)
                if proc.returncode != 0:
                    raise OpsError(f"--ref {ref}: git {args[0]} failed: "
                                   f"{proc.stderr.strip().splitlines()[-1:] or ''}")
            done.write_text(sha + "\n")
    except (OSError, subprocess.SubprocessError) as exc:
        raise OpsError(f"--ref {ref}: git failed ({exc})") from None
    return dest / root.relative_to(top), sha
