"""End to end with a project shaped as many published Flask apps are, and unchanged: the app
at its repository's root, pyproject.toml only (locked by uv.lock), an app factory, SQLite in
Flask's instance folder, a log file under logs/ next to its code (tests/apps/guestbook).
Described by what `fab init` wrote plus the server name, the host, `shared_dirs: [logs]` and
the command its README asks for (`flask init-db`, as a hook); deployed with `fab`, then used:
a page, a static file, a form POST that writes to its database, a second deploy and a
rollback that keep the data."""

import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml

from conftest import APACHE_HOST, NGINX_HOST, remove_app, run_tool as run
from ops import staging
from ops.config import settings
from ops.deploy import deploy, smoke

pytestmark = pytest.mark.e2e

GUESTBOOK = Path(__file__).parent / "apps" / "guestbook"


def guestbook_project(root, host, stack, tool):
    shutil.copytree(GUESTBOOK, root)
    code, out = run(tool, "init", cwd=root)
    assert code == 0, out
    assert "# dependencies: pyproject.toml, pinned by uv.lock" in (root / "fabric.yaml").read_text()
    text = (root / "fabric.yaml").read_text()
    text = re.sub(r"^  server_names: *", "  server_names: [guestbook.test] ", text, count=1, flags=re.M)
    text = re.sub(r"^  # hosts: \[[^]]*\]", f"  hosts: [{host}]", text, count=1, flags=re.M)
    text = text.replace("  # stack: nginx-uwsgi", f"  stack: {stack}")
    text += ("  shared_dirs: [logs]\n"
             "  hooks: {before_switch: [flask init-db]}\n"
             # the team is told, on the deploying machine (a webhook is a curl away)
             "  local_hooks: {after_deploy: [\"sh -c 'env | grep ^FLASK_OPS_ | sort > ../told.txt'\"]}\n")
    (root / "fabric.yaml").write_text(text)
    # init imported a copy of the project: what the import writes (instance/, logs/) is
    # not in the project.
    assert not (root / "instance").exists() and not (root / "logs").exists()
    raw = yaml.safe_load(text)["deploy"]
    assert raw["source"] == "." and raw["app_name"] == "guestbook"
    return settings.load(raw, project_root=root)


def sign(target, name, message):
    conn = target.connection()
    try:
        body = urllib.parse.urlencode({"name": name, "message": message})
        conn.request("POST", "/sign", body=body, headers={
            "Host": target.host, "Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize("host_name, stack", [(NGINX_HOST, "nginx-uwsgi"),
                                              (APACHE_HOST, "apache-modwsgi")])
def test_a_pyproject_app_at_its_repository_root_deploys_and_keeps_its_data(
        corpus_hosts, flask_ops_tool, tmp_path, host_name, stack):
    """Deployed with the `flask-ops` console script of a wheel installed in a fresh venv."""
    root = tmp_path / "guestbook"
    s = guestbook_project(root, host_name, stack, flask_ops_tool)
    (root / "fabfile.py").unlink()  # the console script needs none
    host = staging.remote(host_name)
    try:
        code, out = run(flask_ops_tool, "provision", "deploy", cwd=root)
        assert code == 0, out[-3000:]
        target = deploy.target_for(s, host)
        page = smoke.request(target, "/")
        assert page.status == 200 and b"<h1>Guestbook</h1>" in page.body
        assert b"<footer>guestbook 1.0.0</footer>" in page.body  # its own installed metadata
        told = dict(line.split("=", 1) for line in (tmp_path / "told.txt").read_text().splitlines())
        assert told["FLASK_OPS_OUTCOME"] == "ok" and told["FLASK_OPS_APP"] == "guestbook"
        assert told["FLASK_OPS_HOSTS"] == host_name and told["FLASK_OPS_RELEASE"] in out
        css = smoke.request(target, "/static/style.css")
        assert css.status == 200 and css.body == (GUESTBOOK / "guestbook/static/style.css").read_bytes()
        assert css.header("Cache-Control") == "public, no-cache"  # the front server's, not Flask's
        assert sign(target, "ada", "first visit") == 302
        assert b"<b>ada</b>: first visit" in smoke.request(target, "/").body

        base = s.base
        # The database and the log are the app's, in shared/linked; the release only links them.
        assert host.run(f"stat -c %U {base}/shared/linked/instance/guestbook.sqlite; "
                        f"readlink {base}/current/instance {base}/current/logs",
                        "stat").stdout.split() == [
            "guestbook", f"{base}/shared/linked/instance", f"{base}/shared/linked/logs"]
        assert "signed by ada" in host.run(f"cat {base}/shared/linked/logs/guestbook.log",
                                           "log").stdout
        code, status = run(flask_ops_tool, "status", cwd=root)
        assert f"instance -> {base}/shared/linked/instance" in status, status

        # A code change and a rollback: the data stays, whichever release serves.
        template = root / "guestbook/templates/index.html"
        template.write_text(template.read_text().replace("<h1>Guestbook</h1>", "<h1>Guest book</h1>"))
        code, out = run(flask_ops_tool, "deploy", cwd=root)
        assert code == 0, out[-3000:]
        page = smoke.request(target, "/").body
        assert b"<h1>Guest book</h1>" in page and b"<b>ada</b>: first visit" in page
        assert sign(target, "grace", "after the change") == 302
        code, out = run(flask_ops_tool, "rollback", cwd=root)
        assert code == 0, out[-3000:]
        page = smoke.request(target, "/").body
        assert b"<h1>Guestbook</h1>" in page
        assert b"<b>ada</b>" in page and b"<b>grace</b>: after the change" in page

        # A tag, not the working tree: `deploy --ref v1` ships what v1 holds.
        git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "v1"], ["tag", "v1"]):
            subprocess.run(git + args, check=True, stdout=subprocess.DEVNULL)
        commit = subprocess.run(git + ["rev-parse", "--short=12", "v1"], check=True, text=True,
                                stdout=subprocess.PIPE).stdout.strip()
        template.write_text(template.read_text().replace("<h1>Guest book</h1>", "<h1>Unsaved</h1>"))
        code, out = run(flask_ops_tool, "deploy", "--ref", "v1", cwd=root)
        assert code == 0, out[-3000:]
        page = smoke.request(target, "/").body
        assert b"<h1>Guest book</h1>" in page and b"Unsaved" not in page
        code, history = run(flask_ops_tool, "history", "-n", "1", cwd=root)
        assert f"commit {commit}" in history and "+dirty" not in history, history
    finally:
        remove_app(host, s)
        host.close()
