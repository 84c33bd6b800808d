"""Deploy cost as the fleet grows: 1, 2 and 4 app hosts, ours and each peer.

    .venv/bin/python bench/fleet.py [--sizes 1,2,4] [--tools ansible,pyinfra,capistrano]

For each fleet size, each tool gets its own app on the first N app hosts (an untimed first
deploy), then a timed code-change deploy and a timed no-op. Ours deploys through the load
balancer (staging host N_max+1): it prepares every host at once, switches them one batch at
a time, and smoke-checks through the balancer. The peers deploy to the app hosts alone, in
parallel (Ansible with the free strategy and enough forks; pyinfra and Capistrano by
default): they do less. The figure that matters is each tool's ratio 4 hosts / 1 host.
"""

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import peers  # noqa: E402
from ops import staging  # noqa: E402
from ops.deploy import provision  # noqa: E402

SCENARIOS = ("code-change deploy", "no-op redeploy")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,2,4")
    parser.add_argument("--tools", default=",".join(peers.TOOLS))
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",")]
    tools = ["flask-ops", "flask-ops/canary"] + [t for t in args.tools.split(",") if t]
    gone = [t for t in peers.missing() if t in tools]
    if gone:
        raise SystemExit(f"not installed: {', '.join(gone)}: run `make bench-deps`")
    biggest = max(sizes)
    lb_name = f"staging{biggest + 1}"
    staging.up(biggest + 1, log=lambda m: None)
    names = [f"staging{i}" for i in range(1, biggest + 1)]
    remotes = {n: staging.remote(n) for n in names + [lb_name]}
    sessions = {n: peers.Sessions([remotes[h] for h in names[:n]] + ([remotes[lb_name]]))
                for n in sizes}
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    counter = iter(range(10000))
    figures = {}
    for n in sizes:
        hosts = names[:n]
        for tool in tools:
            app = f"{tool[:3]}{'c' if tool.endswith('/canary') else ''}{n}"
            roles = {"lb": [lb_name], "app": hosts} if tool.startswith("flask-ops") else None

            def version(greeting):  # flask-ops: one project, edited in place (deploy_vs_peers)
                root = tmp / (app if roles else f"{app}-{next(counter)}")
                root.mkdir(exist_ok=True)
                return peers.project(root, greeting, app, roles=roles)

            s = version("a")
            targets = hosts + ([lb_name] if roles else [])
            with ThreadPoolExecutor(len(targets)) as pool:
                list(pool.map(lambda h: provision.provision(s, remotes[h]), targets))
            peers.run(tool, s, Path(s.project_root), hosts)  # the first deploy: untimed
            for scenario, greeting in zip(SCENARIOS, ("b", "b")):
                s = version(greeting)
                (seconds, said), count = sessions[n].measure(
                    lambda: peers.run(tool, s, Path(s.project_root), hosts))
                figures[(tool, n, scenario)] = (seconds, count, said)
                print(f"  {n} hosts {scenario:20} {tool:10} {seconds:6.2f}s {count:3} sessions "
                      f"{said}", file=sys.stderr)
    peers.stop_shared(names + [lb_name])
    versions = peers.versions()
    lines = [f"### The fleet curve ({time.strftime('%Y-%m-%d')}, one run)", "",
             "Wall time of the whole tool process (s) for a deploy to N app hosts, with SSH "
             f"sessions on all hosts; **{sizes[-1]}/{sizes[0]}** is each tool's time on the biggest fleet over the smallest "
             "(1.0: a flat curve). flask-ops switches one host at a time (its default), "
             "flask-ops/canary the canary alone, then every other host at once "
             "(`--batch-size N`), both with an SSH config that shares connections (ControlMaster, "
             "ControlPersist 60 s, as the Ansible peer); both re-render the "
             "balancer and smoke-check through it; the peers ("
             + ", ".join(versions[t] for t in tools if t in versions) + ") deploy to the app hosts only.", "",
             f"| deploy | tool | **{sizes[-1]}/{sizes[0]}** | "
             + " | ".join(f"{n} host{'s' if n > 1 else ''} s (sessions)" for n in sizes) + " |",
             "| --- " * (len(sizes) + 3) + "|"]
    for scenario in SCENARIOS:
        for tool in tools:
            cells = [f"{figures[(tool, n, scenario)][0]:.2f} ({figures[(tool, n, scenario)][1]})"
                     for n in sizes]
            ratio = figures[(tool, sizes[-1], scenario)][0] / figures[(tool, sizes[0], scenario)][0]
            lines.append(f"| {scenario} | {tool} | **{ratio:.2f}** | " + " | ".join(cells) + " |")
    report = "\n".join(lines) + "\n"
    print(report)
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build/fleet.json").write_text(json.dumps(
        {f"{t}|{n}|{sc}": v for (t, n, sc), v in figures.items()}))
    return report


if __name__ == "__main__":
    main()
