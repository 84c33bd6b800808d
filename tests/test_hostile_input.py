"""Hostile and careless input, as a user types it: every case is refused with exit 1 and one
line naming the key or the file, never a traceback, and nothing is written or deleted outside
the output directory the user named.

Runs `fab` in-process (the real Fabric program, our fabfile, our config loading), so each
case costs milliseconds and the whole suite stays in the fast tier.
"""

import os
import re
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
import yaml

from ops import build, fleet, plan, release, render, requirements, tree
from ops.errors import OpsError

from conftest import SAMPLE, sample_settings

BASE = {"app_name": "hostile", "source": "app", "wsgi": "app:app",
        "server_names": ["hostile.test"]}


# ------------------------------------------------------------------------------ helpers

def fab_here(cwd, *argv):
    """Run `fab ARGV` in cwd in this process: (exit code, stdout, stderr)."""
    from fabric.main import program
    out, err, before = StringIO(), StringIO(), os.getcwd()
    os.chdir(cwd)
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            program.run(["fab", *argv], exit=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(before)
    return code, out.getvalue(), err.getvalue()


def snapshot(root):
    """Every path under root with its kind, size, mode and content digest."""
    state = {}
    for path in sorted(Path(root).rglob("*")):
        st = path.lstat()
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        state[str(path.relative_to(root))] = (st.st_mode, st.st_size, hash(data),
                                              os.readlink(path) if path.is_symlink() else None)
    return state


@pytest.fixture
def proj(tmp_path):
    """A project: fabfile, fabric.yaml, the sample app as `app/`, and a sibling `outside/`
    directory holding a file that must never change."""
    root = tmp_path / "project"
    shutil.copytree(SAMPLE, root / "app", ignore=shutil.ignore_patterns("__pycache__", "build"))
    (root / "fabfile.py").write_text("from ops.tasks import ns  # noqa: F401\n")
    write_config(root, BASE)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_text("untouched\n")
    return root


def write_config(root, deploy, extra=None):
    (root / "fabric.yaml").write_text(yaml.safe_dump({"deploy": deploy, **(extra or {})}))


def refused(root, *argv, names, out_dir=None):
    """Run fab; assert a refusal that names one of `names`, changing nothing outside out_dir."""
    world = root.parent
    before = snapshot(world)
    code, stdout, stderr = fab_here(root, *argv)
    after = snapshot(world)
    if out_dir is not None:
        prefix = str(Path(out_dir).relative_to(world))
        before = {k: v for k, v in before.items() if not k.startswith(prefix)}
        after = {k: v for k, v in after.items() if not k.startswith(prefix)}
    assert code == 1, (code, stdout, stderr)
    message = stderr.strip()
    assert "Traceback" not in stdout + stderr
    assert len(message.splitlines()) == 1, message
    assert message.startswith("flask-ops:"), message
    assert any(n in message for n in names), (names, message)
    assert after == before, sorted(set(after.items()) ^ set(before.items()))[:5]
    return message


# ------------------------------------------------------------------------ config files

CONFIG_FILES = {
    "misspelled section": ("deplyo:\n  app_name: x\n", "'deplyo'"),
    "empty deploy": ("deploy:\n", "'deploy' is empty"),
    "deploy is a list": ("deploy:\n  - app_name\n", "'deploy' is a list"),
    "deploy is a number": ("deploy: 3\n", "'deploy' is a int"),
    "top level list": ("- deploy\n", "not a mapping"),
    "syntax error": ("deploy: [app_name\n", "line 2"),
    "tab indentation": ("deploy:\n\tapp_name: x\n", "line 2"),
    "duplicate key": ("deploy:\n  app_name: a\n  app_name: b\n", "duplicate key 'app_name'"),
    "duplicate section": ("deploy: {}\ndeploy: {}\n", "duplicate key 'deploy'"),
    "alias bomb": ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c]\n",
                   "anchors"),
    "python tag": ("deploy: !!python/object/apply:os.system ['true']\n", "line 1"),
    "no deploy section": ("run:\n  echo: true\n", "no 'deploy:' section"),
    "deploy with a non-string key": ("deploy:\n  1: x\n", "key 1 is not a name"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_FILES))
def test_malformed_config_files_are_refused(proj, case):
    text, expected = CONFIG_FILES[case]
    (proj / "fabric.yaml").write_text(text)
    message = refused(proj, "render", "--out", str(proj / "out"), names=["fabric.yaml", "deploy"])
    assert expected in message


def test_non_utf8_and_oversized_config_files(proj):
    (proj / "fabric.yaml").write_bytes(b"deploy:\n  app_name: \xff\xfe\n")
    assert "not UTF-8" in refused(proj, "render", names=["fabric.yaml"])
    (proj / "fabric.yaml").write_text("deploy: {app_name: x}\n" + "#" * (1024 * 1024 + 10))
    assert "larger than" in refused(proj, "render", names=["fabric.yaml"])


def test_missing_runtime_config_is_refused_not_defaulted(proj):
    message = refused(proj, "-f", "missing.yaml", "render", "--out", str(proj / "out"),
                      names=["missing.yaml"])
    assert "no such config file" in message


def test_runtime_config_is_read_strictly_too(proj):
    (proj / "prod.yaml").write_text("deploy:\n  server_names: [a.test]\n  server_names: [b.test]\n")
    assert "duplicate key" in refused(proj, "-f", "prod.yaml", "render", names=["prod.yaml"])
    (proj / "prod.json").write_text('{"deploy": {"app_name": "a", "app_name": "b"}}')
    assert "duplicate key" in refused(proj, "-f", "prod.json", "render", names=["prod.json"])


def test_a_valid_runtime_overlay_still_works(proj):
    (proj / "prod.yaml").write_text("deploy:\n  server_names: [prod.test]\n")
    code, out, err = fab_here(proj, "-f", "prod.yaml", "render", "--out", str(proj / "out"))
    assert code == 0, err
    site = (proj / "out/etc/nginx/sites-available/hostile.conf").read_text()
    assert "server_name prod.test;" in site


# ------------------------------------------------------------------------------ values

BAD_VALUES = [
    # dangerous targets
    ("base_dir", "/tmp"), ("base_dir", "/tmp/app"), ("base_dir", "/root"), ("base_dir", "/etc"),
    ("base_dir", "/etc/app"), ("base_dir", "/"), ("base_dir", "/srv"), ("base_dir", "/usr/local"),
    ("base_dir", "/var/tmp/x"), ("base_dir", "/var/log/app"), ("base_dir", "/proc/self"),
    ("base_dir", "srv/app"), ("base_dir", "/srv/../etc"), ("base_dir", "/srv/a b"),
    ("user", "root"), ("user", "www-data"), ("user", "nobody"), ("user", "systemd-network"),
    ("user", "a;b"), ("user", "Root"), ("group", "root"), ("group", "sudo"), ("group", "a b"),
    ("app_name", "root"), ("app_name", "daemon"), ("app_name", "Bad"), ("app_name", "a;b"),
    ("app_name", ""), ("app_name", 123), ("app_name", "a-b"), ("app_name", "../x"),
    ("secrets", ["LD_PRELOAD"]), ("secrets", ["PATH"]), ("secrets", ["PYTHONHOME"]),
    ("secrets", ["PYTHONPATH"]), ("secrets", ["UWSGI_INI"]), ("secrets", ["HOME"]),
    ("secrets", ["lower"]), ("secrets", ["A B"]), ("secrets", "NOT;A;NAME"),
    ("upstream_port", 22), ("upstream_port", 80), ("upstream_port", 1023), ("upstream_port", 0),
    ("upstream_port", 70000), ("upstream_port", "8001"), ("upstream_port", True),
    ("listen_port", 22), ("listen_port", 0), ("listen_port", 65536), ("listen_port", 8.5),
    ("static_url", "/static/../"), ("static_url", "/static/./"), ("static_url", "/"),
    ("static_url", "static/"), ("static_url", "/static"), ("static_url", "/st atic/"),
    # injection through strings that reach configs
    ("server_names", ["a;b"]), ("server_names", ["x\nlisten 81"]), ("server_names", ["a b"]),
    ("server_names", []), ("server_names", ["{"]), ("server_names", ["$host"]),
    ("server_names", ["a.test;"]), ("server_names", "x'y"), ("server_names", [["nested"]]),
    ("wsgi", "app"), ("wsgi", "app:app;x"), ("wsgi", "os:system(1)"), ("wsgi", "a b:c"),
    ("source", "../elsewhere"), ("source", "/etc"), ("source", "missing"), ("source", "app;x"),
    ("requirements", "../requirements.txt"), ("requirements", "missing.txt"),
    ("requirements", "/etc/passwd"), ("templates", "../t"), ("templates", "missing"),
    ("processes", 0), ("processes", 65), ("processes", "4"), ("processes", -1), ("threads", 0),
    ("harakiri", 0), ("drain_timeout", 0), ("keep_releases", 1), ("max_requests", 0),
    ("client_max_body_size", "10m;"), ("client_max_body_size", "big"),
    ("cache_ttl", "10x"), ("cache_ttl", "10m;"), ("session_cookie", "a;b"),
    ("session_cookie", "a b"), ("healthz", "healthz"), ("healthz", "/../x"), ("healthz", "/a b"),
    ("healthz", "/a;b"), ("smoke", [{"path": "/x", "bogus": 1}]), ("smoke", "notalist"),
    ("smoke", [{"path": "http://evil.test/"}]), ("smoke", [{"path": "/../etc"}]),
    ("smoke", [{"path": "/", "status": 99}]), ("smoke", [{"path": "/", "contains": 5}]),
    ("smoke_stream", "/x?a=b;c"), ("smoke_stream", "x"), ("streaming", ["/a;b"]),
    ("streaming", ["/../x"]), ("streaming", ["a"]), ("python", "python3"),
    ("python", "/usr/bin/../bin/python3"), ("python", "/usr/bin/python3 -c x"),
    ("exclude", ["a;b"]), ("exclude", ["a\nb"]), ("exclude", "$(x)"),
    ("nginx", "fast"), ("stack", "iis"), ("init", "sysv"), ("colour", "blue"),
    # fleets
    ("roles", {"app": ["web1:99999"]}), ("roles", {"app": ["web1:0"]}),
    ("roles", {"lb": ["root@web1:22"], "app": ["web1"]}),
    ("roles", {"lb": ["lb1"], "app": ["WEB1", "web1:22"]}), ("roles", {"app": []}),
    ("roles", {"app": ["web1;rm -rf /"]}), ("roles", {"db": ["x"], "app": ["y"]}),
    ("roles", ["web1"]), ("roles", {"app": ["-oProxyCommand=x"]}),
]


@pytest.mark.parametrize("key,value", BAD_VALUES, ids=[f"{k}={v!r}"[:60] for k, v in BAD_VALUES])
def test_bad_values_are_refused_naming_the_key(proj, key, value):
    write_config(proj, {**BASE, key: value})
    names = [f"deploy.{key}"] + (["deploy.app_name"] if key == "app_name" else [])
    refused(proj, "render", "--out", str(proj / "out"), names=names)


def test_overlapping_fleet_hosts_name_both(load):
    with pytest.raises(OpsError, match="root@web1:22.*same machine"):
        load(roles={"lb": ["web1"], "app": ["root@web1:22"]})


# ------------------------------------------------------------------- output directories

def test_collectstatic_into_the_project_deletes_nothing(proj):
    for out in (".", "..", "app", str(proj.parent), "/"):
        refused(proj, "collectstatic", "--out", out, names=[out.rstrip("/") or "/", str(proj)])
    assert (proj / "fabfile.py").is_file() and (proj / "app/app.py").is_file()


def test_collectstatic_into_a_foreign_directory_is_refused(proj):
    other = proj.parent / "outside"
    message = refused(proj, "collectstatic", "--out", str(other), names=[str(other)])
    assert "not empty and was not written by flask-ops" in message
    refused(proj, "collectstatic", "--out", "fabric.yaml", names=["fabric.yaml"])
    refused(proj, "collectstatic", "--out", "app/static/out", names=["app/static/out"])


def test_collectstatic_rewrites_only_its_own_directory(proj):
    out = proj.parent / "collected"
    code, _, err = fab_here(proj, "collectstatic", "--out", str(out))
    assert code == 0, err
    (out / "stale.css").write_text("old")
    code, _, err = fab_here(proj, "collectstatic", "--out", str(out))
    assert code == 0, err
    assert not (out / "stale.css").exists() and (out / "static/css/site.css").is_file()


def test_render_out_refusals(proj):
    refused(proj, "render", "--out", "fabric.yaml", names=["fabric.yaml"])
    refused(proj, "render", "--out", ".", names=[str(proj)])
    refused(proj, "render", "--out", str(proj.parent / "outside"), names=["outside"])
    (proj / "linked").symlink_to(proj.parent / "outside")
    refused(proj, "render", "--out", "linked", names=["linked"])


def test_render_never_writes_through_a_symlink_it_finds(proj):
    out = proj / "rendered"
    code, _, err = fab_here(proj, "render", "--out", str(out))
    assert code == 0, err
    shutil.rmtree(out / "etc")
    (out / "etc").symlink_to(proj.parent / "outside")  # planted between two renders
    before = snapshot(proj.parent / "outside")
    code, _, err = fab_here(proj, "render", "--out", str(out))
    assert code == 0, err
    assert snapshot(proj.parent / "outside") == before
    assert not (out / "etc").is_symlink() and (out / "etc/nginx").is_dir()


# ------------------------------------------------------------------ the app's own files

@pytest.fixture
def collect(proj):
    """Run `fab collectstatic` after a change to the app; refusals must name the file."""
    def run(*names):
        return refused(proj, "collectstatic", "--out", str(proj.parent / "c"),
                       names=list(names), out_dir=proj / "build")
    return run


def test_symlink_to_an_excluded_secret_is_not_published(proj, collect):
    (proj / "app/.env").write_text("SECRET_KEY=hunter2\n")
    (proj / "app/static/settings.txt").symlink_to("../.env")
    assert "excluded from the release" in collect("settings.txt")
    assert not (proj.parent / "c").exists() or "hunter2" not in "".join(
        p.read_text() for p in (proj.parent / "c").rglob("*") if p.is_file())


def test_symlink_out_of_the_source_is_refused(proj, collect):
    (proj / "app/static/passwd").symlink_to("/etc/passwd")
    assert "links outside" in collect("passwd")


def test_symlink_loop_is_refused(proj, collect):
    (proj / "app/loop_a").symlink_to("loop_b")
    (proj / "app/loop_b").symlink_to("loop_a")
    assert "symlink loop" in collect("loop_a", "loop_b")


def test_non_utf8_file_name_is_refused(proj, collect):
    (proj / "app").joinpath(os.fsdecode(b"bad\xffname.txt")).write_text("x")
    assert "not a UTF-8 file name" in collect("bad")


def test_fifo_in_the_source_is_refused(proj, collect):
    os.mkfifo(proj / "app/pipe")
    assert "not a regular file" in collect("pipe")


def test_space_in_a_static_file_name_is_collected(proj):
    (proj / "app/static/css/my file.css").write_text("body{}")
    code, out, err = fab_here(proj, "collectstatic", "--out", str(proj.parent / "c"))
    assert code == 0, err
    assert (proj.parent / "c/static/css/my file.css").is_file()


REQUIREMENT_LINES = [
    "--find-links http://198.18.0.99/wheels", "--index-url http://198.18.0.99/simple",
    "--extra-index-url http://198.18.0.99/simple", "-i http://198.18.0.99/simple",
    "-e git+https://example.invalid/x.git#egg=x", "--editable ./lib",
    "flask @ https://example.invalid/flask.whl", "https://example.invalid/pkg.tar.gz",
    "./localdir", "git+https://example.invalid/x.git", "--trusted-host example.invalid",
    "-r ../../outside.txt", "-c /etc/passwd", "flask --global-option=--x", "flask;;",
]


@pytest.mark.parametrize("line", REQUIREMENT_LINES)
def test_requirements_that_reach_the_network_or_outside_are_refused(proj, collect, line):
    req = proj / "app/requirements.txt"
    req.write_text(req.read_text() + line + "\n")
    collect("requirements.txt", "outside.txt", "passwd")


def test_requirements_digest_covers_nested_files(tmp_path):
    (tmp_path / "requirements.txt").write_text("-r base.txt\n-c constraints/pins.txt\nflask\n")
    (tmp_path / "base.txt").write_text("itsdangerous  # a comment\n")
    (tmp_path / "constraints").mkdir()
    (tmp_path / "constraints/pins.txt").write_text("flask==3.0.0\n")
    first = requirements.read(tmp_path / "requirements.txt", tmp_path)
    assert first.lines == ("itsdangerous", "flask") and first.constraints == ("flask==3.0.0",)
    (tmp_path / "constraints/pins.txt").write_text("flask==3.0.1\n")
    assert requirements.read(tmp_path / "requirements.txt", tmp_path).digest != first.digest
    (tmp_path / "base.txt").write_text("itsdangerous==2.2.0\n")
    assert requirements.read(tmp_path / "requirements.txt", tmp_path).digest != first.digest


def test_hashes_are_kept_for_the_build_and_dropped_for_the_offline_host(tmp_path):
    digest = "a" * 64
    (tmp_path / "r.txt").write_text(f"flask==3.0.0 \\\n    --hash=sha256:{digest}\n")
    reqs = requirements.read(tmp_path / "r.txt", tmp_path)
    assert reqs.text() == f"flask==3.0.0 --hash=sha256:{digest}\n"
    assert reqs.text(hashes=False) == "flask==3.0.0\n"


# ----------------------------------------------------------------- what a release ships

def test_release_leaves_secrets_out_and_keeps_modes(tmp_path):
    src = tmp_path / "app"
    shutil.copytree(SAMPLE, src, ignore=shutil.ignore_patterns("__pycache__"))
    secrets = [".env", ".env.production", "id_rsa", "id_ed25519.pub", "deploy.pem", "server.key",
               "instance/config.py", ".git/config", "venv/bin/python", ".venv/pyvenv.cfg",
               "myenv/pyvenv.cfg", ".aws/credentials", "secrets/db.txt", "notes.txt"]
    for rel in secrets:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("secret")
    (src / "private.py").write_text("X = 1\n")
    (src / "private.py").chmod(0o600)
    s = sample_settings(tmp_path, source="app", exclude=["notes.txt", "!deploy.pem"])
    dest = build.stage_source(s, tmp_path / "build" / "release")
    shipped = {p.relative_to(dest).as_posix() for p in dest.rglob("*")}
    assert shipped & set(secrets) == {"deploy.pem"}  # brought back by "!deploy.pem"
    assert not any(p.startswith(("venv", ".venv", "myenv", ".git", "instance")) for p in shipped)
    assert "app.py" in shipped and "static/css/site.css" in shipped
    assert (dest / "private.py").stat().st_mode & 0o777 == 0o600


def test_stage_does_not_make_files_world_readable(load):
    s = load()
    rel = release.Release("R1", "d", "req", tuple(render.render(s)), "up.tar.gz")
    script = plan.stage_script(s, rel, {"wheelhouse": True, "venv": True})
    assert "go=rX" not in script and "o+r" not in script.replace(
        "chmod -R a+rX /srv/sample/releases/R1.partial/collected_static", "")


def test_dry_run_names_what_was_left_out(proj):
    selection = tree.select(proj / "app", ())
    (proj / "app/.env").write_text("x")
    assert ".env" in tree.select(proj / "app", ()).excluded
    assert ".env" not in selection.excluded


# ------------------------------------------------------------------------- templates

def test_template_overrides_are_sandboxed(proj, tmp_path):
    (proj / "tpl/nginx").mkdir(parents=True)
    marker = tmp_path / "pwned"
    (proj / "tpl/nginx/catchall.conf.j2").write_text(
        "{{ s.__class__.__init__.__globals__['os'].system('touch " + str(marker) + "') }}\n")
    write_config(proj, {**BASE, "templates": "tpl"})
    message = refused(proj, "render", "--out", str(proj / "out"), names=["catchall.conf.j2"])
    assert "SecurityError" in message or "unsafe" in message
    assert not marker.exists()


def test_broken_override_template_is_one_line(proj):
    (proj / "tpl/nginx").mkdir(parents=True)
    (proj / "tpl/nginx/catchall.conf.j2").write_text("{% if %}\n")
    write_config(proj, {**BASE, "templates": "tpl"})
    refused(proj, "render", "--out", str(proj / "out"), names=["catchall.conf.j2"])
    (proj / "tpl/nginx/catchall.conf.j2").write_text("{{ no_such_value }}\n")
    refused(proj, "render", "--out", str(proj / "out"), names=["catchall.conf.j2"])


def test_load_balancer_files_cannot_break_out_of_the_script(load, tmp_path, monkeypatch):
    """A rendered line that equals a heredoc delimiter, or holds shell syntax, is written
    byte for byte and runs nothing (the script is executed here, against a scratch dir)."""
    evil = "FLASK_OPS_EOF\ntouch {m}\n'$(touch {m})'\n`touch {m}`\nEOF\n".format(
        m=tmp_path / "pwned")
    line = plan.write_line(str(tmp_path / "site.conf"), evil)
    subprocess.run(["bash", "-c", line], check=True)
    assert (tmp_path / "site.conf").read_text() == evil
    assert not (tmp_path / "pwned").exists()
    from ops import stacks
    evil_files = [render.RenderedFile("/etc/nginx/sites-available/x.conf", evil, render.NGINX)]
    monkeypatch.setattr(stacks.LoadBalancer, "files", lambda self, upstreams=(): evil_files)
    script = fleet.lb_script(load(), [render.Upstream("198.18.0.11")])
    assert "touch" not in script and "FLASK_OPS_EOF" not in script


# ---------------------------------------------------------------------------- quoting

def test_every_value_in_remote_scripts_is_quoted(load):
    """Bypass the whitelists (as one relaxed pattern would) and check that the hostile value
    never appears in a script outside single quotes."""
    import dataclasses
    hostile = "x$(touch /pwned)y"
    base = load()
    s = dataclasses.replace(base, app_name=hostile, base_dir=f"/srv/{hostile}", user=hostile,
                            group=hostile, secrets=((hostile, "generate", ""),))
    rel = release.Release(hostile, "d", "req", tuple(render.render(base)), "up.tar.gz",
                          ((f"/static/{hostile}", hostile),))
    facts = {"wheelhouse": False, "venv": False, "current": hostile, "python": "3.11",
             "arch": "x86_64", "live": {}, "active": {}, "state": {}, "enabled": {},
             "manifest": release.manifest(base, rel), "manifests": {hostile: release.manifest(base, rel)}}
    from ops import provision
    from ops import appenv
    env = appenv.Resolved(((hostile, "s3cret-" + hostile),), (hostile,))
    deploy = plan.deploy_plan(s, rel, facts, {"by": hostile}, env, hostile)
    assert [step.name for step in deploy.prepare][-1] == "env"
    assert all("s3cret-" not in step.script for step in deploy.steps())
    assert "s3cret-" in deploy.prepare[-1].stdin and "s3cret-" not in repr(deploy)
    back = plan.rollback_plan(s, hostile, facts, {"by": hostile})
    first = plan.deploy_plan(s, rel, dict(facts, current=None, manifest=None), {})
    scripts = [step.script for p in (deploy, back, first)
               for step in p.steps() + [p.restore, p.discard, p.unlock, p.finish]]
    scripts += [provision.provision_script(s), fleet.lb_script(s, [render.Upstream(hostile)]),
                plan.facts_command(s, render.render(base), "req", True, {"by": hostile}, [hostile])]
    for script in scripts:
        # single-quoted strings, and double-quoted ones without expansions ("'"), are inert
        outside_quotes = re.sub(r"'[^']*'|\"[^\"$`\\]*\"", "''", script)
        assert "$(touch" not in outside_quotes, script


def test_apache_check_leaves_nothing_in_tmp(load):
    """`fab check` on the Apache stack once left /tmp/tmp.*/{passwd,group} behind each run."""
    import tempfile
    from ops import checks
    if not shutil.which("apache2ctl"):
        pytest.skip("apache2ctl is installed by `make system-deps`")
    tmp = Path(tempfile.gettempdir())
    before = set(tmp.iterdir())
    s = load(stack="apache-modwsgi", user="flaskops_checkuser")
    assert checks.check_local(render.render(s), s) == [render.APACHE, render.WSGI, "app environment"]
    assert set(tmp.iterdir()) - before == set()
