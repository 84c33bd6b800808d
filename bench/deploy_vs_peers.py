"""flask-ops vs. an Ansible playbook doing the same job, on the same kind of staging host.

    .venv/bin/python bench/deploy_vs_ansible.py [--reps 3] [--report docs/benchmarks.md]

Alternating in one run: first deploy to a provisioned host, one-line code change, no-op
redeploy; wall time and remote commands (ours: SSH commands; Ansible: SSH executions seen at
-vvv, with pipelining on, its fastest setting). Ansible (ansible-core from PyPI) runs from
.venv-ansible. Target: ours >= 5x faster on the no-op and code-change deploys.
"""

import argparse
import json
import os
import re
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

from conftest import make_project  # noqa: E402
from ops import build, deploy, provision, render, staging  # noqa: E402

HOST = "staging1"
PLAYBOOK = ROOT / "bench/peers/ansible/deploy.yml"
ANSIBLE = ROOT / ".venv-ansible/bin/ansible-playbook"
SCENARIOS = ("first deploy", "code-change deploy", "no-op redeploy")


def reset(host, s):
    """Back to a provisioned host without the app: the next deploy is a first deploy."""
    host.run(f"systemctl stop {s.service} {s.service}.socket 2>/dev/null || true; "
             f"rm -rf {s.releases}/* {s.current} "
             f"{s.shared}/venvs/* {s.shared}/wheelhouse/* {s.base}/.flask-ops/state.json "
             f"/etc/nginx/sites-enabled/{s.app_name}.conf /etc/systemd/system/{s.service}.service "
             f"/etc/systemd/system/{s.service}.socket "
             f"/etc/flask-ops/{s.app_name}/uwsgi.ini; systemctl daemon-reload; "
             "systemctl reload nginx", "reset")


def ours(s, host):
    host.commands = 0
    start = time.monotonic()
    deploy.deploy(s, host, out=lambda line: None)
    return time.monotonic() - start, host.commands


def tree_id(path):
    from ops.release import tree_digest
    return tree_digest(path)[:16]


def ansible(s, work):
    rendered = work / "rendered"
    shutil.rmtree(rendered, ignore_errors=True)
    render.write_tree(render.render(s), rendered)
    variables = {
        "app": s.app_name, "base": s.base, "source": str(s.source_dir), "wsgi": "@" + str(work / "wsgi.json"),
        "release_id": tree_id(s.source_dir), "rendered": str(rendered),
        "collected": str(work / "collected"), "wheelhouse": str(build.wheelhouse(s)),
        "build_python": str(build.venv(s) / "bin/python"), "collect_driver": str(build.DRIVER),
        "server_name": s.server_names[0], "work": str(work),
        # archives by release id, kept across runs: an unchanged release is not built again
        "cache": str(work.parent / "ansible-cache"),
    }
    (work / "wsgi.json").write_text(json.dumps(s.wsgi_spec.as_json()))
    (work / "vars.json").write_text(json.dumps(variables))
    (work / "inventory.ini").write_text(
        f"[app]\n{HOST} ansible_user=root ansible_python_interpreter=/usr/bin/python3 "
        f"ansible_ssh_common_args='-F {staging.ssh_config_path()}'\n")
    env = {**os.environ, "ANSIBLE_PIPELINING": "True", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"), "ANSIBLE_STDOUT_CALLBACK": "default"}
    start = time.monotonic()
    out = subprocess.run([str(ANSIBLE), "-i", str(work / "inventory.ini"), str(PLAYBOOK),
                          "-e", f"@{work / 'vars.json'}", "-vvv"], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    elapsed = time.monotonic() - start
    if out.returncode != 0:
        raise SystemExit(f"ansible-playbook failed:\n{out.stdout[-4000:]}")
    recap = re.search(r"changed=(\d+)", out.stdout.rsplit("PLAY RECAP", 1)[-1])
    print(f"  ansible: {recap.group(0) if recap else 'no recap'}", file=sys.stderr)
    return elapsed, len(re.findall(r"SSH: EXEC ssh", out.stdout))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--report", help="replace this section in the markdown file")
    args = parser.parse_args()
    if not ANSIBLE.exists():
        raise SystemExit("ansible-core is not installed: run `make bench-deps`")
    staging.up(1, log=lambda m: None)
    host = staging.remote(HOST)
    tmp = Path(tempfile.mkdtemp())
    counter = iter(range(1000))

    def version(app, greeting):
        return make_project(tmp / f"{app}{next(counter)}", {"app.py": ("Hello, World!", greeting)},
                            {"app_name": app, "server_names": [f"{app}.test"]})

    for app in ("ours", "peer"):
        provision.provision(version(app, "x"), host)
    figures = {(tool, sc): [] for tool in ("flask-ops", "ansible") for sc in SCENARIOS}
    for rep in range(args.reps):
        for tool, app in (("flask-ops", "ours"), ("ansible", "peer")):
            reset(host, version(app, "x"))
        for scenario, greeting in zip(SCENARIOS, (f"v{rep}a", f"v{rep}b", f"v{rep}b")):
            for tool, app in (("flask-ops", "ours"), ("ansible", "peer")):
                s = version(app, greeting)
                work = Path(s.project_root)
                figures[(tool, scenario)].append(ours(s, host) if tool == "flask-ops" else ansible(s, work))
    lines = [f"### flask-ops vs. Ansible ({time.strftime('%Y-%m-%d')}, {args.reps} alternating "
             "repetitions)", "",
             "| deploy | flask-ops s (min/median/max) | Ansible s (min/median/max) | speed-up | "
             "commands flask-ops / Ansible |", "| --- | --- | --- | --- | --- |"]
    for scenario in SCENARIOS:
        a = sorted(t for t, _ in figures[("flask-ops", scenario)])
        b = sorted(t for t, _ in figures[("ansible", scenario)])
        ca = statistics.median(c for _, c in figures[("flask-ops", scenario)])
        cb = statistics.median(c for _, c in figures[("ansible", scenario)])
        lines.append(f"| {scenario} | {a[0]:.2f} / {statistics.median(a):.2f} / {a[-1]:.2f} | "
                     f"{b[0]:.2f} / {statistics.median(b):.2f} / {b[-1]:.2f} | "
                     f"{statistics.median(b) / statistics.median(a):.1f}x | {ca:.0f} / {cb:.0f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build/deploy_vs_ansible.json").write_text(json.dumps(
        {f"{tool}|{sc}": runs for (tool, sc), runs in figures.items()}))
    return report


if __name__ == "__main__":
    main()
