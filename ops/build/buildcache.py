"""The project's last build, recognised from its inputs' file stats without building again.

A build copies the app's source, digests it, renders every config and reads the
requirements: about 40 ms and the imports of Jinja2, packaging and pathspec, on every
deploy, for a no-op too. What it produces (the release digest, the rendered files, the
static samples) depends only on the settings, the app's environment, the files it reads and
flask-ops' own code and templates. So the first build records it under a signature of those
(each file's path, size, mode, mtime and ctime, inode), and a deploy whose signature is the
same takes the record and builds the tree only if it must upload it.

What the build reads: the source directory (walked whole, less VCS data, caches and
virtualenvs, which it never ships), the files at the project's root and beside the
requirements file, the project's template directory, and, when the project root holds a
pyproject.toml or setup.py whose backend may read anything in it, the whole project root.
When that cannot be told for sure (an exclude pattern that brings a file back with `!`,
a requirements file that includes others or local paths) there is no record: the build runs.
"""

import functools
import hashlib
import json
import os
from pathlib import Path

from .. import cachedir
from ..targets.templating import RenderedFile

# Directories a build never ships, whatever the user's excludes say (ops.tree.DEFAULT_EXCLUDES
# without a "!" pattern to bring them back): their changes cannot change a build.
NEVER_SHIPPED = frozenset({".git", ".hg", ".svn", ".bzr", "__pycache__", ".pytest_cache",
                           ".mypy_cache", ".ruff_cache", ".tox", ".nox", ".venv", "venv",
                           "node_modules"})
# Requirement lines that reach files the signature does not cover.
_REACHING_OUT = ("-r", "-c", "--requirement", "--constraint", "-e", "--editable")
_OURS = Path(__file__).resolve().parent.parent  # the ops package: code and templates


def signature(s, fleet, env):
    """The digest of every input of a build of `s` (env: the app's resolved environment),
    or None when the inputs cannot all be named."""
    if any(p.lstrip().startswith("!") for p in s.exclude) or _reaches_out(s.requirements_file):
        return None
    h = hashlib.sha256()
    h.update(repr(s).encode("utf-8", "surrogateescape"))
    h.update(repr(fleet).encode())
    h.update((env.digest("flask-ops build record") if env is not None else "-").encode())
    root, source = Path(s.project_root).resolve(), s.source_dir
    _tree(h, source)
    if root != source:
        backend = (root / "pyproject.toml").is_file() or (root / "setup.py").is_file()
        (_tree if backend else _files)(h, root)
    if s.templates_dir:
        _tree(h, s.templates_dir)
    _files(h, s.requirements_file.parent)
    h.update(code_signature().encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def code_signature():
    """flask-ops' own code and templates (the ops package), by their file stats: a record
    made by another flask-ops is void. Once per process: the code does not change under it."""
    h = hashlib.sha256()
    _tree(h, _OURS)
    return h.hexdigest()


def _reaches_out(path):
    if path.suffix != ".txt":
        return False
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False  # none yet: its appearance changes the signature
    return any(line.strip().split("=")[0].split()[0] in _REACHING_OUT or "file:" in line
               for line in lines if line.strip() and not line.lstrip().startswith("#"))


def _entry(h, path, st):
    h.update(f"{path}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0"
             f"{st.st_ino}\n".encode("utf-8", "surrogateescape"))


def _files(h, directory):
    """The regular files (and links) directly in `directory`."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        h.update(f"missing {directory}\n".encode("utf-8", "surrogateescape"))
        return
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            _one(h, entry)


def _one(h, entry):
    st = entry.stat(follow_symlinks=False)
    _entry(h, entry.path, st)
    if entry.is_symlink():
        h.update(os.readlink(entry.path).encode("utf-8", "surrogateescape") + b"\n")


def _tree(h, top):
    """Every entry under `top`, never following links, less what no build ships."""
    pending = [str(top)]
    while pending:
        directory = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            h.update(f"missing {directory}\n".encode("utf-8", "surrogateescape"))
            continue
        if any(e.name == "pyvenv.cfg" for e in entries) and directory != str(top):
            continue  # a virtualenv: never shipped (ops.tree)
        for entry in entries:
            if entry.name in NEVER_SHIPPED and entry.is_dir(follow_symlinks=False):
                continue  # not even its own stat: git touches .git on every status
            _one(h, entry)
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)


def _record_path(build_root):
    return Path(build_root) / "last-build.json"


def recalled(build_root, key):
    """(release digest, rendered files, static samples, shared links, requirements digest)
    of the build recorded under `key`, or None."""
    if key is None:
        return None
    try:
        record = json.loads(_record_path(build_root).read_text())
        if record["key"] != key:
            return None
        files = tuple(RenderedFile(*f) for f in record["files"])
        statics = tuple(tuple(pair) for pair in record["statics"])
        return (record["digest"], files, statics, tuple(record["links"]),
                record["requirements"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember(build_root, key, release):
    """Record `release` (ops.build.release.Release) as what a build under `key` produces."""
    if key is None:
        return
    cachedir.keep(_record_path(build_root), json.dumps({
        "key": key, "digest": release.digest, "requirements": release.requirements_digest,
        "statics": [list(p) for p in release.statics], "links": list(release.shared_links),
        "files": [[f.path, f.content, f.kind, f.mode, f.in_release] for f in release.files]}))
