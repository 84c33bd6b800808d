"""Zero downtime, measured: latency and failures in steady state and during a deploy,
on a single host and rolling over a fleet (staging3 balancing staging1 and staging2).

    .venv/bin/python bench/zero_downtime.py [--seconds 5]

Load: 4 concurrent clients, GET /hello, bounded in requests and time (ops.load).
Target: 0 failed; p99 during a deploy <= 2x steady state.
"""

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import loadgen  # noqa: E402
from conftest import make_project  # noqa: E402
from ops import deploy, fleet, provision, staging  # noqa: E402

CONFIG = {"app_name": "zdt", "server_names": ["zdt.test"],
          "roles": {"lb": ["staging3"], "app": ["staging1", "staging2"]}}


def run_load(address, seconds, during=None):
    with loadgen.Load(address, 80, "zdt.test", path="/hello", concurrency=4, max_requests=200000,
                   max_seconds=seconds + 120) as traffic:
        traffic.wait_for(50)
        started = time.monotonic()
        if during:
            during()
        remaining = seconds - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)  # steady state for the stated duration (a measurement window)
    return traffic.result


def row(name, result):
    errors = ", ".join(f"{k} x{v}" for k, v in result.errors.items()) or "-"
    return (f"| {name} | {result.sent} | {result.failed} | {errors} | "
            f"{result.percentile(50) * 1000:.1f} | {result.percentile(99) * 1000:.1f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    staging.up(3, log=lambda m: None)
    lbs = [staging.remote("staging3")]
    apps = [staging.remote("staging1"), staging.remote("staging2")]
    tmp = Path(tempfile.mkdtemp())
    counter = iter(range(100))

    def version(greeting, **extra):
        return make_project(tmp / f"v{next(counter)}", {"app.py": ("Hello, World!", greeting)},
                            {**CONFIG, **extra})

    s = version("Hello 0")
    for host in lbs + apps:
        provision.provision(s, host)
    fleet.rolling_deploy(s, lbs, apps, out=lambda m: None)
    single = version("Hello 0", roles=None)
    deploy.deploy(single, apps[0], out=lambda m: None)
    rows = [
        row("single host, steady", run_load(apps[0].address, args.seconds)),
        row("single host, during `deploy`", run_load(apps[0].address, args.seconds, lambda: deploy.deploy(
            version("Hello 1", roles=None), apps[0], out=lambda m: None))),
        row("fleet via load balancer, steady", run_load(lbs[0].address, args.seconds)),
        row("fleet via load balancer, during rolling deploy", run_load(
            lbs[0].address, args.seconds,
            lambda: fleet.rolling_deploy(version("Hello 2"), lbs, apps, out=lambda m: None))),
    ]
    print(f"### Zero downtime ({time.strftime('%Y-%m-%d')})\n")
    print(f"Machine: {platform.machine()}, {subprocess.getoutput('nproc')} cores; load: 4 "
          f"clients, GET /hello, {args.seconds:.0f} s windows (a deploy window lasts at least "
          "as long as the deploy).\n")
    print("| phase | requests | failed | errors | p50 (ms) | p99 (ms) |\n"
          "| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
