"""Directories flask-ops writes into on the deploy side, and the one rule that keeps them safe.

A directory is cleared only when flask-ops made it (it holds our marker file). Anything else
that is not empty is refused, as is a path that is a file or a symlink, or one that holds the
project or the app's source: `--out .` must never cost a user their project.
"""

import os
import shutil
from pathlib import Path

from .errors import OpsError

MARKER = ".flask-ops-output"


def _contains(outer, inner):
    return outer == inner or outer in inner.parents


def prepare(out, what, keep=(), outside=()):
    """An empty directory at `out`, ready to write into; returns its absolute path.

    what: the kind of output, named in the marker and in errors ("rendered configs").
    keep: directories that must never be inside or equal to `out` (project, source).
    """
    path, label = check(out, what, keep, outside)
    if path.is_dir() and any(path.iterdir()):
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text(f"{what}: written by flask-ops; emptied on the next write\n")
    return path


def check(out, what, keep=(), outside=()):
    """Refuse `out` (OpsError) unless prepare() may use it; writes nothing. (path, label).
    outside: directories `out` may not be in (the app's source: it would ship)."""
    if out is None or not str(out).strip():
        raise OpsError(f"an empty path; name a directory for the {what}")
    path = Path(os.path.abspath(out))
    label = f"{out} ({path})" if str(out) != str(path) else str(path)
    if any(len(os.fsencode(part)) > 255 for part in path.parts) or len(os.fsencode(str(path))) > 4000:
        raise OpsError(f"{str(out)[:60]}...: the path is too long; name a directory for the {what}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise OpsError(f"{label}: {parent} is a file; name a directory for the {what}")
    for source in outside:
        if _contains(Path(os.path.abspath(source)), path):
            raise OpsError(f"{label} is inside the app's source ({source}): the {what} would "
                           "ship in its next release; name a directory outside it")
    if path.is_symlink():
        raise OpsError(f"{label} is a symlink; name a real directory for the {what}")
    for protected in keep:
        protected = Path(os.path.abspath(protected))
        if _contains(path, protected):
            raise OpsError(f"{label} holds {protected}; the {what} need a directory of their own "
                           "(it is emptied before each write)")
    if path.exists() and not path.is_dir():
        raise OpsError(f"{label} is a file, not a directory; name a directory for the {what}")
    _no_symlink_above(path, label)
    if path.is_dir() and any(path.iterdir()) and not (path / MARKER).is_file():
        raise OpsError(f"{label} is not empty and was not written by flask-ops; "
                       f"name a new or empty directory for the {what}")
    return path, label


def _no_symlink_above(path, label):
    """An existing symlinked parent inside a path we create would carry writes elsewhere."""
    for parent in [path, *path.parents]:
        if parent.exists():
            return
        if parent.is_symlink():  # a dangling link
            raise OpsError(f"{label}: {parent} is a dangling symlink")


def write_file(root, rel, content, mode=0o644):
    """Write root/rel without following a symlink anywhere below root."""
    target = Path(root)
    parts = Path(rel).parts
    for part in parts[:-1]:
        target = target / part
        if target.is_symlink():
            raise OpsError(f"{target} is a symlink; refusing to write through it")
        target.mkdir(exist_ok=True)
    target = target / parts[-1]
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(target, mode, follow_symlinks=False)
    return target


# What older flask-ops versions left in build/APP before it carried a marker.
_OURS = ("release", "collected", "collected_static", "collect-source", "flask-ops-")


def scratch(root, name):
    """An empty root/name for flask-ops' own build output; root must be ours (or new)."""
    root = Path(os.path.abspath(root))
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise OpsError(f"{root} is not a directory flask-ops can build in; move it away")
    if root.is_dir() and not (root / MARKER).is_file():
        foreign = [p.name for p in root.iterdir() if not p.name.startswith(_OURS)]
        if foreign:
            raise OpsError(f"{root} holds files flask-ops did not write ({foreign[0]}); "
                           "move them away: flask-ops builds there")
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("flask-ops build output; emptied as needed\n")
    path = root / name
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir()
    return path
