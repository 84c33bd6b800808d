"""Desired state -> a plan: named steps, each one shell script for one SSH round trip.

Pure: no SSH, no files, no rendering (the release holds the rendered files). One call
builds a deploy plan or a rollback plan from settings, a release and the host's facts; the
executor (ops.deploy.executor) runs it and --dry-run prints it, so what is printed is what runs.
"""

import base64
import dataclasses
import fnmatch
import hashlib
import json
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Optional, Tuple

from .. import locks, scripts
from ..errors import OpsError
from ..build.release import files_from_manifest, META, statics_from_manifest as release_statics
from ..targets import stacks
from .hostfacts import HostFacts

q = shlex.quote


# ----------------------------------------------------------------------------- the value

@dataclass(frozen=True)
class Upload:
    """Ship the release bundle (with wheels for this host's Python when it lacks them)."""

    dest: str
    python: Optional[str] = None  # set: the bundle carries wheels resolved for this Python
    arch: Optional[str] = None  # (X.Y.Z), machine and glibc (None: another C library)
    libc: Optional[str] = None


@dataclass(frozen=True)
class Step:
    """One named step: a script run on the host, an upload, or the smoke test from here."""

    name: str
    script: str = ""
    detail: str = ""  # printed after `ok`
    upload: Optional[Upload] = None
    smoke_static: Optional[tuple] = None  # smoke step: the (URL, sha256) static files to fetch
    # Sent on the script's stdin, never shown (--dry-run, repr): the app's env values.
    stdin: str = field(default="", repr=False)
    stream: bool = False  # its output goes to the deploy's output as it comes (hooks)
    tolerated: bool = False  # a failure is reported, and the deploy goes on (after_switch)
    timeout: Optional[int] = None  # seconds the SSH command may take (default: remote's)
    says: bool = False  # its output is a line for the user (verify: how long the switch took)

    @property
    def is_smoke(self):
        return self.smoke_static is not None


@dataclass(frozen=True)
class Plan:
    """Everything one host goes through, in order.

    prepare changes nothing live (on failure: discard). activate switches, verifies and
    smoke-tests (on failure: restore, then discard). finish records the result and releases
    the lock. nothing_to_do: the host already serves this build.
    """

    host_action: str  # "deploy" or "rollback"
    target: str  # the release that will serve
    previous: Optional[str]
    prepare: Tuple[Step, ...] = ()
    before_switch: Tuple[Step, ...] = ()  # hooks: after prepare (in a fleet: one host, once)
    activate: Tuple[Step, ...] = ()
    restore: Optional[Step] = None
    discard: Optional[Step] = None  # remove what prepare left, release the lock
    unlock: Optional[Step] = None  # release the lock only
    finish: Optional[Step] = None
    nothing_to_do: bool = False
    todo: Tuple[stacks.Action, ...] = field(default=())
    # Whether the switch can disturb clients of this host (a front server reload or restart,
    # an app server restart): in a fleet, such a host leaves the balancers first (drained).
    drain: bool = True
    history: Optional["History"] = None  # where a failed attempt is recorded, and as what
    noop: Optional[Step] = None  # nothing_to_do: record it, release the lock
    # After a failed switch, verify or smoke, before restore: the app's last log lines.
    app_log: Optional[Step] = None

    def steps(self):
        return [step for step in self.prepare + self.before_switch + self.activate if step]


# ----------------------------------------------------------------------------- paths

def state_dir(s):
    return f"{s.base}/{META}"


def lock_dir(s):
    return f"{state_dir(s)}/lock"


def release_dir(s, release_id):
    return f"{s.releases}/{release_id}"


def venv_dir(s, requirements_digest):
    return f"{s.shared}/venvs/{requirements_digest}"


def wheelhouse_dir(s, requirements_digest):
    return f"{s.shared}/wheelhouse/{requirements_digest}"


def config_files(files):
    return [f for f in files if not f.in_release]


def site_files(files):
    """The front server's site files among rendered files (linked into sites-enabled)."""
    return [f for f in files if f.is_site]


def site_names(files):
    return [PurePosixPath(f.path).name for f in site_files(files)]


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------------- shell lines

def install_line(src, dest, mode=0o644):
    """Install src over dest by an atomic rename: readers see the old file or the new one."""
    return (f"install -D -m {mode:o} {q(src)} {q(dest)}.flask-ops-new && "
            f"mv -f {q(dest)}.flask-ops-new {q(dest)}")


def enable_line(sites_enabled, path):
    return f"ln -sfn {q(path)} {q(sites_enabled + '/' + PurePosixPath(path).name)}"


def write_line(path, content, mode=0o644):
    """Write content to path on the host. The content travels base64-encoded inside one quoted
    argument: no heredoc delimiter or shell syntax in a rendered file can end it early."""
    data = base64.b64encode(content.encode()).decode()
    return (f"printf %s {q(data)} | base64 -d > {q(path)}.flask-ops-new && "
            f"chmod {mode:o} {q(path)}.flask-ops-new && mv -f {q(path)}.flask-ops-new {q(path)}")


def state_write(s, updates):
    return scripts.command("state_write.py", state_dir(s) + "/state.json", json.dumps(updates))


def unlock_line(s):
    return f"rm -rf {q(lock_dir(s))}"


def script(lines):
    return "\n".join(["set -e"] + list(lines))


# ----------------------------------------------------------------------------- facts

def facts_command(s, files=(), requirements_digest=None, acquire=False, lock_info=None,
                  manifests=(), noop=None):
    """One round trip, one interpreter: take the lock (when asked), then report what the host
    is now. noop (noop_check): and when the host is as it was at its last no-op, record
    this one and release the lock."""
    stack = stacks.of(s)
    args = {
        "base": s.base, "state": state_dir(s), "user": s.app_user,
        "paths": [f.path for f in config_files(files)],
        "sites_enabled": stack.sites_enabled, "enabled": site_names(files),
        "wheelhouse": wheelhouse_dir(s, requirements_digest) if requirements_digest else "",
        "venv": venv_dir(s, requirements_digest) if requirements_digest else "",
        "main_conf": stack.main_conf, "units": stack.units(), "front_marker": stacks.FRONT_MARKER,
        "manifests": manifests if manifests == "*" else list(manifests),
        "tls_cert": s.tls_cert if s.tls else "",
        "provisioned_files": stack.provisioned_files(),
        "worker_glob": stack.init.worker_glob(s),
        "maintenance_flag": s.maintenance_flag,
    }
    if acquire:  # taken by the same interpreter, first
        args["lock"] = {"state": state_dir(s), "info": lock_info}
        if noop is not None:
            args["noop"] = noop
    return scripts.command("facts.py", json.dumps(args))


def noop_check(s, digest, entry):
    """What facts.py needs to confirm a no-op itself: the facts' digest the host had when it
    last served this build, and the history entry it then records (its start and previous
    release are the host's). A certificate certbot renews must not be due."""
    return {"digest": digest, "file": s.history_file,
            "renew_before": RENEW_BEFORE if s.tls and s.tls.acme else None,
            "history": scripts.text("history_append.py"),
            "entry": entry.replace(result="no change").as_json()}


def first_deploy_facts(s):
    """What facts.py reports of a freshly provisioned host with nothing deployed yet (for a
    dry run when the host cannot be reached)."""
    return HostFacts(init=s.init, user=True, provisioned=True, main_conf=True,
                     front=stacks.of(s).front)


def parse_facts(stdout, acquired):
    """(facts, whether we took the lock) from facts_command's output."""
    lines = stdout.strip().splitlines()
    return HostFacts.parse(lines[-1]), bool(acquired and json.loads(lines[-2])["acquired"])


def facts_digest_in(stdout):
    """The facts' digest a script's output ends with (finish_script's), "" when it does not."""
    lines = stdout.strip().splitlines()
    try:
        return HostFacts.parse(lines[-1]).digest if lines else ""
    except OpsError:
        return ""


# ----------------------------------------------------------------------------- decisions

def changed_configs(files, facts):
    """Config files whose content differs from what the host has now."""
    return [f for f in config_files(files) if facts.live.get(f.path) != sha256(f.content)]


def actions(s, files, facts, certificate=False):
    """What must be restarted or reloaded, and why: ('restart'|'reload', unit).

    The front server is reloaded only when something it reads at start changed (its site
    files, a certificate: `certificate`), on stacks where the app's code switches without it
    (nginx + uWSGI): a reload closes every idle keep-alive connection of its clients, which a
    client that sends its next request at that moment sees fail."""
    stack = stacks.of(s)
    changed = changed_configs(files, facts)
    unit_paths = stack.init.unit_paths(s) if stack.app_units() else {}
    changed_paths = {f.path for f in changed}
    pending = set(facts.state.get("pending", []))
    todo = []
    workers = stack.worker_units()
    for unit in stack.units():
        restart = (unit in workers or facts.active.get(unit) != "active"
                   or f"restart {unit}" in pending
                   # an app server that runs from the release's venv (gunicorn) restarts onto it
                   or (stack.restarts_to_switch and unit in stack.process_units())
                   or unit_paths.get(unit) in changed_paths
                   # a restarted socket stops its service: the service starts on the new one
                   or (unit in unit_paths and any(a.restarts and a.unit in unit_paths
                                                  for a in todo)))
        if (unit == stack.front and not restart and not certificate and not any(f.is_site for f in changed)
                # a site whose link is missing (disabled by hand) is enabled again: nginx
                # must reload to serve it
                and all(facts.enabled.values())):
            continue
        todo.append(stacks.restart(unit) if restart else stacks.reload(unit))
    if stack.in_place_reload() and not any(unit == stack.front for _, unit in todo):
        todo.insert(0, stacks.reload(stack.in_place_reload()))
    # the app server first, the front server last
    return todo[1:] + todo[:1] if todo and todo[0][1] == stack.front else todo


def disturbs_clients(s, todo):
    """Whether these actions can cost a client of the host a request: any restart of the
    front or app server, or a front server reload (it closes idle keep-alive connections).
    uWSGI's own reload cannot: the socket stays open and requests wait in its queue."""
    stack = stacks.of(s)
    return any(a.unit == stack.front or (a.restarts and a.unit in stack.app_units())
               for a in todo)


# ----------------------------------------------------------------------------- step scripts

# Where Debian and Ubuntu keep the pip wheel `python3 -m venv` installs (python3-pip-whl), and
# where CPython's own ensurepip keeps it.
PIP_WHEELS = "/usr/share/python-wheels/pip-*.whl /usr/lib/python3*/ensurepip/_bundled/pip-*.whl"


def stage_script(s, release, facts):
    """Unpack the upload, give it its venv, and check every config on the target, in the
    context of the whole server config, before anything live changes."""
    rel = release_dir(s, release.id)
    tmp = rel + ".partial"
    venv = venv_dir(s, release.requirements_digest)
    wheels = wheelhouse_dir(s, release.requirements_digest)
    upload = f"/tmp/{release.upload_name}"
    lines = [
        f"trap {q(f'rm -rf {q(tmp)} {q(upload)}')} EXIT",
        f"rm -rf {q(tmp)} && mkdir -p {q(tmp)}",
        f"tar -xzf {q(upload)} -C {q(tmp)} --no-same-owner",
    ]
    if not facts.wheelhouse:
        lines += [f"rm -rf {q(wheels)} && mkdir -p {q(wheels)}",
                  f"mv {q(tmp)}/wheelhouse/* {q(wheels)}/ && touch {q(wheels)}/.complete"]
    lines.append(f"rm -rf {q(tmp)}/wheelhouse")
    if not facts.venv:
        # Offline install: the target never reaches the network. The flat, checked copy of the
        # requirements (ops.build.requirements): no pip option from the app's file can reach
        # the network from here.
        install = (f"install --quiet --no-index --no-cache-dir --disable-pip-version-check "
                   f"--find-links {q(wheels)} -r {q(tmp + '/' + META + '/requirements.txt')}")
        # The app's venv gets its packages, not a pip of its own: pip runs from the wheel the
        # distribution keeps for venv (python3-pip-whl), where there is one. Installing pip
        # into every venv (`-m venv`'s ensurepip) was 2.7 s of a 4.6 s stage.
        lines += [f"rm -rf {q(venv)}",
                  f'pip_wheel=""; for w in {PIP_WHEELS}; do if [ -f "$w" ]; then pip_wheel=$w; fi; done',
                  'if [ -n "$pip_wheel" ]; then',
                  f"  {q(s.python)} -m venv --without-pip {q(venv)}",
                  f'  {q(venv)}/bin/python "$pip_wheel/pip" {install}',
                  "else",
                  f"  {q(s.python)} -m venv {q(venv)}",
                  f"  {q(venv)}/bin/pip {install}",
                  "fi",
                  f"touch {q(venv)}/.complete"]
    if release.shared_links:
        lines.append(scripts.command("link_shared.sh", s.linked_dir, tmp, s.app_user,
                                     s.app_group, *release.shared_links))
    lines += [
        f"ln -sfn {q(venv)} {q(tmp)}/venv",
        # Release files belong to root: the app's group can read them, nobody else can change
        # them, and files keep their other bits (a 0600 file never becomes world-readable).
        # Collected static files are public by nature: the front server reads them.
        f"chown -R root:{q(s.app_group)} {q(tmp)} && chmod -R ug-s,g+rX,g-w,o-w {q(tmp)}",
        f"chmod -R a+rX {q(tmp + '/collected_static')}",
        f"rm -rf {q(rel)} && mv {q(tmp)} {q(rel)}",
        "trap - EXIT",
        f"rm -f {q(upload)}",
    ]
    return script(lines + check_lines(s, release.id, release.files))


def check_lines(s, release_id, files):
    """The target's own checkers on release `release_id`'s configs, in the live context."""
    meta = f"{release_dir(s, release_id)}/{META}"
    return stacks.of(s).check_lines(meta, f"{meta}/candidate", site_files(files))


def env_stage_script(s):
    """The next env file (shared/env.new) from stdin: values never appear in a command."""
    return script([scripts.command("env_write.py", s.env_file, s.app_user,
                                   state_dir(s) + "/state.json")])


def env_switch_lines(s, digest):
    """The staged env file goes live (the old one kept for restore) before the reload."""
    env = q(s.env_file)
    return [f"if [ -f {env} ]; then cp -p {env} {env}.prev; fi",
            f"mv -f {env}.new {env}", state_write(s, {"env_digest": digest})]


def env_restore_lines(s, digest):
    env = q(s.env_file)
    return [f"if [ -f {env}.prev ]; then mv -f {env}.prev {env}; fi",
            state_write(s, {"env_digest": digest})]


RENEW_BEFORE = 30 * 86400  # certbot's own renewal window


def certificate_steps(s, facts, cert_files=None, acme_ca=None, deploy_hook=None):
    """The certificate step, when the host's certificate is not the one the settings call
    for: before `stage`, whose checks load it (nginx needs the file to start). deploy_hook:
    what certbot runs after it issued or renewed (default: reload the front server)."""
    if not s.tls:
        return ()
    have = facts.tls
    if s.tls.acme:
        if have and set(have["names"]) == set(s.server_names) \
                and have["not_after"] - facts.now > RENEW_BEFORE:
            return ()
        ca_file = f"/etc/flask-ops/{s.app_name}/acme-ca.pem" if acme_ca else ""
        lines = [f"mkdir -p {q(PurePosixPath(ca_file).parent.as_posix())}",
                 write_line(ca_file, acme_ca.decode())] if acme_ca else []
        stack = stacks.of(s)
        lines.append(scripts.command("acme_issue.sh", stack.init.name, s.app_name,
                                     s.acme_webroot, s.tls.email, s.tls.directory, ca_file,
                                     deploy_hook or stack.init.service("reload", stack.front),
                                     *s.server_names))
        return (Step("certificate", script(lines),
                     f"certbot: {', '.join(s.server_names)} from {s.tls.directory}"),)
    if have and have.get("sha256") == cert_files.sha256:
        return ()
    return (Step("certificate", script([scripts.command("tls_files.py", s.tls_dir)]),
                 "certificate and key installed (root, 0600); the key is not shown",
                 stdin=cert_files.payload()),)


def _tls_files(s):
    """The certificate files tls_files.py writes (and keeps a .prev of)."""
    return f"{q(s.tls_dir)}/fullchain.pem {q(s.tls_dir)}/privkey.pem"


def tls_restore_lines(s):
    """The certificate files a failed deploy replaced go back (files mode)."""
    return [f"for f in {_tls_files(s)}; do "
            'if [ -f "$f.prev" ]; then mv -f "$f.prev" "$f"; fi; done']


def tls_keep_lines(s):
    """The replaced certificate files are dropped once the new ones serve."""
    return [f"for f in {_tls_files(s)}; do rm -f \"$f.prev\"; done"]


def install_lines(s, release_id, files):
    """Install the release's config files over the live ones, each by an atomic rename."""
    rel = release_dir(s, release_id)
    sites_enabled = stacks.of(s).sites_enabled
    return ([install_line(f"{rel}/{META}/etc{f.path}", f.path, f.mode) for f in config_files(files)]
            + [enable_line(sites_enabled, f.path) for f in site_files(files)])


def service_lines(s, todo):
    stack = stacks.of(s)
    lines = []
    if any(a.restarts and a.unit in stack.app_units() + stack.worker_units() for a in todo):
        lines += stack.init.before_restart()
    for a in todo:
        lines += stack.restart(a.unit) if a.restarts else stack.reload(a.unit)
    return lines


def current_lines(s, release_id):
    """Point `current` at the release atomically (a rename; never a moment without `current`)."""
    return [f"ln -sfn {q(release_dir(s, release_id))} {q(s.base)}/current.flask-ops-new",
            f"mv -T {q(s.base)}/current.flask-ops-new {q(s.current)}"]


def switch_script(s, release_id, files, todo, env_digest=None):
    """Point `current` at the release, install its configs (and the staged env file when
    env_digest is given), reload what changed. The restarts it needs are recorded first: a
    failure halfway cannot lose them."""
    pending = [f"restart {a.unit}" for a in todo if a.restarts]
    env = env_switch_lines(s, env_digest) if env_digest else []
    return script([state_write(s, {"pending": pending})] + install_lines(s, release_id, files)
                  + env + current_lines(s, release_id) + service_lines(s, todo)
                  + [state_write(s, {"pending": []})])


def verify_script(s, release_id, timeout):
    """Wait until every app process runs from the new release directory (not an old cwd)."""
    stack = stacks.of(s)
    pids, expected, fail_fast = stack.app_processes()
    return scripts.command("verify.sh", release_dir(s, release_id), release_id, expected,
                           timeout, pids, fail_fast, stack.wake_command())


def restore_script(s, previous_id, previous_files, failed_id, enabled_before=(), env=None,
                   cert_files=False, new_workers=()):
    """Put the previous release back (configs, current, services); drop the failed one.
    enabled_before: site links that were there before a first deploy (the catch-all another
    app on the host shares): left in place. env: (the env digest before) when the switch
    replaced the env file: the previous file goes back too; cert_files: so do the
    certificate files the deploy replaced. new_workers: worker units the failed release
    brought: stopped and removed (the previous release did not run them)."""
    stack = stacks.of(s)
    old_workers = worker_units_in(s, previous_files) if previous_id else []
    extra = dropped_workers(s, new_workers, old_workers)
    env_lines = (env_restore_lines(s, env[0]) if env else []) + (
        tls_restore_lines(s) if cert_files else [])
    if previous_id:
        lines = (install_lines(s, previous_id, previous_files) + env_lines
                 + current_lines(s, previous_id) + stack.remove_workers(extra)
                 + service_lines(s, stack.going_back(old_workers)))
    else:
        # Nothing to go back to: take our site out, so the host serves what it served before.
        lines = env_lines + [f"rm -f {q(stack.sites_enabled + '/' + n)}"
                             for n in site_names(previous_files) if n not in enabled_before]
        # The front server's own reload (nginx: waits until no old worker still answers with
        # the failed site), so the restore is over when this step returns.
        lines += stack.remove_app() + stack.remove_workers(extra) + [f"rm -f {q(s.current)}"] + [
            f"{line} || true" for line in stack.reload(stack.front)]
    if failed_id and failed_id != previous_id:
        lines.append(f"rm -rf {q(release_dir(s, failed_id))}")
    return script(lines)


def discard_script(s, release, cert_files=False):
    """Drop an uploaded or staged (never switched) release and release the lock."""
    rel = release_dir(s, release.id)
    return script([f"rm -rf {q(rel)} {q(rel + '.partial')} {q('/tmp/' + release.upload_name)}",
                   f"rm -f {q(s.env_file + '.new')}"]
                  + (tls_restore_lines(s) if cert_files else []) + [unlock_line(s)])


def finish_script(s, record, keep=None, current=None, env_switched=False, cert_files=False,
                  drop_workers=(), history=None, facts=None):
    """Record the result (state and history), stop the workers the description dropped,
    prune old releases (never the current one), report the facts (`facts`: the deploy's facts
    command, whose digest a later no-op compares) and release the lock."""
    lines = [state_write(s, {"last_deploy": record})] + stacks.of(s).remove_workers(drop_workers)
    if history is not None:
        lines.append(history_line(s.history_file, history))
    if env_switched:
        lines.append(f"rm -f {q(s.env_file + '.prev')}")
    if cert_files:
        lines += tls_keep_lines(s)
    if keep:
        lines.append(scripts.command("prune.sh", s.releases, keep, current))
    if facts:  # what the host is once it serves the release (a failure here fails nothing)
        lines += ["# shellcheck disable=SC2016  # facts.py's own $ are not the shell's",
                  facts + " || true"]
    return script(lines + [unlock_line(s)])


# ----------------------------------------------------------------------------- day two

def hook_steps(s, release_id, point, env_file):
    """The app's hooks at `point` (ops.targets.daytwo), each a step of its own, run in release
    `release_id` by its runner: as the app's user, with its venv and `env_file`."""
    runner = f"{release_dir(s, release_id)}/{PurePosixPath(s.run_file).name}"
    return tuple(
        Step(point, script([f"python3 {q(runner)} --env {q(env_file)} "
                            f"--timeout {s.hooks.timeout} -- {hook.text} 2>&1"]),
             hook.text, stream=True, timeout=s.hooks.timeout + 30,
             tolerated=point == "after_switch" and s.hooks.on_after_switch_failure == "report")
        for hook in s.hooks.at(point))


def worker_units_in(s, files):
    """The worker units among a release's files (its manifest's, for an older release)."""
    pattern = stacks.of(s).init.worker_glob(s)
    return sorted(PurePosixPath(f.path).stem for f in files if fnmatch.fnmatch(f.path, pattern))


def host_files(s, files):
    """A release's files as this host installs them: without the unit files of workers that
    other app hosts run (workers.NAME.hosts)."""
    init = stacks.of(s).init
    elsewhere = {init.unit_file_for(unit) for unit in s.workers_elsewhere}
    return tuple(f for f in files if f.path not in elsewhere)


def dropped_workers(s, present, wanted):
    return sorted(set(present) - set(wanted))


def history_line(path, entry):
    """Append one entry to the host's deploy history `path` (outside the releases)."""
    return scripts.command("history_append.py", path, json.dumps(entry.as_json(), sort_keys=True))


def failure_step(plan, step_name, reason):
    """The history entry of a failed attempt: which step, the first line of why."""
    lines = [line.strip() for line in reason.strip().splitlines() if line.strip()] or [""]
    # A remote failure reads "X failed on HOST (exit 1):" then its output, whose last line
    # says why (a traceback's exception).
    entry = plan.history.entry.replace(result="failed", step=step_name, error=lines[-1][:300])
    return Step("history", history_line(plan.history.file, entry))


def maintenance_script(s, on, entry):
    """Turn maintenance mode on or off: the front server tests the flag on each request, so
    no reload is needed; the toggle is recorded in the history."""
    flag = q(s.maintenance_flag)
    change = (f"mkdir -p {q(str(PurePosixPath(s.maintenance_flag).parent))} && "
              f"touch {flag}" if on else f"rm -f {flag}")
    return script([change, history_line(s.history_file, entry)])


# ----------------------------------------------------------------------------- plans

def deploy_plan(s, release, facts, record, env=None, env_key=None, cert_files=None, acme_ca=None):
    """Everything a deploy of `release` does on a host in state `facts`. env: the app's
    resolved environment (ops.deploy.appenv), written when the host's differs; env_key: the host's
    digest key (a new one when the host has none yet). cert_files (ops.deploy.certs, tls.certificate)
    or acme_ca (tls.acme's private CA): what the certificate step needs."""
    previous = facts.current
    files = host_files(s, release.files)
    cert_steps = certificate_steps(s, facts, cert_files, acme_ca)
    todo = tuple(actions(s, files, facts, certificate=bool(cert_steps)))
    manifest = facts.manifest or {}
    state = facts.state
    env_digest = env.digest(env_key) if env is not None else None
    env_changed = env is not None and state.get("env_digest") != env_digest
    env_steps = (Step("env", env_stage_script(s), f"{len(env.names)} names staged; values not "
                      "shown", stdin=env.payload(env_key)),) if env_changed else ()
    cert_files_step = bool(cert_steps) and not s.tls.acme
    workers = stacks.of(s).worker_units()
    dropped = dropped_workers(s, facts.workers, workers)
    nothing = (manifest.get("digest") == release.digest and not env_changed and not cert_steps
               and not changed_configs(files, facts) and not dropped
               and all(not a.restarts or (a.unit in workers and facts.active.get(a.unit) ==
                                          "active") for a in todo)
               and all(facts.enabled.values()))
    wheels = not facts.wheelhouse
    previous_files = host_files(s, files_from_manifest(manifest)) if previous else files
    entry = history_entry("deploy", record, release.id, previous, facts.now)
    env_file = s.env_file + ".new" if env_changed else s.env_file
    return Plan(
        host_action="deploy", target=release.id, previous=previous, nothing_to_do=nothing,
        todo=todo, drain=disturbs_clients(s, todo), history=History(s.history_file, entry),
        noop=Step("unlock", script([history_line(s.history_file, entry.replace(result="no change")),
                                    unlock_line(s)])),
        before_switch=hook_steps(s, release.id, "before_switch", env_file),
        prepare=cert_steps + (
            Step("upload", upload=Upload(f"/tmp/{release.upload_name}",
                                         facts.python if wheels else None,
                                         facts.arch if wheels else None,
                                         facts.libc if wheels else None)),
            Step("stage", stage_script(s, release, facts),
                 "dependencies installed offline; configs pass the target's checkers"),
        ) + env_steps,
        activate=(
            Step("switch", switch_script(s, release.id, files, todo,
                                         env_digest if env_changed else None),
                 ", ".join(f"{a.verb} {a.unit}" for a in todo)),
            Step("verify", verify_script(s, release.id, s.drain_timeout + 20), says=True),
        ) + hook_steps(s, release.id, "after_switch", s.env_file) + (
            Step("smoke", smoke_static=release.statics),
        ),
        restore=Step("restore", restore_script(s, previous, previous_files, release.id,
                                               [n for n, on in facts.enabled.items() if on],
                                               (state.get("env_digest"),) if env_changed else None,
                                               cert_files_step, workers)),
        app_log=app_log_step(s, facts.now),
        discard=Step("discard", discard_script(s, release, cert_files_step)),
        unlock=Step("unlock", unlock_line(s)),
        finish=Step("finish", finish_script(s, dict(record, release=release.id, previous=previous,
                                                    result="ok"),
                                            s.keep_releases, release.id, env_changed,
                                            cert_files_step, dropped, entry.replace(result="ok"),
                                            facts_command(s, release.files,
                                                          release.requirements_digest))),
    )


def app_log_step(s, since=None, lines=25):
    """The app's last log lines (its journal, or the site's error log where mod_wsgi writes),
    since `since` (the host's clock at facts) where the journal can say, secrets masked:
    why the app did not start, printed before restore puts the old release back."""
    stack = stacks.of(s)
    units, files = stack.log_sources()
    # The app's own: its units' journal, upstart's job logs, the site's error log where
    # mod_wsgi writes the app's stderr (nginx's own error log is not the app's).
    own = [f for f in files if "/upstart/" in f or (not stack.app_units() and f.endswith(".error.log"))]
    spec = {"units": units, "files": own, "env_file": s.env_file, "lines": lines, "since": since}
    return Step("app log", scripts.command("app_log.py", json.dumps(spec, sort_keys=True)))


@dataclass(frozen=True)
class HistoryEntry:
    """What the host's history keeps of an attempt (one JSON line); the host adds when it
    ended and how long it took (from `started`, its own clock at facts; None: it has none)."""

    action: str  # deploy, rollback, maintenance on|off
    by: str  # who (locks.performer)
    release: Optional[str]
    previous: Optional[str]
    commit: Optional[str] = None
    started: Optional[float] = None
    result: Optional[str] = None  # set by the host when it succeeded; else failed, no change
    step: Optional[str] = None  # the step that failed
    error: Optional[str] = None  # the first line of why

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def as_json(self):
        outcome = ("result", "step", "error")
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k not in outcome or v is not None}


@dataclass(frozen=True)
class History:
    file: str  # the host's history file
    entry: HistoryEntry  # this attempt's


def history_entry(action, record, release_id, previous, started=None):
    return HistoryEntry(action, locks.performer(record.get("by") or {}), release_id, previous,
                        record.get("commit"), started)


def rollback_plan(s, release_id, facts, record):
    """Going back to an earlier release, as thorough as a deploy: its configs checked, the
    switch, verify, smoke; on failure the release that served before is put back."""
    current = facts.current
    target = facts.manifests.get(release_id) or {}
    files = host_files(s, files_from_manifest(target))
    workers = worker_units_in(s, files)
    back = stacks.of(s).going_back(workers)
    current_files = host_files(s, files_from_manifest(facts.manifest))
    entry = history_entry("rollback", record, release_id, current, facts.now)
    return Plan(
        host_action="rollback", target=release_id, previous=current, todo=tuple(back),
        history=History(s.history_file, entry),
        prepare=(Step("check", script(check_lines(s, release_id, files)),
                      "configs of that release pass the target's checkers"),),
        activate=(
            Step("switch", switch_script(s, release_id, files, back)),
            Step("verify", verify_script(s, release_id, s.drain_timeout + 20), says=True),
            Step("smoke", smoke_static=release_statics(target)),
        ),
        restore=Step("restore", restore_script(s, current, current_files, None,
                                               new_workers=workers)),
        app_log=app_log_step(s, facts.now),
        discard=Step("unlock", unlock_line(s)),
        unlock=Step("unlock", unlock_line(s)),
        finish=Step("record", finish_script(
            s, dict(record, release=release_id, previous=current, result="rollback"),
            drop_workers=dropped_workers(s, facts.workers, workers),
            history=entry.replace(result="ok"))),
    )
