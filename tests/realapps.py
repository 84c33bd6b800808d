"""Real open-source Flask apps, unchanged, from the source distributions their authors publish.

This repository never carries other people's code, so each app comes from its sdist on PyPI,
pinned by version and sha256, downloaded by pip on first use (or by `make test`, which runs
this file) into ~/.cache/flask-ops/real-apps, and unpacked into a test's own directory.

    python tests/realapps.py          # download every sdist (once)
"""

import hashlib
import posixpath
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CACHE = Path.home() / ".cache" / "flask-ops" / "real-apps"

# sdist file name: (pip requirement, sha256)
SDISTS = {
    # Flask's own examples: the tutorial (flaskr) and the JavaScript example. BSD-3-Clause.
    "flask-3.1.3.tar.gz": (
        "flask==3.1.3", "0ef0e52b8a9cd932855379197dd8f94047b359ca0a78695144304cb45f87c9eb"),
    # Open Web Calendar: an app at its repository's root, pinned requirements/base.txt. GPL-2.0.
    "open_web_calendar-1.51.tar.gz": (
        "open-web-calendar==1.51", "afeed929d34e8639e31353013409278b846ba71e0331185468fd4c9a4e70ccea"),
    # I Hate Money: Flask-Migrate (it upgrades its schema as it starts), Flask-SQLAlchemy,
    # a settings file named by an environment variable, a REST API. BSD-style licence.
    "ihatemoney-7.2.1.tar.gz": (
        "ihatemoney==7.2.1", "e74fc718f68e1ec400cf9c4364025a91febb86c9b523aeb33a52e5adbeaa77e1"),
}

# app: (sdist, the project's directory inside it, its licence file there)
APPS = {
    "flaskr": ("flask-3.1.3.tar.gz", "flask-3.1.3/examples/tutorial", "LICENSE.txt"),
    "js_example": ("flask-3.1.3.tar.gz", "flask-3.1.3/examples/javascript", "LICENSE.txt"),
    # Flask's Celery example has no licence file of its own: Flask's (the same BSD-3-Clause)
    # is copied in beside it.
    "celery_example": ("flask-3.1.3.tar.gz", "flask-3.1.3/examples/celery", "../../LICENSE.txt"),
    "open_web_calendar": ("open_web_calendar-1.51.tar.gz", "open_web_calendar-1.51", "LICENSE"),
    "ihatemoney": ("ihatemoney-7.2.1.tar.gz", "ihatemoney-7.2.1", "LICENSE"),
}


def sdist(name):
    """The verified sdist in the cache, downloaded by pip if missing."""
    path = CACHE / name
    requirement, sha256 = SDISTS[name]
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--no-binary", ":all:", "--dest", tmp,
                            requirement], check=True, stdout=subprocess.DEVNULL)
            shutil.move(str(Path(tmp, name)), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        path.unlink()
        raise RuntimeError(f"{name}: sha256 {digest}, expected {sha256} (removed; run again)")
    return path


def project(app, dest):
    """Unpack the app's project directory (as its repository holds it) into dest, with its
    licence (copied in when it lives above the project in the sdist)."""
    name, inside, licence = APPS[app]
    licence_path = posixpath.normpath(posixpath.join(inside, licence))
    with tarfile.open(sdist(name)) as tar, tempfile.TemporaryDirectory() as tmp:
        members = [m for m in tar.getmembers() if m.name == inside or m.name.startswith(inside + "/")
                   or m.name == licence_path]
        tar.extractall(tmp, members=members, filter="data")
        shutil.copytree(Path(tmp, inside), dest)
        if not (Path(dest) / posixpath.basename(licence_path)).is_file():
            shutil.copy(Path(tmp, licence_path), dest)
    assert (Path(dest) / posixpath.basename(licence_path)).is_file()
    return Path(dest)


if __name__ == "__main__":
    for name in SDISTS:
        print(sdist(name))
