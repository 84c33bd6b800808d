import shutil
import subprocess

import pytest

from ops import build, outdir
from ops.errors import OpsError

from conftest import ROOT, SAMPLE, sample_settings


def test_collectstatic_puts_blueprint_files_at_flask_urls(load, tmp_path):
    out, count = build.collectstatic(load(), tmp_path / "static")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                   if p.is_file() and p.name != outdir.MARKER)
    assert files == ["css/site.css", "js/site.js", "reports/reports.css"]
    assert count == 3
    assert (out / "reports/reports.css").read_bytes() == (
        SAMPLE / "reports/static/reports.css").read_bytes()


def test_collectstatic_refuses_a_blueprint_nginx_would_not_find(tmp_path):
    src = tmp_path / "app"
    shutil.copytree(SAMPLE, src, ignore=shutil.ignore_patterns("__pycache__"))
    bp = src / "reports/__init__.py"
    bp.write_text(bp.read_text().replace('static_url_path="/static/reports"',
                                         'static_url_path="/reports-static"'))
    s = sample_settings(tmp_path, source="app")
    with pytest.raises(OpsError, match="reports.static:reports.css is served by Flask at "
                                       "/reports-static/reports.css"):
        build.collectstatic(s, tmp_path / "out")


def test_collectstatic_reports_an_app_that_does_not_import(tmp_path):
    shutil.copytree(SAMPLE, tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "app/app.py").write_text("import no_such_module\n")
    s = sample_settings(tmp_path, source="app")
    with pytest.raises(OpsError, match="cannot import app:app: ModuleNotFoundError"):
        build.collectstatic(s, tmp_path / "out")


def test_fab_collectstatic(tmp_path):
    result = subprocess.run([str(ROOT / ".venv/bin/fab"), "collectstatic", "--out",
                             str(tmp_path / "c")], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert result.returncode == 0, result.stdout
    assert "collected 3 files" in result.stdout
    assert (tmp_path / "c/reports/reports.css").is_file()


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
