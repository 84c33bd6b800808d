"""Step output (`  step ........ ok  0.42s`) and the fault-injection hook the fault suite uses."""

import os
import signal
import tempfile
import time
from contextlib import contextmanager

from ..errors import OpsError

FAIL_AT_ENV = "FLASK_OPS_FAIL_AT"  # fault-injection hook: STEP, STEP:kill or STEP:pause


class Steps:
    """Prints one line per step with its duration and remembers where a failure happened."""

    def __init__(self, out=print):
        self.out, self.current, self.start = out, None, time.monotonic()

    @contextmanager
    def __call__(self, name, detail=""):
        self.current = name
        start = time.monotonic()
        try:
            inject(name)
            yield
        except Exception:
            self.out(f"  {name:<10} FAILED {time.monotonic() - start:6.2f}s")
            raise
        self.out(f"  {name:<10} ok     {time.monotonic() - start:6.2f}s  {detail}".rstrip())

    def note(self, name, detail):
        self.out(f"  {name:<10} {detail}")


class Prefixed:
    """Output lines prefixed with a host name, so parallel steps stay readable."""

    def __init__(self, out, name):
        self.out, self.name = out, name

    def __call__(self, line):
        self.out(f"[{self.name}] {line.strip()}")


def inject(step):
    """Fault injection for the fault suite: fail, die, or wait at a named step."""
    step_at, _, how = os.environ.get(FAIL_AT_ENV, "").partition(":")
    if step_at != step:
        return
    if how == "kill":  # as if the deploying machine died here
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "pause":  # hold here until the test removes the marker file
        marker = os.path.join(tempfile.gettempdir(), f"flask-ops-paused-{os.getpid()}")
        open(marker, "w").close()
        deadline = time.monotonic() + 120
        while os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        return
    raise OpsError(f"failure injected at step '{step}' ({FAIL_AT_ENV})")
