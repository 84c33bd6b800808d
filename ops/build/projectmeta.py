"""The project's own installed metadata, for a project described by pyproject.toml (or whose
build backend reports it: ops.build.backendmeta).

A release ships the project's source, not an installed wheel of it, so without this
`importlib.metadata.version("myapp")` raises PackageNotFoundError on the host and Flask never
sees the project's `flask.commands` entry points. A `NAME-VERSION.dist-info` next to the code
(on sys.path with it) is what an install would have left for both. Pure: pyproject data (or
the backend's report) in, {relative path: text} out. A dynamic name or version is the
backend's to know: ops.build.backendmeta asks it.
"""

import re

from ..errors import OpsError

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?\Z")  # PEP 508
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,99}\Z")
_EP_NAME = re.compile(r"[A-Za-z0-9_.:-][A-Za-z0-9_. :-]{0,199}\Z")
_EP_VALUE = re.compile(r"[A-Za-z_][\w.]*(?::[A-Za-z_][\w.]*)?(?: *\[[\w, -]*\])?\Z")


def dist_info(data, where="pyproject.toml"):
    """{path: text} of the project's .dist-info, or {} when it has no static name and
    version. data: the parsed pyproject.toml. Raises OpsError on an entry point or a name
    that is not one (it would be written into a file name and a metadata file)."""
    project = data.get("project") if isinstance(data.get("project"), dict) else None
    poetry = ((data.get("tool") or {}).get("poetry") if isinstance(data.get("tool"), dict) else None)
    if project is not None:
        name, version = project.get("name"), project.get("version")
        groups = {"console_scripts": project.get("scripts"), "gui_scripts": project.get("gui-scripts")}
        extra = project.get("entry-points")
        key = "project"
    elif isinstance(poetry, dict):
        name, version = poetry.get("name"), poetry.get("version")
        groups, extra, key = {"console_scripts": poetry.get("scripts")}, poetry.get("plugins"), "tool.poetry"
    else:
        return {}
    if not isinstance(name, str) or not isinstance(version, str):
        return {}  # a dynamic version: only the build backend knows it
    if not _NAME.match(name) or not _VERSION.match(version):
        raise OpsError(f"{where}: [{key}] name {name!r} / version {version!r} is not a "
                       "package name and version (PEP 508, PEP 440)")
    if isinstance(extra, dict):
        groups.update(extra)
    lines = []
    for group, entries in groups.items():
        if entries is None:
            continue
        if not isinstance(entries, dict) or not _EP_NAME.match(str(group)):
            raise OpsError(f"{where}: [{key}] entry points {group!r}: a table of name = "
                           "\"module:object\"")
        body = []
        for ep_name, value in entries.items():
            if isinstance(value, dict) and "reference" in value:  # poetry's long form
                value = value["reference"]
            if not isinstance(value, str) or not _EP_NAME.match(ep_name) or "=" in ep_name \
                    or not _EP_VALUE.match(value):
                raise OpsError(f"{where}: [{key}] entry point {group}.{ep_name}: expected "
                               f"name = \"module:object\", got {value!r}")
            body.append(f"{ep_name} = {value}")
        if body:
            lines += [f"[{group}]", *body, ""]
    return _files(name, version, "\n".join(lines))


def _files(name, version, entry_points):
    folder = f"{re.sub(r'[-_.]+', '_', name).lower()}-{version.replace('-', '_')}.dist-info"
    files = {f"{folder}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{folder}/INSTALLER": "flask-ops\n"}
    if entry_points:
        files[f"{folder}/entry_points.txt"] = entry_points
    return files


def dist_info_from_backend(meta, where):
    """{path: text} of the .dist-info for metadata the project's build backend reported
    (ops.build.backendmeta), checked as the static kind is."""
    if not _NAME.match(meta.name) or not _VERSION.match(meta.version):
        raise OpsError(f"{where}: its build backend reports name {meta.name!r} / version "
                       f"{meta.version!r}, not a package name and version (PEP 508, PEP 440)")
    for line in meta.entry_points.splitlines():
        line = line.strip()
        if not line or (line.startswith("[") and line.endswith("]") and _EP_NAME.match(line[1:-1])):
            continue
        ep_name, _, value = (part.strip() for part in line.partition("="))
        if not _EP_NAME.match(ep_name) or not _EP_VALUE.match(value):
            raise OpsError(f"{where}: its build backend reports the entry point {line!r}, "
                           "not name = module:object")
    return _files(meta.name, meta.version, meta.entry_points)
