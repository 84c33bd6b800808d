"""fab init: the app description and fabfile for a project that has neither, from importing
the app as a user's project holds it; never overwriting, never a traceback."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ops.build import scaffold
from ops.config import settings
from ops.errors import OpsError

from conftest import ROOT, fab

SHOP = ROOT / "tests" / "apps" / "shop"


def init(cwd):
    return subprocess.run([sys.executable, "-m", "ops", "init"], cwd=cwd, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def described(root, **filled):
    raw = yaml.safe_load((root / "fabric.yaml").read_text())["deploy"]
    return settings.load({**raw, **filled}, project_root=root)


@pytest.fixture
def shop(tmp_path):
    shutil.copytree(SHOP, tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_init_describes_an_app_factory_project_with_a_blueprint_and_a_stream(shop):
    result = init(shop)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines() == ["wrote    fabric.yaml", "wrote    fabfile.py"]
    text = (shop / "fabric.yaml").read_text()
    assert "/admin/admin-static/, /static/" in text  # every static prefix it found
    assert "GET          /feed  (streams)" in text
    s = described(shop, server_names=["shop.test"])
    assert (s.app_name, s.source, s.wsgi) == ("shop", "src", "wsgi:app")
    assert s.streaming == ("/feed",) and s.smoke_stream == "/feed"
    assert s.healthz is None and s.smoke == (settings.SmokePage("/"),)
    # Until the server name is filled in, every task refuses, naming the key.
    with pytest.raises(OpsError, match=r"deploy\.server_names is required"):
        described(shop)
    # The fabfile makes the tasks available.
    listed = fab("--list", cwd=shop)
    assert "deploy" in listed.stdout and "init" in listed.stdout, listed.stdout


def test_init_never_overwrites(shop):
    (shop / "fabfile.py").write_text("# mine\n")
    assert init(shop).returncode == 0
    first = (shop / "fabric.yaml").read_text()
    (shop / "fabric.yaml").write_text(first + "# edited\n")
    result = init(shop)
    assert result.returncode == 0
    assert "kept     fabric.yaml (exists; not overwritten)" in result.stdout
    assert (shop / "fabfile.py").read_text() == "# mine\n"
    assert (shop / "fabric.yaml").read_text() == first + "# edited\n"


def test_a_symlinked_fabric_yaml_is_never_written_through(shop, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "target"
    (shop / "fabric.yaml").symlink_to(elsewhere)
    assert init(shop).returncode == 0
    assert not elsewhere.exists()


FACTORY_ONLY = '''
from flask import Flask, Response

def create_app(config=None):
    app = Flask(__name__, static_url_path="/assets")

    @app.get("/health")
    def health():
        return "ok"

    @app.get("/api/items/<int:n>")
    def item(n):
        return {"n": n}

    @app.get("/events/<topic>")
    def events(topic):
        def gen():
            yield "data: 1\\n\\n"
        return Response(gen(), mimetype="text/event-stream")

    return app
'''


def test_init_finds_a_factory_a_health_route_and_a_stream_under_a_variable_path(tmp_path):
    pkg = tmp_path / "inventory"
    (pkg / "static").mkdir(parents=True)
    (pkg / "static" / "site.css").write_text("body {}\n")
    (pkg / "__init__.py").write_text(FACTORY_ONLY)
    (tmp_path / "requirements.txt").write_text("flask>=3.0,<4\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text("from flask import Flask\napp = Flask('t')\n")
    result = init(tmp_path)
    assert result.returncode == 0, result.stdout
    s = described(tmp_path, server_names=["inventory.test"])
    assert (s.app_name, s.source, s.wsgi) == ("inventory", ".", "inventory:create_app()")
    assert s.static_url == "/assets/" and s.healthz == "/health"
    assert s.streaming == ("/events/",) and s.smoke_stream == ""  # no plain URL to time
    assert s.smoke == (settings.SmokePage("/health"),)  # there is no GET /


@pytest.mark.parametrize("files, message", [
    ({"README.md": "hello\n"}, "no Flask app found under"),
    ({"app.py": "from flask import Flask\napp = Flask(__name__)\n"}, "but no requirements.txt"),
    ({"app.py": "import nosuchmodule\nfrom flask import Flask\napp = Flask(__name__)\n",
      "requirements.txt": "flask>=3.0,<4\n"},
     "importing the app failed: cannot load the app from app:app: ModuleNotFoundError"),
])
def test_a_project_init_cannot_describe_is_one_line_and_nothing_written(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = init(tmp_path)
    assert result.returncode == 1 and message in result.stdout, result.stdout
    assert "Traceback" not in result.stdout
    assert not (tmp_path / "fabric.yaml").exists() and not (tmp_path / "fabfile.py").exists()


def test_candidates_prefer_the_entry_module_then_any_app_object_then_factories(tmp_path):
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("def create_app():\n    pass\n")
    (tmp_path / "shop" / "other.py").write_text("from flask import Flask\nweb = Flask('x')\n")
    (tmp_path / "wsgi.py").write_text("from shop import create_app\napp = create_app()\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "app.py").write_text("from flask import Flask\napp = Flask('x')\n")
    found = [c.text for c in scaffold.candidates(tmp_path)]
    assert found == ["wsgi:app", "shop.other:web", "shop:create_app()"]


def test_init_names_only_pages_a_visitor_without_a_session_gets(tmp_path):
    """A stream and a home page behind a login (302) are never smoke checks; a health route
    that answers is; nothing was requested but /, the health routes and the streams."""
    (tmp_path / "requirements.txt").write_text("flask>=3.0,<4\n")
    (tmp_path / "app.py").write_text(
        "from flask import Flask, Response, redirect\napp = Flask(__name__)\nHITS = []\n\n"
        "@app.route('/')\ndef index():\n    return redirect('/login')\n\n"
        "@app.route('/login')\ndef login():\n    return 'log in'\n\n"
        "@app.route('/logout')\ndef logout():\n    HITS.append(1)\n    raise SystemExit('requested')\n\n"
        "@app.route('/healthz')\ndef healthz():\n    return 'ok'\n\n"
        "@app.route('/events')\ndef events():\n    def gen():\n        yield 'x'\n"
        "    return redirect('/login')\n")
    text = scaffold.plan(tmp_path)["fabric.yaml"]
    raw = yaml.safe_load(text)["deploy"]
    assert raw["healthz"] == "/healthz" and raw["smoke"] == [{"path": "/healthz"}]
    assert "smoke_stream" not in raw and raw["streaming"] == ["/events"]


@pytest.mark.parametrize("files, found", [
    # hatch-requirements-txt reads requirements/base.in: its pip-compiled pins are used
    ({"pyproject.toml": "[project]\nname = 'cal'\ndynamic = ['dependencies']\n"
                        "[tool.hatch.metadata.hooks.requirements_txt]\nfiles = ['requirements/base.in']\n",
      "requirements/base.in": "flask\n", "requirements/base.txt": "flask==3.1.1\n"},
     "requirements/base.txt"),
    ({"requirements/production.txt": "-r base.txt\n", "requirements/base.txt": "flask\n"},
     "requirements/production.txt"),
    ({"requirements-prod.txt": "flask\n"}, "requirements-prod.txt"),
    # a file the hook names outside the project is not the project's
    ({"pyproject.toml": "[tool.hatch.metadata.hooks.requirements_txt]\nfiles = ['../x.txt']\n"}, None),
    # a value where a table belongs is no hook (and no traceback)
    ({"pyproject.toml": "[tool.hatch]\nmetadata = 'x'\n"}, None),
])
def test_init_finds_pinned_requirements_outside_requirements_txt(tmp_path, files, found):
    root = tmp_path / "project"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "x.txt").write_text("flask\n")
    path = scaffold.dependencies_file(root, root)
    assert (path.relative_to(root).as_posix() if path else None) == found


def test_init_finds_websocket_routes_and_chooses_the_stack_that_carries_them(tmp_path):
    """A Flask-Sock app (tests/apps/chat): its websocket route becomes `websockets:` on stack
    nginx-gunicorn, and is not taken for a stream."""
    shutil.copytree(ROOT / "tests" / "apps" / "chat", tmp_path, dirs_exist_ok=True)
    result = init(tmp_path)
    assert result.returncode == 0, result.stdout
    text = (tmp_path / "fabric.yaml").read_text()
    assert "GET          /ws  (websocket)" in text, text
    s = described(tmp_path, server_names=["chat.test"])
    assert (s.stack, s.websockets, s.streaming) == ("nginx-gunicorn", ("/ws",), ("/time",))


def test_init_says_which_of_several_entry_points_it_chose_and_why(tmp_path):
    """An entry module that cannot be imported is passed over for the next candidate; the
    description names the others and the order they were tried in."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "requirements.txt").write_text("flask>=3.0,<4\n")
    (tmp_path / "shop" / "__init__.py").write_text(
        "def create_app():\n    from flask import Flask\n    return Flask('shop')\n")
    (tmp_path / "shop" / "other.py").write_text("from flask import Flask\nweb = Flask('x')\n")
    (tmp_path / "wsgi.py").write_text("import nosuchmodule\nfrom shop import create_app\napp = create_app()\n")
    text = scaffold.plan(tmp_path)["fabric.yaml"]
    assert yaml.safe_load(text)["deploy"]["wsgi"] == "shop.other:web"
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index("#   chosen as the first that imports of: an app object in an entry "
                        "module (wsgi.py, app.py, ...),")
    assert lines[start + 2:start + 4] == ["#     wsgi:app  (could not be imported)",
                                          "#     shop:create_app()"]
