"""flask-ops vs. its peers written as their experts would (Ansible, pyinfra, Capistrano),
the same job on the same kind of staging host.

    .venv/bin/python bench/deploy_vs_peers.py [--reps 3] [--tools ansible,pyinfra,capistrano]

Alternating in one run: first deploy to a provisioned host, one-line code change, no-op
redeploy. Each figure is the wall time of the whole tool process as a user starts it (`fab
-H staging1 deploy`, `ansible-playbook`, `pyinfra`, `cap bench deploy`) and the SSH
sessions the host's sshd started for it. What each tool said it changed is reported too: a
no-op must be one for the tool itself.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import peers  # noqa: E402
from ops import staging  # noqa: E402
from ops.deploy import provision  # noqa: E402

HOST = "staging1"
SCENARIOS = ("first deploy", "code-change deploy", "no-op redeploy")
APPS = {"flask-ops": "ours", "flask-ops/paramiko": "ourp", "ansible": "ans", "pyinfra": "pyi",
        "capistrano": "cap"}


def reset(host, s):
    """Back to a provisioned host without the app: the next deploy is a first deploy."""
    host.run(f"systemctl stop {s.service} {s.service}.socket 2>/dev/null || true; "
             f"rm -rf {s.releases}/* {s.current} {s.shared}/venvs/* {s.shared}/wheelhouse/* "
             f"{s.shared}/archives {s.base}/.flask-ops/state.json "
             f"/etc/nginx/sites-enabled/{s.app_name}.conf /etc/systemd/system/{s.service}.service "
             f"/etc/systemd/system/{s.service}.socket /etc/flask-ops/{s.app_name}/uwsgi.ini; "
             "systemctl daemon-reload; systemctl reload nginx", "reset")


def median(runs):
    return statistics.median(t for t, _, _ in runs)


def table(figures, tools, scenarios):
    """Ratios first (each peer's time over ours: higher, flask-ops faster), then the times."""
    lines = ["| deploy | " + " | ".join(f"**{t} / flask-ops**" for t in tools[1:]) + " | "
             + " | ".join(f"{t} s (sessions)" for t in tools) + " |",
             "| --- " * (len(tools) * 2) + "|"]
    for sc in scenarios:
        ours = median(figures[("flask-ops", sc)])
        ratios = [f"**{median(figures[(t, sc)]) / ours:.1f}x**" for t in tools[1:]]
        cells = [f"{median(figures[(t, sc)]):.2f} ({statistics.median(c for _, c, _ in figures[(t, sc)]):.0f})"
                 for t in tools]
        lines.append(f"| {sc} | " + " | ".join(ratios + cells) + " |")
    said = {t: sorted({s for _, _, s in figures[(t, "no-op redeploy")]}) for t in tools
            if (t, "no-op redeploy") in figures}
    return "\n".join(lines) + "\n\nWhat each tool said on the no-op: " + "; ".join(
        f"{t}: {', '.join(s)}" for t, s in said.items()) + ".\n"


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tools", default=",".join(peers.TOOLS))
    args = parser.parse_args(argv)
    tools = ["flask-ops", "flask-ops/paramiko"] + [t for t in args.tools.split(",") if t]
    gone = [t for t in peers.missing() if t in tools]
    if gone:
        raise SystemExit(f"not installed: {', '.join(gone)}: run `make bench-deps`")
    staging.up(1, log=lambda m: None)
    host = staging.remote(HOST)
    sessions = peers.Sessions([host])
    tmp = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    counter = iter(range(10000))

    def version(tool, greeting):
        """flask-ops: one project directory, edited in place as a user edits theirs (its
        no-op runs where its code change ran); a peer: a fresh copy each time (their
        no-op is decided by the source's digest, wherever it lies)."""
        root = tmp / (APPS[tool] if tool.startswith("flask-ops") else f"{APPS[tool]}{next(counter)}")
        root.mkdir(exist_ok=True)
        return peers.project(root, greeting, APPS[tool])

    for tool in tools:
        provision.provision(version(tool, "x"), host)
    figures = {(t, sc): [] for t in tools for sc in SCENARIOS}
    for rep in range(args.reps):
        for tool in tools:
            reset(host, version(tool, "x"))
        for scenario, greeting in zip(SCENARIOS, (f"v{rep}a", f"v{rep}b", f"v{rep}b")):
            for tool in tools:
                s = version(tool, greeting)
                (seconds, said), count = sessions.measure(
                    lambda: peers.run(tool, s, Path(s.project_root), [HOST]))
                figures[(tool, scenario)].append((seconds, count, said))
                print(f"  {scenario:20} {tool:10} {seconds:6.2f}s {count:3} sessions  {said}",
                      file=sys.stderr)
    versions = peers.versions()
    report = (f"### flask-ops vs. its peers, one host ({time.strftime('%Y-%m-%d')}, {args.reps} "
              "alternating repetitions, medians)\n\nPeers: " + ", ".join(
                  versions[t] for t in tools if t in versions) + ". flask-ops runs with an SSH "
              "config that shares connections (ControlMaster auto, ControlPersist 60 s, as the "
              "Ansible peer's), flask-ops/paramiko without one. Wall time of the whole tool "
              "process in seconds, with the SSH sessions the host's sshd started for it.\n\n"
              + table(figures, tools, SCENARIOS))
    peers.stop_shared([HOST])
    print(report)
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build/deploy_vs_peers.json").write_text(json.dumps(
        {f"{t}|{sc}": runs for (t, sc), runs in figures.items()}))
    return report


if __name__ == "__main__":
    main()
