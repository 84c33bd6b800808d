"""Plans are values: the exact commands of whole plans for given settings and facts, the
decisions that shape them, and the remote scripts themselves (run here, and shellchecked).

Whole plans are compared with the files in tests/plans/ (shown with each inlined script
by its file name). After a deliberate change, review the diff of:
    FLASK_OPS_UPDATE_PLANS=1 .venv/bin/pytest tests/test_plan.py
"""

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ops import locks, scripts
from ops.build import release
from ops.deploy import appenv, dryrun, executor, fleet, noop, plan, provision
from ops.deploy.hostfacts import HostFacts
from ops.targets import render, stacks

PLANS = Path(__file__).parent / "plans"
RID = "20260101T000000Z-abcd1234"
OLD = "20251231T000000Z-00000000"
RECORD = {"at": 1767225600.0, "by": {"user": "dev", "host": "laptop", "pid": 1}}


def facts(**over):
    base = {"init": "systemd", "python": "3.11", "arch": "x86_64", "current": None,
            "releases": [], "manifest": None, "manifests": {}, "live": {},
            "enabled": {}, "active": {"nginx": "active", "apache2": "active",
                                      "sample-uwsgi": "active", "sample-uwsgi.socket": "active"},
            "state": {}, "wheelhouse": True, "venv": True, "lock": None, "now": 0}
    base.update(over)
    return HostFacts.from_json(base)


def live_for(files):
    return {f.path: plan.sha256(f.content) for f in plan.config_files(files)}


def built(s, rid=RID):
    return release.Release(rid, rid[-8:] * 2, "req0", tuple(render.render(s)),
                           f"flask-ops-{s.app_name}-{rid}.tar.gz", (("/static/css/app.css", "0" * 64),))


def show(p):
    """A whole plan as text: every step, then what runs on failure and at the end."""
    parts = [f"# plan: {p.host_action} {p.target} (previous: {p.previous}; "
             f"nothing to do: {p.nothing_to_do})"]
    parts += [line for line in executor.dry_run_lines(p)]
    for step in (p.restore, p.discard, p.unlock, p.finish):
        parts.append(f"# on {'failure' if step in (p.restore, p.discard) else 'the way out'}: "
                     f"{step.name}\n{scripts.readable(step.script)}")
    return "\n".join(parts) + "\n"


def matches_golden(name, text):
    path = PLANS / f"{name}.txt"
    if os.environ.get("FLASK_OPS_UPDATE_PLANS"):
        PLANS.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with FLASK_OPS_UPDATE_PLANS=1 and review it"
    assert text == path.read_text(), f"the plan differs from {path}"
    return True


# ------------------------------------------------------------------------- whole plans

def test_first_deploy_nginx_uwsgi(load):
    s = load()
    p = plan.deploy_plan(s, built(s), facts(wheelhouse=False, venv=False,
                                            active={"nginx": "active", "sample-uwsgi": "inactive", "sample-uwsgi.socket": "active"}),
                         RECORD)
    assert [step.name for step in p.steps()] == ["upload", "stage", "switch", "verify", "smoke"]
    assert matches_golden("deploy-first-nginx-uwsgi", show(p))


def test_a_failed_first_deploy_leaves_the_sites_another_app_enabled(load):
    """A second app's first deploy that fails must not take the shared catch-all out from
    under the first app (which would then answer any Host)."""
    s = load(app_name="second", server_names=["second.test"])
    catchall = "000-flask-ops-catchall-80.conf"
    p = plan.deploy_plan(s, built(s), facts(enabled={catchall: True, "second.conf": False}),
                         RECORD)
    assert "rm -f /etc/nginx/sites-enabled/second.conf" in p.restore.script
    assert catchall not in p.restore.script


def test_code_change_on_a_live_apache_host(load):
    s = load(stack="apache-modwsgi")
    previous = built(s, OLD)
    p = plan.deploy_plan(s, built(s), facts(current=OLD, manifest=release.manifest(s, previous),
                                            live=live_for(previous.files)), RECORD)
    assert p.todo == (("reload", "sample mod_wsgi daemons"),)  # SIGUSR1: Apache stays up
    assert matches_golden("deploy-change-apache", show(p))


def test_code_change_under_gunicorn_restarts_it_onto_the_release(load):
    """gunicorn runs from the release's venv: a code change restarts its service (not its
    socket, which keeps the waiting requests); nginx, whose site did not change, stays."""
    s = load(stack="nginx-gunicorn")
    previous = built(s, OLD)
    p = plan.deploy_plan(s, built(s), facts(
        current=OLD, manifest=release.manifest(s, previous), live=live_for(previous.files),
        active={"nginx": "active", "sample-gunicorn": "active",
                "sample-gunicorn.socket": "active"}), RECORD)
    assert ("restart", "sample-gunicorn") in p.todo
    assert not {("restart", "sample-gunicorn.socket"), ("reload", "nginx")} & set(p.todo)
    assert matches_golden("deploy-change-nginx-gunicorn", show(p))


def test_cache_shape_under_upstart(load):
    s = load(nginx="cache", init="upstart")
    assert matches_golden("deploy-first-cache-upstart", show(plan.deploy_plan(s, built(s), facts(
        init="upstart"), RECORD)))


def test_rollback_is_a_plan_that_restores_on_failure(load):
    s = load()
    old, new = built(s, OLD), built(s)
    p = plan.rollback_plan(s, OLD, facts(current=RID, releases=[OLD, RID],
                                         manifest=release.manifest(s, new),
                                         manifests={OLD: release.manifest(s, old)}), RECORD)
    assert [step.name for step in p.steps()] == ["check", "switch", "verify", "smoke"]
    assert f"ln -sfn /srv/sample/releases/{RID} " in p.restore.script  # back to what served
    assert matches_golden("rollback-nginx-uwsgi", show(p))


def test_load_balancer_script(load):
    s = load(nginx="cache")
    script = fleet.lb_script(s, [render.Upstream("198.18.0.11"), render.Upstream("198.18.0.12", True)])
    assert matches_golden("load-balancer-cache", scripts.readable(script) + "\n")


def test_provision_nginx_and_apache(load):
    text = "".join(scripts.readable(provision.provision_script(load(**over))) + "\n"
                   for over in ({"secrets": ["API_TOKEN"]}, {"stack": "apache-modwsgi"}))
    assert matches_golden("provision", text)


def test_a_changed_environment_is_staged_switched_with_the_release_and_restored(load):
    s = load()
    env = appenv.Resolved((("DATABASE_URL", "postgres://db/shop"), ("STRIPE_KEY", "sk_live_x")),
                          ("SECRET_KEY",))
    previous = built(s, OLD)
    p = plan.deploy_plan(s, built(s), facts(current=OLD, manifest=release.manifest(s, previous),
                                            live=live_for(previous.files),
                                            state={"env_key": "k", "env_digest": "before"}),
                         RECORD, env, "k")
    assert [step.name for step in p.steps()] == ["upload", "stage", "env", "switch", "verify",
                                                 "smoke"]
    switch = p.activate[0].script
    # the new env file is in place before the reload that makes the app read it
    assert switch.index("mv -f /srv/sample/shared/env.new") < switch.index("systemctl reload")
    assert "/srv/sample/shared/env.prev /srv/sample/shared/env" in p.restore.script
    assert '"env_digest": "before"' in p.restore.script
    text = show(p)
    assert "sk_live_x" not in text and "postgres://" not in text
    assert json.loads(p.prepare[-1].stdin)["set"]["STRIPE_KEY"] == "sk_live_x"
    assert matches_golden("deploy-env-change", text)


def test_the_same_environment_is_not_sent_again(load):
    s = load()
    rel = built(s)
    env = appenv.Resolved((("DATABASE_URL", "postgres://db/shop"),), ("SECRET_KEY",))
    f = facts(current=RID, manifest=release.manifest(s, rel), live=live_for(rel.files),
              enabled={n: True for n in plan.site_names(rel.files)},
              state={"env_key": "k", "env_digest": env.digest("k")})
    assert plan.deploy_plan(s, rel, f, RECORD, env, "k").nothing_to_do
    changed = appenv.Resolved((("DATABASE_URL", "postgres://db/other"),), ("SECRET_KEY",))
    p = plan.deploy_plan(s, rel, f, RECORD, changed, "k")
    assert not p.nothing_to_do and "env" in [step.name for step in p.prepare]
    assert ("reload", "sample-uwsgi") in p.todo  # a reload re-reads the env file: graceful
    assert env.digest("k") != env.digest("other key")  # keyed: the host's key, root-only


# ------------------------------------------------------------------------- decisions

def test_unchanged_build_on_a_host_that_serves_it_is_nothing_to_do(load):
    s = load()
    rel = built(s)
    f = facts(current=RID, manifest=release.manifest(s, rel), live=live_for(rel.files),
              enabled={n: True for n in plan.site_names(rel.files)})
    p = plan.deploy_plan(s, rel, f, RECORD)
    assert p.nothing_to_do and p.todo == (("reload", "sample-uwsgi.socket"),
                                          ("reload", "sample-uwsgi"))
    assert not plan.deploy_plan(s, rel, f.replace(enabled={"sample.conf": False}), RECORD).nothing_to_do


def test_a_changed_unit_or_a_stopped_service_means_restart(load):
    s = load()
    files = render.render(s)
    live = live_for(files)
    live["/etc/systemd/system/sample-uwsgi.service"] = "old"
    assert ("restart", "sample-uwsgi") in plan.actions(s, files, facts(live=live))
    stopped = facts(live=live_for(files), active={"nginx": "inactive", "sample-uwsgi": "active",
                                                  "sample-uwsgi.socket": "active"})
    assert plan.actions(s, files, stopped) == [("reload", "sample-uwsgi.socket"),
                                               ("reload", "sample-uwsgi"), ("restart", "nginx")]


def test_nginx_reloads_only_when_its_site_or_certificate_changed(load):
    """A reload closes every idle keep-alive connection: a code change (uWSGI's own graceful
    reload) leaves nginx alone, and such a host need not leave the balancers of a fleet."""
    s = load()
    files = render.render(s)
    live = live_for(files)
    code_change = plan.actions(s, files, facts(live=live))
    assert [unit for _, unit in code_change] == ["sample-uwsgi.socket", "sample-uwsgi"]
    assert not plan.disturbs_clients(s, code_change)
    assert ("reload", "nginx") in plan.actions(s, files, facts(live=live), certificate=True)
    # the site's link was removed by hand: the deploy enables it again, and nginx reloads
    disabled = facts(live=live, enabled={"sample.conf": False, "000-flask-ops-catchall-80.conf": True})
    assert ("reload", "nginx") in plan.actions(s, files, disabled)
    live["/etc/nginx/sites-available/sample.conf"] = "old"
    site_change = plan.actions(s, files, facts(live=live))
    assert site_change[-1] == ("reload", "nginx") and plan.disturbs_clients(s, site_change)
    live = live_for(files)
    live["/etc/systemd/system/sample-uwsgi.service"] = "old"
    assert plan.disturbs_clients(s, plan.actions(s, files, facts(live=live)))
    # Apache: its daemons restart in place (SIGUSR1), Apache reloads only for its site.
    a = load(stack="apache-modwsgi")
    a_files = render.render(a)
    live = live_for(a_files)
    apache = plan.actions(a, a_files, facts(live=live, active={"apache2": "active"}))
    assert apache == [("reload", "sample mod_wsgi daemons")]
    assert not plan.disturbs_clients(a, apache)
    assert plan.service_lines(a, apache) == ["pkill -USR1 -u sample -f '^[(]wsgi:' || true"]
    live["/etc/apache2/sites-available/sample.conf"] = "old"
    apache = plan.actions(a, a_files, facts(live=live, active={"apache2": "active"}))
    assert apache == [("reload", "apache2")] and plan.disturbs_clients(a, apache)


def test_a_changed_socket_unit_restarts_socket_then_service_and_a_changed_service_keeps_the_socket(load):
    """The socket holds the queue of waiting connections: only its own change restarts it."""
    s = load()
    files = render.render(s)
    live = live_for(files)
    live["/etc/systemd/system/sample-uwsgi.socket"] = "old"
    todo = plan.actions(s, files, facts(live=live))
    assert todo[:2] == [("restart", "sample-uwsgi.socket"), ("restart", "sample-uwsgi")]
    lines = plan.service_lines(s, todo)
    assert lines.index("systemctl stop sample-uwsgi") < lines.index(
        "systemctl enable --quiet sample-uwsgi.socket && systemctl restart sample-uwsgi.socket")
    live = live_for(files)
    live["/etc/systemd/system/sample-uwsgi.service"] = "old"
    todo = plan.actions(s, files, facts(live=live))
    assert todo[:2] == [("reload", "sample-uwsgi.socket"), ("restart", "sample-uwsgi")]
    assert not [line for line in plan.service_lines(s, todo) if "sample-uwsgi.socket" in line]


def test_a_pending_restart_from_a_failed_deploy_is_not_lost(load):
    s = load()
    files = render.render(s)
    f = facts(live=live_for(files), state={"pending": ["restart sample-uwsgi"]})
    todo = plan.actions(s, files, f)
    assert ("restart", "sample-uwsgi") in todo
    script = plan.switch_script(s, "R1", files, todo)
    # Recorded before the first service command, cleared only after the last one.
    assert script.index('"pending": ["restart sample-uwsgi"]') < script.index("systemctl")
    assert script.rindex('"pending": []') > script.rindex("systemctl")


def test_no_template_is_rendered_while_planning(load, monkeypatch):
    s = load()
    rel, f = built(s), facts(current=OLD, manifest=release.manifest(s, built(s, OLD)),
                             manifests={OLD: release.manifest(s, built(s, OLD))})
    from ops.targets import templating
    monkeypatch.setattr(templating, "render", lambda *a, **k: pytest.fail("rendered again"))
    plan.deploy_plan(s, rel, f, RECORD)
    plan.rollback_plan(s, OLD, f, RECORD)
    plan.facts_command(s, rel.files, "req0", True, {})


# ------------------------------------------------------------------------- the scripts, run here

def run_script(name, *args, check=True):
    return subprocess.run(scripts.command(name, *args), shell=True, executable="/bin/bash",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=check)


def test_env_write_keeps_generated_values_sets_the_rest_and_drops_the_undeclared(tmp_path):
    env, state = tmp_path / "env", tmp_path / "state.json"
    env.write_text("SECRET_KEY=kept\nOLD_NAME=gone\nDATABASE_URL=old\n")
    payload = json.dumps({"set": {"DATABASE_URL": "a=b $(x) 'q' \\ #", "TOKEN": "t"},
                          "generate": ["SECRET_KEY", "NEW_SECRET"], "key": "k1"})
    proc = subprocess.run(scripts.command("env_write.py", env, "root", state), shell=True,
                          executable="/bin/bash", input=payload, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
    assert env.read_text().startswith("SECRET_KEY=kept")  # live file untouched until switch
    lines = (tmp_path / "env.new").read_text().splitlines()
    assert [line.split("=")[0] for line in lines] == ["DATABASE_URL", "NEW_SECRET", "SECRET_KEY",
                                                      "TOKEN"]
    assert lines[0] == "DATABASE_URL=a=b $(x) 'q' \\ #" and lines[2] == "SECRET_KEY=kept"
    assert len(lines[1]) == len("NEW_SECRET=") + 64
    assert (tmp_path / "env.new").stat().st_mode & 0o777 == 0o600
    assert json.loads(state.read_text()) == {"env_key": "k1"}


def test_prune_keeps_the_newest_and_never_the_current(tmp_path):
    for name in ["r1", "r2", "r3", "r4", "r5.partial"]:
        (tmp_path / name).mkdir()
    run_script("prune.sh", tmp_path, 2, "r1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1", "r3", "r4", "r5.partial"]


def test_candidate_sites_keeps_other_sites_and_drops_ours(tmp_path):
    enabled = tmp_path / "enabled"
    enabled.mkdir()
    (tmp_path / "other.conf").write_text("other")
    (enabled / "other.conf").symlink_to(tmp_path / "other.conf")
    (enabled / "ours.conf").write_text("old ours")
    (enabled / "dangling.conf").symlink_to(tmp_path / "gone.conf")
    run_script("candidate_sites.sh", enabled, tmp_path / "cand/sites", "ours.conf")
    cand = tmp_path / "cand/sites"
    assert sorted(p.name for p in cand.iterdir()) == ["other.conf"]
    assert not (cand / "other.conf").is_symlink()  # a copy: the check cannot touch the live file


def test_candidate_main_points_the_sites_include_at_the_candidate(tmp_path):
    live = tmp_path / "nginx.conf"
    live.write_text("http {\n    include /etc/nginx/sites-enabled/*;\n}\n")
    run_script("candidate_main.py", "nginx", live, "/x/sites", tmp_path / "main.conf")
    assert (tmp_path / "main.conf").read_text() == "http {\n    include /x/sites/*;\n}\n"
    live.write_text("IncludeOptional sites-enabled/*.conf\n")
    run_script("candidate_main.py", "apache", live, "/x/sites", tmp_path / "main.conf")
    assert (tmp_path / "main.conf").read_text() == "IncludeOptional /x/sites/*.conf\n"
    live.write_text("http {}\n")
    failed = run_script("candidate_main.py", "nginx", live, "/x", tmp_path / "m", check=False)
    assert failed.returncode == 1 and "no 'include /etc/nginx/sites-enabled/*;' line" in failed.stderr


def test_state_write_merges_and_lock_is_taken_once(tmp_path):
    state = tmp_path / "state.json"
    run_script("state_write.py", state, '{"pending": ["restart x"]}')
    run_script("state_write.py", state, '{"last_deploy": 1}')
    assert json.loads(state.read_text()) == {"pending": ["restart x"], "last_deploy": 1}
    # facts.py takes the lock first when asked: once, for the first who asks
    for pid, acquired in ((1, True), (2, False)):
        out = run_script("facts.py", json.dumps(dict(
            empty_host_facts_args(tmp_path), state=str(tmp_path),
            lock={"state": str(tmp_path), "info": {"pid": pid}}))).stdout.splitlines()
        assert json.loads(out[0]) == {"acquired": acquired}
        assert HostFacts.parse(out[1]).lock == {"pid": 1}
    assert json.loads((tmp_path / "lock/info.json").read_text()) == {"pid": 1}


def test_verify_waits_for_processes_in_the_release_and_fails_fast(tmp_path):
    ok = run_script("verify.sh", tmp_path, "R1", 1, 5, f"echo {os.getpid()}", check=False)
    assert ok.returncode == 1 and "do not all run R1" in ok.stderr  # our cwd is not tmp_path
    here = run_script("verify.sh", os.getcwd(), "R1", 1, 5, f"echo {os.getpid()}")
    # and what the processes add to the host's memory (this test's process: some MiB)
    assert re.fullmatch(r"1 processes run R1, PSS [1-9]\d* MiB", here.stdout.strip()), here.stdout
    start = time.monotonic()
    fast = run_script("verify.sh", tmp_path, "R1", 1, 30, "true", "echo crashed >&2; exit 1",
                      check=False)
    assert fast.returncode == 1 and "crashed" in fast.stderr and time.monotonic() - start < 20


def empty_host_facts_args(tmp_path):
    return {"base": str(tmp_path / "srv"), "state": str(tmp_path / "state"), "user": "root",
            "paths": [str(tmp_path / "none.conf")], "sites_enabled": str(tmp_path),
            "enabled": ["x.conf"], "wheelhouse": "", "venv": "", "main_conf": "/nonexistent",
            "units": [], "manifests": "*", "front_marker": str(tmp_path / "front")}


def test_facts_on_an_empty_host(tmp_path):
    args = empty_host_facts_args(tmp_path)
    f = HostFacts.parse(run_script("facts.py", json.dumps(args)).stdout)  # every key known
    assert (f.current, f.releases, f.provisioned, f.user, f.lock, f.front) == (
        None, (), False, True, None, None)
    assert f.live == {str(tmp_path / "none.conf"): None} and f.enabled == {"x.conf": False}
    assert f.python.count(".") == 2 and f.init in ("systemd", "upstart", "unknown")


def test_every_remote_script_passes_shellcheck(load, tmp_path):
    """The script files as they run (their includes in), and every step script of every plan
    above, with no warning."""
    if not shutil.which("shellcheck"):
        pytest.fail("shellcheck is not installed: run `make system-deps`")
    files = []
    for name in scripts.names():
        if name.endswith(".sh"):
            files.append(tmp_path / name)
            files[-1].write_text(scripts.text(name))
    s = load()
    shapes = [plan.deploy_plan(s, built(s), facts(wheelhouse=False, venv=False), RECORD),
              plan.deploy_plan(load(stack="apache-modwsgi"), built(load(stack="apache-modwsgi")),
                               facts(), RECORD),
              plan.deploy_plan(load(init="upstart"), built(load(init="upstart")), facts(), RECORD),
              plan.rollback_plan(s, OLD, facts(current=RID, manifest=release.manifest(s, built(s)),
                                               manifests={OLD: release.manifest(s, built(s, OLD))}),
                                 RECORD)]
    steps = [st.script for p in shapes for st in p.steps() + [p.restore, p.discard, p.finish]
             if st.script]
    steps += [provision.provision_script(s), fleet.lb_script(s, [render.Upstream("198.18.0.1")])]
    for i, text in enumerate(steps):
        path = tmp_path / f"step{i}.sh"
        path.write_text("#!/bin/bash\n" + text + "\n")
        files.append(path)
    result = subprocess.run(["shellcheck", "--severity=style", *map(str, files)],
                            stdout=subprocess.PIPE, text=True)
    assert result.returncode == 0, result.stdout


# ------------------------------------------------------------------------- people-facing text

def test_lock_staleness():
    now = time.time()
    here = socket.gethostname()
    text, stale = locks.describe({"user": "a", "host": here, "pid": 2**22 + 1, "started": now}, now)
    assert stale and "that process is gone" in text
    assert not locks.describe({"host": here, "pid": os.getpid(), "started": now}, now)[1]
    assert not locks.describe({"host": "elsewhere", "pid": 1, "started": now - 60}, now)[1]
    assert locks.describe({"host": "elsewhere", "pid": 1, "started": now - 7200}, now)[1]


def test_dry_run_output_masks_secret_values():
    text = "+SECRET_KEY=abc\n+ uwsgi_param X 1;\n-  DB_PASSWORD: hunter2\nenv API_TOKEN=x y"
    assert dryrun.mask_secrets(text) == ("+SECRET_KEY=********\n+ uwsgi_param X 1;\n"
                                         "-  DB_PASSWORD: ********\nenv API_TOKEN=******** y")


@pytest.mark.parametrize("stack, front, says", [
    ("apache-modwsgi", "nginx", "staging9 was provisioned for nginx, but stack apache-modwsgi "
                                "needs apache2: run `fab -H staging9 provision` for this stack"),
    ("nginx-uwsgi", "apache2", "was provisioned for apache2, but stack nginx-uwsgi needs nginx"),
    ("nginx-uwsgi", None, "was provisioned by an older flask-ops"),
])
def test_preflight_asks_for_provision_when_the_stack_changed(load, stack, front, says):
    """A host set up for one front server refuses a deploy for the other before anything
    changes (it once failed half way, at stage, with `Invalid command 'Header'`)."""
    from ops.deploy import deploy
    from ops.errors import OpsError

    remote = type("Remote", (), {"name": "staging9"})()
    ready = facts(provisioned=True, user=True, main_conf=True, front=front)
    with pytest.raises(OpsError, match=re.escape(says)):
        deploy.preflight(load(stack=stack), ready, remote)
    deploy.preflight(load(stack=stack), ready.replace(front=stacks.of(load(stack=stack)).front),
                     remote)


def test_preflight_asks_for_provision_when_the_host_lacks_what_this_version_needs(load):
    """An Apache host provisioned before the catch-all had a 443 vhost lacks mod_ssl: the
    deploy says to provision, instead of failing at stage with Apache's own error."""
    from ops.deploy import deploy
    from ops.errors import OpsError

    s = load(stack="apache-modwsgi")
    remote = type("Remote", (), {"name": "staging9"})()
    ready = facts(provisioned=True, user=True, main_conf=True, front="apache2",
                  unprovisioned=["/etc/apache2/mods-enabled/ssl.load"])
    with pytest.raises(OpsError, match=re.escape(
            "staging9 was provisioned by an older flask-ops (it lacks "
            "/etc/apache2/mods-enabled/ssl.load): run `fab -H staging9 provision` first")):
        deploy.preflight(s, ready, remote)
    assert "/etc/apache2/mods-enabled/ssl.load" in stacks.of(s).provisioned_files()


def test_a_fleet_switches_a_canary_alone_then_the_rest_in_batches():
    order = ["web1", "web2", "web3", "web4", "web5"]
    assert fleet.batches(order, 2) == [["web1"], ["web2", "web3"], ["web4", "web5"]]
    assert fleet.batches(order, 1) == [[h] for h in order]
    assert fleet.batches(order, 10) == [["web1"], ["web2", "web3", "web4", "web5"]]
    assert fleet.batches(["web1"], 3) == [["web1"]] and fleet.batches([], 2) == []


class ScriptHost:
    """A balancer that records the scripts it is given (and answers the reading of the
    certificate's files as a host that has them would)."""

    def __init__(self, name, address):
        self.name, self.address, self.ran = name, address, []

    def run(self, script, what, stdin=None):
        self.ran.append(what)
        out = json.dumps({"/etc/flask-ops/sample/tls/fullchain.pem": "C",
                          "/etc/flask-ops/sample/tls/privkey.pem": "K"}) \
            if what == "certificate copy" and "cmp -s" not in script else "unchanged"
        return type("Result", (), {"stdout": out})()


def test_balancers_get_their_certificate_without_facts(load):
    """Shared ACME for two balancers (forwarding, issue on the first, copies) and one
    balancer's own certbot: the scripts are built and run, host by host."""
    s = load(server_names=["sample.example.com"], tls={"acme": {"email": "ops@example.com"}})
    lbs = [ScriptHost("lb1", "198.18.0.21"), ScriptHost("lb2", "198.18.0.22")]
    fleet.lb_certificates(fleet.lb_settings(s, 2), lbs, out=lambda line: None)
    assert lbs[0].ran[:2] == ["load balancer ACME forwarding", "load balancer certificate"]
    assert lbs[1].ran[:2] == ["load balancer ACME forwarding", "certificate copy"]
    one = [ScriptHost("lb1", "198.18.0.21")]
    fleet.lb_certificates(fleet.lb_settings(s, 1), one, out=lambda line: None)
    assert one[0].ran == ["load balancer certificate"]


def test_maintenance_is_recorded_in_the_history_with_who_switched_it(load):
    from ops.deploy import daytwo_cmds
    script = daytwo_cmds.maintenance_script(load(), True, {"user": "dev", "host": "laptop"})
    assert "maintenance on" in script and "dev" in script


def test_a_front_server_that_cannot_start_says_why(tmp_path):
    """provision's `Job for apache2.service failed ... see systemctl status` is not a reason:
    the front server scripts print the server's last log lines and what holds the web ports,
    and fail; once the server they replace has stopped, they wait until its processes are gone."""
    bin_dir = tmp_path / "bin"
    fakes = {"systemctl": "exit 1",
             "journalctl": "echo 'AH00072: make_sock: could not bind to address [::]:80'",
             "ss": "echo 'LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:((\"nginx\",pid=7,fd=6))'",
             "pgrep": "exit 1"}
    fake_tools(bin_dir, fakes)
    script = ("set -eu\n" + scripts.text("service.sh")
              + "\nsvc_gone nginx\nsvc_must start apache2\necho unreachable\n")
    out = subprocess.run(["bash", "-c", script, "service.sh", "systemd"], capture_output=True,
                         text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=30)
    assert out.returncode == 1 and "unreachable" not in out.stdout
    assert "apache2 did not start; its last log lines:" in out.stderr
    assert "AH00072" in out.stderr and 'users:(("nginx"' in out.stderr


@pytest.mark.parametrize("result, exited, starts", [("resources", 0, 2), ("exit-code", 1, 1)])
def test_a_front_server_systemd_could_not_spawn_is_started_once_more(tmp_path, result, exited,
                                                                    starts):
    """systemd that could not spawn the service at all (Result=resources, "Failed to spawn
    executor": a trixie container in CI) gets one more try; a server that failed by itself
    (exit-code: its config) does not, and its failure is reported."""
    calls = tmp_path / "calls"
    fake_tools(tmp_path / "bin", {
        "systemctl": f'echo "$*" >> {calls}\n'
                     f'case "$1" in show) echo {result} ;; reset-failed) ;; '
                     f'*) [ "$(grep -c "^start" {calls})" -ge 2 ] ;; esac',
        "journalctl": "true", "ss": "true"})
    script = "set -eu\n" + scripts.text("service.sh") + "\nsvc_must start apache2\n"
    out = subprocess.run(["bash", "-c", script, "service.sh", "systemd"], capture_output=True,
                         text=True, env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}, timeout=30)
    tried = calls.read_text().splitlines().count("start apache2")
    assert (out.returncode, tried) == (exited, starts), out.stderr


def fake_tools(bin_dir, fakes):
    """Stand-ins for host tools ({name: bash body}) in bin_dir, for a script run with it first
    on PATH."""
    bin_dir.mkdir(exist_ok=True)
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)


# What the front servers' reload scripts see, one look after another: nginx's workers
# (pgrep), Apache's listening sockets (ss) with the parent 10 among them. At the fourth look
# only processes started by the reload are left (the old worker 6, the old child 11 gone).
RELOAD_LOOKS = {
    "nginx_reload.sh": ("pgrep", ["5 6", "5 6", "6 7", "7 8"], 'printf "%s\\n" $1', {}),
    "apache_reload.sh": ("ss", ["10 11", "10 11", "10 11 12", "10 12"],
                         'for p in $1; do echo "LISTEN 0 511 *:80 *:* '
                         'users:((\\"apache2\\",pid=$p,fd=4))"; done',
                         {"ps": 'case "$4" in 10) echo 1 ;; *) echo 10 ;; esac'}),
}


@pytest.mark.parametrize("reload_rc", [0, 1])
@pytest.mark.parametrize("script", RELOAD_LOOKS)
def test_a_front_server_reload_returns_once_no_old_process_accepts(tmp_path, script, reload_rc):
    """A reload returns once the signal is sent, while the old workers (nginx) or children
    (Apache) still accept with the old configuration (a new site's first request met the old
    catch-all's 403). The script waits until every one accepting was started by the reload;
    a reload that fails fails at once."""
    tool, looks, answer, others = RELOAD_LOOKS[script]
    calls = tmp_path / "calls"
    fake_tools(tmp_path / "bin", {
        "systemctl": f"exit {reload_rc}", **others,
        tool: f'n=$(($(cat {calls} 2>/dev/null || echo 0) + 1)); echo $n > {calls}\n'
              f'set -- {" ".join(repr(w) for w in looks)}; shift $((n > 4 ? 3 : n - 1))\n'
              + answer})
    out = subprocess.run(["bash", "-c", scripts.text(script), script, "systemd"],
                         capture_output=True, text=True, timeout=30,
                         env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert out.returncode == reload_rc and out.stderr == "", out
    assert calls.read_text().strip() == ("4" if reload_rc == 0 else "1")


def test_facts_confirm_a_noop_only_when_the_host_is_as_it_was(load, tmp_path):
    """facts.py records the no-op and releases the lock itself when its facts have the digest
    the deployer remembers; any other digest leaves the lock held and the history alone."""
    s = load()
    history = tmp_path / "history.jsonl"
    args = dict(empty_host_facts_args(tmp_path), state=str(tmp_path))
    digest = HostFacts.parse(run_script("facts.py", json.dumps(args)).stdout).digest
    assert len(digest) == 64
    entry = plan.history_entry("deploy", RECORD, RID, None)

    def ask(remembered, **check):
        request = dict(args, lock={"state": str(tmp_path), "info": {"pid": 1}},
                       noop=dict(plan.noop_check(s, remembered, entry), file=str(history), **check))
        return HostFacts.parse(run_script("facts.py", json.dumps(request)).stdout.splitlines()[-1])

    changed = ask("0" * 64)
    assert not changed.noop and (tmp_path / "lock").is_dir() and not history.exists()
    shutil.rmtree(tmp_path / "lock")
    # a certificate certbot renews: a host without one is never a no-op
    assert not ask(digest, renew_before=86400).noop
    shutil.rmtree(tmp_path / "lock")
    confirmed = ask(digest)
    assert confirmed.noop and confirmed.digest == digest and not (tmp_path / "lock").exists()
    last = json.loads(history.read_text().splitlines()[-1])
    assert (last["result"], last["release"], last["previous"]) == ("no change", RID, None)
    assert last["started"] == confirmed.now


def test_the_noop_record_is_void_once_any_input_changes(load, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    s = load()
    rel = built(s)
    env = appenv.Resolved((("TOKEN", "one"),), ())

    def inputs(s=s, rel=rel, env=env):
        return noop.inputs_digest(s, rel, env, None, None, plan.facts_command(s, rel.files, "req0"))

    assert inputs() == inputs(load(), built(load()))  # the same description, loaded again
    noop.remember("root@h:22", s, inputs(), "f" * 64)
    assert noop.recalled("root@h:22", s, inputs()) == "f" * 64
    assert noop.recalled("root@other:22", s, inputs()) is None
    changed_file = dataclasses.replace(rel, files=rel.files[:-1] + (dataclasses.replace(
        rel.files[-1], content=rel.files[-1].content + "\n"),))
    for other in (inputs(rel=changed_file), inputs(env=appenv.Resolved((("TOKEN", "two"),), ())),
                  inputs(s=load(workers={"mail": {"command": "flask mail"}}))):
        assert other != inputs() and noop.recalled("root@h:22", s, other) is None
    noop.forget("root@h:22", s)
    assert noop.recalled("root@h:22", s, inputs()) is None
