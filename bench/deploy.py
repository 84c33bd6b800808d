"""Deploy speed on a staging host: first deploy, one-line code change, no-op redeploy.

    .venv/bin/python bench/deploy.py [--reps 3] [--write docs/benchmarks.md]

Each figure: wall time (min/median/max over repetitions) and SSH commands per deploy.
Targets: no-op <= 1 s and <= 10 commands; code change <= 5 s.
"""

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import sample_settings  # noqa: E402
from ops import deploy, provision, staging  # noqa: E402

HOST = "staging1"


def project(root, greeting):
    shutil.copytree(ROOT / "sample_app", root / "sample_app", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    app = root / "sample_app" / "app.py"
    app.write_text(app.read_text().replace("Hello, World!", greeting))


def measure(s, host):
    host.commands = 0
    start = time.monotonic()
    deploy.deploy(s, host, out=lambda line: None)
    return time.monotonic() - start, host.commands


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--write", help="append the report to this markdown file")
    args = parser.parse_args()
    staging.up(1, log=lambda m: None)
    host = staging.remote(HOST)
    figures = {"first deploy": [], "code-change deploy": [], "no-op redeploy": []}
    for rep in range(args.reps):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            project(root, f"Hello {rep}-0")
            s = sample_settings(root, app_name=f"bench{rep}{int(time.time()) % 10000}")
            provision.provision(s, host)
            figures["first deploy"].append(measure(s, host))
            project(root, f"Hello {rep}-1")
            figures["code-change deploy"].append(measure(s, host))
            figures["no-op redeploy"].append(measure(s, host))
            host.run(f"systemctl disable --now {s.service}; rm -rf {s.base} "
                     f"/etc/nginx/sites-enabled/{s.app_name}.conf "
                     f"/etc/nginx/sites-available/{s.app_name}.conf "
                     f"/etc/systemd/system/{s.service}.service /etc/flask-ops/{s.app_name}; "
                     f"userdel {s.app_user}; systemctl reload nginx", "cleanup", check=False)
    lines = [f"### Deploy speed ({time.strftime('%Y-%m-%d')}, {args.reps} repetitions)", "",
             f"Machine: {platform.machine()}, {subprocess.getoutput('nproc')} cores, Python "
             f"{platform.python_version()}; target: a local staging host (systemd-nspawn).", "",
             "| deploy | wall time min / median / max (s) | SSH commands | target |",
             "| --- | --- | --- | --- |"]
    targets = {"first deploy": "-", "code-change deploy": "<= 5 s",
               "no-op redeploy": "<= 1 s, <= 10 commands"}
    for name, runs in figures.items():
        times = sorted(t for t, _ in runs)
        commands = sorted({c for _, c in runs})
        lines.append(f"| {name} | {times[0]:.2f} / {statistics.median(times):.2f} / "
                     f"{times[-1]:.2f} | {', '.join(map(str, commands))} | {targets[name]} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.write:
        with open(args.write, "a") as f:
            f.write("\n" + report)


if __name__ == "__main__":
    main()
