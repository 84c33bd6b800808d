"""Rolling deploys over a fleet: app hosts behind nginx load balancers.

The slow steps (build once; facts, upload, dependency install and config checks on every
app host) run in parallel. Then, batch by batch, each host is drained from every load
balancer, switched, verified and smoke-tested directly, and put back. A failed batch stops
the roll: its hosts are restored, hosts not yet switched drop their staged release, and the
summary names every host's outcome.
"""

from concurrent.futures import ThreadPoolExecutor

from . import checks, deploy, plan, render, smoke
from .errors import DeployError, OpsError


class Prefixed:
    """Output lines prefixed with a host name, so parallel steps stay readable."""

    def __init__(self, out, name):
        self.out, self.name = out, name

    def __call__(self, line):
        self.out(f"[{self.name}] {line.strip()}")


def lb_script(s, files, main_conf):
    """Check a load balancer's new site in the context of its whole nginx config, then
    install it and reload (graceful: in-flight requests finish on the old workers)."""
    cand = f"/etc/flask-ops/{s.app_name}/lb-candidate"
    names = [f.path.rsplit("/", 1)[1] for f in files]
    lines = ["set -e"] + plan.candidate_sites_lines("/etc/nginx/sites-enabled", f"{cand}/sites", names)
    for f, name in zip(files, names):
        lines.append(plan.write_line(f"{cand}/sites/{name}", f.content))
    lines.append(plan.write_line(f"{cand}/main.conf",
                                 checks.nginx_candidate_main(main_conf, cand + "/sites")))
    lines.append(" ".join(plan.q(a) for a in checks.nginx_test_command(f"{cand}/main.conf")) + " 2>&1")
    for f, name in zip(files, names):
        lines.append(plan.install_line(f"{cand}/sites/{name}", f.path, f.mode) + " && "
                     + plan.enable_line("/etc/nginx/sites-enabled", f.path))
    lines.append(f"if systemctl is-active --quiet nginx; then\n{plan.NGINX_RELOAD}\n"
                 "else systemctl restart nginx; fi")
    return "\n".join(lines)


class LoadBalancers:
    """The fleet's load balancers, kept in step: which app hosts are in, which drained."""

    def __init__(self, s, lbs, apps, out):
        self.s, self.lbs, self.apps, self.out = s, lbs, apps, out
        self._main = {}

    def apply(self, drained=()):
        upstreams = [render.Upstream(a.address, a.name in drained) for a in self.apps]
        files = render.render_lb(self.s, upstreams)
        for lb in self.lbs:
            if lb.name not in self._main:
                self._main[lb.name] = lb.run("cat /etc/nginx/nginx.conf", "read nginx.conf").stdout
            lb.run(lb_script(self.s, files, self._main[lb.name]), "load balancer config")
        if self.lbs:
            state = ", ".join(f"{a.name} {'drained' if a.name in drained else 'in'}" for a in self.apps)
            self.out(f"  lb         {state}")


def rolling_deploy(s, lbs, apps, batch_size=1, max_fail=0, out=print):
    """Deploy to every app host in batches behind the load balancers. Returns {host: outcome};
    raises DeployError with the per-host summary when more than max_fail hosts failed."""
    fleet = render.Fleet(tuple(lb.address for lb in lbs), tuple(a.address for a in apps))
    built = deploy.build(s, deploy.Steps(out), fleet)
    outcome, prepared = {}, {}
    with ThreadPoolExecutor(max_workers=len(apps)) as pool:
        futures = {a.name: pool.submit(deploy.prepare, s, a, built,
                                       deploy.Steps(Prefixed(out, a.name))) for a in apps}
    for name, future in futures.items():
        try:
            prepared[name] = future.result()
        except OpsError as exc:
            outcome[name] = f"FAILED before switching: {exc}"
    balancers = LoadBalancers(s, lbs, apps, out)
    if len(outcome) > max_fail:
        for p in prepared.values():
            deploy.discard(p)
            outcome[p.remote.name] = "untouched (old release kept)"
        return _finish(outcome, max_fail, out)
    balancers.apply()
    order = [a.name for a in apps if a.name in prepared]
    failures = len(outcome)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        balancers.apply(drained=batch)
        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            results = {n: pool.submit(deploy.activate, prepared.pop(n)) for n in batch}
        for name, future in results.items():
            try:
                outcome[name] = f"ok: {future.result()}"
            except OpsError as exc:
                failures += 1
                outcome[name] = f"FAILED, rolled back: {exc}"
        balancers.apply()  # restored hosts serve the old release: they go back in too
        if failures > max_fail:
            for p in prepared.values():
                deploy.discard(p)
                outcome[p.remote.name] = "untouched (old release kept)"
            break
    for lb in lbs:  # the visitor's view: the whole stack through each load balancer
        failed = [r for r in smoke.run(s, smoke.Target(lb.address, s.listen_port, s.server_names[0]),
                                       deploy.static_file(built.tree)) if not r.ok]
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
