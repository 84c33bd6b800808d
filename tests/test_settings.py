
import pytest

from ops.config import settings
from ops.errors import SettingsError

from conftest import ROOT, fab


MINIMAL = {"app_name": "shop", "source": "sample_app", "wsgi": "app:app",
           "server_names": ["shop.test"]}


def test_the_repository_fabric_yaml_describes_the_sample_app(load):
    s = load()
    assert (s.app_name, s.wsgi, s.stack, s.nginx, s.init) == (
        "sample", "app:app", "nginx-uwsgi", "default", "systemd")
    assert s.base == "/srv/sample" and s.app_user == "sample" and s.app_group == "sample"
    assert s.source_dir == ROOT / "sample_app"
    assert s.requirements_file.is_file()
    assert s.healthz == "/healthz" and s.smoke_stream.startswith("/time")


def test_defaults_fit_any_flask_app_not_the_sample():
    """Four keys and nothing of the sample's: no health URL, no stream, `/` below 400."""
    s = settings.load(MINIMAL, project_root=ROOT)
    assert s.healthz is None and s.streaming == () and s.smoke_stream == ""
    assert s.smoke == (settings.SmokePage("/"),)
    assert s.base == "/srv/shop" and s.app_user == "shop"


@pytest.mark.parametrize("key", sorted(MINIMAL))
def test_each_required_key_is_named_when_missing(key):
    raw = {k: v for k, v in MINIMAL.items() if k != key}
    with pytest.raises(SettingsError, match=rf"^deploy\.{key} is required: ") as err:
        settings.load(raw, project_root=ROOT)
    assert err.value.key == key and "\n" not in str(err.value)


@pytest.mark.parametrize("raw, key, other", [
    ({"nginx": "cache", "healthz": "/"}, "healthz", "smoke[0].path"),
    ({"nginx": "cache", "healthz": "/up", "smoke": [{"path": "/"}, {"path": "/up?x=1"}]},
     "healthz", "smoke[1].path"),
    ({"healthz": "/static/ping"}, "healthz", "static_url"),
    ({"streaming": ["/static/feed"]}, "streaming", "static_url"),
    ({"streaming": ["/"]}, "streaming", "static_url"),
    ({"smoke_stream": "/feed?n=3"}, "smoke_stream", "streaming"),
    ({"streaming": ["/events"], "smoke_stream": "/eventsx"}, "smoke_stream", "streaming"),
])
def test_settings_that_cannot_work_together_are_refused_naming_both(raw, key, other):
    with pytest.raises(SettingsError) as err:
        settings.load({**MINIMAL, **raw}, project_root=ROOT)
    assert err.value.key == key and other in str(err.value), str(err.value)


def test_what_only_conflicts_on_one_stack_or_shape_is_accepted():
    # The health URL is a smoke page: a conflict only where a cache sits in front.
    settings.load({**MINIMAL, "healthz": "/"}, project_root=ROOT)
    # Apache streams every response: no `streaming` list is needed for a stream check.
    settings.load({**MINIMAL, "stack": "apache-modwsgi", "smoke_stream": "/feed"},
                  project_root=ROOT)
    settings.load({**MINIMAL, "streaming": ["/events"], "smoke_stream": "/events/live?n=2"},
                  project_root=ROOT)


@pytest.mark.parametrize("key, value", [
    ("server_names", ["evil.com; include /etc/passwd"]),
    ("server_names", ["a.com{"]),
    ("server_names", ["a.com}"]),
    ("server_names", ['a"b.com']),
    ("server_names", ["a'b.com"]),
    ("server_names", ["a b.com"]),
    ("server_names", ["a.com\nlisten 81"]),
    ("server_names", []),
    ("app_name", "My App"),
    ("app_name", "../etc"),
    ("app_name", "app;rm"),
    ("app_name", "9lives"),
    ("base_dir", "srv/app"),
    ("base_dir", "/srv/../etc"),
    ("base_dir", "/srv/app\n"),
    ("source", "../elsewhere"),
    ("source", "/abs/path"),
    ("requirements", "../requirements.txt"),
    ("wsgi", "app"),
    ("wsgi", "app:app; import os"),
    ("listen_port", 0),
    ("listen_port", 65536),
    ("listen_port", "80"),
    ("upstream_port", -1),
    ("processes", 0),
    ("threads", 0),
    ("processes", True),
    ("stack", "gunicorn"),
    ("nginx", "fancy"),
    ("init", "runit"),
    ("static_url", "/static"),
    ("static_url", "/static/;"),
    ("streaming", ["/time {"]),
    ("client_max_body_size", "10m;"),
    ("cache_ttl", "forever"),
    ("session_cookie", "a b"),
    ("user", "root;"),
])
def test_hostile_or_malformed_values_are_refused_naming_the_key(load, key, value):
    with pytest.raises(SettingsError) as err:
        load(**{key: value})
    assert err.value.key == key
    assert f"deploy.{key}" in str(err.value) and "expected" in str(err.value)


def test_unknown_key_is_an_error(load):
    with pytest.raises(SettingsError, match="deploy.sever_names"):
        load(sever_names=["x.com"])


def test_two_tier_ports_must_differ(load):
    with pytest.raises(SettingsError, match="upstream_port"):
        load(nginx="proxy", listen_port=8080, upstream_port=8080)


def test_missing_source_and_requirements_are_reported(load):
    with pytest.raises(SettingsError, match="source"):
        load(source="no_such_dir")
    with pytest.raises(SettingsError, match="requirements"):
        load(requirements="missing.txt")


def test_a_rollback_checks_what_its_release_recorded_and_reads_the_record_like_input(load):
    """A deploy that changed a smoke `contains` along with the code can still go back: the
    rollback checks the pages its target release promised, not today's."""
    from ops.build import release
    today = load(smoke=[{"path": "/hello", "contains": "Hello, v2!"}])
    before = load(smoke=[{"path": "/hello", "contains": "Hello, World!"}], smoke_stream="/time")
    recorded = release.manifest(before, release.new_release(before, "0" * 16, ()))
    back = settings.with_recorded_smoke(today, recorded)
    assert back.smoke == (settings.SmokePage("/hello", contains="Hello, World!"),)
    assert back.smoke_stream == "/time"
    # a release from before the record, or a record that would not pass as settings: today's
    for manifest in ({"id": "x"}, None, dict(recorded, smoke=[{"path": "no-slash"}]),
                     dict(recorded, smoke=[{"path": "/", "shell": "rm -rf /"}]),
                     dict(recorded, smoke_stream="/x\nnginx;")):
        assert settings.with_recorded_smoke(today, manifest) == today


def test_settings_are_frozen(load):
    with pytest.raises(Exception):
        load().app_name = "other"



@pytest.mark.parametrize("bad", ['server_names: ["x.com;"]', "app_name: Bad-Name",
                                 "base_dir: relative/path", 'wsgi: "noattr"',
                                 "listen_port: 70000", "processes: 0"])
def test_fab_render_refuses_bad_input_and_writes_nothing(tmp_path, bad):
    config = tmp_path / "bad.yaml"
    config.write_text(f"deploy:\n  {bad}\n")
    out = tmp_path / "out"
    result = fab("-f", str(config), "render", "--out", str(out))
    assert result.returncode == 1
    key = bad.split(":")[0]
    assert f"deploy.{key}" in result.stdout and "Traceback" not in result.stdout
    assert not out.exists()


def test_fab_runtime_config_overrides_project_config(tmp_path):
    config = tmp_path / "apache.yaml"
    config.write_text("deploy:\n  stack: apache-modwsgi\n")
    result = fab("-f", str(config), "render", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout
    assert (tmp_path / "out/etc/apache2/sites-available/sample.conf").is_file()
    assert not (tmp_path / "out/etc/nginx").exists()


def test_every_key_is_documented_in_the_reference():
    from ops.config.settings import USER_KEYS
    first_cells = [line.split("|")[1] for line in (ROOT / "docs/reference.md").read_text().splitlines()
                   if line.startswith("| `")]
    assert [k for k in USER_KEYS if not any(f"`{k}`" in cell for cell in first_cells)] == []
