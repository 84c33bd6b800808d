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

from ops import tree
from ops.build import build, release, requirements
from ops.deploy import fleet, plan
from ops.deploy.hostfacts import HostFacts
from ops.errors import OpsError
from ops.targets import render

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
    ("secrets", ["has-dash"]), ("env", {"flask_secret_key": "x"}), ("secrets", ["A B"]), ("secrets", "NOT;A;NAME"),
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
    # other services' accounts and data (the app would own, or become, theirs)
    ("base_dir", "/home/alice"), ("base_dir", "/var/lib/postgresql"), ("base_dir", "/var/lib/mysql/x"),
    ("base_dir", "/var/lib/docker"), ("base_dir", "/var/www/html"), ("user", "postgres"),
    ("user", "mysql"), ("user", "redis"), ("user", "ubuntu"), ("app_name", "postgres"),
    ("group", "docker"), ("group", "lxd"), ("group", "kvm"), ("group", "ssl-cert"), ("group", "users"),
    ("group", "adm"), ("env", {"GLIBC_TUNABLES": "glibc.malloc.x=1"}), ("env", {"GCONV_PATH": "/tmp"}),
    ("env", {"LD_PRELOAD": "/tmp/x.so"}), ("env", {"PYTHONSTARTUP": "/tmp/x.py"}),
    # too long for the server (nginx -t would fail without naming the key)
    ("server_names", ["a" * 60 + "." + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + ".test"]),
    ("healthz", "/" + "a" * 5000), ("streaming", ["/" + "s" * 600]),
    ("wsgi", "app:create_app(" + "'" * 3 + "a\nimport os" + "'" * 3 + ")"),
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
                       names=list(names), out_dir=proj.parent / "c")
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
    script = plan.stage_script(s, rel, HostFacts(wheelhouse=True, venv=True))
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
    from ops.targets import stacks
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
    facts = HostFacts(current=hostile, python="3.11", arch="x86_64",
                      manifest=release.manifest(base, rel),
                      manifests={hostile: release.manifest(base, rel)})
    from ops.deploy import provision
    from ops.deploy import appenv
    env = appenv.Resolved(((hostile, "s3cret-" + hostile),), (hostile,))
    deploy = plan.deploy_plan(s, rel, facts, {"by": hostile}, env, hostile)
    assert [step.name for step in deploy.prepare][-1] == "env"
    assert all("s3cret-" not in step.script for step in deploy.steps())
    assert "s3cret-" in deploy.prepare[-1].stdin and "s3cret-" not in repr(deploy)
    back = plan.rollback_plan(s, hostile, facts, {"by": hostile})
    first = plan.deploy_plan(s, rel, facts.replace(current=None, manifest=None), {})
    scripts = [step.script for p in (deploy, back, first)
               for step in p.steps() + [p.restore, p.discard, p.unlock, p.finish]]
    scripts += [provision.provision_script(s), fleet.lb_script(s, [render.Upstream(hostile)]),
                plan.facts_command(s, render.render(base), "req", True, {"by": hostile}, [hostile])]
    for script in scripts:
        # single-quoted strings, and double-quoted ones without expansions ("'"), are inert
        outside_quotes = re.sub(r"'[^']*'|\"[^\"$`\\]*\"", "''", script)
        assert "$(touch" not in outside_quotes, script


def test_apache_check_leaves_nothing_in_tmp(load, tmp_path, monkeypatch):
    """`fab check` on the Apache stack once left /tmp/tmp.*/{passwd,group} behind each run.
    The temporary directory is one of this test's own (TMPDIR, for Python and the shell's
    mktemp alike): the other lane's files in /tmp are not ours to count."""
    import tempfile
    from ops.targets import checks
    if not shutil.which("apache2ctl"):
        pytest.skip("apache2ctl is installed by `make system-deps`")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    s = load(stack="apache-modwsgi", user="flaskops_checkuser")
    assert checks.check_local(render.render(s), s) == [render.APACHE, render.WSGI, "app environment"]
    assert list(tmp.iterdir()) == []


# ------------------------------------------------------------- values in generated Python

WSGI_VALUES = [
    'app:create_app(\'" + __import__("os").getenv("X") + "\')',
    "app:create_app('''x''')",
    "app:create_app('\\'; import os; os.system(\"id\") #')",
    'app:create_app(name="a\\"b", debug=True, n=-1)',
]


@pytest.mark.parametrize("wsgi", WSGI_VALUES)
def test_no_wsgi_value_becomes_code_in_generated_python(load, wsgi):
    """The entry module and the runner carry the app's spec as data: each compiles, has one
    statement per line it was meant to have, and the only call of the app factory has exactly
    the literal arguments the user wrote."""
    import ast
    s = load(wsgi=wsgi)
    spec = s.wsgi_spec
    files = {f.path.rsplit("/", 1)[1]: f.content for f in render.render(s)}
    entry, runner = ast.parse(files["sample.wsgi"]), ast.parse(files["flask-ops-run.py"])
    # the factory call: exactly the parsed literals, nothing else
    calls = [n for n in ast.walk(entry) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name) and n.func.id == "app_target"]
    assert len(calls) == 1
    assert tuple(ast.literal_eval(a) for a in calls[0].args) == spec.call[0]
    assert tuple((k.arg, ast.literal_eval(k.value)) for k in calls[0].keywords) == spec.call[1]
    assert not [n for n in ast.walk(entry) if isinstance(n, ast.Name) and n.id == "__import__"]
    # FLASK_APP in the runner is one string constant: the spec written back from its parts
    value = [n.values[n.keys.index(k)] for n in ast.walk(runner) if isinstance(n, ast.Dict)
             for k in n.keys if isinstance(k, ast.Constant) and k.value == "FLASK_APP"]
    assert len(value) == 1 and isinstance(value[0], ast.Constant)
    assert value[0].value == spec.text
    # comments stay comments: no line of the header is code
    header = files["sample.wsgi"].split("import os")[0]
    assert all(line.startswith("#") or not line.strip() for line in header.splitlines())


@pytest.mark.parametrize("wsgi", ["app:create_app('''a\nimport os''')", "app:app\n", "app:c(\x00)"])
def test_control_characters_in_wsgi_are_refused(load, wsgi):
    with pytest.raises(OpsError, match="wsgi"):
        load(wsgi=wsgi)


def test_a_route_with_a_newline_cannot_write_yaml_through_init(tmp_path):
    """A route rule (or a file name) is the app's text; in fabric.yaml it stays a comment."""
    from ops.build import scaffold
    (tmp_path / "requirements.txt").write_text("flask>=3.0,<4\n")
    (tmp_path / "app.py").write_text(
        "from flask import Flask\napp = Flask(__name__)\n\n"
        "@app.route('/x\\n  user: postgres\\n  base_dir: /var/lib/postgresql')\n"
        "def x():\n    return 'x'\n\n@app.route('/')\ndef index():\n    return 'ok'\n")
    text = scaffold.plan(tmp_path)["fabric.yaml"]
    deploy = yaml.safe_load(text)["deploy"]
    assert "user" not in deploy and "base_dir" not in deploy
    assert "#   GET          /x\\n  user: postgres" in text


# --------------------------------------------------- secrets are never published or shipped

@pytest.mark.parametrize("page, setup", [
    (".env", None), ("app/.env.production", None), ("deploy/site.key", None),
    ("app/instance/config.html", None), ("pages/secret.html", "link-to-env"),
    ("pages/key.html", "private-key"), ("pages/app.py", "python"),
])
def test_pages_the_front_server_sends_are_never_secrets(proj, page, setup):
    """error_pages and maintenance.page are sent to anyone: an HTML file of the project that
    is not (and does not link to) a secret or an excluded file."""
    (proj / "deploy").mkdir()
    (proj / "pages").mkdir()
    for rel, text in ((".env", "SECRET_KEY=hunter2\n"), ("app/.env.production", "X=hunter2\n"),
                      ("deploy/site.key", "hunter2"), ("app/instance/config.html", "hunter2")):
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text(text)
    if setup == "link-to-env":
        (proj / page).symlink_to("../.env")
    elif setup == "private-key":
        (proj / page).write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nhunter2\n")
    elif setup == "python":
        (proj / page).write_text("SECRET = 'hunter2'\n")
    for key, value in (("error_pages", {"500": page}), ("maintenance", {"page": page})):
        write_config(proj, {**BASE, key: value})
        message = refused(proj, "render", "--out", str(proj / "out"), names=[key])
        assert "hunter2" not in message
        assert not (proj / "out").exists()


def test_the_readmes_error_pages_form_works(proj):
    (proj / "app/templates/oops.html").write_text("<h1>Sorry</h1>\n")
    (proj / "fabric.yaml").write_text(
        yaml.safe_dump({"deploy": BASE}) + "  error_pages: {500: app/templates/oops.html}\n")
    code, out, err = fab_here(proj, "render", "--out", str(proj / "out"))
    assert code == 0, err
    assert (proj / "out/etc/flask-ops/hostile/errors/500.html").read_text() == "<h1>Sorry</h1>\n"


CREDENTIALS = [".git-credentials", ".pgpass", ".my.cnf", "service-account.json", "putty.ppk",
               "terraform.tfstate", "secring.gpg", ".docker/config.json", "gcp/credentials.json"]


def test_credential_files_are_never_collected_or_shipped(proj):
    for rel in CREDENTIALS:
        (proj / "app/static" / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / "app/static" / rel).write_text("hunter2\n")
    out = proj.parent / "c"
    code, _, err = fab_here(proj, "collectstatic", "--out", str(out))
    assert code == 0, err
    collected = {p.relative_to(out / "static").as_posix() for p in (out / "static").rglob("*")
                 if p.is_file()}
    assert "css/site.css" in collected and not collected & set(CREDENTIALS), collected
    selection = tree.select(proj / "app", ())
    assert not {f"static/{c}" for c in CREDENTIALS} & set(selection.files)


@pytest.mark.parametrize("case", ["hard link to .env", "private key in static", "aws credentials"])
def test_secrets_under_another_name_are_refused(proj, collect, case):
    if case == "hard link to .env":
        (proj / "app/.env").write_text("SECRET_KEY=hunter2\n")
        os.link(proj / "app/.env", proj / "app/static/settings.txt")
        names = ["settings.txt"]
    elif case == "private key in static":
        (proj / "app/static/notes.txt").write_text(
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n")
        names = ["notes.txt"]
    else:
        (proj / "app/static/config.ini").write_text("[default]\naws_secret_access_key = hunter2\n")
        names = ["config.ini"]
    assert "hunter2" not in collect(*names)


def test_a_static_folder_outside_the_source_is_never_collected(proj, collect):
    (proj.parent / "elsewhere").mkdir()
    (proj.parent / "elsewhere/.env").write_text("SECRET_KEY=hunter2\n")
    app = proj / "app/app.py"
    app.write_text(app.read_text().replace(
        "app = Flask(__name__)", f"app = Flask(__name__, static_folder={str(proj.parent / 'elsewhere')!r})"))
    assert "outside the app's source" in collect("static folder", "elsewhere")


def test_an_override_template_never_reads_through_a_link(proj):
    (proj / ".env").write_text("SECRET_KEY=hunter2\n")
    (proj / "tpl/nginx").mkdir(parents=True)
    (proj / "tpl/nginx/secret.j2").symlink_to("../../.env")
    (proj / "tpl/nginx/catchall.conf.j2").write_text("# {% include 'nginx/secret.j2' %}\n")
    write_config(proj, {**BASE, "templates": "tpl"})
    message = refused(proj, "render", "--out", str(proj / "out"), names=["secret.j2"])
    assert "hunter2" not in message and "symlink" in message
    (proj / "tpl/nginx/secret.j2").unlink()
    (proj / "tpl/nginx/catchall.conf.j2").unlink()
    (proj / "tpl/nginx/catchall.conf.j2").symlink_to(proj / ".env")  # an override itself
    assert "hunter2" not in refused(proj, "render", "--out", str(proj / "out"),
                                    names=["catchall.conf.j2"])


def test_a_failing_secret_command_never_shows_what_it_printed(proj):
    write_config(proj, {**BASE, "secrets": {"DB_URL": {
        "command": "sh -c 'echo postgres://u:hun\"\"ter2@db >&2; echo hun\"\"ter2; exit 3'"}}})
    message = refused(proj, "env", "--check", names=["secrets.DB_URL"])
    assert "hunter2" not in message and "exited 3" in message


# --------------------------------------------------------------- nothing hangs, ever

def test_fifos_and_devices_are_refused_not_read(proj, tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert "FIFO" in refused(proj, "-f", str(fifo), "render", names=[str(fifo)])
    for dev in ("/dev/zero", "/dev/null"):
        refused(proj, "-f", dev, "render", names=[dev])
    secret = tmp_path / "secret-pipe"
    os.mkfifo(secret)
    write_config(proj, {**BASE, "secrets": {"API_KEY": {"file": str(secret)}}})
    refused(proj, "env", "--check", names=["secrets.API_KEY"])
    write_config(proj, {**BASE, "secrets": {"API_KEY": {"file": "/dev/zero"}}})
    refused(proj, "env", "--check", names=["secrets.API_KEY"])
    write_config(proj, BASE)
    os.mkfifo(proj / "app/more.txt")
    req = proj / "app/requirements.txt"
    req.write_text(req.read_text() + "-r more.txt\n")
    refused(proj, "collectstatic", "--out", str(proj.parent / "c"), names=["more.txt"])
    os.unlink(proj / "app/more.txt")
    req.write_text("flask>=3.0,<4\n")
    (proj / "fabric.yaml").unlink()
    os.mkfifo(proj / "fabric.yaml")
    refused(proj, "render", names=["fabric.yaml"])


def test_a_fifo_as_a_tls_key_is_refused_not_read(tmp_path):
    from ops.deploy import certs
    os.mkfifo(tmp_path / "key.pem")
    with pytest.raises(OpsError, match="not a regular file"):
        certs._read("tls.certificate.key", tmp_path / "key.pem")
    with pytest.raises(OpsError, match="not a regular file"):
        certs._read("tls.certificate.key", "/dev/zero")
    (tmp_path / "big.pem").write_bytes(b"x" * (2 * 1024 * 1024))
    with pytest.raises(OpsError, match="larger than"):
        certs._read("tls.certificate.key", tmp_path / "big.pem")


def test_an_app_that_blocks_at_import_is_stopped(proj, collect, monkeypatch):
    monkeypatch.setattr(build, "IMPORT_TIMEOUT", 3)
    app = proj / "app/app.py"
    app.write_text("import subprocess, time\nsubprocess.Popen(['sleep', '300'])\n"
                   "time.sleep(300)\n" + app.read_text())
    assert "still running after 3s" in collect("importing the app")


def test_a_secret_command_that_leaves_a_child_behind_returns(proj, monkeypatch):
    from ops.deploy import appenv
    import time
    write_config(proj, {**BASE, "secrets": {"API_KEY": {"command": "sh -c 'sleep 300 & echo v4lue'"}}})
    start = time.monotonic()
    code, out, err = fab_here(proj, "env", "--check")
    assert code == 0, err
    assert time.monotonic() - start < 20
    monkeypatch.setattr(appenv, "COMMAND_TIMEOUT", 2)
    write_config(proj, {**BASE, "secrets": {"API_KEY": {"command": "sleep 300"}}})
    assert "still running after 2s" in refused(proj, "env", "--check", names=["secrets.API_KEY"])


# ------------------------------------------------- one clear line, never a traceback

def test_odd_config_files_are_one_line(proj, tmp_path):
    for target in ("/dev/null", str(tmp_path), "over.txt", ".env"):
        refused(proj, "-f", target, "render", names=[target])
    (proj / "fabric.yml").write_text("deploy: {}\n")
    message = refused(proj, "render", names=["fabric.yml"])
    assert "fabric.yml is beside it" in message
    (proj / "fabric.yml").unlink()
    write_config(proj, {**BASE, "Server_names": ["x.test"], "server_names": ["y.test"]})
    assert "differs only in case" in refused(proj, "render", names=["Server_names"])
    (proj / "fabric.yaml").write_text("deploy:\n  env:\n    X: " + "[" * 5000 + "\n")
    assert "nested too deeply" in refused(proj, "render", names=["fabric.yaml"])
    (proj / "fabric.yaml").unlink()
    (proj / "fabric.yaml").symlink_to("missing.yaml")
    assert "symlink to nothing" in refused(proj, "render", names=["fabric.yaml"])


def test_bad_options_and_output_paths_are_one_line(proj):
    write_config(proj, BASE)
    refused(proj, "-H", "nohost", "logs", "--lines", "abc", names=["--lines"])
    refused(proj, "-H", "nohost", "history", "-n", "abc", names=["-n"])
    refused(proj, "render", "--out", "app/rendered", names=["app/rendered"])
    refused(proj, "render", "--out", "fabric.yaml/sub", names=["fabric.yaml"])
    refused(proj, "render", "--out", "x" * 300, names=["too long"])
    refused(proj, "collectstatic", "--out", "", names=["empty path"])
    for flag, path in (("--junit", "app/app.py"), ("--json", "fabric.yaml"), ("--junit", "app")):
        refused(proj, "smoke", "--url", "http://127.0.0.1:9/", flag, path, names=[flag])


def test_an_app_that_exits_at_import_says_so(proj, collect):
    app = proj / "app/app.py"
    app.write_text("import sys\nsys.exit('DATABASE_URL is not set')\n" + app.read_text())
    assert "sys.exit('DATABASE_URL is not set')" in collect("sys.exit")


def test_a_requirements_file_with_a_byte_order_mark_is_read_as_pip_reads_it(tmp_path):
    (tmp_path / "requirements.txt").write_bytes("\ufeffflask>=3.0\n".encode("utf-8"))
    assert requirements.read(tmp_path / "requirements.txt", tmp_path).lines == ("flask>=3.0",)


def test_fab_check_without_the_servers_here_checks_what_it_can(proj, monkeypatch):
    """A laptop without nginx: one line says which checker is missing, the others run."""
    import shutil as sh
    real = sh.which
    monkeypatch.setattr(sh, "which", lambda name, *a, **k: None if name == "nginx" else real(name, *a, **k))
    code, out, err = fab_here(proj, "check")
    assert code == 0, err
    assert "Traceback" not in out + err
    assert "skip  nginx -t: nginx is not installed here" in out and "ok  uwsgi" in out


def test_a_failing_before_deploy_hook_stops_before_any_host(proj):
    write_config(proj, {**BASE, "local_hooks": {"before_deploy": ["sh -c 'exit 7'"]}})
    message = refused(proj, "-H", "no-such-host.invalid", "deploy", names=["before_deploy"])
    assert "exited 7" in message
    write_config(proj, {**BASE, "local_hooks": {"before_deploy": "x\nrm -rf /"}})
    refused(proj, "render", names=["local_hooks.before_deploy"])


def test_a_dry_run_without_a_reachable_host_shows_a_first_deploy(proj):
    """Nothing listens on loopback port 1: the dry run shows the build, every config as new and
    the plan of a first deploy, and says no host was reached."""
    write_config(proj, BASE)
    code, out, err = fab_here(proj, "-H", "root@127.0.0.1:1", "deploy", "--dry-run")
    assert code == 0, err
    assert "127.0.0.1 is not reachable" in out and "showing a first deploy" in out
    assert "+++ /etc/nginx/sites-available/hostile.conf (new)" in out
    assert "# stage" in out and "dry run: no host was reached, nothing was changed" in out


def test_a_misspelt_section_in_a_python_config_is_refused(proj):
    write_config(proj, BASE)
    (proj / "over.py").write_text("deplyo = {'server_names': ['x.test']}\n")
    assert "did you mean 'deploy'" in refused(proj, "-f", "over.py", "render", names=["deplyo"])
    (proj / "over.py").write_text("import os\n")  # Invoke's traceback, now one line
    assert "is a module" in refused(proj, "-f", "over.py", "render", names=["over.py"])
    (proj / "over.py").write_text("raise SystemError('boom')\n")
    assert "cannot be loaded" in refused(proj, "-f", "over.py", "render", names=["over.py"])
    (proj / "over.py").write_text("deploy = {'server_names': ['over.test']}\n")
    code, out, err = fab_here(proj, "-f", "over.py", "render", "--out", str(proj / "out"))
    assert code == 0, err
