"""One app description for staging and production: shared keys, each stage's differences,
the stage chosen on the command line and named by every task."""

import os
import shutil

import pytest

from ops.config import settings
from ops.errors import OpsError, SettingsError

from conftest import ROOT, fab

SHARED = {"app_name": "shop", "source": "sample_app", "wsgi": "app:app",
          "server_names": ["shop.test"], "env": {"MODE": "shared", "REGION": "eu"},
          "stages": {"staging": {"hosts": ["staging1"], "env": {"MODE": "staging"}},
                     "production": {"roles": {"lb": ["lb1"], "app": ["web1", "web2"]},
                                    "server_names": ["shop.example.com"], "nginx": "cache"}}}


def test_a_stage_replaces_shared_keys_and_merges_env_by_name():
    staging = settings.load(SHARED, project_root=ROOT, stage="staging")
    production = settings.load(SHARED, project_root=ROOT, stage="production")
    assert staging.stage == "staging" and staging.server_names == ("shop.test",)
    assert staging.roles == settings.Roles((), ("staging1",)) and staging.nginx == "default"
    assert dict(staging.env) == {"MODE": "staging", "REGION": "eu"}
    assert production.server_names == ("shop.example.com",) and production.nginx == "cache"
    assert production.roles.app == ("web1", "web2") and dict(production.env)["MODE"] == "shared"


@pytest.mark.parametrize("stage, message", [
    (None, r"deploy.stages defines staging, production: choose one, e.g. `fab stage staging"),
    ("prod", r"stage 'prod' does not exist: deploy.stages defines staging, production"),
])
def test_a_missing_or_unknown_stage_is_refused(stage, message):
    with pytest.raises(OpsError, match=message):
        settings.load(SHARED, project_root=ROOT, stage=stage)


def test_a_stage_without_stages_is_refused():
    raw = {k: v for k, v in SHARED.items() if k != "stages"}
    with pytest.raises(OpsError, match="the app description has no stages"):
        settings.load(raw, project_root=ROOT, stage="production")


@pytest.mark.parametrize("stage_keys, key", [
    ({"server_names": ["x.com;"]}, "stages.production.server_names"),
    ({"app_name": "other"}, "stages.production.app_name"),
    ({"wsgi": "other:app"}, "stages.production.wsgi"),
    ({"nosuchkey": 1}, "stages.production.nosuchkey"),
    ({"hosts": ["web1"], "roles": {"app": ["web2"]}}, "hosts"),
])
def test_a_bad_key_in_a_stage_is_named_under_its_stage(stage_keys, key):
    raw = {**SHARED, "stages": {"production": stage_keys}}
    with pytest.raises(SettingsError) as err:
        settings.load(raw, project_root=ROOT, stage="production")
    assert err.value.key == key


def test_hosts_name_each_machine_once():
    with pytest.raises(SettingsError, match="the same machine"):
        settings.load({**SHARED, "stages": {}, "hosts": ["web1", "root@web1:22"]}, project_root=ROOT)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "fabfile.py").write_text("from ops.tasks import ns  # noqa: F401\n")
    shutil.copytree(ROOT / "sample_app", tmp_path / "app")
    (tmp_path / "fabric.yaml").write_text(
        "deploy:\n  app_name: shop\n  source: app\n  wsgi: 'app:app'\n"
        "  server_names: [shop.test]\n  env: {MODE: shared}\n"
        "  stages:\n    staging: {server_names: [staging.shop.test]}\n"
        "    production:\n      server_names: [shop.example.com]\n      env: {MODE: prod}\n")
    return tmp_path


def test_every_task_prints_the_stage_it_acts_on(project):
    out = project / "out"
    result = fab("stage", "production", "render", "--out", str(out), "env", cwd=project)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines().count("stage production") == 2  # render, then env
    site = (out / "etc/nginx/sites-available/shop.conf").read_text()
    assert "server_name shop.example.com;" in site and "staging.shop.test" not in site
    assert "MODE" in result.stdout and "prod" not in result.stdout.replace("stage production", "")


def test_the_stage_from_the_environment(project):
    result = fab("render", "--out", str(project / "out"), cwd=project,
                 env={**os.environ, "FLASK_OPS_STAGE": "staging"})
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("stage staging\n")
    assert "staging.shop.test" in (project / "out/etc/nginx/sites-available/shop.conf").read_text()


@pytest.mark.parametrize("args, message", [
    (("render",), "deploy.stages defines staging, production: choose one"),
    (("stage", "prod", "render"), "stage 'prod' does not exist"),
])
def test_no_stage_or_an_unknown_one_is_one_line_and_writes_nothing(project, args, message):
    result = fab(*args[:-1], args[-1], "--out", str(project / "out"), cwd=project)
    assert result.returncode == 1 and message in result.stdout
    assert "Traceback" not in result.stdout and not (project / "out").exists()
