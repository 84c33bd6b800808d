"""Zero downtime, measured: what clients see in steady state and while a deploy runs, on a
single host and rolling over a fleet (staging3 balancing staging1 and staging2).

    .venv/bin/python bench/zero_downtime.py [--seconds 5]

Clients as they are: wrk keeps its connections alive (as browsers and API clients do; a
connection the server closes under a request is a read error), 2 threads x 16 connections,
every third request a POST; bounded by time (wrk -d) and stopped by SIGINT after each
window. The rolling deploy is measured twice: `--drain auto` (the default) and `always`.
Target: 0 errors in every phase.
"""

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import make_project  # noqa: E402
from ops import staging  # noqa: E402
from ops.deploy import deploy, fleet, provision  # noqa: E402

CONFIG = {"app_name": "zdt", "server_names": ["zdt.test"],
          "roles": {"lb": ["staging3"], "app": ["staging1", "staging2"]}}
THREADS, CONNECTIONS = 2, 16

# Every third request a POST of a small form, the others GETs; both answered by /echo.
MIXED = """
counter = 0
request = function()
  counter = counter + 1
  if counter % 3 == 0 then
    return wrk.format("POST", "/echo", {["Host"] = "zdt.test",
      ["Content-Type"] = "application/x-www-form-urlencoded"}, "n=" .. counter)
  end
  return wrk.format("GET", "/echo", {["Host"] = "zdt.test"})
end
"""


def wrk_window(address, seconds, script, during=None):
    """wrk against `address` for `seconds` of steady load, plus however long `during` (a
    deploy) takes; stopped by SIGINT, which makes wrk print its report. Returns its figures."""
    proc = subprocess.Popen(
        ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{int(seconds) + 300}s", "--latency",
         "--timeout", "30s", "-s", script, f"http://{address}/"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1)  # a measurement window: wrk has its connections open before the deploy
        started = time.monotonic()
        if during:
            during()
        remaining = seconds - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0]
    return parse(out)


def parse(out):
    def num(pattern, default=0):
        m = re.search(pattern, out)
        return m.group(1) if m else default

    errors = {kind: int(num(rf"Socket errors:.*?{kind} (\d+)")) for kind in
              ("connect", "read", "write", "timeout")}
    errors["non-2xx/3xx"] = int(num(r"Non-2xx or 3xx responses: (\d+)"))
    return {"requests": int(num(r"(\d+) requests in")), "errors": errors,
            "p50": num(r"\s50%\s+(\S+)", "?"), "p99": num(r"\s99%\s+(\S+)", "?"), "raw": out}


def row(name, result):
    failed = sum(result["errors"].values())
    kinds = ", ".join(f"{k} {v}" for k, v in result["errors"].items() if v) or "-"
    return (f"| {name} | {result['requests']} | {failed} | {kinds} | {result['p50']} | "
            f"{result['p99']} |"), failed


def main(argv=None):
    """The report (markdown), printed too."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--phases", choices=("all", "single"), default="all",
                        help="single: the single-host phases only (make test's tiny run)")
    args = parser.parse_args(argv)
    single_only = args.phases == "single"
    staging.up(1 if single_only else 3, log=lambda m: None)
    lbs = [] if single_only else [staging.remote("staging3")]
    apps = [staging.remote("staging1")] + ([] if single_only else [staging.remote("staging2")])
    tmp = Path(tempfile.mkdtemp())
    script = tmp / "mixed.lua"
    script.write_text(MIXED)
    counter = iter(range(100))

    def version(greeting, **extra):
        return make_project(tmp / f"v{next(counter)}", {"app.py": ("Hello, World!", greeting)},
                            {**CONFIG, **extra})

    s = version("Hello 0", **({"roles": None} if single_only else {}))
    for host in lbs + apps:
        provision.provision(s, host)
    if not single_only:
        fleet.rolling_deploy(s, lbs, apps, out=lambda m: None)
    drains = []

    def roll(greeting, drain):
        lines = []
        fleet.rolling_deploy(version(greeting), lbs, apps, drain=drain, out=lines.append)
        drains.append(sum(" drained" in line for line in lines))

    def single(greeting):
        deploy.deploy(version(greeting, roles=None), apps[0], out=lambda m: None)

    # The fleet first: the single-host phases give staging1 a site of its own (no balancer).
    phases = [
        ("fleet via load balancer, steady", lbs and lbs[0].address, None),
        ("fleet, during rolling deploy (`--drain auto`)", lbs and lbs[0].address,
         lambda: roll("Hello 1", "auto")),
        ("fleet, during rolling deploy (`--drain always`)", lbs and lbs[0].address,
         lambda: roll("Hello 2", "always")),
        ("single host, steady", apps[0].address, lambda: single("Hello 3")),
        ("single host, during `deploy` (code change)", apps[0].address,
         lambda: single("Hello 4")),
    ]
    if single_only:
        phases = [p for p in phases if p[0].startswith("single")]
    rows, failed = [], {}
    for name, address, during in phases:
        if name.startswith("single host, steady"):
            during()  # staging1 alone, before its steady window
            during = None
        line, failed[name] = row(name, wrk_window(address, args.seconds, str(script), during))
        rows.append(line)
    missed = [name for name, n in failed.items() if n and "always" not in name]
    report = "\n".join([
        f"### Zero downtime, keep-alive clients ({time.strftime('%Y-%m-%d')}, one run)\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; load: wrk -t{THREADS} "
        f"-c{CONNECTIONS} (keep-alive), GET and POST /echo (one in three a POST), "
        f"{args.seconds:.0f} s windows (a deploy window lasts at least as long as the deploy).\n",
        "| phase | requests | errors | kinds | p50 | p99 |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows, "",
        (f"Load balancer reloads to drain a host: {drains[0]} with `--drain auto` (a code change: "
         f"uWSGI's graceful reload only), {drains[1]} with `--drain always`.\n" if drains else
         "Single-host phases only (--phases single).\n"),
        f"Target 0 errors: {'met' if not missed else 'MISSED in ' + ', '.join(missed)} (the "
        "`--drain always` row shows the price of balancer reloads, not a target).\n"])
    print(report)
    return report

if __name__ == "__main__":
    main()
