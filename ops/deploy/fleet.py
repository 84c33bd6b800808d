"""Rolling deploys over a fleet: app hosts behind nginx load balancers.

The slow steps (build once; facts, upload, dependency install and config checks on every
app host) run in parallel. Then, batch by batch, each host is switched, verified and
smoke-tested directly. A host whose switch could cost its clients a request (its front server
reloads or restarts, or its app server restarts) is drained from every load balancer first
and put back after; a host whose switch is uWSGI's own graceful reload stays in: requests
wait in its socket's queue, and no balancer reloads (an nginx reload closes its clients' idle
keep-alive connections, and a client sending on one at that moment loses the request). A
failed batch stops the roll: its hosts are restored, hosts not yet switched drop their staged
release, and the summary names every host's outcome.
"""

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

from .. import scripts
from ..errors import DeployError, OpsError
from ..targets import render, stacks
from . import certs, deploy, executor, plan, smoke
from .hostfacts import HostFacts
from .steps import Prefixed, Steps


def lb_script(s, upstreams, reload=False):
    """Check a load balancer's new site in the context of its whole nginx config, then, if it
    differs from the live one, install it and reload (graceful: in-flight requests finish on
    the old workers). Prints `reloaded` when it did. reload: whatever the site (a new
    certificate). A site the same as the live one, enabled and served, is neither checked
    again nor reloaded (`nginx -t` of the whole config cost every no-op of a fleet)."""
    lb = stacks.LoadBalancer(s)
    files = lb.files(upstreams)
    sites = [f for f in files if f.is_site]
    cand = lb.candidate_dir
    names = [f.path.rsplit("/", 1)[1] for f in sites]
    lines = [f"mkdir -p {plan.q(f.path.rsplit('/', 1)[0])} && " + plan.write_line(f.path, f.content, f.mode)
             for f in files if not f.is_site]  # the maintenance page
    if not reload:  # every site as live, enabled, served: checked when it went live, kept
        lines.append(f"if {_as_live(lb, files)}; then exit 0; fi")
    lines += lb.check_in_context(cand, names, [plan.write_line(f"{cand}/sites/{name}", f.content)
                                               for f, name in zip(sites, names)])
    lines.append("changed=" + ("1" if reload else ""))
    lines += _install_checked(lb, cand, sites)
    lines.append(f"if ! {lb.init.service_is_active(lb.front)}; then")
    lines += [f"  {lb.init.service('restart', lb.front)} && echo reloaded",
              "elif [ -n \"$changed\" ]; then"]
    lines += ["  " + line for line in lb.reload(lb.front)] + ["  echo reloaded", "fi"]
    return plan.script(lines)


def lb_as_live_script(s, upstreams):
    """Read-only: exits 0 when lb_script would change nothing on a balancer (every file as
    live, the sites enabled, nginx active). It runs beside the app hosts' facts, so that a
    fleet whose balancers are as they should be spends no round trip on them after."""
    lb = stacks.LoadBalancer(s)
    return plan.script([f"{_as_live(lb, lb.files(upstreams))} || exit 1"])


def _as_live(lb, files):
    """A shell condition: every one of `files` has these bytes on the balancer, its sites are
    enabled, and its front server is active."""
    expected = "\n".join(f"{plan.sha256(f.content)}  {f.path}" for f in files)
    tests = [f'[ "$(sha256sum -- {" ".join(plan.q(f.path) for f in files)} 2>/dev/null)" = '
             f'{plan.q(expected)} ]']  # one sha256sum for all: a missing file drops its line
    tests += [f"[ -e {plan.q(lb.sites_enabled + '/' + f.path.rsplit('/', 1)[1])} ]"
              for f in files if f.is_site]
    return " && ".join(tests + [lb.init.service_is_active(lb.front)])


def _install_checked(lb, cand, sites):
    """Lines that put each checked candidate site (under `cand`/sites) in place and enable it
    when it differs from the live one or is not enabled, setting `changed`."""
    lines = []
    for f in sites:
        name = f.path.rsplit("/", 1)[1]
        enabled = plan.q(f"{lb.sites_enabled}/{name}")
        lines += [f"if ! cmp -s {plan.q(f'{cand}/sites/{name}')} {plan.q(f.path)} || [ ! -e {enabled} ]; then",
                  "  " + plan.install_line(f"{cand}/sites/{name}", f.path, f.mode)
                  + " && " + plan.enable_line(lb.sites_enabled, f.path),
                  "  changed=1", "fi"]
    return lines


class LoadBalancers:
    """The fleet's load balancers, kept in step: which app hosts are in, which drained."""

    def __init__(self, s, lbs, apps, out):
        self.s, self.lbs, self.apps, self.out = s, lbs, apps, out

    def apply(self, drained=(), reload=False):
        script = lb_script(self.s, [render.Upstream(a.address, a.name in drained) for a in self.apps],
                           reload)
        reloaded = [lb.run(script, "load balancer config").stdout.split()[-1:] == ["reloaded"]
                    for lb in self.lbs]
        if any(reloaded):
            state = ", ".join(f"{a.name} {'drained' if a.name in drained else 'in'}" for a in self.apps)
            self.out(f"  lb         {state}")
        return any(reloaded)

    def as_live(self):
        """Whether apply() would change nothing on any balancer (False when one cannot say)."""
        script = lb_as_live_script(self.s, [render.Upstream(a.address, False) for a in self.apps])
        try:
            return all(lb.run(script, "load balancer look", check=False).exited == 0
                       for lb in self.lbs)
        except OpsError:  # unreachable: apply() meets it again and says so
            return False


def app_settings(s, lbs):
    """What app hosts serve behind load balancers: TLS ends at the balancers and the app hosts
    stay plain on the private network (the balancers tell them the scheme); and the balancers
    cache (nginx: cache), so app hosts do not cache again behind them (a page could be stale
    for twice cache_ttl): they get the proxy shape."""
    if not lbs:
        return s
    if s.tls and not s.tls.to_app_hosts:
        s = dataclasses.replace(s, tls=None)
    if s.nginx == "cache":
        s = dataclasses.replace(s, nginx="proxy")
    return s


def lb_settings(s, lb_count):
    """What the balancers serve: with ACME and more than one balancer, one certificate shared
    by all (issued on the first, copied to the others), from flask-ops' own directory."""
    if s.tls and s.tls.acme and lb_count > 1:
        return dataclasses.replace(s, tls=dataclasses.replace(s.tls, distributed=True))
    return s


def lb_certificates(s, lbs, out):
    """Each balancer's certificate (ACME through its own certbot, or the user's files) before
    its TLS config is checked against it. Returns whether the balancers must reload to serve
    it (certbot reloads by itself when it renews)."""
    if not (s.tls and lbs):
        return False
    if s.tls.distributed:
        return shared_acme_certificate(s, lbs, out)
    cert_files = None if s.tls.acme else certs.load_files(s, warn=out)
    # No facts: certbot keeps a certificate that is still valid; files are rewritten.
    steps = plan.certificate_steps(s, HostFacts(), cert_files, certs.acme_ca(s))
    for lb in lbs:
        for step in steps:
            lb.run(step.script, f"load balancer {step.name}", stdin=step.stdin)
            if cert_files:
                lb.run(plan.script(plan.tls_keep_lines(s)), "certificate")
    if steps:
        out(f"  lb         certificate for {', '.join(s.server_names)} on "
            f"{', '.join(lb.name for lb in lbs)}")
    return bool(steps and cert_files)


def shared_acme_certificate(s, lbs, out):
    """One ACME certificate for several balancers. A validation request may reach any of
    them (the names resolve to all): the others send challenges they have no file for to the
    first, whose certbot issues and renews the certificate and copies it (deploy hook) to the
    directory every balancer serves it from. Each deploy brings the others the first's copy.
    Returns whether a balancer's copy changed (they must reload)."""
    primary, others = lbs[0], lbs[1:]
    lb = stacks.LoadBalancer(s)
    up = f"[{primary.address}]" if ":" in primary.address else primary.address
    for host in lbs:
        forward = scripts.command("acme_forward.sh", s.acme_forward_dir, s.app_name,
                                  "" if host is primary else f"{up}:{s.listen_port}")
        host.run(_front_with(lb, forward), "load balancer ACME forwarding")
    live, shared = f"/etc/letsencrypt/live/{s.app_name}", s.tls_dir
    copy = (f"install -d -m 700 {plan.q(shared)} && "
            + " && ".join(f"install -m 600 {plan.q(live + '/' + f)} {plan.q(shared + '/' + f)}"
                          for f in ("fullchain.pem", "privkey.pem")))
    reload = lb.init.service("reload", lb.front)
    step = plan.certificate_steps(s, HostFacts(), acme_ca=certs.acme_ca(s), deploy_hook=f"{copy} && {reload}")[0]
    primary.run(step.script, f"load balancer {step.name}")
    changed = primary.run(plan.script([
        f"if ! cmp -s {plan.q(live)}/fullchain.pem {plan.q(shared)}/fullchain.pem || "
        f"! cmp -s {plan.q(live)}/privkey.pem {plan.q(shared)}/privkey.pem; then",
        f"  {copy}", "  echo changed", "fi"]), "certificate copy").stdout.split() == ["changed"]
    pair = json.loads(primary.run(scripts.command("read_files.py", s.tls_cert, s.tls_key),
                                  "certificate copy").stdout)
    payload = json.dumps({"chain": pair[s.tls_cert], "key": pair[s.tls_key]})
    for host in others:
        result = host.run(scripts.command("tls_files.py", shared), "certificate copy",
                          stdin=payload)
        if result.stdout.split() != ["unchanged"]:
            host.run(plan.script(plan.tls_keep_lines(s)), "certificate")
            changed = True
    out(f"  lb         certificate for {', '.join(s.server_names)} from {primary.name}, "
        f"shared with {', '.join(h.name for h in others)}")
    return changed


def _front_with(lb, line):
    """Run `line` (it prints `changed` when it changed what nginx includes), then install the
    host's current catch-all, check the whole config and reload nginx when anything changed.
    A config that fails its check is never loaded: the forwarding files are removed."""
    catchall = lb.catchall_file()
    name = lb.catchall_name()
    cand = lb.candidate_dir + "-acme"
    lines = [f"changed=$({line})"]
    lines += ["if ! { " + " && ".join(lb.check_in_context(
        cand, [name], [plan.write_line(f"{cand}/sites/{name}", catchall.content)]))
        + "; }; then",
        f"  rm -f {plan.q(lb.s.acme_forward_dir)}/{plan.q(lb.s.app_name)}.*; exit 1", "fi"]
    lines += _install_checked(lb, cand, [catchall]) + ["if [ -n \"$changed\" ]; then"]
    lines += ["  " + x for x in lb.reload(lb.front)] + ["fi"]
    return plan.script(lines)


DRAIN_MODES = ("auto", "always")


def rolling_deploy(s, lbs, apps, batch_size=1, max_fail=0, out=print, drain="auto"):
    """Deploy to every app host in batches behind the load balancers. Returns {host: outcome};
    raises DeployError with the per-host summary when more than max_fail hosts failed.

    drain: "auto" takes a host out of the balancers only when its switch could cost a client
    a request (plan.disturbs_clients); "always" also for uWSGI's graceful reload, so that a
    release failing its checks on a host is never seen by clients, at the price of balancer
    reloads (each can cost a keep-alive client a request)."""
    if drain not in DRAIN_MODES:
        raise OpsError(f"--drain {drain}: one of {', '.join(DRAIN_MODES)}")
    fleet = render.Fleet(tuple(lb.address for lb in lbs))
    # Rendered for what every host last reported (the balancers' own files too).
    s = deploy.for_hosts(s, [h.name for h in list(lbs) + list(apps)])
    lb_s, s = lb_settings(s, len(lbs)), app_settings(s, lbs)
    for host in list(lbs) + list(apps):  # the SSH handshakes while the build runs
        host.connect_ahead()
    new_certificate = lb_certificates(lb_s, lbs, out)
    built = deploy.build(s, Steps(out), fleet)
    outcome, prepared = {}, {}
    balancers = LoadBalancers(lb_s, lbs, apps, out)
    with ThreadPoolExecutor(max_workers=len(apps) + 1) as pool:
        futures = {a.name: pool.submit(deploy.prepare, s, a, built,
                                       Steps(Prefixed(out, a.name))) for a in apps}
        # beside the facts, a look (changing nothing) at whether the balancers need apply()
        lbs_as_live = pool.submit(balancers.as_live) if lbs and not new_certificate else None
    for name, future in futures.items():
        try:
            prepared[name] = future.result()
        except OpsError as exc:
            outcome[name] = f"FAILED before switching: {exc}"
    if len(outcome) <= max_fail and prepared:
        # Hooks before the switch (a migration) run once, on the first app host, before any
        # host switches; if they fail, no host switches.
        first = next(iter(prepared))
        try:
            executor.before_switch(prepared[first])
        except OpsError as exc:
            prepared.pop(first)
            outcome[first] = f"FAILED before switching (before_switch hook): {exc}"
            for p in prepared.values():  # nothing switches, whatever --max-fail says
                executor.discard(p)
                outcome[p.remote.name] = "untouched (old release kept)"
            return _finish(outcome, 0, out)
    if len(outcome) > max_fail:
        for p in prepared.values():
            executor.discard(p)
            outcome[p.remote.name] = "untouched (old release kept)"
        return _finish(outcome, max_fail, out)
    as_live = lbs_as_live is not None and lbs_as_live.result()
    lb_changed = False if as_live else balancers.apply(reload=new_certificate)
    order = [a.name for a in apps if a.name in prepared]
    changes = lb_changed or not all(p.plan.nothing_to_do for p in prepared.values())
    failures, canary_failed = len(outcome), False
    for number, batch in enumerate(batches(order, batch_size)):
        switching = any(not prepared[n].plan.nothing_to_do for n in batch)
        drained = (drain == "always" and switching) or any(prepared[n].plan.drain for n in batch)
        if drained:
            balancers.apply(drained=batch)
        elif switching:
            out(f"  lb         {', '.join(batch)} stay in (uWSGI's graceful reload only)")
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            results = {n: pool.submit(executor.activate, prepared.pop(n)) for n in batch}
        for name, future in results.items():
            try:
                outcome[name] = f"ok: {future.result()}"
            except OpsError as exc:
                failures += 1
                outcome[name] = f"FAILED, rolled back: {exc}"
        if drained:  # back in (restored hosts serve the old release: they go back in too)
            balancers.apply()
        canary_failed = number == 0 and outcome[batch[0]].startswith("FAILED")
        if failures > max_fail or canary_failed:
            for p in prepared.values():
                executor.discard(p)
                outcome[p.remote.name] = "untouched (old release kept)"
            break
    if canary_failed:  # whatever --max-fail allows: the release failed its first host
        _finish(outcome, max_fail, out, raise_=False)
        raise DeployError("rolling deploy", f"the canary ({order[0]}) failed; the roll stopped "
                          "before any other host switched")
    if not changes:  # nothing changed anywhere: as on one host, a no-op checks nothing
        return _finish(outcome, max_fail, out)
    for lb in lbs:  # the visitor's view: the whole stack through each load balancer
        failed = [r for r in smoke.run(lb_s, deploy.target_for(lb_s, lb), built.release.statics)
                  if not r.ok]
        outcome[f"{lb.name} (lb)"] = ("smoke ok" if not failed else "FAILED smoke: " +
                                      "; ".join(f"{r.name}: {r.detail}" for r in failed))
    return _finish(outcome, max_fail, out)


def batches(order, batch_size):
    """The switch order: a canary (the first host alone, switched, verified and
    smoke-checked before any other), then the rest `batch_size` at a time."""
    if not order:
        return []
    canary, rest = order[:1], order[1:]
    return [canary] + [rest[i:i + batch_size] for i in range(0, len(rest), batch_size)]


def _finish(outcome, max_fail, out, raise_=True):
    failed = [n for n, t in outcome.items() if t.startswith("FAILED")]
    for name in failed:  # why, in full: the failing check's output, the app's last lines
        detail = outcome[name].splitlines()[1:]
        if detail:
            out(f"{name}:")
            for line in detail:
                out(f"  {line}")
    out("summary:")
    for name, text in outcome.items():
        out(f"  {name:12} {text.splitlines()[0]}")
    if raise_ and len(failed) > max_fail:
        raise DeployError("rolling deploy", f"{len(failed)} host(s) failed "
                          f"({', '.join(failed)}; --max-fail {max_fail}); the roll stopped")
    return outcome
