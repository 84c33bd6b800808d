"""Keeps the benchmark scripts runnable (one tiny repetition); their figures are not asserted."""

import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.e2e


# One tiny run of each script `make bench` runs, cut to what proves it still runs (the
# figures are make bench's): every peer once (ansible and pyinfra against ours, Capistrano in
# the fleet curve, on one host), one Apache configuration besides the deployed one, the
# single-host phases of the zero-downtime load (the fleet's are e2e tests of their own).
SCRIPTS = [("serve.py", ["--seconds", "1", "--reps", "1"]),
           ("apache_static.py", ["--seconds", "1", "--reps", "1", "--variants", "2"]),
           ("tls.py", ["--seconds", "1", "--reps", "1"]),
           ("deploy_vs_peers.py", ["--reps", "1", "--tools", "ansible,pyinfra"]),
           ("fleet.py", ["--sizes", "1", "--tools", "capistrano"]),
           ("own_speed.py", ["--reps", "1"]),
           ("zero_downtime.py", ["--seconds", "1", "--phases", "single"])]


@pytest.mark.parametrize("script,args", SCRIPTS, ids=[s for s, _ in SCRIPTS])
def test_benchmark_script_runs(staging_hosts, script, args):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT,
                         text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "| --- |" in out.stdout
