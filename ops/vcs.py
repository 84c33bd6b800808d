"""The app source's version-control commit, for the deploy history (git only; None when the
source is not in a repository or git is missing)."""

import subprocess


def commit(source_dir):
    """'1a2b3c4d5e6f' or '1a2b3c4d5e6f+dirty' (uncommitted changes shipped); None without git."""
    def git(*args):
        return subprocess.run(["git", "-C", str(source_dir), *args], capture_output=True,
                              text=True, timeout=10)
    try:
        head = git("rev-parse", "--verify", "-q", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip()[:12] + ("+dirty" if dirty else "")
