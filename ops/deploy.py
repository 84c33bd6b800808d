"""The executor: runs the plan's scripts over SSH, step by step, and undoes a failed deploy.

Output is one line per step with its duration, then a summary. Any failure after the
upload restores the previous release and exits non-zero naming the step.
"""

import difflib
import json
import os
import re
import signal
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass

from . import plan, release as release_mod, render, smoke, tree
from .errors import DeployError, LockError, OpsError, SmokeError

STALE_AFTER = 3600  # seconds: a lock older than this is stale whoever holds it
FAIL_AT_ENV = "FLASK_OPS_FAIL_AT"  # fault-injection hook: STEP, STEP:kill or STEP:pause
SECRET_VALUE = re.compile(r"(?i)(\b[\w.-]*(?:secret|password|passwd|token|api_?key)[\w.-]*\s*[=:]\s*)(\S+)")


class Steps:
    """Prints `  step ........ ok  0.42s` lines and remembers where a failure happened."""

    def __init__(self, out=print):
        self.out, self.current, self.start = out, None, time.monotonic()

    @contextmanager
    def __call__(self, name, detail=""):
        self.current = name
        start = time.monotonic()
        try:
            _inject(name)
            yield
        except Exception:
            self.out(f"  {name:<10} FAILED {time.monotonic() - start:6.2f}s")
            raise
        self.out(f"  {name:<10} ok     {time.monotonic() - start:6.2f}s  {detail}".rstrip())

    def note(self, name, detail):
        self.out(f"  {name:<10} {detail}")


def _release_lock(s, remote, out):
    """Best effort: a lock we cannot remove (host unreachable) is reported, and is stale."""
    try:
        remote.run(plan.unlock_script(s), "unlock", check=False)
    except OpsError as exc:
        out(f"  warning: could not release the deploy lock on {remote.name} ({exc}); "
            f"clear it with `fab -H {remote.name} unlock` once the host is reachable")


def _inject(step):
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


def mask_secrets(text):
    """Values of secret-looking settings never reach a terminal or a CI log."""
    return SECRET_VALUE.sub(lambda m: m.group(1) + "********", text)


def describe_lock(lock, now):
    """A sentence about a held lock, and whether it is stale."""
    age = now - lock.get("started", now)
    here = lock.get("host") == socket.gethostname()
    dead = here and not _pid_alive(lock.get("pid"))
    stale = dead or age > STALE_AFTER
    text = (f"locked by {lock.get('user')}@{lock.get('host')} (pid {lock.get('pid')}) "
            f"{age:.0f}s ago")
    if stale:
        why = "that process is gone" if dead else f"older than {STALE_AFTER}s"
        text += f"; the lock is STALE ({why})"
    return text, stale


def lock_refusal(facts, remote):
    """The error for a host whose lock someone else holds; stale ones say how to clear them."""
    text, stale = describe_lock(facts["lock"] or {}, facts["now"])
    hint = f" Clear it with `fab -H {remote.name} unlock`." if stale else ""
    return LockError(f"{remote.name} is {text}.{hint}")


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


def gather(s, remote, files, requirements_digest, acquire):
    result = remote.run(plan.facts_script(s, requirements_digest, acquire, release_mod.who(), files),
                        "facts")
    return json.loads(result.stdout.strip().splitlines()[-1])


def preflight(s, facts, remote):
    """Refusals that must come before anything changes."""
    if s.init == "upstart" and facts["init"] != "upstart":
        raise OpsError(f"init is 'upstart' but {remote.name} runs {facts['init']}: an upstart "
                       "job would never start there. Use init: systemd for this host.")
    if s.init == "systemd" and facts["init"] != "systemd":
        raise OpsError(f"init is 'systemd' but {remote.name} runs {facts['init']}")
    if not facts["provisioned"] or not facts["user"]:
        raise OpsError(f"{remote.name} is not provisioned for {s.app_name}: "
                       f"run `fab -H {remote.name} provision` first")
    if facts["main_conf"] is None:
        raise OpsError(f"{remote.name} has no {plan.front_service(s)} config: run provision")


@dataclass
class Built:
    """One build, shipped to one host or many."""

    tree: object
    release: plan.Release


@dataclass
class Prepared:
    """A host with the new release staged (or nothing to do), holding its deploy lock."""

    s: object
    remote: object
    built: Built
    facts: dict
    todo: list
    steps: Steps
    nothing_to_do: bool
    staged: bool = False


def build(s, steps, fleet=None):
    with steps("build"):
        tree, digest, files = release_mod.stage_tree(s, fleet)
        return Built(tree, release_mod.new_release(s, digest, files))


def prepare(s, remote, built, steps, dry_run=False):
    """Facts and lock, then upload and stage unless nothing changed. Changes nothing live.

    On failure the staged release is removed and the lock released.
    """
    rel = built.release
    with steps("facts"):
        facts = gather(s, remote, rel.files, rel.requirements_digest, acquire=not dry_run)
    p = Prepared(s, remote, built, facts, [], steps, False)
    try:
        preflight(s, facts, remote)
        if facts["lock"] is not None or (not dry_run and not facts["locked_by_us"]):
            raise lock_refusal(facts, remote)
        p.todo = plan.actions(s, rel.files, facts)
        manifest = facts.get("manifest") or {}
        p.nothing_to_do = (manifest.get("digest") == rel.digest
                           and not plan.changed_configs(rel.files, facts)
                           and all(action == "reload" for action, _ in p.todo)
                           and all(facts["enabled"].values()))
        if dry_run or p.nothing_to_do:
            return p
        with steps("upload"):
            bundle = release_mod.bundle(s, built.tree, rel, facts, with_wheels=not facts["wheelhouse"])
            try:
                remote.put(bundle, f"/tmp/{rel.upload_name}", "upload")
            finally:
                os.unlink(bundle)
        with steps("stage", "dependencies installed offline; configs pass the target's checkers"):
            p.staged = True
            remote.run(plan.stage_script(s, rel, facts), "stage")
        return p
    except OpsError as exc:
        failed_step = steps.current
        reason = str(exc) + _discard_upload(p)
        if facts["locked_by_us"]:
            _release_lock(s, remote, steps.out)
        if isinstance(exc, LockError) or failed_step in ("facts", "build"):
            raise
        raise DeployError(failed_step, reason) from None


def _discard_upload(p):
    """Remove an uploaded or staged (never switched) release; a note when that fails."""
    rel = p.built.release
    target = plan.release_dir(p.s, rel.id)
    try:
        p.remote.run(f"rm -rf {plan.q(target)} {plan.q(target)}.partial /tmp/{rel.upload_name}",
                     "cleanup", check=False)
        return ""
    except OpsError as exc:
        return f"\n(the unswitched upload could not be removed: {exc})"


def discard(p):
    """Give up a prepared host without switching it: staged release removed, lock released."""
    if p.staged:
        _discard_upload(p)
    if p.facts["locked_by_us"]:
        _release_lock(p.s, p.remote, p.steps.out)


def activate(p, smoke_target=None):
    """Switch, verify, smoke; restore the previous release on any failure. Releases the lock."""
    s, remote, steps, rel = p.s, p.remote, p.steps, p.built.release
    previous = p.facts["current"]
    try:
        if p.nothing_to_do:
            steps.note("deploy", f"no change: {previous} already serves this build")
            return previous
        try:
            with steps("switch", ", ".join(f"{a} {u}" for a, u in p.todo)):
                remote.run(plan.switch_script(s, rel.id, p.todo), "switch")
            with steps("verify"):
                detail = remote.run(plan.verify_script(s, rel.id, s.drain_timeout + 20),
                                    "verify").stdout.strip()
            steps.note("", detail)
            with steps("smoke"):
                smoke_or_raise(s, remote, static_file(p.built.tree))
        except OpsError as exc:
            failed_step, reason = steps.current, str(exc)
            try:
                remote.run(plan.restore_script(s, previous, rel.id), "restore")
                steps.note("restore", f"back on {previous or 'the state before the first deploy'}")
            except OpsError as restore_exc:
                reason += f"\nAND restoring {previous} failed: {restore_exc}"
            raise DeployError(failed_step, reason) from None
        remote.run(plan.finish_script(s, rel.id, s.keep_releases, {
            "release": rel.id, "previous": previous, "at": time.time(),
            "by": release_mod.who(), "result": "ok"}), "finish")
        p.facts["locked_by_us"] = False  # finish released it
        steps.out(f"deployed {rel.id} to {remote.name} in {time.monotonic() - steps.start:.1f}s "
                  f"({remote.commands} remote commands)")
        return rel.id
    finally:
        if p.facts["locked_by_us"]:
            _release_lock(s, remote, steps.out)


def deploy(s, remote, dry_run=False, out=print):
    """Ship the app to one host; return the release id now serving."""
    steps = Steps(out)
    built = build(s, steps)
    p = prepare(s, remote, built, steps, dry_run=dry_run)
    if dry_run:
        try:
            return dry_run_report(s, remote, built.release, p.facts, p.todo, p.nothing_to_do, out)
        finally:
            discard(p)
    return activate(p)


def static_file(tree):
    """One collected file to prove the front server serves static files."""
    root = tree / "collected_static"
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        # dotfiles (our output marker among them) are refused by the front server by design
        if path.is_file() and not any(part.startswith(".") for part in rel.split("/")):
            return rel
    return None


def target_for(s, remote):
    return smoke.Target(remote.address, s.listen_port, s.server_names[0])


def smoke_or_raise(s, remote, static):
    results = smoke.run(s, target_for(s, remote), static)
    failed = [r for r in results if not r.ok]
    if failed:
        raise SmokeError("; ".join(f"{r.name}: {r.detail}" for r in failed))
    return results


def dry_run_report(s, remote, rel, facts, todo, nothing_to_do, out):
    """Unified diffs of every config that would change, and the commands that would run."""
    left_out = tree.select(s.source_dir, s.exclude).excluded
    out("left out of the release (defaults and deploy.exclude): "
        + (", ".join(left_out) if left_out else "nothing"))
    live = json.loads(remote.run(_cat_script([f.path for f in plan.config_files(rel.files)]),
                                 "read live configs").stdout)
    for f in plan.config_files(rel.files):
        before = (live.get(f.path) or "").splitlines(keepends=True)
        diff = list(difflib.unified_diff(before, f.content.splitlines(keepends=True),
                                         f"{f.path} (live)", f"{f.path} (new)"))
        out(mask_secrets("".join(diff)) if diff else f"unchanged: {f.path}")
    if nothing_to_do:
        out(f"dry run: no change; {facts['current']} already serves this build")
        return facts["current"]
    out("\ncommands that would run:")
    out(plan.stage_script(s, rel, facts))
    out(plan.switch_script(s, rel.id, todo))
    out(f"dry run: nothing was changed on {remote.name}")
    return None


def _cat_script(paths):
    py = ("import json,sys\nout={}\nfor p in sys.argv[1:]:\n try: out[p]=open(p).read()\n"
          " except OSError: out[p]=None\nprint(json.dumps(out))")
    return f"python3 -c {plan.q(py)} " + " ".join(plan.q(p) for p in paths)


def rollback(s, remote, release_id=None, out=print):
    """Go back to an earlier release (default: the one before current), as thoroughly as a deploy."""
    steps = Steps(out)
    files = render.render(s)
    with steps("facts"):
        facts = gather(s, remote, files, "none", acquire=True)
    try:
        if not facts["locked_by_us"]:
            raise lock_refusal(facts, remote)
        preflight(s, facts, remote)
        current, releases = facts["current"], facts["releases"]
        if release_id is None:
            older = [r for r in releases if current and r < current]
            if not older:
                raise OpsError(f"no release before {current} to roll back to")
            release_id = older[-1]
        if release_id not in releases:
            raise OpsError(f"no release {release_id} on {remote.name}; "
                           f"`fab -H {remote.name} releases` lists them")
        rel_dir = plan.release_dir(s, release_id)
        try:
            with steps("check", "configs of that release pass the target's checkers"):
                remote.run("set -e\n" + "\n".join(plan.check_lines(s, rel_dir)), "check")
            with steps("switch"):
                remote.run(plan.switch_script(s, release_id, plan.going_back(s)), "switch")
            with steps("verify"):
                remote.run(plan.verify_script(s, release_id, s.drain_timeout + 20), "verify")
            with steps("smoke"):
                smoke_or_raise(s, remote, remote_static_file(s, remote, release_id))
        except OpsError as exc:
            raise DeployError(steps.current, str(exc)) from None
        remote.run(plan.state_write(s, {"last_deploy": {
            "release": release_id, "previous": current, "at": time.time(),
            "by": release_mod.who(), "result": "rollback"}}), "record")
        out(f"rolled back {remote.name} from {current} to {release_id}")
        return release_id
    finally:
        if facts["locked_by_us"]:
            _release_lock(s, remote, out)


def remote_static_file(s, remote, release_id):
    root = f"{plan.release_dir(s, release_id)}/collected_static"
    result = remote.run(f"cd {plan.q(root)} 2>/dev/null && find . -type f ! -path '*/.*' | sort | "
                        "head -n 1",
                        "find a static file", check=False)
    name = result.stdout.strip()
    return name[2:] if name.startswith("./") else None


def releases(s, remote):
    facts = gather(s, remote, render.render(s), "none", acquire=False)
    return facts["current"], facts["releases"]


def status(s, remote):
    facts = gather(s, remote, render.render(s), "none", acquire=False)
    lock = describe_lock(facts["lock"], facts["now"])[0] if facts["lock"] else "unlocked"
    return {"host": remote.name, "current": facts["current"], "releases": len(facts["releases"]),
            "services": facts["active"], "last_deploy": facts["state"].get("last_deploy"),
            "pending": facts["state"].get("pending", []), "lock": lock}


def unlock(s, remote):
    facts = gather(s, remote, render.render(s), "none", acquire=False)
    if not facts["lock"]:
        return None
    text, _ = describe_lock(facts["lock"], facts["now"])
    remote.run(plan.unlock_script(s), "unlock")
    return text
