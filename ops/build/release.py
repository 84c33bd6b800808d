"""The release artifact: app source + collected static + rendered configs, content-addressed.

The same inputs give the same digest, so a redeploy of an unchanged app is recognised
without touching the host beyond one fact-gathering command.
"""

import dataclasses
import getpass
import hashlib
import io
import json
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .. import outdir
from ..targets import render
from . import build

META = ".flask-ops"  # inside each release: manifest, rendered configs, candidate configs


@dataclass(frozen=True)
class Release:
    """A release built on the deploy side, ready to ship to any number of hosts."""

    id: str
    digest: str
    requirements_digest: str
    files: tuple  # RenderedFile: rendered once, here, and used by every step after
    upload_name: str  # basename of the bundle, uploaded to /tmp
    # One collected file per static URL prefix, as (URL, sha256): the smoke test fetches each
    # through the front server and compares it with what Flask served at build time.
    statics: tuple = ()
    # "dir:PATH" / "file:PATH": the shared paths the host links into the release.
    shared_links: tuple = ()


def tree_digest(root):
    """sha256 over relative paths, modes, link targets and contents of a directory tree."""
    h = hashlib.sha256()
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0")
        if path.is_symlink():
            h.update(b"L" + os.readlink(path).encode())
        elif path.is_file():
            h.update(b"F%o" % (path.stat().st_mode & 0o111) + path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def stage_tree(s, fleet=None, env=None):
    """Build the release tree locally; returns (tree, digest, rendered files, static
    samples, shared links as "KIND:PATH")."""
    root = build.build_root(s)
    tree = build.stage_source(s, build.private_dir(s, "release"))
    source_digest = tree_digest(tree)
    collected = root / "collected" / source_digest[:16]
    statics = _cached_statics(collected / ".complete")
    if statics is None:  # not collected yet, or by an older flask-ops with another layout
        with build.building(collected):  # another deploy of this project may be collecting it
            statics = _cached_statics(collected / ".complete")
            if statics is None:
                _, _, statics = build.collectstatic(s, collected, source=tree, env=env)
                (collected / ".complete").write_text(json.dumps(statics))
    shutil.copytree(collected, tree / "collected_static",
                    ignore=shutil.ignore_patterns(".complete", outdir.MARKER))
    s = dataclasses.replace(s, static_prefixes=tuple(statics["prefixes"]),
                            instance_dir=statics["instance"])
    # What importing the app wrote there (its instance folder, a log file under a shared
    # path) is the host's, never the release's: the host links those paths.
    for _, path in s.shared_links:
        target = tree / path
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
    reqs = build.requirements(s)
    # pip reads this flat, checked copy on the host, never the app's own file (see requirements)
    build.write_requirements(reqs, tree / META, hashes=False)
    if s.nginx == "cache":
        generation = hashlib.sha256((source_digest + reqs.digest).encode()).hexdigest()[:12]
        s = dataclasses.replace(s, cache_generation=generation)
    files = render.render(s, fleet)
    for f in files:
        if f.in_release:
            target = tree / PurePosixPath(f.path).relative_to(s.current)
        else:
            target = tree / META / "etc" / PurePosixPath(f.path).relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.content)
    links = tuple(f"{kind}:{path}" for kind, path in s.shared_links)
    digest = tree_digest(tree) + reqs.digest + "\0".join(links)
    return (tree, hashlib.sha256(digest.encode()).hexdigest()[:16], files,
            static_pairs(statics["samples"]), links)


def _cached_statics(done):
    try:
        statics = json.loads(done.read_text())
        return statics if {"prefixes", "samples", "instance"} <= set(statics) else None
    except (OSError, ValueError, TypeError):
        return None


def new_release(s, digest, files, statics=(), shared_links=(), requirements_digest=None):
    release_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + digest[:8]
    return Release(id=release_id, digest=digest,
                   requirements_digest=requirements_digest or build.requirements_digest(s),
                   files=tuple(files),
                   upload_name=f"flask-ops-{s.app_name}-{release_id}.tar.gz", statics=tuple(statics),
                   shared_links=tuple(shared_links))


def static_pairs(items):
    """(URL, sha256) pairs for the smoke test from {url, sha256} records (the collect
    driver's samples, a manifest's statics)."""
    return tuple((item["url"], item["sha256"]) for item in items
                 if isinstance(item, dict) and {"url", "sha256"} <= set(item))


def statics_from_manifest(m):
    """The static files a release on the host recorded for the smoke test."""
    return static_pairs((m or {}).get("statics", []))


def manifest(s, release):
    """What the host keeps about a release: enough to roll back to it without re-rendering."""
    return {"id": release.id, "digest": release.digest,
            "requirements": release.requirements_digest, "app": s.app_name,
            "stack": s.stack, "nginx": s.nginx, "init": s.init, "built_by": who(),
            "statics": [{"url": url, "sha256": sha} for url, sha in release.statics],
            "shared": list(release.shared_links),
            # what its smoke test checked: a rollback to it checks the same
            "smoke": [page.as_json() for page in s.smoke], "smoke_stream": s.smoke_stream,
            "files": [{"path": f.path, "kind": f.kind, "mode": f.mode, "in_release": f.in_release}
                      for f in release.files]}


def files_from_manifest(m):
    """The file records of a release on the host (content stays there)."""
    return tuple(render.RenderedFile(f["path"], "", f["kind"], f["mode"], f["in_release"])
                 for f in (m or {}).get("files", []) if isinstance(f, dict))


def who():
    return {"user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.time()}


def bundle(s, tree, release, wheels=None):
    """The tar.gz uploaded to one host: the release tree, its manifest, and the wheels built
    for the host's Python when it lacks them. Nothing in it depends on the host's configs."""
    import tarfile  # here: only a deploy that uploads makes an archive

    data = json.dumps(manifest(s, release), indent=1).encode()
    out = build.build_root(s) / f"{release.upload_name}.{os.getpid()}.{threading.get_ident()}"
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        tar.add(tree, arcname=".")
        info = tarfile.TarInfo(f"./{META}/manifest.json")
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
        if wheels is not None:
            tar.add(wheels, arcname="wheelhouse",
                    filter=lambda ti: None if ti.name.endswith(".complete") else ti)
    return out
