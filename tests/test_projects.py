"""Projects as people publish them, without a host: the app at the repository's root,
pyproject.toml with PEP 621 or Poetry dependencies, pinned by uv.lock or poetry.lock; the
paths the app writes (shared_dirs, shared_files, Flask's instance folder)."""

import dataclasses
import shutil

import pytest

from ops.build import build, projectmeta, release, requirements
from ops.config import settings
from ops.errors import OpsError, SettingsError

from conftest import ROOT

GUESTBOOK = ROOT / "tests" / "apps" / "guestbook"


@pytest.fixture
def guestbook(tmp_path):
    root = tmp_path / "guestbook"
    shutil.copytree(GUESTBOOK, root)
    return root


def load(root, **raw):
    return settings.load({"app_name": "guestbook", "source": ".", "wsgi": "guestbook:create_app()",
                          "server_names": ["guestbook.test"], **raw}, project_root=root)


def test_pyproject_dependencies_pinned_by_uv_lock(guestbook):
    reqs = build.requirements(load(guestbook))
    assert reqs.lines == ("flask>=3.0", 'tomli>=2; python_version < "3.11"')
    # Every package the lock takes from an index, pinned; never the project itself.
    assert "flask==3.1.0" in reqs.constraints and "werkzeug==3.1.3" in reqs.constraints
    assert not [c for c in reqs.constraints if c.startswith("guestbook")]
    assert reqs.text(hashes=False).splitlines()[0] == "-c constraints.txt"
    # The lock is part of what the wheelhouse is keyed by.
    before = reqs.digest
    lock = guestbook / "uv.lock"
    lock.write_text(lock.read_text().replace('version = "3.1.0"', 'version = "3.1.1"'))
    assert build.requirements(load(guestbook)).digest != before


def test_poetry_dependencies_pinned_by_poetry_lock(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.poetry]\nname = "shop"\n[tool.poetry.dependencies]\npython = "^3.9"\n'
        'flask = "^3.0"\nredis = {version = "~5.0", extras = ["hiredis"], markers = '
        '"sys_platform == \'linux\'"}\ndev-thing = {version = "1", optional = true}\n')
    (tmp_path / "poetry.lock").write_text(
        '[[package]]\nname = "flask"\nversion = "3.1.0"\n\n[[package]]\nname = "redis"\n'
        'version = "5.0.8"\n\n[[package]]\nname = "mine"\nversion = "0.1"\n'
        '[package.source]\ntype = "directory"\nurl = "../mine"\n')
    reqs = requirements.read(tmp_path / "pyproject.toml", tmp_path)
    assert reqs.lines == ("flask<4,>=3.0", 'redis[hiredis]<5.1,>=5.0; sys_platform == "linux"')
    assert reqs.constraints == ("flask==3.1.0", "redis==5.0.8")


@pytest.mark.parametrize("text, message", [
    ("[project]\nname = 'x'\n", "no \\[project\\] dependencies"),
    ("[project]\nname = 'x'\ndynamic = ['dependencies']\n", "dynamic"),
    ("[project\n", "not valid TOML"),
    ("[project]\ndependencies = ['flask @ https://example.com/f.whl']\n", "direct reference"),
    ("[project]\ndependencies = ['-e .']\n", "pip option"),
])
def test_a_pyproject_flask_ops_cannot_use_is_refused_in_one_line(tmp_path, text, message):
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(OpsError, match=message) as err:
        requirements.read(tmp_path / "pyproject.toml", tmp_path)
    assert "\n" not in str(err.value)


def test_a_src_layout_finds_the_pyproject_at_the_project_root(tmp_path):
    shutil.copytree(GUESTBOOK / "guestbook", tmp_path / "src" / "guestbook")
    shutil.copy(GUESTBOOK / "pyproject.toml", tmp_path)
    s = load(tmp_path, source="src")
    assert s.requirements_file == tmp_path / "pyproject.toml"
    with pytest.raises(SettingsError, match="requirements"):
        load(tmp_path / "src" / "guestbook", source=".")  # no dependencies anywhere


def test_a_src_layout_ships_its_project_root_and_imports_the_app_from_src(tmp_path):
    """Flask's Celery example (and Flask-Migrate projects) keep files the deploy needs beside
    src/: make_celery.py, migrations/. init ships the root and imports the app from src/; the
    release's entry, its runner and the collect all see the same sys.path."""
    from ops.build import scaffold
    import yaml

    shutil.copytree(GUESTBOOK / "guestbook", tmp_path / "src" / "guestbook")
    shutil.copy(GUESTBOOK / "pyproject.toml", tmp_path)
    shutil.copy(GUESTBOOK / "uv.lock", tmp_path)
    (tmp_path / "make_worker.py").write_text("from guestbook import create_app\napp = create_app()\n")
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "env.py").write_text("# alembic\n")
    text = scaffold.plan(tmp_path)["fabric.yaml"]
    raw = yaml.safe_load(text)["deploy"]
    assert (raw["source"], raw["python_path"], raw["wsgi"]) == (".", "src", "guestbook:create_app()")
    s = settings.load({**raw, "server_names": ["guestbook.test"]}, project_root=tmp_path)
    tree, _, files, _, _ = release.stage_tree(s)
    shipped = {p.relative_to(tree).as_posix() for p in tree.rglob("*")}
    assert {"make_worker.py", "migrations/env.py", "src/guestbook/__init__.py"} <= shipped
    assert (tree / "collected_static/static/style.css").is_file()  # imported from src/
    # The project's metadata sits on sys.path with its code, as an install leaves it.
    assert "src/guestbook-1.0.0.dist-info/METADATA" in shipped
    entry = next(f.content for f in files if f.path == s.wsgi_file)
    assert 'os.path.join(RELEASE_DIR, "src")' in entry
    runner = next(f.content for f in files if f.path == s.run_file)
    assert '"PYTHONPATH": f"{RELEASE_DIR}/src:" + RELEASE_DIR' in runner


@pytest.mark.parametrize("value", ["../x", "/src", "src/../..", "venv", "a;b", "missing"])
def test_a_python_path_outside_the_source_or_missing_is_refused(guestbook, value):
    with pytest.raises(SettingsError, match="python_path"):
        load(guestbook, python_path=value)


def test_an_app_at_the_repository_root_builds_a_release_without_its_build_output(guestbook):
    s = load(guestbook, shared_dirs=["logs"], shared_files=["settings.local.cfg"])
    before = sorted(p.relative_to(guestbook) for p in guestbook.rglob("*"))
    tree, _, _, statics, links = release.stage_tree(s)
    # The build happened outside the project, and nothing of it is in the release.
    assert guestbook not in tree.parents
    assert sorted(p.relative_to(guestbook) for p in guestbook.rglob("*")) == before
    shipped = {p.relative_to(tree).as_posix() for p in tree.rglob("*")}
    assert "guestbook/__init__.py" in shipped and "pyproject.toml" in shipped
    assert not [p for p in shipped if p.split("/")[0] in ("instance", "logs", "build")]
    assert (tree / "collected_static/static/style.css").is_file()
    # Its own metadata, as an install leaves it: the app reads its version at import.
    assert "guestbook-1.0.0.dist-info/METADATA" in shipped
    # Flask's instance folder (found by importing the app), then the user's shared paths.
    assert links == ("dir:instance", "dir:logs", "file:settings.local.cfg")


@pytest.mark.parametrize("key, value", [
    ("shared_dirs", ["../data"]), ("shared_dirs", ["/var/data"]), ("shared_dirs", ["a/./b"]),
    ("shared_dirs", ["venv"]), ("shared_dirs", [".flask-ops/x"]), ("shared_files", ["a;b"]),
    ("shared_dirs", ["collected_static"]), ("shared_dirs", "logs\nx"),
])
def test_shared_paths_outside_the_release_or_over_its_own_parts_are_refused(guestbook, key, value):
    with pytest.raises(SettingsError, match=key):
        load(guestbook, **{key: value})


def test_shared_paths_may_not_nest_or_hold_the_apps_code(guestbook):
    with pytest.raises(SettingsError, match="shared_files"):
        load(guestbook, shared_dirs=["var"], shared_files=["var/x.cfg"])
    s = load(guestbook, shared_dirs=["guestbook/templates"])
    with pytest.raises(OpsError, match="shared_dirs: guestbook/templates holds "
                                       "guestbook/templates/index.html"):
        release.stage_tree(s)


def test_init_describes_a_pyproject_app_at_the_repository_root(guestbook):
    from ops.build import scaffold
    import yaml

    text = scaffold.plan(guestbook)["fabric.yaml"]
    assert "# dependencies: pyproject.toml, pinned by uv.lock" in text
    raw = yaml.safe_load(text)["deploy"]
    assert (raw["app_name"], raw["source"], raw["wsgi"]) == ("guestbook", ".", "guestbook:create_app()")


def test_the_build_imports_the_app_with_its_own_environment(tmp_path, monkeypatch):
    """A factory that reads DATABASE_URL and SECRET_KEY at import: the build (collect) sees the
    description's env and a stand-in for the secret the host generates, never this shell's."""
    from conftest import make_project
    from ops.deploy import appenv
    from ops.build import build
    monkeypatch.setenv("LAPTOP_ONLY", "from-the-shell")
    s = make_project(tmp_path, {"app.py": ("import datetime", (
        "import os\nassert os.environ['DATABASE_URL'] == 'sqlite:////srv/x.db'\n"
        "assert os.environ['SECRET_KEY'].startswith('flask-ops-build-only-')\n"
        "assert 'LAPTOP_ONLY' not in os.environ\nimport datetime"))},
        {"env": {"DATABASE_URL": "sqlite:////srv/x.db"}})
    out, count, _ = build.collectstatic(s, tmp_path / "c",
                                        env=build.app_environment(appenv.resolve(s)))
    assert count > 0


def test_the_console_script_needs_no_fabfile(guestbook):
    """`flask-ops init`, then any task, in a project that has only its fabric.yaml."""
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "ops.cli", *args], cwd=guestbook, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})

    assert cli("init").returncode == 0
    (guestbook / "fabfile.py").unlink()
    text = (guestbook / "fabric.yaml").read_text().replace(
        "  server_names: ", "  server_names: [guestbook.test] ", 1)
    (guestbook / "fabric.yaml").write_text(text)
    listed = cli("--list")
    assert listed.returncode == 0 and "deploy" in listed.stdout and "rollback" in listed.stdout
    out = guestbook.parent / "rendered"
    result = cli("render", "--out", str(out))
    assert result.returncode == 0, result.stdout
    assert "server_name guestbook.test;" in (out / "etc/nginx/sites-available/guestbook.conf").read_text()


def test_a_git_ref_is_deployed_from_a_clean_checkout_never_the_working_tree(guestbook, tmp_path, monkeypatch):
    """`fab deploy --ref v1` builds what v1 holds, whatever the working tree has now; a dirty
    tree is refused under require_clean and warned about otherwise."""
    import subprocess
    from ops.deploy import deploy
    from ops.errors import SettingsError
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def git(*args):
        subprocess.run(["git", "-C", str(guestbook), "-c", "user.name=t", "-c", "user.email=t@t",
                        *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "v1")
    git("tag", "v1")
    template = guestbook / "guestbook/templates/index.html"
    template.write_text(template.read_text().replace("<h1>Guestbook</h1>", "<h1>Uncommitted</h1>"))
    s = load(guestbook)
    said = []
    at = deploy.source_at(s, "v1", out=said.append)
    assert "v1 = " in said[0]
    tree, _, _, _, _ = release.stage_tree(at)
    assert "<h1>Guestbook</h1>" in (tree / "guestbook/templates/index.html").read_text()
    assert deploy.record(at)["commit"] and "+dirty" not in deploy.record(at)["commit"]
    said.clear()
    assert deploy.source_at(s, out=said.append).project_root == s.project_root  # the working tree
    assert "uncommitted changes" in said[0]
    with pytest.raises(OpsError, match="require_clean"):
        deploy.source_at(load(guestbook, require_clean=True), out=said.append)
    with pytest.raises(OpsError, match="no such branch, tag or commit"):
        deploy.source_at(s, "v9", out=said.append)
    with pytest.raises(SettingsError, match="--ref"):
        deploy.source_at(s, "--upload-pack=x", out=said.append)
    assert deploy.source_at(load(guestbook, ref="v1"), out=said.append).project_root != s.project_root


def test_a_build_is_the_same_whether_or_not_it_collected(tmp_path, monkeypatch):
    """Importing the app to collect writes nothing into the release (no __pycache__, even
    where PYTHONDONTWRITEBYTECODE is not set): the next build of the same source has the same
    digest, so its deploy is a no-op."""
    from conftest import make_project
    from ops.deploy import appenv
    from ops.build import build
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    s = make_project(tmp_path / "p")
    env = build.app_environment(appenv.resolve(s))
    first = release.stage_tree(s, None, env)
    assert not list(first[0].rglob("__pycache__"))
    assert release.stage_tree(s, None, env)[1] == first[1]


def test_the_projects_metadata_is_what_an_install_would_leave():
    files = projectmeta.dist_info({"project": {
        "name": "My-App", "version": "2.0.1", "scripts": {"myapp": "my_app.cli:main"},
        "entry-points": {"flask.commands": {"seed": "my_app.cli:seed"}}}})
    assert files["my_app-2.0.1.dist-info/METADATA"].splitlines()[1:] == ["Name: My-App", "Version: 2.0.1"]
    assert files["my_app-2.0.1.dist-info/entry_points.txt"] == (
        "[console_scripts]\nmyapp = my_app.cli:main\n\n[flask.commands]\nseed = my_app.cli:seed\n")
    poetry = projectmeta.dist_info({"tool": {"poetry": {"name": "shop", "version": "1.0"}}})
    assert list(poetry) == ["shop-1.0.dist-info/METADATA", "shop-1.0.dist-info/INSTALLER"]
    # A dynamic version is the build backend's to know: no metadata rather than a wrong one.
    assert projectmeta.dist_info({"project": {"name": "x", "dynamic": ["version"]}}) == {}


@pytest.mark.parametrize("project", [
    {"name": "../../etc", "version": "1"}, {"name": "x", "version": "1/../../y"},
    {"name": "x", "version": "1\nName: y"}, {"name": "x", "version": "1", "scripts": {"a": "x:y\n[z]"}},
    {"name": "x", "version": "1", "scripts": {"a=b": "x:y"}},
    {"name": "x", "version": "1", "entry-points": {"g]\n[h": {"a": "x:y"}}},
])
def test_a_name_or_entry_point_that_is_not_one_is_refused_in_one_line(project):
    with pytest.raises(OpsError) as err:
        projectmeta.dist_info({"project": project})
    assert "pyproject.toml: [project]" in str(err.value) and "\n" not in str(err.value)


SETUP_PY = '''\
from setuptools import find_packages, setup

setup(
    name="guestbook",
    version="2.5.0",
    packages=find_packages(),
    install_requires=["flask>=3.0", 'tomli>=2; python_version < "3.11"'],
    extras_require={"test": ["pytest"]},
    entry_points={"flask.commands": ["sign-all = guestbook:create_app"]},
)
'''


def test_a_setup_py_project_gets_its_dependencies_and_metadata_from_its_backend(guestbook, tmp_path,
                                                                              monkeypatch):
    """No requirements file and no static pyproject dependencies: setup.py's install_requires
    (never an extra's), its version and entry points, as its backend builds them from a copy
    of what ships; nothing is written into the project, and the next build asks the cache."""
    from ops.build import backendmeta
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (guestbook / "pyproject.toml").unlink()
    (guestbook / "uv.lock").unlink()
    (guestbook / "setup.py").write_text(SETUP_PY)
    before = sorted(p.relative_to(guestbook) for p in guestbook.rglob("*"))
    s = load(guestbook)
    assert s.requirements_file.name == "setup.py"
    reqs = build.requirements(s)
    assert reqs.lines == ("flask>=3.0", 'tomli>=2; python_version < "3.11"') and not reqs.constraints
    staged = build.stage_source(s, build.build_root(s) / "staged")
    info = staged / "guestbook-2.5.0.dist-info"
    assert "Version: 2.5.0" in (info / "METADATA").read_text()
    assert "sign-all = guestbook:create_app" in (info / "entry_points.txt").read_text()
    assert sorted(p.relative_to(guestbook) for p in guestbook.rglob("*")) == before
    monkeypatch.setattr(backendmeta, "_build", lambda *a: pytest.fail("built again"))
    assert build.requirements(load(guestbook)).lines == reqs.lines  # this process's memory
    backendmeta._SEEN.clear()
    assert build.requirements(load(guestbook)).lines == reqs.lines  # the cache on disk


def test_a_setup_py_that_fails_names_the_project_and_the_backends_error(guestbook, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (guestbook / "pyproject.toml").unlink()
    (guestbook / "setup.py").write_text("raise SystemExit('no setup for you')\n")
    with pytest.raises(OpsError, match="its build backend could not build the project"):
        build.requirements(load(guestbook))


HATCH_HOOK = '''\
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        # as I Hate Money compiles its translation catalogs (.po to .mo) at build time
        out = Path(self.root, "guestbook", "translations", "fr")
        out.mkdir(parents=True, exist_ok=True)
        (out / "messages.mo").write_bytes(b"compiled " + (out / "messages.po").read_bytes())
'''


def test_what_the_build_backend_writes_as_it_builds_ships_beside_the_package(guestbook, tmp_path,
                                                                            monkeypatch):
    """A hatch build hook compiles translations that git ignores: the release has them where
    `pip install .` would put them, built from a copy (the project is left as it was), and a
    file the source ships is never replaced by the backend's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (guestbook / "hatch_build.py").write_text(HATCH_HOOK)
    pyproject = guestbook / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.hatch.build.hooks.custom]\n'
                         '[tool.hatch.build]\nartifacts = ["guestbook/translations/**/*.mo"]\n')
    catalog = guestbook / "guestbook/translations/fr/messages.po"
    catalog.parent.mkdir(parents=True)
    catalog.write_text('msgid "Sign"\nmsgstr "Signer"\n')
    before = sorted(p.relative_to(guestbook) for p in guestbook.rglob("*"))
    s = load(guestbook)
    staged = build.stage_source(s, build.build_root(s) / "staged")
    compiled = staged / "guestbook/translations/fr/messages.mo"
    assert compiled.read_bytes() == b'compiled msgid "Sign"\nmsgstr "Signer"\n'
    assert (staged / "guestbook/__init__.py").read_bytes() == (guestbook / "guestbook/__init__.py").read_bytes()
    assert sorted(p.relative_to(guestbook) for p in guestbook.rglob("*")) == before
    # The hook's output changes with the catalog: a new build, a new release.
    catalog.write_text('msgid "Sign"\nmsgstr "Signez"\n')
    staged = build.stage_source(s, build.build_root(s) / "staged")
    assert (staged / "guestbook/translations/fr/messages.mo").read_bytes().endswith(b'"Signez"\n')


def test_a_build_is_recognised_from_its_inputs_and_only_from_them(project, tmp_path, monkeypatch):
    """A deploy of an unchanged project takes the last build's record (no tree, no render);
    any change to a file the build reads, the settings or the environment builds again, and
    a tree made late for a recognised build must be that build."""
    from ops.build import buildcache
    from ops.deploy import appenv, deploy
    from ops.deploy.steps import Steps

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    s = project()
    first = deploy.build(s, Steps(lambda m: None))
    again = deploy.build(s, Steps(lambda m: None))
    assert first.tree is not None and again.tree is None
    assert (again.release.digest, again.release.files, again.release.statics) == (
        first.release.digest, first.release.files, first.release.statics)
    assert again.release.requirements_digest == first.release.requirements_digest
    assert again.tree_now().is_dir()  # built when a host needs the upload: the same build
    env = appenv.resolve(s)
    key = buildcache.signature(s, None, env)
    (s.source_dir / ".git").mkdir()  # what git touches on every status never counts
    assert buildcache.signature(s, None, env) == key
    app = s.source_dir / "app.py"
    app.write_text(app.read_text().replace("Hello", "Hi"))
    assert buildcache.signature(s, None, env) != key
    assert deploy.build(s, Steps(lambda m: None)).tree is not None  # built again
    late = deploy.build(s, Steps(lambda m: None))
    app.write_text(app.read_text() + "\n# edited while deploying\n")
    with pytest.raises(OpsError, match="source changed during the deploy"):
        late.tree_now()
    now = buildcache.signature(s, None, env)
    assert buildcache.signature(dataclasses.replace(s, processes=s.processes + 1), None, env) != now
    assert buildcache.signature(s, None, appenv.Resolved((("TOKEN", "x"),), ())) != now
    # what cannot be told for sure is never recognised: a pattern that brings files back
    assert buildcache.signature(dataclasses.replace(s, exclude=("!build/",)), None, env) is None
    (s.source_dir / "requirements.txt").write_text("-r ../common.txt\n")
    assert buildcache.signature(s, None, env) is None  # a file outside what it walks
