"""The per-host deploy lock, as people see it: who holds it, since when, whether it is stale.

Taking and dropping it are lines of the plan (ops/scripts/facts.py takes it, plan.unlock_line drops it).
"""

import getpass
import os
import socket
import time

from .errors import LockError

STALE_AFTER = 3600  # seconds: a lock older than this is stale whoever holds it


def who():
    return {"user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.time()}


def performer(by):
    """user@host of a who() record (a history entry, a local hook's environment)."""
    if not isinstance(by, dict):
        return str(by)
    return f"{by.get('user', '?')}@{by.get('host', '?')}"


def describe(lock, now):
    """A sentence about a held lock, and whether it is stale."""
    age = now - lock.get("started", now)
    here = lock.get("host") == socket.gethostname()
    dead = here and not pid_alive(lock.get("pid"))
    stale = dead or age > STALE_AFTER
    text = (f"locked by {lock.get('user')}@{lock.get('host')} (pid {lock.get('pid')}) "
            f"{age:.0f}s ago")
    if stale:
        why = "that process is gone" if dead else f"older than {STALE_AFTER}s"
        text += f"; the lock is STALE ({why})"
    return text, stale


def refusal(facts, host_name):
    """The error for a host whose lock someone else holds; stale ones say how to clear them."""
    text, stale = describe(facts.lock or {}, facts.now)
    hint = f" Clear it with `fab -H {host_name} unlock`." if stale else ""
    return LockError(f"{host_name} is {text}.{hint}")


def pid_alive(pid):
    """Whether a process of ours with this pid still runs on this machine."""
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False
