import shutil
import subprocess

import pytest

from ops import build, outdir
from ops.errors import OpsError

from conftest import ROOT, SAMPLE, sample_settings


def collected_files(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and p.name != outdir.MARKER)


def test_collectstatic_lays_files_out_as_flask_urls(load, tmp_path):
    out, count, statics = build.collectstatic(load(), tmp_path / "static")
    assert collected_files(out) == ["static/css/site.css", "static/js/site.js",
                                    "static/reports/reports.css"]
    assert count == 3 and statics["prefixes"] == ("/static/",)  # /static/reports/ is inside
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
    assert "collected 3 files" in result.stdout
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


def test_wheels_for_a_host_with_another_python(load):
    """An Ubuntu 24.04 host runs Python 3.12: its binary wheels must be cp312 ones."""
    s = load()
    import platform
    assert build.target_wheelhouse(s, build.LOCAL_PYTHON, platform.machine()) == build.wheelhouse(s)
    other = "3.12" if build.LOCAL_PYTHON != "3.12" else "3.11"
    path = build.target_wheelhouse(s, other, "x86_64")
    names = sorted(p.name for p in path.glob("*.whl"))
    assert any(n.startswith("flask-") and n.endswith("py3-none-any.whl") for n in names)
    markupsafe = [n for n in names if n.lower().startswith("markupsafe")]
    tag = "cp" + other.replace(".", "")
    assert len(markupsafe) == 1 and f"-{tag}-" in markupsafe[0] and "x86_64" in markupsafe[0]
    local_tag = "cp" + build.LOCAL_PYTHON.replace(".", "")
    assert not [n for n in names if f"-{local_tag}-" in n]


def test_a_collected_cache_from_an_older_layout_is_collected_again(tmp_path):
    """The cache marker once was empty (files at the app's static root): reusing that tree
    would serve nothing at the new URLs."""
    from ops import release

    done = tmp_path / ".complete"
    done.write_text("")
    assert release._cached_statics(done) is None
    # ...and one without the instance folder (it decides which paths the host links)
    done.write_text('{"prefixes": ["/static/"], "samples": []}')
    assert release._cached_statics(done) is None
    done.write_text('{"prefixes": ["/static/"], "samples": [], "instance": "instance"}')
    assert release._cached_statics(done) == {"prefixes": ["/static/"], "samples": [],
                                             "instance": "instance"}
