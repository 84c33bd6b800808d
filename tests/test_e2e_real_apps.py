"""End to end with real open-source Flask apps, unchanged (tests/realapps.py: their published
sdists, pinned): each described by what `flask-ops init` wrote plus the server name, the host
and what its own README asks for, deployed with the `flask-ops` command of a fresh wheel, then
used as a visitor would, changed and deployed again.

- flaskr, Flask's tutorial: pyproject.toml only (flit), at its repository's root, an app
  factory with blueprints, SQLite in Flask's instance folder, `flask init-db`, a login and
  form POSTs that write to the database.
- js_example, Flask's JavaScript example: pyproject.toml only, no static folder, a POST
  answered with JSON.
- Open Web Calendar: an app at its repository's root (app.py), its dependencies pinned in
  requirements/base.txt (read by hatch-requirements-txt), configuration from the environment,
  static files inside its package.
- I Hate Money: pyproject.toml (hatchling), Flask-SQLAlchemy with Flask-Migrate (its schema is
  upgraded by alembic as the app starts), a settings file named by an environment variable,
  a REST API whose clients keep their data across a code change.
- Flask's Celery example: a `src/` layout with `make_celery.py` at the project's root, pinned
  requirements.txt (redis with its `async-timeout` marker), a Celery worker, Redis as broker
  and result backend, configuration from the environment (`app.config.from_prefixed_env()`).
"""

import base64
import json
import re
import time
import urllib.parse

import pytest
import yaml

import realapps
from conftest import APACHE_HOST, NGINX_HOST, remove_app, run_tool as run
from ops import staging
from ops.config import settings
from ops.deploy import deploy, smoke

pytestmark = pytest.mark.e2e


def described(tool, app, root, host, server_name, extra=""):
    """The app's project as its sdist has it, `flask-ops init` run in it, then the server
    name, the host and `extra` (the README's asks) added as a user would."""
    realapps.project(app, root)
    code, out = run(tool, "init", cwd=root)
    assert code == 0, out
    text = (root / "fabric.yaml").read_text()
    text = re.sub(r"^  server_names: *", f"  server_names: [{server_name}] ", text, count=1, flags=re.M)
    text = re.sub(r"^  # hosts: \[[^]]*\]", f"  hosts: [{host}]", text, count=1, flags=re.M)
    (root / "fabric.yaml").write_text(text + extra)
    assert not (root / "instance").exists()  # init imported a copy: nothing written here
    return settings.load(yaml.safe_load(text + extra)["deploy"], project_root=root)


def post(target, path, fields, cookie=None, headers=None):
    """(status, response, body) of a form POST through the front server."""
    conn = target.connection()
    try:
        headers = {"Host": target.host, "Content-Type": "application/x-www-form-urlencoded",
                   **(headers or {})}
        body = urllib.parse.urlencode(fields)
        if cookie:
            headers["Cookie"] = cookie
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response, response.read()
    finally:
        conn.close()


def get(target, path, cookie=None, headers=None):
    conn = target.connection()
    try:
        conn.request("GET", path, headers={"Host": target.host, **(headers or {}),
                                           **({"Cookie": cookie} if cookie else {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def first_deploy(corpus_hosts, flask_ops_tool):
    """`flask-ops provision deploy` in the project, as its user types it: (host, target).
    The app is removed from the host afterwards."""
    made = []

    def deployed(name, s, root):
        host = staging.remote(name)
        made.append((host, s))
        code, out = run(flask_ops_tool, "provision", "deploy", cwd=root)
        assert code == 0, out[-3000:]
        return host, deploy.target_for(s, host)
    yield deployed
    for host, s in made:
        remove_app(host, s)
        host.close()


# flaskr's README: `flask --app flaskr init-db` once, before it serves (init-db drops its
# tables: a hook that ran it at every deploy would lose the data).
FLASKR_EXTRA = """\
  hooks:
    before_switch: ["sh -c 'test -e instance/flaskr.sqlite || flask init-db'"]
"""


def test_flasks_tutorial_app_deploys_from_its_repository_root_and_keeps_its_posts(
        flask_ops_tool, first_deploy, tmp_path):
    root = tmp_path / "flaskr"
    s = described(flask_ops_tool, "flaskr", root, NGINX_HOST, "flaskr.test", FLASKR_EXTRA)
    text = (root / "fabric.yaml").read_text()
    assert "app_name: flaskr" in text and 'source: "."' in text
    assert 'wsgi: "flaskr:create_app()"' in text and "# dependencies: pyproject.toml" in text
    host, target = first_deploy(NGINX_HOST, s, root)
    status, page = get(target, "/")
    assert status == 200 and b"Posts" in page
    css = smoke.request(target, "/static/style.css")
    assert css.status == 200 and css.body == (root / "flaskr/static/style.css").read_bytes()
    assert css.header("Cache-Control") == "public, no-cache"  # served by nginx, not Flask
    status, _, _ = post(target, "/auth/register", {"username": "ada", "password": "lovelace"})
    assert status == 302
    status, response, _ = post(target, "/auth/login", {"username": "ada", "password": "lovelace"})
    assert status == 302
    cookie = response.getheader("Set-Cookie").split(";")[0]
    status, _, _ = post(target, "/create", {"title": "First post", "body": "from staging"}, cookie)
    assert status == 302
    assert b"First post" in get(target, "/")[1]
    assert host.run(f"stat -c %U {s.base}/shared/linked/instance/flaskr.sqlite", "stat").stdout.split() \
        == ["flaskr"]

    # A code change: the hook leaves the database alone, the post and the session survive.
    template = root / "flaskr/templates/blog/index.html"
    template.write_text(template.read_text().replace("Posts", "All posts"))
    code, out = run(flask_ops_tool, "deploy", cwd=root)
    assert code == 0, out[-3000:]
    status, page = get(target, "/", cookie)
    assert status == 200 and b"All posts" in page and b"First post" in page and b"Log Out" in page


def test_flasks_javascript_example_answers_its_json_api(flask_ops_tool, first_deploy, tmp_path):
    root = tmp_path / "js_example"
    s = described(flask_ops_tool, "js_example", root, NGINX_HOST, "js.test")
    assert "# no static folder found" in (root / "fabric.yaml").read_text()
    _, target = first_deploy(NGINX_HOST, s, root)
    status, page = get(target, "/")
    assert status == 200 and b"fetch" in page
    status, _, body = post(target, "/add", {"a": "2", "b": "3.5"})
    assert status == 200 and json.loads(body) == {"result": 5.5}


def test_open_web_calendar_deploys_from_its_pinned_requirements_with_its_environment(
        flask_ops_tool, first_deploy, tmp_path):
    root = tmp_path / "open-web-calendar"
    s = described(flask_ops_tool, "open_web_calendar", root, APACHE_HOST, "calendar.test",
                  # its README: configuration from environment variables
                  "  env: {CACHE_REQUESTED_URLS_FOR_SECONDS: '60', SOURCE_TIMEOUT: '5'}\n")
    text = (root / "fabric.yaml").read_text()
    assert 'requirements: "requirements/base.txt"' in text
    assert 'wsgi: "open_web_calendar.app:app"' in text
    _, target = first_deploy(APACHE_HOST, s, root)
    status, page = get(target, "/")
    assert status == 200 and b"<title>Open Web Calendar</title>" in page
    status, page = get(target, "/about.html")
    assert status == 200
    static = root / "open_web_calendar/static/css/index.css"
    url = "/static/css/index.css"
    css = smoke.request(target, url)
    assert css.status == 200 and css.body == static.read_bytes()
    # The environment reached the app (its own config object reads os.environ).
    code, out = run(flask_ops_tool, "exec", "--", "python", "-c",
                    "from open_web_calendar.config import environment as e; "
                    "print('expire', e.cache_expire_after, 'timeout', e.requests_timeout)", cwd=root)
    assert code == 0 and "expire 60 timeout 5" in out, out


# I Hate Money's docs: a settings file (from conf-templates/ihatemoney.cfg.j2) named by
# IHATEMONEY_SETTINGS_FILE_PATH, with the database's URI and a secret key. The user keeps it
# in the project and lets it read what the deployment gives the app.
IHATEMONEY_CFG = """\
import os

SQLALCHEMY_DATABASE_URI = "sqlite:///" + os.path.join(os.environ["FLASK_OPS_DATA_DIR"],
                                                      "ihatemoney.sqlite")
SECRET_KEY = os.environ["SECRET_KEY"]
"""
IHATEMONEY_EXTRA = """\
  env: {IHATEMONEY_SETTINGS_FILE_PATH: /srv/ihatemoney/current/ihatemoney.cfg}
"""


def test_i_hate_money_migrates_its_database_and_keeps_it_across_a_deploy(
        flask_ops_tool, first_deploy, tmp_path):
    root = tmp_path / "ihatemoney"
    s = described(flask_ops_tool, "ihatemoney", root, APACHE_HOST, "money.test", IHATEMONEY_EXTRA)
    (root / "ihatemoney.cfg").write_text(IHATEMONEY_CFG)
    # As its git repository has it: the translation catalogs are compiled by its hatch build
    # hook (.mo files are git-ignored), never committed.
    for compiled in root.glob("ihatemoney/translations/*/LC_MESSAGES/messages.mo"):
        compiled.unlink()
    assert 'wsgi: "ihatemoney.wsgi:application"' in (root / "fabric.yaml").read_text()
    host, target = first_deploy(APACHE_HOST, s, root)
    status, page = get(target, "/")
    assert status == 200 and "I Hate Money".encode() in page
    status, page = get(target, "/", headers={"Accept-Language": "fr"})
    assert status == 200 and "Gérez facilement <br />vos dépenses partagées".encode() in page
    icon = smoke.request(target, "/static/images/plus.svg")
    assert icon.status == 200 and icon.body == (root / "ihatemoney/static/images/plus.svg").read_bytes()
    # An API client creates a project and a member: rows in the SQLite database of the
    # app's data directory, whose schema alembic made as the app started.
    status, _, body = post(target, "/api/projects", {
        "name": "Trip", "id": "trip", "password": "s3cret-pass", "contact_email": "ada@example.com",
        "default_currency": "EUR"})
    assert status == 201 and json.loads(body) == "trip", body
    auth = {"Authorization": "Basic " + base64.b64encode(b"trip:s3cret-pass").decode()}
    status, _, body = post(target, "/api/projects/trip/members", {"name": "ada"}, headers=auth)
    assert status == 201, body
    db = f"{s.data_dir}/ihatemoney.sqlite"
    out = host.run(f"stat -c %U {db}; python3 -c \"import sqlite3; print(sqlite3.connect("
                   f"'{db}').execute('select version_num from alembic_version').fetchone()[0])\"",
                   "database").stdout.split()
    assert out[0] == "ihatemoney" and len(out) == 2 and out[1], out  # migrated, the app's own

    # A code change: the project and its member are still there.
    layout = root / "ihatemoney/templates/layout.html"
    layout.write_text(layout.read_text().replace("<title>", "<title>Ours: "))
    code, out = run(flask_ops_tool, "deploy", cwd=root)
    assert code == 0, out[-3000:]
    status, page = get(target, "/")
    assert status == 200 and b"<title>Ours: " in page
    status, body = get(target, "/api/projects/trip", headers=auth)
    project = json.loads(body)
    assert status == 200 and project["name"] == "Trip", body
    assert [m["name"] for m in project["members"]] == ["ada"]


# The Celery example's README: a Celery worker (`celery -A make_celery worker`) beside the app,
# and Redis. Redis runs on the app host (installed, stopped, in the staging image); the app and
# its worker are pointed at its databases 2 and 3 through Flask's prefixed environment.
CELERY_EXTRA = """\
  workers:
    celery: "celery -A make_celery worker --loglevel INFO --concurrency 2"
  env:
    FLASK_CELERY__broker_url: "redis://localhost:6379/2"
    FLASK_CELERY__result_backend: "redis://localhost:6379/3"
"""


def task_result(target, result_id, deadline=60):
    """The example's result API polled as its page's JavaScript does, until the task is ready."""
    end = time.monotonic() + deadline
    while True:
        status, body = get(target, f"/tasks/result/{result_id}")
        assert status == 200, body
        result = json.loads(body)
        if result["ready"] or time.monotonic() > end:
            return result
        time.sleep(0.2)


@pytest.fixture
def redis_on(corpus_hosts):
    """Start the host's Redis (as its user would have: apt install redis-server); stopped and
    emptied afterwards."""
    started = []

    def start(name):
        host = staging.remote(name)
        host.run("systemctl start redis-server && redis-cli ping", "redis")
        started.append(host)
    yield start
    for host in started:
        host.run("redis-cli flushall >/dev/null; systemctl stop redis-server", "redis")
        host.close()


def test_flasks_celery_example_runs_its_tasks_on_a_worker_from_a_src_layout(
        flask_ops_tool, first_deploy, redis_on, tmp_path):
    root = tmp_path / "celery"
    s = described(flask_ops_tool, "celery_example", root, NGINX_HOST, "tasks.test", CELERY_EXTRA)
    text = (root / "fabric.yaml").read_text()
    assert 'source: "."' in text and 'python_path: "src"' in text, text
    assert 'wsgi: "task_app:create_app()"' in text and "# dependencies: requirements.txt" in text
    redis_on(NGINX_HOST)
    host, target = first_deploy(NGINX_HOST, s, root)
    status, page = get(target, "/")
    assert status == 200 and b"Celery Example" in page
    # A form POST queues a task; the worker (make_celery.py from the project's root, the app
    # from src/) runs it; the result comes back through Redis.
    status, _, body = post(target, "/tasks/add", {"a": "2", "b": "3"})
    assert status == 200, body
    first = json.loads(body)["result_id"]
    assert task_result(target, first) == {"ready": True, "successful": True, "value": 5}
    # The environment reached app and worker alike: the result is in database 3, not in
    # Redis' default database 0.
    keys = host.run(f"redis-cli -n 3 exists celery-task-meta-{first}; "
                    f"redis-cli -n 0 exists celery-task-meta-{first}", "redis").stdout.split()
    assert keys == ["1", "0"], keys

    # A code change: the worker restarts onto the new release and the first result is kept.
    tasks = root / "src/task_app/tasks.py"
    tasks.write_text(tasks.read_text().replace("return a + b", "return a + b + 100"))
    code, out = run(flask_ops_tool, "deploy", cwd=root)
    assert code == 0, out[-3000:]
    status, _, body = post(target, "/tasks/add", {"a": "2", "b": "3"})
    assert task_result(target, json.loads(body)["result_id"])["value"] == 105
    assert task_result(target, first)["value"] == 5
