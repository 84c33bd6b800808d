"""A project's metadata from its own build backend, for a project whose dependencies only the
backend knows: a setup.py (install_requires), or a pyproject.toml whose dependencies or
version are `dynamic`.

The project is built as a wheel on this machine, as `pip install .` would build it: from a
copy of what its release ships (nothing is written into the project), in pip's build
isolation (the backend comes from the index). Its METADATA gives the name, the version and
the dependencies (Requires-Dist without extras), its entry_points.txt the entry points. The
release ships the source, with this metadata beside it (ops.build.projectmeta), and the files the
backend wrote as it built that the source lacks (a hatch build hook's compiled translations,
as `pip install .` would have them): those are kept, the rest of the wheel is thrown away.
Cached by the content of what the release ships.
"""

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from .. import tree as tree_mod
from ..errors import OpsError

BUILD_TIMEOUT = 300


@dataclass(frozen=True)
class Metadata:
    name: str
    version: str
    requires: tuple  # PEP 508 strings, extras' requirements left out
    entry_points: str  # entry_points.txt as the backend wrote it ("" when none)
    # Wheel paths of files the backend wrote while building (in no shipped file's place),
    # kept in generated_dir.
    generated: tuple = ()
    generated_dir: str = ""


def _dynamic(pyproject):
    """The [project] fields a pyproject.toml leaves to its backend; None without a [project]
    table (or without the file)."""
    from . import requirements as requirements_mod
    project = requirements_mod._toml(pyproject).get("project") if Path(pyproject).is_file() else None
    return set(project.get("dynamic") or []) if isinstance(project, dict) else None


def needs_backend(source):
    """Whether only the project's build backend knows its dependencies: setup.py (or
    setup.cfg) and no pyproject.toml that lists them statically."""
    source = Path(source)
    dynamic = _dynamic(source / "pyproject.toml")
    if dynamic is not None:
        return "dependencies" in dynamic
    return (source / "setup.py").is_file() or (source / "setup.cfg").is_file()


def builds_files(project):
    """Whether the project's pyproject.toml gives its backend files to write as it builds: a
    hatch build hook, a Poetry build script. (A setup.py's commands could too; it is built
    when its dependencies are asked for, not for that alone.)"""
    from . import requirements as requirements_mod
    project = Path(project)
    if not (project / "pyproject.toml").is_file():
        return False
    tool = requirements_mod._toml(project / "pyproject.toml").get("tool")

    def table(*keys):
        data = tool
        for key in keys:
            data = data.get(key) if isinstance(data, dict) else None
        return data

    return bool(table("hatch", "build", "hooks") or table("hatch", "build", "targets", "wheel", "hooks")
                or table("poetry", "build"))


def dynamic_version(pyproject):
    """A pyproject.toml whose [project] version only its backend knows."""
    return "version" in (_dynamic(pyproject) or ())


_SEEN = {}  # (source, exclude, each shipped file's size and mtime) -> Metadata


def read(source, exclude, cache_dir):
    """The project's Metadata (built once per content of what it ships). One build asks for it
    several times (its requirements, their digest, the staged tree's metadata): the files'
    contents are hashed again only when their sizes or times changed."""
    source = Path(source)
    shipped = tree_mod.select(source, exclude).files
    seen_key = (str(source), tuple(exclude), tuple(
        (rel, st.st_size, st.st_mtime_ns) for rel, st in
        ((rel, (source / rel).stat()) for rel in shipped)))
    if seen_key not in _SEEN:
        _SEEN.clear()  # one project's current state is all a process needs
        _SEEN[seen_key] = _read(source, shipped, cache_dir)
    return _SEEN[seen_key]


def _read(source, shipped, cache_dir):
    digest = hashlib.sha256()
    for rel in shipped:
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(hashlib.sha256((source / rel).read_bytes()).digest())
    cached = Path(cache_dir) / f"{digest.hexdigest()[:24]}.json"
    generated_dir = cached.with_suffix(".generated")
    if cached.is_file():
        data = json.loads(cached.read_text())
        if "generated" in data:  # (an older flask-ops kept no built files: build again)
            return Metadata(data["name"], data["version"], tuple(data["requires"]),
                            data["entry_points"], tuple(data["generated"]), str(generated_dir))
    shutil.rmtree(generated_dir, ignore_errors=True)
    meta = _build(source, shipped, generated_dir)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"name": meta.name, "version": meta.version,
                                  "requires": list(meta.requires),
                                  "entry_points": meta.entry_points,
                                  "generated": list(meta.generated)}))
    return meta


def _build(source, shipped, generated_dir):
    with tempfile.TemporaryDirectory(prefix="flask-ops-backend-") as tmp:
        copy, out = Path(tmp, "project"), Path(tmp, "wheel")
        for rel in shipped:
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, copy / rel)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                 "--disable-pip-version-check", "--wheel-dir", str(out), str(copy)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise OpsError(f"{source}: building the project with its build backend took "
                           f"over {BUILD_TIMEOUT}s") from None
        wheels = list(out.glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            tail = "\n".join(line for line in proc.stdout.splitlines()
                             if not line.startswith("WARNING: Location"))[-2000:]
            raise OpsError(f"{source}: its build backend could not build the project (as "
                           f"`pip wheel .` would):\n{tail}")
        return _from_wheel(wheels[0], shipped, generated_dir)


def _generated(names, shipped):
    """Wheel members that are no shipped file (at the source's root or under a src/-like
    directory): what the backend wrote while building."""
    shipped_paths = set(shipped)
    suffixes = {rel.split("/", i)[-1] for rel in shipped for i in range(1, rel.count("/") + 1)}
    return tuple(sorted(
        n for n in names if not n.endswith("/") and "/" in n
        and not any(part in ("", ".", "..") for part in n.split("/"))
        and not n.split("/")[0].endswith((".dist-info", ".data"))
        and n not in shipped_paths and n not in suffixes))


def _from_wheel(wheel, shipped=(), generated_dir=None):
    with zipfile.ZipFile(wheel) as zf:
        generated = _generated(zf.namelist(), shipped)
        for name in generated:
            target = Path(generated_dir, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
        infos = [n for n in zf.namelist() if n.count("/") == 1
                 and n.split("/")[0].endswith(".dist-info")]
        metadata = next((n for n in infos if n.endswith("/METADATA")), None)
        if metadata is None:
            raise OpsError(f"{wheel.name}: no METADATA in the wheel its backend built")
        headers = Parser().parsestr(zf.read(metadata).decode("utf-8", "replace"), headersonly=True)
        points = next((n for n in infos if n.endswith("/entry_points.txt")), None)
        entry_points = zf.read(points).decode("utf-8", "replace") if points else ""
    requires = tuple(r for r in headers.get_all("Requires-Dist") or []
                     if "extra" not in r.split(";", 1)[-1] or ";" not in r)
    return Metadata(headers.get("Name", ""), headers.get("Version", ""), requires, entry_points,
                    generated, str(generated_dir or ""))
