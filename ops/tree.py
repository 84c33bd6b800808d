"""What of the app's source goes into a release: code and assets, never its secrets.

The exclude list has safe defaults (VCS data, `.env*`, `instance/`, private keys, caches,
virtualenvs) and takes the user's `.gitignore`-style patterns after them, so `!name` can bring
a file back. A symlink is shipped as a link only when it points at a shipped file inside the
source: following one out of the tree (or to an excluded `.env`) would publish what it names.
"""

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from . import safeio
from .errors import OpsError

DEFAULT_EXCLUDES = (
    # version control and editors
    ".git/", ".hg/", ".svn/", ".bzr/", "*.swp", "*~", ".DS_Store",
    # caches, build output, local environments
    "__pycache__/", "*.py[cod]", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".tox/",
    ".nox/", ".venv/", "venv/", "node_modules/", "build/", "collected_static/", "*.egg-info/",
    # secrets: environment files, Flask's instance folder, keys and credentials
    *safeio.SECRET_PATTERNS,
)


@dataclass(frozen=True)
class Selection:
    """The source's shipped entries, relative POSIX paths, and what was left out."""

    dirs: tuple
    files: tuple
    links: tuple  # (path, link target as written)
    excluded: tuple


def spec(patterns=()):
    import pathspec  # here: importing it compiles a hundred patterns, which a no-op never needs
    return pathspec.GitIgnoreSpec.from_lines([*DEFAULT_EXCLUDES, *patterns])


def _name(rel):
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise OpsError(f"{rel.encode('utf-8', 'surrogateescape')!r} in the app's source is not "
                       "a UTF-8 file name; rename it") from None
    return rel


def select(source, patterns=()):
    """Walk the source (never following links) and decide what ships."""
    source = Path(source)
    rules = spec(patterns)
    dirs, files, links, excluded = [], [], [], []
    for root, subdirs, names in os.walk(source, followlinks=False):
        base = os.path.relpath(root, source)
        base = "" if base == "." else base + "/"
        kept = []
        for d in sorted(subdirs):
            rel = _name(base + d)
            full = os.path.join(root, d)
            if os.path.islink(full):
                names.append(d)  # a link to a directory is a link: decided below
            elif rules.match_file(rel + "/") or os.path.exists(os.path.join(full, "pyvenv.cfg")):
                excluded.append(rel + "/")
            else:
                kept.append(d)
                dirs.append(rel)
        subdirs[:] = kept
        for n in sorted(names):
            rel = _name(base + n)
            full = os.path.join(root, n)
            mode = os.lstat(full).st_mode
            if rules.match_file(rel):
                excluded.append(rel)
            elif stat.S_ISLNK(mode):
                links.append((rel, os.readlink(full)))
            elif stat.S_ISREG(mode):
                files.append(rel)
            elif not stat.S_ISDIR(mode):
                raise OpsError(f"{source / rel} is not a regular file (a socket, FIFO or "
                               "device); remove it or add it to deploy.exclude")
    shipped = set(files) | set(dirs)
    for rel, target in links:
        _check_link(source, rel, target, shipped)
    _check_contents(source, files, excluded)
    return Selection(tuple(dirs), tuple(files), tuple(links), tuple(excluded))


def _check_contents(source, files, excluded):
    """No shipped file is a secret under another name: a hard link to an excluded file
    (`.env`), or a file holding a private key or a cloud credential."""
    hidden = set()
    for rel in excluded:
        path = source / rel.rstrip("/")
        for p in ([path] if not rel.endswith("/") else []):
            try:
                st = p.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                hidden.add((st.st_dev, st.st_ino))
    for rel in files:
        path = source / rel
        st = path.lstat()
        if hidden and (st.st_dev, st.st_ino) in hidden:
            raise OpsError(f"{path} is a hard link to a file excluded from the release (a "
                           "secret); refusing to ship it under another name")
        if st.st_size and st.st_size < 8 * 2**20:
            with open(path, "rb") as f:
                head = f.read(safeio.CONTENT_PROBE)
            if safeio.secret_content(head):
                raise OpsError(f"{path} holds a private key or a cloud credential; it never "
                               "ships (move it out of the source, or add it to deploy.exclude)")


def _check_link(source, rel, target, shipped):
    full = source / rel
    try:
        resolved = full.resolve(strict=False)
    except (RuntimeError, OSError):
        raise OpsError(f"{full} is a symlink loop; remove it") from None
    root = source.resolve()
    if resolved != root and root not in resolved.parents:
        raise OpsError(f"{full} links outside the app's source ({resolved}); refusing to ship it")
    try:
        full.resolve(strict=True)
    except RuntimeError:
        raise OpsError(f"{full} is a symlink loop; remove it") from None
    except OSError:
        raise OpsError(f"{full} -> {target} points at nothing; remove or fix it") from None
    inner = resolved.relative_to(root).as_posix()
    if inner not in shipped and inner != ".":
        raise OpsError(f"{full} links to {inner}, which is excluded from the release "
                       "(a secret or a cache); refusing to publish it through the link")


def copy(source, dest, selection):
    """Copy the selection to dest, keeping modes; links stay links."""
    source, dest = Path(source), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for rel in selection.dirs:
        (dest / rel).mkdir(exist_ok=True)
    for rel in selection.files:
        shutil.copy2(source / rel, dest / rel, follow_symlinks=False)
    for rel, target in selection.links:
        os.symlink(target, dest / rel)
    for rel in reversed(selection.dirs):  # after their contents: a 0555 directory stays 0555
        shutil.copymode(source / rel, dest / rel)
    return dest
