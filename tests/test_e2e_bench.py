"""Keeps the benchmark scripts runnable (one tiny repetition); their figures are not asserted."""

import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.e2e


# One tiny run of each script `make bench` runs: the fleet curve on 1 and 2 hosts with one
# peer (the three peers each run in deploy_vs_peers).
SCRIPTS = [("serve.py", ["--seconds", "1", "--reps", "1"]),
           ("apache_static.py", ["--seconds", "1", "--reps", "1"]),
           ("tls.py", ["--seconds", "1", "--reps", "1"]),
           ("deploy_vs_peers.py", ["--reps", "1"]),
           ("fleet.py", ["--sizes", "1,2", "--tools", "capistrano"]),
           ("own_speed.py", ["--reps", "1"]),
           ("zero_downtime.py", ["--seconds", "1"])]


@pytest.mark.parametrize("script,args", SCRIPTS, ids=[s for s, _ in SCRIPTS])
def test_benchmark_script_runs(staging_hosts, script, args):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT,
                         text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "| --- |" in out.stdout
