"""Build a release on the deploy side: wheels, collected static files, the release tree.

The target has no internet, so every dependency travels as a wheel built here. Builds are
cached by content hash, so an unchanged requirements file costs nothing the second time.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .. import locks, outdir, tree as tree_mod
from ..cachedir import cache_root
from ..config import keys, settings as settings_mod
from ..errors import OpsError
from ..targets import stacks
from . import backendmeta, projectmeta, requirements as requirements_mod

COLLECT_REQUIREMENT = "flask-collect-invenio>=1.4"
DRIVER = Path(__file__).with_name("collect_driver.py")


def build_root(settings):
    """Per-project build output (the release tree, collected static files), in this user's
    cache and never in the project: an app at its repository's root (`source: "."`) would
    otherwise hold its own build output, and a release would ship it."""
    project = str(Path(settings.project_root).resolve())
    digest = hashlib.sha256(project.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return cache_root() / "builds" / f"{settings.app_name}-{digest}"


def private_dir(settings, name):
    """build_root/NAME-PID, this process's own: two deploys of one project from one machine (two
    terminals, two hosts, two test lanes) never build in each other's tree. Those of processes
    that have ended are removed on the way."""
    root = build_root(settings)
    for old in root.glob(f"{name}-*") if root.is_dir() else ():
        pid = old.name[len(name) + 1:]
        if pid.isdigit() and int(pid) != os.getpid() and not locks.pid_alive(pid):
            shutil.rmtree(old, ignore_errors=True)
    return root / f"{name}-{os.getpid()}"


def requirements(settings):
    """The app's requirements, flattened and checked (see ops.build.requirements); those of a
    project only its build backend knows (setup.py, dynamic dependencies) from that backend."""
    path = settings.requirements_file
    if uses_backend(settings):
        reqs = requirements_mod.from_backend(backend_metadata(settings).requires, path)
    else:
        reqs = requirements_mod.read(path, settings.source_dir)
    return with_app_server(settings, reqs)


def with_app_server(settings, reqs):
    """The app server itself when it runs from the app's venv (gunicorn), unless the project
    already names it (its own pin wins)."""
    extra = stacks.of(settings).venv_requirement
    if not extra or requirements_mod.names(reqs) & {requirements_mod.canonical(extra)}:
        return reqs
    if reqs.hashed:
        raise OpsError(f"{settings.requirements_file}: its requirements carry hashes, and pip "
                       f"installs nothing without one: add {extra} with its hash (stack "
                       f"{settings.stack} runs it from the app's venv)")
    return dataclasses.replace(reqs, lines=reqs.lines + (extra,))


def uses_backend(settings):
    path = settings.requirements_file
    return path.name == "setup.py" or (
        path.name == "pyproject.toml" and backendmeta.needs_backend(path.parent))


def backend_metadata(settings):
    """What the project's build backend reports about it (ops.build.backendmeta)."""
    return backendmeta.read(settings.requirements_file.parent, settings.exclude,
                            cache_root() / "backend-metadata")


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


LOCAL_PYTHON = "%d.%d.%d" % sys.version_info[:3]
_WHEEL = re.compile(r"(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<tags>.+)\.whl$")
_PURE = re.compile(r"-(py3|py2\.py3)-none-any\.whl$")
_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\Z")
DEFAULT_GLIBC = "2.17"  # manylinux2014: what a host whose C library is unknown is assumed to have


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def target_wheelhouse(settings, python, arch, libc=None):
    """Wheels for the host's own interpreter: `python` X.Y.Z, machine `arch`, glibc `libc`.

    The local wheelhouse was resolved for this machine's Python: its environment markers
    (`async-timeout; python_full_version <= "3.11.2"`, `tomli; python_version < "3.11"`)
    were evaluated here. For any other interpreter the requirements are resolved again for
    the host with uv (`uv pip compile --python-version X.Y.Z --python-platform
    ARCH-manylinux_2_N`; pip evaluates markers for the running Python only, whatever its
    --python-version says), preferring the versions already built here; each wheel is then
    the local one when it is pure Python, else the host's, downloaded as a manylinux wheel.
    """
    local = wheelhouse(settings)
    if (python, arch) == (LOCAL_PYTHON, os.uname().machine):
        return local
    path = cache_root() / "wheelhouse" / f"{local.name}-cp{python}-{arch}-glibc{libc or 'unknown'}"
    if (path / ".complete").exists():
        return path
    with building(path):
        if not (path / ".complete").exists():
            pins = resolve_for(settings, local, python, arch, libc, path.with_name(path.name + ".spec"))
            _host_wheels(local, path, pins, python, arch, libc)
    return path


# The manylinux targets uv's --python-platform names (it has no 2_18..2_27, 2_29, 2_30).
_UV_MANYLINUX = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)


def uv_platform(arch, libc):
    """uv's --python-platform for a Linux host: the newest manylinux target it names that
    the host's glibc runs (a wheel for glibc 2.40 runs on 2.41)."""
    if arch not in ("x86_64", "aarch64"):
        return "linux"
    minor = int((libc or DEFAULT_GLIBC).split(".")[1])
    usable = [m for m in _UV_MANYLINUX if m <= minor] or [17]
    return f"{arch}-manylinux_2_{usable[-1]}"


def resolve_for(settings, local, python, arch, libc, spec):
    """name==version lines: the app's requirements resolved for the host's interpreter."""
    from uv import find_uv_bin

    reqs = requirements(settings)
    flat = write_requirements(reqs, spec, hashes=False)
    resolved = spec / "resolved.txt"
    # uv prefers versions already in its output file: the ones this machine built and tested.
    resolved.write_text("".join(f"{m['name']}=={m['version']}\n" for m in
                                (_WHEEL.match(w.name) for w in sorted(local.glob("*.whl"))) if m))
    env = dict(os.environ)
    if env.get("PIP_INDEX_URL") and not env.get("UV_INDEX_URL"):
        env["UV_INDEX_URL"] = env["PIP_INDEX_URL"]
    _run([find_uv_bin(), "pip", "compile", "--quiet", "--no-header", "--no-annotate",
          "--python-version", python, "--python-platform", uv_platform(arch, libc),
          "--output-file", str(resolved), str(flat)],
         f"resolving {settings.requirements_file.name} for Python {python} on {arch}", env=env)
    pins = []
    for line in resolved.read_text().splitlines():
        line = line.split("#")[0].strip()
        match = _PIN.match(line)
        if match:
            pins.append((match.group(1), match.group(2)))
        elif line:
            raise OpsError(f"resolving for Python {python}: unexpected line {line!r}")
    return pins


def _platforms(arch, libc):
    """pip's --platform values for a glibc host: every manylinux tag it can run."""
    major, minor = (int(x) for x in (libc or DEFAULT_GLIBC).split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
    tags += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return [arg for tag in tags for arg in ("--platform", tag)]


def _host_wheels(local, path, pins, python, arch, libc):
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    pure = {}
    for wheel in local.glob("*.whl"):
        m = _WHEEL.match(wheel.name)
        if m and _PURE.search(wheel.name):
            pure[(_canonical(m["name"]), m["version"])] = wheel
    wanted = []
    for name, version in pins:
        wheel = pure.get((_canonical(name), version))
        if wheel is not None:
            shutil.copy2(wheel, path)
        else:
            wanted.append(f"{name}=={version}")
    if wanted:
        tag = "".join(python.split(".")[:2])
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
              "--only-binary=:all:", "--implementation", "cp", "--python-version",
              ".".join(python.split(".")[:2]), "--abi", f"cp{tag}", "--abi", "abi3",
              "--abi", "none", *_platforms(arch, libc), "--dest", str(path), *wanted],
             f"downloading wheels for Python {python} on {arch} ({', '.join(wanted)}); "
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


def app_environment(resolved):
    """The environment the app is imported with here (collect): its own `env:` values and
    secrets as the host will have them, a throwaway value for those the host generates
    (SECRET_KEY), never this machine's shell environment (only PATH and HOME of it)."""
    import secrets as secrets_mod
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"),
           "LANG": "C.UTF-8", "FLASK_OPS_BUILD": "1"}
    if resolved is not None:
        env.update(dict(resolved.values))
        env.update({name: "flask-ops-build-only-" + secrets_mod.token_hex(16)
                    for name in resolved.generate})
    return env


def host_view(settings, env, source):
    """The app's environment with the host's paths pointing here. An `env:` value naming a
    path of the app on the host (a settings file in `current`, a database in `shared/data`)
    would name nothing on this machine, and an app that reads or writes it as it is imported
    (I Hate Money runs its migrations then) could not be collected. A throwaway view of the
    app's base directory stands in: `current` is the tree being collected, `shared/data` an
    empty directory (FLASK_OPS_DATA_DIR, as on the host), anything else under the base an
    empty place of its own. Nothing the build writes there reaches the host."""
    view = private_dir(settings, "host-view")
    shutil.rmtree(view, ignore_errors=True)
    (view / "shared" / "data").mkdir(parents=True)
    (view / "current").symlink_to(source.resolve(), target_is_directory=True)
    base = settings.base.rstrip("/")

    def local(value):
        if value == base or value.startswith(base + "/"):
            return str(view) + value[len(base):]
        return value

    mapped = {name: local(value) for name, value in env.items()}
    mapped["FLASK_OPS_DATA_DIR"] = local(settings.data_dir)
    return mapped


def collectstatic(settings, out=None, source=None, env=None):
    """Run Flask-Collect for the app into out (default: collected_static in build_root).

    source: the release tree to collect from; by default a fresh copy of what a release ships,
    so an excluded file (a `.env` behind a symlink in static/) can never be collected.
    """
    project, src = Path(settings.project_root).resolve(), settings.source_dir
    if out is not None and not str(out).strip():
        raise OpsError("--out: an empty path; name a directory for the collected static files")
    wanted = Path(os.path.abspath(out or build_root(settings) / "collected_static"))
    if src in wanted.parents:
        raise OpsError(f"{out} is inside the app's source ({src}); name a directory outside it")
    # Everything that can refuse the app (its files, its requirements) runs before `out` is
    # touched: a refused build leaves the output directory as it was.
    keep = (project, src, Path.cwd())
    outdir.check(wanted, "collected static files", keep)
    if source is None:
        source = stage_source(settings, private_dir(settings, "collect-source"))
    python = venv(settings) / "bin" / "python"
    out = outdir.prepare(wanted, "collected static files", keep)
    if env is not None:
        env = host_view(settings, env, Path(source))
    result = run_driver(python, DRIVER, [source, json.dumps(settings.wsgi_spec.as_json()), out,
                                             settings.python_path],
                        "collecting static files", env=env)
    return out, result["files"], checked_statics(settings, result)


IMPORT_TIMEOUT = int(os.environ.get("FLASK_OPS_IMPORT_TIMEOUT", "300"))


def run_driver(python, driver, args, what, env=None):
    """A driver script run in the app's build venv: its last stdout line is one JSON object,
    {"error": ...} when it refused; anything else (a crash) shows its stderr. The import of the
    app is bounded (FLASK_OPS_IMPORT_TIMEOUT, 300 s): an app that waits at import for a
    database it cannot reach is stopped, with its process group."""
    from .. import safeio

    # -B: importing the app writes no __pycache__ into the tree it is imported from (a release
    # being built: its digest, and what it ships, would depend on whether it was collected).
    proc = safeio.run_bounded([str(python), "-B", str(driver), *map(str, args)],
                              f"{what} (importing the app)", IMPORT_TIMEOUT, env=env)
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    try:
        result = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise OpsError(f"{what} failed: the app's import ended with exit status "
                       f"{proc.returncode}" + (f":\n{stderr[-3000:]}" if stderr else
                                               " and printed nothing")) from None
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
    if instance is not None and not keys.is_release_path(instance):
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
    _write_project_metadata(settings, dest)
    _write_backend_output(settings, dest)
    return dest


def _backend_project(settings):
    """The directory whose pyproject.toml or setup.py builds the project: source's, else the
    project root's pyproject.toml (a src/ layout described from its root)."""
    for directory in (settings.source_dir, Path(settings.project_root).resolve()):
        if (directory / "pyproject.toml").is_file() or (directory / "setup.py").is_file():
            return directory
    return None


def _write_backend_output(settings, dest):
    """What the project's build backend writes as it builds (a hatch hook's compiled
    translations, ignored by git), in the release as `pip install .` would have it: beside
    the shipped package it belongs to, never over a shipped file."""
    if uses_backend(settings):  # built for its dependencies already
        project = settings.requirements_file.parent
    else:
        project = _backend_project(settings)
        if project is None or not backendmeta.builds_files(project):
            return
    meta = backendmeta.read(project, settings.exclude, cache_root() / "backend-metadata")
    imports = Path(dest, settings.python_path)
    rules = tree_mod.spec(settings.exclude)
    for name in meta.generated:
        target = imports / name
        if not (imports / name.split("/")[0]).is_dir() or target.exists() or rules.match_file(name):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(meta.generated_dir, name), target)


def _write_project_metadata(settings, dest):
    """The project's .dist-info next to its code, when its dependencies come from its
    pyproject.toml or its build backend (see ops.build.projectmeta); what the source holds already
    is left alone."""
    described = settings.requirements_file
    if described.name not in ("pyproject.toml", "setup.py") or not described.is_file():
        return
    root = Path(settings.project_root).resolve()
    where = str(described.relative_to(root) if described.is_relative_to(root) else described)
    backend = uses_backend(settings)
    files = {} if backend else projectmeta.dist_info(requirements_mod._toml(described), where)
    if not files and (backend or backendmeta.dynamic_version(described)):
        files = projectmeta.dist_info_from_backend(backend_metadata(settings), where)
    beside = Path(dest, settings.python_path)  # on sys.path with the code, as an install is
    if any(Path(beside, rel).parent.exists() for rel in files):
        return  # the project ships its own
    for rel, text in files.items():
        Path(beside, rel).parent.mkdir(parents=True, exist_ok=True)
        Path(beside, rel).write_text(text)


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
