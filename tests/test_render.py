"""Every combination renders, and every rendered file passes its real server's checker."""

import dataclasses
import itertools
import os
import re
import subprocess
import sys

import pytest

from ops.config import keys, settings
from ops.errors import CheckError
from ops.targets import checks, frontservers, render, templating

from conftest import ROOT

COMBOS = [(stack, shape, init)
          for stack, shape, init in itertools.product(keys.STACKS, keys.NGINX_SHAPES,
                                                      keys.INITS)
          if stack != "nginx-gunicorn" or init == "systemd"]


def by_kind(files, kind):
    return [f for f in files if f.kind == kind]


def site(files):
    return next(f.content for f in files if f.path.endswith("/sample.conf"))


@pytest.mark.parametrize("stack, shape, init", COMBOS)
def test_every_combination_passes_the_real_checkers(load, stack, shape, init):
    s = load(stack=stack, nginx=shape, init=init)
    files = render.render(s)
    expected = ({"apache", "wsgi", "app environment"} if stack == "apache-modwsgi"
                else {"nginx", "wsgi", "systemd", "app environment"} if stack == "nginx-gunicorn"
                else {"nginx", "wsgi", "uwsgi", "systemd" if init == "systemd" else "upstart",
                      "app environment"})
    assert set(checks.check_local(files, s)) == expected
    for f in files:
        assert f.content.startswith(("# " + render.MANAGED, "; " + render.MANAGED,
                                     "<!-- " + render.MANAGED))


def test_gunicorn_needs_systemds_socket(load):
    with pytest.raises(settings.SettingsError, match="deploy.init"):
        load(stack="nginx-gunicorn", init="upstart")


@pytest.mark.parametrize("shape", keys.NGINX_SHAPES)
def test_websockets_upgrade_at_every_tier_of_every_shape(load, shape):
    s = load(stack="nginx-gunicorn", nginx=shape, websockets=["/ws"], streaming=["/time"])
    site = next(f.content for f in render.render(s) if f.path.endswith("/sample.conf"))
    tiers = 2 if shape != "default" else 1
    # exact path and what lies below it, at each tier
    assert site.count("proxy_set_header Upgrade $http_upgrade;") == 2 * tiers
    assert site.count("proxy_set_header Connection $sample_connection;") == 2 * tiers
    assert "uwsgi_pass" not in site and site.count("server unix:/run/sample/gunicorn.sock") == 1


@pytest.mark.parametrize("stack, reason", [("nginx-uwsgi", "cannot upgrade a connection through uwsgi_pass"),
                                           ("apache-modwsgi", "mod_wsgi cannot hand")])
def test_websockets_only_where_they_can_work(load, stack, reason):
    with pytest.raises(settings.SettingsError, match=reason):
        load(stack=stack, websockets=["/ws"])


def test_gunicorn_is_refused_on_upstart_with_the_reason(load):
    with pytest.raises(settings.SettingsError, match="init.*systemd with stack nginx-gunicorn "
                       r"\(its socket unit keeps requests waiting"):
        load(stack="nginx-gunicorn", init="upstart")


def test_gunicorn_runs_from_the_apps_venv_unless_the_project_pins_its_own(load, tmp_path):
    from ops.build import build
    s = load(stack="nginx-gunicorn", websockets=["/ws"])
    assert build.requirements(s).lines[-1] == "gunicorn==23.0.0"
    assert "gunicorn" not in " ".join(build.requirements(load()).lines)
    unit = next(f.content for f in render.render(s) if f.path.endswith("sample-gunicorn.service"))
    assert " -- gunicorn --preload --worker-class gthread " in unit
    assert "sample-gunicorn.socket" in unit and "Type=notify" in unit


def test_render_tree_mirrors_host_paths(load, tmp_path):
    render.write_tree(render.render(load()), tmp_path)
    assert (tmp_path / "etc/nginx/sites-available/sample.conf").is_file()
    assert (tmp_path / "etc/nginx/sites-available/000-flask-ops-catchall-80.conf").is_file()
    assert (tmp_path / "etc/flask-ops/sample/uwsgi.ini").is_file()
    assert (tmp_path / "etc/systemd/system/sample-uwsgi.service").is_file()
    render.write_tree(render.render(load(init="upstart")), tmp_path / "u")
    assert (tmp_path / "u/etc/init/sample-uwsgi.conf").is_file()
    render.write_tree(render.render(load(stack="apache-modwsgi")), tmp_path / "a")
    assert (tmp_path / "a/etc/apache2/sites-available/sample.conf").is_file()
    assert (tmp_path / "a/srv/sample/current/sample.wsgi").is_file()


def test_without_streaming_paths_harakiri_is_global(load):
    ini = by_kind(render.render(load(streaming=[], smoke_stream="")), "uwsgi")[0].content
    assert "harakiri = 60" in ini.splitlines() and "route" not in ini


def test_uwsgi_ini_production_baseline(load):
    ini = by_kind(render.render(load()), "uwsgi")[0].content
    for line in ["strict = true", "master = true", "need-app = true",
                 "die-on-term = true", "enable-threads = true",
                 # harakiri for every request but the streaming path's (/time)
                 "route = ^/time(/|$) last:", "route-run = harakiri:60",
                 "max-requests = 1000", "wsgi-file = /srv/sample/current/sample.wsgi",
                 "socket = /run/sample/uwsgi.sock", "listen = 1024"]:
        assert line in ini.splitlines(), line
    # systemd owns the socket and starts uWSGI as the app: uWSGI neither changes user nor
    # removes the socket file (requests wait in it while uWSGI restarts)
    assert not [line for line in ini.splitlines()
                if line.startswith(("uid", "gid", "chown-socket", "vacuum", "daemonize"))]


def test_upstart_ini_makes_its_socket_as_root_then_drops_to_the_app(load):
    ini = by_kind(render.render(load(init="upstart")), "uwsgi")[0].content
    for line in ["vacuum = true", "uid = sample", "gid = sample",
                 "chown-socket = sample:www-data", "chmod-socket = 660", "listen = 1024"]:
        assert line in ini.splitlines(), line


def test_systemd_units_socket_activated_as_the_app(load):
    files = render.render(load(listen_queue=4096))
    units = {f.path.rsplit("/", 1)[1]: f.content.splitlines() for f in by_kind(files, "systemd")}
    socket, service = units["sample-uwsgi.socket"], units["sample-uwsgi.service"]
    for line in ["ListenStream=/run/sample/uwsgi.sock", "SocketUser=sample",
                 "SocketGroup=www-data", "SocketMode=0660", "Backlog=4096"]:
        assert line in socket, line
    for line in ["Type=notify", "User=sample", "Group=sample", "Requires=sample-uwsgi.socket",
                 "KillSignal=SIGTERM", "Restart=on-failure", "ReadWritePaths=-/srv/sample/shared/data",
                 "ExecStart=/usr/bin/uwsgi --ini /etc/flask-ops/sample/uwsgi.ini"]:
        assert line in service, line
    # The service's RuntimeDirectory= holds uWSGI's master FIFO only: were it the socket's
    # directory, it would be removed, socket and all, each time uWSGI stops.
    assert [line for line in service if line.startswith("RuntimeDirectory")] == [
        "RuntimeDirectory=sample-uwsgi", "RuntimeDirectoryMode=0700"]
    assert "master-fifo = /run/sample-uwsgi/master.fifo" in by_kind(files, "uwsgi")[0].content


@pytest.mark.parametrize("stack", ["nginx-uwsgi", "apache-modwsgi"])
def test_every_rendered_service_scores_at_most_2_in_systemd_analyze_security(load, stack, tmp_path):
    """`systemd-analyze security --offline=true`: 0 is locked down, 10 is exposed; the
    uWSGI unit scored 8.9 before it ran as the app with systemd's sandboxing."""
    files = render.render(load(stack=stack, workers={"mail": "flask send-mail"}))
    services = [f for f in by_kind(files, "systemd") if f.path.endswith(".service")]
    assert len(services) == (2 if stack == "nginx-uwsgi" else 1)
    for f in services:
        path = tmp_path / f.path.rsplit("/", 1)[1]
        path.write_text(f.content)
        out = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                              str(path)], capture_output=True, text=True)
        score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout)
        assert score, out.stdout + out.stderr
        assert float(score.group(1)) <= 2.0, f"{path.name}: {score.group(1)}\n{out.stdout}"


def test_upstart_job_uses_its_own_socket_dir(load):
    files = render.render(load(init="upstart"))
    job = by_kind(files, "upstart")[0].content
    assert "exec /usr/bin/uwsgi --ini" in job
    assert "socket = /srv/sample/shared/run/uwsgi.sock" in by_kind(files, "uwsgi")[0].content
    assert "unix:/srv/sample/shared/run/uwsgi.sock" in site(files)


@pytest.mark.parametrize("shape", keys.NGINX_SHAPES)
def test_nginx_security_defaults(load, shape):
    files = render.render(load(nginx=shape))
    conf = site(files)
    catchall = files[0].content
    assert "default_server" in catchall and "return 444;" in catchall
    assert "default_server" not in conf
    assert "location /static/ {" in conf and "alias /srv/sample/current/collected_static/static/;" in conf
    assert "location ~ /\\.(?!well-known/)" in conf
    assert conf.count("server_tokens off;") == (2 if shape != "default" else 1)
    for header in ["X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"]:
        assert re.search(rf'add_header {header} "[^"]+" always;', conf)
    # No add_header inside the public server's locations: it would drop the inherited ones.
    public = conf[conf.index("# Public tier."):]
    for where, block in re.findall(r"location ([^{]+)\{([^}]*)\}", public):
        if where.strip() in ("= /__flask-ops/maintenance.html", "^~ /__flask-ops/errors/",
                             "/static/", "/static/reports/"):
            # the maintenance and error pages and static files repeat every server header,
            # then add their own (Retry-After, Cache-Control)
            for header in ["X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"]:
                assert f"add_header {header} " in block
            continue
        assert "add_header" not in block
    assert "$proxy_add_x_forwarded_for" not in conf
    assert "uwsgi_param HTTP_X_FORWARDED_FOR $remote_addr;" in conf
    # nginx's own errors get our pages, in each tier (an inner tier's 502 reaches the client)
    assert conf.count("error_page 502 /__flask-ops/errors/502.html;") == (2 if shape != "default" else 1)


def test_error_pages_are_ours_or_the_projects_verbatim(load):
    files = {f.path: f.content for f in render.render(load())}
    for code in (500, 502, 504):
        page = files[f"/etc/flask-ops/sample/errors/{code}.html"]
        assert f"Error {code}" in page and "nginx" not in page.lower()
    s = load(error_pages={502: "sample_app/templates/upload.html"})
    files = {f.path: f.content for f in render.render(s)}
    assert files["/etc/flask-ops/sample/errors/502.html"] == (
        ROOT / "sample_app/templates/upload.html").read_text()
    assert "Error 504" in files["/etc/flask-ops/sample/errors/504.html"]


@pytest.mark.parametrize("pages, message", [
    ({503: "x.html"}, r"error_pages\.503: .*500, 502, 504"),
    ({502: "../outside.html"}, r"error_pages\.502: .*inside the project"),
    ({502: "/etc/passwd"}, r"error_pages\.502: .*inside the project"),
    ({502: "no/such/page.html"}, r"error_pages\.502: .*an existing HTML file"),
    ("502.html", r"error_pages: .*a mapping"),
])
def test_bad_error_pages_are_refused_naming_the_key(load, pages, message):
    with pytest.raises(settings.SettingsError, match=message):
        load(error_pages=pages)


def test_streaming_locations_are_unbuffered_at_every_tier(load):
    conf = site(render.render(load(nginx="proxy")))
    inner = conf[:conf.index("# Public tier.")]
    public = conf[conf.index("# Public tier."):]
    time_inner = re.search(r"location = /time \{([^}]*)\}", inner).group(1)
    assert "uwsgi_buffering off;" in time_inner
    assert 'add_header X-Accel-Buffering "no";' in time_inner
    assert "uwsgi_pass_header X-Accel-Buffering;" in inner
    assert "gzip off;" in re.search(r"location = /time \{([^}]*)\}", public).group(1)
    one_tier = site(render.render(load()))
    assert "uwsgi_buffering off;" in re.search(r"location = /time \{([^}]*)\}", one_tier).group(1)
    # The path and what lies below it, never a bare prefix (that would take /timeline too).
    for conf in (inner, public, one_tier):
        assert "location /time/ {" in conf and "location /time {" not in conf


def test_cache_shape_caches_only_what_is_safe(load):
    conf = site(render.render(load(nginx="cache")))
    assert "proxy_cache_path /var/cache/nginx/sample levels=1:2 keys_zone=sample_cache:10m" in conf
    assert "proxy_cache_valid 200 10m;" in conf and "proxy_cache_valid any" not in conf
    assert "proxy_cache_bypass $cookie_session $http_authorization;" in conf
    assert "proxy_no_cache $cookie_session $http_authorization;" in conf
    assert "add_header X-Cache-Status $upstream_cache_status always;" in conf
    assert "proxy_ignore_headers" not in conf  # Set-Cookie responses stay uncached
    assert "proxy_cache off;" in re.search(r"location = /time \{([^}]*)\}",
                                           conf[conf.index("# Public tier."):]).group(1)


def test_apache_site_daemon_mode(load):
    files = render.render(load(stack="apache-modwsgi"))
    conf = site(files)
    assert ("WSGIDaemonProcess sample python-home=/srv/sample/current/venv "
            "home=/srv/sample/current lang=C.UTF-8 locale=C.UTF-8 processes=4 threads=1 "
            "display-name=%{GROUP} user=sample group=sample") in conf
    for line in ["WSGIProcessGroup sample", "WSGIApplicationGroup %{GLOBAL}",
                 "WSGIRestrictEmbedded On", "Require all granted",
                 "Alias /static/ /srv/sample/current/collected_static/static/",
                 # the daemon imports the app at start, not on its first request
                 "WSGIScriptAlias / /srv/sample/current/sample.wsgi process-group=sample "
                 "application-group=%{GLOBAL}"]:
        assert line in conf, line
    assert "Order allow,deny" not in conf
    wsgi = by_kind(files, "wsgi")[0].content
    assert "from app import app as app_target" in wsgi and "\napplication = app_target\n" in wsgi


def test_rendering_is_the_same_in_every_process():
    """Two deploys of one description render byte-identical files, or a no-op deploy would
    reload the servers: no set's order or hash seed may reach a file (three processes, three
    seeds, a description with every list- and mapping-valued key that reaches a config)."""
    probe = (
        "import hashlib, sys; sys.path.insert(0, 'tests'); from conftest import sample_settings; "
        "from ops.targets import render; s = sample_settings(nginx='cache', server_names=['a.test', "
        "'b.test', 'c.test'], streaming=['/time', '/feed'], trusted_proxies=['198.18.0.1', "
        "'198.18.0.2'], secrets=['API_TOKEN', 'DB_URL'], env={'B': '2', 'A': '1'}, "
        "workers={'mail': 'python -m mail', 'jobs': 'python -m jobs'}); "
        "print(hashlib.sha256(repr([(f.path, f.content, f.mode) for f in render.render(s)])"
        ".encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                              text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}
                              ).stdout for seed in ("1", "2", "3")}
    assert len(digests) == 1 and len(digests.pop().strip()) == 64


def test_strict_undefined_fails_loudly(load):
    with pytest.raises(Exception, match="undefined"):
        templating.render("uwsgi/uwsgi.ini.j2", load())  # `plugin` not passed


# ---- the checkers are real: they refuse broken files ---------------------------------------

def broken(files, kind, old, new):
    out = [dataclasses.replace(f, content=f.content.replace(old, new, 1))
           if f.kind == kind else f for f in files]
    assert out != files, f"{old!r} not found in any {kind} file"
    return out


@pytest.mark.parametrize("stack, kind, old, new, checker", [
    ("nginx-uwsgi", "nginx", "server_tokens off;", "server_tokens maybe;", "nginx -t"),
    ("nginx-uwsgi", "nginx", "listen 80;", "listen 80 default_server;", "nginx -t"),
    ("nginx-uwsgi", "uwsgi", "need-app = true", "need-ap = true", "uwsgi (strict)"),
    ("nginx-uwsgi", "systemd", "Type=notify", "Type=notifyy", "systemd-analyze verify"),
    ("nginx-uwsgi", "systemd", "RestartSec=", "RestartSecs=", "systemd-analyze verify"),
    ("apache-modwsgi", "apache", "WSGIProcessGroup sample", "WSGIProcesGroup sample",
     "apache2ctl -t"),
    ("apache-modwsgi", "wsgi", "import sys", "import sys(", "python compile"),
])
def test_checkers_refuse_a_broken_file(load, stack, kind, old, new, checker):
    s = load(stack=stack)
    with pytest.raises(CheckError) as err:
        checks.check_local(broken(render.render(s), kind, old, new), s)
    assert err.value.checker == checker


def test_local_checks_leave_no_logs_behind(load, tmp_path):
    s = load(app_name="leaktest", nginx="cache")
    checks.check_local(render.render(s), s)
    assert not list(__import__("pathlib").Path("/var/log/nginx").glob("leaktest*"))


def test_candidate_config_replaces_live_sites(tmp_path):
    live = "http {\n    include /etc/nginx/conf.d/*.conf;\n    include /etc/nginx/sites-enabled/*;\n}\n"
    nginx = frontservers.Nginx()
    assert "include /tmp/x/*;" in nginx.candidate_main(live, "/tmp/x")
    assert "sites-enabled" not in nginx.candidate_main(live, "/tmp/x")
    with pytest.raises(Exception, match="sites-enabled"):
        nginx.candidate_main("http {}", "/tmp/x")


def test_fab_check_task_reports_each_checker():
    from conftest import ROOT
    out = subprocess.run([str(ROOT / ".venv/bin/fab"), "check"], cwd=ROOT, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert out.returncode == 0, out.stdout
    assert out.stdout.splitlines() == ["ok  nginx", "ok  wsgi", "ok  uwsgi", "ok  systemd",
                                       "ok  app environment"]


@pytest.mark.parametrize("shape", keys.NGINX_SHAPES)
def test_load_balancer_and_fleet_app_configs_pass_nginx(load, shape):
    s = load(nginx=shape)
    lb = render.render_lb(s, [render.Upstream("198.18.0.11"), render.Upstream("198.18.0.12", True)])
    assert checks.check_local(lb, s) == ["nginx"]
    conf = lb[1].content
    assert "server 198.18.0.11:80 max_fails=3 fail_timeout=10s;" in conf
    assert "server 198.18.0.12:80 max_fails=3 fail_timeout=10s down;" in conf
    assert "keepalive 16;" in conf and "uwsgi_pass" not in conf and "collected_static" not in conf
    assert ("proxy_cache sample_cache;" in conf) == (shape == "cache")
    app = render.render(s, render.Fleet(("198.18.0.13",)))
    assert checks.check_local(app, s)
    assert "set_real_ip_from 198.18.0.13;" in site(app)


def test_fleet_app_host_streams_through_the_balancer_without_losing_headers(load):
    conf = site(render.render(load(), render.Fleet(("198.18.0.13",))))
    block = re.search(r"location = /time \{([^}]*)\}", conf).group(1)
    assert 'add_header X-Accel-Buffering "no";' in block
    assert 'add_header X-Frame-Options "SAMEORIGIN" always;' in block  # repeated, not dropped


@pytest.mark.parametrize("stack, shape", [("nginx-uwsgi", "cache"), ("apache-modwsgi", "default")])
def test_an_app_with_only_the_required_keys_renders_and_passes_the_checkers(stack, shape):
    """No health URL, no streaming paths: nothing in a template may assume the sample's."""
    s = settings.load({"app_name": "shop", "source": "sample_app", "wsgi": "app:app",
                       "server_names": ["shop.test"], "stack": stack, "nginx": shape},
                      project_root=ROOT)
    files = render.render(s)
    assert checks.check_local(files, s)
    assert "healthz" not in "".join(f.content for f in files)


@pytest.mark.parametrize("shape", keys.NGINX_SHAPES)
@pytest.mark.parametrize("fmt", keys.ACCESS_LOG_FORMATS)
def test_request_id_reaches_app_log_and_client_in_every_shape(load, shape, fmt):
    s = load(nginx=shape, access_log=fmt)
    files = render.render(s)
    conf = site(files)
    assert f"access_log /var/log/nginx/sample.access.log sample_{fmt};" in conf
    assert f"log_format sample_{fmt} " in conf and "$sample_request_id" in conf
    assert 'add_header X-Request-ID "$sample_request_id" always;' in conf
    if shape == "default":
        assert "uwsgi_param HTTP_X_REQUEST_ID $sample_request_id;" in conf
    else:  # the public tier hands its id to the inner tier, which hands it to the app
        assert "proxy_set_header X-Request-ID $sample_request_id;" in conf
        assert "uwsgi_param HTTP_X_REQUEST_ID $http_x_request_id;" in conf
    # Without trusted proxies, a client's own X-Request-ID is never believed.
    assert '"0:$http_x_request_id" $sample_request_id' in conf
    checks.check_local(files, s)  # nginx -t accepts the formats


def test_json_access_log_is_refused_on_apache(load):
    with pytest.raises(settings.SettingsError, match=r"access_log: .*json needs an nginx stack"):
        load(stack="apache-modwsgi", access_log="json")


def test_the_cache_shape_keys_its_cache_by_what_the_build_ships(tmp_path):
    """nginx has no purge: the site's cache key names the build (code and dependencies), so
    a code change starts an empty cache while an unchanged build keeps the live config (no
    reload on a no-op), and the real nginx checker takes the key."""
    from conftest import make_project
    from ops.build import release

    def site(s):
        _, _, files, _, _ = release.stage_tree(s)
        keys = [m for f in files for m in re.findall(r"proxy_cache_key (.*);", f.content)]
        assert len(keys) == 1, keys
        return keys[0]

    s = make_project(tmp_path / "a", config={"nginx": "cache"})
    first = site(s)
    assert re.fullmatch(r'"\$scheme\$host\$request_uri [0-9a-f]{12}"', first), first
    assert site(s) == first  # the same build, the same key
    changed = make_project(tmp_path / "b", {"app.py": ("import datetime", "import datetime  # v2")},
                           {"nginx": "cache"})
    assert site(changed) != first
    _, _, files, _, _ = release.stage_tree(changed)
    checks.check_local(files, changed)
