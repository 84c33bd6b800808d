"""Day two without a host: the hooks/workers/maintenance keys refuse bad input naming the key,
every stack and init renders worker units the real checkers accept, and the plans run hooks,
restart workers onto the release and remove dropped ones (whole plans pinned in tests/plans)."""

import json
import subprocess
import sys

import pytest

from ops import scripts
from ops.deploy import daytwo_cmds, executor, plan
from ops.errors import OpsError, SettingsError
from ops.targets import checks, render
from test_plan import OLD, RECORD, RID, built, facts, live_for, matches_golden, show

WORKERS = {"mail": "rq worker mail --url=redis://127.0.0.1:6379/0"}
HOOKS = {"before_switch": ["flask db upgrade"], "after_switch": ["flask warm-cache --all"]}


@pytest.mark.parametrize("key, value, named", [
    ("hooks", {"before": ["x"]}, "hooks"),
    ("hooks", {"before_switch": "flask db upgrade\nrm -rf /"}, "hooks.before_switch"),
    ("hooks", {"before_switch": ["'unclosed"]}, "hooks.before_switch"),
    ("hooks", {"timeout": 0}, "hooks.timeout"),
    ("hooks", {"on_after_switch_failure": "ignore"}, "hooks.on_after_switch_failure"),
    ("workers", ["rq worker"], "workers"),
    ("workers", {"Mail": "rq worker"}, "workers"),
    ("workers", {"mail": "rq worker; rm -rf /"}, "workers.mail"),
    ("workers", {"mail": "rq worker $HOME"}, "workers.mail"),
    ("workers", {"mail": "rq 'two words'"}, "workers.mail"),
    ("workers", {"mail": "rq worker %n"}, "workers.mail"),  # a systemd specifier
    ("workers", {"mail": {"command": "rq worker", "stop_timeout": 0}}, "workers.mail.stop_timeout"),
    ("workers", {"mail": {"command": "rq worker", "stop_timeout": "1m"}}, "workers.mail.stop_timeout"),
    ("maintenance", {"allow": ["10.0.0.0/8; deny all"]}, "maintenance.allow"),
    ("maintenance", {"retry_after": "soon"}, "maintenance.retry_after"),
    ("maintenance", {"page": "../outside.html"}, "maintenance.page"),
    ("maintenance", {"page": "no/such/page.html"}, "maintenance.page"),
    ("maintenance", {"pages": "x"}, "maintenance"),
])
def test_bad_day_two_keys_are_refused_naming_the_key(load, key, value, named):
    with pytest.raises(SettingsError) as err:
        load(**{key: value})
    assert str(err.value).startswith(f"{named}:") or f"'{named}'" in str(err.value) \
        or named in str(err.value).split(":")[0], str(err.value)


def test_the_keys_parse_into_values(load):
    s = load(hooks=HOOKS, workers=WORKERS, maintenance={"allow": ["198.18.0.12", "10.0.0.0/8"]})
    assert [h.argv for h in s.hooks.at("before_switch")] == [("flask", "db", "upgrade")]
    assert s.hooks.on_after_switch_failure == "report" and s.hooks.timeout == 600
    assert s.workers[0].argv == ("rq", "worker", "mail", "--url=redis://127.0.0.1:6379/0")
    assert s.maintenance.allow == ("198.18.0.12/32", "10.0.0.0/8")


@pytest.mark.parametrize("stack", ["nginx-uwsgi", "apache-modwsgi"])
@pytest.mark.parametrize("init", ["systemd", "upstart"])
def test_worker_units_and_the_maintenance_page_pass_the_real_checkers(load, stack, init):
    s = load(stack=stack, init=init, workers=WORKERS, maintenance={"allow": ["198.18.0.12"]})
    files = render.render(s)
    assert "app environment" in checks.check_local(files, s)
    unit = next(f for f in files if "sample-worker-mail" in f.path)
    stop = " --stop-timeout 15" if init == "upstart" else ""  # see the test below
    assert f"/usr/bin/python3 /srv/sample/current/flask-ops-run.py{stop} -- {WORKERS['mail']}" \
        in unit.content
    page = next(f for f in files if f.path == "/etc/flask-ops/sample/maintenance.html")
    assert "Down for maintenance" in page.content


@pytest.mark.parametrize("init", ["systemd", "upstart"])
def test_a_stopping_worker_signals_its_main_process_and_waits_its_stop_timeout(load, init):
    """A deploy restarts workers: SIGTERM (a warm shutdown for RQ and Celery) goes to the
    worker alone, never at once to the job's own process, which gets stop_timeout to finish."""
    s = load(init=init, workers={"mail": WORKERS["mail"],
                                 "long": {"command": "rq worker long", "stop_timeout": 600}})
    units = {f.path: f.content.splitlines() for f in render.render(s) if "-worker-" in f.path}
    if init == "systemd":
        mail = units["/etc/systemd/system/sample-worker-mail.service"]
        long = units["/etc/systemd/system/sample-worker-long.service"]
        assert {"KillMode=mixed", "KillSignal=SIGTERM", "TimeoutStopSec=15"} <= set(mail)
        assert {"KillMode=mixed", "TimeoutStopSec=600"} <= set(long)
    else:  # upstart signals the whole group: the runner passes SIGTERM to the worker alone
        mail = units["/etc/init/sample-worker-mail.conf"]
        assert "kill timeout 20" in mail and any(
            line.startswith("exec ") and " --stop-timeout 15 -- " in line for line in mail)
        long = units["/etc/init/sample-worker-long.conf"]
        assert "kill timeout 605" in long and any(" --stop-timeout 600 -- " in x for x in long)


def test_the_project_maintenance_page_is_shipped_verbatim(load, tmp_path):
    s = load(maintenance={"page": "sample_app/templates/index.html"})
    page = next(f for f in render.render(s) if f.path.endswith("maintenance.html"))
    assert page.content == (s.source_dir / "templates/index.html").read_text()


def test_a_deploy_with_hooks_and_workers(load):
    s = load(hooks=HOOKS, workers=WORKERS)
    rel = built(s)
    f = facts(current=OLD, releases=[OLD], live=live_for(rel.files),
              manifest={"digest": "old", "files": []},
              active={"nginx": "active", "sample-uwsgi": "active", "sample-uwsgi.socket": "active", "sample-worker-mail": "active"},
              workers=["sample-worker-mail", "sample-worker-gone"])
    p = plan.deploy_plan(s, rel, f, RECORD)
    assert [step.name for step in p.steps()] == [
        "upload", "stage", "before_switch", "switch", "verify", "after_switch", "smoke"]
    assert ("restart", "sample-worker-mail") in p.todo  # onto the new release, every deploy
    assert "systemctl disable --now --quiet sample-worker-gone" in p.finish.script
    assert "--now --quiet sample-worker-mail" not in p.finish.script
    hook = p.before_switch[0]
    assert hook.stream and f"/srv/sample/releases/{RID}/flask-ops-run.py --env /srv/sample/shared/env" \
        in hook.script and hook.script.rstrip().endswith("-- flask db upgrade 2>&1")
    assert "# before_switch" in "\n".join(executor.dry_run_lines(p))  # --dry-run lists hooks
    assert matches_golden("deploy-hooks-workers", show(p))


def test_an_unchanged_build_with_running_workers_is_still_nothing_to_do(load):
    s = load(workers=WORKERS)
    rel = built(s)
    f = facts(current=RID, releases=[RID], live=live_for(rel.files),
              manifest={"digest": rel.digest}, workers=["sample-worker-mail"],
              enabled={"sample.conf": True},
              active={"nginx": "active", "sample-uwsgi": "active", "sample-uwsgi.socket": "active", "sample-worker-mail": "active"})
    assert plan.deploy_plan(s, rel, f, RECORD).nothing_to_do
    f = f.replace(workers=("sample-worker-mail", "sample-worker-old"))  # a dropped one to remove
    assert not plan.deploy_plan(s, rel, f, RECORD).nothing_to_do


def test_a_failed_deploy_stops_the_workers_it_added(load):
    s = load(workers=WORKERS)
    rel = built(s)
    old_files = [{"path": x.path, "kind": x.kind, "mode": x.mode, "in_release": x.in_release}
                 for x in render.render(load())]
    p = plan.deploy_plan(s, rel, facts(current=OLD, releases=[OLD],
                                       manifest={"digest": "old", "files": old_files}), RECORD)
    assert "systemctl disable --now --quiet sample-worker-mail" in p.restore.script
    assert "rm -f /etc/systemd/system/sample-worker-mail.service" in p.restore.script


def test_history_append_keeps_entries_and_times_them(tmp_path):
    path = tmp_path / "h" / "history.jsonl"
    for result in ("ok", "failed"):
        subprocess.run([sys.executable, "-c", scripts.text("history_append.py"), str(path),
                        json.dumps({"action": "deploy", "result": result, "started": 1.0})],
                       check=True)
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["result"] for e in entries] == ["ok", "failed"]
    assert all(e["seconds"] > 0 and e["at"] > 1 for e in entries)
    rows = daytwo_cmds.history_rows(path.read_text())
    assert "failed" in rows[0] and " ok " in rows[1]  # newest first


def test_exec_and_logs_scripts_quote_what_the_user_typed(load):
    s = load()
    script = daytwo_cmds.exec_script(s, ["python", "-c", "print('$(id)')"])
    assert "-- python -c 'print('\"'\"'$(id)'\"'\"')'" in script
    with pytest.raises(OpsError):
        daytwo_cmds.exec_script(s, [])
    with pytest.raises(OpsError):
        daytwo_cmds.logs_script(s, since="today; rm -rf /")
    assert "--since '10 min ago'" in daytwo_cmds.logs_script(s, since="10 min ago")


@pytest.fixture
def world_readable_tmp():
    """A directory `nobody` can reach (pytest's own tmp is root's alone)."""
    import shutil
    import tempfile
    from pathlib import Path
    path = Path(tempfile.mkdtemp(prefix="flask-ops-runner-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def runner(load, tmp_path):
    """The release's runner as rendered, in a fake release run by root, dropping to nobody."""
    import dataclasses
    s = dataclasses.replace(load(), user="nobody", group="nogroup", base_dir=str(tmp_path))
    path = tmp_path / "releases" / "R1" / "flask-ops-run.py"
    path.parent.mkdir(parents=True)
    path.write_text(next(f for f in render.render(s) if f.path == s.run_file).content)
    env = tmp_path / "env"
    env.write_text("GREETING=a $dollar 'and' quotes\n")
    env.chmod(0o644)
    for d in (path.parent, path.parent.parent):
        d.chmod(0o755)
    return path, env


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="drops privileges: needs root")
def test_the_runner_drops_to_the_app_user_with_the_apps_environment(load, world_readable_tmp):
    path, env = runner(load, world_readable_tmp)
    out = subprocess.run([sys.executable, str(path), "--env", str(env), "--", "sh", "-c",
                          'echo "$(id -un) $PWD $FLASK_APP $FLASK_OPS_RELEASE [$GREETING]"'],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == f"nobody {path.parent} app:app R1 " \
                                 "[a $dollar 'and' quotes]", out.stderr


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="drops privileges: needs root")
def test_the_runner_stops_a_hook_that_runs_too_long_and_everything_it_started(
        load, world_readable_tmp):
    import time
    path, env = runner(load, world_readable_tmp)
    marker = f"flask-ops-test-{time.time_ns()}"
    start = time.monotonic()
    out = subprocess.run([sys.executable, str(path), "--env", str(env), "--timeout", "1", "--",
                          "sh", "-c", f"sleep 300 & exec sleep 301 # {marker}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 124 and "still running after 1s" in out.stderr
    assert time.monotonic() - start < 10
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert left.stdout == ""  # the background sleep went with it (its process group)


def test_a_worker_runs_only_on_the_app_hosts_it_names(load):
    from ops.config import settings
    roles = {"lb": ["lb1"], "app": ["web1", "root@web2:22"]}
    s = load(roles=roles, workers={"mail": {"command": "rq worker mail", "hosts": ["web2"]},
                                   "beat": "rq worker beat"})
    web1, web2 = settings.for_host(s, "web1"), settings.for_host(s, "web2")
    assert [w.name for w in web1.workers] == ["beat"] and web1.workers_elsewhere == ("sample-worker-mail",)
    assert web2 is s  # runs every worker
    rel = built(s)
    p = plan.deploy_plan(web1, rel, facts(workers=["sample-worker-mail"]), RECORD)
    assert "sample-worker-mail.service" not in p.activate[0].script  # neither installed...
    assert "systemctl disable --now --quiet sample-worker-mail" in p.finish.script  # ...nor kept
    assert ("restart", "sample-worker-beat") in p.todo
    with pytest.raises(SettingsError, match="workers.mail.hosts"):
        load(roles=roles, workers={"mail": {"command": "rq worker", "hosts": ["web3"]}})


def test_logs_read_each_init_systems_own_place(load):
    """systemd: the journal of the app's units, then the site's logs; upstart 1.12 has no
    journal: its `console log` file per job, next to the site's logs."""
    systemd = daytwo_cmds.logs_script(load(workers={"mail": "python -m mail"}), 20)
    assert "journalctl --no-pager -o short-iso -n 20 -u sample-uwsgi -u sample-worker-mail" in systemd
    assert "/var/log/upstart" not in systemd
    upstart = daytwo_cmds.logs_script(load(init="upstart", workers={"mail": "python -m mail"}), 20)
    assert "journalctl" not in upstart
    assert ("/var/log/nginx/sample.access.log /var/log/nginx/sample.error.log "
            "/var/log/upstart/sample-uwsgi.log /var/log/upstart/sample-worker-mail.log") in upstart
