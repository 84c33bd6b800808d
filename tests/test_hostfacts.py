"""HostFacts from what facts.py really reported on staging hosts (tests/facts/*.json: Debian
11, 12 and 13 under systemd, Debian 12 under upstart 1.12, and a host with a release live),
parsed at the seam and read as the deploy reads them."""

import json
from pathlib import Path

import pytest

from ops.deploy import plan
from ops.deploy.hostfacts import HostFacts
from ops.errors import OpsError
from ops.targets import hostversions

from conftest import sample_settings

FACTS = Path(__file__).parent / "facts"


def real(name):
    return HostFacts.parse((FACTS / f"{name}.json").read_text().replace("\n", " "))


@pytest.mark.parametrize("name, init, python, nginx", [
    ("bullseye", "systemd", "3.9.2", (1, 18, 0)),
    ("bookworm", "systemd", "3.11.2", (1, 22, 1)),
    ("trixie", "systemd", "3.13.5", (1, 26, 3)),
    ("upstart", "upstart", "3.11.2", (1, 22, 1)),
])
def test_a_provisioned_host_as_each_release_reports_it(name, init, python, nginx):
    facts = real(name)
    assert (facts.init, facts.python, facts.arch, facts.libc is not None) == (init, python, "x86_64", True)
    assert hostversions.versions_from_facts(facts)["nginx"] == nginx
    assert facts.provisioned and facts.user and facts.main_conf and facts.front == "nginx"
    assert facts.current is None and facts.releases == () and facts.lock is None
    # what preflight reads: the init, and nothing this version needs is missing
    assert facts.unprovisioned == () and facts.active["nginx"] == "active"


def test_a_host_with_a_release_live_is_recognised_as_serving_it():
    facts = real("bookworm-deployed")
    assert facts.current == facts.releases[-1] == facts.manifest["id"]
    assert facts.active == {"nginx": "active", "sample-uwsgi": "active",
                            "sample-uwsgi.socket": "active"}
    assert facts.state["last_deploy"]["release"] == facts.current and facts.state["pending"] == []
    # the rollback a user would ask for next: the release before current, from the facts alone
    s = sample_settings()
    p = plan.rollback_plan(s, facts.releases[-2], facts.replace(
        manifests={facts.releases[-2]: facts.manifest}), {"by": {"user": "dev", "host": "laptop"}})
    assert p.target == facts.releases[-2] and p.previous == facts.current


@pytest.mark.parametrize("text, says", [
    ("[]", "expected a JSON object"),
    ('{"init": "systemd", "kernel": "6.1"}', "unknown key 'kernel'"),
    ("{not json", "not JSON"),
])
def test_facts_that_are_not_what_facts_py_prints_are_refused(text, says):
    with pytest.raises(OpsError, match=says):
        HostFacts.parse(text)


def test_every_key_facts_py_prints_is_a_field():
    for path in FACTS.glob("*.json"):
        assert set(json.loads(path.read_text())) == {f for f in HostFacts.__dataclass_fields__}
