"""Rolling deploys over a fleet: app hosts behind nginx load balancers.

The slow steps (build once; facts, upload, dependency install and config checks on every
app host) run in parallel. Then, batch by batch, each host is drained from every load
balancer, switched, verified and smoke-tested directly, and put back. A failed batch stops
the roll: its hosts are restored, hosts not yet switched drop their staged release, and the
summary names every host's outcome.
"""

import dataclasses
from concurrent.futures import ThreadPoolExecutor

from . import certs, deploy, executor, plan, render, smoke, stacks
from .errors import DeployError, OpsError
from .steps import Prefixed, Steps


def lb_script(s, upstreams):
    """Check a load balancer's new site in the context of its whole nginx config, then
    install it and reload (graceful: in-flight requests finish on the old workers)."""
    lb = stacks.LoadBalancer(s)
    files = lb.files(upstreams)
    sites = [f for f in files if f.is_site]
    cand = lb.candidate_dir
    names = [f.path.rsplit("/", 1)[1] for f in sites]
    lines = [f"mkdir -p {plan.q(f.path.rsplit('/', 1)[0])} && " + plan.write_line(f.path, f.content, f.mode)
             for f in files if not f.is_site]  # the maintenance page
    lines += lb.check_in_context(cand, names, [plan.write_line(f"{cand}/sites/{name}", f.content)
                                               for f, name in zip(sites, names)])
    for f in sites:
        lines.append(plan.install_line(f"{cand}/sites/{f.path.rsplit('/', 1)[1]}", f.path, f.mode)
                     + " && " + plan.enable_line(lb.sites_enabled, f.path))
    lines.append("if systemctl is-active --quiet nginx; then")
    lines += ["  " + line for line in lb.reload(lb.front)]
    lines += ["else", "  systemctl restart nginx", "fi"]
    return plan.script(lines)


class LoadBalancers:
    """The fleet's load balancers, kept in step: which app hosts are in, which drained."""

    def __init__(self, s, lbs, apps, out):
        self.s, self.lbs, self.apps, self.out = s, lbs, apps, out

    def apply(self, drained=()):
        script = lb_script(self.s, [render.Upstream(a.address, a.name in drained) for a in self.apps])
        for lb in self.lbs:
            lb.run(script, "load balancer config")
        if self.lbs:
            state = ", ".join(f"{a.name} {'drained' if a.name in drained else 'in'}" for a in self.apps)
            self.out(f"  lb         {state}")


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


def lb_certificates(s, lbs, out):
    """Each balancer's certificate (ACME through its own certbot, or the user's files) before
    its TLS config is checked against it."""
    if not (s.tls and lbs):
        return
    cert_files = None if s.tls.acme else certs.load_files(s, warn=out)
    # No facts: certbot keeps a certificate that is still valid; files are rewritten.
    steps = plan.certificate_steps(s, {}, cert_files, certs.acme_ca(s))
    for lb in lbs:
        for step in steps:
            lb.run(step.script, f"load balancer {step.name}", stdin=step.stdin)
            if cert_files:
                lb.run(plan.script(plan.tls_keep_lines(s)), "certificate")
    if steps:
        out(f"  lb         certificate for {', '.join(s.server_names)} on "
            f"{', '.join(lb.name for lb in lbs)}")


def rolling_deploy(s, lbs, apps, batch_size=1, max_fail=0, out=print):
    """Deploy to every app host in batches behind the load balancers. Returns {host: outcome};
    raises DeployError with the per-host summary when more than max_fail hosts failed."""
    fleet = render.Fleet(tuple(lb.address for lb in lbs))
    lb_s, s = s, app_settings(s, lbs)
    lb_certificates(lb_s, lbs, out)
    built = deploy.build(s, Steps(out), fleet)
    outcome, prepared = {}, {}
    with ThreadPoolExecutor(max_workers=len(apps)) as pool:
        futures = {a.name: pool.submit(deploy.prepare, s, a, built,
                                       Steps(Prefixed(out, a.name))) for a in apps}
    for name, future in futures.items():
        try:
            prepared[name] = future.result()
        except OpsError as exc:
            outcome[name] = f"FAILED before switching: {exc}"
    balancers = LoadBalancers(lb_s, lbs, apps, out)
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
    balancers.apply()
    order = [a.name for a in apps if a.name in prepared]
    failures = len(outcome)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        balancers.apply(drained=batch)
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            results = {n: pool.submit(executor.activate, prepared.pop(n)) for n in batch}
        for name, future in results.items():
            try:
                outcome[name] = f"ok: {future.result()}"
            except OpsError as exc:
                failures += 1
                outcome[name] = f"FAILED, rolled back: {exc}"
        balancers.apply()  # restored hosts serve the old release: they go back in too
        if failures > max_fail:
            for p in prepared.values():
                executor.discard(p)
                outcome[p.remote.name] = "untouched (old release kept)"
            break
    for lb in lbs:  # the visitor's view: the whole stack through each load balancer
        failed = [r for r in smoke.run(lb_s, deploy.target_for(lb_s, lb), built.release.statics)
                  if not r.ok]
        outcome[f"{lb.name} (lb)"] = ("smoke ok" if not failed else "FAILED smoke: " +
                                      "; ".join(f"{r.name}: {r.detail}" for r in failed))
    return _finish(outcome, max_fail, out)


def _finish(outcome, max_fail, out):
    out("summary:")
    for name, text in outcome.items():
        out(f"  {name:12} {text.splitlines()[0]}")
    failed = [n for n, t in outcome.items() if t.startswith("FAILED")]
    if len(failed) > max_fail:
        raise DeployError("rolling deploy", f"{len(failed)} host(s) failed "
                          f"({', '.join(failed)}; --max-fail {max_fail}); the roll stopped")
    return outcome
