"""What one SSH command costs, by transport: the floor under a no-op deploy.

    .venv/bin/python bench/ssh_transport.py [--reps 10]

On staging1, each figure the median wall time of: Paramiko as flask-ops uses it (Fabric's
Connection: handshake, one `true`, close), in this process and as a new process that
imports Fabric first; OpenSSH's `ssh HOST true` (a fresh handshake each time); and OpenSSH
through a ControlMaster socket kept by a first session (ControlPersist), the way Ansible
runs. Nothing is changed on the host.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import peers  # noqa: E402
from ops import staging  # noqa: E402

HOST = "staging1"


def timed(thunk, reps):
    times = []
    for _ in range(reps):
        start = time.monotonic()
        thunk()
        times.append(time.monotonic() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)
    staging.up(1, log=lambda m: None)
    config = str(staging.ssh_config_path())

    def paramiko_here():
        r = staging.remote(HOST)
        r.run("true", "bench")
        r.close()

    child = [str(ROOT / ".venv/bin/python"), "-c",
             "import sys; sys.path.insert(0, sys.argv[1]); from ops import staging; "
             "staging.remote(sys.argv[2]).run('true', 'bench')", str(ROOT), HOST]
    ssh = ["ssh", "-F", config, "-o", "BatchMode=yes"]
    with tempfile.TemporaryDirectory(prefix="bench-ssh-") as tmp:
        control = ["-o", "ControlMaster=auto", "-o", f"ControlPath={tmp}/%C",
                   "-o", "ControlPersist=30"]
        subprocess.run(ssh + control + [HOST, "true"], check=True)  # the master
        try:
            rows = [
                ("Paramiko (Fabric), in this process", timed(paramiko_here, args.reps)),
                ("Paramiko (Fabric), a new Python process importing it",
                 timed(lambda: subprocess.run(child, check=True, env=peers.USER_ENV),
                       args.reps)),
                ("OpenSSH, a new handshake", timed(
                    lambda: subprocess.run(ssh + [HOST, "true"], check=True), args.reps)),
                ("OpenSSH through a ControlMaster socket", timed(
                    lambda: subprocess.run(ssh + control + [HOST, "true"], check=True),
                    args.reps)),
            ]
        finally:
            subprocess.run(ssh + control + ["-O", "exit", HOST], capture_output=True)
    lines = [f"### One SSH command by transport ({time.strftime('%Y-%m-%d')}, medians of "
             f"{args.reps})", "", "| transport | seconds |", "| --- | --- |"]
    lines += [f"| {name} | {seconds:.3f} |" for name, seconds in rows]
    report = "\n".join(lines) + "\n"
    print(report)
    return report


if __name__ == "__main__":
    main()
