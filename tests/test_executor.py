"""The executor without a host: a fake remote records what runs and fails where told, so the
failure paths are exact — a step failing, restore, discard, the lock always released."""

import pytest

from ops.deploy import executor, plan
from ops.deploy.steps import Steps
from ops.errors import DeployError, RemoteError, SmokeError


class FakeRemote:
    name, address, commands = "web1", "198.18.0.11", 0

    def __init__(self, fail=(), also_fail=()):
        self.ran, self.fail, self.also_fail = [], set(fail), set(also_fail)

    def run(self, script, what, check=True, timeout=600, stdin=None, echo=None):
        self.ran.append(what)
        if echo is not None:
            echo(f"output of {what}")
        if what in self.fail or what in self.also_fail:
            raise RemoteError(f"{what} failed on {self.name} (exit 1):\nboom")
        return type("Result", (), {"stdout": f"{what} done\n", "exited": 0})()

    def put(self, local, remote, what):
        self.ran.append(what)
        if what in self.fail:
            raise RemoteError(f"{what}: upload to {self.name} failed")


def a_plan(**over):
    step = lambda name: plan.Step(name, f"# {name}")  # noqa: E731
    fields = dict(host_action="deploy", target="R2", previous="R1",
                  prepare=(plan.Step("upload", upload=plan.Upload("/tmp/x")), step("stage")),
                  activate=(step("switch"), plan.Step("verify", "# verify", says=True), plan.Step("smoke", smoke_static="a.css")),
                  restore=step("restore"), discard=step("discard"), unlock=step("unlock"),
                  finish=step("finish"))
    fields.update(over)
    return plan.Plan(**fields)


def a_run(remote, p=None, smoke_fails=False, tmp_path=None):
    lines = []

    def bundle(upload):
        path = tmp_path / "bundle.tgz"
        path.write_text("x")
        return path

    def smoke(static):
        remote.ran.append(f"smoke {static}")
        if smoke_fails:
            raise SmokeError("/: 500")

    return executor.Run(remote, p or a_plan(), Steps(lines.append), bundle, smoke), lines


def test_a_good_deploy_runs_every_step_then_finish(tmp_path):
    remote = FakeRemote()
    run, lines = a_run(remote, tmp_path=tmp_path)
    assert executor.activate(executor.prepare(run)) == "R2"
    assert remote.ran == ["upload", "stage", "switch", "verify", "smoke a.css", "finish"]
    assert not run.locked and not (tmp_path / "bundle.tgz").exists()
    assert [line.split()[0] for line in lines] == ["upload", "stage", "switch", "verify",
                                                   "verify", "smoke"]


def test_a_failing_stage_discards_the_upload_and_releases_the_lock(tmp_path):
    remote = FakeRemote(fail={"stage"})
    run, lines = a_run(remote, tmp_path=tmp_path)
    with pytest.raises(DeployError, match="stage") as exc:
        executor.prepare(run)
    assert "boom" in str(exc.value)
    assert remote.ran == ["upload", "stage", "discard"] and not run.locked
    assert "FAILED" in lines[-1]


def test_a_failing_upload_still_releases_the_lock(tmp_path):
    remote = FakeRemote(fail={"upload"})
    run, _ = a_run(remote, tmp_path=tmp_path)
    with pytest.raises(DeployError, match="upload"):
        executor.prepare(run)
    assert remote.ran == ["upload", "discard"] and not run.locked


@pytest.mark.parametrize("failing", ["switch", "verify", "smoke"])
def test_a_failure_after_the_switch_restores_then_unlocks(tmp_path, failing):
    remote = FakeRemote(fail={failing} - {"smoke"})
    run, lines = a_run(remote, smoke_fails=failing == "smoke", tmp_path=tmp_path)
    executor.prepare(run)
    with pytest.raises(DeployError, match=failing):
        executor.activate(run)
    assert remote.ran[-2:] == ["restore", "unlock"] and "finish" not in remote.ran
    assert not run.locked
    assert any("back on R1" in line for line in lines)


def test_a_failing_restore_is_reported_with_the_first_failure(tmp_path):
    remote = FakeRemote(fail={"verify"}, also_fail={"restore"})
    run, _ = a_run(remote, tmp_path=tmp_path)
    executor.prepare(run)
    with pytest.raises(DeployError) as exc:
        executor.activate(run)
    assert "verify" in str(exc.value) and "AND restoring R1 failed" in str(exc.value)
    assert remote.ran[-1] == "unlock" and not run.locked


def test_nothing_to_do_touches_nothing_but_the_lock(tmp_path):
    remote = FakeRemote()
    run, lines = a_run(remote, a_plan(nothing_to_do=True), tmp_path=tmp_path)
    assert executor.activate(executor.prepare(run)) == "R1"
    assert remote.ran == ["unlock"]
    assert lines == ["  deploy     no change: R1 already serves this build"]


def test_an_unreachable_host_at_cleanup_is_named_with_the_way_out(tmp_path):
    remote = FakeRemote(fail={"stage", "discard"})
    run, _ = a_run(remote, tmp_path=tmp_path)
    with pytest.raises(DeployError) as exc:
        executor.prepare(run)
    assert "fab -H web1 unlock" in str(exc.value) and run.locked


def test_a_bug_or_ctrl_c_in_prepare_still_releases_the_lock(tmp_path):
    """Not every failure is an OpsError: a bug while bundling or Ctrl-C must not leave the
    host locked for the next deploy to find stale."""
    remote = FakeRemote()
    run, _ = a_run(remote, tmp_path=tmp_path)
    run.bundle = lambda upload: (_ for _ in ()).throw(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        executor.prepare(run)
    assert remote.ran == ["unlock"] and not run.locked


def test_ctrl_c_mid_switch_restores_then_releases_the_lock(tmp_path):
    remote = FakeRemote()
    run, _ = a_run(remote, tmp_path=tmp_path)
    executor.prepare(run)
    run.smoke = lambda static: (_ for _ in ()).throw(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        executor.activate(run)
    assert remote.ran[-3:] == ["verify", "restore", "unlock"] and not run.locked


# ---------------------------------------------------------------- day two: hooks, history

def hook(point, tolerated=False):
    return plan.Step(point, f"# {point}", "flask db upgrade", stream=True, tolerated=tolerated)


def with_history(**over):
    entry = plan.HistoryEntry("deploy", "dev@laptop", "R2", "R1")
    return a_plan(history=plan.History("/srv/a/.flask-ops/history.jsonl", entry), **over)


def test_a_failing_before_switch_hook_switches_nothing_and_is_recorded(tmp_path):
    remote = FakeRemote(fail={"before_switch"})
    run, lines = a_run(remote, with_history(before_switch=(hook("before_switch"),)), tmp_path=tmp_path)
    executor.prepare(run)
    with pytest.raises(DeployError) as err:
        executor.before_switch(run)
    assert err.value.step == "before_switch"
    assert remote.ran == ["upload", "stage", "before_switch", "discard", "history"]
    assert "  before_switch | output of before_switch" in lines  # streamed, prefixed


def test_a_reported_after_switch_failure_does_not_roll_back(tmp_path):
    remote = FakeRemote(fail={"after_switch"})
    p = with_history(activate=(plan.Step("switch", "# s"), hook("after_switch", tolerated=True),
                               plan.Step("smoke", smoke_static="a.css")))
    run, lines = a_run(remote, p, tmp_path=tmp_path)
    assert executor.activate(executor.prepare(run)) == "R2"
    assert remote.ran == ["upload", "stage", "switch", "after_switch", "smoke a.css", "finish"]
    assert any("reported, not rolled back" in line for line in lines)


def test_an_after_switch_failure_set_to_roll_back_restores(tmp_path):
    remote = FakeRemote(fail={"after_switch"})
    p = with_history(activate=(plan.Step("switch", "# s"), hook("after_switch")))
    run, _ = a_run(remote, p, tmp_path=tmp_path)
    with pytest.raises(DeployError) as err:
        executor.activate(executor.prepare(run))
    assert err.value.step == "after_switch"
    assert remote.ran == ["upload", "stage", "switch", "after_switch", "restore", "history", "unlock"]


def test_a_no_change_deploy_is_recorded_and_unlocked_in_one_command(tmp_path):
    remote = FakeRemote()
    p = with_history(nothing_to_do=True, noop=plan.Step("unlock", "# history + unlock"))
    run, _ = a_run(remote, p, tmp_path=tmp_path)
    assert executor.activate(executor.prepare(run)) == "R1"
    assert remote.ran == ["unlock"]
