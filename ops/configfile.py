"""Fabric's config files, read strictly: a config that cannot be read exactly is refused.

Invoke reads them with `yaml.safe_load`, which takes the last of two duplicate keys, expands
aliases without bound (a few hundred bytes can take gigabytes) and raises a traceback on a
syntax error or non-UTF-8 bytes. `install()` swaps in a loader that refuses each of those with
one line naming the file, and refuses unknown top-level sections (`deplyo:`) in project and
`-f` files, where a typo would otherwise deploy defaults silently.
"""

import difflib
import errno
import json
import os

import yaml
from invoke.config import Config as InvokeConfig
from invoke.exceptions import Exit

MAX_BYTES = 1024 * 1024  # a config file is text a person wrote


class ConfigFileError(Exception):
    """A config file that cannot be read exactly; the message names the file."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without anchors/aliases (no alias bombs) and without duplicate keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigFileError(f"line {event.start_mark.line + 1}: YAML aliases (*name) "
                                  "are not accepted; write the value out")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise ConfigFileError(f"line {event.start_mark.line + 1}: YAML anchors (&name) "
                                  "are not accepted; write the value out")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, int) and not isinstance(key, bool) and 100 <= key <= 599:
                key_node.value, key_node.tag = str(key), "tag:yaml.org,2002:str"
                self.constructed_objects.pop(key_node, None)
                key = str(key)  # an HTTP status code (error_pages: {500: page.html})
            if not isinstance(key, str):
                raise ConfigFileError(f"line {key_node.start_mark.line + 1}: key {key!r} is not "
                                      "a name; quote it or fix the indentation")
            if key.lower() in seen:
                first, line = seen[key.lower()]
                what = "duplicate key" if first == key else f"key {key!r} differs only in case from"
                raise ConfigFileError(f"line {key_node.start_mark.line + 1}: {what} "
                                      f"{first!r} (line {line})")
            seen[key.lower()] = (key, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def section_defaults():
    from fabric import Config
    return {**Config.global_defaults(), "deploy": {}}


def known_sections():
    return set(section_defaults())


def _text(path):
    from . import safeio
    from .errors import OpsError

    if not os.path.lexists(path):
        raise FileNotFoundError(errno.ENOENT, "No such file", path)  # Invoke skips absent files
    if not os.path.exists(path):
        raise ConfigFileError("a symlink to nothing")
    try:  # a regular file only: a FIFO would block, /dev/zero would never end
        data = safeio.read_regular(path, None, limit=MAX_BYTES, follow=True)
    except OpsError as exc:
        if "larger than" in str(exc):
            raise ConfigFileError(f"larger than {MAX_BYTES} bytes") from None
        raise ConfigFileError(str(exc).replace(f"{path} ", "it ")) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"not UTF-8 text (byte {exc.start})") from None


def parse(path):
    """The top-level mapping of a YAML or JSON config file; ConfigFileError when not exact."""
    text = _text(path)
    try:
        if str(path).endswith(".json"):
            data = json.loads(text, object_pairs_hook=_no_duplicates)
        else:
            data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - strict SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigFileError(f"{where}{exc.problem or exc}") from None
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigFileError(str(exc).splitlines()[0]) from None
    except RecursionError:
        raise ConfigFileError("nested too deeply; a description is a few levels deep") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"the top level is a {type(data).__name__}, not a mapping of sections")
    return data


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ConfigFileError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _personal(path):
    """System- and user-level files (/etc/fabric.yaml, ~/.fabric.yaml) may hold other tools'
    sections; a project's own files may not."""
    path = os.path.abspath(path)
    return path.startswith("/etc/") or path.startswith(os.path.expanduser("~/."))


def check_sections(data, path):
    defaults = section_defaults()
    for key, value in data.items():
        # Invoke cannot merge a scalar over a mapping section (a traceback, not a message).
        if isinstance(defaults.get(key), dict) and not isinstance(value, dict):
            what = "empty" if value is None else f"a {type(value).__name__}"
            raise ConfigFileError(f"section {key!r} is {what}; expected a mapping of keys")
    if _personal(path):
        return
    unknown = sorted(set(data) - known_sections(), key=str)
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), sorted(known_sections()), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigFileError(f"unknown section {key!r}{hint} (flask-ops reads 'deploy'; "
                              "the others are Fabric's own)")


CONFIG_SUFFIXES = (".yaml", ".yml", ".json", ".py")


def check_unique(path):
    """fabric.yaml next to fabric.yml (or .json, .py): Invoke reads the first and ignores the
    others without a word; the user edits one and deploys the other."""
    stem, suffix = os.path.splitext(path)
    if os.path.basename(stem) not in ("fabric", "invoke") or suffix not in CONFIG_SUFFIXES:
        return
    others = [stem + s for s in CONFIG_SUFFIXES if s != suffix and os.path.lexists(stem + s)]
    if others:
        raise ConfigFileError(f"{os.path.basename(others[0])} is beside it: Fabric would read one "
                              "and ignore the other; keep one of them")


def strict_load(self, path):
    """Drop-in for Invoke's _load_yaml/_load_json."""
    try:
        check_unique(path)
        data = parse(path)
        check_sections(data, path)
        return data
    except ConfigFileError as exc:
        raise Exit(f"flask-ops: {path}: {exc}", code=1) from None


def check_runtime_path(path):
    """`fab -f PATH`: a YAML, JSON or Python file that exists (Invoke would raise a traceback
    for /dev/null, a directory or over.txt). A missing one is refused later, by settings."""
    if path is None:
        return
    if os.path.splitext(path)[1] not in CONFIG_SUFFIXES:
        raise Exit(f"flask-ops: {path}: -f takes a config file ending in "
                   + ", ".join(CONFIG_SUFFIXES), code=1)
    if os.path.lexists(path) and not os.path.isfile(path):
        raise Exit(f"flask-ops: {path}: -f takes a regular file (this is a directory, a "
                   "device, a FIFO or a link to nothing)", code=1)


def _set_runtime_path(self, path):
    check_runtime_path(path)
    _original_set_runtime_path(self, path)


_original_set_runtime_path = InvokeConfig.set_runtime_path


_original_load_py = InvokeConfig._load_py


def strict_load_py(self, path):
    """A Python config file (`-f over.py`): its names are sections too, so `deplyo = {...}`
    is refused as `deplyo:` is in YAML; names starting with `_` are the file's own."""
    from invoke.exceptions import UnpicklableConfigMember
    try:
        check_unique(path)
        try:
            loaded = _original_load_py(self, path)
        except UnpicklableConfigMember as exc:
            raise ConfigFileError(str(exc).split(" (")[0]) from None
        except Exception as exc:  # the file's own code failed: say so in one line
            raise ConfigFileError(f"cannot be loaded: {type(exc).__name__}: {exc}") from None
        data = {k: v for k, v in loaded.items() if not k.startswith("_")}
        check_sections(data, path)
        return data
    except ConfigFileError as exc:
        raise Exit(f"flask-ops: {path}: {exc}", code=1) from None


def install():
    """Read every Fabric config file loaded from now on with the strict loader."""
    InvokeConfig._load_py = strict_load_py
    InvokeConfig.set_runtime_path = _set_runtime_path
    InvokeConfig._load_yaml = strict_load
    InvokeConfig._load_yml = strict_load
    InvokeConfig._load_json = strict_load
