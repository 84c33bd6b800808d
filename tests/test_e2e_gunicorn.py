"""Stack nginx-gunicorn with websockets, end to end: a Flask-Sock app behind nginx on a
staging host (the proxy shape: two nginx tiers), itself behind a caching balancer (staging3
in front of staging1), then alone in the default and the cache shapes. Its socket unit keeps
requests waiting while gunicorn restarts onto a new release; a websocket echoes directly and
through the balancer, is closed by a code-change deploy and reconnects to the new code; a
release that cannot be imported leaves the old one serving; rollback."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import remove_app
from ops import staging
from ops.config import settings
from ops.deploy import daytwo_cmds, deploy, fleet, provision, smoke
from ops.errors import DeployError
from wsclient import Closed, WebSocket

pytestmark = pytest.mark.e2e

CHAT = Path(__file__).parent / "apps" / "chat"
CONFIG = {"app_name": "chat", "source": "app", "wsgi": "chat:app", "server_names": ["chat.test"],
          "stack": "nginx-gunicorn", "processes": 2, "threads": 4, "drain_timeout": 3,
          "websockets": ["/ws"], "streaming": ["/time"], "smoke_stream": "/time",
          "nginx": "cache", "roles": {"lb": ["staging3"], "app": ["staging1"]}}


def chat_project(root, greeting="chat v1", **raw):
    shutil.copytree(CHAT, root, ignore=shutil.ignore_patterns("__pycache__"))
    app = root / "app" / "chat.py"
    app.write_text(app.read_text().replace('GREETING = "chat v1"', f'GREETING = "{greeting}"'))
    # (no `contains`: the caching balancer may serve the previous release's page for cache_ttl)
    config = {**CONFIG, "smoke": [{"path": "/", "status": 200}], **raw}
    (root / "fabric.yaml").write_text(yaml.safe_dump({"deploy": config}))
    return settings.load(config, project_root=root)


def echo(host, text):
    ws = WebSocket(host.address, 80, "chat.test", "/ws")
    try:
        ws.send(text)
        return ws.receive()
    finally:
        ws.close()


def test_websockets_through_nginx_and_the_balancer_across_deploys(staging_hosts, tmp_path):
    staging.up(3, log=lambda m: None)
    lb, app = staging.remote("staging3"), staging.remote("staging1")
    s = chat_project(tmp_path / "v1")
    for host in (lb, app):
        provision.provision(s, host)
    try:
        fleet.rolling_deploy(s, [lb], [app], out=lambda m: None)  # smoke: pages, the stream
        assert app.run("systemctl is-active chat-gunicorn.socket chat-gunicorn",
                       "units").stdout.split() == ["active", "active"]
        assert echo(app, "hi") == "chat v1: hi"
        assert echo(lb, "through the balancer") == "chat v1: through the balancer"
        checked = {r.name: r for r in smoke.run(s, deploy.target_for(s, lb))}
        assert checked["websocket"].ok, checked["websocket"].detail  # smoke checks the upgrade
        assert smoke.check_websocket(deploy.target_for(s, lb), "/hello") == (
            False, "expected 101 Switching Protocols, got 200")
        # The balancer's scheme reaches gunicorn; a client's forged one does not.
        through = json.loads(smoke.request(deploy.target_for(s, lb), "/whoami").body)
        assert through == {"scheme": "http", "host": "chat.test"}
        forged = json.loads(smoke.request(smoke.Target(app.address, 80, "chat.test"), "/whoami",
                                          headers={"X-Forwarded-Proto": "https",
                                                   "X-Forwarded-Protocol": "ssl",
                                                   "X-Forwarded-Ssl": "on"}).body)
        assert forged["scheme"] == "http"

        # A code change: the open websocket is closed once gunicorn's graceful stop ends
        # (drain_timeout), and a new one reaches the new code.
        held = WebSocket(lb.address, 80, "chat.test", "/ws")
        held.send("before")
        assert held.receive() == "chat v1: before"
        v2 = chat_project(tmp_path / "v2", "chat v2")
        fleet.rolling_deploy(v2, [lb], [app], out=lambda m: None)
        with pytest.raises(Closed):
            held.send("after")
            held.receive()
        held.close()
        assert echo(lb, "again") == "chat v2: again"

        # A release that cannot be imported on the host (the build's import passes): gunicorn's
        # master imports it (--preload), the start fails, the old release goes on serving.
        broken = chat_project(tmp_path / "broken", "chat v3")
        (broken_app := Path(broken.source_dir) / "chat.py").write_text(
            "if __file__.startswith('/srv/'):\n    raise RuntimeError('no config')\n"
            + broken_app.read_text())
        said = []
        with pytest.raises(DeployError, match="canary"):
            fleet.rolling_deploy(broken, [lb], [app], out=said.append)
        assert "  | Error: no config" in "\n".join(said), "\n".join(said)  # the app's last lines
        assert echo(app, "still") == "chat v2: still"

        deploy.rollback(fleet.app_settings(s, [lb]), app, out=lambda m: None)
        assert echo(lb, "back") == "chat v1: back"

        # No balancer: the default shape (nginx talks to gunicorn itself), then the cache
        # shape (its websocket locations never cached).
        for shape in ("default", "cache"):
            alone = chat_project(tmp_path / shape, f"chat {shape}", nginx=shape, roles=None)
            deploy.deploy(alone, app, out=lambda m: None)  # smoke: the stream, the websocket
            assert echo(app, "direct") == f"chat {shape}: direct"
        # fab logs: gunicorn's journal and the site's nginx logs.
        logs = app.run(daytwo_cmds.logs_script(alone, 50), "logs").stdout
        assert "Booting worker with pid" in logs and "/var/log/nginx/chat.access.log" in logs
    finally:
        for host in (lb, app):
            remove_app(host, s)
            host.close()
