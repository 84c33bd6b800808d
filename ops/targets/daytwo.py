"""The day-two keys of the app description: `hooks`, `workers`, `maintenance`.

Parsed and validated here, once, into frozen values that the templates and the plan read.
A worker's command reaches a unit file (systemd's and upstart's quoting differ), so each of
its words is whitelisted; a hook's command only ever travels shell-quoted, so it may hold any
printable text on one line.
"""

import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import SettingsError

HOOK_POINTS = ("before_switch", "after_switch")
AFTER_SWITCH_FAILURE = ("report", "rollback")
_WORKER_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}\Z")
# Words of a worker command: safe unquoted in a systemd ExecStart= and a shell alike.
_WORD = re.compile(r"[A-Za-z0-9._/:=@,+-]{1,200}\Z")
_REL_FILE = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*\Z")


def _fail(key, value, allowed):
    raise SettingsError(key, value, allowed)


@dataclass(frozen=True)
class Hook:
    point: str  # before_switch | after_switch
    argv: Tuple[str, ...]

    @property
    def text(self):
        return " ".join(shlex.quote(a) for a in self.argv)


@dataclass(frozen=True)
class Hooks:
    commands: Tuple[Hook, ...] = ()
    timeout: int = 600  # seconds one hook may run before it is stopped (and the deploy fails)
    on_after_switch_failure: str = "report"  # or "rollback"

    def at(self, point):
        return tuple(h for h in self.commands if h.point == point)


@dataclass(frozen=True)
class Worker:
    name: str
    argv: Tuple[str, ...]
    hosts: Tuple[str, ...] = ()  # in a fleet: the app hosts that run it (default: every one)
    # Seconds a stopping worker has to finish its job (a deploy restarts it); None: drain_timeout.
    stop_timeout: Optional[int] = None

    @property
    def text(self):
        return " ".join(self.argv)


@dataclass(frozen=True)
class Maintenance:
    allow: Tuple[str, ...] = ()  # addresses or networks that still get the app
    retry_after: int = 300  # seconds, sent as Retry-After with the 503
    page: Optional[str] = None  # the project's own HTML page (relative path); None: ours


def _command(key, value, word=None):
    allowed = ("a command line on one line, e.g. 'flask db upgrade'" if word is None else
               "a command line whose words use only letters, digits and ._/:=@,+- "
               "(e.g. 'celery -A shop.tasks worker --loglevel=info')")
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "\n\r\0") \
            or len(value) > 1000:
        _fail(key, value, allowed)
    try:
        argv = tuple(shlex.split(value))
    except ValueError:
        _fail(key, value, allowed)
    if word is not None and not all(word.match(a) for a in argv):
        _fail(key, value, allowed)
    return argv


def parse_hooks(key, value):
    if value in (None, {}):
        return Hooks()
    allowed = ("a mapping: before_switch / after_switch: [commands], timeout: seconds, "
               "on_after_switch_failure: report | rollback")
    if not isinstance(value, dict) or set(value) - set(HOOK_POINTS) - {
            "timeout", "on_after_switch_failure"}:
        _fail(key, value, allowed)
    commands = []
    for point in HOOK_POINTS:
        items = value.get(point) or []
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list):
            _fail(f"{key}.{point}", items, "a list of command lines")
        commands += [Hook(point, _command(f"{key}.{point}", item)) for item in items]
    timeout = value.get("timeout", 600)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 86400:
        _fail(f"{key}.timeout", timeout, "seconds, 1-86400")
    on_failure = value.get("on_after_switch_failure", "report")
    if on_failure not in AFTER_SWITCH_FAILURE:
        _fail(f"{key}.on_after_switch_failure", on_failure, " or ".join(AFTER_SWITCH_FAILURE))
    return Hooks(tuple(commands), timeout, on_failure)


def parse_workers(key, value):
    if value in (None, {}):
        return ()
    if not isinstance(value, dict):
        _fail(key, value, "a mapping of worker names to command lines, e.g. "
                          "{mail: 'rq worker mail'}")
    workers = []
    for name, command in value.items():
        if not isinstance(name, str) or not _WORKER_NAME.match(name):
            _fail(key, name, "worker names: lowercase letters, digits and '-', starting with a "
                             "letter (they name the unit APP-worker-NAME)")
        hosts, stop_timeout = (), None
        if isinstance(command, dict):
            if set(command) - {"command", "hosts", "stop_timeout"} or "command" not in command:
                _fail(f"{key}.{name}", command, "a command line, or {command: ..., hosts: [app "
                                                "hosts that run it], stop_timeout: seconds}")
            stop_timeout = command.get("stop_timeout")
            if stop_timeout is not None and (isinstance(stop_timeout, bool) or not isinstance(
                    stop_timeout, int) or not 1 <= stop_timeout <= 86400):
                _fail(f"{key}.{name}.stop_timeout", stop_timeout, "seconds a stopping worker has "
                      "to finish its job: an integer from 1 to 86400")
            hosts = command.get("hosts") or []
            if isinstance(hosts, str):
                hosts = [hosts]
            if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
                _fail(f"{key}.{name}.hosts", hosts, "a list of app hosts (as in roles.app)")
            command = command["command"]
        workers.append(Worker(name, _command(f"{key}.{name}", command, _WORD), tuple(hosts),
                              stop_timeout))
    return tuple(workers)


ERROR_CODES = (500, 502, 504)  # what the front server itself answers when the app cannot


def parse_error_pages(key, value):
    """{code: path/in/project.html}: the front server's own error pages (ours by default)."""
    if value in (None, {}):
        return ()
    if not isinstance(value, dict):
        _fail(key, value, "a mapping of status codes (500, 502, 504) to HTML files in the project")
    pages = []
    for code, page in value.items():
        if str(code) not in {str(c) for c in ERROR_CODES}:
            _fail(f"{key}.{code}", page, "one of the codes the front server answers itself: "
                  + ", ".join(map(str, ERROR_CODES)))
        pages.append((int(code), _project_file(f"{key}.{code}", page)))
    return tuple(sorted(pages))


def parse_maintenance(key, value):
    if value in (None, {}):
        return Maintenance()
    allowed = "a mapping: allow: [addresses], retry_after: seconds, page: path/in/project.html"
    if not isinstance(value, dict) or set(value) - {"allow", "retry_after", "page"}:
        _fail(key, value, allowed)
    allow = value.get("allow") or []
    if isinstance(allow, str):
        allow = [allow]
    if not isinstance(allow, list):
        _fail(f"{key}.allow", allow, "a list of addresses or networks")
    nets = []
    for item in allow:
        try:
            nets.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError:
            _fail(f"{key}.allow", item, "an IP address or network (198.51.100.7, 10.0.0.0/8)")
    retry = value.get("retry_after", 300)
    if isinstance(retry, bool) or not isinstance(retry, int) or not 1 <= retry <= 604800:
        _fail(f"{key}.retry_after", retry, "seconds, 1-604800")
    page = value.get("page")
    if page is not None:
        _project_file(f"{key}.page", page)
    return Maintenance(tuple(nets), retry, page)


def _project_file(key, page):
    """A page the user ships: a relative path that stays inside the project."""
    if not isinstance(page, str) or not _REL_FILE.match(page) or ".." in page.split("/"):
        _fail(key, page, "a relative path to an HTML file inside the project")
    return page
