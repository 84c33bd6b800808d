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

from packaging.requirements import InvalidRequirement, Requirement

from .errors import OpsError

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


def read(path, root):
    """Flatten `path` (a requirements file inside `root`)."""
    lines, constraints, sources = [], [], []
    _read(Path(path), Path(root).resolve(), lines, constraints, sources, constraint=False)
    return Requirements(tuple(lines), tuple(constraints), tuple(sources))


def _read(path, root, lines, constraints, sources, constraint):
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise OpsError(f"{path}: outside the app's source; requirements files must be inside it")
    if resolved in sources:
        return  # included twice (or a cycle): its lines are already in
    try:
        text = resolved.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise OpsError(f"{path}: no such requirements file") from None
    except UnicodeDecodeError:
        raise OpsError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise OpsError(f"{path}: cannot be read ({exc.strerror})") from None
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
