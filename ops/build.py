"""Build a release on the deploy side: wheels, collected static files, the release tree.

The target has no internet, so every dependency travels as a wheel built here. Builds are
cached by content hash, so an unchanged requirements file costs nothing the second time.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from . import outdir, requirements as requirements_mod, settings as settings_mod, tree as tree_mod
from .errors import OpsError

COLLECT_REQUIREMENT = "flask-collect-invenio>=1.4"
DRIVER = Path(__file__).with_name("collect_driver.py")


def build_root(settings):
    """Per-project build output (the release tree, collected static files), in this user's
    cache and never in the project: an app at its repository's root (`source: "."`) would
    otherwise hold its own build output, and a release would ship it."""
    project = str(Path(settings.project_root).resolve())
    digest = hashlib.sha256(project.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return cache_root() / "builds" / f"{settings.app_name}-{digest}"


def cache_root():
    """Content-addressed wheels and venvs, shared by every project on this machine."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base, "flask-ops")


def requirements(settings):
    """The app's requirements, flattened and checked (see ops.requirements)."""
    return requirements_mod.read(settings.requirements_file, settings.source_dir)


def requirements_digest(settings):
    return requirements(settings).digest


def write_requirements(reqs, directory, hashes=True):
    """requirements.txt (and constraints.txt) in directory; returns the requirements path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "constraints.txt").write_text(reqs.constraints_text())
    path = directory / "requirements.txt"
    path.write_text(reqs.text(hashes=hashes))
    return path


def _run(argv, what, **kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          **kwargs)
    if proc.returncode != 0:
        raise OpsError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout.strip()[-3000:]}")
    return proc.stdout


@contextlib.contextmanager
def building(path):
    """Held while `path` (a cache entry) is built: two fab processes on this machine (two
    projects, a fleet, CI jobs) wait for each other instead of deleting each other's work."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def wheelhouse(settings):
    """Wheels for the app's requirements (and Flask-Collect), built once per requirements."""
    reqs = requirements(settings)
    path = cache_root() / "wheelhouse" / reqs.digest
    if (path / ".complete").exists():
        return path
    with building(path):
        if not (path / ".complete").exists():
            _build_wheelhouse(settings, reqs, path)
    return path


def _build_wheelhouse(settings, reqs, path):
    path.mkdir(parents=True, exist_ok=True)
    spec = cache_root() / "requirements" / reqs.digest
    flat = write_requirements(reqs, spec)
    what = f"building wheels for {settings.requirements_file}"
    if reqs.hashed:
        # pip checks every hash or none: build the app's pinned set first, then Flask-Collect
        # held to the same versions.
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(path),
              "-r", str(flat)], what)
        pins = write_requirements(reqs, spec / "unhashed", hashes=False)
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(path),
              "-c", str(pins), COLLECT_REQUIREMENT], what)
    else:
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(path),
              "-r", str(flat), COLLECT_REQUIREMENT], what)
    (path / ".complete").write_text("")


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
    with building(path):
        if not (path / ".complete").exists():
            _download_wheels(local, path, python, arch)
    return path


def _download_wheels(local, path, python, arch):
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


def venv(settings, python=None):
    """A venv with the app's requirements installed offline from the wheelhouse."""
    python = python or sys.executable
    wheels = wheelhouse(settings)
    tag = hashlib.sha256(f"{python}{wheels}".encode()).hexdigest()[:8]
    path = cache_root() / "venvs" / f"{wheels.name}-{tag}"
    if (path / ".complete").exists():
        return path
    with building(path):
        if not (path / ".complete").exists():
            _make_venv(settings, python, wheels, path)
    return path


def _make_venv(settings, python, wheels, path):
    shutil.rmtree(path, ignore_errors=True)
    flat = write_requirements(requirements(settings), path.with_name(path.name + ".req"),
                              hashes=False)
    _run([python, "-m", "venv", str(path)], "creating the build venv")
    _run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
          "--find-links", str(wheels), "-r", str(flat),
          COLLECT_REQUIREMENT], "installing requirements into the build venv")
    (path / ".complete").write_text("")


def collectstatic(settings, out=None, source=None):
    """Run Flask-Collect for the app into out (default: collected_static in build_root).

    source: the release tree to collect from; by default a fresh copy of what a release ships,
    so an excluded file (a `.env` behind a symlink in static/) can never be collected.
    """
    project, src = Path(settings.project_root).resolve(), settings.source_dir
    wanted = Path(os.path.abspath(out or build_root(settings) / "collected_static"))
    if src in wanted.parents:
        raise OpsError(f"{out} is inside the app's source ({src}); name a directory outside it")
    # Everything that can refuse the app (its files, its requirements) runs before `out` is
    # touched: a refused build leaves the output directory as it was.
    keep = (project, src, Path.cwd())
    outdir.check(wanted, "collected static files", keep)
    if source is None:
        source = stage_source(settings, build_root(settings) / "collect-source")
    python = venv(settings) / "bin" / "python"
    out = outdir.prepare(wanted, "collected static files", keep)
    result = run_driver(python, DRIVER, [source, json.dumps(settings.wsgi_spec.as_json()), out],
                        "collecting static files")
    return out, result["files"], checked_statics(settings, result)


def run_driver(python, driver, args, what):
    """A driver script run in the app's build venv: its last stdout line is one JSON object,
    {"error": ...} when it refused; anything else (a crash) shows its stderr."""
    proc = subprocess.run([str(python), str(driver), *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise OpsError(f"{what} failed:\n{proc.stderr.strip()[-3000:]}") from None
    if "error" in result:
        raise OpsError(f"{what} failed: {result['error']}")
    return result


def checked_statics(s, result):
    """The app's static URL prefixes, as checked values: they come from the app's code and
    reach the front server's config like any setting."""
    app_static = result["app_static_url"]
    if app_static and app_static != s.static_url:
        raise OpsError(f"deploy.static_url is {s.static_url!r} but the app serves its static "
                       f"folder at {app_static!r}: set static_url: {app_static}")
    instance = result.get("instance")
    if instance is not None and not settings_mod.is_release_path(instance):
        instance = None  # a name flask-ops would not put in a config: not linked
    prefixes = []
    for prefix in result["prefixes"]:
        try:
            settings_mod.check_static_prefix(s, prefix)
        except OpsError as exc:
            raise OpsError(f"the app serves static files at {prefix!r}, which flask-ops cannot "
                           f"serve from files: {exc}") from None
        prefixes.append(prefix)
    return {"prefixes": tuple(prefixes), "samples": tuple(result["samples"]), "instance": instance}


def stage_source(settings, dest):
    """A fresh copy of what a release ships from the app's source (see ops.tree) at dest.
    Shared paths (shared_dirs, shared_files) are never shipped: the host links them."""
    shared = [path for _, path in settings.shared_links]
    if shared:
        _check_shared_paths(settings, shared)
    selection = tree_mod.select(settings.source_dir,
                                settings.exclude + tuple(f"/{path}" for path in shared))
    dest = outdir.scratch(Path(dest).parent, Path(dest).name)
    tree_mod.copy(settings.source_dir, dest, selection)
    return dest


def _check_shared_paths(settings, shared):
    """A shared path holds what the app writes, never what the project ships: a path with
    files of the source (its code, templates...) would lose them in every release."""
    shipped = tree_mod.select(settings.source_dir, settings.exclude).files
    for kind, path in settings.shared_links:
        key = "shared_dirs" if kind == "dir" else "shared_files"
        for rel in shipped:
            inside = rel == path or rel.startswith(path + "/")
            if inside and not rel.rsplit("/", 1)[-1].startswith("."):
                raise OpsError(f"{key}: {path} holds {rel}, a file of the app's source; a "
                               "shared path is where the app writes (logs, uploads), kept on "
                               "the host: move that file out, or name another path")
