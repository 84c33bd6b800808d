"""What a CI pipeline consumes: report files, `fab check`'s verdict, the workflow files."""

import json
import re
import shlex
import shutil
import xml.etree.ElementTree as ET

import yaml

from ops.deploy import report
from ops.deploy.smoke import Result, target_from_url

from conftest import ROOT, SAMPLE_DEPLOY, fab

RESULTS = [Result("healthz", True, "200, 20 bytes", 0.01),
           Result("cache", False, "a repeated GET / was MISS, not HIT", 0.02)]



def test_junit_report_parses_back():
    root = ET.fromstring(report.to_junit(RESULTS, "http://x/").split("\n", 1)[1])
    suite = root.find("testsuite")
    assert (root.tag, suite.get("tests"), suite.get("failures")) == ("testsuites", "2", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["healthz", "cache"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure.get("message") == "a repeated GET / was MISS, not HIT"


def test_json_report_parses_back():
    data = json.loads(report.to_json(RESULTS, "http://x/"))
    assert (data["passed"], data["failed"], data["ok"]) == (1, 1, False)
    assert data["checks"][1] == {"name": "cache", "ok": False,
                                 "detail": "a repeated GET / was MISS, not HIT", "seconds": 0.02}


def test_url_targets():
    t = target_from_url("https://www.example.com/")
    assert (t.address, t.port, t.host, t.tls) == ("www.example.com", 443, "www.example.com", True)
    assert target_from_url("http://10.0.0.1:8080").port == 8080


def test_fab_check_fails_with_the_checkers_message_on_a_broken_template(tmp_path):
    overrides = tmp_path / "templates" / "nginx"
    overrides.mkdir(parents=True)
    site = (ROOT / "ops/templates/nginx/site.conf.j2").read_text()
    line = "access_log /var/log/nginx/{{ s.app_name }}.access.log {{ s.app_name }}_{{ s.access_log }};"
    assert line in site
    (overrides / "site.conf.j2").write_text(site.replace(
        line, "access_log /var/log/nginx/{{ s.app_name }}.access.log no_such_format;"))
    (tmp_path / "ci.yaml").write_text(yaml.safe_dump({"deploy": {
        **SAMPLE_DEPLOY, "templates": str(overrides.parent.relative_to(tmp_path))}}))
    shutil.copytree(ROOT / "sample_app", tmp_path / "sample_app")
    (tmp_path / "fabfile.py").write_text("from ops.tasks import ns  # noqa\n")
    result = fab("-f", "ci.yaml", "check", cwd=tmp_path)
    assert result.returncode == 1
    assert "nginx -t rejected the config" in result.stdout
    assert 'unknown log format "no_such_format"' in result.stdout  # nginx's own words
    (overrides / "site.conf.j2").write_text(site)
    assert fab("-f", "ci.yaml", "check", cwd=tmp_path).returncode == 0


def test_the_workflows_run_commands_fab_accepts():
    """Our CI runs .ci/run (which runs make test); every `fab` line of the workflow users copy
    (docs/ci/github-actions.yml) names tasks and options fab accepts: each is parsed by fab
    itself (`--help` after it: parsed, nothing run), and a misspelt one is refused."""
    own = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    assert any(s.get("run", "").split()[-2:] == ["bash", ".ci/run"]
               for s in own["jobs"]["test"]["steps"])
    assert re.search(r"^make test\b", (ROOT / ".ci/run").read_text(), re.M)
    users = yaml.safe_load((ROOT / "docs/ci/github-actions.yml").read_text())
    lines = [re.sub(r"^sudo ", "", line.strip()) for job in users["jobs"].values()
             for step in job["steps"] for line in step.get("run", "").splitlines()]
    lines = [line for line in lines if line.startswith("fab ")]
    assert len(lines) >= 4
    for line in lines + ["fab -H staging1 smoke --junitx smoke.xml"]:
        accepted = fab(*shlex.split(line)[1:], "--help").returncode == 0
        assert accepted == ("junitx" not in line), line
        if "junitx" not in line:
            assert line in (ROOT / "docs/ci.md").read_text(), f"docs/ci.md does not show {line}"


def test_fab_check_covers_the_fleet_shapes(tmp_path):
    config = tmp_path / "fleet.yaml"
    config.write_text("deploy:\n  nginx: cache\n  roles:\n    lb: [lb1]\n    app: [web1, web2]\n")
    result = fab("-f", str(config), "check")
    assert result.returncode == 0, result.stdout
    assert "ok  nginx (load balancer)" in result.stdout
    assert "ok  nginx (app host behind the load balancer)" in result.stdout


def test_the_lanes_keep_staging1_to_3_in_one_and_own_hosts_apart():
    """make test's two lanes never run two tests on one staging host at once: every module on
    the shared hosts is one unit of work, a module with hosts of its own uses none of theirs."""
    from conftest import OWN_HOSTS, ROOT, lane_of

    modules = sorted(ROOT.glob("tests/test_e2e_*.py"))
    assert {p.stem for p in modules} >= set(OWN_HOSTS)
    for path in modules:
        lane = lane_of(f"tests/{path.name}::test_x[a]")
        if path.stem in OWN_HOSTS:
            assert lane == OWN_HOSTS[path.stem] != "staging1-3"
            text = path.read_text()
            assert "staging_hosts" not in text and '"staging1"' not in text, path.name
        else:
            assert lane == "staging1-3", path.name
    assert lane_of("tests/test_render.py::test_x") == "tests/test_render.py::test_x"
