"""Day-two commands as shell scripts (pure): fab exec, logs, history, maintenance. The tasks
in ops.tasks run them; nothing here talks SSH."""

import json
import re
import shlex
import time

from ..errors import OpsError
from ..targets import stacks
from . import plan

q = shlex.quote
_SINCE = re.compile(r"[A-Za-z0-9 :.+-]{1,40}\Z")


def exec_script(s, argv):
    """`argv` in the current release, as the app runs it (ops/templates/wsgi/run.py.j2)."""
    if not argv:
        raise OpsError("exec needs a command after `--`: fab -H HOST exec -- flask routes")
    return (f"test -e {q(s.run_file)} || {{ echo 'no release of {s.app_name} is deployed "
            f"here' >&2; exit 2; }}\npython3 {q(s.run_file)} -- "
            + " ".join(q(a) for a in argv))


def logs_script(s, lines=100, since=None, follow=False):
    if since is not None and not _SINCE.match(since):
        raise OpsError(f"--since {since!r}: a time journalctl understands, e.g. '10 min ago', "
                       "'today', '2026-12-01 10:00'")
    units, files = stacks.of(s).log_sources()
    journal = ["journalctl", "--no-pager", "-o", "short-iso", "-n", str(lines)]
    journal += [a for u in units for a in ("-u", u)]
    if since:
        journal += ["--since", since]
    tail = ["tail", "-n", str(lines), "-v"] + (["-F"] if follow else [])
    existing = f"for f in {' '.join(q(f) for f in files)}; do [ -f \"$f\" ] && printf '%s\\n' \"$f\"; done"
    tail_line = f"mapfile -t files < <({existing}); [ ${{#files[@]}} -eq 0 ] || " + \
        " ".join(q(a) for a in tail) + ' "${files[@]}"'
    if not units:  # upstart: the jobs' logs are files (/var/log/upstart), tailed with the rest
        return plan.script([tail_line])
    if not follow:
        return plan.script([" ".join(q(a) for a in journal) + " || true", tail_line])
    return plan.script([" ".join(q(a) for a in journal + ["-f"]) + " &", tail_line + " &",
                        "wait"])


def history_script(s, count):
    return f"tail -n {int(count)} {q(s.history_file)} 2>/dev/null || true"


def history_rows(stdout):
    """Entries newest first, each one line: when, what, result, release, commit, who, time."""
    rows = []
    for line in reversed(stdout.strip().splitlines()):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.get("at", 0)))
        parts = [when, f"{e.get('action', '?'):15}", f"{e.get('result', ''):9}"]
        if e.get("release"):
            parts.append(e["release"] + (f" (was {e['previous']})" if e.get("previous") else ""))
        if e.get("commit"):
            parts.append(f"commit {e['commit']}")
        parts.append(f"by {e.get('by', '?')}")
        if e.get("seconds") is not None:
            parts.append(f"{e['seconds']:.1f}s")
        if e.get("step"):
            parts.append(f"failed at {e['step']}: {e.get('error', '')}")
        rows.append("  ".join(parts))
    return rows


def maintenance_script(s, on, who):
    entry = plan.history_entry(f"maintenance {'on' if on else 'off'}", {"by": who}, None, None)
    return plan.maintenance_script(s, on, entry.replace(result="ok"))
