"""Deploy and rollback on one host: build once, read the host's facts (taking its lock), make
the plan, hand it to the executor. Also the read-only views: releases, status, unlock.
"""

import dataclasses
import resource
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .. import cachedir, locks
from ..build import build as build_mod, buildcache, release as release_mod
from ..config import settings as settings_mod, vcs
from ..errors import OpsError, SmokeError, Unreachable
from ..targets import hostversions, inits, stacks
from . import appenv, certs, dryrun, executor, noop, plan as plan_mod, smoke
from .steps import Steps


@dataclass
class Built:
    """One build, shipped to one host or many."""

    tree: object  # None: the build was recognised (buildcache); made by tree_now if needed
    release: release_mod.Release
    env: appenv.Resolved  # read on this machine once, before any host is touched
    cert_files: object = None  # ops.deploy.certs.CertFiles (tls.certificate), checked here
    acme_ca: Optional[bytes] = None  # tls.acme's private CA bundle
    record: dict = None  # who deploys, from where, which commit (ops.deploy.deploy.record)
    make_tree: Callable = None  # () -> stage_tree's result, for a recognised build
    _making: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def tree_now(self):
        """The release tree, built now if the build was recognised (a host must get it after
        all: its facts differed). Once, for every host of a fleet."""
        with self._making:
            if self.tree is None:
                tree, digest, *_ = self.make_tree()
                if digest != self.release.digest:
                    raise OpsError("the app's source changed during the deploy (its build "
                                   "differs from the one recognised): deploy again")
                self.tree = tree
            return self.tree


def build(s, steps, fleet=None):
    with steps("build"):
        # What can refuse the deploy on this machine comes first: a missing secret, a key
        # that does not match its certificate, an expired one.
        env = appenv.resolve(s)
        cert_files = certs.load_files(s, warn=steps.out) if s.tls and not s.tls.acme else None
        acme_ca = certs.acme_ca(s)
        root, key = build_mod.build_root(s), buildcache.signature(s, fleet, env)

        def make_tree():
            return release_mod.stage_tree(s, fleet, build_mod.app_environment(env))
        known = buildcache.recalled(root, key)
        if known is not None:  # the same inputs as the last build: its outputs, no tree yet
            digest, files, statics, links, requirements = known
            rel = release_mod.new_release(s, digest, files, statics, links, requirements)
            return Built(None, rel, env, cert_files, acme_ca, record(s), make_tree)
        tree, digest, files, statics, links = make_tree()
        rel = release_mod.new_release(s, digest, files, statics, links)
        buildcache.remember(root, key, rel)
        return Built(tree, rel, env, cert_files, acme_ca, record(s), make_tree)


def gather(s, remote, files=(), requirements_digest=None, acquire=False, manifests=(),
           noop_check=None):
    """(facts, whether we hold the lock): one round trip. noop_check (plan.noop_check): the
    host may confirm the no-op itself and release the lock (facts.noop)."""
    command = plan_mod.facts_command(s, files, requirements_digest, acquire, locks.who(),
                                     manifests, noop_check)
    facts, locked = plan_mod.parse_facts(remote.run(command, "facts").stdout, acquire)
    return facts, locked and not facts.noop


class RenderedForAnother(OpsError):
    """The host's servers cannot take the files the release was rendered for (its versions
    were not known yet, or changed): build again for them."""


def for_hosts(s, hosts):
    """The settings rendered for what `hosts` last reported (a fleet: what all support)."""
    return dataclasses.replace(s, target=hostversions.target_for_hosts(hosts))


def check_versions(s, facts, remote):
    """Remember the host's server versions; refuse servers older than flask-ops renders for,
    and a release rendered for directives they lack."""
    versions = hostversions.versions_from_facts(facts)
    if not versions:
        return
    hostversions.remember(remote.name, versions)
    hostversions.refuse_too_old(versions, remote.name)
    host = hostversions.Target.for_versions(versions)
    if host.common(s.target) != s.target:
        raise RenderedForAnother(f"{remote.name} runs {hostversions.describe(versions)}: the "
                                 "release was rendered for newer servers; build it again")


def preflight(s, facts, remote):
    """Refusals that must come before anything changes."""
    init = inits.of(s)
    if facts.init != init.name:
        hint = f" Set init: {facts.init} for this host." if facts.init in inits.INITS else ""
        raise OpsError(f"init is '{init.name}' but {remote.name} runs {facts.init}: "
                       f"a {init.name} unit would never start there.{hint}")
    if not facts.provisioned or not facts.user:
        raise OpsError(f"{remote.name} is not provisioned for {s.app_name}: "
                       f"run `fab -H {remote.name} provision` first")
    stack = stacks.of(s)
    if not facts.main_conf:
        raise OpsError(f"{remote.name} has no {stack.front} config: run provision")
    if facts.front != stack.front:
        was = f"for {facts.front}" if facts.front else "by an older flask-ops"
        raise OpsError(f"{remote.name} was provisioned {was}, but stack {stack.name} needs "
                       f"{stack.front}: run `fab -H {remote.name} provision` for this stack first")
    missing = facts.unprovisioned
    if missing:
        raise OpsError(f"{remote.name} was provisioned by an older flask-ops (it lacks "
                       f"{', '.join(missing[:3])}): run `fab -H {remote.name} provision` first")


def source_at(s, ref=None, out=print):
    """The settings whose project is `ref`'s clean checkout (the --ref option, else the
    description's `ref`), never the working tree; without a ref, the working tree: refused
    when it has uncommitted changes and require_clean is set, else deployed with a warning."""
    ref = ref or s.ref
    if ref:
        root, sha = vcs.checkout(s.project_root, vcs.check_ref("--ref", ref),
                                 cachedir.cache_root() / "refs")
        out(f"  ref        {ref} = {sha[:12]} (a clean checkout; the working tree is not shipped)")
        return dataclasses.replace(s, project_root=str(root), commit=sha[:12])
    commit = vcs.commit(s.source_dir)
    if commit and commit.endswith("+dirty"):
        if s.require_clean:
            raise OpsError("the working tree has uncommitted changes and require_clean is set: "
                           "commit them, or deploy a commit with --ref")
        out("  warning    the working tree has uncommitted changes: they are deployed (the "
            "history records +dirty); --ref TAG deploys a commit")
    return dataclasses.replace(s, commit=commit or "")


def record(s=None):
    """Who deploys what: kept in the host's state (last_deploy) and its history."""
    entry = {"at": time.time(), "by": locks.who()}
    if s is not None:
        entry["commit"] = (s.commit if s.commit is not None else vcs.commit(s.source_dir)) or None
    return entry


def target_for(s, remote):
    """Where a visitor reaches the site on this host: HTTPS (checked against the configured CA
    bundle, HTTP redirecting) when tls is on."""
    if s.tls:
        return smoke.Target(remote.address, s.tls.port, s.server_names[0], tls=True,
                            ca_file=s.tls.ca_bundle or None, plain_port=s.listen_port)
    return smoke.Target(remote.address, s.listen_port, s.server_names[0])


def smoke_or_raise(s, remote, statics, maintenance=False):
    results = smoke.run(s, target_for(s, remote), statics, maintenance)
    failed = [r for r in results if not r.ok]
    if failed:
        raise SmokeError("; ".join(f"{r.name}: {r.detail}" for r in failed))
    return results


def start(s, remote, built, steps, dry_run=False):
    """Facts (and the lock), preflight, the plan: a Run ready for the executor."""
    s = settings_mod.for_host(s, remote.name)  # only the workers this host runs
    rel = built.release
    inputs = noop.inputs_digest(s, rel, built.env, built.cert_files, built.acme_ca,
                                plan_mod.facts_command(s, rel.files, rel.requirements_digest))
    last = None if dry_run else noop.recalled(remote.login, s, inputs)
    check = plan_mod.noop_check(s, last, plan_mod.history_entry(
        "deploy", built.record, rel.id, None)) if last else None
    with steps("facts"):
        facts, locked = gather(s, remote, rel.files, rel.requirements_digest, acquire=not dry_run,
                               noop_check=check)
    env_key = facts.state.get("env_key") or secrets.token_hex(32)
    plan = plan_mod.deploy_plan(s, rel, facts, built.record, built.env, env_key,
                                built.cert_files, built.acme_ca)
    if facts.noop and not plan.nothing_to_do:  # never expected: the record missed an input
        noop.forget(remote.login, s)
        return start(s, remote, built, steps, dry_run)
    if plan.nothing_to_do and not dry_run:
        noop.remember(remote.login, s, inputs, facts.digest)

    def bundle(upload):
        wheels = (build_mod.target_wheelhouse(s, upload.python, upload.arch, upload.libc)
                  if upload.python else None)
        return release_mod.bundle(s, built.tree_now(), rel, wheels)

    maintenance = bool(facts.maintenance)

    def finished(stdout):  # the host's facts once it serves the release: the next no-op's
        noop.remember(remote.login, s, inputs, plan_mod.facts_digest_in(stdout))

    run = executor.Run(remote, plan, steps, bundle,
                       lambda static: smoke_or_raise(s, remote, static, maintenance), locked=locked,
                       finished=finished)
    try:
        check_versions(s, facts, remote)
        preflight(s, facts, remote)
        if not locked and not facts.noop and (facts.lock is not None or not dry_run):
            raise locks.refusal(facts, remote.name)
    except OpsError:
        executor.discard(run)
        raise
    return run


def prepare(s, remote, built, steps):
    return executor.prepare(start(s, remote, built, steps))


def deploy(s, remote, dry_run=False, out=print):
    """Ship the app to one host; return the release id now serving."""
    steps = Steps(out)
    s = for_hosts(s, [remote.name])
    remote.connect_ahead()  # the SSH handshake while the build runs
    built = build(s, steps)
    try:
        run = start(s, remote, built, steps, dry_run)
    except RenderedForAnother as exc:  # first contact, or its servers changed: once more
        steps.out(f"  note       {exc}")
        s = for_hosts(s, [remote.name])
        built = build(s, steps)
        run = start(s, remote, built, steps, dry_run)
    except Unreachable as exc:
        if not dry_run:
            raise
        # Without the host: what a first deploy to a fresh, provisioned host would do.
        out(f"{remote.name} is not reachable ({str(exc).splitlines()[0]}): showing a first "
            "deploy to a freshly provisioned host")
        plan = plan_mod.deploy_plan(s, built.release, plan_mod.first_deploy_facts(s),
                                    built.record, built.env, "dry-run", built.cert_files,
                                    built.acme_ca)
        return dryrun.report(s, None, built.release, plan, out, built.env)
    if dry_run:
        return dryrun.report(s, remote, built.release, run.plan, out, built.env)
    executor.prepare(run)
    executor.before_switch(run)
    released = executor.activate(run)
    if not run.plan.nothing_to_do:
        out(f"deployed {released} to {remote.name} in {time.monotonic() - steps.start:.1f}s "
            f"({remote.commands} remote commands, peak RSS here {peak_rss_mib()} MiB)")
    return released


def peak_rss_mib():
    """The most memory this process held at once (Linux counts ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def rollback(s, remote, release_id=None, out=print):
    """Go back to an earlier release (default: the one before current), as thoroughly as a deploy."""
    s = settings_mod.for_host(s, remote.name)
    steps = Steps(out)
    with steps("facts"):
        facts, locked = gather(s, remote, acquire=True, manifests="*")
    try:
        if not locked:
            raise locks.refusal(facts, remote.name)
        preflight(s, facts, remote)
        current, releases = facts.current, facts.releases
        if release_id is None:
            older = [r for r in releases if current and r < current]
            if not older:
                raise OpsError(f"no release before {current} to roll back to")
            release_id = older[-1]
        if release_id not in releases:
            raise OpsError(f"no release {release_id} on {remote.name}; "
                           f"`fab -H {remote.name} releases` lists them")
    except OpsError:
        if locked:
            remote.run(plan_mod.unlock_line(s), "unlock", check=False)
        raise
    plan = plan_mod.rollback_plan(s, release_id, facts, record())
    if s.hooks.at("before_switch"):
        out("  note       a rollback puts back code, configs and services; it does not undo "
            "what before_switch hooks did (database migrations stay applied)")
    maintenance = bool(facts.maintenance)
    checks = settings_mod.with_recorded_smoke(s, facts.manifests.get(release_id))
    run = executor.Run(remote, plan, steps, None,
                       lambda static: smoke_or_raise(checks, remote, static, maintenance))
    executor.prepare(run)
    executor.activate(run)
    out(f"rolled back {remote.name} from {current} to {release_id}")
    return release_id


def releases(s, remote):
    facts, _ = gather(s, remote)
    return facts.current, facts.releases


def current_statics(s, remote):
    """The static files the current release recorded, for `fab smoke` on a host."""
    facts, _ = gather(s, remote)
    return release_mod.statics_from_manifest(facts.manifest)


def status(s, remote):
    s = settings_mod.for_host(s, remote.name)
    facts, _ = gather(s, remote)
    lock = locks.describe(facts.lock, facts.now)[0] if facts.lock else "unlocked"
    info = {"host": remote.name, "current": facts.current, "releases": len(facts.releases),
            "services": facts.active, "last_deploy": facts.state.get("last_deploy"),
            "pending": facts.state.get("pending", []), "lock": lock}
    shared = (facts.manifest or {}).get("shared") or []
    info["shared"] = ", ".join(f"{item.partition(':')[2]} -> {s.linked_dir}/{item.partition(':')[2]}"
                               for item in shared if isinstance(item, str)) or "none"
    info["maintenance"] = ("ON: the site answers 503 (`fab maintenance off` ends it)"
                           if facts.maintenance else "off")
    if s.tls:
        info["certificate"] = certs.describe(facts.tls, facts.now)
    return info


def unlock(s, remote):
    facts, _ = gather(s, remote)
    if not facts.lock:
        return None
    text, _ = locks.describe(facts.lock, facts.now)
    remote.run(plan_mod.unlock_line(s), "unlock")
    return text
