"""The deploy plan is pure: scripts and decisions checked without a host."""

import socket
import time

from ops import deploy, plan, provision, render


def facts(**over):
    base = {"live": {}, "active": {"nginx": "active", "sample-uwsgi": "active"},
            "state": {}, "wheelhouse": True, "venv": True,
            "main_conf": "http {\n    include /etc/nginx/sites-enabled/*;\n}\n"}
    base.update(over)
    return base


def live_for(files):
    return {f.path: plan.sha256(f.content) for f in plan.config_files(files)}


def test_unchanged_configs_mean_reload_not_restart(load):
    s = load()
    files = render.render(s)
    f = facts(live=live_for(files))
    assert plan.changed_configs(files, f) == []
    assert plan.actions(s, files, f) == [("reload", "sample-uwsgi"), ("reload", "nginx")]


def test_a_changed_unit_or_a_stopped_service_means_restart(load):
    s = load()
    files = render.render(s)
    live = live_for(files)
    live["/etc/systemd/system/sample-uwsgi.service"] = "old"
    assert ("restart", "sample-uwsgi") in plan.actions(s, files, facts(live=live))
    stopped = facts(live=live_for(files), active={"nginx": "inactive", "sample-uwsgi": "active"})
    assert ("restart", "nginx") in plan.actions(s, files, stopped)


def test_a_pending_restart_from_a_failed_deploy_is_not_lost(load):
    s = load()
    files = render.render(s)
    f = facts(live=live_for(files), state={"pending": ["restart sample-uwsgi"]})
    assert ("restart", "sample-uwsgi") in plan.actions(s, files, f)
    script = plan.switch_script(s, "R1", [("restart", "sample-uwsgi"), ("reload", "nginx")])
    # Recorded before the first service command, cleared only after the last one.
    assert script.index('"pending": ["restart sample-uwsgi"]') < script.index("systemctl")
    assert script.rindex('"pending": []') > script.rindex("systemctl")


def test_stage_installs_offline_and_checks_in_context(load):
    s = load()
    rel = plan.Release("R1", "d", "req", tuple(render.render(s)), "up.tar.gz")
    script = plan.stage_script(s, rel, facts(wheelhouse=False, venv=False))
    assert "--no-index" in script and "--find-links /srv/sample/shared/wheelhouse/req" in script
    assert "pip install" in script and "index-url" not in script
    assert "nginx -t -q -c /srv/sample/releases/R1/.flask-ops/candidate/main.conf" in script
    assert "uwsgi --ini /srv/sample/releases/R1/.flask-ops/etc/etc/flask-ops/sample/uwsgi.ini --get socket" in script
    assert "systemd-analyze verify" in script
    assert "chown -R root:www-data /srv/sample/releases/R1.partial && chmod -R ug-s,g+rX,g-w,o-w" in script
    assert "-r /srv/sample/releases/R1.partial/.flask-ops/requirements.txt" in script
    cached = plan.stage_script(s, rel, facts())
    assert "pip install" not in cached and "wheelhouse/req/.complete" not in cached


def test_candidate_main_points_at_the_release(load):
    s = load()
    main = plan.candidate_main(s, facts(), "R1")
    assert "include /srv/sample/releases/R1/.flask-ops/candidate/sites/*;" in main
    apache = load(stack="apache-modwsgi")
    main = plan.candidate_main(apache, facts(main_conf="IncludeOptional sites-enabled/*.conf\n"), "R1")
    assert main.strip() == "IncludeOptional /srv/sample/releases/R1/.flask-ops/candidate/sites/*.conf"


def test_switch_is_atomic(load):
    script = plan.switch_script(load(), "R1", [("reload", "nginx")])
    assert "ln -sfn /srv/sample/releases/R1 /srv/sample/current.flask-ops-new" in script
    assert "mv -T /srv/sample/current.flask-ops-new /srv/sample/current" in script
    assert "mv -f /etc/nginx/sites-available/sample.conf.flask-ops-new" in script


def test_restore_without_a_previous_release_takes_the_site_out(load):
    script = plan.restore_script(load(), None, "R1")
    assert "rm -f /etc/nginx/sites-enabled/sample.conf" in script
    assert "rm -rf /srv/sample/releases/R1" in script


def test_finish_keeps_n_releases_and_never_the_current(load):
    script = plan.finish_script(load(), "R9", 5, {"release": "R9"})
    assert "head -n -5" in script and '[ "$r" = R9 ]' in script
    assert "rm -rf /srv/sample/.flask-ops/lock" in script


def test_lock_staleness():
    now = time.time()
    here = socket.gethostname()
    text, stale = deploy.describe_lock({"user": "a", "host": here, "pid": 2**22 + 1,
                                        "started": now}, now)
    assert stale and "that process is gone" in text
    import os
    assert not deploy.describe_lock({"host": here, "pid": os.getpid(), "started": now}, now)[1]
    assert not deploy.describe_lock({"host": "elsewhere", "pid": 1, "started": now - 60}, now)[1]
    assert deploy.describe_lock({"host": "elsewhere", "pid": 1, "started": now - 7200}, now)[1]


def test_provision_is_idempotent_by_construction(load):
    script = provision.provision_script(load())
    for line in script.splitlines()[1:]:
        if "changed:" in line:
            assert line.startswith(("if ", "[ ", "! ", "getent", "id -u", "systemctl is-",
                                    "  echo", "for m", "[ -z", "grep -q"))
    assert "install -d -o sample -g www-data -m 750 /srv/sample/shared/data" in script
    assert "umask 077" in script  # the secrets file is born 0600
    declared = provision.provision_script(load(secrets=["API_TOKEN"]))
    assert "grep -q '^SECRET_KEY=' /srv/sample/shared/env" in declared
    assert "grep -q '^API_TOKEN=' /srv/sample/shared/env" in declared


def test_dry_run_output_masks_secret_values():
    from ops.deploy import mask_secrets
    text = "+SECRET_KEY=abc\n+ uwsgi_param X 1;\n-  DB_PASSWORD: hunter2\nenv API_TOKEN=x y"
    assert mask_secrets(text) == ("+SECRET_KEY=********\n+ uwsgi_param X 1;\n"
                                  "-  DB_PASSWORD: ********\nenv API_TOKEN=******** y")


def test_upstart_service_commands(load):
    s = load(init="upstart")
    lines = plan.service_lines(s, [("restart", s.service), ("reload", "nginx")])
    assert lines[0].startswith("initctl reload-configuration")
    assert lines[1] == plan.NGINX_RELOAD and "systemctl reload nginx" in lines[1]


def test_nginx_reload_waits_until_the_old_workers_stop_accepting(load):
    script = plan.switch_script(load(), "R1", [("reload", "nginx")])
    assert plan.NGINX_RELOAD in script
    # Bounded: at most 100 polls.
    assert "for i in $(seq 1 100)" in plan.NGINX_RELOAD
