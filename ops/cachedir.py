"""Where flask-ops keeps what it builds and learns on this machine (~/.cache/flask-ops).

A leaf: rendering, resolving and host versions all reach it without importing the build
(which imports settings, which imports them).
"""

import os
from pathlib import Path


def cache_root():
    """Content-addressed wheels and venvs, builds, compiled templates and what each host
    reported: shared by every project on this machine."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base, "flask-ops")


def keep(path, text):
    """Write a small record whole or not at all (another deploy may read it at that moment);
    a cache that cannot be written is only a slower next run."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(path)
    except OSError:
        pass
