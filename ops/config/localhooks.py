"""Commands on the deploying machine around a deploy (`local_hooks:`): tell the team, open a
ticket, call a webhook (`curl ...`). Each gets what happened in its environment; a failing
`before_deploy` stops the deploy before any host is touched, the others are reported."""

import os
from dataclasses import dataclass
from typing import Tuple

from .. import locks, safeio
from ..errors import OpsError, SettingsError
from ..targets import daytwo

POINTS = ("before_deploy", "after_deploy", "on_failure")


@dataclass(frozen=True)
class LocalHooks:
    commands: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()  # (point, argv)
    timeout: int = 120

    def at(self, point):
        return tuple(argv for p, argv in self.commands if p == point)


def parse(key, value):
    if value in (None, {}):
        return LocalHooks()
    if not isinstance(value, dict) or set(value) - set(POINTS) - {"timeout"}:
        raise SettingsError(key, value, "a mapping: before_deploy / after_deploy / on_failure: "
                                        "[commands], timeout: seconds")
    commands = []
    for point in POINTS:
        items = value.get(point) or []
        items = [items] if isinstance(items, str) else items
        if not isinstance(items, list):
            raise SettingsError(f"{key}.{point}", items, "a list of command lines")
        commands += [(point, daytwo._command(f"{key}.{point}", item)) for item in items]
    timeout = value.get("timeout", 120)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 3600:
        raise SettingsError(f"{key}.timeout", timeout, "seconds, 1-3600")
    return LocalHooks(tuple(commands), timeout)


def environment(s, hosts, outcome, release=None, commit=None, error=None):
    """What a hook knows: FLASK_OPS_APP, _STAGE, _HOSTS, _RELEASE, _COMMIT, _PERFORMER,
    _OUTCOME (started, ok or failed) and _ERROR (the failure's first line)."""
    env = {"FLASK_OPS_APP": s.app_name, "FLASK_OPS_STAGE": s.stage or "",
           "FLASK_OPS_HOSTS": " ".join(hosts), "FLASK_OPS_RELEASE": release or "",
           "FLASK_OPS_COMMIT": commit or "", "FLASK_OPS_OUTCOME": outcome,
           "FLASK_OPS_PERFORMER": locks.performer(locks.who()),
           "FLASK_OPS_ERROR": (error or "").splitlines()[0][:500] if error else ""}
    return {**os.environ, **env}


def run(s, point, env, out=print):
    """Run the hooks of `point` in the project's directory; OpsError when one fails."""
    for argv in s.local_hooks.at(point):
        name = f"local_hooks.{point}: {' '.join(argv)[:80]}"
        proc = safeio.run_bounded(list(argv), name, s.local_hooks.timeout, cwd=s.project_root,
                                  env=env)
        for line in (proc.stdout + proc.stderr).decode("utf-8", "replace").splitlines():
            out(f"  {point} | {line}")
        if proc.returncode != 0:
            raise OpsError(f"{name} exited {proc.returncode}")
