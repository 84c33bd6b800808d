"""Runs a plan on one host: its steps in order, restore and discard on failure, the lock
always released. The same code runs deploys, rollbacks and each host of a fleet roll.

It knows nothing of stacks or releases: the plan holds the scripts, and two callables made
by the caller build the upload and run the smoke test.
"""

import os
from dataclasses import dataclass
from typing import Callable

from .. import scripts
from ..errors import DeployError, LockError, OpsError
from .plan import failure_step, Plan
from .steps import Steps


@dataclass
class Run:
    """One host going through one plan. `locked`: we hold the host's deploy lock."""

    remote: object
    plan: Plan
    steps: Steps
    bundle: Callable  # (Upload) -> local path of the archive to upload
    smoke: Callable  # (static file or "") -> None, raises SmokeError
    locked: bool = True
    touched: bool = False  # something was uploaded or staged: discard must remove it
    finished: Callable = None  # (finish's output) -> None: what the host reported at the end

    def _run(self, step):
        if step.upload is not None:
            path = self.bundle(step.upload)
            try:
                self.touched = True
                self.remote.put(path, step.upload.dest, step.name)
            finally:
                os.unlink(path)
        elif step.is_smoke:
            self.smoke(step.smoke_static)
        else:
            self.touched = True
            options = {"stdin": step.stdin} if step.stdin else {}
            if step.timeout:
                options["timeout"] = step.timeout
            if step.stream:  # a hook: its output as it comes, each line prefixed
                options["echo"] = lambda line: self.steps.out(f"  {step.name} | {line}")
            return self.remote.run(step.script, step.name, **options).stdout.strip()
        return ""

    def record_failure(self, step_name, reason):
        """Append the failed attempt to the host's history; never hides the failure itself."""
        if not self.plan.history:
            return
        step = failure_step(self.plan, step_name, reason)
        try:
            self.remote.run(step.script, step.name, check=False)
        except OpsError:
            pass


def prepare(run):
    """Run the prepare steps (nothing live changes). On failure the host drops what was
    uploaded and its lock; DeployError names the step."""
    return _before_switching(run, run.plan.prepare)


def before_switch(run):
    """The before-switch hooks (a migration): after prepare, before anything switches. On
    failure the host drops the staged release: the old one never stopped serving."""
    return _before_switching(run, run.plan.before_switch)


def _before_switching(run, steps):
    if run.plan.nothing_to_do:
        return run
    try:
        for step in steps:
            with run.steps(step.name, step.detail):
                run._run(step)
        return run
    except BaseException as exc:  # a bug or Ctrl-C too: never leave the host locked
        failed, note = run.steps.current, discard(run)
        if not isinstance(exc, OpsError) or isinstance(exc, LockError):
            raise
        if not note:  # a host that could not be cleaned up is not asked again (a cut link)
            run.record_failure(failed, str(exc))
        raise DeployError(failed, str(exc) + note) from None


def discard(run):
    """Give the host up without switching: staged files removed, lock released. Returns a
    note for the error message when that fails (the host is then reported, not hidden)."""
    return _cleanup(run, run.plan.discard if run.touched else run.plan.unlock)


def _cleanup(run, step):
    if not run.locked:
        return ""
    try:
        run.remote.run(step.script, step.name, check=False)
        run.locked = False
        return ""
    except OpsError as exc:
        return (f"\n(could not clean up {run.remote.name}: {exc}; clear its lock with "
                f"`fab -H {run.remote.name} unlock` once the host is reachable)")


def activate(run):
    """Switch, verify, smoke; restore on any failure; then finish. Returns the release now
    serving. The lock is released on every path."""
    plan, steps = run.plan, run.steps
    try:
        if plan.nothing_to_do:
            steps.note(plan.host_action, f"no change: {plan.previous} already serves this build")
            if plan.noop is not None and run.locked:
                _cleanup(run, plan.noop)
            return plan.previous
        try:
            for step in plan.activate:
                try:
                    with steps(step.name, step.detail):
                        detail = run._run(step)
                except OpsError as exc:
                    if not step.tolerated:
                        raise
                    steps.note("", f"{step.name} failed; reported, not rolled back "
                                   f"(hooks.on_after_switch_failure: report): "
                                   f"{str(exc).splitlines()[0]}")
                    continue
                if step.says and detail:
                    steps.note("", detail)
        except BaseException as exc:  # Ctrl-C mid-switch restores too
            failed, reason = steps.current, str(exc)
            if isinstance(exc, OpsError):
                reason += app_log(run)
            try:
                run.remote.run(plan.restore.script, plan.restore.name)
                steps.note("restore", f"back on {plan.previous or 'the state before the first deploy'}")
            except OpsError as restore_exc:
                reason += f"\nAND restoring {plan.previous} failed: {restore_exc}"
            run.record_failure(failed, reason)
            if not isinstance(exc, OpsError):
                raise
            raise DeployError(failed, reason) from None
        output = run.remote.run(plan.finish.script, plan.finish.name).stdout
        run.locked = False  # finish released it
        if run.finished is not None:
            run.finished(output)
        return plan.target
    finally:
        if run.locked:
            # after a switch, never remove the release: restore may be serving the old one
            note = _cleanup(run, plan.unlock)
            if note:
                steps.out("  warning: " + note.strip())


def app_log(run):
    """The app's last log lines on the host, for the failure message ("" when none)."""
    if run.plan.app_log is None:
        return ""
    try:
        text = run.remote.run(run.plan.app_log.script, run.plan.app_log.name,
                              check=False).stdout.rstrip()
    except OpsError:
        return ""
    if not text:
        return ""
    return (f"\nthe app's last log lines on {run.remote.name} (secrets masked):\n"
            + "\n".join("  | " + line for line in text.splitlines()))


def dry_run_lines(plan):
    """What a plan would run, step by step, for --dry-run."""
    lines = []
    for step in plan.steps():
        if step.upload is not None:
            lines.append(f"# {step.name}: the release bundle -> {step.upload.dest}"
                         + (f" (with wheels for Python {step.upload.python} {step.upload.arch})"
                            if step.upload.python else ""))
        elif step.is_smoke:
            lines.append(f"# {step.name}: smoke checks through the front server")
        else:
            secret = " (the app's environment on stdin; values not shown)" if step.stdin else ""
            lines.append(f"# {step.name}{secret}\n{scripts.readable(step.script)}")
    return lines
