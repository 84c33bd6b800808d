"""Build a release on the deploy side: wheels, collected static files, the release tree.

The target has no internet, so every dependency travels as a wheel built here. Builds are
cached by content hash, so an unchanged requirements file costs nothing the second time.
"""

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import OpsError

COLLECT_REQUIREMENT = "flask-collect-invenio>=1.4"
DRIVER = Path(__file__).with_name("collect_driver.py")
# Never shipped: caches, VCS data, local environments, editor droppings.
EXCLUDE_NAMES = {"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".pytest_cache",
                 ".mypy_cache", "node_modules", ".DS_Store", "build", "collected_static"}
EXCLUDE_SUFFIXES = (".pyc", ".pyo", ".swp")


def build_root(settings):
    """Per-project build output: the release tree and collected static files."""
    return Path(settings.project_root, "build", settings.app_name).resolve()


def cache_root():
    """Content-addressed wheels and venvs, shared by every project on this machine."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base, "flask-ops")


def requirements_digest(settings):
    return hashlib.sha256(settings.requirements_file.read_bytes()).hexdigest()[:16]


def _run(argv, what, **kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          **kwargs)
    if proc.returncode != 0:
        raise OpsError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout.strip()[-3000:]}")
    return proc.stdout


def wheelhouse(settings):
    """Wheels for the app's requirements (and Flask-Collect), built once per requirements."""
    path = cache_root() / "wheelhouse" / requirements_digest(settings)
    if (path / ".complete").exists():
        return path
    path.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(path),
          "-r", str(settings.requirements_file), COLLECT_REQUIREMENT],
         f"building wheels for {settings.requirements_file}")
    (path / ".complete").write_text("")
    return path


LOCAL_PYTHON = "%d.%d" % sys.version_info[:2]
_PURE = re.compile(r"-(py3|py2\.py3)-none-any\.whl$")
_MANYLINUX = ("manylinux_2_17_{arch}", "manylinux2014_{arch}", "manylinux_2_28_{arch}",
              "manylinux_2_34_{arch}", "linux_{arch}")


def target_wheelhouse(settings, python, arch):
    """Wheels for a host whose Python (X.Y) or machine differs from this one.

    Pure-Python wheels are reused from the local build; every binary wheel is replaced by
    the same version built for the host's CPython, downloaded from the index (manylinux).
    """
    local = wheelhouse(settings)
    if (python, arch) == (LOCAL_PYTHON, platform.machine()):
        return local
    path = cache_root() / "wheelhouse" / f"{local.name}-cp{python.replace('.', '')}-{arch}"
    if (path / ".complete").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    binary = []
    for wheel in sorted(local.glob("*.whl")):
        if _PURE.search(wheel.name):
            shutil.copy2(wheel, path)
        else:
            name, version = wheel.name.split("-")[:2]
            binary.append(f"{name}=={version}")
    if binary:
        tag = python.replace(".", "")
        platforms = [arg for p in _MANYLINUX for arg in ("--platform", p.format(arch=arch))]
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
              "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
              "--abi", f"cp{tag}", "--abi", "abi3", "--abi", "none", *platforms,
              "--dest", str(path), *binary],
             f"downloading wheels for Python {python} on {arch} ({', '.join(binary)}); "
             "a package without such a wheel needs a build on a machine like the host")
    (path / ".complete").write_text("")
    return path


def venv(settings, python=None):
    """A venv with the app's requirements installed offline from the wheelhouse."""
    python = python or sys.executable
    wheels = wheelhouse(settings)
    tag = hashlib.sha256(f"{python}{wheels}".encode()).hexdigest()[:8]
    path = cache_root() / "venvs" / f"{wheels.name}-{tag}"
    if (path / ".complete").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    _run([python, "-m", "venv", str(path)], "creating the build venv")
    _run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
          "--find-links", str(wheels), "-r", str(settings.requirements_file),
          COLLECT_REQUIREMENT], "installing requirements into the build venv")
    (path / ".complete").write_text("")
    return path


def collectstatic(settings, out=None):
    """Run Flask-Collect for the app into out (default build/APP/collected_static)."""
    out = Path(out or build_root(settings) / "collected_static").resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    python = venv(settings) / "bin" / "python"
    proc = subprocess.run([str(python), str(DRIVER), str(settings.source_dir), settings.wsgi,
                           str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise OpsError(f"collecting static files failed:\n{proc.stderr.strip()[-3000:]}") from None
    if "error" in result:
        raise OpsError(f"collecting static files failed: {result['error']}")
    return out, result["files"]


def _ignore(src, names):
    return {n for n in names if n in EXCLUDE_NAMES or n.endswith(EXCLUDE_SUFFIXES)}


def copy_source(settings, dest):
    """Copy the app's source; a symlink is copied as a link, never followed out of the tree."""
    source = settings.source_dir
    for path in source.rglob("*"):
        if path.is_symlink():
            target = (path.parent / os.readlink(path)).resolve()
            if source not in target.parents and target != source:
                raise OpsError(f"{path} links outside the app's source ({target}); "
                               "refusing to ship it")
    shutil.copytree(source, dest, symlinks=True, ignore=_ignore)
    return dest
