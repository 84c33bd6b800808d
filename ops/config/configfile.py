"""Fabric's config files, read strictly: a config that cannot be read exactly is refused.

Invoke reads them with `yaml.safe_load`, which takes the last of two duplicate keys, expands
aliases without bound (a few hundred bytes can take gigabytes) and raises a traceback on a
syntax error or non-UTF-8 bytes. Each file is checked before Invoke reads it, refused with
one line naming the file, and so are unknown top-level sections (`deplyo:`) in project and
`-f` files, where a typo would otherwise deploy defaults silently.

`StrictConfig` reads them so: the `flask-ops` program's config class, and what `ops.tasks`
makes the config of Fabric's own `fab` when a fabfile imports its tasks (before fab reads
the project's and `-f` files).
"""

import errno
import importlib.util
import json
import os
import types

import yaml
from fabric import Config as FabricConfig
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
    from .. import safeio
    from ..errors import OpsError

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
        import difflib  # only for a typo's message

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


def python_sections(path):
    """The sections of a Python config file (`-f over.py`), loaded as Invoke loads it: its
    names are sections too, so `deplyo = {...}` is refused as `deplyo:` is in YAML; names
    starting with `_` are the file's own."""
    if not os.path.lexists(path):
        raise FileNotFoundError(errno.ENOENT, "No such file", path)
    try:
        spec = importlib.util.spec_from_file_location("flask_ops_config_check", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:  # the file's own code failed: say so in one line
        raise ConfigFileError(f"cannot be loaded: {type(exc).__name__}: {exc}") from None
    data = {k: v for k, v in vars(module).items() if not k.startswith("_")}
    for key, value in data.items():
        if isinstance(value, types.ModuleType):
            raise ConfigFileError(f"'{key}' is a module, which can't be used as a config value")
    return data


def check_file(path):
    """Refuse (Exit, one line naming the file) a config file Invoke would misread."""
    try:
        check_unique(path)
        data = python_sections(path) if path.endswith(".py") else parse(path)
        check_sections(data, path)
        return data
    except FileNotFoundError:
        return None
    except ConfigFileError as exc:
        raise Exit(f"flask-ops: {path}: {exc}", code=1) from None


def first_file(stem):
    """The file Invoke loads for `stem` (…/fabric): the first of .yaml, .yml, .json, .py."""
    for suffix in CONFIG_SUFFIXES:
        if os.path.lexists(stem + suffix):
            return stem + suffix
    return None


class StrictConfig(FabricConfig):
    """Fabric's config, its files read by our loader (`check_file`: exact YAML/JSON, known
    sections, one of fabric.yaml/.yml/.json/.py; an HTTP status as a key is a string, which
    Invoke's environment loader needs) instead of `yaml.safe_load`, in this class only: the
    file-type loaders Invoke looks up on its config (`_load_<suffix>`) are overridden here,
    nothing of Invoke's is replaced. Where the project's and the `-f` files are is public
    here (`project_dir`, `project_file`, `runtime_file`)."""

    # Class attributes: Invoke's config proxy then treats them as attributes, not keys.
    project_dir = None
    runtime_file = None

    def set_project_location(self, path):
        super().set_project_location(path)
        self.project_dir = path

    def set_runtime_path(self, path):
        check_runtime_path(path)
        super().set_runtime_path(path)
        self.runtime_file = path

    def _load_yaml(self, path):
        data = check_file(path)
        if data is None:  # Invoke tries each suffix and skips absent files
            raise FileNotFoundError(errno.ENOENT, "No such file", path)
        return data

    _load_yml = _load_json = _load_py = _load_yaml

    @property
    def project_file(self):
        if self.project_dir is None:
            return None
        return first_file(os.path.join(self.project_dir, self.file_prefix or self.prefix))

    def clone(self, *args, **kwargs):
        new = super().clone(*args, **kwargs)
        new.project_dir, new.runtime_file = self.project_dir, self.runtime_file
        return new


def locations(config):
    """(project directory, project file, -f file) of a config. Both programs' configs are
    StrictConfig (tasks gives Fabric's own `fab` ours); any other knows none of them."""
    if isinstance(config, StrictConfig):
        return config.project_dir, config.project_file, config.runtime_file
    return None, None, None
