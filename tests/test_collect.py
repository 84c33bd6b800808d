import shutil
import subprocess
from pathlib import Path

import pytest

from ops import outdir
from ops.build import build
from ops.deploy import appenv
from ops.errors import OpsError

from conftest import make_project, ROOT, SAMPLE, sample_settings


def collected_files(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and p.name != outdir.MARKER)


def test_collectstatic_lays_files_out_as_flask_urls(load, tmp_path):
    out, count, statics = build.collectstatic(load(), tmp_path / "static")
    assert collected_files(out) == ["static/css/site.css", "static/js/site.js", "static/js/vendor.5d41402a.js",
                                    "static/reports/reports.css"]
    assert count == 4 and statics["prefixes"] == ("/static/",)  # /static/reports/ is inside
    assert (out / "static/reports/reports.css").read_bytes() == (
        SAMPLE / "reports/static/reports.css").read_bytes()
    assert [url for url, _ in [(i["url"], i["sha256"]) for i in statics["samples"]]] == [
        "/static/css/site.css", "/static/reports/reports.css"]


def blueprint_project(tmp_path, registration):
    """The sample app with its blueprint registered as Flask's docs show: under a url_prefix,
    with a static folder of its own."""
    src = tmp_path / "app"
    shutil.copytree(SAMPLE, src, ignore=shutil.ignore_patterns("__pycache__"))
    bp = src / "reports/__init__.py"
    bp.write_text(bp.read_text().replace('static_url_path="/static/reports"',
                                         'static_url_path="/reports-static"'))
    app = src / "app.py"
    app.write_text(app.read_text().replace("app.register_blueprint(reports_bp)", registration))
    return sample_settings(tmp_path, source="app")


def test_a_blueprint_under_a_url_prefix_is_collected_where_flask_serves_it(tmp_path):
    s = blueprint_project(tmp_path, 'app.register_blueprint(reports_bp, url_prefix="/admin")')
    out, count, statics = build.collectstatic(s, tmp_path / "out")
    assert "admin/reports-static/reports.css" in collected_files(out)
    assert statics["prefixes"] == ("/admin/reports-static/", "/static/")
    assert "/admin/reports-static/reports.css" in [i["url"] for i in statics["samples"]]


def test_two_static_folders_at_one_url_are_refused(tmp_path):
    """Flask serves the app's file there; a collected copy of the other would lie."""
    s = blueprint_project(tmp_path, 'app.register_blueprint(reports_bp)')
    bp = tmp_path / "app/reports/__init__.py"
    bp.write_text(bp.read_text().replace('static_url_path="/reports-static"',
                                         'static_url_path="/static/css"'))
    (tmp_path / "app/reports/static/site.css").write_text("/* not the app's */\n")
    with pytest.raises(OpsError, match="/static/css/site.css: the collected file differs"):
        build.collectstatic(s, tmp_path / "out")


def test_a_static_prefix_that_collides_with_a_streaming_path_is_refused(tmp_path):
    s = blueprint_project(tmp_path, 'app.register_blueprint(reports_bp, url_prefix="/time")')
    with pytest.raises(OpsError, match="the app serves static files at '/time/reports-static/'"):
        build.collectstatic(s, tmp_path / "out")


def test_collectstatic_reports_an_app_that_does_not_import(tmp_path):
    shutil.copytree(SAMPLE, tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "app/app.py").write_text("import no_such_module\n")
    s = sample_settings(tmp_path, source="app")
    with pytest.raises(OpsError, match="cannot load the app from app:app: ModuleNotFoundError"):
        build.collectstatic(s, tmp_path / "out")


def test_fab_collectstatic(tmp_path):
    result = subprocess.run([str(ROOT / ".venv/bin/fab"), "collectstatic", "--out",
                             str(tmp_path / "c")], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert result.returncode == 0, result.stdout
    assert "collected 4 files" in result.stdout
    assert (tmp_path / "c/static/reports/reports.css").is_file()


def test_release_copies_links_inside_the_app_and_refuses_links_out(tmp_path):
    shutil.copytree(SAMPLE, tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "app/static/css/alias.css").symlink_to("site.css")
    s = sample_settings(tmp_path, source="app")
    dest = build.stage_source(s, tmp_path / "build" / "release")
    assert (dest / "static/css/alias.css").is_symlink()  # copied as a link, not followed
    assert not (dest / "__pycache__").exists()
    (tmp_path / "app/static/passwd").symlink_to("/etc/passwd")
    with pytest.raises(OpsError, match="links outside the app's source"):
        build.stage_source(s, tmp_path / "build" / "release2")
    (tmp_path / "app/static/passwd").unlink()
    (tmp_path / "app/static/up").symlink_to("../../app2")
    with pytest.raises(OpsError, match="links outside"):
        build.stage_source(s, tmp_path / "build" / "release3")


MARKED = ('flask>=3.0,<4\nredis==5.0.8\ntomli>=2; python_version < "3.11"\n')


@pytest.mark.parametrize("python, libc, has, lacks", [
    # Debian 12's 3.11.2 (this machine: another 3.11.x): redis needs async-timeout there only
    # (python_full_version < "3.11.3"), which a resolution on this machine leaves out.
    ("3.11.2", "2.36", {"async_timeout", "-cp311-"}, {"tomli"}),
    # Ubuntu 22.04's 3.10: tomli too, and binary wheels for cp310.
    ("3.10.12", "2.35", {"async_timeout", "tomli", "-cp310-"}, {"-cp311-"}),
    # Debian 13's 3.13: neither, and cp313 wheels.
    ("3.13.5", "2.41", {"-cp313-"}, {"async_timeout", "tomli", "-cp311-"}),
])
def test_wheels_are_resolved_for_the_hosts_own_interpreter(tmp_path, python, libc, has, lacks):
    """Environment markers are evaluated for the host's exact Python, never this machine's;
    binary wheels are the host's; pure ones are the versions built here."""
    import platform
    s = make_project(tmp_path, {"requirements.txt": ("flask>=3.0,<4", MARKED.strip())})
    if python == build.LOCAL_PYTHON:
        pytest.skip("this machine runs that very Python")
    assert build.target_wheelhouse(s, build.LOCAL_PYTHON, platform.machine()) == build.wheelhouse(s)
    path = build.target_wheelhouse(s, python, "x86_64", libc)
    names = " ".join(sorted(p.name.lower() for p in path.glob("*.whl")))
    assert "redis-5.0.8-py3-none-any.whl" in names and "flask-" in names
    assert {h for h in has if h not in names} == set(), names
    assert {x for x in lacks if x in names} == set(), names
    local = {p.name for p in build.wheelhouse(s).glob("*-none-any.whl")}
    assert {p.name for p in path.glob("flask-*")} <= local  # the version built and tested here


def test_a_collected_cache_from_an_older_layout_is_collected_again(tmp_path):
    """The cache marker once was empty (files at the app's static root): reusing that tree
    would serve nothing at the new URLs."""
    from ops.build import release

    done = tmp_path / ".complete"
    done.write_text("")
    assert release._cached_statics(done) is None
    # ...and one without the instance folder (it decides which paths the host links)
    done.write_text('{"prefixes": ["/static/"], "samples": []}')
    assert release._cached_statics(done) is None
    done.write_text('{"prefixes": ["/static/"], "samples": [], "instance": "instance"}')
    assert release._cached_statics(done) == {"prefixes": ["/static/"], "samples": [],
                                             "instance": "instance"}


def test_the_app_is_imported_with_the_hosts_paths_pointing_at_the_build(tmp_path):
    """An app that reads a settings file named by a host path at import, and writes its
    database into the data directory then (I Hate Money migrates as it starts), is collected
    with those paths mapped onto the tree being collected and a throwaway data directory."""
    settings_py = ("import os, sqlite3\n"
                   "CFG = open(os.environ['APP_SETTINGS']).read()\n"
                   "sqlite3.connect(os.path.join(os.environ['FLASK_OPS_DATA_DIR'], 'x.db'))"
                   ".execute('create table if not exists t (x)')\n")
    s = make_project(tmp_path / "p", {"boot_check.py": (None, settings_py),
                                      "app.py": ("import ", "import boot_check  # noqa\nimport ")},
                     {"env": {"APP_SETTINGS": "/srv/sample/current/boot_check.py",
                              "ELSEWHERE": "/etc/elsewhere"}})
    env = build.app_environment(appenv.resolve(s))
    out, count, _ = build.collectstatic(s, tmp_path / "static", env=env)
    assert count == 4
    view = build.private_dir(s, "host-view")
    assert (view / "shared/data/x.db").is_file()  # written here, never on the host
    mapped = build.host_view(s, env, tmp_path / "p" / "sample_app")
    assert mapped["APP_SETTINGS"] == str(view / "current/boot_check.py")
    assert mapped["ELSEWHERE"] == "/etc/elsewhere" and "/srv/" not in mapped["FLASK_OPS_DATA_DIR"]


def test_two_processes_deploying_one_project_never_build_in_each_others_tree(tmp_path):
    """Two terminals (or two test lanes) deploying one project from one machine: a build in
    another process leaves the tree this one is about to upload as it was, and the tree of a
    process that has ended goes at the next build."""
    import sys

    from ops.build import release

    make_project(tmp_path)
    s = sample_settings(tmp_path)
    tree, *_ = release.stage_tree(s)
    (tree / "mine").write_text("still here")
    other = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
         "from conftest import sample_settings\nfrom ops.build import release\n"
         "print(release.stage_tree(sample_settings(sys.argv[3]))[0])",
         str(ROOT / "tests"), str(ROOT), str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert other.returncode == 0, other.stdout
    theirs = Path(other.stdout.split()[-1])
    assert theirs != tree and (theirs / "app.py").is_file()  # built whole, elsewhere
    assert (tree / "mine").read_text() == "still here"
    release.stage_tree(s)
    assert not theirs.exists()  # its process has ended
