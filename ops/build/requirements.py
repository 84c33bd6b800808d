"""The app's requirements file, reduced to what an offline build may contain.

pip honours options inside a requirements file (`--index-url`, `--find-links`, `-e git+...`,
direct URLs), and it would honour them on the target too, which is meant to install offline.
So the file is read here once: nested `-r`/`-c` files are followed (inside the source only),
every line must be a plain requirement specifier (hashes allowed), and the result is one
flat file whose digest covers every file it came from. That flat file is what pip reads, on
the deploy side and on the host.
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from .. import safeio
from ..errors import OpsError

MAX_REQUIREMENTS = 1024 * 1024

_NESTED = re.compile(r"(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?<=-r)|(?<=-c))(\S+)\Z")
_HASH = re.compile(r"--hash[=\s]\s*(sha256|sha384|sha512):([0-9a-fA-F]{64,128})")


@dataclass(frozen=True)
class Requirements:
    """Flat requirement lines (hashes kept), constraint lines, and the files read."""

    lines: tuple
    constraints: tuple
    sources: tuple

    @property
    def hashed(self):
        return any("--hash=" in line for line in self.lines)

    def text(self, hashes=True):
        """requirements.txt content; constraints are written beside it as constraints.txt."""
        lines = [line if hashes else line.split(" --hash=")[0] for line in self.lines]
        head = ["-c constraints.txt"] if self.constraints else []
        return "\n".join(head + lines) + "\n"

    def constraints_text(self):
        return "\n".join(self.constraints) + "\n"

    @property
    def digest(self):
        h = hashlib.sha256(self.text().encode() + b"\0" + self.constraints_text().encode())
        return h.hexdigest()[:16]


def canonical(line):
    """The project name a requirement line names (PEP 503 normalised), or None for a line
    that names none (a URL, a path)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    try:
        return canonicalize_name(Requirement(line.split(" --hash")[0]).name)
    except InvalidRequirement:
        return None


def names(reqs):
    return {canonical(line) for line in reqs.lines} - {None}


def _logical_lines(text):
    """pip's line joining: a trailing backslash continues a line; ' #' starts a comment."""
    number, buffer, start = 0, "", 1
    for number, raw in enumerate(text.splitlines(), 1):
        if not buffer:
            start = number
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        yield start, (buffer + line).strip()
        buffer = ""
    if buffer.strip():
        yield start, buffer.strip()


def _specifier(path, number, line):
    from packaging.requirements import InvalidRequirement, Requirement  # only when parsing

    where = f"{path}:{number}"
    hashes = [f"--hash={algo}:{value.lower()}" for algo, value in _HASH.findall(line)]
    rest = _HASH.sub("", line).strip()
    if rest.startswith("-"):
        option = rest.split()[0].split("=")[0]
        raise OpsError(f"{where}: pip option {option!r} is not accepted: the host installs "
                       "offline from wheels built here, so a requirements file holds only "
                       "requirement specifiers (with --hash), -r and -c")
    try:
        req = Requirement(rest)
    except InvalidRequirement:
        raise OpsError(f"{where}: {rest!r} is not a requirement specifier (name, extras, "
                       "version, marker); URLs, VCS links and local paths are not accepted") from None
    if req.url:
        raise OpsError(f"{where}: {req.name} @ URL is a direct reference; name a version "
                       "from the index instead")
    return " ".join([str(req), *hashes])


def from_backend(lines, path):
    """Requirements a project's build backend reported (ops.build.backendmeta) for `path`."""
    return Requirements(tuple(_specifier(f"{path} (its build backend)", i, line)
                              for i, line in enumerate(lines, 1)), (), (Path(path).resolve(),))


def read(path, root):
    """Flatten `path` (a requirements file inside `root`, or a pyproject.toml)."""
    if Path(path).name == "pyproject.toml":
        return read_pyproject(Path(path))
    lines, constraints, sources = [], [], []
    _read(Path(path), Path(root).resolve(), lines, constraints, sources, constraint=False)
    return Requirements(tuple(lines), tuple(constraints), tuple(sources))


def _read(path, root, lines, constraints, sources, constraint):
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise OpsError(f"{path}: outside the app's source; requirements files must be inside it")
    if resolved in sources:
        return  # included twice (or a cycle): its lines are already in
    if not resolved.exists():
        raise OpsError(f"{path}: no such requirements file")
    data = safeio.read_regular(resolved, str(path), limit=MAX_REQUIREMENTS, follow=True)
    try:
        # pip accepts a UTF-8 byte order mark (an editor's), and so do we
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise OpsError(f"{path}: not UTF-8 text") from None
    sources.append(resolved)
    for number, line in _logical_lines(text):
        if not line:
            continue
        nested = _NESTED.match(line)
        if nested:
            flag, name = nested.groups()
            _read(resolved.parent / name, root, lines, constraints, sources,
                  constraint=constraint or flag in ("-c", "--constraint"))
            continue
        spec = _specifier(path, number, line)
        (constraints if constraint else lines).append(spec)


MAX_TOML = 4 * 2**20
LOCK_FILES = ("uv.lock", "poetry.lock")
# A lock entry that is the project itself or comes from outside an index.
_NOT_FROM_INDEX = ("editable", "virtual", "directory", "path", "git", "url")


def _toml(path):
    try:
        import tomllib
    except ImportError:  # Python < 3.11 on the deploying machine
        try:
            import tomli as tomllib
        except ImportError:
            raise OpsError(f"{path}: reading TOML needs Python 3.11+ (or the tomli package) "
                           "on this machine") from None
    data = safeio.read_regular(path, str(path), limit=MAX_TOML, follow=True)
    try:
        return tomllib.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise OpsError(f"{path}: not valid TOML ({exc})") from None


def _poetry_requirement(name, value):
    """One of Poetry's [tool.poetry.dependencies] as a PEP 508 line (None: skipped)."""
    if name.lower() == "python":
        return None
    if isinstance(value, list):  # alternatives by marker: the lock decides
        return name
    if isinstance(value, dict):
        if value.get("optional"):
            return None
        extras = value.get("extras") or []
        marker = value.get("markers")
        version = value.get("version", "*")
        if not isinstance(version, str) or "git" in value or "path" in value or "url" in value:
            raise OpsError(f"{name}: a Poetry dependency from git, a path or a URL; name a "
                           "version from the index instead")
        spec = name + (f"[{','.join(extras)}]" if extras else "") + _poetry_version(version)
        return spec + (f"; {marker}" if marker else "")
    if not isinstance(value, str):
        raise OpsError(f"{name}: not a Poetry version constraint")
    return name + _poetry_version(value)


def _poetry_version(text):
    """Poetry's ^ and ~ constraints in PEP 440 terms (the lock pins exact versions anyway)."""
    text = text.strip()
    if text in ("", "*"):
        return ""
    if text[0] in "^~" and not text.startswith("~="):
        parts = [int(p) if p.isdigit() else 0 for p in text[1:].split(".")]
        if text[0] == "^":
            first = next((i for i, p in enumerate(parts) if p), len(parts) - 1)
            upper = parts[:first] + [parts[first] + 1]
        else:
            upper = parts[:1] + [parts[1] + 1] if len(parts) > 1 else [parts[0] + 1]
        return f">={text[1:]},<{'.'.join(map(str, upper))}"
    return text if text[0] in "<>=!~" else f"=={text}"


def read_pyproject(path):
    """The app's dependencies from pyproject.toml: PEP 621 [project] dependencies, else
    Poetry's; versions pinned by uv.lock or poetry.lock beside it (as constraints)."""
    data = _toml(path)
    project = data.get("project") or {}
    poetry = ((data.get("tool") or {}).get("poetry") or {}).get("dependencies")
    deps = project.get("dependencies")
    if deps is None and isinstance(poetry, dict):
        deps = [r for r in (_poetry_requirement(n, v) for n, v in poetry.items()) if r]
    if deps is None:
        why = (" (they are dynamic: list them in a requirements.txt and name it under "
               "requirements)" if "dependencies" in project.get("dynamic", []) else "")
        raise OpsError(f"{path}: no [project] dependencies{why}")
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise OpsError(f"{path}: [project] dependencies must be a list of requirement strings")
    lines = [_specifier(f"{path} [project] dependencies", i, dep) for i, dep in enumerate(deps, 1)]
    sources, pins = [path.resolve()], []
    for name in LOCK_FILES:
        lock = path.with_name(name)
        if lock.exists():
            pins = _lock_pins(lock)
            sources.append(lock.resolve())
            break
    return Requirements(tuple(lines), tuple(pins), tuple(sources))


def _lock_pins(lock):
    """name==version for every package uv.lock or poetry.lock takes from an index."""
    pins = {}
    packages = _toml(lock).get("package") or []
    if not isinstance(packages, list):
        raise OpsError(f"{lock}: no [[package]] entries")
    for entry in packages:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        source = entry.get("source") or {}
        if isinstance(source, dict) and (set(source) & set(_NOT_FROM_INDEX)
                                         or source.get("type") in _NOT_FROM_INDEX):
            continue  # the project itself, or not from an index (refused if required)
        version = entry.get("version")
        if isinstance(version, str):
            pins[entry["name"].lower()] = _specifier(lock, 0, f"{entry['name']}=={version}")
    return [pins[name] for name in sorted(pins)]
