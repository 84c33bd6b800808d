"""The release artifact: app source + collected static + rendered configs, content-addressed.

The same inputs give the same digest, so a redeploy of an unchanged app is recognised
without touching the host beyond one fact-gathering command.
"""

import getpass
import hashlib
import io
import json
import os
import shutil
import socket
import tarfile
import time
from pathlib import Path, PurePosixPath

from . import build, outdir, plan, render


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


def stage_tree(s, fleet=None):
    """Build the release tree locally; returns (tree, digest, rendered files)."""
    root = build.build_root(s)
    tree = build.stage_source(s, root / "release")
    source_digest = tree_digest(tree)
    collected = root / "collected" / source_digest[:16]
    if not (collected / ".complete").exists():
        build.collectstatic(s, collected, source=tree)
        (collected / ".complete").write_text("")
    shutil.copytree(collected, tree / "collected_static",
                    ignore=shutil.ignore_patterns(".complete", outdir.MARKER))
    reqs = build.requirements(s)
    # pip reads this flat, checked copy on the host, never the app's own file (see requirements)
    build.write_requirements(reqs, tree / plan.META, hashes=False)
    files = render.render(s, fleet)
    for f in files:
        if f.in_release:
            target = tree / PurePosixPath(f.path).relative_to(s.current)
        else:
            target = tree / plan.META / "etc" / PurePosixPath(f.path).relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.content)
    digest = tree_digest(tree) + reqs.digest
    return tree, hashlib.sha256(digest.encode()).hexdigest()[:16], files


def new_release(s, digest, files):
    release_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + digest[:8]
    return plan.Release(id=release_id, digest=digest,
                        requirements_digest=build.requirements_digest(s), files=tuple(files),
                        upload_name=f"flask-ops-{s.app_name}-{release_id}.tar.gz")


def who():
    return {"user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.time()}


def bundle(s, tree, release, facts, with_wheels):
    """The tar.gz uploaded to one host: the shared release tree plus this host's manifest and
    candidate main config (added to the archive only: the tree is shared by parallel uploads)."""
    manifest = {"id": release.id, "digest": release.digest,
                "requirements": release.requirements_digest, "app": s.app_name,
                "stack": s.stack, "nginx": s.nginx, "init": s.init, "built_by": who(),
                "files": [f.path for f in release.files]}
    extra = {f"{plan.META}/manifest.json": json.dumps(manifest, indent=1),
             f"{plan.META}/candidate/main.conf": plan.candidate_main(s, facts, release.id)}
    out = build.build_root(s) / f"{release.upload_name}.{os.getpid()}.{id(facts)}"
    with tarfile.open(out, "w:gz", compresslevel=1) as tar:
        tar.add(tree, arcname=".")
        for name, text in extra.items():
            data = text.encode()
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        if with_wheels:
            wheels = build.target_wheelhouse(s, facts["python"], facts["arch"])
            tar.add(wheels, arcname="wheelhouse",
                    filter=lambda ti: None if ti.name.endswith(".complete") else ti)
    return out
